// extension/include/tenancy/pg/quota_counter.hpp
// Quota counters: shared-memory counters replenished from durable reservations, or the table-only path when the
// library was not preloaded. PG regime: every function may ereport.
#pragma once

#include "tenancy/core/quota_metric.hpp"

extern "C" {
#include "postgres.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

// What a refused consume knows: the usage and limit it was refused at, and whether this refusal is the one that
// writes the rate-limited audit event (with how many refusals since the last event went unrecorded).
struct QuotaRefusal {
	bool can_audit; // in: the caller will write (and keep) the event when one is due
	int64 usage;
	int64 limit;
	bool audit_due;
	int64 suppressed;
};

// A counter's current state for reports.
struct QuotaReading {
	int64 used;
	int64 limit;
	int64 reserved;
	int32 window_start; // days since 1970-01-01; 0 for metrics without a window
	int32 active_day;   // last UTC day with activity
	bool shared;        // served from shared memory
};

// Adds amount (> 0) to the window holding now_us (Unix microseconds) unless usage + amount would pass the limit.
// Exact under concurrency; not transactional (like nextval): a granted amount stays counted if the caller's
// transaction rolls back.
bool QuotaCounterConsume(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 amount, int64 now_us,
                         QuotaRefusal *refusal);

// Pooled consume: adds amount to the counters of every tenant given (a tenant and its ancestors) or to none, when
// any of them would pass its limit (*refused_index names it). Shared memory only (55000 otherwise).
bool QuotaCounterConsumePooled(const pg_uuid_t *tenants, int count, core::QuotaMetric metric, int64 amount,
                               int64 now_us, QuotaRefusal *refusal, int *refused_index);

// Pooled release: takes back min(amount, what tenants[0] holds from its own consume_pooled calls) from every
// tenant given (a tenant and its ancestors), each never below zero; returns what was taken back. Shared memory
// only (55000 otherwise).
int64 QuotaCounterReleasePooled(const pg_uuid_t *tenants, int count, core::QuotaMetric metric, int64 amount,
                                int64 now_us);

// Subtracts amount (> 0), never below zero.
void QuotaCounterRelease(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 amount, int64 now_us);

// Sets the usage to value (>= 0), whatever the limit: gauges measure, and reconciliation recounts.
void QuotaCounterSet(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 value, int64 now_us);

// Gives back amount without any I/O (safe in transaction-abort callbacks): only in shared memory, and only when
// the counter is loaded there. Returns false when it could not (table path), leaving an over-count that
// tenancy.reconcile_quota() corrects.
bool QuotaCounterCompensate(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 amount);

void QuotaCounterRead(const pg_uuid_t *tenant, core::QuotaMetric metric, int64 now_us, QuotaReading *out);

// Limits changed (plans, overrides, a tenant's plan or existence): every cached limit is reloaded before its next
// use, now and again when the changing transaction commits (so no backend caches a figure from before the commit).
void QuotaLimitsChanged(void);

// True when the counters live in shared memory (tenancy is in shared_preload_libraries).
bool QuotaSharedMemoryActive(void);

// Unix microseconds of the current wall clock.
int64 QuotaNowMicros(void);

// The quota tunables, for the SQL-callable layer.
int QuotaAuditIntervalSeconds(void);

} // namespace tenancy::pg
