// extension/pg/quota_counter.cpp
// Quota counters in shared memory, replenished from durable reservations in blocks; table-only path otherwise.
#include "tenancy/pg/quota_counter.hpp"

#include "tenancy/core/quota_block.hpp"
#include "tenancy/core/quota_metric.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/quota_store.hpp"

#include <algorithm>

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "port/atomics.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/lwlock.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
}

/*
 * Design (docs/quotas.md has the user-facing version).
 *
 * Each (database, tenant, metric) counter is an entry of a partitioned shared hash table. The entry holds the usage
 * of the current window ("used"), the durable upper bound written to tenancy.quota_counters ("reserved") and the
 * cached limit. A consume that fits under both the limit and the reservation is a few instructions under the
 * entry's spinlock: no lock of any table, no WAL. When the reservation runs low, one backend (the entry's "busy"
 * owner) extends it by a block with an in-place, WAL-flushed write of the row, then publishes the new bound; the
 * others keep consuming what is left meanwhile and only wait (on the entry's condition variable) if it runs out.
 *
 * Invariants: used <= reserved in shared memory, and the durable row's reserved >= the shared one whenever units
 * are handed out from it (a bound grows on disk before it grows in memory, shrinks in memory before on disk). So
 * after a crash, reloading used := reserved can only over-count, by at most the unused part of one block per
 * counter, and reserved never passes the limit for a consume. The limit itself is checked against used under the
 * spinlock, so concurrent callers can never pass it.
 *
 * Entries are never removed while the server runs (pointers stay valid without reference counts); when the table
 * is full, further counters use the table path, which serialises each call on a session lock per counter and
 * writes the row in place every time. A counter only enters shared memory while holding that same lock, so a
 * counter is served by exactly one of the two paths.
 */

namespace tenancy::pg {

namespace {

struct CounterKey {
	Oid dbid;
	int32 metric;
	pg_uuid_t tenant;
};

struct Counter {
	CounterKey key;
	slock_t mutex;
	bool loaded; // used/reserved/limit read from the table
	bool busy;   // one backend is loading, refreshing the limit, closing a day or moving the durable bound
	int32 window_start;
	int32 active_day;
	int64 used;
	int64 reserved;
	int64 pooled; // what this tenant's own consume_pooled calls added along its chain and did not give back
	int64 limit;
	uint64 limit_generation;
	TransactionId row_xmin; // the durable row loaded from; another version means the counter was re-created
	TimestampTz last_audit;
	int64 refused_since_audit;
	ConditionVariable cv; // broadcast whenever busy is cleared
};

constexpr int kPartitions = 16;

struct QuotaShared {
	pg_atomic_uint64 generation; // bumped whenever a limit may have changed
};

QuotaShared *quota_shared = NULL;
HTAB *counters = NULL;
LWLockPadded *partition_locks = NULL;

int max_counters = 65536;
int max_block = 4096;
int audit_interval_s = 10;
bool preloaded = false;
bool fallback_logged = false;
bool bump_at_commit = false;
bool xact_callback_registered = false;

shmem_request_hook_type prev_shmem_request_hook = NULL;
shmem_startup_hook_type prev_shmem_startup_hook = NULL;

// Table path only: per-backend audit rate limiting (shared memory is not there to hold it).
struct LocalAudit {
	CounterKey key;
	TimestampTz last_audit;
	int64 refused_since_audit;
};
HTAB *local_audit = NULL;

Size
QuotaShmemSize(void)
{
	return add_size(MAXALIGN(sizeof(QuotaShared)), hash_estimate_size(max_counters, sizeof(Counter)));
}

void
QuotaShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(QuotaShmemSize());
	RequestNamedLWLockTranche("tenancy_quota", kPartitions);
}

// Runs in the postmaster at start and after every crash restart: the counters start empty and reload from the
// durable rows on first use.
void
QuotaShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();

	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	bool found;
	quota_shared = static_cast<QuotaShared *>(ShmemInitStruct("tenancy quota", sizeof(QuotaShared), &found));
	if (!found)
		pg_atomic_init_u64(&quota_shared->generation, 1);
	HASHCTL info;
	memset(&info, 0, sizeof(info));
	info.keysize = sizeof(CounterKey);
	info.entrysize = sizeof(Counter);
	info.num_partitions = kPartitions;
	counters = ShmemInitHash("tenancy quota counters", max_counters, max_counters, &info,
	                         HASH_ELEM | HASH_BLOBS | HASH_PARTITION);
	partition_locks = GetNamedLWLockTranche("tenancy_quota");
	LWLockRelease(AddinShmemInitLock);
}

void
QuotaXactCallback(XactEvent event, void *)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_PARALLEL_COMMIT) {
		if (bump_at_commit && quota_shared != NULL)
			pg_atomic_fetch_add_u64(&quota_shared->generation, 1);
		bump_at_commit = false;
	} else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PARALLEL_ABORT) {
		bump_at_commit = false;
	}
}

// GUCs and, when preloaded, the shared-memory hooks (PostgreSQL 15: shmem_request_hook for the request).
void
InitQuota(void)
{
	DefineCustomIntVariable("tenancy.quota_max_block", "Largest durable reservation block of a quota counter.",
	                        "A crash can over-count a counter by at most this many units.", &max_block, 4096, 1,
	                        1000000, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("tenancy.quota_audit_interval",
	                        "Least time between two quota_exceeded audit events of one tenant and metric.", NULL,
	                        &audit_interval_s, 10, 0, 86400, PGC_SUSET, GUC_UNIT_S, NULL, NULL, NULL);

	preloaded = LoadedAtStartup();
	if (preloaded) {
		/* PGC_POSTMASTER settings can only be defined while preloading (later it is a FATAL error) */
		DefineCustomIntVariable("tenancy.quota_max_counters",
		                        "Number of (tenant, metric) quota counters kept in shared memory.",
		                        "Counters beyond this use the slower table path. Six per tenant.", &max_counters, 65536,
		                        64, INT_MAX / 2, PGC_POSTMASTER, 0, NULL, NULL, NULL);
		prev_shmem_request_hook = shmem_request_hook;
		shmem_request_hook = QuotaShmemRequest;
		prev_shmem_startup_hook = shmem_startup_hook;
		shmem_startup_hook = QuotaShmemStartup;
	}
}
TENANCY_REGISTER_INIT(InitQuota, 30);

void
EnsureXactCallback(void)
{
	if (!xact_callback_registered) {
		RegisterXactCallback(QuotaXactCallback, NULL);
		xact_callback_registered = true;
	}
}

bool
SharedReady(void)
{
	if (preloaded && counters != NULL)
		return true;
	if (!fallback_logged) {
		ereport(LOG, (errmsg("tenancy quota counters use the table-only path"),
		              errdetail("The library tenancy is not in shared_preload_libraries, so every consume locks "
		                        "and writes its counter row."),
		              errhint("Add tenancy to shared_preload_libraries and restart the server.")));
		fallback_logged = true;
	}
	return false;
}

void
MakeKey(CounterKey *key, const pg_uuid_t *tenant, core::QuotaMetric metric)
{
	memset(key, 0, sizeof(*key));
	key->dbid = MyDatabaseId;
	key->metric = static_cast<int32>(metric);
	memcpy(key->tenant.data, tenant->data, UUID_LEN);
}

Counter *
FindCounter(const CounterKey *key, uint32 hash)
{
	LWLock *lock = &partition_locks[hash % kPartitions].lock;
	LWLockAcquire(lock, LW_SHARED);
	Counter *c = static_cast<Counter *>(hash_search_with_hash_value(counters, key, hash, HASH_FIND, NULL));
	LWLockRelease(lock);
	return c;
}

// Backend-local map from counter key to its shared entry: entries never move or leave while the server runs, so
// after the first look-up a call touches no shared lock but the entry's own spinlock (a hot tenant's 16 callers
// would otherwise all bounce one partition lock's cache line).
struct LocalCounter {
	CounterKey key;
	Counter *counter;
};
HTAB *local_counters = NULL;

void
RememberCounter(const CounterKey *key, Counter *c)
{
	bool found;
	LocalCounter *local = static_cast<LocalCounter *>(hash_search(local_counters, key, HASH_ENTER, &found));
	local->counter = c;
}

// The shared entry of a counter, created (not yet loaded) when missing; NULL when the table is full. Entries are
// created only for tenants that exist, so unknown ids cannot fill the table.
Counter *
FindOrCreateCounter(const pg_uuid_t *tenant, core::QuotaMetric metric)
{
	CounterKey key;
	MakeKey(&key, tenant, metric);
	if (local_counters == NULL) {
		HASHCTL info;
		memset(&info, 0, sizeof(info));
		info.keysize = sizeof(CounterKey);
		info.entrysize = sizeof(LocalCounter);
		info.hcxt = TopMemoryContext;
		local_counters =
		    hash_create("tenancy quota counter pointers", 256, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	LocalCounter *local = static_cast<LocalCounter *>(hash_search(local_counters, &key, HASH_FIND, NULL));
	if (local != NULL)
		return local->counter;

	uint32 hash = get_hash_value(counters, &key);
	Counter *c = FindCounter(&key, hash);
	if (c != NULL) {
		RememberCounter(&key, c);
		return c;
	}

	if (!QuotaEnsureRows(tenant, metric))
		QuotaTenantNotFound(tenant);

	LWLock *lock = &partition_locks[hash % kPartitions].lock;
	LWLockAcquire(lock, LW_EXCLUSIVE);
	bool found = false;
	c = static_cast<Counter *>(hash_search_with_hash_value(counters, &key, hash, HASH_FIND, NULL));
	if (c == NULL && hash_get_num_entries(counters) < max_counters) {
		c = static_cast<Counter *>(hash_search_with_hash_value(counters, &key, hash, HASH_ENTER_NULL, &found));
		if (c != NULL && !found) {
			SpinLockInit(&c->mutex);
			c->loaded = false;
			c->busy = false;
			c->window_start = 0;
			c->active_day = 0;
			c->used = 0;
			c->reserved = 0;
			c->pooled = 0;
			c->limit = 0;
			c->limit_generation = 0;
			c->row_xmin = InvalidTransactionId;
			c->last_audit = 0;
			c->refused_since_audit = 0;
			ConditionVariableInit(&c->cv);
		}
	}
	LWLockRelease(lock);
	if (c != NULL)
		RememberCounter(&key, c);
	return c;
}

// The counter whose busy flag this backend holds, if any. A FATAL error (pg_terminate_backend during a refill's
// WAL flush) exits without running PG_CATCH; the exit callback then clears the flag, or every caller of that
// counter would wait forever.
Counter *busy_counter = NULL;
bool exit_callback_registered = false;

// Clears busy and wakes the waiters; used on success and on error.
void
ReleaseBusy(Counter *c)
{
	SpinLockAcquire(&c->mutex);
	c->busy = false;
	SpinLockRelease(&c->mutex);
	ConditionVariableBroadcast(&c->cv);
	busy_counter = NULL;
}

void
QuotaBackendExit(int, Datum)
{
	if (busy_counter != NULL)
		ReleaseBusy(busy_counter);
}

enum class SlowWork { kLoad, kRefreshLimit, kCloseDay, kGrow, kShrink };

struct SlowArgs {
	Counter *c;
	const pg_uuid_t *tenant;
	core::QuotaMetric metric;
	int32 window;
	int32 today;
	// kCloseDay: the reading of the day being closed; kGrow/kShrink: the new durable bound
	int32 day;
	int64 value;
	uint64 generation;
};

// kLoad: under the counter lock, so no table-path call of this counter is in flight while we read its row.
void
LoadCounter(SlowArgs *a)
{
	QuotaRow row;
	bool have_row;
	QuotaCounterLock(a->tenant, a->metric);
	PG_TRY();
	{
		have_row = QuotaRowRead(a->tenant, a->metric, &row);
	}
	PG_FINALLY();
	{
		QuotaCounterUnlock(a->tenant, a->metric);
	}
	PG_END_TRY();
	if (!have_row)
		QuotaTenantNotFound(a->tenant);
	int64 limit = QuotaLimit(a->tenant, a->metric);
	if (a->metric == core::QuotaMetric::kUsers || a->metric == core::QuotaMetric::kProjects) {
		/*
		 * Row counts are recounted instead of trusting the durable bound, which after a restart may hold the unused
		 * part of a block (a false TN003 for the next insert). Exact: every row inserted or deleted since the
		 * server started went through this counter's trigger, which loads the counter first, so only rows from
		 * before exist now, all visible to our snapshot. The bound is then rewritten to the count (durably first).
		 */
		int64 counted = QuotaCountRows(a->tenant, a->metric);
		if (counted != row.reserved) {
			row.reserved = counted;
			QuotaRowWrite(a->tenant, a->metric, &row);
		}
	}

	Counter *c = a->c;
	SpinLockAcquire(&c->mutex);
	c->limit = limit;
	c->limit_generation = a->generation;
	c->active_day = row.active_day;
	c->row_xmin = row.xmin;
	if (core::QuotaWindowOf(a->metric) != core::QuotaWindow::kNone && row.window_start < a->window) {
		/* the row is from a past window: the new one starts at zero (the row moves on the first refill) */
		c->window_start = a->window;
		c->used = 0;
		c->reserved = 0;
	} else {
		/* after a restart the unused part of the last block counts as used: over-count, never under-count */
		c->window_start = row.window_start;
		c->used = row.reserved;
		c->reserved = row.reserved;
	}
	/* what the tenant drew from its pool is not durable: after a (re)load, its own usage is the bound of what
	 * release_pooled may give back (it can never give back more than the tenant itself counts) */
	c->pooled = c->used;
	c->loaded = true;
	SpinLockRelease(&c->mutex);
}

void
RunSlowWork(SlowWork work, SlowArgs *a)
{
	Counter *c = a->c;
	if (!exit_callback_registered) {
		before_shmem_exit(QuotaBackendExit, (Datum)0);
		exit_callback_registered = true;
	}
	busy_counter = c;
	PG_TRY();
	{
		switch (work) {
		case SlowWork::kLoad:
			LoadCounter(a);
			break;
		case SlowWork::kRefreshLimit: {
			/* the tenant may have been deleted, or deleted and re-created with the same id (a restore): the
			 * counter then no longer describes the row and must be loaded again */
			QuotaRow row;
			bool have_row = QuotaRowRead(a->tenant, a->metric, &row);
			SpinLockAcquire(&c->mutex);
			bool same_row = have_row && row.xmin == c->row_xmin;
			if (!same_row)
				c->loaded = false;
			SpinLockRelease(&c->mutex);
			if (!have_row)
				QuotaTenantNotFound(a->tenant);
			if (!same_row)
				break;
			int64 limit = QuotaLimit(a->tenant, a->metric);
			SpinLockAcquire(&c->mutex);
			c->limit = limit;
			c->limit_generation = a->generation;
			SpinLockRelease(&c->mutex);
			break;
		}
		case SlowWork::kCloseDay:
			QuotaHistoryWrite(a->tenant, a->metric, a->day, a->value);
			break;
		case SlowWork::kGrow: {
			/* durable first, then visible: no unit is handed out from a bound that is not on disk */
			QuotaRow row = {a->window, a->value, a->today};
			QuotaRowWrite(a->tenant, a->metric, &row);
			SpinLockAcquire(&c->mutex);
			if (a->value > c->reserved)
				c->reserved = a->value;
			SpinLockRelease(&c->mutex);
			break;
		}
		case SlowWork::kShrink: {
			/* the shared bound was lowered before this write (under the spinlock); a crash before it over-counts */
			QuotaRow row = {a->window, a->value, a->today};
			QuotaRowWrite(a->tenant, a->metric, &row);
			break;
		}
		}
	}
	PG_CATCH();
	{
		ReleaseBusy(c);
		PG_RE_THROW();
	}
	PG_END_TRY();
	ReleaseBusy(c);
}

// kPrepare: everything a consume does short of counting (load, refresh, window, day, reservation), for pooled
// consumes that then count in several counters at once.
enum class Op { kConsume, kPrepare, kRelease, kSet, kRead };

// Rate limit of quota_exceeded events: one per counter per tenancy.quota_audit_interval. A refusal whose caller
// cannot keep an event (track_quota's trigger: its error rolls the event back; consume_or_raise queues its event
// for the audit writer instead) only adds to the count the next event reports as suppressed.
bool
AuditDue(TimestampTz *last_audit, int64 *refused_since_audit, TimestampTz now, bool can_audit, int64 *suppressed)
{
	(*refused_since_audit)++;
	if (!can_audit)
		return false;
	if (*last_audit != 0 && now - *last_audit < int64{audit_interval_s} * USECS_PER_SEC)
		return false;
	*suppressed = *refused_since_audit - 1;
	*refused_since_audit = 0;
	*last_audit = now;
	return true;
}

// The shared-memory path of every operation. Returns false only for a refused consume.
bool
SharedApply(Counter *c, const pg_uuid_t *tenant, core::QuotaMetric metric, Op op, int64 amount, int64 now_us,
            QuotaRefusal *refusal, QuotaReading *reading)
{
	core::QuotaWindow kind = core::QuotaWindowOf(metric);
	SlowArgs a = {c, tenant, metric, core::QuotaWindowStart(kind, now_us), core::UtcDayOf(now_us), 0, 0, 0};
	bool granted = true;

	for (;;) {
		uint64 generation = pg_atomic_read_u64(&quota_shared->generation);
		SlowWork work;
		bool wait = false;

		SpinLockAcquire(&c->mutex);
		if (!c->loaded || c->limit_generation != generation) {
			work = c->loaded ? SlowWork::kRefreshLimit : SlowWork::kLoad;
			a.generation = generation;
			wait = c->busy;
		} else if (op != Op::kRead && c->active_day < a.today) {
			/* first activity of a new UTC day: record the closing reading of the last active one */
			work = SlowWork::kCloseDay;
			a.day = c->active_day;
			a.value = c->used;
			wait = c->busy;
			if (!wait)
				c->active_day = a.today;
		} else if (kind != core::QuotaWindow::kNone && c->window_start < a.window) {
			/* a new window starts at zero; the row keeps the old window until the first refill, so a crash in
			 * between reloads zero as well. Waits for an in-flight refill of the old window. */
			if (c->busy) {
				wait = true;
			} else {
				c->window_start = a.window;
				c->used = 0;
				c->reserved = 0;
				c->pooled = 0;
				SpinLockRelease(&c->mutex);
				continue;
			}
			work = SlowWork::kLoad; /* unused */
		} else {
			/* the fast paths: a caller whose clock is behind the counter's window counts in the current one */
			a.window = c->window_start;
			switch (op) {
			case Op::kRead:
				reading->used = c->used;
				reading->limit = c->limit;
				reading->reserved = c->reserved;
				reading->window_start = c->window_start;
				reading->active_day = c->active_day;
				reading->shared = true;
				SpinLockRelease(&c->mutex);
				return true;
			case Op::kConsume:
			case Op::kPrepare: {
				int64 wanted = core::SaturatingAdd(c->used, amount);
				if (wanted > c->limit) {
					refusal->usage = c->used;
					refusal->limit = c->limit;
					refusal->audit_due = AuditDue(&c->last_audit, &c->refused_since_audit, GetCurrentTimestamp(),
					                              refusal->can_audit, &refusal->suppressed);
					SpinLockRelease(&c->mutex);
					granted = false;
					goto done;
				}
				if (wanted <= c->reserved) {
					if (op == Op::kConsume)
						c->used = wanted;
					bool prefetch = !c->busy && core::QuotaShouldPrefetch(c->limit, c->used, c->reserved, max_block);
					if (prefetch) {
						a.value = core::QuotaReservationTarget(c->limit, c->used, 0, max_block);
						prefetch = a.value > c->reserved;
						c->busy = prefetch;
					}
					SpinLockRelease(&c->mutex);
					if (prefetch)
						RunSlowWork(SlowWork::kGrow, &a);
					goto done;
				}
				work = SlowWork::kGrow;
				a.value = core::QuotaReservationTarget(c->limit, c->used, amount, max_block);
				wait = c->busy;
				break;
			}
			case Op::kRelease:
			case Op::kSet: {
				int64 value = op == Op::kSet ? amount : std::max<int64>(0, c->used - amount);
				if (value <= c->reserved) {
					c->used = value;
					/* give back durably what releases left far above usage, to keep the crash bound */
					int64 target = core::QuotaReservationTarget(c->limit, value, 0, max_block);
					bool shrink = !c->busy && c->reserved - value > 2 * int64{max_block} && target < c->reserved;
					if (shrink) {
						c->busy = true;
						c->reserved = target;
						a.value = target;
					}
					SpinLockRelease(&c->mutex);
					if (shrink)
						RunSlowWork(SlowWork::kShrink, &a);
					goto done;
				}
				work = SlowWork::kGrow;
				a.value = core::QuotaReservationTarget(c->limit, value, 0, max_block);
				wait = c->busy;
				break;
			}
			}
		}

		if (wait) {
			SpinLockRelease(&c->mutex);
			/* the first call only prepares the sleep; the loop re-checks before really sleeping */
			ConditionVariableSleep(&c->cv, PG_WAIT_EXTENSION);
			continue;
		}
		c->busy = true;
		SpinLockRelease(&c->mutex);
		if (work == SlowWork::kCloseDay && a.day == 0)
			ReleaseBusy(c); /* never active before: nothing to close */
		else
			RunSlowWork(work, &a);
	}

done:
	ConditionVariableCancelSleep();
	return granted;
}

// The table path: every call under the counter's session lock, reading and writing the row in place.
bool
TableApply(const pg_uuid_t *tenant, core::QuotaMetric metric, Op op, int64 amount, int64 now_us, QuotaRefusal *refusal,
           QuotaReading *reading, bool *use_shared)
{
	core::QuotaWindow kind = core::QuotaWindowOf(metric);
	int32 window = core::QuotaWindowStart(kind, now_us);
	int32 today = core::UtcDayOf(now_us);
	int64 limit = (op == Op::kConsume || op == Op::kRead) ? QuotaLimit(tenant, metric) : 0;
	volatile bool granted = true;
	volatile int32 close_day = 0;
	volatile int64 close_value = 0;
	CounterKey key;
	MakeKey(&key, tenant, metric);

	*use_shared = false;
	QuotaCounterLock(tenant, metric);
	PG_TRY();
	{
		QuotaRow row;
		if (preloaded && counters != NULL && FindCounter(&key, get_hash_value(counters, &key)) != NULL) {
			*use_shared = true; /* entered shared memory meanwhile */
		} else {
			if (!QuotaRowRead(tenant, metric, &row)) {
				if (!QuotaEnsureRows(tenant, metric) || !QuotaRowRead(tenant, metric, &row))
					QuotaTenantNotFound(tenant);
			}
			int64 used = row.reserved;
			if (kind != core::QuotaWindow::kNone && row.window_start < window) {
				row.window_start = window;
				used = 0;
			}
			if (op != Op::kRead && row.active_day < today && row.active_day != 0) {
				close_day = row.active_day;
				close_value = row.reserved;
			}
			if (op == Op::kRead) {
				reading->used = used;
				reading->limit = limit;
				reading->reserved = used;
				reading->window_start = row.window_start;
				reading->active_day = row.active_day;
				reading->shared = false;
			} else if (op == Op::kConsume && core::SaturatingAdd(used, amount) > limit) {
				refusal->usage = used;
				refusal->limit = limit;
				granted = false;
			} else {
				row.reserved = op == Op::kConsume ? used + amount
				               : op == Op::kSet   ? amount
				                                  : std::max<int64>(0, used - amount);
				row.active_day = today;
				QuotaRowWrite(tenant, metric, &row);
			}
		}
	}
	PG_FINALLY();
	{
		QuotaCounterUnlock(tenant, metric);
	}
	PG_END_TRY();

	if (close_day != 0)
		QuotaHistoryWrite(tenant, metric, close_day, close_value);
	if (!granted) {
		if (local_audit == NULL) {
			HASHCTL info;
			memset(&info, 0, sizeof(info));
			info.keysize = sizeof(CounterKey);
			info.entrysize = sizeof(LocalAudit);
			info.hcxt = TopMemoryContext;
			local_audit = hash_create("tenancy quota audit", 64, &info, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
		}
		bool found;
		LocalAudit *la = static_cast<LocalAudit *>(hash_search(local_audit, &key, HASH_ENTER, &found));
		if (!found) {
			la->last_audit = 0;
			la->refused_since_audit = 0;
		}
		refusal->audit_due = AuditDue(&la->last_audit, &la->refused_since_audit, GetCurrentTimestamp(),
		                              refusal->can_audit, &refusal->suppressed);
	}
	return granted;
}

bool
Apply(const pg_uuid_t *tenant, core::QuotaMetric metric, Op op, int64 amount, int64 now_us, QuotaRefusal *refusal,
      QuotaReading *reading)
{
	for (;;) {
		if (SharedReady()) {
			Counter *c = FindOrCreateCounter(tenant, metric);
			if (c != NULL)
				return SharedApply(c, tenant, metric, op, amount, now_us, refusal, reading);
		}
		bool use_shared;
		bool granted = TableApply(tenant, metric, op, amount, now_us, refusal, reading, &use_shared);
		if (!use_shared)
			return granted;
	}
}

} // namespace

bool
QuotaCounterConsume(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 amount, int64 now_us,
                    QuotaRefusal *refusal)
{
	return Apply(tenant, metric, Op::kConsume, amount, now_us, refusal, NULL);
}

bool
QuotaCounterConsumePooled(const pg_uuid_t *tenants, int count, core::QuotaMetric metric, int64 amount, int64 now_us,
                          QuotaRefusal *refusal, int *refused_index)
{
	if (!SharedReady())
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("pooled quotas need tenancy in shared_preload_libraries"),
		                errhint("Add tenancy to shared_preload_libraries and restart the server.")));
	Counter **cs = static_cast<Counter **>(palloc(count * sizeof(Counter *)));
	int *order = static_cast<int *>(palloc(count * sizeof(int)));
	for (int i = 0; i < count; i++) {
		cs[i] = FindOrCreateCounter(&tenants[i], metric);
		if (cs[i] == NULL)
			ereport(ERROR, (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			                errmsg("too many quota counters for a pooled consume"),
			                errhint("Raise tenancy.quota_max_counters and restart the server.")));
		/* spinlocks are always taken in address order, so two pooled consumes can never deadlock */
		int j = i;
		for (; j > 0 && cs[order[j - 1]] > cs[i]; j--)
			order[j] = order[j - 1];
		order[j] = i;
	}
	core::QuotaWindow kind = core::QuotaWindowOf(metric);
	int32 window = core::QuotaWindowStart(kind, now_us);
	int32 today = core::UtcDayOf(now_us);

	for (;;) {
		/* each counter ready on its own (slow work done, headroom for amount), or one refuses */
		for (int i = 0; i < count; i++) {
			if (!SharedApply(cs[i], &tenants[i], metric, Op::kPrepare, amount, now_us, refusal, NULL)) {
				*refused_index = i;
				return false;
			}
		}
		/* then all of them at once: still ready, all under their limits, count everywhere or nowhere */
		uint64 generation = pg_atomic_read_u64(&quota_shared->generation);
		for (int k = 0; k < count; k++)
			SpinLockAcquire(&cs[order[k]]->mutex);
		bool ready = true;
		int refused = -1;
		for (int i = 0; i < count && ready; i++) {
			Counter *c = cs[i];
			int64 wanted = core::SaturatingAdd(c->used, amount);
			if (!c->loaded || c->limit_generation != generation || c->active_day < today ||
			    (kind != core::QuotaWindow::kNone && c->window_start < window))
				ready = false;
			else if (wanted > c->limit && refused < 0)
				refused = i;
			else if (wanted > c->reserved)
				ready = false;
		}
		if (ready && refused < 0) {
			for (int i = 0; i < count; i++)
				cs[i]->used += amount;
			cs[0]->pooled = core::SaturatingAdd(cs[0]->pooled, amount);
		} else if (ready) {
			Counter *c = cs[refused];
			refusal->usage = c->used;
			refusal->limit = c->limit;
			refusal->audit_due = AuditDue(&c->last_audit, &c->refused_since_audit, GetCurrentTimestamp(),
			                              refusal->can_audit, &refusal->suppressed);
		}
		for (int k = count - 1; k >= 0; k--)
			SpinLockRelease(&cs[order[k]]->mutex);
		if (ready) {
			*refused_index = refused;
			return refused < 0;
		}
		CHECK_FOR_INTERRUPTS();
	}
}

int64
QuotaCounterReleasePooled(const pg_uuid_t *tenants, int count, core::QuotaMetric metric, int64 amount, int64 now_us)
{
	if (!SharedReady())
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("pooled quotas need tenancy in shared_preload_libraries"),
		                errhint("Add tenancy to shared_preload_libraries and restart the server.")));
	Counter *origin = FindOrCreateCounter(&tenants[0], metric);
	if (origin == NULL)
		ereport(ERROR,
		        (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED), errmsg("too many quota counters for a pooled release"),
		         errhint("Raise tenancy.quota_max_counters and restart the server.")));
	/* take the amount off the tenant's own pooled share first (loaded, so the share is known): the ancestors'
	 * counters then give back only what this tenant put there, never a sibling's use of the pool */
	int64 taken;
	for (;;) {
		QuotaReading reading;
		(void)SharedApply(origin, &tenants[0], metric, Op::kRead, 0, now_us, NULL, &reading);
		SpinLockAcquire(&origin->mutex);
		bool loaded = origin->loaded;
		taken = loaded ? std::min(amount, origin->pooled) : 0;
		if (loaded)
			origin->pooled -= taken;
		SpinLockRelease(&origin->mutex);
		if (loaded)
			break;
		CHECK_FOR_INTERRUPTS();
	}
	if (taken > 0) {
		for (int i = 0; i < count; i++)
			(void)Apply(&tenants[i], metric, Op::kRelease, taken, now_us, NULL, NULL);
	}
	return taken;
}

void
QuotaCounterRelease(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 amount, int64 now_us)
{
	(void)Apply(tenant, metric, Op::kRelease, amount, now_us, NULL, NULL);
}

void
QuotaCounterSet(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 value, int64 now_us)
{
	(void)Apply(tenant, metric, Op::kSet, value, now_us, NULL, NULL);
}

void
QuotaCounterRead(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 now_us, QuotaReading *out)
{
	(void)Apply(tenant, metric, Op::kRead, 0, now_us, NULL, out);
}

bool
QuotaCounterCompensate(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 amount)
{
	if (!preloaded || counters == NULL)
		return false;
	CounterKey key;
	MakeKey(&key, tenant, metric);
	Counter *c = FindCounter(&key, get_hash_value(counters, &key));
	if (c == NULL)
		return false;
	/* used <= reserved still holds after lowering used, so no durable write is needed */
	SpinLockAcquire(&c->mutex);
	bool done = c->loaded;
	if (done)
		c->used = std::max<int64>(0, c->used - amount);
	SpinLockRelease(&c->mutex);
	return done;
}

void
QuotaLimitsChanged(void)
{
	if (!preloaded || quota_shared == NULL)
		return; /* the table path reads the limit on every call */
	EnsureXactCallback();
	pg_atomic_fetch_add_u64(&quota_shared->generation, 1);
	bump_at_commit = true;
}

bool
QuotaSharedMemoryActive(void)
{
	return preloaded && counters != NULL;
}

int64
QuotaNowMicros(void)
{
	/* TimestampTz counts from 2000-01-01 */
	return GetCurrentTimestamp() + (int64{POSTGRES_EPOCH_JDATE} - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

int
QuotaAuditIntervalSeconds(void)
{
	return audit_interval_s;
}

} // namespace tenancy::pg
