// extension/include/tenancy/pg/crypto_keys.hpp
// Internal API of the encryption area: master-key settings, the per-backend data-key cache and the key store.
#pragma once

#include "tenancy/core/envelope.hpp"

extern "C" {
#include "postgres.h"
#include "utils/uuid.h"
}

namespace tenancy::pg::crypto {

// Settings (crypto_settings.cpp). NULL or "" when unset.
extern char *master_key_file;
extern char *master_key_command;
extern char *previous_master_key_file;
extern int key_cache_size;
extern int max_key_versions; // tenancy.max_key_versions_per_tenant: rotate_tenant_key refuses more (TN003)

// The per-backend cache of unwrapped data keys (crypto_key_cache.cpp). PG regime: may ereport.
// Cipher of the tenant's current key; on a miss it is loaded from tenancy.tenant_keys, and created when the tenant
// has none yet.
core::DataKeyCipher *CurrentKeyCipher(const pg_uuid_t *tenant);
// Cipher of one key version, or TN006 when that version is unknown or destroyed.
core::DataKeyCipher *VersionKeyCipher(const pg_uuid_t *tenant, uint32 version);
// The tenant's current key version, 0 when it has no live key; never creates one.
int32 CurrentKeyVersion(const pg_uuid_t *tenant);
// Drops every cached key (never errors: called from invalidation callbacks and GUC assign hooks).
void FlushKeyCache(void);
// Called by writers of tenancy.tenant_keys: the cache is flushed if the transaction aborts.
void NoteKeysWritten(void);

// The key store (crypto_key_store.cpp), run as the extension owner. PG regime.
struct StoredKey {
	bool found;     // a row of that version (or any version, for the newest) exists
	bool destroyed; // crypto-shredded: wrapped_key is NULL
	int32 version;
	bytea *wrapped;     // palloc'd in the caller's context
	bytea *fingerprint; // stored master key fingerprint, NULL when none
};
// version 0 asks for the newest version. Reads with the calling query's snapshot, or with a new one (after a
// command counter increment) when fresh_snapshot is set, to see a key this very statement has just created.
void FetchStoredKey(const pg_uuid_t *tenant, int32 version, StoredKey *out, bool fresh_snapshot = false);

enum class KeyCreation {
	kFirst,     // on demand: create version 1 unless a key exists (then return the newest live one)
	kRotate,    // always a new version
	kNewTenant, // from the tenants insert trigger: no row lock or registry update; 0 when no master key
};
// Creates a data key version for the tenant (TN001 when it does not exist), updates tenants.encryption_key_id and
// writes the audit event. Returns the version.
int32 CreateKeyVersion(const pg_uuid_t *tenant, KeyCreation how);

// Marks every key version of the tenant destroyed (wrapped key erased) and audits it; returns how many live versions
// were destroyed. Needs no master key. remove_rows also deletes the tombstones (the tenant row is gone).
int32 DestroyTenantKeys(const pg_uuid_t *tenant, bool remove_rows);

// Rewraps every live data key from the previous master key to the current one; returns how many.
int32 RewrapAllKeys(void);

// OID of tenancy.tenant_keys (InvalidOid before the extension exists), refreshed on each cache miss.
Oid TenantKeysRelid(void);

// The text stored in tenants.encryption_key_id: "<tenant uuid>:v<version>" (palloc'd).
char *KeyIdText(const pg_uuid_t *tenant, int32 version);

// Whether a caller without tenancy_admin whose context is the tenant context may use the keys of tenant: true when
// tenant is a descendant of context and some table is isolated with include_descendants (crypto_scope.cpp). Cached
// per backend, flushed by changes to tenancy.tenants and tenancy.isolation_config.
bool DescendantKeysUsable(const pg_uuid_t *context, const pg_uuid_t *tenant);

// Error context that hides the statement (and its plaintext arguments) from the server log for every error raised
// while it is pushed, including errors from SPI and the key store.
void PushHideStatement(ErrorContextCallback *callback);
void PopHideStatement(ErrorContextCallback *callback);

} // namespace tenancy::pg::crypto
