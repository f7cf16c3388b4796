// daemon/handlers/usage.cpp
// Usage of a tenant (tenancy.usage) and daily trends (tenancy.usage_trends) for the metrics asked for.
#include "errors.hpp"
#include "handlers/handlers.hpp"
#include "server/params.hpp"

#include <map>

namespace tenancyd::handlers {

namespace {
constexpr long kMaxTrendHours = 400 * 24;

// API metric names -> tenancy.usage_trends metric names ("storage" is the brief's alias of storage_mb).
const std::map<std::string, std::string> kTrendMetrics = {
    {"api_calls", "api_calls"}, {"ai_requests", "ai_requests"}, {"storage", "storage_mb"},
    {"storage_mb", "storage_mb"}, {"users", "users"},           {"projects", "projects"},
    {"concurrent_sessions", "concurrent_sessions"},
};
} // namespace

Reply
GetUsage(RequestContext &ctx)
{
	if (ctx.answer) // a tenant token's request: fetched together with its token check
		return Reply::RawJson(200, std::move(*ctx.answer));
	Result r = ctx.db().ExecPrepared("SELECT tenancy.usage($1::uuid)", {ctx.tenant_id});
	if (r.rows() != 1 || r.null(0, 0))
		throw ApiError(404, "tenant_not_found", "tenant \"" + ctx.tenant_id + "\" does not exist");
	return Reply::RawJson(200, r.get(0, 0));
}

Reply
GetUsageTrends(RequestContext &ctx)
{
	std::string period_text = ctx.Query("period").value_or("30d");
	auto period = ParsePeriod(period_text, kMaxTrendHours);
	if (!period)
		throw ApiError(400, "invalid_period", "period must be <n>d or <n>h, at most 400d");
	std::vector<std::string> asked;
	std::string metrics_text =
	    ctx.Query("metrics").value_or("api_calls,ai_requests,storage,users,projects,concurrent_sessions");
	size_t start = 0;
	while (start <= metrics_text.size()) {
		size_t comma = metrics_text.find(',', start);
		std::string name = metrics_text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
		if (!kTrendMetrics.count(name))
			throw ApiError(400, "invalid_metric",
			               "unknown metric \"" + name.substr(0, 64) +
			                   "\"; use api_calls, ai_requests, storage, users, projects, concurrent_sessions");
		if (std::find(asked.begin(), asked.end(), name) == asked.end())
			asked.push_back(name);
		if (comma == std::string::npos)
			break;
		start = comma + 1;
	}
	std::string array = "{";
	for (size_t i = 0; i < asked.size(); i++)
		array += (i ? "," : "") + kTrendMetrics.at(asked[i]); // names from our own table only
	array += "}";
	Result r = ctx.db().Exec("SELECT pg_catalog.to_char(t.day, 'YYYY-MM-DD'), t.metric, t.value "
	                         "  FROM tenancy.usage_trends($1::uuid, $2::interval, $3::text[]) t "
	                         " ORDER BY t.metric, t.day",
	                         {ctx.tenant_id, period->interval, array});
	std::map<std::string, nlohmann::json> by_metric;
	for (int i = 0; i < r.rows(); i++)
		by_metric[r.get(i, 1)].push_back({{"date", r.get(i, 0)}, {"value", std::stoll(r.get(i, 2))}});
	nlohmann::json metrics = nlohmann::json::object();
	for (const std::string &name : asked) {
		auto it = by_metric.find(kTrendMetrics.at(name));
		metrics[name] = it == by_metric.end() ? nlohmann::json::array() : it->second;
	}
	return Reply::Json(200, {{"tenant_id", ctx.tenant_id}, {"period", period->text}, {"metrics", metrics}});
}

} // namespace tenancyd::handlers
