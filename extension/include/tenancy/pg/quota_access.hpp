// extension/include/tenancy/pg/quota_access.hpp
// Who may meter or read a tenant's quotas, and argument parsing shared by the quota entry points. PG regime.
#pragma once

#include "tenancy/core/quota_metric.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "datatype/timestamp.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

// tenancy_admin (or a superuser) may name any tenant; any other caller only its context tenant (TN004 without a
// context, 42501 for another tenant). The admin check is CallerIsAdmin().
void RequireQuotaAccess(const pg_uuid_t *tenant);

// The metric named by a text argument, or TN005.
core::QuotaMetric QuotaMetricArg(text *name);

// Unix microseconds of a timestamptz.
int64 QuotaUnixMicros(TimestampTz ts);

} // namespace tenancy::pg
