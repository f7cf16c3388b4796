// extension/pg/quota_rate_limit.cpp
// rate_limit(tenant, key, per_second, burst): a per-tenant token bucket in shared memory beside the quota counters;
// refilled buckets are reclaimed, and no tenant holds more than its share of the table.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/quota_access.hpp"
#include "tenancy/pg/quota_store.hpp"
#include "tenancy/pg/tenant_cache.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

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
 * only let one extra burst through, never block a tenant.
 *
 * Fairness. The table is shared by every tenant, so no tenant may hold more than its share of it
 * (tenancy.rate_limit_max_buckets_per_tenant): past it, only that tenant's new keys fail (TN003), never another
 * tenant's. And a bucket that has refilled to its burst is the same as a new one, so it is reclaimed when room is
 * needed: a tenant at its share first gives back its own refilled buckets, a full table everyone's. Each sweep
 * also notes when the next bucket refills (at most a second ahead), so calls that cannot succeed before then fail
 * at once instead of scanning again.
 *
 * Layout: a fixed array of slots (the buckets, each under its own spinlock), a shared hash from key to slot and one
 * from tenant to its count and list of slots, and one LWLock over the hashes, lists and free list. A slot's
 * generation changes (under the lock and the slot's spinlock) whenever it is reclaimed, so a backend-local map
 * of key to (slot, generation) serves repeated calls with the slot's spinlock alone, and finds out under that same
 * spinlock when its slot was reclaimed (the memory of a slot is never freed, only reused).
 */

using namespace tenancy;

namespace {

constexpr int kMaxKeyLength = 63;
// A sweep that reclaimed nothing is not repeated before the first refill it saw, nor trusted longer than this (a
// later call with a higher per_second can make a bucket refill sooner).
constexpr TimestampTz kMaxSweepPause = USECS_PER_SEC;

struct TenantKey {
	Oid dbid;
	pg_uuid_t tenant;
};

struct BucketKey {
	TenantKey owner;
	char key[kMaxKeyLength + 1];
};

struct Slot {
	slock_t mutex;
	uint64 generation; // 0 while free
	BucketKey key;
	double tokens;
	double per_second; // the latest figures: when the bucket is full again
	int32 burst;
	TimestampTz updated_at;
	int32 next; // free list, or the owner's list of slots
	int32 prev;
};

struct IndexEntry {
	BucketKey key;
	int32 slot;
};

struct TenantEntry {
	TenantKey key;
	int32 count;
	int32 first;
	TimestampTz next_refill; // none of its buckets refills before this: no sweep of its own list until then
};

struct RateLimitShared {
	uint64 next_generation;
	int32 free_head;
	TimestampTz next_refill; // no bucket of the table refills before this
	Slot slots[FLEXIBLE_ARRAY_MEMBER];
};

struct LocalBucket {
	BucketKey key;
	int32 slot;
	uint64 generation;
};

RateLimitShared *shared = NULL;
LWLock *rate_lock = NULL;
HTAB *index_hash = NULL;
HTAB *tenant_hash = NULL;
HTAB *local_buckets = NULL;
int max_buckets = 16384;
int max_buckets_per_tenant = -1;
bool preloaded = false;
shmem_request_hook_type prev_shmem_request_hook = NULL;
shmem_startup_hook_type prev_shmem_startup_hook = NULL;

Size
SharedSize(void)
{
	Size size = add_size(offsetof(RateLimitShared, slots), mul_size(max_buckets, sizeof(Slot)));
	size = add_size(size, hash_estimate_size(max_buckets, sizeof(IndexEntry)));
	return add_size(size, hash_estimate_size(max_buckets, sizeof(TenantEntry)));
}

void
RateLimitShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(SharedSize());
	RequestNamedLWLockTranche("tenancy_rate_limit", 1);
}

void
RateLimitShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	bool found;
	shared = static_cast<RateLimitShared *>(ShmemInitStruct(
	    "tenancy rate limit", add_size(offsetof(RateLimitShared, slots), mul_size(max_buckets, sizeof(Slot))), &found));
	rate_lock = &(GetNamedLWLockTranche("tenancy_rate_limit"))->lock;
	if (!found) {
		shared->next_generation = 1;
		shared->next_refill = 0;
		shared->free_head = 0;
		for (int i = 0; i < max_buckets; i++) {
			Slot *s = &shared->slots[i];
			SpinLockInit(&s->mutex);
			s->generation = 0;
			s->next = i + 1 < max_buckets ? i + 1 : -1;
			s->prev = -1;
		}
	}
	HASHCTL info;
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(BucketKey);
	info.entrysize = sizeof(IndexEntry);
	index_hash = ShmemInitHash("tenancy rate limit keys", max_buckets, max_buckets, &info, HASH_ELEM | HASH_BLOBS);
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(TenantKey);
	info.entrysize = sizeof(TenantEntry);
	tenant_hash = ShmemInitHash("tenancy rate limit tenants", max_buckets, max_buckets, &info, HASH_ELEM | HASH_BLOBS);
	LWLockRelease(AddinShmemInitLock);
}

void
InitRateLimit(void)
{
	DefineCustomIntVariable("tenancy.rate_limit_max_buckets_per_tenant",
	                        "Most rate_limit buckets one tenant may hold (-1: a sixteenth of the table, at least 16).",
	                        "Past it, that tenant's calls with new keys fail (TN003) until its buckets refill.",
	                        &max_buckets_per_tenant, -1, -1, INT_MAX / 2, PGC_SUSET, 0, NULL, NULL, NULL);
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

int
TenantCap(void)
{
	if (max_buckets_per_tenant >= 0)
		return std::max(1, std::min(max_buckets_per_tenant, max_buckets));
	return std::max(16, max_buckets / 16);
}

// Under the slot's spinlock: takes a token (true) or finds the bucket empty (false), after refilling it for the
// time passed; the bucket follows the call's figures.
bool
TakeToken(Slot *s, double per_second, int32 burst, TimestampTz now)
{
	double elapsed = now > s->updated_at ? static_cast<double>(now - s->updated_at) / USECS_PER_SEC : 0.0;
	double tokens = s->tokens + elapsed * per_second;
	if (tokens > burst)
		tokens = burst;
	bool allowed = tokens >= 1.0;
	if (allowed)
		tokens -= 1.0;
	s->tokens = tokens;
	s->per_second = per_second;
	s->burst = burst;
	if (now > s->updated_at)
		s->updated_at = now;
	return allowed;
}

// Under the slot's spinlock: when the bucket holds its burst again (now or earlier: it is as good as new).
TimestampTz
RefilledAt(const Slot *s)
{
	double missing = s->burst - s->tokens;
	if (missing <= 0)
		return s->updated_at;
	double seconds = missing / s->per_second;
	if (seconds > 1e9)
		return DT_NOEND;
	return s->updated_at + static_cast<TimestampTz>(std::ceil(seconds * USECS_PER_SEC));
}

// Under the lock (exclusive): unlinks a slot from its owner and the index and frees it. keep: a tenant entry
// not to remove even when it holds nothing any more (the caller's).
void
FreeSlot(int32 i, TenantEntry *owner, TenantEntry *keep)
{
	Slot *s = &shared->slots[i];
	(void)hash_search(index_hash, &s->key, HASH_REMOVE, NULL);
	if (s->prev >= 0)
		shared->slots[s->prev].next = s->next;
	else
		owner->first = s->next;
	if (s->next >= 0)
		shared->slots[s->next].prev = s->prev;
	owner->count--;
	if (owner->count == 0 && owner != keep)
		(void)hash_search(tenant_hash, &owner->key, HASH_REMOVE, NULL);
	s->next = shared->free_head;
	s->prev = -1;
	shared->free_head = i;
}

// Under the lock (exclusive): reclaims slot i if its bucket has refilled (generation cleared under its spinlock,
// so a backend holding its address sees the change); otherwise returns when it will have.
bool
ReclaimIfRefilled(int32 i, TimestampTz now, TimestampTz *refill)
{
	Slot *s = &shared->slots[i];
	SpinLockAcquire(&s->mutex);
	TimestampTz at = RefilledAt(s);
	bool refilled = at <= now;
	if (refilled)
		s->generation = 0;
	SpinLockRelease(&s->mutex);
	if (!refilled && at < *refill)
		*refill = at;
	return refilled;
}

// Under the lock (exclusive): reclaims every refilled bucket of one tenant.
void
SweepTenant(TenantEntry *t, TimestampTz now)
{
	TimestampTz refill = DT_NOEND;
	for (int32 i = t->first; i >= 0;) {
		int32 next = shared->slots[i].next;
		if (ReclaimIfRefilled(i, now, &refill))
			FreeSlot(i, t, t);
		i = next;
	}
	t->next_refill = std::min(refill, now + kMaxSweepPause);
}

// Under the lock (exclusive): reclaims every refilled bucket of the table.
void
SweepAll(TenantEntry *keep, TimestampTz now)
{
	TimestampTz refill = DT_NOEND;
	for (int32 i = 0; i < max_buckets; i++) {
		Slot *s = &shared->slots[i];
		if (s->generation == 0) /* only changes under the lock we hold */
			continue;
		if (!ReclaimIfRefilled(i, now, &refill))
			continue;
		TenantEntry *owner = static_cast<TenantEntry *>(hash_search(tenant_hash, &s->key.owner, HASH_FIND, NULL));
		Assert(owner != NULL);
		FreeSlot(i, owner, keep);
	}
	shared->next_refill = std::min(refill, now + kMaxSweepPause);
}

enum class Created { kOk, kTenantFull, kTableFull };

// Under the lock (exclusive): a new full bucket for key, taking its first token; or why there is no room.
Created
CreateBucket(const BucketKey *key, double per_second, int32 burst, TimestampTz now, int32 *slot, uint64 *generation,
             bool *allowed, int *held)
{
	bool found;
	TenantEntry *t = static_cast<TenantEntry *>(hash_search(tenant_hash, &key->owner, HASH_FIND, NULL));
	if (t == NULL) {
		/* one entry per tenant holding a bucket, so as many entries as slots means a full table */
		if (hash_get_num_entries(tenant_hash) >= max_buckets && now >= shared->next_refill)
			SweepAll(NULL, now);
		if (hash_get_num_entries(tenant_hash) >= max_buckets)
			return Created::kTableFull;
		t = static_cast<TenantEntry *>(hash_search(tenant_hash, &key->owner, HASH_ENTER, &found));
		t->count = 0;
		t->first = -1;
		t->next_refill = 0;
	}
	int cap = TenantCap();
	if (t->count >= cap && now >= t->next_refill)
		SweepTenant(t, now);
	if (t->count >= cap) {
		*held = t->count;
		if (t->count == 0)
			(void)hash_search(tenant_hash, &key->owner, HASH_REMOVE, NULL);
		return Created::kTenantFull;
	}
	if (shared->free_head < 0 && now >= shared->next_refill)
		SweepAll(t, now);
	if (shared->free_head < 0) {
		if (t->count == 0)
			(void)hash_search(tenant_hash, &key->owner, HASH_REMOVE, NULL);
		return Created::kTableFull;
	}

	int32 i = shared->free_head;
	Slot *s = &shared->slots[i];
	shared->free_head = s->next;
	IndexEntry *e = static_cast<IndexEntry *>(hash_search(index_hash, key, HASH_ENTER, &found));
	Assert(!found);
	e->slot = i;
	s->next = t->first;
	s->prev = -1;
	if (t->first >= 0)
		shared->slots[t->first].prev = i;
	t->first = i;
	t->count++;
	*generation = shared->next_generation++;
	SpinLockAcquire(&s->mutex);
	s->key = *key;
	s->generation = *generation;
	s->tokens = burst;
	s->updated_at = now;
	*allowed = TakeToken(s, per_second, burst, now);
	SpinLockRelease(&s->mutex);
	*slot = i;
	return Created::kOk;
}

void
Remember(const BucketKey *key, int32 slot, uint64 generation)
{
	if (local_buckets != NULL && hash_get_num_entries(local_buckets) >= max_buckets) {
		/* keys come and go: forget them all rather than grow without bound */
		hash_destroy(local_buckets);
		local_buckets = NULL;
	}
	if (local_buckets == NULL) {
		HASHCTL info;
		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(BucketKey);
		info.entrysize = sizeof(LocalBucket);
		info.hcxt = TopMemoryContext;
		local_buckets = hash_create("tenancy rate limit slots", 64, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	bool found;
	LocalBucket *local = static_cast<LocalBucket *>(hash_search(local_buckets, key, HASH_ENTER, &found));
	local->slot = slot;
	local->generation = generation;
}

// A token from the bucket of key (true) or none (false); the bucket is created full on first use. Raises TN003
// when the tenant holds its share of buckets, 54000 when the table is full, none of them refilled.
bool
Take(const BucketKey *key, double per_second, int32 burst, TimestampTz now)
{
	/* the fast path: the slot this backend used last time, if it still holds this key */
	if (local_buckets != NULL) {
		LocalBucket *local = static_cast<LocalBucket *>(hash_search(local_buckets, key, HASH_FIND, NULL));
		if (local != NULL) {
			Slot *s = &shared->slots[local->slot];
			SpinLockAcquire(&s->mutex);
			bool same = s->generation == local->generation;
			bool allowed = same && TakeToken(s, per_second, burst, now);
			SpinLockRelease(&s->mutex);
			if (same)
				return allowed;
			(void)hash_search(local_buckets, key, HASH_REMOVE, NULL);
		}
	}

	/* another backend's bucket: no reclaim can run while we hold the lock, even shared */
	LWLockAcquire(rate_lock, LW_SHARED);
	IndexEntry *e = static_cast<IndexEntry *>(hash_search(index_hash, key, HASH_FIND, NULL));
	if (e != NULL) {
		Slot *s = &shared->slots[e->slot];
		SpinLockAcquire(&s->mutex);
		uint64 generation = s->generation;
		bool allowed = TakeToken(s, per_second, burst, now);
		SpinLockRelease(&s->mutex);
		int32 slot = e->slot;
		LWLockRelease(rate_lock);
		Remember(key, slot, generation);
		return allowed;
	}
	LWLockRelease(rate_lock);

	LWLockAcquire(rate_lock, LW_EXCLUSIVE);
	int32 slot = -1;
	uint64 generation = 0;
	bool allowed = false;
	int held = 0;
	Created created;
	e = static_cast<IndexEntry *>(hash_search(index_hash, key, HASH_FIND, NULL));
	if (e != NULL) {
		Slot *s = &shared->slots[e->slot];
		SpinLockAcquire(&s->mutex);
		generation = s->generation;
		allowed = TakeToken(s, per_second, burst, now);
		SpinLockRelease(&s->mutex);
		slot = e->slot;
		created = Created::kOk;
	} else {
		created = CreateBucket(key, per_second, burst, now, &slot, &generation, &allowed, &held);
	}
	LWLockRelease(rate_lock);

	if (created == Created::kTenantFull)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_QUOTA_EXCEEDED), errmsg("too many rate limit keys for this tenant"),
		                errdetail("The tenant holds %d rate limit buckets that have not refilled, its share of the "
		                          "table (tenancy.rate_limit_max_buckets_per_tenant); other tenants are not affected.",
		                          held),
		                errhint("Use fewer distinct keys: a bucket is reclaimed once it has refilled to its burst.")));
	if (created == Created::kTableFull)
		ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED), errmsg("too many rate limit buckets"),
		                errdetail("All %d buckets are in use and none has refilled.", max_buckets),
		                errhint("Raise tenancy.rate_limit_max_buckets and restart the server, or lower "
		                        "tenancy.rate_limit_max_buckets_per_tenant.")));
	Remember(key, slot, generation);
	return allowed;
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
	if (!preloaded || shared == NULL)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("rate_limit needs tenancy in shared_preload_libraries"),
		                errhint("Add tenancy to shared_preload_libraries and restart the server.")));
	if (pg::LookupTenantUsability(tenant) == pg::TenantUsability::kNotFound)
		pg::QuotaTenantNotFound(tenant);

	BucketKey key;
	memset(&key, 0, sizeof(key));
	key.owner.dbid = MyDatabaseId;
	memcpy(key.owner.tenant.data, tenant->data, UUID_LEN);
	memcpy(key.key, VARDATA_ANY(key_text), key_length); /* in place: no copy of the text per call */
	PG_RETURN_BOOL(Take(&key, per_second, burst, GetCurrentTimestamp()));
}
