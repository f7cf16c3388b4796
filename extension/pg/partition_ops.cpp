// extension/pg/partition_ops.cpp
// PG-regime helpers shared by the partition functions: checks and locking, layout, SPI, and the staging rebuild.
#include "tenancy/core/partition_plan.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/partition_ops.hpp"
#include "tenancy/pg/privilege.hpp"

#include <cstring>
#include <string>

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "catalog/namespace.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "commands/defrem.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_partitioned_table.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
}

namespace tenancy::pg::partition {

namespace {

// Copies a core-made name into palloc'd memory inside the doorway, so the std::string dies before any ereport.
char *
PallocString(const std::string &s)
{
	char *out = static_cast<char *>(PallocOrThrow(s.size() + 1));
	std::memcpy(out, s.c_str(), s.size() + 1);
	return out;
}

// Looks up the isolation registration of relid through the isolation feature's view.
void
LookupIsolation(Table *t)
{
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(t->relid)};
	t->isolated = false;
	t->include_descendants = false;
	t->column = pstrdup("tenant_id");
	int rc = SPI_execute_with_args("SELECT tenant_column::pg_catalog.text, include_descendants "
	                               "FROM tenancy.isolated_tables WHERE table_name OPERATOR(pg_catalog.=) $1",
	                               1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read tenancy.isolated_tables: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		return;
	bool isnull;
	t->isolated = true;
	t->column = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	t->include_descendants = !isnull && DatumGetBool(d);
}

// Refuses tables of the extension itself and of the system schemas.
void
RequireUserSchema(Table *t)
{
	if (strcmp(t->schema, "tenancy") == 0 || strcmp(t->schema, "pg_catalog") == 0 ||
	    strcmp(t->schema, "information_schema") == 0 || strncmp(t->schema, "pg_toast", 8) == 0 ||
	    isAnyTempNamespace(get_rel_namespace(t->relid)))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("cannot partition table \"%s\"", t->qualified),
		                errdetail("Tables of schema \"%s\" are not application tables.", t->schema)));
}

int
ComparePartsByRemainder(const ListCell *a, const ListCell *b)
{
	const Part *pa = static_cast<const Part *>(lfirst(a));
	const Part *pb = static_cast<const Part *>(lfirst(b));
	if (pa->modulus != pb->modulus)
		return pa->modulus < pb->modulus ? -1 : 1;
	return pa->remainder < pb->remainder ? -1 : (pa->remainder > pb->remainder ? 1 : 0);
}

} // namespace

char *
CopyColumnList(Oid relid)
{
	char *cols = QueryOidText(
	    "SELECT pg_catalog.string_agg(pg_catalog.quote_ident(attname), ', ' ORDER BY attnum) "
	    "FROM pg_catalog.pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) $1 AND attnum OPERATOR(pg_catalog.>) 0 "
	    "AND NOT attisdropped AND attgenerated OPERATOR(pg_catalog.=) ''",
	    relid);
	if (cols == NULL)
		elog(ERROR, "relation %u has no columns to copy", relid);
	return cols;
}

char *
PartitionNameOf(Table *t, int remainder)
{
	return CallCore([&] { return PallocString(core::PartitionName(t->name, remainder)); });
}

uint64
RunSql(const char *sql)
{
	int rc = SPI_execute(sql, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute failed (%s) for: %s", SPI_result_code_string(rc), sql);
	return SPI_processed;
}

char *
QueryOidText(const char *sql, Oid arg)
{
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(arg)};
	int rc = SPI_execute_with_args(sql, 1, types, values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "SPI_execute_with_args failed (%s) for: %s", SPI_result_code_string(rc), sql);
	if (SPI_processed == 0)
		return NULL;
	return SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
}

List *
QueryList(const char *sql, Oid arg)
{
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(arg)};
	int rc = SPI_execute_with_args(sql, 1, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed (%s) for: %s", SPI_result_code_string(rc), sql);
	List *out = NIL;
	for (uint64 i = 0; i < SPI_processed; i++) {
		char *v = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1);
		if (v != NULL)
			out = lappend(out, v);
	}
	return out;
}

char *
QualifiedInSchema(Table *t, const char *name)
{
	return quote_qualified_identifier(t->schema, name);
}

void
RequireFreeName(Table *t, const char *name)
{
	if (OidIsValid(get_relname_relid(name, get_namespace_oid(t->schema, false))))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("relation \"%s\" already exists in schema \"%s\"", name, t->schema),
		                errdetail("Partitions of \"%s\" are named <table>_p<NNN>.", t->name),
		                errhint("Rename or drop \"%s\" first.", name)));
}

Table *
OpenTable(Oid relid, Expect expect, const char *operation)
{
	RequireAdmin(operation);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("relation with OID %u does not exist", relid)));
	// Lock first, then read the catalog: the strongest lock up front means no upgrade later, so an application
	// transaction that read the table before us can never deadlock with us; it only waits.
	LockRelationOid(relid, AccessExclusiveLock);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("relation with OID %u does not exist", relid)));

	HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Form_pg_class cls = (Form_pg_class)GETSTRUCT(tuple);
	Table *t = static_cast<Table *>(palloc0(sizeof(Table)));
	t->relid = relid;
	t->owner = cls->relowner;
	t->relkind = cls->relkind;
	t->name = pstrdup(NameStr(cls->relname));
	t->schema = get_namespace_name(cls->relnamespace);
	bool is_partition = cls->relispartition;
	char persistence = cls->relpersistence;
	ReleaseSysCache(tuple);
	t->qualified = quote_qualified_identifier(t->schema, t->name);
	t->owner_quoted = pstrdup(quote_identifier(GetUserNameFromId(t->owner, false)));

	if (!pg_class_ownercheck(relid, GetUserId()))
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("must be owner of table %s", t->qualified),
		                errhint("Run it as the table's owner or a member of role %s.", t->owner_quoted)));
	RequireUserSchema(t);
	LookupIsolation(t);
	// Our staging tables must not be isolated on creation (tenancy.auto_isolate): the row copy would then be
	// filtered by a policy. Local to this call: the function's SET clause restores it on exit.
	(void)set_config_option("tenancy.auto_isolate", "", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0, false);

	if (expect == Expect::kPlainTable) {
		if (t->relkind == RELKIND_PARTITIONED_TABLE)
			ereport(ERROR,
			        (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("table %s is already partitioned", t->qualified),
			         errhint("Use tenancy.repartition() to change its partition count.")));
		if (t->relkind != RELKIND_RELATION)
			ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("%s is not a table", t->qualified)));
		if (is_partition || has_superclass(relid) || has_subclass(relid))
			ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
			                errmsg("table %s takes part in inheritance or partitioning", t->qualified),
			                errdetail("Only a stand-alone table can be turned into a partitioned one.")));
		if (persistence != RELPERSISTENCE_PERMANENT)
			ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
			                errmsg("table %s is not a permanent logged table", t->qualified),
			                errdetail("Partitioned tables cannot be temporary or unlogged in PostgreSQL 15.")));
	} else {
		if (t->relkind != RELKIND_PARTITIONED_TABLE || is_partition)
			ereport(
			    ERROR,
			    (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("table %s is not partitioned by hash", t->qualified),
			     errhint(t->relkind == RELKIND_RELATION ? "Use tenancy.partition_table() to partition a plain table."
			                                            : "Declare the table with PARTITION BY HASH (tenant_id).")));
	}

	AttrNumber attnum = get_attnum(relid, t->column);
	if (attnum == InvalidAttrNumber)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("table %s has no tenant column \"%s\"", t->qualified, t->column),
		                errhint("Partitioning is by the tenant column; add a uuid column \"%s\" or enable isolation "
		                        "with the column to use.",
		                        t->column)));
	if (get_atttype(relid, attnum) != UUIDOID)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("tenant column \"%s\" of table %s must be of type uuid", t->column, t->qualified)));

	if (expect == Expect::kHashPartitioned) {
		HeapTuple pt = SearchSysCache1(PARTRELID, ObjectIdGetDatum(relid));
		if (!HeapTupleIsValid(pt))
			elog(ERROR, "cache lookup failed for partition key of %u", relid);
		Form_pg_partitioned_table key = (Form_pg_partitioned_table)GETSTRUCT(pt);
		char strategy = key->partstrat;
		int natts = key->partnatts;
		AttrNumber keyatt = key->partattrs.values[0];
		Oid opclass = InvalidOid;
		bool isnull;
		Datum classes = SysCacheGetAttr(PARTRELID, pt, Anum_pg_partitioned_table_partclass, &isnull);
		if (!isnull)
			opclass = ((oidvector *)DatumGetPointer(classes))->values[0];
		ReleaseSysCache(pt);
		if (strategy != PARTITION_STRATEGY_HASH)
			ereport(ERROR,
			        (errcode(TENANCY_ERRCODE_INVALID_INPUT),
			         errmsg("table %s is not partitioned by hash", t->qualified),
			         errdetail("Its partition strategy is %s.", strategy == PARTITION_STRATEGY_LIST ? "LIST" : "RANGE"),
			         errhint("Declare the table with PARTITION BY HASH (%s).", quote_identifier(t->column))));
		if (natts != 1 || keyatt != attnum)
			ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
			                errmsg("table %s is not partitioned by its tenant column \"%s\"", t->qualified, t->column),
			                errhint("Declare the table with PARTITION BY HASH (%s).", quote_identifier(t->column))));
		// a user-defined hash opclass would run its owner's code inside our row moves: only the built-in one
		if (opclass != GetDefaultOpClass(UUIDOID, HASH_AM_OID))
			ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
			                errmsg("table %s uses a non-default hash operator class", t->qualified)));
	}
	return t;
}

List *
LoadParts(Table *t)
{
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(t->relid)};
	int rc = SPI_execute_with_args(
	    "SELECT c.oid, c.relname::pg_catalog.text, pg_catalog.pg_get_expr(c.relpartbound, c.oid), "
	    "c.relkind::pg_catalog.text "
	    "FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid "
	    "WHERE i.inhparent OPERATOR(pg_catalog.=) $1",
	    1, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not list partitions: %s", SPI_result_code_string(rc));
	SPITupleTable *tab = SPI_tuptable;
	uint64 n = SPI_processed;
	List *parts = NIL;
	for (uint64 i = 0; i < n; i++) {
		Part *p = static_cast<Part *>(palloc0(sizeof(Part)));
		bool isnull;
		p->relid = DatumGetObjectId(SPI_getbinval(tab->vals[i], tab->tupdesc, 1, &isnull));
		p->name = SPI_getvalue(tab->vals[i], tab->tupdesc, 2);
		const char *bound = SPI_getvalue(tab->vals[i], tab->tupdesc, 3);
		char *relkind = SPI_getvalue(tab->vals[i], tab->tupdesc, 4);
		core::HashBound b = CallCore([&] { return core::ParseHashBound(bound ? bound : ""); });
		p->modulus = b.modulus;
		p->remainder = b.remainder;
		p->tenants = NIL;
		p->subpartitioned = relkind[0] == RELKIND_PARTITIONED_TABLE;
		parts = lappend(parts, p);
	}
	ListCell *lc;
	foreach (lc, parts) {
		Part *p = static_cast<Part *>(lfirst(lc));
		if (!p->subpartitioned)
			continue; // its isolated tenants are read after the partition list is consumed
		// only the layout isolate_tenant makes can be rebuilt: leaves FOR VALUES IN ('<uuid>') and one DEFAULT
		StringInfoData check;
		initStringInfo(&check);
		appendStringInfo(&check,
		                 "SELECT c.oid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_inherits i "
		                 "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid "
		                 "WHERE i.inhparent OPERATOR(pg_catalog.=) $1 AND (c.relkind OPERATOR(pg_catalog.<>) 'r' "
		                 "OR NOT pg_catalog.pg_get_expr(c.relpartbound, c.oid) OPERATOR(pg_catalog.~) "
		                 "'^(DEFAULT|FOR VALUES IN \\(''[0-9a-f-]{36}''\\))$' "
		                 "OR pg_catalog.pg_get_partkeydef($1) OPERATOR(pg_catalog.<>) "
		                 "pg_catalog.format('LIST (%%I)', %s::pg_catalog.text)) LIMIT 1",
		                 quote_literal_cstr(t->column));
		char *foreign_leaf = QueryOidText(check.data, p->relid);
		if (foreign_leaf != NULL)
			ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
			                errmsg("partition \"%s\" of table %s is sub-partitioned in a way tenancy did not make",
			                       p->name, t->qualified),
			                errdetail("Its leaf %s is not a tenant leaf FOR VALUES IN ('<tenant id>') or the default "
			                          "leaf of a LIST partitioning on the tenant column.",
			                          foreign_leaf)));
		// the default leaf has no tenant: QueryList skips its NULL
		p->tenants = QueryList("SELECT (pg_catalog.regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), "
		                       "'^FOR VALUES IN \\(''([0-9a-f-]{36})''\\)$'))[1] AS tenant "
		                       "FROM pg_catalog.pg_inherits i "
		                       "JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid "
		                       "WHERE i.inhparent OPERATOR(pg_catalog.=) $1 ORDER BY 1",
		                       p->relid);
	}
	list_sort(parts, ComparePartsByRemainder);
	return parts;
}

void
CreatePart(Table *t, const char *parent_qualified, const char *name, int modulus, int remainder, List *tenants)
{
	StringInfoData sql;
	char *qualified = QualifiedInSchema(t, name);
	RequireFreeName(t, name);
	initStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s PARTITION OF %s FOR VALUES WITH (MODULUS %d, REMAINDER %d)", qualified,
	                 parent_qualified, modulus, remainder);
	if (tenants != NIL)
		appendStringInfo(&sql, " PARTITION BY LIST (%s)", quote_identifier(t->column));
	RunSql(sql.data);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s OWNER TO %s", qualified, t->owner_quoted);
	RunSql(sql.data);
	if (tenants == NIL)
		return;

	ListCell *lc;
	foreach (lc, tenants) {
		const char *tenant = static_cast<const char *>(lfirst(lc));
		char *leaf = CallCore([&] { return PallocString(core::TenantLeafName(name, tenant)); });
		RequireFreeName(t, leaf);
		resetStringInfo(&sql);
		appendStringInfo(&sql, "CREATE TABLE %s PARTITION OF %s FOR VALUES IN (%s)", QualifiedInSchema(t, leaf),
		                 qualified, quote_literal_cstr(tenant));
		RunSql(sql.data);
		resetStringInfo(&sql);
		appendStringInfo(&sql, "ALTER TABLE %s OWNER TO %s", QualifiedInSchema(t, leaf), t->owner_quoted);
		RunSql(sql.data);
	}
	char *def = CallCore([&] { return PallocString(core::DefaultLeafName(name)); });
	RequireFreeName(t, def);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "CREATE TABLE %s PARTITION OF %s DEFAULT", QualifiedInSchema(t, def), qualified);
	RunSql(sql.data);
	resetStringInfo(&sql);
	appendStringInfo(&sql, "ALTER TABLE %s OWNER TO %s", QualifiedInSchema(t, def), t->owner_quoted);
	RunSql(sql.data);
}

uint64
ReplaceParts(Table *t, List *olds, List *news)
{
	StringInfoData sql;
	char stage[NAMEDATALEN];
	ListCell *lc;
	int i = 0;
	uint64 moved = 0;

	initStringInfo(&sql);
	snprintf(stage, sizeof(stage), "tenancy_stage_%u", t->relid);
	RequireFreeName(t, stage);
	char *stage_q = QualifiedInSchema(t, stage);
	char *columns = CopyColumnList(t->relid);

	// 1. The old partitions and their leaves step aside, freeing their names for the new ones.
	List *old_names = NIL;
	foreach (lc, olds) {
		Part *p = static_cast<Part *>(lfirst(lc));
		char tmp[NAMEDATALEN];
		List *leaves =
		    QueryList("SELECT i.inhrelid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_inherits i "
		              "WHERE i.inhparent OPERATOR(pg_catalog.=) $1",
		              p->relid);
		int j = 0;
		ListCell *lc2;
		foreach (lc2, leaves) {
			snprintf(tmp, sizeof(tmp), "tenancy_old_%u_%d_%d", t->relid, i, j++);
			resetStringInfo(&sql);
			appendStringInfo(&sql, "ALTER TABLE %s RENAME TO %s", static_cast<char *>(lfirst(lc2)),
			                 quote_identifier(tmp));
			RunSql(sql.data);
		}
		snprintf(tmp, sizeof(tmp), "tenancy_old_%u_%d", t->relid, i++);
		RequireFreeName(t, tmp);
		resetStringInfo(&sql);
		appendStringInfo(&sql, "ALTER TABLE %s RENAME TO %s", QualifiedInSchema(t, p->name), quote_identifier(tmp));
		RunSql(sql.data);
		old_names = lappend(old_names, QualifiedInSchema(t, tmp));
	}

	// 2. A staging table holds the new partitions while they fill: it has no triggers (no user code runs for
	// moved rows) and no indexes (ATTACH builds them in bulk). Each new partition carries a CHECK equal to the
	// partition constraint ATTACH will need, so ATTACH proves it from the catalog instead of scanning the rows.
	resetStringInfo(&sql);
	appendStringInfo(&sql,
	                 "CREATE TABLE %s (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING GENERATED) "
	                 "PARTITION BY HASH (%s)",
	                 stage_q, t->qualified, quote_identifier(t->column));
	RunSql(sql.data);
	List *new_names = NIL;
	foreach (lc, news) {
		NewPart *np = static_cast<NewPart *>(lfirst(lc));
		char *name = PartitionNameOf(t, np->remainder);
		CreatePart(t, stage_q, name, np->modulus, np->remainder, np->tenants);
		resetStringInfo(&sql);
		appendStringInfo(&sql,
		                 "ALTER TABLE %s ADD CONSTRAINT tenancy_hash_bound CHECK "
		                 "(pg_catalog.satisfies_hash_partition('%u'::pg_catalog.oid, %d, %d, %s))",
		                 QualifiedInSchema(t, name), t->relid, np->modulus, np->remainder, quote_identifier(t->column));
		RunSql(sql.data);
		new_names = lappend(new_names, QualifiedInSchema(t, name));
	}

	// 3. Every row moves once. row_security = off turns any policy that would still filter the copy into an error
	// instead of a silent loss; NO FORCE lets the owner read the old partitions, which are dropped next.
	RunSql("SELECT pg_catalog.set_config('row_security', 'off', true)");
	foreach (lc, old_names) {
		const char *old = static_cast<const char *>(lfirst(lc));
		resetStringInfo(&sql);
		appendStringInfo(&sql, "ALTER TABLE %s NO FORCE ROW LEVEL SECURITY", old);
		RunSql(sql.data);
		resetStringInfo(&sql);
		appendStringInfo(&sql, "INSERT INTO %s (%s) SELECT %s FROM %s", stage_q, columns, columns, old);
		moved += RunSql(sql.data);
	}
	RunSql("SELECT pg_catalog.set_config('row_security', 'on', true)");

	// 4. Old partitions go, new ones move from the staging table to the real one.
	foreach (lc, old_names) {
		resetStringInfo(&sql);
		appendStringInfo(&sql, "DROP TABLE %s", static_cast<char *>(lfirst(lc)));
		RunSql(sql.data);
	}
	foreach (lc, new_names) {
		resetStringInfo(&sql);
		appendStringInfo(&sql, "ALTER TABLE %s DETACH PARTITION %s", stage_q, static_cast<char *>(lfirst(lc)));
		RunSql(sql.data);
	}
	resetStringInfo(&sql);
	appendStringInfo(&sql, "DROP TABLE %s", stage_q);
	RunSql(sql.data);
	ListCell *lcn;
	forboth(lc, news, lcn, new_names)
	{
		NewPart *np = static_cast<NewPart *>(lfirst(lc));
		const char *name = static_cast<const char *>(lfirst(lcn));
		resetStringInfo(&sql);
		appendStringInfo(&sql, "ALTER TABLE %s ATTACH PARTITION %s FOR VALUES WITH (MODULUS %d, REMAINDER %d)",
		                 t->qualified, name, np->modulus, np->remainder);
		RunSql(sql.data);
		resetStringInfo(&sql);
		appendStringInfo(&sql, "ALTER TABLE %s DROP CONSTRAINT tenancy_hash_bound", name);
		RunSql(sql.data);
	}
	return moved;
}

List *
DropIncomingForeignKeys(Oid relid, bool include_self)
{
	Oid types[2] = {OIDOID, BOOLOID};
	Datum values[2] = {ObjectIdGetDatum(relid), BoolGetDatum(include_self)};
	int rc = SPI_execute_with_args(
	    "SELECT pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I', conrelid::pg_catalog.regclass, conname), "
	    "pg_catalog.format('ALTER TABLE %s ADD CONSTRAINT %I %s', conrelid::pg_catalog.regclass, conname, "
	    "pg_catalog.pg_get_constraintdef(oid)), "
	    "pg_catalog.format('COMMENT ON CONSTRAINT %I ON %s IS %L', conname, conrelid::pg_catalog.regclass, "
	    "pg_catalog.obj_description(oid, 'pg_constraint')) "
	    "FROM pg_catalog.pg_constraint WHERE contype OPERATOR(pg_catalog.=) 'f' "
	    "AND confrelid OPERATOR(pg_catalog.=) $1 AND conparentid OPERATOR(pg_catalog.=) 0 "
	    "AND ($2 OR conrelid OPERATOR(pg_catalog.<>) $1) ORDER BY conname",
	    2, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not list foreign keys: %s", SPI_result_code_string(rc));
	List *drops = NIL;
	List *restores = NIL;
	for (uint64 i = 0; i < SPI_processed; i++) {
		drops = lappend(drops, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1));
		restores = lappend(restores, SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2));
		char *comment = SPI_getvalue(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3);
		if (comment != NULL && strstr(comment, " IS NULL") == NULL)
			restores = lappend(restores, comment);
	}
	RunStatements(drops);
	return restores;
}

void
RunStatements(List *statements)
{
	ListCell *lc;
	foreach (lc, statements)
		RunSql(static_cast<char *>(lfirst(lc)));
}

void
SuspendIsolation(Table *t)
{
	if (!t->isolated)
		return;
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(t->relid)};
	int rc = SPI_execute_with_args("SELECT tenancy.disable_isolation($1::pg_catalog.regclass)", 1, types, values, NULL,
	                               false, 0);
	if (rc < 0)
		elog(ERROR, "could not suspend isolation: %s", SPI_result_code_string(rc));
}

void
ReapplyIsolation(Table *t)
{
	if (!t->isolated)
		return;
	Oid types[3] = {OIDOID, TEXTOID, BOOLOID};
	Datum values[3] = {ObjectIdGetDatum(t->relid), CStringGetTextDatum(t->column),
	                   BoolGetDatum(t->include_descendants)};
	int rc = SPI_execute_with_args("SELECT tenancy.enable_isolation($1::pg_catalog.regclass, $2::pg_catalog.name, $3)",
	                               3, types, values, NULL, false, 0);
	if (rc < 0)
		elog(ERROR, "could not re-apply isolation: %s", SPI_result_code_string(rc));
}

void
Audit(const char *action, const char *tenant, const char *before, const char *after)
{
	Oid types[4] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID};
	Datum values[4] = {CStringGetTextDatum(action), tenant ? CStringGetTextDatum(tenant) : (Datum)0,
	                   CStringGetTextDatum(before), CStringGetTextDatum(after)};
	char nulls[4] = {' ', tenant ? ' ' : 'n', ' ', ' '};
	int rc = SPI_execute_with_args("SELECT tenancy._audit($1, $2::pg_catalog.uuid, $3::pg_catalog.jsonb, "
	                               "$4::pg_catalog.jsonb)",
	                               4, types, values, nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "could not write the audit event: %s", SPI_result_code_string(rc));
}

bool
HashContains(Oid relid, int modulus, int remainder, const char *tenant)
{
	Oid types[4] = {OIDOID, INT4OID, INT4OID, TEXTOID};
	Datum values[4] = {ObjectIdGetDatum(relid), Int32GetDatum(modulus), Int32GetDatum(remainder),
	                   CStringGetTextDatum(tenant)};
	int rc = SPI_execute_with_args("SELECT pg_catalog.satisfies_hash_partition($1, $2, $3, $4::pg_catalog.uuid)", 4,
	                               types, values, NULL, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not compute the hash partition of a tenant");
	bool isnull;
	Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return !isnull && DatumGetBool(d);
}

char *
LayoutJson(Table *t)
{
	return QueryOidText(
	    "SELECT pg_catalog.jsonb_build_object('table', $1::pg_catalog.regclass::pg_catalog.text, "
	    "'partitions', (SELECT pg_catalog.count(*) FROM pg_catalog.pg_inherits WHERE inhparent OPERATOR(pg_catalog.=) "
	    "$1), "
	    "'isolated_partitions', (SELECT pg_catalog.count(*) FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c "
	    "ON c.oid OPERATOR(pg_catalog.=) i.inhrelid WHERE i.inhparent OPERATOR(pg_catalog.=) $1 "
	    "AND c.relkind OPERATOR(pg_catalog.=) 'p'))::pg_catalog.text",
	    t->relid);
}

} // namespace tenancy::pg::partition
