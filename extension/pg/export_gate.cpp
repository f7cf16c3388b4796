// extension/pg/export_gate.cpp
// Entry points of tenant export/import: admin check, the SQL work as the extension owner, then the audit event.
#include "tenancy/pg/boundary.hpp" /* core headers first: audit.hpp includes postgres.h */
#include "tenancy/pg/audit.hpp"
#include "tenancy/pg/export_document.hpp"
#include "tenancy/pg/plain_read.hpp"
#include "tenancy/pg/privilege.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/namespace.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/pg_am.h"
#include "catalog/pg_attribute.h"
#include "catalog/pg_class.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/rls.h"
#include "utils/syscache.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_export_tenant);
PG_FUNCTION_INFO_V1(tenancy_export_manifest);
PG_FUNCTION_INFO_V1(tenancy_import_tenant);
PG_FUNCTION_INFO_V1(tenancy_import_tenant_copied);
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

// Runs sql through a doorway: the extension owner by default; imports write application tables of a tenant and
// pass RunAsSuperuser (docs/isolation.md "Privilege model").
Datum
CallAsOwner(const char *sql, int nargs, const Oid *types, const Datum *values, const bool *isnull, bool *result_null,
            void (*doorway)(void (*)(void *), void *) = RunAsExtensionOwner)
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
	doorway(RunOwnedCall, &call);
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

struct DocumentCall {
	Datum tenant;
	bool with_data;
	Jsonb *document;
};

void
RunBuildDocument(void *arg)
{
	DocumentCall *call = static_cast<DocumentCall *>(arg);
	call->document = BuildExportDocument(call->tenant, call->with_data);
}

Datum
ExportDocument(FunctionCallInfo fcinfo, bool with_data)
{
	RequireAdmin("export tenants");
	DocumentCall call = {PG_GETARG_DATUM(0), with_data, NULL};
	RunAsSuperuser(RunBuildDocument, &call); // reads the tenant's rows of every application table
	Datum doc = JsonbPGetDatum(call.document);
	Datum manifest = DirectFunctionCall2(jsonb_object_field, doc, CStringGetTextDatum("manifest"));
	/* committed by the audit writer before the document leaves: the caller's ROLLBACK cannot remove it */
	WriteAuditEventOutside(AuditDelivery::kCommittedBeforeReturn,
	                       with_data ? "tenant_exported" : "tenant_manifest_exported", PG_GETARG_UUID_P(0), NULL,
	                       Summary(manifest));
	return doc;
}

// Whether a staging table holds only what tenancy.import_tables makes: "ord" bigint, then text columns c1, c2, ...
// of the default collation (dropped columns aside). A column of the caller's own type could bring a cast or an
// output function of the caller's, run by the owner's read.
bool
StagingColumnsArePlain(Oid relid)
{
	HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tuple))
		return false;
	int natts = ((Form_pg_class)GETSTRUCT(tuple))->relnatts;
	ReleaseSysCache(tuple);
	int next_text = 1;
	for (AttrNumber attnum = 1; attnum <= natts; attnum++) {
		HeapTuple att = SearchSysCache2(ATTNUM, ObjectIdGetDatum(relid), Int16GetDatum(attnum));
		if (!HeapTupleIsValid(att))
			return false;
		Form_pg_attribute a = (Form_pg_attribute)GETSTRUCT(att);
		bool plain = true;
		if (!a->attisdropped) {
			char want[NAMEDATALEN];
			snprintf(want, sizeof(want), "c%d", next_text);
			if (attnum == 1)
				plain = a->atttypid == INT8OID && strcmp(NameStr(a->attname), "ord") == 0;
			else
				plain = a->atttypid == TEXTOID && a->attcollation == DEFAULT_COLLATION_OID &&
				        strcmp(NameStr(a->attname), want) == 0;
			if (attnum > 1)
				next_text++;
		} else if (attnum == 1) {
			plain = false;
		}
		ReleaseSysCache(att);
		if (!plain)
			return false;
	}
	return true;
}

// Whether the caller added an index, a CHECK constraint or extended statistics to a staging table: planning the
// owner's read would fold the caller's functions in their expressions (tenancy/pg/plain_read.hpp).
bool
RelationHasIndexOrStatistics(Oid relid)
{
	Relation rel = table_open(relid, AccessShareLock);
	bool any = RelationGetIndexList(rel) != NIL || RelationGetStatExtList(rel) != NIL ||
	           (rel->rd_att->constr != NULL && rel->rd_att->constr->num_check > 0);
	table_close(rel, NoLock);
	return any;
}

// The staging tables of a COPY-form import (pg_temp.tenancy_import_N, made by tenancy.import_tables) are read by
// the owner: each must be a temporary table of the caller's own, without row-level security, so that nothing the
// caller could not read itself (a view over an isolated table, say) is read in its name; and nothing of the
// caller's may run during that read: a plain heap table (no rules, no inheritance children, whose rows a read of
// the parent would include) of the columns import_tables makes. Triggers never fire on a read.
void
CheckCopyStaging(Jsonb *manifest)
{
	JsonbValue *tables = getKeyJsonValueFromContainer(&manifest->root, "tables", 6, NULL);
	if (tables == NULL || tables->type != jbvBinary || !JsonContainerIsArray(tables->val.binary.data))
		return; // the import refuses the manifest itself
	int ntables = (int)JsonContainerSize(tables->val.binary.data);
	for (int i = 1; i <= ntables; i++) {
		char name[NAMEDATALEN];
		snprintf(name, sizeof(name), "tenancy_import_%d", i);
		Oid relid = RangeVarGetRelid(makeRangeVar(pstrdup("pg_temp"), pstrdup(name), -1), NoLock, true);
		if (!OidIsValid(relid))
			continue; // reported by the import, with the hint to run import_tables first
		if (get_rel_relkind(relid) != RELKIND_RELATION || get_rel_persistence(relid) != RELPERSISTENCE_TEMP ||
		    !pg_class_ownercheck(relid, GetUserId()) || check_enable_rls(relid, InvalidOid, true) != RLS_NONE)
			ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			                errmsg("staging table \"%s\" is not a temporary table of the caller", name),
			                errhint("Create the staging tables with tenancy.import_tables().")));
		HeapTuple tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
		if (!HeapTupleIsValid(tuple))
			elog(ERROR, "cache lookup failed for relation %u", relid);
		Form_pg_class rel = (Form_pg_class)GETSTRUCT(tuple);
		bool plain = rel->relam == HEAP_TABLE_AM_OID && !rel->relhasrules && !rel->relrowsecurity &&
		             !rel->relforcerowsecurity && !rel->relispartition;
		ReleaseSysCache(tuple);
		if (!plain || has_subclass(relid) || !StagingColumnsArePlain(relid) || RelationHasIndexOrStatistics(relid))
			ereport(ERROR,
			        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			         errmsg("staging table \"%s\" is not as tenancy.import_tables() made it", name),
			         errdetail("A staging table is a heap table of an \"ord\" bigint column and text columns c1, c2, "
			                   "... of the default collation, without rules, row-level security, child tables, "
			                   "indexes, CHECK constraints or statistics, and not a partition."),
			         errhint("Create the staging tables with tenancy.import_tables() and only load rows into them.")));
	}
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
// the COPY form: called after the COPYs of export_tables in the same REPEATABLE READ transaction, it reuses the
// checksums of what they sent.
extern "C" Datum
tenancy_export_manifest(PG_FUNCTION_ARGS)
{
	return pg::ExportDocument(fcinfo, false);
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
	Datum id =
	    pg::CallAsOwner("SELECT tenancy._import_tenant($1, $2)", 2, types, values, nulls, &isnull, pg::RunAsSuperuser);
	Datum manifest = DirectFunctionCall2(jsonb_object_field, PG_GETARG_DATUM(0), CStringGetTextDatum("manifest"));
	pg::WriteAuditEvent("tenant_imported", DatumGetUUIDP(id), NULL, pg::Summary(manifest));
	return id;
}

// tenancy.import_tenant_copied(manifest jsonb, new_id uuid = NULL) -> uuid: the COPY-form import, from the files
// the caller loaded into the staging tables of tenancy.import_tables, all or nothing.
extern "C" Datum
tenancy_import_tenant_copied(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("export manifest must not be null")));
	pg::RequireAdmin("import tenants");
	pg::CheckCopyStaging(PG_GETARG_JSONB_P(0));
	Oid types[2] = {JSONBOID, UUIDOID};
	Datum values[2] = {PG_GETARG_DATUM(0), PG_ARGISNULL(1) ? (Datum)0 : PG_GETARG_DATUM(1)};
	bool nulls[2] = {false, PG_ARGISNULL(1)};
	bool isnull;
	Datum id = pg::CallAsOwner("SELECT tenancy._import_staged($1, NULL, $2, 'tenancy_import_')", 2, types, values,
	                           nulls, &isnull, pg::RunAsSuperuser);
	pg::WriteAuditEvent("tenant_imported", DatumGetUUIDP(id), NULL, pg::Summary(PG_GETARG_DATUM(0)));
	return id;
}
