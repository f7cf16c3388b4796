// extension/pg/crypto_settings.cpp
// Superuser-only settings naming the master key (file, command, previous file) and the key cache bound.
#include "tenancy/pg/crypto_keys.hpp"
#include "tenancy/pg/module.hpp"

extern "C" {
#include "postgres.h"
#include "utils/elog.h"
#include "utils/guc.h"
}

namespace tenancy::pg::crypto {

char *master_key_file = NULL;
char *master_key_command = NULL;
char *previous_master_key_file = NULL;
int key_cache_size = 256;
int max_key_versions = 100;

namespace {

// A changed master-key setting (SET by a superuser, or a reload) drops every unwrapped key at once, so no key is
// used with a master key that has become missing or wrong. Assign hooks must not error: FlushKeyCache never does.
void
FlushOnMasterKeyChange(const char *, void *)
{
	FlushKeyCache();
}

void
FlushOnCacheSizeChange(int, void *)
{
	FlushKeyCache();
}

void
InitCryptoSettings()
{
	// GUC_SUPERUSER_ONLY hides the values from other roles (a command line may carry a KMS token). The key itself
	// is never a setting: only where to find it.
	DefineCustomStringVariable("tenancy.master_key_file", "File holding the master key that wraps tenant data keys.",
	                           "32 raw bytes, or 64 hexadecimal characters and an optional newline; mode 0600 or "
	                           "stricter. Takes precedence over tenancy.master_key_command.",
	                           &master_key_file, "", PGC_SUSET, GUC_SUPERUSER_ONLY, NULL, FlushOnMasterKeyChange, NULL);
	DefineCustomStringVariable(
	    "tenancy.master_key_command", "Shell command whose standard output is the master key (e.g. a KMS client).",
	    "Used when tenancy.master_key_file is empty; run by the server's OS user.", &master_key_command, "", PGC_SUSET,
	    GUC_SUPERUSER_ONLY, NULL, FlushOnMasterKeyChange, NULL);
	DefineCustomStringVariable("tenancy.previous_master_key_file",
	                           "File holding the previous master key, read by tenancy.rewrap_keys().", NULL,
	                           &previous_master_key_file, "", PGC_SUSET, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);
	DefineCustomIntVariable("tenancy.key_cache_size", "Unwrapped tenant data keys each backend keeps (LRU).", NULL,
	                        &key_cache_size, 256, 1, 65536, PGC_SUSET, 0, NULL, FlushOnCacheSizeChange, NULL);
	DefineCustomIntVariable("tenancy.max_key_versions_per_tenant", "Most data-key versions a tenant may have.",
	                        "tenancy.rotate_tenant_key refuses more with TN003.", &max_key_versions, 100, 1, 100000,
	                        PGC_SUSET, 0, NULL, NULL, NULL);
}

} // namespace

TENANCY_REGISTER_INIT(InitCryptoSettings, 60);

} // namespace tenancy::pg::crypto
