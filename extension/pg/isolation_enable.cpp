// extension/pg/isolation_enable.cpp
// enable_isolation, disable_isolation and _erase_tenant_rows: SPI over SQL rendered by core/policy_sql.
#include "tenancy/core/policy_sql.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/isolation.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_context.hpp"

#include <string>

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_enable_isolation);
PG_FUNCTION_INFO_V1(tenancy_disable_isolation);
PG_FUNCTION_INFO_V1(tenancy_erase_tenant_rows);
}

namespace tenancy::pg {

namespace {

constexpr int kMaxStatements = 8;
const char *const kGeneratedDefault = "tenancy.current_tenant_id()";

// The SQL for one table, rendered by the core and copied into palloc'd strings inside CallCore, so no C++ object
// is alive while SPI runs it.
struct RenderedSql {
	int npolicies;
	char *policies[kMaxStatements];
	int ndrops;
	char *drops[kMaxStatements];
	char *rls_on;
	char *set_default;
	char *not_null;
	char *drop_not_null;
	char *create_index;
	char *truncate_guard;
	char *drop_truncate_guard;
	char *erase_rows;
};

char *
ToPalloc(const std::string &s)
{
	char *p = static_cast<char *>(PallocOrThrow(s.size() + 1));
	memcpy(p, s.c_str(), s.size() + 1);
	return p;
}

void
Render(const char *schema, const char *table, const char *column, bool include_descendants, RenderedSql *out)
{
	CallCore([&] {
		core::PolicySpec spec{schema, table, column, include_descendants};
		auto policies = core::RenderPolicies(spec);
		auto drops = core::RenderDropPolicies(spec);
		if (policies.size() > kMaxStatements || drops.size() > kMaxStatements)
			throw core::Error(core::ErrorKind::kInternal, "too many policy statements");
		out->npolicies = static_cast<int>(policies.size());
		for (size_t i = 0; i < policies.size(); i++)
			out->policies[i] = ToPalloc(policies[i]);
		out->ndrops = static_cast<int>(drops.size());
		for (size_t i = 0; i < drops.size(); i++)
			out->drops[i] = ToPalloc(drops[i]);
		out->rls_on = ToPalloc(core::RenderRowSecurity(spec, true, true));
		out->set_default = ToPalloc(core::RenderGeneratedDefault(spec));
		out->not_null = ToPalloc(core::RenderNotNull(spec, true));
		out->drop_not_null = ToPalloc(core::RenderNotNull(spec, false));
		out->create_index = ToPalloc(core::RenderCreateIndex(spec));
		out->truncate_guard = ToPalloc(core::RenderTruncateGuard(spec));
		out->drop_truncate_guard = ToPalloc(core::RenderDropTruncateGuard(spec));
		out->erase_rows = ToPalloc(core::RenderEraseRows(spec));
	});
}

char *
RenderRowSecurity(const char *schema, const char *table, bool enable, bool force)
{
	return CallCore([&] { return ToPalloc(core::RenderRowSecurity({schema, table, "", false}, enable, force)); });
}

char *
RenderDefault(const char *schema, const char *table, const char *column, const char *expression)
{
	return CallCore([&] {
		return ToPalloc(core::RenderColumnDefault({schema, table, column, false}, expression ? expression : ""));
	});
}

struct ExecCall {
	const char *sql;
};

// Runs one generated statement. client_min_messages is raised for its duration (a function-style GUC nest level)
// so "policy does not exist, skipping" notices of DROP ... IF EXISTS do not reach the client.
void
ExecWork(void *arg)
{
	const char *sql = static_cast<ExecCall *>(arg)->sql;
	int nest_level = NewGUCNestLevel();
	(void)set_config_option("client_min_messages", "warning", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, 0,
	                        false);
	int rc = SPI_execute(sql, false, 0);
	if (rc < 0)
		elog(ERROR, "could not run \"%s\": %s", sql, SPI_result_code_string(rc));
	AtEOXact_GUC(true, nest_level);
}

// DDL on an application table runs as that table's owner: the extension never does more to a table than its
// owner could (the records in tenancy.isolation_config are written as the extension owner).
void
Exec(Oid relid, const char *sql)
{
	ExecCall call = {sql};
	RunAsTableOwner(relid, ExecWork, &call);
}

// Two statements run as the superuser, because the owner may lack a right they need although they run no code of
// the owner's: CREATE INDEX needs CREATE on the table's schema (PostgreSQL 15's public schema), and PostgreSQL
// builds the index as the table's owner anyway (a security-restricted operation; the index is on the plain tenant
// column); the truncate guard needs EXECUTE on tenancy._refuse_truncate, which only the tenancy roles have.
void
ExecAsSuperuser(const char *sql)
{
	ExecCall call = {sql};
	RunAsSuperuser(ExecWork, &call);
}

// The catalog state of one table before enable_isolation changes it.
struct RelState {
	Oid relid;
	char *schema;
	char *name;
	char relkind;
	AttrNumber attnum; /* 0: no such column */
	bool is_uuid;
	bool rls_enabled;
	bool rls_forced;
	bool not_null;
	char *default_expr;      /* NULL: no default */
	char *configured_column; /* NULL: not isolated yet */
};

bool
GetBool(int row, int col)
{
	bool isnull;
	Datum d = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col, &isnull);
	return !isnull && DatumGetBool(d);
}

char *
GetText(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col); /* NULL for SQL NULL */
}

void
ReadRelState(Oid relid, const char *column, RelState *st)
{
	Oid types[2] = {OIDOID, TEXTOID};
	Datum values[2] = {ObjectIdGetDatum(relid), CStringGetTextDatum(column)};
	int rc = SPI_execute_with_args(
	    "SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text, c.relkind::pg_catalog.text, a.attnum, "
	    "       a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype, c.relrowsecurity, "
	    "       c.relforcerowsecurity, a.attnotnull, pg_catalog.pg_get_expr(d.adbin, d.adrelid), "
	    "       (SELECT i.tenant_column::pg_catalog.text FROM tenancy.isolation_config i"
	    "         WHERE i.relid::pg_catalog.oid OPERATOR(pg_catalog.=) c.oid) "
	    "  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
	    "  LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid "
	    "   AND a.attname OPERATOR(pg_catalog.=) $2::pg_catalog.name AND a.attnum OPERATOR(pg_catalog.>) 0"
	    "   AND NOT a.attisdropped "
	    "  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) c.oid "
	    "   AND d.adnum OPERATOR(pg_catalog.=) a.attnum "
	    " WHERE c.oid OPERATOR(pg_catalog.=) $1",
	    2, types, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the state of relation %u", relid);
	bool isnull;
	st->relid = relid;
	st->schema = GetText(0, 1);
	st->name = GetText(0, 2);
	st->relkind = GetText(0, 3)[0];
	Datum attnum = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	st->attnum = isnull ? 0 : DatumGetInt16(attnum);
	st->is_uuid = GetBool(0, 5);
	st->rls_enabled = GetBool(0, 6);
	st->rls_forced = GetBool(0, 7);
	st->not_null = GetBool(0, 8);
	st->default_expr = GetText(0, 9);
	st->configured_column = GetText(0, 10);
}

void
ValidateRelState(const RelState *st, const char *column)
{
	if (st->relkind != RELKIND_RELATION && st->relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("\"%s\" is not a table", st->name),
		                errdetail("Only tables and partitioned tables can be isolated.")));
	if (strcmp(st->schema, "tenancy") == 0 || strcmp(st->schema, "pg_catalog") == 0 ||
	    strcmp(st->schema, "information_schema") == 0)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("cannot isolate table \"%s\" of schema \"%s\"", st->name, st->schema)));
	if (st->attnum == 0)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("column \"%s\" of table \"%s\" does not exist", column, st->name),
		                errhint("Name the tenant column with the tenant_column argument.")));
	if (!st->is_uuid)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("column \"%s\" of table \"%s\" must be of type uuid", column, st->name),
		                errdetail("The tenant column is compared with tenancy.current_tenant_id(), a uuid.")));
	if (st->configured_column != NULL && strcmp(st->configured_column, column) != 0)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("table \"%s\" is already isolated by column \"%s\"", st->name, st->configured_column),
		                errhint("Run tenancy.disable_isolation() first to change the tenant column.")));
}

// An index whose first key column is the tenant column, if any.
Oid
TenantIndex(Oid relid, AttrNumber attnum)
{
	Oid types[2] = {OIDOID, INT2OID};
	Datum values[2] = {ObjectIdGetDatum(relid), Int16GetDatum(attnum)};
	int rc = SPI_execute_with_args("SELECT i.indexrelid FROM pg_catalog.pg_index i"
	                               " WHERE i.indrelid OPERATOR(pg_catalog.=) $1"
	                               "   AND i.indkey[0] OPERATOR(pg_catalog.=) $2 ORDER BY i.indexrelid DESC LIMIT 1",
	                               2, types, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not look up indexes of relation %u", relid);
	if (SPI_processed == 0)
		return InvalidOid;
	bool isnull;
	return DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

// Records the table's previous state (first time only) and the generated policies as PostgreSQL deparses them,
// which verify_isolation compares with the live policies to find hand edits.
void
UpsertConfig(const RelState *st, Oid root, const char *column, bool include_descendants, bool prior_not_null,
             Oid created_index)
{
	Oid types[9] = {REGCLASSOID, REGCLASSOID, TEXTOID, BOOLOID, BOOLOID, BOOLOID, TEXTOID, BOOLOID, REGCLASSOID};
	Datum values[9] = {ObjectIdGetDatum(st->relid),
	                   ObjectIdGetDatum(root),
	                   CStringGetTextDatum(column),
	                   BoolGetDatum(include_descendants),
	                   BoolGetDatum(st->rls_enabled),
	                   BoolGetDatum(st->rls_forced),
	                   st->default_expr ? CStringGetTextDatum(st->default_expr) : (Datum)0,
	                   BoolGetDatum(prior_not_null),
	                   ObjectIdGetDatum(created_index)};
	char nulls[9] = {
	    ' ', ' ', ' ', ' ', ' ', ' ', st->default_expr ? ' ' : 'n', ' ', OidIsValid(created_index) ? ' ' : 'n'};
	int rc = SPI_execute_with_args(
	    "INSERT INTO tenancy.isolation_config AS c (relid, root, tenant_column, include_descendants, "
	    "  prior_rls_enabled, prior_rls_forced, prior_default, prior_not_null, created_index, policy_qual, "
	    "  policy_check, descendants_qual, cross_tenant_qual) "
	    "SELECT $1, $2, $3::pg_catalog.name, $4, $5, $6, $7, $8, $9, "
	    "  (SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid) FROM pg_catalog.pg_policy p"
	    "    WHERE p.polrelid OPERATOR(pg_catalog.=) $1 AND p.polname OPERATOR(pg_catalog.=) 'tenancy_isolation'), "
	    "  (SELECT pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) FROM pg_catalog.pg_policy p"
	    "    WHERE p.polrelid OPERATOR(pg_catalog.=) $1 AND p.polname OPERATOR(pg_catalog.=) 'tenancy_isolation'), "
	    "  (SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid) FROM pg_catalog.pg_policy p"
	    "    WHERE p.polrelid OPERATOR(pg_catalog.=) $1"
	    "      AND p.polname OPERATOR(pg_catalog.=) 'tenancy_descendants_read'), "
	    "  (SELECT pg_catalog.pg_get_expr(p.polqual, p.polrelid) FROM pg_catalog.pg_policy p"
	    "    WHERE p.polrelid OPERATOR(pg_catalog.=) $1"
	    "      AND p.polname OPERATOR(pg_catalog.=) 'tenancy_admin_cross_tenant') "
	    "ON CONFLICT (relid) DO UPDATE SET root = EXCLUDED.root, include_descendants = EXCLUDED.include_descendants, "
	    "  created_index = COALESCE(c.created_index, EXCLUDED.created_index), policy_qual = EXCLUDED.policy_qual, "
	    "  policy_check = EXCLUDED.policy_check, descendants_qual = EXCLUDED.descendants_qual, "
	    "  cross_tenant_qual = EXCLUDED.cross_tenant_qual",
	    9, types, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not record the isolation of \"%s\"", st->name);
}

struct IsolateArgs {
	Oid relid;
	const char *column;
	bool include_descendants;
	Oid root;
	bool manage_not_null;
};

// Runs as the extension owner. Reads the state of every table first (SET NOT NULL and CREATE INDEX on a
// partitioned table reach its partitions), then changes them parent first.
void
IsolateWork(void *arg)
{
	IsolateArgs *a = static_cast<IsolateArgs *>(arg);
	SPI_connect();
	List *rels = find_all_inheritors(a->relid, AccessExclusiveLock, NULL);
	int n = list_length(rels);
	RelState *states = static_cast<RelState *>(palloc0(sizeof(RelState) * n));
	for (int i = 0; i < n; i++) {
		ReadRelState(list_nth_oid(rels, i), a->column, &states[i]);
		ValidateRelState(&states[i], a->column);
	}
	for (int i = 0; i < n; i++) {
		RelState *st = &states[i];
		RenderedSql sql;
		Render(st->schema, st->name, a->column, a->include_descendants, &sql);
		for (int k = 0; k < sql.npolicies; k++)
			Exec(st->relid, sql.policies[k]);
		Exec(st->relid, sql.rls_on);
		ExecAsSuperuser(sql.truncate_guard);
		if (st->default_expr == NULL || strcmp(st->default_expr, kGeneratedDefault) != 0)
			Exec(st->relid, sql.set_default);
		bool manage_not_null = i == 0 && a->manage_not_null;
		if (manage_not_null && !st->not_null)
			Exec(st->relid, sql.not_null);
		Oid created_index = InvalidOid;
		if (!OidIsValid(TenantIndex(st->relid, st->attnum))) {
			ExecAsSuperuser(sql.create_index);
			created_index = TenantIndex(st->relid, st->attnum);
		}
		/* children never had NOT NULL changed by us: recorded as "was already NOT NULL" so disable leaves it */
		UpsertConfig(st, a->root, a->column, a->include_descendants, manage_not_null ? st->not_null : true,
		             created_index);
	}
	SPI_finish();
}

// One recorded table, copied out of SPI's result before the next SPI call replaces it.
struct ConfigRow {
	Oid relid;
	Oid root;
	char *column;
	bool prior_rls_enabled;
	bool prior_rls_forced;
	char *prior_default;
	bool prior_not_null;
	Oid created_index;
};

void
RestoreWork(void *arg)
{
	Oid relid = *static_cast<Oid *>(arg);
	SPI_connect();
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(relid)};
	int rc = SPI_execute_with_args(
	    "SELECT relid::pg_catalog.oid, root::pg_catalog.oid, tenant_column::pg_catalog.text, prior_rls_enabled, "
	    "       prior_rls_forced, prior_default, prior_not_null, created_index::pg_catalog.oid "
	    "  FROM tenancy.isolation_config WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1 "
	    "    OR root::pg_catalog.oid OPERATOR(pg_catalog.=) $1 "
	    " ORDER BY relid OPERATOR(pg_catalog.=) root DESC, relid::pg_catalog.oid",
	    1, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the isolation record");
	int n = (int)SPI_processed;
	if (n == 0) {
		SPI_finish();
		ereport(NOTICE, (errmsg("table \"%s\" is not isolated, skipping", get_rel_name(relid))));
		return;
	}
	ConfigRow *rows = static_cast<ConfigRow *>(palloc0(sizeof(ConfigRow) * n));
	for (int i = 0; i < n; i++) {
		bool isnull;
		rows[i].relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		rows[i].root = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull));
		rows[i].column = GetText(i, 3);
		rows[i].prior_rls_enabled = GetBool(i, 4);
		rows[i].prior_rls_forced = GetBool(i, 5);
		rows[i].prior_default = GetText(i, 6);
		rows[i].prior_not_null = GetBool(i, 7);
		Datum idx = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 8, &isnull);
		rows[i].created_index = isnull ? InvalidOid : DatumGetObjectId(idx);
	}
	LockRelationOid(relid, AccessExclusiveLock);
	for (int i = 0; i < n; i++) {
		ConfigRow *row = &rows[i];
		if (SearchSysCacheExists1(RELOID, ObjectIdGetDatum(row->relid))) {
			LockRelationOid(row->relid, AccessExclusiveLock);
			const char *schema = get_namespace_name(get_rel_namespace(row->relid));
			const char *name = get_rel_name(row->relid);
			RenderedSql sql;
			Render(schema, name, row->column, false, &sql);
			for (int k = 0; k < sql.ndrops; k++)
				Exec(row->relid, sql.drops[k]);
			ExecAsSuperuser(sql.drop_truncate_guard);
			Exec(row->relid, RenderRowSecurity(schema, name, row->prior_rls_enabled, row->prior_rls_forced));
			Exec(row->relid, RenderDefault(schema, name, row->column, row->prior_default));
			if (row->relid == relid && row->relid == row->root && !row->prior_not_null)
				Exec(row->relid, sql.drop_not_null);
			if (OidIsValid(row->created_index) && SearchSysCacheExists1(RELOID, ObjectIdGetDatum(row->created_index))) {
				const char *index = quote_qualified_identifier(
				    get_namespace_name(get_rel_namespace(row->created_index)), get_rel_name(row->created_index));
				Exec(row->relid, psprintf("DROP INDEX %s", index));
			}
		}
		Datum del[1] = {ObjectIdGetDatum(row->relid)};
		rc = SPI_execute_with_args("DELETE FROM tenancy.isolation_config"
		                           " WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
		                           1, types, del, NULL, false, 0);
		if (rc != SPI_OK_DELETE)
			elog(ERROR, "could not delete the isolation record");
	}
	SPI_finish();
}

struct EraseOne {
	const char *sql;
	const pg_uuid_t *tenant;
	int64 deleted;
};

// One table's DELETE of a tenant's rows, as the table's owner inside that tenant's context: the table's own policy
// (forced on its owner too) admits exactly that tenant's rows, and the table's triggers run with its owner's rights,
// never the extension's.
void
EraseOneAsTableOwner(void *arg)
{
	EraseOne *one = static_cast<EraseOne *>(arg);
	SetTenantContextInNestLevel(one->tenant);
	Oid types[1] = {UUIDOID};
	Datum values[1] = {UUIDPGetDatum(one->tenant)};
	int rc = SPI_execute_with_args(one->sql, 1, types, values, NULL, false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not erase tenant rows: %s", SPI_result_code_string(rc));
	one->deleted = (int64)SPI_processed;
}

struct EraseArgs {
	pg_uuid_t *tenant;
	int64 deleted;
};

// Every isolated root (and any recorded table whose root is no longer isolated): one DELETE each reaches the
// partitions and children, run as that table's owner (EraseOneAsTableOwner).
void
EraseWork(void *arg)
{
	EraseArgs *a = static_cast<EraseArgs *>(arg);
	SPI_connect();
	int rc =
	    SPI_execute("SELECT c.relid::pg_catalog.oid, c.tenant_column::pg_catalog.text FROM tenancy.isolation_config c"
	                " WHERE c.relid OPERATOR(pg_catalog.=) c.root OR NOT EXISTS (SELECT 1 FROM "
	                "   tenancy.isolation_config r WHERE r.relid OPERATOR(pg_catalog.=) c.root)"
	                " ORDER BY 1",
	                true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the isolation records");
	int n = (int)SPI_processed;
	Oid *relids = static_cast<Oid *>(palloc(sizeof(Oid) * (n + 1)));
	char **columns = static_cast<char **>(palloc(sizeof(char *) * (n + 1)));
	for (int i = 0; i < n; i++) {
		bool isnull;
		relids[i] = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		columns[i] = GetText(i, 2);
	}
	for (int i = 0; i < n; i++) {
		/* a record can outlive its table when no sql_drop fired: a temporary table gone with its session */
		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relids[i])))
			continue;
		RenderedSql sql;
		Render(get_namespace_name(get_rel_namespace(relids[i])), get_rel_name(relids[i]), columns[i], false, &sql);
		EraseOne one = {sql.erase_rows, a->tenant, 0};
		RunAsTableOwner(relids[i], EraseOneAsTableOwner, &one);
		a->deleted += one.deleted;
	}
	SPI_finish();
}

void
RequireOwner(Oid relid)
{
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", relid)));
	if (!pg_class_ownercheck(relid, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(get_rel_relkind(relid)), get_rel_name(relid));
}

// The policies, default and erasure run as the table's owner (RunAsTableOwner) and call tenancy functions: an owner
// without the rights of tenancy_app or tenancy_admin would make enable_isolation, and later every erasure and
// import, fail half-way. Refused up front, with the fix in the hint.
void
RequireOwnerCanUseTenancy(Oid relid)
{
	HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", relid)));
	Oid owner = ((Form_pg_class)GETSTRUCT(tuple))->relowner;
	ReleaseSysCache(tuple);
	if (pg_namespace_aclcheck(get_namespace_oid("tenancy", false), owner, ACL_USAGE) != ACLCHECK_OK)
		ereport(ERROR,
		        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		         errmsg("owner of table \"%s\" cannot use schema tenancy", get_rel_name(relid)),
		         errdetail("Row-level security policies of an isolated table call tenancy's functions as the "
		                   "table's owner."),
		         errhint("Grant tenancy_app (or tenancy_admin) to role \"%s\".", GetUserNameFromId(owner, false))));
}

// Runs fn through a doorway (the extension owner; the superuser for erasing rows of every table) with the event
// trigger told to stay out of our own DDL.
void
RunIsolationWork(void (*fn)(void *), void *arg, void (*doorway)(void (*)(void *), void *) = RunAsExtensionOwner)
{
	bool saved = isolation_work_active;
	isolation_work_active = true;
	PG_TRY();
	{
		doorway(fn, arg);
	}
	PG_FINALLY();
	{
		isolation_work_active = saved;
	}
	PG_END_TRY();
}

} // namespace

void
IsolateRelation(Oid relid, const char *column, bool include_descendants, Oid root, bool manage_not_null)
{
	IsolateArgs args = {relid, column, include_descendants, root, manage_not_null};
	RunIsolationWork(IsolateWork, &args);
}

} // namespace tenancy::pg

using namespace tenancy;

// tenancy.enable_isolation(regclass, name, boolean): tenancy_admin members that own the table.
extern "C" Datum
tenancy_enable_isolation(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	const char *column = NameStr(*PG_GETARG_NAME(1));
	bool include_descendants = PG_GETARG_BOOL(2);
	pg::RequireAdmin("manage tenant isolation");
	pg::RequireOwner(relid);
	pg::RequireOwnerCanUseTenancy(relid);
	pg::IsolateRelation(relid, column, include_descendants, relid, true);
	PG_RETURN_VOID();
}

// tenancy.disable_isolation(regclass): undoes what enable_isolation recorded, for the table and, when it is the
// table enable_isolation was called on, every partition/child recorded under it.
extern "C" Datum
tenancy_disable_isolation(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	pg::RequireAdmin("manage tenant isolation");
	pg::RequireOwner(relid);
	pg::RunIsolationWork(pg::RestoreWork, &relid);
	PG_RETURN_VOID();
}

// tenancy._erase_tenant_rows(uuid) -> bigint: called by delete_tenant(erase => true).
extern "C" Datum
tenancy_erase_tenant_rows(PG_FUNCTION_ARGS)
{
	pg::RequireAdmin("erase tenant data");
	pg::EraseArgs args = {PG_GETARG_UUID_P(0), 0};
	pg::RunIsolationWork(pg::EraseWork, &args);
	PG_RETURN_INT64(args.deleted);
}
