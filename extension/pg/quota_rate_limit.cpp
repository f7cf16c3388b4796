// extension/pg/quota_rate_limit.cpp
// rate_limit(tenant, key, per_second, burst): a per-tenant token bucket in shared memory beside the quota counters.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/quota_access.hpp"
#include "tenancy/pg/quota_store.hpp"
#include "tenancy/pg/tenant_cache.hpp"

#include <cmath>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_rate_limit);
}

/*
 * One bucket per (database, tenant, key): it holds up to `burst` tokens and gains `per_second` tokens a second;
 * each call takes one token or is refused. The figures come with every call (the caller owns its policy), so a
 * bucket simply follows the latest ones. Buckets are not durable: a restart starts every bucket full, which can
 * only let one extra burst through, never block a tenant. Entries are never removed while the server runs (a
 * backend-local map keeps their addresses, as for the quota counters).
 */

using namespace tenancy;

namespace {

constexpr int kMaxKeyLength = 63;
constexpr int kPartitions = 16;

struct BucketKey {
	Oid dbid;
	pg_uuid_t tenant;
	char key[kMaxKeyLength + 1];
};

struct Bucket {
	BucketKey key;
	slock_t mutex;
	double tokens;
	TimestampTz updated_at;
};

struct LocalBucket {
	BucketKey key;
	Bucket *bucket;
};

HTAB *buckets = NULL;
HTAB *local_buckets = NULL;
LWLockPadded *partition_locks = NULL;
int max_buckets = 16384;
bool preloaded = false;
shmem_request_hook_type prev_shmem_request_hook = NULL;
shmem_startup_hook_type prev_shmem_startup_hook = NULL;

void
RateLimitShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(hash_estimate_size(max_buckets, sizeof(Bucket)));
	RequestNamedLWLockTranche("tenancy_rate_limit", kPartitions);
}

void
RateLimitShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	HASHCTL info;
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(BucketKey);
	info.entrysize = sizeof(Bucket);
	info.num_partitions = kPartitions;
	buckets = ShmemInitHash("tenancy rate limit buckets", max_buckets, max_buckets, &info,
	                        HASH_ELEM | HASH_BLOBS | HASH_PARTITION);
	partition_locks = GetNamedLWLockTranche("tenancy_rate_limit");
	LWLockRelease(AddinShmemInitLock);
}

void
InitRateLimit(void)
{
	preloaded = pg::LoadedAtStartup();
	if (!preloaded)
		return;
	DefineCustomIntVariable("tenancy.rate_limit_max_buckets", "Number of rate_limit buckets kept in shared memory.",
	                        "One per tenant and key used with tenancy.rate_limit().", &max_buckets, 16384, 64,
	                        INT_MAX / 2, PGC_POSTMASTER, 0, NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = RateLimitShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = RateLimitShmemStartup;
}
TENANCY_REGISTER_INIT(InitRateLimit, 31);

// The bucket of a key, created full on first use; NULL when the table is full.
Bucket *
FindOrCreateBucket(const BucketKey *key, double burst, TimestampTz now)
{
	if (local_buckets == NULL) {
		HASHCTL info;
		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(BucketKey);
		info.entrysize = sizeof(LocalBucket);
		info.hcxt = TopMemoryContext;
		local_buckets = hash_create("tenancy rate limit pointers", 64, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	LocalBucket *local = static_cast<LocalBucket *>(hash_search(local_buckets, key, HASH_FIND, NULL));
	if (local != NULL)
		return local->bucket;

	uint32 hash = get_hash_value(buckets, key);
	LWLock *lock = &partition_locks[hash % kPartitions].lock;
	LWLockAcquire(lock, LW_EXCLUSIVE);
	Bucket *b = static_cast<Bucket *>(hash_search_with_hash_value(buckets, key, hash, HASH_FIND, NULL));
	if (b == NULL && hash_get_num_entries(buckets) < max_buckets) {
		bool found;
		b = static_cast<Bucket *>(hash_search_with_hash_value(buckets, key, hash, HASH_ENTER_NULL, &found));
		if (b != NULL && !found) {
			SpinLockInit(&b->mutex);
			b->tokens = burst;
			b->updated_at = now;
		}
	}
	LWLockRelease(lock);
	if (b != NULL) {
		bool found;
		local = static_cast<LocalBucket *>(hash_search(local_buckets, key, HASH_ENTER, &found));
		local->bucket = b;
	}
	return b;
}

} // namespace

// tenancy.rate_limit(tenant_id uuid, key text, per_second double precision, burst integer) -> boolean: takes a
// token from the tenant's bucket for key (true), or refuses (false) when it is empty.
extern "C" Datum
tenancy_rate_limit(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	text *key_text = PG_GETARG_TEXT_PP(1);
	double per_second = PG_GETARG_FLOAT8(2);
	int32 burst = PG_GETARG_INT32(3);

	pg::RequireQuotaAccess(tenant);
	size_t key_length = VARSIZE_ANY_EXHDR(key_text);
	if (key_length == 0 || key_length > kMaxKeyLength)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("rate limit key must have 1 to %d bytes", kMaxKeyLength)));
	if (!(per_second > 0) || std::isinf(per_second))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("per_second must be a positive number")));
	if (burst < 1)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("burst must be at least 1")));
	if (!preloaded || buckets == NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("rate_limit needs tenancy in shared_preload_libraries"),
		                errhint("Add tenancy to shared_preload_libraries and restart the server.")));
	if (pg::LookupTenantUsability(tenant) == pg::TenantUsability::kNotFound)
		pg::QuotaTenantNotFound(tenant);

	BucketKey key;
	memset(&key, 0, sizeof(key));
	key.dbid = MyDatabaseId;
	memcpy(key.tenant.data, tenant->data, UUID_LEN);
	memcpy(key.key, VARDATA_ANY(key_text), key_length); /* in place: no copy of the text per call */
	TimestampTz now = GetCurrentTimestamp();
	Bucket *b = FindOrCreateBucket(&key, burst, now);
	if (b == NULL)
		ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED), errmsg("too many rate limit buckets"),
		                errhint("Raise tenancy.rate_limit_max_buckets and restart the server.")));

	SpinLockAcquire(&b->mutex);
	double elapsed = now > b->updated_at ? static_cast<double>(now - b->updated_at) / USECS_PER_SEC : 0.0;
	double tokens = b->tokens + elapsed * per_second;
	if (tokens > burst)
		tokens = burst;
	bool allowed = tokens >= 1.0;
	if (allowed)
		tokens -= 1.0;
	b->tokens = tokens;
	if (now > b->updated_at)
		b->updated_at = now;
	SpinLockRelease(&b->mutex);
	PG_RETURN_BOOL(allowed);
}
