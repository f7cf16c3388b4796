// extension/pg/export_document.cpp
// The export document (format 2): built straight into jsonb while each table is read and hashed once.
#include "tenancy/pg/boundary.hpp" /* core headers first */
#include "tenancy/pg/export_document.hpp"
#include "tenancy/pg/export_stream.hpp"
#include "tenancy/pg/plain_read.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
}

namespace tenancy::pg {

namespace {

// The document under construction. Values are pushed as they are read (no text form of the document is ever
// built and parsed again); their strings are copied into the document's memory, which outlives the batches.
struct DocumentBuild {
	JsonbParseState *state;
	MemoryContext memory;
};

void
PushString(JsonbParseState **state, JsonbIteratorToken token, const char *value, int length)
{
	JsonbValue v;
	v.type = jbvString;
	v.val.string.val = const_cast<char *>(value);
	v.val.string.len = length;
	(void)pushJsonbValue(state, token, &v);
}

// A row is one string: its COPY text line, the very bytes its checksum covers.
void
PushRow(void *arg, int, char **, const char *line, int line_length)
{
	DocumentBuild *build = static_cast<DocumentBuild *>(arg);
	MemoryContext previous = MemoryContextSwitchTo(build->memory);
	char *copy = static_cast<char *>(palloc(line_length + 1));
	memcpy(copy, line, line_length);
	copy[line_length] = '\0';
	PushString(&build->state, WJB_ELEM, copy, line_length);
	MemoryContextSwitchTo(previous);
}

} // namespace

Jsonb *
BuildExportDocument(Datum tenant, bool with_data)
{
	MemoryContext caller = CurrentMemoryContext;
	int settings_level = UseCanonicalTextSettings();
	DocumentBuild build = {NULL, AllocSetContextCreate(caller, "tenancy export document", ALLOCSET_DEFAULT_SIZES)};
	StringInfoData tables; // the manifest's "tables" array, as JSON text (small)
	initStringInfo(&tables);

	SPI_connect();
	// Read-only SPI: every query below reads the snapshot of the calling statement, so the tables of one document
	// are consistent with each other even under READ COMMITTED while the application keeps writing.
	Oid types[1] = {UUIDOID};
	Datum values[1] = {tenant};
	int rc = SPI_execute_with_args("SELECT tenancy._export_head($1)::pg_catalog.text", 1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read the tenant of the export: %s", SPI_result_code_string(rc));
	char *head = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	rc = SPI_execute("SELECT p.qualified_name, p.kind, p.tenant_column::pg_catalog.text, "
	                 "pg_catalog.to_jsonb(p.columns)::pg_catalog.text,"
	                 " p.select_sql, p.table_name::pg_catalog.oid FROM tenancy._export_plan() p ORDER BY p.ord",
	                 true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not plan the tenant export: %s", SPI_result_code_string(rc));
	SPITupleTable *plan = SPI_tuptable;
	uint64 ntables = SPI_processed;

	if (with_data) {
		MemoryContext previous = MemoryContextSwitchTo(build.memory);
		(void)pushJsonbValue(&build.state, WJB_BEGIN_OBJECT, NULL);
		PushString(&build.state, WJB_KEY, "data", 4);
		(void)pushJsonbValue(&build.state, WJB_BEGIN_OBJECT, NULL);
		MemoryContextSwitchTo(previous);
	}
	appendStringInfoChar(&tables, '[');
	for (uint64 i = 0; i < ntables; i++) {
		HeapTuple row = plan->vals[i];
		char *name = SPI_getvalue(row, plan->tupdesc, 1);
		bool isnull;
		Oid table = DatumGetObjectId(SPI_getbinval(row, plan->tupdesc, 6, &isnull));
		RequirePlainRead(table); // read with superuser rights: planning it must run no code of its owner's
		ExportTableSum sum;
		if (with_data) {
			MemoryContext previous = MemoryContextSwitchTo(build.memory);
			PushString(&build.state, WJB_KEY, pstrdup(name), (int)strlen(name));
			(void)pushJsonbValue(&build.state, WJB_BEGIN_ARRAY, NULL);
			MemoryContextSwitchTo(previous);
			StreamExportTable(SPI_getvalue(row, plan->tupdesc, 5), tenant, PushRow, &build, &sum);
			previous = MemoryContextSwitchTo(build.memory);
			(void)pushJsonbValue(&build.state, WJB_END_ARRAY, NULL);
			MemoryContextSwitchTo(previous);
		} else if (!RecallStreamedTable(tenant, table, &sum))
			StreamExportTable(SPI_getvalue(row, plan->tupdesc, 5), tenant, NULL, NULL, &sum);
		MemoryContext previous = MemoryContextSwitchTo(caller);
		if (i > 0)
			appendStringInfoString(&tables, ", ");
		appendStringInfoString(&tables, "{\"table\": ");
		escape_json(&tables, name);
		appendStringInfoString(&tables, ", \"kind\": ");
		escape_json(&tables, SPI_getvalue(row, plan->tupdesc, 2));
		appendStringInfoString(&tables, ", \"tenant_column\": ");
		escape_json(&tables, SPI_getvalue(row, plan->tupdesc, 3));
		appendStringInfo(&tables, ", \"columns\": %s, \"rows\": " INT64_FORMAT ", \"sha256\": \"%s\"}",
		                 SPI_getvalue(row, plan->tupdesc, 4), sum.rows, sum.sha256);
		MemoryContextSwitchTo(previous);
	}
	appendStringInfoChar(&tables, ']');
	SPI_finish();
	AtEOXact_GUC(true, settings_level);

	// The manifest: the head fields (one object's text) with the tables spliced in, parsed once (it is small).
	StringInfoData manifest_text;
	initStringInfo(&manifest_text);
	appendStringInfo(&manifest_text, "{\"tables\": %s, %s", tables.data, head + 1);
	Jsonb *manifest = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(manifest_text.data)));

	MemoryContext previous = MemoryContextSwitchTo(build.memory);
	if (with_data)
		(void)pushJsonbValue(&build.state, WJB_END_OBJECT, NULL); // data
	else
		(void)pushJsonbValue(&build.state, WJB_BEGIN_OBJECT, NULL);
	PushString(&build.state, WJB_KEY, "format", 6);
	PushString(&build.state, WJB_VALUE, "tenancy-tenant-export", 21);
	PushString(&build.state, WJB_KEY, "format_version", 14);
	JsonbValue version;
	version.type = jbvNumeric;
	version.val.numeric = int64_to_numeric(2);
	(void)pushJsonbValue(&build.state, WJB_VALUE, &version);
	PushString(&build.state, WJB_KEY, "manifest", 8);
	JsonbValue manifest_value;
	manifest_value.type = jbvBinary;
	manifest_value.val.binary.data = &manifest->root;
	manifest_value.val.binary.len = VARSIZE(manifest) - VARHDRSZ;
	(void)pushJsonbValue(&build.state, WJB_VALUE, &manifest_value);
	JsonbValue *document = pushJsonbValue(&build.state, WJB_END_OBJECT, NULL);
	MemoryContextSwitchTo(previous); // the caller's: the result outlives the document's memory
	Jsonb *result = JsonbValueToJsonb(document);
	MemoryContextDelete(build.memory);
	return result;
}

} // namespace tenancy::pg
