// extension/pg/isolation_signed_context.cpp
// Signed context mode: set_tenant_token / sign_tenant_token and tenancy.context_secret_file.
#include "tenancy/core/tenant_token.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_cache.hpp"
#include "tenancy/pg/tenant_context.hpp"

#include <string>

extern "C" {
#include "postgres.h"
#include "datatype/timestamp.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_set_tenant_token);
PG_FUNCTION_INFO_V1(tenancy_sign_tenant_token);
}

namespace tenancy::pg {

namespace {

// Path of the HMAC secret. Superuser-only: a role that could point it at a file of its choosing could sign its own
// tokens. The file itself lives outside the database, where no database role can read it.
char *secret_file = NULL;

void
InitSignedContext()
{
	DefineCustomStringVariable("tenancy.context_secret_file", "File holding the secret that signs tenant tokens.",
	                           "At least 32 bytes, readable by the server's operating system user only.", &secret_file,
	                           "", PGC_SUSET, 0, NULL, NULL, NULL);
}
TENANCY_REGISTER_INIT(InitSignedContext, 20);

constexpr int64 kMaxTtlSeconds = 7 * 24 * 3600;

int64
UnixNow()
{
	return (int64)(GetCurrentTimestamp() / USECS_PER_SEC) +
	       (int64)((POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * SECS_PER_DAY);
}

} // namespace

} // namespace tenancy::pg

using namespace tenancy;

// tenancy.set_tenant_token(token text) -> uuid: verifies the token's HMAC and expiry (42501 otherwise), then the
// tenant's status (TN001/TN002), and sets the context for the current transaction like set_tenant. Returns the
// tenant. The only way a non-admin role sets the context when tenancy.context_mode = 'signed'.
extern "C" Datum
tenancy_set_tenant_token(PG_FUNCTION_ARGS)
{
	const char *token = text_to_cstring(PG_GETARG_TEXT_PP(0));
	const char *path = pg::secret_file ? pg::secret_file : "";
	int64 now = pg::UnixNow();
	pg_uuid_t *tenant = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
	pg::CallCore(
	    [&] {
		    std::string secret = core::ReadSecretFile(path);
		    core::WipeOnExit wipe{secret};
		    core::VerifiedToken v = core::VerifyTenantToken(secret, token, now);
		    memcpy(tenant->data, v.tenant.data(), UUID_LEN);
	    },
	    true);
	pg::RequireUsableTenant(tenant);
	pg::SetTenantContext(tenant);
	PG_RETURN_UUID_P(tenant);
}

// tenancy.sign_tenant_token(tenant uuid, ttl interval) -> text: for admin roles (the application's login service),
// a token for an existing tenant valid for ttl (at most 7 days).
extern "C" Datum
tenancy_sign_tenant_token(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	Interval *ttl = PG_GETARG_INTERVAL_P(1);
	pg::RequireAdmin("sign tenant tokens");
	/* months count as 30 days, as interval comparison does */
	int64 ttl_seconds =
	    ttl->time / USECS_PER_SEC + (int64)ttl->day * SECS_PER_DAY + (int64)ttl->month * DAYS_PER_MONTH * SECS_PER_DAY;
	if (ttl_seconds <= 0 || ttl_seconds > pg::kMaxTtlSeconds)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("invalid token lifetime"),
		                errdetail("The lifetime must be positive and at most 7 days.")));
	if (pg::LookupTenantUsability(tenant) == pg::TenantUsability::kNotFound)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_TENANT_NOT_FOUND),
		                errmsg("tenant \"%s\" does not exist",
		                       DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(tenant))))));
	const char *path = pg::secret_file ? pg::secret_file : "";
	int64 expires_at = pg::UnixNow() + ttl_seconds;
	char *token = pg::CallCore(
	    [&] {
		    std::string secret = core::ReadSecretFile(path);
		    core::WipeOnExit wipe{secret};
		    core::UuidBytes bytes;
		    memcpy(bytes.data(), tenant->data, UUID_LEN);
		    std::string out = core::SignTenantToken(secret, bytes, expires_at);
		    char *copy = static_cast<char *>(pg::PallocOrThrow(out.size() + 1));
		    memcpy(copy, out.c_str(), out.size() + 1);
		    return copy;
	    },
	    true);
	PG_RETURN_TEXT_P(cstring_to_text(token));
}
