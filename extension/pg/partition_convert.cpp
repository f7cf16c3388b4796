// extension/pg/partition_convert.cpp
// partition_table: turns a plain table into a hash-partitioned one under the same name, keeping everything around it.
#include "tenancy/core/partition_plan.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/partition_ops.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_partition_table);
}

using namespace tenancy;
using namespace tenancy::pg::partition;

namespace {

// Uniqueness on a partitioned table is enforced per partition, so every primary key, unique constraint and unique
// index must contain the tenant column; exclusion constraints are not supported there at all.
void
RequireKeysWithTenant(Table *t)
{
	Oid types[2] = {OIDOID, INT2OID};
	Datum values[2] = {ObjectIdGetDatum(t->relid), Int16GetDatum(get_attnum(t->relid, t->column))};
	int rc = SPI_execute_with_args(
	    "SELECT pg_catalog.quote_ident(ic.relname), con.contype::pg_catalog.text, "
	    "CASE WHEN con.oid IS NOT NULL THEN "
	    "pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s', $1::pg_catalog.regclass, "
	    "con.conname, con.conname, pg_catalog.regexp_replace(pg_catalog.pg_get_constraintdef(con.oid), '\\(', "
	    "'(' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(a.attname) OPERATOR(pg_catalog.||) ', ')) END "
	    "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid "
	    "JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) $1 AND a.attnum OPERATOR(pg_catalog.=) $2 "
	    "LEFT JOIN pg_catalog.pg_constraint con ON con.conindid OPERATOR(pg_catalog.=) i.indexrelid "
	    "AND con.conrelid OPERATOR(pg_catalog.=) $1 "
	    "WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND (con.contype OPERATOR(pg_catalog.=) 'x' OR (i.indisunique "
	    "AND NOT $2 OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[]))) ORDER BY 1 LIMIT 1",
	    2, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the keys: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return;
	char *index = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	char *contype = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
	char *fix = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3);
	if (contype != NULL && contype[0] == 'x')
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("exclusion constraint %s of table %s cannot be kept", index, t->qualified),
		                errdetail("PostgreSQL 15 does not support exclusion constraints on partitioned tables.")));
	const char *what = contype == NULL ? "unique index" : (contype[0] == 'p' ? "primary key" : "unique constraint");
	ereport(
	    ERROR,
	    (errcode(TENANCY_ERRCODE_INVALID_INPUT),
	     errmsg("%s %s of table %s does not include the tenant column \"%s\"", what, index, t->qualified, t->column),
	     errdetail("A partitioned table can only enforce uniqueness on keys that contain its partition key."),
	     contype != NULL ? errhint("Add the tenant column to the key first: %s.", fix)
	                     : errhint("Re-create the index with the tenant column as its first column.")));
}

// Views and rules would follow the old table's OID into oblivion: the caller re-creates them after the change.
void
RequireNoDependentViews(Table *t)
{
	char *view = QueryOidText(
	    "SELECT r.ev_class::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_depend d "
	    "JOIN pg_catalog.pg_rewrite r ON r.oid OPERATOR(pg_catalog.=) d.objid "
	    "WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass "
	    "AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
	    "AND d.refobjid OPERATOR(pg_catalog.=) $1 AND r.ev_class OPERATOR(pg_catalog.<>) $1 ORDER BY 1 LIMIT 1",
	    t->relid);
	if (view != NULL)
		ereport(ERROR,
		        (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("table %s is used by view %s", t->qualified, view),
		         errhint("Drop the views that use the table, partition it, then re-create them.")));
	char *rule = QueryOidText("SELECT rulename FROM pg_catalog.pg_rewrite WHERE ev_class OPERATOR(pg_catalog.=) $1 "
	                          "ORDER BY 1 LIMIT 1",
	                          t->relid);
	if (rule != NULL)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("table %s has rule \"%s\"", t->qualified, rule),
		                errhint("Drop the rules of the table, partition it, then re-create them.")));
}

// Everything defined on the old table that LIKE does not copy, as statements that re-create it on the new one.
// Names are printed schema-qualified (search_path is pg_catalog here), so they resolve to the new table once it
// carries the old name.
struct Captured {
	List *keys;
	List *indexes;
	List *fks_out;
	List *triggers;
	List *policies;
	List *grants;
	List *comments;
};

Captured
Capture(Table *t)
{
	Captured c;
	c.keys = QueryList("SELECT pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::pg_catalog.regclass, "
	                   "conname, pg_catalog.pg_get_constraintdef(oid)) FROM pg_catalog.pg_constraint "
	                   "WHERE conrelid OPERATOR(pg_catalog.=) $1"
	                   " AND contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u']::pg_catalog.\"char\"[])"
	                   " ORDER BY contype, conname",
	                   t->relid);
	c.indexes =
	    QueryList("SELECT pg_catalog.pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i "
	              "WHERE i.indrelid OPERATOR(pg_catalog.=) $1 AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint c "
	              "WHERE c.conindid OPERATOR(pg_catalog.=) i.indexrelid AND c.conrelid OPERATOR(pg_catalog.=) $1) "
	              "ORDER BY i.indexrelid::pg_catalog.regclass::pg_catalog.text",
	              t->relid);
	c.fks_out = QueryList("SELECT pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', "
	                      "conrelid::pg_catalog.regclass, conname, pg_catalog.pg_get_constraintdef(oid)) "
	                      "FROM pg_catalog.pg_constraint WHERE conrelid OPERATOR(pg_catalog.=) $1 "
	                      "AND contype OPERATOR(pg_catalog.=) 'f' ORDER BY conname",
	                      t->relid);
	c.triggers = QueryList(
	    "SELECT s FROM (SELECT 1 AS k, tgname, pg_catalog.pg_get_triggerdef(oid) AS s FROM pg_catalog.pg_trigger "
	    "WHERE tgrelid OPERATOR(pg_catalog.=) $1 AND NOT tgisinternal UNION ALL "
	    "SELECT 2, tgname, pg_catalog.format('ALTER TABLE %s %s TRIGGER %I', tgrelid::pg_catalog.regclass, "
	    "CASE WHEN tgenabled OPERATOR(pg_catalog.=) 'D' THEN 'DISABLE' "
	    "WHEN tgenabled OPERATOR(pg_catalog.=) 'R' THEN 'ENABLE REPLICA' ELSE 'ENABLE ALWAYS' END, tgname) "
	    "FROM pg_catalog.pg_trigger WHERE tgrelid OPERATOR(pg_catalog.=) $1 AND NOT tgisinternal "
	    "AND tgenabled OPERATOR(pg_catalog.<>) 'O') x ORDER BY k, tgname",
	    t->relid);
	c.policies = QueryList(
	    "SELECT s FROM (SELECT 1 AS k, p.polname AS n, pg_catalog.format('CREATE POLICY %I ON %s AS %s FOR %s TO "
	    "%s%s%s', "
	    "p.polname, p.polrelid::pg_catalog.regclass, "
	    "CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END, "
	    "CASE WHEN p.polcmd OPERATOR(pg_catalog.=) 'r' THEN 'SELECT' "
	    "WHEN p.polcmd OPERATOR(pg_catalog.=) 'a' THEN 'INSERT' "
	    "WHEN p.polcmd OPERATOR(pg_catalog.=) 'w' THEN 'UPDATE' WHEN p.polcmd OPERATOR(pg_catalog.=) 'd' THEN 'DELETE' "
	    "ELSE 'ALL' END, "
	    "(SELECT pg_catalog.string_agg(CASE WHEN r OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' "
	    "ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r)) END, ', ') FROM pg_catalog.unnest(p.polroles) r), "
	    "' USING (' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(p.polqual, p.polrelid) OPERATOR(pg_catalog.||) ')', "
	    "' WITH CHECK (' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid) "
	    "OPERATOR(pg_catalog.||) ')') AS s FROM pg_catalog.pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) $1 "
	    "UNION ALL SELECT 2, '', pg_catalog.format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', "
	    "oid::pg_catalog.regclass) "
	    "FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1 AND relrowsecurity "
	    "UNION ALL SELECT 3, '', pg_catalog.format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', "
	    "oid::pg_catalog.regclass) "
	    "FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1 AND relforcerowsecurity) x ORDER BY k, n",
	    t->relid);
	c.grants =
	    QueryList("SELECT s FROM (SELECT pg_catalog.format('GRANT %s ON %s TO %s%s', a.privilege_type, "
	              "c.oid::pg_catalog.regclass, "
	              "CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' "
	              "ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, "
	              "CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) AS s "
	              "FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a "
	              "WHERE c.oid OPERATOR(pg_catalog.=) $1 AND a.grantee OPERATOR(pg_catalog.<>) c.relowner "
	              "UNION ALL SELECT pg_catalog.format('GRANT %s (%I) ON %s TO %s%s', a.privilege_type, att.attname, "
	              "att.attrelid::pg_catalog.regclass, CASE WHEN a.grantee OPERATOR(pg_catalog.=) 0 THEN 'PUBLIC' "
	              "ELSE pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) END, "
	              "CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END) "
	              "FROM pg_catalog.pg_attribute att, pg_catalog.aclexplode(att.attacl) a "
	              "WHERE att.attrelid OPERATOR(pg_catalog.=) $1 AND att.attnum OPERATOR(pg_catalog.>) 0"
	              " AND NOT att.attisdropped) x ORDER BY 1",
	              t->relid);
	// column and CHECK-constraint comments travel with LIKE INCLUDING COMMENTS; the rest is re-applied here
	c.comments = QueryList(
	    "SELECT pg_catalog.format('COMMENT ON TABLE %s IS %L', $1::pg_catalog.regclass, "
	    "pg_catalog.obj_description($1, 'pg_class')) WHERE pg_catalog.obj_description($1, 'pg_class') IS NOT NULL "
	    "UNION ALL SELECT pg_catalog.format('COMMENT ON INDEX %s IS %L', i.indexrelid::pg_catalog.regclass, "
	    "d.description) "
	    "FROM pg_catalog.pg_index i JOIN pg_catalog.pg_description d ON d.objoid OPERATOR(pg_catalog.=) i.indexrelid "
	    "AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
	    "AND d.objsubid OPERATOR(pg_catalog.=) 0 WHERE i.indrelid OPERATOR(pg_catalog.=) $1 "
	    "UNION ALL SELECT pg_catalog.format('COMMENT ON CONSTRAINT %I ON %s IS %L', c.conname, "
	    "c.conrelid::pg_catalog.regclass, d.description) FROM pg_catalog.pg_constraint c "
	    "JOIN pg_catalog.pg_description d ON d.objoid OPERATOR(pg_catalog.=) c.oid "
	    "AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass "
	    "WHERE c.conrelid OPERATOR(pg_catalog.=) $1"
	    " AND c.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u', 'f']::pg_catalog.\"char\"[]) "
	    "UNION ALL SELECT pg_catalog.format('COMMENT ON TRIGGER %I ON %s IS %L', g.tgname, "
	    "g.tgrelid::pg_catalog.regclass, d.description) FROM pg_catalog.pg_trigger g "
	    "JOIN pg_catalog.pg_description d ON d.objoid OPERATOR(pg_catalog.=) g.oid "
	    "AND d.classoid OPERATOR(pg_catalog.=) 'pg_catalog.pg_trigger'::pg_catalog.regclass "
	    "WHERE g.tgrelid OPERATOR(pg_catalog.=) $1 AND NOT g.tgisinternal ORDER BY 1",
	    t->relid);
	return c;
}

} // namespace

// partition_table(tbl regclass, partitions int) -> bigint: one transaction that holds ACCESS EXCLUSIVE on the
// table from start to end (no lock upgrade, so concurrent sessions wait and never deadlock); returns the rows moved.
extern "C" Datum
tenancy_partition_table(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	int count = PG_GETARG_INT32(1);
	StringInfoData sql;
	pg::CallCore([&] { core::ValidatePartitionCount(count); });

	SPI_connect();
	initStringInfo(&sql);
	Table *t = OpenTable(relid, Expect::kPlainTable, "manage partitions");
	RequireKeysWithTenant(t);
	RequireNoDependentViews(t);
	char *before = LayoutJson(t);
	SuspendIsolation(t); // the table is locked: nobody sees it unprotected, and ReapplyIsolation ends the call
	Captured cap = Capture(t);

	// 1. The new partitioned table, under a temporary name, with the columns, defaults, CHECK and NOT NULL
	// constraints, generated and identity columns, storage, column comments and statistics of the old one.
	char tmp[NAMEDATALEN];
	snprintf(tmp, sizeof(tmp), "tenancy_new_%u", relid);
	RequireFreeName(t, tmp);
	char *tmp_q = QualifiedInSchema(t, tmp);
	appendStringInfo(&sql,
	                 "CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED "
	                 "INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS INCLUDING COMPRESSION "
	                 "INCLUDING STATISTICS) PARTITION BY HASH (%s)",
	                 tmp_q, t->qualified, quote_identifier(t->column));
	RunSql(sql.data);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s OWNER TO %s", tmp_q, t->owner_quoted);
	RunSql(sql.data);
	for (int r = 0; r < count; r++)
		CreatePart(t, tmp_q, PartitionNameOf(t, r), count, r, NIL);

	// 2. The rows, in one pass routed by the hash; no index or trigger exists yet on the new table, so nothing
	// but CHECK constraints and generated columns run per row. row_security = off turns a policy that would
	// filter the copy into an error instead of a silent loss.
	char *columns = CopyColumnList(relid);
	RunSql("SELECT pg_catalog.set_config('row_security', 'off', true)");
	resetStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s NO FORCE ROW LEVEL SECURITY", t->qualified);
	RunSql(sql.data);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM ONLY %s", tmp_q, columns,
	                 columns, t->qualified);
	uint64 moved = RunSql(sql.data);
	RunSql("SELECT pg_catalog.set_config('row_security', 'on', true)");

	// 3. Sequences: identity sequences continue where the old ones stopped; serial sequences change owner so
	// dropping the old table keeps them.
	Oid types[2] = {OIDOID, TEXTOID};
	Datum values[2] = {ObjectIdGetDatum(relid), CStringGetTextDatum(tmp_q)};
	int rc = SPI_execute_with_args(
	    "SELECT pg_catalog.format('SELECT pg_catalog.setval(%L, s.last_value, s.is_called) FROM %s s', "
	    "pg_catalog.pg_get_serial_sequence($2, a.attname), pg_catalog.pg_get_serial_sequence("
	    "$1::pg_catalog.regclass::pg_catalog.text, a.attname)), "
	    "pg_catalog.format('ALTER SEQUENCE %s RENAME TO %I', pg_catalog.pg_get_serial_sequence($2, a.attname), "
	    "(SELECT relname FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) "
	    "pg_catalog.pg_get_serial_sequence($1::pg_catalog.regclass::pg_catalog.text, a.attname)::pg_catalog.regclass)) "
	    "FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) $1 "
	    "AND a.attidentity OPERATOR(pg_catalog.<>) '' AND NOT a.attisdropped ORDER BY a.attnum",
	    2, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read identity columns: %s", SPI_result_code_string(rc));
	List *identity_setvals = NIL;
	List *identity_renames = NIL;
	for (uint64 i = 0; i < SPI_processed; i++) {
		identity_setvals = lappend(identity_setvals, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		identity_renames = lappend(identity_renames, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
	}
	RunStatements(identity_setvals);
	rc = SPI_execute_with_args(
	    "SELECT pg_catalog.format('ALTER SEQUENCE %s OWNED BY %s.%I', d.objid::pg_catalog.regclass, $2, a.attname) "
	    "FROM pg_catalog.pg_depend d JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.refobjid "
	    "AND a.attnum OPERATOR(pg_catalog.=) d.refobjsubid "
	    "WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
	    "AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
	    "AND d.refobjid OPERATOR(pg_catalog.=) $1 AND d.deptype OPERATOR(pg_catalog.=) 'a' "
	    "AND EXISTS (SELECT 1 FROM pg_catalog.pg_class s WHERE s.oid OPERATOR(pg_catalog.=) d.objid "
	    "AND s.relkind OPERATOR(pg_catalog.=) 'S') ORDER BY 1",
	    2, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read owned sequences: %s", SPI_result_code_string(rc));
	List *owned = NIL;
	for (uint64 i = 0; i < SPI_processed; i++)
		owned = lappend(owned, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
	RunStatements(owned);

	// 4. The swap: foreign keys of other tables let go, the old table goes, the new one takes its name.
	List *fks_in = DropIncomingForeignKeys(relid, false); // a self-reference is in cap.fks_out already
	resetStringInfo(&sql);
	appendStringInfo(&sql, "DROP TABLE %s", t->qualified);
	RunSql(sql.data);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s RENAME TO %s", tmp_q, quote_identifier(t->name));
	RunSql(sql.data);
	t->relid = get_relname_relid(t->name, get_namespace_oid(t->schema, false));
	RunStatements(identity_renames);

	// 5. Keys, indexes (built once per partition, after the rows), foreign keys both ways, triggers, policies,
	// grants and comments, in the order their dependencies need.
	RunStatements(cap.keys);
	RunStatements(cap.indexes);
	RunStatements(cap.fks_out);
	RunStatements(fks_in);
	RunStatements(cap.triggers);
	RunStatements(cap.policies);
	RunStatements(cap.grants);
	RunStatements(cap.comments);
	ReapplyIsolation(t);
	Audit("table_partitioned", NULL, before, LayoutJson(t));
	SPI_finish();
	PG_RETURN_INT64(static_cast<int64>(moved));
}
