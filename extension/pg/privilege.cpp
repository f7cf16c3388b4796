// extension/pg/privilege.cpp
// Caller identity and the switch to the extension owner used by app-callable C functions.
#include "tenancy/pg/privilege.hpp"

#include "tenancy/pg/module.hpp"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/inval.h"
#include "utils/syscache.h"
}

namespace tenancy::pg {

namespace {

// The admin check sits on hot paths (consume, encrypt/decrypt naming a tenant): the last role's answer is kept until
// pg_authid or pg_auth_members change (GRANT, REVOKE, ALTER ROLE, DROP ROLE) in this or any backend.
Oid admin_cache_role = InvalidOid;
bool admin_cache_answer = false;
uint64 admin_cache_invalidations = 0;

void
InvalidateAdminCache(Datum, int, uint32)
{
	admin_cache_role = InvalidOid;
	admin_cache_invalidations++;
}

void
InitAdminCache()
{
	CacheRegisterSyscacheCallback(AUTHMEMROLEMEM, InvalidateAdminCache, (Datum)0);
	CacheRegisterSyscacheCallback(AUTHOID, InvalidateAdminCache, (Datum)0);
}
TENANCY_REGISTER_INIT(InitAdminCache, 5);

} // namespace

bool
CallerIsAdmin(void)
{
	Oid caller = GetUserId();
	if (caller == admin_cache_role)
		return admin_cache_answer;
	uint64 before = admin_cache_invalidations;
	bool answer = superuser_arg(caller);
	if (!answer) {
		Oid admin = get_role_oid("tenancy_admin", true);
		answer = OidIsValid(admin) && has_privs_of_role(caller, admin);
	}
	// Keep the answer only if no invalidation arrived while it was computed (a catalog read may process one).
	if (before == admin_cache_invalidations) {
		admin_cache_answer = answer;
		admin_cache_role = caller;
	}
	return answer;
}

void
RequireAdmin(const char *what)
{
	if (!CallerIsAdmin())
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied to %s", what),
		                errhint("Grant the role tenancy_admin to the calling role.")));
}

Oid
ExtensionOwnerId(void)
{
	Oid nsp = get_namespace_oid("tenancy", false);
	HeapTuple tuple = SearchSysCache1(NAMESPACEOID, ObjectIdGetDatum(nsp));
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "cache lookup failed for schema %u", nsp);
	Oid owner = ((Form_pg_namespace)GETSTRUCT(tuple))->nspowner;
	ReleaseSysCache(tuple);
	return owner;
}

void
RunAsExtensionOwner(void (*fn)(void *), void *arg)
{
	Oid saved_user;
	int saved_sec_context;
	Oid owner = ExtensionOwnerId();

	GetUserIdAndSecContext(&saved_user, &saved_sec_context);
	SetUserIdAndSecContext(owner, saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		fn(arg);
	}
	PG_FINALLY();
	{
		SetUserIdAndSecContext(saved_user, saved_sec_context);
	}
	PG_END_TRY();
}

} // namespace tenancy::pg
