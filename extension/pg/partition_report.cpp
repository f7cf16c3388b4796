// extension/pg/partition_report.cpp
// Read-only views of a partition layout: partitions(tbl) with exact counts, and tenant_partition(tbl, tenant).
#include "tenancy/core/tenant_advice.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/partition_ops.hpp"
#include "tenancy/pg/plain_read.hpp"
#include "tenancy/pg/privilege.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_partitions);
PG_FUNCTION_INFO_V1(tenancy_tenant_partition);
PG_FUNCTION_INFO_V1(tenancy_tenant_advice);
}

using namespace tenancy;
using namespace tenancy::pg::partition;

namespace {

// Checks shared by the report functions: tenancy_admin, the relation exists, the caller may read it, and it is
// partitioned. Takes ACCESS SHARE so the layout cannot change while it is read.
void
OpenForReport(Oid relid, const char *what)
{
	pg::RequireAdmin(what);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("relation with OID %u does not exist", relid)));
	LockRelationOid(relid, AccessShareLock);
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("relation with OID %u does not exist", relid)));
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		                errmsg("permission denied for table %s", get_rel_name(relid))));
	if (get_rel_relkind(relid) != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR,
		        (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("table \"%s\" is not partitioned", get_rel_name(relid)),
		         errhint("Use tenancy.partition_table() to partition it.")));
}

struct CountArgs {
	Oid relid;
	Tuplestorestate *store;
	TupleDesc desc;
};

// Counts every leaf as the extension owner: exact counts must see every tenant's rows, which the isolation
// policy hides from everyone else. Only count(*), count(DISTINCT) and sizes run, no code of the table's owner.
void
CountLeaves(void *arg)
{
	CountArgs *a = static_cast<CountArgs *>(arg);
	pg::RequirePlainRead(a->relid); // every leaf is counted with superuser rights
	char *column =
	    QueryOidText("SELECT pg_catalog.quote_ident(a.attname) FROM pg_catalog.pg_partitioned_table p "
	                 "JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) p.partrelid "
	                 "AND a.attnum OPERATOR(pg_catalog.=) p.partattrs[0] WHERE p.partrelid OPERATOR(pg_catalog.=) $1",
	                 a->relid);
	if (column == NULL)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("table \"%s\" is not partitioned by a column", get_rel_name(a->relid))));
	Oid types[1] = {OIDOID};
	Datum values[1] = {ObjectIdGetDatum(a->relid)};
	int rc = SPI_execute_with_args(
	    "SELECT t.relid, t.relid::pg_catalog.regclass::pg_catalog.text, "
	    "(pg_catalog.regexp_match(pg_catalog.pg_get_expr(c.relpartbound, c.oid), "
	    "'^FOR VALUES IN \\(''([0-9a-f-]{36})''\\)$'))[1], pg_catalog.pg_total_relation_size(t.relid) "
	    "FROM pg_catalog.pg_partition_tree($1) t JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) t.relid "
	    "WHERE t.isleaf ORDER BY c.relname",
	    1, types, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not list leaves: %s", SPI_result_code_string(rc));
	SPITupleTable *leaves = SPI_tuptable;
	uint64 nleaves = SPI_processed;
	StringInfoData sql;
	initStringInfo(&sql);
	for (uint64 i = 0; i < nleaves; i++) {
		bool isnull;
		Datum out[5];
		bool nulls[5] = {false, false, false, false, false};
		out[0] = SPI_getbinval(leaves->vals[i], leaves->tupdesc, 1, &isnull);
		char *leaf = SPI_getvalue(leaves->vals[i], leaves->tupdesc, 2);
		char *tenant = SPI_getvalue(leaves->vals[i], leaves->tupdesc, 3);
		out[2] = SPI_getbinval(leaves->vals[i], leaves->tupdesc, 4, &isnull);
		if (tenant != NULL)
			out[4] = DirectFunctionCall1(uuid_in, CStringGetDatum(tenant));
		else
			nulls[4] = true;
		resetStringInfo(&sql);
		appendStringInfo(&sql, "SELECT pg_catalog.count(*), pg_catalog.count(DISTINCT %s) FROM ONLY %s", column, leaf);
		rc = SPI_execute(sql.data, true, 0);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not count rows of %s", leaf);
		out[1] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		out[3] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		tuplestore_putvalues(a->store, a->desc, out, nulls);
	}
}

struct AdviceArgs {
	Tuplestorestate *store;
	TupleDesc desc;
};

// The figures of every tenant that is not cancelled, read as the extension owner (usage_history is not granted):
// projects and storage from tenancy.usage(); API calls an hour as the busiest of the last 7 UTC days / 24 or
// today's calls so far / hours elapsed, whichever is higher (usage_history keeps month-to-date readings per day).
void
CollectAdvice(void *arg)
{
	AdviceArgs *a = static_cast<AdviceArgs *>(arg);
	int rc = SPI_execute(
	    "WITH today AS ("
	    "  SELECT (pg_catalog.now() AT TIME ZONE 'UTC')::pg_catalog.date AS day,"
	    "         ((pg_catalog.now() AT TIME ZONE 'UTC')::pg_catalog.date OPERATOR(pg_catalog.-) 7) AS since,"
	    "         pg_catalog.date_trunc('month', (pg_catalog.now() AT TIME ZONE 'UTC')::pg_catalog.date) AS month,"
	    "         GREATEST(1, pg_catalog.date_part('hour', pg_catalog.now() AT TIME ZONE 'UTC')::int) AS hours), "
	    "readings AS ("
	    "  SELECT h.tenant_id, h.day, h.value AS month_to_date,"
	    "         (h.value OPERATOR(pg_catalog.-) COALESCE(pg_catalog.lag(h.value) OVER (PARTITION BY h.tenant_id,"
	    "            pg_catalog.date_trunc('month', h.day) ORDER BY h.day), 0)) AS calls"
	    "    FROM tenancy.usage_history h, today d"
	    "   WHERE h.metric OPERATOR(pg_catalog.=) 'api_calls'"
	    "     AND h.day OPERATOR(pg_catalog.>=) pg_catalog.date_trunc('month', d.since)::pg_catalog.date"
	    "     AND h.day OPERATOR(pg_catalog.<) d.day), "
	    "u AS ("
	    "  SELECT t.id, (tenancy.usage(t.id) OPERATOR(pg_catalog.->) 'current_usage') AS cu FROM tenancy.tenants t"
	    "   WHERE t.status OPERATOR(pg_catalog.<>) 'cancelled') "
	    "SELECT u.id::pg_catalog.text,"
	    "       (u.cu OPERATOR(pg_catalog.->>) 'projects_count')::bigint,"
	    "       GREATEST("
	    "         ((SELECT pg_catalog.max(r.calls) FROM readings r, today d WHERE r.tenant_id OPERATOR(pg_catalog.=) "
	    "u.id"
	    "            AND r.day OPERATOR(pg_catalog.>=) d.since) OPERATOR(pg_catalog./) 24),"
	    "         (((u.cu OPERATOR(pg_catalog.->>) 'api_calls_this_month')::bigint OPERATOR(pg_catalog.-)"
	    "           COALESCE((SELECT r.month_to_date FROM readings r, today d WHERE r.tenant_id OPERATOR(pg_catalog.=) "
	    "u.id"
	    "                       AND r.day OPERATOR(pg_catalog.>=) d.month ORDER BY r.day DESC LIMIT 1), 0))"
	    "          OPERATOR(pg_catalog./) (SELECT d.hours FROM today d))),"
	    "       (u.cu OPERATOR(pg_catalog.->>) 'storage_used_mb')::bigint "
	    "  FROM u ORDER BY u.id",
	    true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read tenant usage: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++) {
		HeapTuple row = SPI_tuptable->vals[i];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool isnull;
		core::TenantStats stats;
		Datum d = SPI_getbinval(row, desc, 2, &isnull);
		stats.projects = isnull ? -1 : DatumGetInt64(d);
		d = SPI_getbinval(row, desc, 3, &isnull);
		stats.api_calls_per_hour = isnull ? -1 : DatumGetInt64(d);
		d = SPI_getbinval(row, desc, 4, &isnull);
		stats.storage_mb = isnull ? -1 : DatumGetInt64(d);
		Datum tenant = DirectFunctionCall1(uuid_in, CStringGetDatum(SPI_getvalue(row, desc, 1)));

		// the advice crosses the doorway as plain values: at most 3 rows of fixed strings
		struct Row {
			char metric[32];
			int64 value;
			int64 threshold;
			char action[16];
			char reason[160];
		} rows[3];
		int nrows = pg::CallCore([&] {
			std::vector<core::Advice> advice = core::AdviseTenant(stats);
			int n = 0;
			for (const core::Advice &adv : advice) {
				strlcpy(rows[n].metric, adv.metric.c_str(), sizeof(rows[n].metric));
				rows[n].value = adv.value;
				rows[n].threshold = adv.threshold;
				strlcpy(rows[n].action, adv.action.c_str(), sizeof(rows[n].action));
				strlcpy(rows[n].reason, adv.reason.c_str(), sizeof(rows[n].reason));
				n++;
			}
			return n;
		});
		for (int k = 0; k < nrows; k++) {
			Datum out[6] = {tenant,
			                CStringGetTextDatum(rows[k].metric),
			                Int64GetDatum(rows[k].value),
			                Int64GetDatum(rows[k].threshold),
			                CStringGetTextDatum(rows[k].action),
			                CStringGetTextDatum(rows[k].reason)};
			bool nulls[6] = {false, false, false, false, false, false};
			tuplestore_putvalues(a->store, a->desc, out, nulls);
		}
	}
}

} // namespace

// tenant_advice() -> setof (tenant_id uuid, metric text, value bigint, threshold bigint, action text, reason text):
// the tenants over the brief's large-tenant thresholds and what to do about each.
extern "C" Datum
tenancy_tenant_advice(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	pg::RequireAdmin("read tenant advice");
	InitMaterializedSRF(fcinfo, 0);
	AdviceArgs args = {rsinfo->setResult, rsinfo->setDesc};
	SPI_connect();
	pg::RunAsExtensionOwner(CollectAdvice, &args);
	SPI_finish();
	return (Datum)0;
}

// partitions(tbl regclass) -> setof (name regclass, rows bigint, bytes bigint, tenants bigint, isolated_tenant uuid):
// one row per leaf, with exact row and tenant counts.
extern "C" Datum
tenancy_partitions(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;

	OpenForReport(relid, "read partition layouts");
	InitMaterializedSRF(fcinfo, 0);
	CountArgs args = {relid, rsinfo->setResult, rsinfo->setDesc};
	SPI_connect();
	pg::RunAsSuperuser(CountLeaves, &args); // exact row and tenant counts of every leaf, across tenants
	SPI_finish();
	return (Datum)0;
}

// tenant_partition(tbl regclass, tenant_id uuid) -> regclass: the leaf that holds (or would hold) the tenant's
// rows: its own leaf when isolated, else the default leaf of an isolated partition, else the hash partition.
extern "C" Datum
tenancy_tenant_partition(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	Datum tenant = PG_GETARG_DATUM(1);

	OpenForReport(relid, "read partition layouts");
	SPI_connect();
	// the hash of a uuid is only defined for a table partitioned by HASH on one uuid column
	if (QueryOidText(
	        "SELECT 1 FROM pg_catalog.pg_partitioned_table p JOIN pg_catalog.pg_attribute a "
	        "ON a.attrelid OPERATOR(pg_catalog.=) p.partrelid AND a.attnum OPERATOR(pg_catalog.=) p.partattrs[0] "
	        "WHERE p.partrelid OPERATOR(pg_catalog.=) $1 AND p.partstrat OPERATOR(pg_catalog.=) 'h' "
	        "AND p.partnatts OPERATOR(pg_catalog.=) 1 "
	        "AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype",
	        relid) == NULL)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("table \"%s\" is not partitioned by hash on a tenant column", get_rel_name(relid)),
		                errhint("Declare the table with PARTITION BY HASH (tenant_id).")));
	Oid types[2] = {OIDOID, UUIDOID};
	Datum values[2] = {ObjectIdGetDatum(relid), tenant};
	int rc = SPI_execute_with_args(
	    "SELECT COALESCE("
	    "(SELECT l.oid FROM pg_catalog.pg_inherits li JOIN pg_catalog.pg_class l "
	    "ON l.oid OPERATOR(pg_catalog.=) li.inhrelid WHERE li.inhparent OPERATOR(pg_catalog.=) h.oid "
	    "AND pg_catalog.pg_get_expr(l.relpartbound, l.oid) OPERATOR(pg_catalog.=) "
	    "pg_catalog.format('FOR VALUES IN (%L)', $2)), "
	    "(SELECT l.oid FROM pg_catalog.pg_inherits li JOIN pg_catalog.pg_class l "
	    "ON l.oid OPERATOR(pg_catalog.=) li.inhrelid WHERE li.inhparent OPERATOR(pg_catalog.=) h.oid "
	    "AND pg_catalog.pg_get_expr(l.relpartbound, l.oid) OPERATOR(pg_catalog.=) 'DEFAULT'), h.oid) "
	    "FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class h ON h.oid OPERATOR(pg_catalog.=) i.inhrelid, "
	    "LATERAL pg_catalog.regexp_match(pg_catalog.pg_get_expr(h.relpartbound, h.oid), "
	    "'^FOR VALUES WITH \\(modulus (\\d+), remainder (\\d+)\\)$') m "
	    "WHERE i.inhparent OPERATOR(pg_catalog.=) $1 "
	    "AND pg_catalog.satisfies_hash_partition($1, m[1]::pg_catalog.int4, m[2]::pg_catalog.int4, $2)",
	    2, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not find the tenant's partition: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("no partition of table \"%s\" holds the tenant", get_rel_name(relid)),
		                errhint("Is the table partitioned by hash on its tenant column, with its partitions "
		                        "created by tenancy.create_partitions()?")));
	bool isnull;
	Oid leaf = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	PG_RETURN_OID(leaf);
}
