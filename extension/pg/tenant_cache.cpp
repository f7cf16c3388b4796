// extension/pg/tenant_cache.cpp
// Per-backend cache of tenant status and descendants; a statement trigger on tenancy.tenants invalidates it.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_cache.hpp"

extern "C" {
#include "postgres.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_tenants_changed);
}

namespace tenancy::pg {

namespace {

// One cached tenant. Descendants are loaded on first use (include_descendants policies only).
struct TenantEntry {
	pg_uuid_t id; /* hash key: must be first */
	bool exists;
	bool status_usable; /* status is trial or active */
	bool is_trial;
	bool has_trial_end;
	TimestampTz trial_ends_at;
	bool descendants_loaded;
	int descendant_count;
	pg_uuid_t *descendants; /* in cache_context */
};

MemoryContext cache_context = NULL;
HTAB *cache = NULL;
Oid tenants_relid = InvalidOid;
// Bumped by every relevant invalidation. A lookup that saw it move while it read the table does not cache what
// it read: the row may have changed under it.
uint64 invalidation_count = 0;

// Relcache callback: runs at invalidation processing time, possibly in the middle of other work, so it only
// marks the cache stale (no allocation, no catalog access). InvalidOid means "all relations".
void
TenantCacheRelcacheCallback(Datum, Oid relid)
{
	if (relid == InvalidOid || relid == tenants_relid) {
		invalidation_count++;
		if (relid == InvalidOid)
			tenants_relid = InvalidOid;
	}
}

void
InitTenantCache()
{
	CacheRegisterRelcacheCallback(TenantCacheRelcacheCallback, (Datum)0);
}
TENANCY_REGISTER_INIT(InitTenantCache, 10);

uint64 cache_built_at = 0;
// Whether the hash was filled in bulk since it was (re)built: a new backend (or one after an invalidation) would
// otherwise pay one lookup query per distinct tenant, e.g. for thousands of transactions after a pooler opens a
// connection. Up to kBulkLoadTenants rows are read in one query; tenants beyond that are looked up one by one.
bool bulk_loaded = false;
constexpr int kBulkLoadTenants = 10000;

// Drops every entry when an invalidation arrived since the hash was built; creates the hash on first use.
void
EnsureFreshCache()
{
	if (cache != NULL && cache_built_at == invalidation_count)
		return;
	if (cache_context == NULL)
		cache_context = AllocSetContextCreate(TopMemoryContext, "tenancy tenant cache", ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(cache_context);
	HASHCTL ctl;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(pg_uuid_t);
	ctl.entrysize = sizeof(TenantEntry);
	ctl.hcxt = cache_context;
	cache = hash_create("tenancy tenant cache", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	cache_built_at = invalidation_count;
	bulk_loaded = false;
}

void
ResolveTenantsRelid()
{
	if (OidIsValid(tenants_relid))
		return;
	Oid nsp = get_namespace_oid("tenancy", false);
	tenants_relid = get_relname_relid("tenants", nsp);
	if (!OidIsValid(tenants_relid))
		elog(ERROR, "relation tenancy.tenants does not exist");
}

// A snapshot that sees every committed change: a REPEATABLE READ transaction's snapshot could be older than an
// invalidation already processed, and caching what it sees would keep a stale status. Parallel mode cannot take
// a new snapshot; the active one is then used and the result is not cached (see LoadTenant).
Snapshot
LookupSnapshot()
{
	return IsInParallelMode() ? GetActiveSnapshot() : GetLatestSnapshot();
}

void
FillEntry(TenantEntry *e, HeapTuple tuple, TupleDesc desc, int status_col)
{
	bool isnull;
	char *status = SPI_getvalue(tuple, desc, status_col);
	e->exists = true;
	e->status_usable = strcmp(status, "trial") == 0 || strcmp(status, "active") == 0;
	e->is_trial = strcmp(status, "trial") == 0;
	Datum end = SPI_getbinval(tuple, desc, status_col + 1, &isnull);
	e->has_trial_end = !isnull;
	e->trial_ends_at = isnull ? 0 : DatumGetTimestampTz(end);
}

// Runs a lookup of tenancy.tenants (with no parameter, or the one uuid) in the caller's SPI connection, under
// LookupSnapshot(), reading at most limit rows (0: all); the rows are in SPI_tuptable.
void
ExecuteLookup(const char *sql, const pg_uuid_t *arg, long limit)
{
	Oid argtypes[1] = {UUIDOID};
	Datum values[1] = {PointerGetDatum(arg)};
	SPIPlanPtr plan = SPI_prepare(sql, arg != NULL ? 1 : 0, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	int rc = SPI_execute_snapshot(plan, values, NULL, LookupSnapshot(), InvalidSnapshot, true, false, limit);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "tenant lookup failed: %s", SPI_result_code_string(rc));
}

struct BulkQuery {
	int count;
	TenantEntry *rows; /* palloc'd in the caller's context */
	MemoryContext result_context;
};

// Runs as the extension owner.
void
ReadTenantRows(void *arg)
{
	BulkQuery *q = static_cast<BulkQuery *>(arg);
	SPI_connect();
	ExecuteLookup("SELECT id, status::pg_catalog.text, trial_ends_at FROM tenancy.tenants", NULL, kBulkLoadTenants);
	q->count = (int)SPI_processed;
	q->rows =
	    static_cast<TenantEntry *>(MemoryContextAllocZero(q->result_context, sizeof(TenantEntry) * (q->count + 1)));
	for (int i = 0; i < q->count; i++) {
		bool isnull;
		Datum id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		q->rows[i].id = *DatumGetUUIDP(id);
		FillEntry(&q->rows[i], SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2);
	}
	SPI_finish();
}

// Fills the fresh hash with up to kBulkLoadTenants tenants in one query (skipped in parallel mode, and not kept
// when an invalidation arrived meanwhile).
void
BulkLoad()
{
	bulk_loaded = true;
	if (IsInParallelMode())
		return;
	uint64 before = invalidation_count;
	BulkQuery q = {0, NULL, CurrentMemoryContext};
	RunAsExtensionOwner(ReadTenantRows, &q);
	if (before != invalidation_count)
		return;
	for (int i = 0; i < q.count; i++) {
		bool found;
		TenantEntry *entry = static_cast<TenantEntry *>(hash_search(cache, &q.rows[i].id, HASH_ENTER, &found));
		if (!found)
			*entry = q.rows[i];
	}
	pfree(q.rows);
}

struct TenantRowQuery {
	const pg_uuid_t *id;
	TenantEntry *row; /* filled in */
};

// Runs as the extension owner: app roles have no privilege on tenancy.tenants.
void
ReadTenantRow(void *arg)
{
	TenantRowQuery *q = static_cast<TenantRowQuery *>(arg);
	SPI_connect();
	ExecuteLookup(
	    "SELECT status::pg_catalog.text, trial_ends_at FROM tenancy.tenants WHERE id OPERATOR(pg_catalog.=) $1", q->id,
	    1);
	q->row->exists = SPI_processed > 0;
	if (q->row->exists)
		FillEntry(q->row, SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	SPI_finish();
}

// The cached entry of a tenant, loading it on a miss. The returned pointer is valid until the next invalidation
// is processed (any lock acquisition may process one), so callers copy what they need at once.
TenantEntry *
LoadTenant(const pg_uuid_t *id, TenantEntry *scratch)
{
	EnsureFreshCache();
	TenantEntry *entry = static_cast<TenantEntry *>(hash_search(cache, id, HASH_FIND, NULL));
	if (entry != NULL)
		return entry;

	ResolveTenantsRelid();
	if (!bulk_loaded) {
		BulkLoad();
		EnsureFreshCache();
		entry = static_cast<TenantEntry *>(hash_search(cache, id, HASH_FIND, NULL));
		if (entry != NULL)
			return entry;
	}
	uint64 before = invalidation_count;
	memset(scratch, 0, sizeof(*scratch));
	scratch->id = *id;
	TenantRowQuery q = {id, scratch};
	RunAsExtensionOwner(ReadTenantRow, &q);
	if (before != invalidation_count || IsInParallelMode())
		return scratch;

	EnsureFreshCache();
	bool found;
	entry = static_cast<TenantEntry *>(hash_search(cache, id, HASH_ENTER, &found));
	*entry = *scratch;
	return entry;
}

TenantUsability
UsabilityOf(const TenantEntry *e)
{
	if (!e->exists)
		return TenantUsability::kNotFound;
	if (!e->status_usable)
		return TenantUsability::kNotActive;
	if (e->is_trial && e->has_trial_end && e->trial_ends_at <= GetCurrentTransactionStartTimestamp())
		return TenantUsability::kNotActive;
	return TenantUsability::kUsable;
}

struct DescendantQuery {
	const pg_uuid_t *id;
	MemoryContext result_context;
	int count;
	pg_uuid_t *ids;
};

// Runs as the extension owner. The depth bound stops a cycle that a direct write might have created (the
// registry refuses cycles with TN007).
void
ReadDescendants(void *arg)
{
	DescendantQuery *q = static_cast<DescendantQuery *>(arg);
	SPI_connect();
	ExecuteLookup("WITH RECURSIVE d(id, depth) AS ("
	              "  SELECT t.id, 1 FROM tenancy.tenants t WHERE t.parent_tenant_id OPERATOR(pg_catalog.=) $1"
	              "  UNION"
	              "  SELECT t.id, d.depth OPERATOR(pg_catalog.+) 1 FROM tenancy.tenants t JOIN d"
	              "    ON t.parent_tenant_id OPERATOR(pg_catalog.=) d.id WHERE d.depth OPERATOR(pg_catalog.<) 64)"
	              " SELECT DISTINCT id FROM d WHERE id OPERATOR(pg_catalog.<>) $1",
	              q->id, 0);
	q->count = (int)SPI_processed;
	q->ids = static_cast<pg_uuid_t *>(MemoryContextAlloc(q->result_context, sizeof(pg_uuid_t) * (q->count + 1)));
	for (int i = 0; i < q->count; i++) {
		bool isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		q->ids[i] = *DatumGetUUIDP(d);
	}
	SPI_finish();
}

} // namespace

TenantUsability
LookupTenantUsability(const pg_uuid_t *id)
{
	TenantEntry scratch;
	return UsabilityOf(LoadTenant(id, &scratch));
}

void
RequireUsableTenant(const pg_uuid_t *id)
{
	switch (LookupTenantUsability(id)) {
	case TenantUsability::kUsable:
		return;
	case TenantUsability::kNotFound:
		ereport(ERROR, (errcode(TENANCY_ERRCODE_TENANT_NOT_FOUND),
		                errmsg("tenant \"%s\" does not exist",
		                       DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id))))));
		break;
	case TenantUsability::kNotActive:
		ereport(ERROR, (errcode(TENANCY_ERRCODE_TENANT_NOT_ACTIVE),
		                errmsg("tenant \"%s\" is not active",
		                       DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id)))),
		                errdetail("Only trial tenants whose trial has not ended and active tenants can be used as "
		                          "a tenant context.")));
		break;
	}
}

pg_uuid_t *
TenantAndDescendants(const pg_uuid_t *id, int *count)
{
	TenantEntry scratch;
	TenantEntry *entry = LoadTenant(id, &scratch);
	const pg_uuid_t *desc = entry->descendants;
	int ndesc = entry->descendant_count;

	if (!entry->descendants_loaded) {
		bool cacheable = entry != &scratch;
		uint64 before = invalidation_count;
		DescendantQuery q = {id, cacheable ? cache_context : CurrentMemoryContext, 0, NULL};
		RunAsExtensionOwner(ReadDescendants, &q);
		desc = q.ids;
		ndesc = q.count;
		/* the entry is still ours only if no invalidation was processed during the query */
		if (cacheable && before == invalidation_count && !IsInParallelMode()) {
			entry->descendants = q.ids;
			entry->descendant_count = q.count;
			entry->descendants_loaded = true;
		}
	}

	pg_uuid_t *out = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t) * (ndesc + 1)));
	out[0] = *id;
	if (ndesc > 0)
		memcpy(out + 1, desc, sizeof(pg_uuid_t) * ndesc);
	*count = ndesc + 1;
	return out;
}

} // namespace tenancy::pg

// tenancy._tenants_changed(): statement trigger on tenancy.tenants. A relcache invalidation of the table reaches
// every backend (at its next transaction start or lock), whose callback above flushes its tenant cache.
extern "C" Datum
tenancy_tenants_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("tenancy._tenants_changed() must be called as a trigger")));
	TriggerData *trigdata = (TriggerData *)fcinfo->context;
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
