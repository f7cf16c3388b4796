// daemon/handlers/sla.cpp
// SLA report: the plan's targets (tenancy.sla_targets) beside what this daemon measured for the tenant's requests
// over sla.window_hours: uptime as the share of answers that were not 5xx, and the mean response time.
#include "errors.hpp"
#include "handlers/handlers.hpp"

#include <cmath>
#include <ctime>

namespace tenancyd::handlers {

namespace {
std::string
FormatRfc3339(std::chrono::system_clock::time_point t)
{
	std::time_t secs = std::chrono::system_clock::to_time_t(t);
	std::tm tm{};
	gmtime_r(&secs, &tm);
	char buf[32];
	std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

double
Round4(double v)
{
	return std::round(v * 10000) / 10000;
}
} // namespace

Reply
GetSla(RequestContext &ctx)
{
	Result r = ctx.db().Exec("SELECT tenancy.sla_targets($1::uuid)", {ctx.tenant_id});
	auto targets = nlohmann::json::parse(r.get(0, 0));
	int window = ctx.config->sla_window_hours;
	auto now = std::chrono::system_clock::now();
	SlaMeasurement m = ctx.app.sla.Measure(ctx.tenant_id, window, now);
	nlohmann::json measured = {{"requests", m.requests}, {"server_errors", m.server_errors}};
	nlohmann::json met = nlohmann::json::object();
	if (m.requests > 0) {
		double uptime = 100.0 * static_cast<double>(m.requests - m.server_errors) / static_cast<double>(m.requests);
		double mean_ms = 1000.0 * m.total_seconds / static_cast<double>(m.requests);
		measured["uptime_percent"] = Round4(uptime);
		measured["mean_response_ms"] = Round4(mean_ms);
		met["uptime"] = uptime >= targets.value("uptime_percent", 100.0);
		met["response_time"] = mean_ms <= targets.value("response_time_ms", 0.0);
	} else {
		measured["uptime_percent"] = nullptr;
		measured["mean_response_ms"] = nullptr;
		met["uptime"] = nullptr;
		met["response_time"] = nullptr;
	}
	return Reply::Json(200, {{"tenant_id", ctx.tenant_id},
	                         {"plan", targets.value("plan", "")},
	                         {"window",
	                          {{"hours", window},
	                           {"start", FormatRfc3339(m.window_start)},
	                           {"end", FormatRfc3339(now)}}},
	                         {"targets", targets},
	                         {"measured", measured},
	                         {"met", met}});
}

} // namespace tenancyd::handlers
