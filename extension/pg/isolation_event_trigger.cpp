// extension/pg/isolation_event_trigger.cpp
// Event triggers: protect partitions/children created or attached later and tenancy.auto_isolate tables; forget
// dropped tables.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/isolation.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/privilege.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_isolation_ddl_end);
PG_FUNCTION_INFO_V1(tenancy_isolation_sql_drop);
}

namespace tenancy::pg {

namespace {

// tenancy.auto_isolate: a column name; tables created while it is set and having that uuid column are isolated.
char *auto_isolate_column = NULL;

void
InitAutoIsolate()
{
	DefineCustomStringVariable("tenancy.auto_isolate",
	                           "Tenant column that makes new tables (CREATE TABLE, also ... (LIKE ...)) isolated.",
	                           "Empty: only partitions and children of isolated tables are isolated automatically.",
	                           &auto_isolate_column, "", PGC_SUSET, 0, NULL, NULL, NULL);
}
TENANCY_REGISTER_INIT(InitAutoIsolate, 20);

// What to do with one table touched by a DDL command, decided from the catalogs as the extension owner.
struct Plan {
	Oid relid;
	bool isolate;
	char *column;
	bool include_descendants;
	Oid root;
	bool manage_not_null;
};

struct CollectArgs {
	int count;
	Plan *plans;
};

// The tables of this command that need protection: (a) a table with an isolated ancestor (pg_inherits, any depth)
// that is not yet recorded, or an isolated table with unrecorded partitions/children (ATTACH PARTITION names the
// parent); (b) a new top-level table with the tenancy.auto_isolate column.
void
CollectWork(void *arg)
{
	CollectArgs *a = static_cast<CollectArgs *>(arg);
	SPI_connect();
	// A record can outlive its table when no sql_drop fired (a temporary table gone with its session); a table
	// created by this command that reuses such an OID would otherwise pass for isolated already.
	int purged =
	    SPI_execute("DELETE FROM tenancy.isolation_config c"
	                " WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class k"
	                "                    WHERE k.oid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid)"
	                "    OR c.relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY (ARRAY("
	                "       SELECT d.objid FROM pg_catalog.pg_event_trigger_ddl_commands() d"
	                "        WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
	                "          AND d.objsubid OPERATOR(pg_catalog.=) 0"
	                "          AND d.command_tag OPERATOR(pg_catalog.=) ANY (ARRAY['CREATE TABLE', 'CREATE TABLE AS',"
	                "                                                          'SELECT INTO']::pg_catalog.text[])))",
	                false, 0);
	if (purged != SPI_OK_DELETE)
		elog(ERROR, "could not forget stale isolation records: %s", SPI_result_code_string(purged));
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(auto_isolate_column ? auto_isolate_column : "")};
	int rc = SPI_execute_with_args(
	    "WITH cmd AS ("
	    "  SELECT DISTINCT d.objid, d.command_tag FROM pg_catalog.pg_event_trigger_ddl_commands() d"
	    "   JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) d.objid"
	    "   WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
	    "     AND d.objsubid OPERATOR(pg_catalog.=) 0"
	    "     AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::pg_catalog.\"char\"[])"
	    "     AND d.schema_name OPERATOR(pg_catalog.<>)"
	    "         ALL (ARRAY['tenancy', 'pg_catalog', 'information_schema']::pg_catalog.text[])), "
	    "tree AS ("
	    "  SELECT c.objid, c.command_tag, t.relid AS member"
	    "    FROM cmd c, LATERAL pg_catalog.pg_partition_tree(c.objid) t WHERE t.relid IS NOT NULL"
	    "  UNION"
	    "  SELECT c.objid, c.command_tag, i.inhrelid FROM cmd c"
	    "    JOIN pg_catalog.pg_inherits i ON i.inhparent OPERATOR(pg_catalog.=) c.objid"
	    "  UNION SELECT c.objid, c.command_tag, c.objid FROM cmd c), "
	    "anc AS ("
	    "  SELECT m.member, (WITH RECURSIVE up(relid, depth) AS ("
	    "      SELECT m.member, 0 UNION ALL"
	    "      SELECT i.inhparent, up.depth OPERATOR(pg_catalog.+) 1 FROM pg_catalog.pg_inherits i"
	    "        JOIN up ON i.inhrelid OPERATOR(pg_catalog.=) up.relid WHERE up.depth OPERATOR(pg_catalog.<) 64)"
	    "    SELECT up.relid FROM up JOIN tenancy.isolation_config ic"
	    "      ON ic.relid::pg_catalog.oid OPERATOR(pg_catalog.=) up.relid"
	    "     WHERE up.depth OPERATOR(pg_catalog.>) 0 ORDER BY up.depth LIMIT 1) AS ancestor,"
	    "    m.command_tag FROM (SELECT DISTINCT member, command_tag FROM tree) m) "
	    "SELECT a.member, ic.tenant_column::pg_catalog.text, ic.include_descendants, ic.root::pg_catalog.oid, false "
	    "  FROM anc a JOIN tenancy.isolation_config ic ON ic.relid::pg_catalog.oid OPERATOR(pg_catalog.=) a.ancestor"
	    " WHERE NOT EXISTS (SELECT 1 FROM tenancy.isolation_config x"
	    "                    WHERE x.relid::pg_catalog.oid OPERATOR(pg_catalog.=) a.member) "
	    "UNION ALL "
	    "SELECT c.objid, $1, false, c.objid, true FROM cmd c"
	    " WHERE $1 OPERATOR(pg_catalog.<>) '' AND c.command_tag OPERATOR(pg_catalog.=)"
	    "       ANY (ARRAY['CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO']::pg_catalog.text[])"
	    "   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits i WHERE i.inhrelid OPERATOR(pg_catalog.=) c.objid)"
	    "   AND NOT EXISTS (SELECT 1 FROM tenancy.isolation_config x"
	    "                    WHERE x.relid::pg_catalog.oid OPERATOR(pg_catalog.=) c.objid)"
	    "   AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute t WHERE t.attrelid OPERATOR(pg_catalog.=) c.objid"
	    "                 AND t.attname OPERATOR(pg_catalog.=) $1::pg_catalog.name AND NOT t.attisdropped"
	    "                 AND t.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype) "
	    "ORDER BY 1",
	    1, types, values, NULL, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not inspect the DDL command: %s", SPI_result_code_string(rc));
	a->count = (int)SPI_processed;
	a->plans = static_cast<Plan *>(MemoryContextAllocZero(TopTransactionContext, sizeof(Plan) * (a->count + 1)));
	for (int i = 0; i < a->count; i++) {
		bool isnull;
		HeapTuple tuple = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		Plan *p = &a->plans[i];
		p->relid = DatumGetObjectId(SPI_getbinval(tuple, desc, 1, &isnull));
		p->column = MemoryContextStrdup(TopTransactionContext, SPI_getvalue(tuple, desc, 2));
		p->include_descendants = DatumGetBool(SPI_getbinval(tuple, desc, 3, &isnull));
		p->root = DatumGetObjectId(SPI_getbinval(tuple, desc, 4, &isnull));
		p->manage_not_null = DatumGetBool(SPI_getbinval(tuple, desc, 5, &isnull));
	}
	SPI_finish();
}

void
ForgetDroppedWork(void *)
{
	SPI_connect();
	int rc = SPI_execute("DELETE FROM tenancy.isolation_config WHERE relid::pg_catalog.oid OPERATOR(pg_catalog.=) ANY ("
	                     "  SELECT d.objid FROM pg_catalog.pg_event_trigger_dropped_objects() d"
	                     "   WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass"
	                     "     AND d.objsubid OPERATOR(pg_catalog.=) 0)",
	                     false, 0);
	if (rc != SPI_OK_DELETE)
		elog(ERROR, "could not forget dropped tables: %s", SPI_result_code_string(rc));
	SPI_finish();
}

} // namespace

} // namespace tenancy::pg

using namespace tenancy;

// ddl_command_end: CREATE TABLE (also PARTITION OF, INHERITS, LIKE), CREATE TABLE AS, ALTER TABLE (ATTACH
// PARTITION, INHERIT). Our own DDL (isolation_work_active) and CREATE EXTENSION scripts are skipped. A failure
// here fails the DDL command: a partition is never left reachable without its policy.
extern "C" Datum
tenancy_isolation_ddl_end(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("tenancy._isolation_ddl_end() must be called as an event trigger")));
	if (!creating_extension) /* a temporary table under a tenant context must be ON COMMIT DROP */
		pg::RefuseTenantTempTable(((EventTriggerData *)fcinfo->context)->parsetree);
	if (pg::isolation_work_active || creating_extension)
		PG_RETURN_VOID();
	pg::CollectArgs args = {0, NULL};
	pg::RunAsExtensionOwner(pg::CollectWork, &args);
	for (int i = 0; i < args.count; i++) {
		pg::Plan *p = &args.plans[i];
		pg::IsolateRelation(p->relid, p->column, p->include_descendants, p->root, p->manage_not_null);
	}
	PG_RETURN_VOID();
}

// sql_drop: a dropped table's record goes with it, so a later table reusing its OID is not taken for isolated.
extern "C" Datum
tenancy_isolation_sql_drop(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("tenancy._isolation_sql_drop() must be called as an event trigger")));
	if (creating_extension)
		PG_RETURN_VOID();
	pg::RunAsExtensionOwner(pg::ForgetDroppedWork, NULL);
	PG_RETURN_VOID();
}
