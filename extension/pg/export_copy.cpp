// extension/pg/export_copy.cpp
// The COPY form of a tenant export: export_tables (the COPY statements to run) and export_table (one table's rows
// as text columns, at COPY speed, checksummed while they stream); _copy_line and _copy_fields for the import.
#include "tenancy/pg/boundary.hpp" /* core headers first: audit.hpp includes postgres.h */
#include "tenancy/pg/audit.hpp"
#include "tenancy/pg/export_stream.hpp"
#include "tenancy/pg/plain_read.hpp"
#include "tenancy/pg/privilege.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/tuplestore.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_export_tables);
PG_FUNCTION_INFO_V1(tenancy_export_table);
PG_FUNCTION_INFO_V1(tenancy_copy_line);
PG_FUNCTION_INFO_V1(tenancy_copy_fields);
}

namespace tenancy::pg {

namespace {

// TN001 before any output; the query runs as the owner (admins need not read the registry tables).
void
RequireTenant(Datum tenant)
{
	Oid types[1] = {UUIDOID};
	Datum values[1] = {tenant};
	int rc = SPI_execute_with_args("SELECT tenancy.get_tenant($1) IS NOT NULL", 1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not look up the tenant: %s", SPI_result_code_string(rc));
}

struct TablesCall {
	Datum tenant;
	Tuplestorestate *store;
	TupleDesc desc;
};

void
RunExportTables(void *arg)
{
	TablesCall *call = static_cast<TablesCall *>(arg);
	SPI_connect();
	RequireTenant(call->tenant);
	Oid types[1] = {UUIDOID};
	Datum values[1] = {call->tenant};
	// Identifiers and the tenant id are quoted by format(); the column definition list names every exported column
	// as pg_catalog.text (qualified: the caller runs these statements under its own search_path), which is what
	// export_table returns.
	int rc = SPI_execute_with_args(
	    "SELECT p.ord, p.qualified_name, pg_catalog.format("
	    "'COPY (SELECT * FROM tenancy.export_table(%L, %L) t(%s)) TO STDOUT', $1, p.qualified_name,"
	    " (SELECT pg_catalog.string_agg(pg_catalog.format('%I pg_catalog.text', c.name), ', ' ORDER BY c.i)"
	    "    FROM pg_catalog.unnest(p.columns) WITH ORDINALITY c(name, i)))"
	    " FROM tenancy._export_plan() p ORDER BY p.ord",
	    1, types, values, NULL, true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not plan the tenant export: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++) {
		Datum out[3];
		bool nulls[3];
		for (int c = 0; c < 3; c++)
			out[c] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, c + 1, &nulls[c]);
		tuplestore_putvalues(call->store, call->desc, out, nulls);
	}
	SPI_finish();
}

struct TableCall {
	Datum tenant;
	Oid table;
	Tuplestorestate *store;
	TupleDesc desc;
	ExportTableSum sum;
	Datum *datums; // one row's values, reused for every row
	bool *nulls;
};

void
PutTextRow(void *arg, int ncolumns, char **values, const char *, int)
{
	TableCall *call = static_cast<TableCall *>(arg);
	for (int i = 0; i < ncolumns; i++) {
		call->nulls[i] = values[i] == NULL;
		call->datums[i] = call->nulls[i] ? (Datum)0 : CStringGetTextDatum(values[i]);
	}
	tuplestore_putvalues(call->store, call->desc, call->datums, call->nulls); // copies into the store's memory
}

void
RunExportTable(void *arg)
{
	TableCall *call = static_cast<TableCall *>(arg);
	int settings_level = UseCanonicalTextSettings();
	SPI_connect();
	RequireTenant(call->tenant);
	Oid types[1] = {REGCLASSOID};
	Datum values[1] = {ObjectIdGetDatum(call->table)};
	int rc = SPI_execute_with_args("SELECT p.select_sql, pg_catalog.cardinality(p.columns)"
	                               " FROM tenancy._export_plan() p WHERE p.table_name OPERATOR(pg_catalog.=) $1",
	                               1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not plan the tenant export: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR,
		        (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		         errmsg("table \"%s\" is not part of a tenant export",
		                DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(call->table)))),
		         errhint("Exports contain the registry tables and every isolated table (tenancy.isolated_tables).")));
	char *select_sql = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	bool isnull;
	int ncolumns = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	bool all_text = call->desc->natts == ncolumns;
	for (int i = 0; all_text && i < ncolumns; i++)
		all_text = TupleDescAttr(call->desc, i)->atttypid == TEXTOID;
	if (!all_text)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("column definition list of tenancy.export_table must name the %d exported columns of "
		                       "the table as text",
		                       ncolumns),
		                errhint("Run the COPY statements that tenancy.export_tables() returns.")));
	RequirePlainRead(call->table); // read with superuser rights: planning it must run no code of its owner's
	call->datums = static_cast<Datum *>(palloc(sizeof(Datum) * ncolumns));
	call->nulls = static_cast<bool *>(palloc(sizeof(bool) * ncolumns));
	StreamExportTable(select_sql, call->tenant, PutTextRow, call, &call->sum);
	SPI_finish();
	AtEOXact_GUC(true, settings_level);
}

} // namespace

} // namespace tenancy::pg

using namespace tenancy;

// tenancy.export_tables(tenant_id uuid) -> table (ord, table_name, copy_sql): what a COPY-form export runs, in
// restore order. Run the statements and then export_manifest in one REPEATABLE READ transaction.
extern "C" Datum
tenancy_export_tables(PG_FUNCTION_ARGS)
{
	pg::RequireAdmin("export tenants");
	InitMaterializedSRF(fcinfo, 0);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	pg::TablesCall call = {PG_GETARG_DATUM(0), rsinfo->setResult, rsinfo->setDesc};
	pg::RunAsExtensionOwner(pg::RunExportTables, &call);
	return (Datum)0;
}

// tenancy.export_table(tenant_id uuid, tbl regclass) -> setof record: the tenant's rows of one exported table, each
// column's text as the export renders it (canonical settings), so COPY of the result sends exactly the bytes the
// manifest's checksum covers. The checksum is remembered for export_manifest in the same transaction.
extern "C" Datum
tenancy_export_table(PG_FUNCTION_ARGS)
{
	pg::RequireAdmin("export tenants");
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	pg::TableCall call = {
	    PG_GETARG_DATUM(0), PG_GETARG_OID(1), rsinfo->setResult, rsinfo->setDesc, {0, {0}}, NULL, NULL};
	pg::RunAsSuperuser(pg::RunExportTable, &call); // the tenant's rows, under every table's row-level security
	pg::RememberStreamedTable(call.tenant, call.table, &call.sum);

	StringInfoData json;
	initStringInfo(&json);
	appendStringInfo(&json, "{\"rows\": " INT64_FORMAT ", \"table\": ", call.sum.rows);
	escape_json(&json, DatumGetCString(DirectFunctionCall1(regclassout, ObjectIdGetDatum(call.table))));
	appendStringInfoChar(&json, '}');
	Jsonb *after = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
	/* committed by the audit writer before the rows leave: the caller's ROLLBACK cannot remove it */
	pg::WriteAuditEventOutside(pg::AuditDelivery::kCommittedBeforeReturn, "tenant_rows_exported", PG_GETARG_UUID_P(0),
	                           NULL, after);
	return (Datum)0;
}

// tenancy._copy_line(text[]) -> text: the values as one COPY text line without its newline (NULL elements as \N);
// the checksum of a format-2 table is _sha256_agg over these lines in order.
extern "C" Datum
tenancy_copy_line(PG_FUNCTION_ARGS)
{
	ArrayType *array = PG_GETARG_ARRAYTYPE_P(0);
	Datum *elements;
	bool *nulls;
	int n;
	deconstruct_array(array, TEXTOID, -1, false, TYPALIGN_INT, &elements, &nulls, &n);
	StringInfoData line;
	initStringInfo(&line);
	for (int i = 0; i < n; i++) {
		if (i > 0)
			appendStringInfoChar(&line, '\t');
		pg::AppendCopyValue(&line, nulls[i] ? NULL : TextDatumGetCString(elements[i]));
	}
	PG_RETURN_TEXT_P(cstring_to_text_with_len(line.data, line.len));
}

// tenancy._copy_fields(line text) -> text[]: the values of one COPY text line as export_tenant writes them (tab
// separated, \N for NULL, backslash escapes \\ \b \f \n \r \t \v only). Anything else is refused, so
// _copy_line of the result gives back exactly the line whose checksum was verified.
extern "C" Datum
tenancy_copy_fields(PG_FUNCTION_ARGS)
{
	text *line = PG_GETARG_TEXT_PP(0);
	const char *p = VARDATA_ANY(line);
	const char *end = p + VARSIZE_ANY_EXHDR(line);
	ArrayBuildState *fields = initArrayResult(TEXTOID, CurrentMemoryContext, false);
	StringInfoData field;
	initStringInfo(&field);
	for (;;) {
		resetStringInfo(&field);
		const char *start = p;
		bool bad = false;
		for (; p < end && *p != '\t'; p++) {
			char c = *p;
			if (c == '\n' || c == '\r') {
				bad = true;
				break;
			}
			if (c != '\\') {
				appendStringInfoChar(&field, c);
				continue;
			}
			if (++p == end) {
				bad = true;
				break;
			}
			char byte = pg::CopyEscapedByte(*p);
			if (byte != 0)
				appendStringInfoChar(&field, byte);
			else if (*p != 'N' || p - start != 1 || (p + 1 < end && p[1] != '\t'))
				bad = true; // anything but an escape letter, or a \N that is not a whole field
			if (bad)
				break;
		}
		if (bad)
			ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("invalid row in export document"),
			                errdetail("A row is one COPY text line as tenancy.export_tenant() writes it.")));
		bool isnull = p - start == 2 && start[0] == '\\' && start[1] == 'N';
		fields = accumArrayResult(fields,
		                          isnull ? (Datum)0 : PointerGetDatum(cstring_to_text_with_len(field.data, field.len)),
		                          isnull, TEXTOID, CurrentMemoryContext);
		if (p >= end)
			break;
		p++; // the tab
	}
	PG_RETURN_DATUM(makeArrayResult(fields, CurrentMemoryContext));
}
