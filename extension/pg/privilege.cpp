// extension/pg/privilege.cpp
// Caller identity and the switch to the extension owner used by app-callable C functions.
#include "tenancy/pg/privilege.hpp"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_namespace.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/syscache.h"
}

namespace tenancy::pg {

bool
CallerIsAdmin(void)
{
	Oid caller = GetUserId();
	if (superuser_arg(caller))
		return true;
	Oid admin = get_role_oid("tenancy_admin", true);
	return OidIsValid(admin) && has_privs_of_role(caller, admin);
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
