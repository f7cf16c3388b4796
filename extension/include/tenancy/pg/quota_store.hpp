// extension/include/tenancy/pg/quota_store.hpp
// Durable quota records (tenancy.quota_counters, usage_history) and limit look-ups. PG regime: all may ereport.
#pragma once

#include "tenancy/core/quota_metric.hpp"

extern "C" {
#include "postgres.h"
#include "utils/date.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

// One durable counter row: the window it belongs to, the durable upper bound of its usage ("reserved") and the last
// UTC day with activity (days since 1970-01-01 throughout).
struct QuotaRow {
	int32 window_start;
	int64 reserved;
	int32 active_day;
	TransactionId xmin; // identity of the row version (in-place writes keep it): a re-created row differs
};

// Reads the row of (tenant, metric); false when there is none.
bool QuotaRowRead(const pg_uuid_t *tenant, core::QuotaMetric metric, QuotaRow *row);

// Overwrites the row in place (non-transactional, WAL-logged like nextval) and flushes WAL up to the record before
// returning, so the new bound survives any crash whatever the caller's transaction does. The row must exist.
void QuotaRowWrite(const pg_uuid_t *tenant, core::QuotaMetric metric, const QuotaRow *row);

// True when the counter row of (tenant, metric) exists; otherwise creates the tenant's missing counter rows and
// returns false only when the tenant does not exist. Transactional: rows normally come from the AFTER INSERT
// trigger on tenancy.tenants, so this only writes for tenants created before that trigger could run.
bool QuotaEnsureRows(const pg_uuid_t *tenant, core::QuotaMetric metric);

// The effective limit of a metric (plan figure or per-tenant override); raises TN001 for an unknown tenant.
int64 QuotaLimit(const pg_uuid_t *tenant, core::QuotaMetric metric);

// Records the reading of a metric for a UTC day in usage_history and drops the counter's rows older than 400 days.
// Skipped in read-only transactions (history is a report; the counter itself is never lost).
void QuotaHistoryWrite(const pg_uuid_t *tenant, core::QuotaMetric metric, int32 day, int64 value);

// Session-level lock serialising the table path and the load into shared memory of one counter.
void QuotaCounterLock(const pg_uuid_t *tenant, core::QuotaMetric metric);
void QuotaCounterUnlock(const pg_uuid_t *tenant, core::QuotaMetric metric);

// The rows of a tenant in the tables tracked for a row-count metric (users, projects), as reconcile_quota counts.
int64 QuotaCountRows(const pg_uuid_t *tenant, core::QuotaMetric metric);

// The tenant followed by its ancestors (parent first), palloc'd; TN001 for an unknown tenant.
pg_uuid_t *QuotaTenantChain(const pg_uuid_t *tenant, int *count);

// Raises TN001 for a tenant id, in the registry's words.
[[noreturn]] void QuotaTenantNotFound(const pg_uuid_t *tenant);

// Conversions between our day numbers (since 1970) and PostgreSQL's DateADT (since 2000).
DateADT QuotaDayToDate(int32 day);
int32 QuotaDateToDay(DateADT date);

} // namespace tenancy::pg
