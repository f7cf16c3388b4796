// extension/pg/quota_store.cpp
// Durable side of quota metering: in-place writes of tenancy.quota_counters, limit look-ups and usage history.
#include "tenancy/pg/quota_store.hpp"

#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/privilege.hpp"

extern "C" {
#include "postgres.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
}

namespace tenancy::pg {

namespace {

// Columns of tenancy.quota_counters (sql/src/50_quota.sql).
enum { kColTenant = 1, kColMetric, kColWindowStart, kColReserved, kColActiveDay, kCounterColumns = kColActiveDay };

// Distinguishes our counter locks from pg_advisory_lock's (which use 1 and 2 in the fourth field).
constexpr uint16 kCounterLockClass = 0x5154; // "QT"

constexpr int32 kUnixEpochInPgDays = 10957; // 2000-01-01 minus 1970-01-01
constexpr int32 kHistoryDays = 400;

Oid
TenancyRelid(const char *name)
{
	Oid nsp = get_namespace_oid("tenancy", false);
	Oid relid = get_relname_relid(name, nsp);
	if (!OidIsValid(relid))
		elog(ERROR, "relation tenancy.%s does not exist", name);
	return relid;
}

void
InitCounterKeys(ScanKeyData *keys, const pg_uuid_t *tenant, core::QuotaMetric metric)
{
	ScanKeyInit(&keys[0], kColTenant, BTEqualStrategyNumber, F_UUID_EQ, UUIDPGetDatum(tenant));
	ScanKeyInit(&keys[1], kColMetric, BTEqualStrategyNumber, F_TEXTEQ,
	            CStringGetTextDatum(core::QuotaMetricName(metric)));
}

void
SetLockTag(LOCKTAG *tag, const pg_uuid_t *tenant, core::QuotaMetric metric)
{
	uint32 a, b, c;
	memcpy(&a, tenant->data, 4);
	memcpy(&b, tenant->data + 4, 4);
	memcpy(&c, tenant->data + 8, 4);
	// Collisions only serialise two counters needlessly; they never break correctness.
	SET_LOCKTAG_ADVISORY(*tag, MyDatabaseId, a ^ static_cast<uint32>(metric), b ^ c, kCounterLockClass);
}

// SPI work run as the extension owner: app roles have no privilege on the quota tables.
struct SpiCall {
	const char *sql;
	int nargs;
	Oid *types;
	Datum *values;
	bool read_only;
	// results
	bool isnull;
	Datum first;
	uint64 processed;
};

void
RunSpi(void *arg)
{
	SpiCall *call = static_cast<SpiCall *>(arg);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	int rc = SPI_execute_with_args(call->sql, call->nargs, call->types, call->values, NULL, call->read_only, 1);
	if (rc < 0)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	call->processed = SPI_processed;
	call->isnull = true;
	call->first = (Datum)0;
	if (SPI_processed > 0 && SPI_tuptable != NULL) {
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &call->isnull);
		/* only by-value results (bigint, boolean) cross SPI_finish */
		call->first = d;
	}
	SPI_finish();
}

void
SpiAsOwner(SpiCall *call)
{
	RunAsExtensionOwner(RunSpi, call);
}

} // namespace

void
QuotaTenantNotFound(const pg_uuid_t *tenant)
{
	ereport(ERROR, (errcode(TENANCY_ERRCODE_TENANT_NOT_FOUND),
	                errmsg("tenant \"%s\" does not exist",
	                       DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(tenant))))));
	pg_unreachable();
}

DateADT
QuotaDayToDate(int32 day)
{
	return day - kUnixEpochInPgDays;
}

int32
QuotaDateToDay(DateADT date)
{
	return date + kUnixEpochInPgDays;
}

bool
QuotaRowRead(const pg_uuid_t *tenant, core::QuotaMetric metric, QuotaRow *row)
{
	Relation rel = table_open(TenancyRelid("quota_counters"), AccessShareLock);
	ScanKeyData keys[2];
	InitCounterKeys(keys, tenant, metric);
	/* NULL snapshot: a fresh one for a non-catalog relation, so in-place writes of other backends are seen */
	SysScanDesc scan = systable_beginscan(rel, TenancyRelid("quota_counters_pkey"), true, NULL, 2, keys);
	HeapTuple tuple = systable_getnext(scan);
	bool found = HeapTupleIsValid(tuple);
	if (found) {
		bool isnull;
		TupleDesc desc = RelationGetDescr(rel);
		row->window_start = QuotaDateToDay(DatumGetDateADT(heap_getattr(tuple, kColWindowStart, desc, &isnull)));
		row->reserved = DatumGetInt64(heap_getattr(tuple, kColReserved, desc, &isnull));
		row->active_day = QuotaDateToDay(DatumGetDateADT(heap_getattr(tuple, kColActiveDay, desc, &isnull)));
		row->xmin = HeapTupleHeaderGetRawXmin(tuple->t_data);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

// In-place update as catalogs do for relfrozenxid: same tuple length (only fixed-width columns change), no new
// tuple version, no xid, WAL-logged; then XLogFlush so that the bound is on disk before any unit it covers is
// handed out. This is what makes consume non-transactional (like nextval) and crash-safe.
void
QuotaRowWrite(const pg_uuid_t *tenant, core::QuotaMetric metric, const QuotaRow *row)
{
	if (RecoveryInProgress())
		ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION), errmsg("cannot meter quotas during recovery"),
		                errhint("Call tenancy.consume on the primary server.")));
	Relation rel = table_open(TenancyRelid("quota_counters"), RowExclusiveLock);
	ScanKeyData keys[2];
	InitCounterKeys(keys, tenant, metric);
	HeapTuple oldtup;
	void *state;
	systable_inplace_update_begin(rel, TenancyRelid("quota_counters_pkey"), true, NULL, 2, keys, &oldtup, &state);
	if (!HeapTupleIsValid(oldtup))
		QuotaTenantNotFound(tenant);

	Datum values[kCounterColumns] = {};
	bool nulls[kCounterColumns] = {};
	bool replace[kCounterColumns] = {};
	values[kColWindowStart - 1] = DateADTGetDatum(QuotaDayToDate(row->window_start));
	values[kColReserved - 1] = Int64GetDatum(row->reserved);
	values[kColActiveDay - 1] = DateADTGetDatum(QuotaDayToDate(row->active_day));
	replace[kColWindowStart - 1] = replace[kColReserved - 1] = replace[kColActiveDay - 1] = true;
	HeapTuple newtup = heap_modify_tuple(oldtup, RelationGetDescr(rel), values, nulls, replace);
	systable_inplace_update_finish(state, newtup);
	heap_freetuple(newtup);
	heap_freetuple(oldtup);
	table_close(rel, RowExclusiveLock);

	/* the in-place record is the last one this backend inserted */
	XLogFlush(XactLastRecEnd);
}

bool
QuotaEnsureRows(const pg_uuid_t *tenant, core::QuotaMetric metric)
{
	QuotaRow row;
	if (QuotaRowRead(tenant, metric, &row))
		return true;
	Oid types[1] = {UUIDOID};
	Datum values[1] = {UUIDPGetDatum(tenant)};
	/* one statement: no row when the tenant does not exist */
	SpiCall insert = {"SELECT tenancy._quota_create_counters(t.id) FROM tenancy.tenants t"
	                  " WHERE t.id OPERATOR(pg_catalog.=) $1",
	                  1, types, values, false};
	SpiAsOwner(&insert);
	if (insert.processed == 0)
		return false;
	/* the rows must be visible to the in-place writer's scan in this same command */
	CommandCounterIncrement();
	return true;
}

int64
QuotaLimit(const pg_uuid_t *tenant, core::QuotaMetric metric)
{
	Oid types[2] = {UUIDOID, TEXTOID};
	Datum values[2] = {UUIDPGetDatum(tenant), CStringGetTextDatum(core::QuotaMetricName(metric))};
	/* _effective_limit raises TN001 itself for an unknown tenant */
	SpiCall limit = {"SELECT tenancy._effective_limit($1, $2)", 2, types, values, true};
	SpiAsOwner(&limit);
	/* no limit configured: nothing may be consumed (fail closed) */
	return limit.isnull ? 0 : DatumGetInt64(limit.first);
}

int64
QuotaCountRows(const pg_uuid_t *tenant, core::QuotaMetric metric)
{
	Oid types[2] = {UUIDOID, TEXTOID};
	Datum values[2] = {UUIDPGetDatum(tenant), CStringGetTextDatum(core::QuotaMetricName(metric))};
	SpiCall count = {"SELECT tenancy._quota_count_rows($1, $2)", 2, types, values, true};
	/* a tenant's rows of application tables (track_quota): the owner role has no right on them */
	RunAsSuperuser(RunSpi, &count);
	return count.isnull ? 0 : DatumGetInt64(count.first);
}

// SPI work of QuotaTenantChain: the ancestors as a uuid[] copied out of SPI's memory.
struct ChainCall {
	const pg_uuid_t *tenant;
	MemoryContext result_context;
	ArrayType *ancestors;
};

void
RunChainQuery(void *arg)
{
	ChainCall *call = static_cast<ChainCall *>(arg);
	Oid types[1] = {UUIDOID};
	Datum values[1] = {UUIDPGetDatum(call->tenant)};
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	int rc = SPI_execute_with_args("SELECT pg_catalog.array_agg(a) FROM tenancy.tenant_ancestors($1) a", 1, types,
	                               values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "SPI_execute_with_args failed: %s", SPI_result_code_string(rc));
	bool isnull;
	Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	call->ancestors = NULL;
	if (!isnull) {
		MemoryContext old = MemoryContextSwitchTo(call->result_context);
		call->ancestors = DatumGetArrayTypePCopy(d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
}

pg_uuid_t *
QuotaTenantChain(const pg_uuid_t *tenant, int *count)
{
	/* tenant_ancestors raises TN001 itself for an unknown tenant */
	ChainCall call = {tenant, CurrentMemoryContext, NULL};
	RunAsExtensionOwner(RunChainQuery, &call);
	int n = call.ancestors ? ArrayGetNItems(ARR_NDIM(call.ancestors), ARR_DIMS(call.ancestors)) : 0;
	pg_uuid_t *chain = static_cast<pg_uuid_t *>(palloc((n + 1) * sizeof(pg_uuid_t)));
	chain[0] = *tenant;
	if (n > 0) {
		/* uuid is a fixed-width by-reference type without nulls here: the elements are contiguous */
		memcpy(&chain[1], ARR_DATA_PTR(call.ancestors), n * sizeof(pg_uuid_t));
	}
	*count = n + 1;
	return chain;
}

void
QuotaHistoryWrite(const pg_uuid_t *tenant, core::QuotaMetric metric, int32 day, int64 value)
{
	if (XactReadOnly || RecoveryInProgress())
		return;
	Oid types[5] = {UUIDOID, TEXTOID, DATEOID, INT8OID, DATEOID};
	Datum values[5] = {UUIDPGetDatum(tenant), CStringGetTextDatum(core::QuotaMetricName(metric)),
	                   DateADTGetDatum(QuotaDayToDate(day)), Int64GetDatum(value),
	                   DateADTGetDatum(QuotaDayToDate(day - kHistoryDays))};
	SpiCall upsert = {"WITH expired AS (DELETE FROM tenancy.usage_history"
	                  " WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND metric OPERATOR(pg_catalog.=) $2"
	                  " AND day OPERATOR(pg_catalog.<) $5)"
	                  " INSERT INTO tenancy.usage_history AS h (tenant_id, metric, day, value)"
	                  " SELECT $1, $2, $3, $4 WHERE EXISTS (SELECT 1 FROM tenancy.tenants"
	                  " WHERE id OPERATOR(pg_catalog.=) $1)"
	                  " ON CONFLICT (tenant_id, metric, day) DO UPDATE SET value = EXCLUDED.value",
	                  5, types, values, false};
	SpiAsOwner(&upsert);
}

void
QuotaCounterLock(const pg_uuid_t *tenant, core::QuotaMetric metric)
{
	LOCKTAG tag;
	SetLockTag(&tag, tenant, metric);
	(void)LockAcquire(&tag, ExclusiveLock, true, false);
}

void
QuotaCounterUnlock(const pg_uuid_t *tenant, core::QuotaMetric metric)
{
	LOCKTAG tag;
	SetLockTag(&tag, tenant, metric);
	LockRelease(&tag, ExclusiveLock, true);
}

} // namespace tenancy::pg
