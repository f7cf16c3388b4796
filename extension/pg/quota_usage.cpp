// extension/pg/quota_usage.cpp
// usage(tenant [, include_descendants]): the brief's JSON report of current usage, quotas and utilization.
#include "tenancy/core/quota_block.hpp"
#include "tenancy/core/quota_metric.hpp"
#include "tenancy/core/quota_report.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/quota_access.hpp"
#include "tenancy/pg/quota_counter.hpp"
#include "tenancy/pg/tenant_cache.hpp"

#include <string>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_usage);
}

using namespace tenancy;
using tenancy::core::QuotaMetric;

namespace {

// JSON keys of the brief, by metric code (QuotaMetric order).
struct MetricKeys {
	const char *usage;
	const char *quota;
	const char *utilization;
};
constexpr MetricKeys kKeys[core::kQuotaMetricCount] = {
    {"users_count", "max_users", "users"},
    {"projects_count", "max_projects", "projects"},
    {"api_calls_this_month", "max_api_calls_per_month", "api_calls"},
    {"storage_used_mb", "max_storage_mb", "storage"},
    {"ai_requests_today", "max_ai_requests_per_day", "ai_requests"},
    {"concurrent_sessions", "max_concurrent_sessions", "concurrent_sessions"},
};

struct Figures {
	int64 used[core::kQuotaMetricCount];
	int64 limit[core::kQuotaMetricCount];
};

// Core regime: the document text from plain figures.
std::string
RenderUsage(const char *tenant_id, const Figures &f, int64 now_us)
{
	std::string usage, quotas, utilization;
	for (int i = 0; i < core::kQuotaMetricCount; i++) {
		const char *sep = i == 0 ? "" : ", ";
		usage += std::string(sep) + "\"" + kKeys[i].usage + "\": " + std::to_string(f.used[i]);
		quotas += std::string(sep) + "\"" + kKeys[i].quota + "\": " + std::to_string(f.limit[i]);
		utilization +=
		    std::string(sep) + "\"" + kKeys[i].utilization + "\": " + core::FormatUtilization(f.used[i], f.limit[i]);
	}
	return std::string("{\"tenant_id\": \"") + tenant_id + "\", \"current_usage\": {" + usage + "}, \"quotas\": {" +
	       quotas + "}, \"utilization_percentages\": {" + utilization + "}, \"last_calculated_at\": \"" +
	       core::FormatUtcTimestamp(now_us) + "\"}";
}

} // namespace

// tenancy.usage(tenant_id uuid, include_descendants boolean = false) -> jsonb. With include_descendants, usage is
// summed over the tenant and all its descendants, against the tenant's own quotas.
extern "C" Datum
tenancy_usage(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	bool include_descendants = PG_GETARG_BOOL(1);
	pg::RequireQuotaAccess(tenant);

	int count = 1;
	pg_uuid_t *tenants = include_descendants ? pg::TenantAndDescendants(tenant, &count) : tenant;
	int64 now_us = pg::QuotaNowMicros();
	Figures figures;
	for (int m = 0; m < core::kQuotaMetricCount; m++) {
		figures.used[m] = 0;
		for (int t = 0; t < count; t++) {
			pg::QuotaReading r;
			pg::QuotaCounterRead(&tenants[t], static_cast<QuotaMetric>(m), now_us, &r);
			figures.used[m] = core::SaturatingAdd(figures.used[m], r.used);
			if (t == 0)
				figures.limit[m] = r.limit;
		}
	}

	const char *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(tenant)));
	char *doc = pg::CallCore([&] {
		std::string text = RenderUsage(id, figures, now_us);
		char *copy = static_cast<char *>(pg::PallocOrThrow(text.size() + 1));
		memcpy(copy, text.c_str(), text.size() + 1);
		return copy;
	});
	PG_RETURN_DATUM(DirectFunctionCall1(jsonb_in, CStringGetDatum(doc)));
}
