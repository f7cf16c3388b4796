// extension/pg/export_gate.cpp
// Entry points of tenant export/import: admin check, the SQL work as the extension owner, then the audit event.
#include "tenancy/pg/boundary.hpp" /* core headers first: audit.hpp includes postgres.h */
#include "tenancy/pg/audit.hpp"
#include "tenancy/pg/privilege.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_export_tenant);
PG_FUNCTION_INFO_V1(tenancy_export_manifest);
PG_FUNCTION_INFO_V1(tenancy_export_rows);
PG_FUNCTION_INFO_V1(tenancy_import_tenant);
PG_FUNCTION_INFO_V1(tenancy_import_tenant_staged);
}

// Why the owner: an export reads every isolated table, whose FORCEd policies show an admin no rows without a
// context, and an import writes rows of a tenant that may be suspended (set_tenant would refuse it) into tables the
// admin may hold no privileges on. The extension owner is a superuser (tenancy.control), to whom row-level security
// does not apply. The SQL it runs is fixed text calling the internal functions of sql/src/85_export.sql with the
// caller's values as parameters; every authorization check on the caller happens before the switch, and the audit
// event is written after it, in the caller's identity (WriteAuditEvent records GetUserId()).

namespace tenancy::pg {

namespace {

constexpr int kMaxArgs = 3;

// One statement returning one value, run as the owner; the value is copied into the caller's memory context.
struct OwnedCall {
	const char *sql;
	int nargs;
	Oid types[kMaxArgs];
	Datum values[kMaxArgs];
	char nulls[kMaxArgs + 1];
	Datum result;
	bool isnull;
};

void
RunOwnedCall(void *arg)
{
	OwnedCall *call = static_cast<OwnedCall *>(arg);
	SPI_connect();
	int rc = SPI_execute_with_args(call->sql, call->nargs, call->types, call->values, call->nulls, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "unexpected result of \"%s\": %s", call->sql, SPI_result_code_string(rc));
	Datum value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &call->isnull);
	Oid type = SPI_gettypeid(SPI_tuptable->tupdesc, 1);
	int16 typlen;
	bool typbyval;
	get_typlenbyval(type, &typlen, &typbyval);
	// Into the memory context that was current at SPI_connect: the caller's.
	call->result = call->isnull ? (Datum)0 : SPI_datumTransfer(value, typbyval, typlen);
	SPI_finish();
}

Datum
CallAsOwner(const char *sql, int nargs, const Oid *types, const Datum *values, const bool *isnull, bool *result_null)
{
	OwnedCall call;
	call.sql = sql;
	call.nargs = nargs;
	for (int i = 0; i < nargs; i++) {
		call.types[i] = types[i];
		call.values[i] = values[i];
		call.nulls[i] = isnull[i] ? 'n' : ' ';
	}
	call.nulls[nargs] = '\0';
	call.isnull = true;
	RunAsExtensionOwner(RunOwnedCall, &call);
	*result_null = call.isnull;
	return call.result;
}

// The audit summary of a manifest (source tenant, slug, version, row count per table), computed as the owner.
Jsonb *
Summary(Datum manifest)
{
	Oid types[1] = {JSONBOID};
	bool nulls[1] = {false};
	bool isnull;
	Datum summary = CallAsOwner("SELECT tenancy._export_summary($1)", 1, types, &manifest, nulls, &isnull);
	return isnull ? NULL : DatumGetJsonbP(summary);
}

Datum
ExportDocument(FunctionCallInfo fcinfo, bool with_data)
{
	RequireAdmin("export tenants");
	Oid types[2] = {UUIDOID, BOOLOID};
	Datum values[2] = {PG_GETARG_DATUM(0), BoolGetDatum(with_data)};
	bool nulls[2] = {false, false};
	bool isnull;
	Datum doc = CallAsOwner("SELECT tenancy._export_tenant($1, $2)", 2, types, values, nulls, &isnull);
	if (isnull)
		elog(ERROR, "tenant export produced no document");
	Datum manifest = DirectFunctionCall2(jsonb_object_field, doc, CStringGetTextDatum("manifest"));
	WriteAuditEvent(with_data ? "tenant_exported" : "tenant_manifest_exported", PG_GETARG_UUID_P(0), NULL,
	                Summary(manifest));
	return doc;
}

// export_rows: the rows of each planned table, streamed from a cursor (never one big value) into the tuplestore.
struct RowsCall {
	Datum tenant;
	Datum table; // regclass, or (Datum)0 for every table
	bool all_tables;
	Tuplestorestate *store;
	TupleDesc desc;
	int64 rows;
};

void
RunExportRows(void *arg)
{
	RowsCall *call = static_cast<RowsCall *>(arg);
	SPI_connect();
	Oid plan_types[2] = {UUIDOID, REGCLASSOID};
	Datum plan_values[2] = {call->tenant, call->table};
	char plan_nulls[3] = {' ', call->all_tables ? 'n' : ' ', '\0'};
	int rc = SPI_execute_with_args(
	    "SELECT p.qualified_name, p.select_sql FROM tenancy._export_plan() p"
	    " WHERE $2::pg_catalog.regclass IS NULL OR p.table_name OPERATOR(pg_catalog.=) $2 ORDER BY p.ord",
	    2, plan_types, plan_values, plan_nulls, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not plan the tenant export: %s", SPI_result_code_string(rc));
	if (!call->all_tables && SPI_processed == 0)
		ereport(ERROR,
		        (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		         errmsg("table \"%s\" is not part of a tenant export",
		                DatumGetCString(DirectFunctionCall1(regclassout, call->table))),
		         errhint("Exports contain the registry tables and every isolated table (tenancy.isolated_tables).")));
	int ntables = (int)SPI_processed;
	SPITupleTable *plan = SPI_tuptable;
	Oid cursor_types[1] = {UUIDOID};
	Datum cursor_values[1] = {call->tenant};
	for (int i = 0; i < ntables; i++) {
		// The table name as text once per table: tuplestore_putvalues copies it into every row.
		Datum table_name = CStringGetTextDatum(SPI_getvalue(plan->vals[i], plan->tupdesc, 1));
		char *select_sql = SPI_getvalue(plan->vals[i], plan->tupdesc, 2);
		Portal portal = SPI_cursor_open_with_args(NULL, select_sql, 1, cursor_types, cursor_values, NULL, true, 0);
		for (;;) {
			SPI_cursor_fetch(portal, true, 1000);
			if (SPI_processed == 0)
				break;
			for (uint64 r = 0; r < SPI_processed; r++) {
				Datum out[2];
				bool out_nulls[2] = {false, false};
				out[0] = table_name;
				out[1] = SPI_getbinval(SPI_tuptable->vals[r], SPI_tuptable->tupdesc, 1, &out_nulls[1]);
				tuplestore_putvalues(call->store, call->desc, out, out_nulls);
				call->rows++;
			}
			SPI_freetuptable(SPI_tuptable);
			CHECK_FOR_INTERRUPTS();
		}
		SPI_cursor_close(portal);
	}
	SPI_finish();
}

} // namespace

} // namespace tenancy::pg

using namespace tenancy;

// tenancy.export_tenant(uuid) -> jsonb: the whole tenant as one self-describing document.
extern "C" Datum
tenancy_export_tenant(PG_FUNCTION_ARGS)
{
	return pg::ExportDocument(fcinfo, true);
}

// tenancy.export_manifest(uuid) -> jsonb: the same document without the rows (checksums and counts included), for
// the streaming form with export_rows in the same REPEATABLE READ transaction.
extern "C" Datum
tenancy_export_manifest(PG_FUNCTION_ARGS)
{
	return pg::ExportDocument(fcinfo, false);
}

// tenancy.export_rows(tenant uuid, tbl regclass = NULL) -> setof (table_name text, row jsonb): the rows of one
// table (or of every table, in import order) exactly as the document and its checksums carry them.
extern "C" Datum
tenancy_export_rows(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("tenant id must not be null")));
	pg::RequireAdmin("export tenants");
	// Existence check (TN001) before any output, in the caller's identity (admins read the registry).
	Oid types[1] = {UUIDOID};
	Datum tenant = PG_GETARG_DATUM(0);
	bool nulls[1] = {false};
	bool isnull;
	pg::CallAsOwner("SELECT tenancy.get_tenant($1) IS NOT NULL", 1, types, &tenant, nulls, &isnull);

	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	pg::RowsCall call = {tenant,          PG_ARGISNULL(1) ? (Datum)0 : PG_GETARG_DATUM(1),
	                     PG_ARGISNULL(1), rsinfo->setResult,
	                     rsinfo->setDesc, 0};
	pg::RunAsExtensionOwner(pg::RunExportRows, &call);

	StringInfoData json;
	initStringInfo(&json);
	appendStringInfo(&json, "{\"rows\": " INT64_FORMAT ", \"table\": ", call.rows);
	if (call.all_tables)
		appendStringInfoString(&json, "null}");
	else {
		escape_json(&json, DatumGetCString(DirectFunctionCall1(regclassout, call.table)));
		appendStringInfoChar(&json, '}');
	}
	Jsonb *after = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
	pg::WriteAuditEvent("tenant_rows_exported", PG_GETARG_UUID_P(0), NULL, after);
	return (Datum)0;
}

// tenancy.import_tenant(doc jsonb, new_id uuid = NULL) -> uuid: restores an export document, all or nothing.
extern "C" Datum
tenancy_import_tenant(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("export document must not be null")));
	pg::RequireAdmin("import tenants");
	Oid types[2] = {JSONBOID, UUIDOID};
	Datum values[2] = {PG_GETARG_DATUM(0), PG_ARGISNULL(1) ? (Datum)0 : PG_GETARG_DATUM(1)};
	bool nulls[2] = {false, PG_ARGISNULL(1)};
	bool isnull;
	Datum id = pg::CallAsOwner("SELECT tenancy._import_tenant($1, $2)", 2, types, values, nulls, &isnull);
	Datum manifest = DirectFunctionCall2(jsonb_object_field, PG_GETARG_DATUM(0), CStringGetTextDatum("manifest"));
	pg::WriteAuditEvent("tenant_imported", DatumGetUUIDP(id), NULL, pg::Summary(manifest));
	return id;
}

// tenancy.import_tenant_staged(manifest jsonb, staging regclass, new_id uuid = NULL) -> uuid: the streaming
// import, from rows the caller loaded with COPY into its own table (table_name text, row jsonb, ord bigint).
extern "C" Datum
tenancy_import_tenant_staged(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("manifest and staging table must not be null")));
	pg::RequireAdmin("import tenants");
	// The owner will read the staging table: the caller must be able to read it itself, and it must not be a
	// table whose rows row-level security hides from the caller (an isolated table, say).
	Oid staging = PG_GETARG_OID(1);
	if (pg_class_aclcheck(staging, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		                errmsg("permission denied for staging table \"%s\"", get_rel_name(staging))));
	if (check_enable_rls(staging, InvalidOid, true) != RLS_NONE)
		ereport(ERROR,
		        (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		         errmsg("staging table \"%s\" must be a table without row-level security", get_rel_name(staging))));
	Oid types[3] = {JSONBOID, REGCLASSOID, UUIDOID};
	Datum values[3] = {PG_GETARG_DATUM(0), PG_GETARG_DATUM(1), PG_ARGISNULL(2) ? (Datum)0 : PG_GETARG_DATUM(2)};
	bool nulls[3] = {false, false, PG_ARGISNULL(2)};
	bool isnull;
	Datum id = pg::CallAsOwner("SELECT tenancy._import_staged($1, $2, $3)", 3, types, values, nulls, &isnull);
	pg::WriteAuditEvent("tenant_imported", DatumGetUUIDP(id), NULL, pg::Summary(PG_GETARG_DATUM(0)));
	return id;
}
