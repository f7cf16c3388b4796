// extension/pg/privilege.cpp
// Caller identity and the doorways that run work as another role under a pinned search_path.
#include "tenancy/pg/privilege.hpp"

#include "tenancy/pg/module.hpp"

extern "C" {
#include "postgres.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_namespace.h"
#include "commands/extension.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/rel.h"
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
		Oid owner = get_role_oid(TENANCY_OWNER_ROLE, true);
		answer = OidIsValid(owner) && caller == owner;
	}
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

namespace {

// The one pinned path: catalog first, the session's temporary schema explicitly last (left out, PostgreSQL would
// search pg_temp first for relations and types).
constexpr const char *kPinnedSearchPath = "pg_catalog, pg_temp";

// Runs fn(arg) as role with search_path pinned and row_security on. The GUC nest level is popped on return and on error
// (as fmgr_security_definer's is by transaction abort; popping it here too keeps a caller that catches the error
// without a subtransaction from running on with the pinned value or a skewed nest level).
void
RunAsRole(Oid role, void (*fn)(void *), void *arg)
{
	Oid saved_user;
	int saved_sec_context;
	GetUserIdAndSecContext(&saved_user, &saved_sec_context);
	int nest_level = NewGUCNestLevel();
	SetUserIdAndSecContext(role, saved_sec_context | SECURITY_LOCAL_USERID_CHANGE);
	PG_TRY();
	{
		(void)set_config_option("search_path", kPinnedSearchPath, PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
		                        false);
		// Policies decide what the doorway's role sees (tenancy_owner's own policy on tenancy.tenants, a table
		// owner's forced policy inside a tenant's context), whatever the caller chose: pg_restore, for one, runs
		// with row_security off, which would turn every such read into an error.
		(void)set_config_option("row_security", "on", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
		fn(arg);
	}
	PG_FINALLY();
	{
		AtEOXact_GUC(true, nest_level);
		SetUserIdAndSecContext(saved_user, saved_sec_context);
	}
	PG_END_TRY();
}

} // namespace

// pg_extension.extowner of tenancy (PostgreSQL 15 has no syscache on pg_extension).
Oid
ExtensionCreatorId(void)
{
	Oid ext = get_extension_oid("tenancy", false);
	Relation rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ, ObjectIdGetDatum(ext));
	SysScanDesc scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	HeapTuple tuple = systable_getnext(scan);
	if (!HeapTupleIsValid(tuple))
		elog(ERROR, "could not find extension tenancy");
	Oid owner = ((Form_pg_extension)GETSTRUCT(tuple))->extowner;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return owner;
}

void
RunAsExtensionOwner(void (*fn)(void *), void *arg)
{
	RunAsRole(ExtensionOwnerId(), fn, arg);
}

void
RunAsTableOwner(Oid relid, void (*fn)(void *), void *arg)
{
	HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", relid)));
	Oid owner = ((Form_pg_class)GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	RunAsRole(owner, fn, arg);
}

void
RunAsSuperuser(void (*fn)(void *), void *arg)
{
	RunAsRole(ExtensionCreatorId(), fn, arg);
}

} // namespace tenancy::pg
