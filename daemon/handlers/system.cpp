// daemon/handlers/system.cpp
// Operational routes: /healthz (process up), /readyz (database reachable), /metrics, /api/v1/openapi.json.
#include "errors.hpp"
#include "handlers/handlers.hpp"
#include "log.hpp"

namespace tenancyd::handlers {

Reply
Healthz(RequestContext &)
{
	return Reply::Json(200, {{"status", "ok"}});
}

Reply
Readyz(RequestContext &ctx)
{
	// Regions mode: ready while the directory and at least one region answer (a region's outage must not take
	// every instance out of a load balancer); the body says which regions are down.
	if (ctx.app.router.enabled()) {
		bool directory = ctx.app.router.PingDirectory();
		nlohmann::json regions = nlohmann::json::object();
		bool any = false;
		for (const auto &[region, up] : ctx.app.router.PingRegions()) {
			regions[region] = up ? "ready" : "unreachable";
			any = any || up;
		}
		if (!directory || !any)
			return Reply{503, ErrorBody("database_unavailable",
			                            !directory ? "tenant directory unreachable" : "no region reachable", "")};
		return Reply::Json(200, {{"status", "ready"}, {"directory", "ready"}, {"regions", regions}});
	}
	// Every pooled connection busy is not the database down (issue #16: it answered "unreachable"): 200 with
	// status "degraded" and detail "pool_busy" while a fresh connection still answers, 503 only when none does.
	switch (ctx.app.pools.Probe()) {
	case PoolHealth::kUp:
		return Reply::Json(200, {{"status", "ready"}});
	case PoolHealth::kBusy:
		return Reply::Json(200, {{"status", "degraded"}, {"detail", "pool_busy"}});
	case PoolHealth::kDown:
		break;
	}
	return Reply{503, ErrorBody("database_unavailable", "database unreachable", "")};
}

// Gauges come from the database at scrape time: for the tenants that get per-tenant request series and for the
// metrics.max_tenants tenants nearest their quotas by the database's own counters (tenancy.quota_ranking, so a
// tenant used only through SQL fires the quota alerts too), at most twice metrics.max_tenants usage documents. A
// database outage leaves them out instead of failing the scrape; an extension without quota_ranking (0.2.0) gives
// the request-series tenants only.
Reply
Metrics(RequestContext &ctx)
{
	std::vector<std::string> busiest = ctx.app.metrics.Busiest(ctx.config->metrics_max_tenants);
	std::vector<GaugeSample> gauges;
	const std::string max_tenants = std::to_string(ctx.config->metrics_max_tenants);
	if (ctx.config->metrics_max_tenants > 0) {
		std::string array = "{";
		for (size_t i = 0; i < busiest.size(); i++)
			array += (i ? "," : "") + busiest[i]; // uuids we validated ourselves
		array += "}";
		// Each cluster answers for the tenants it holds (all of them in single-cluster mode).
		std::vector<std::string> clusters =
		    ctx.app.router.enabled() ? ctx.app.router.Regions() : std::vector<std::string>{""};
		for (const std::string &region : clusters)
			try {
				Lease lease = region.empty() ? ctx.app.pools.AcquireFor("") : ctx.app.router.AcquireIn(region);
				std::optional<Result> found;
				try {
					found.emplace(lease->Exec(
					    "SELECT t.id, t.plan, tenancy.usage(t.id) FROM tenancy.tenants t "
					    " WHERE t.id OPERATOR(pg_catalog.=) ANY ($1::uuid[]) "
					    "    OR t.id IN (SELECT q.tenant_id FROM tenancy.quota_ranking($2::int) q) ORDER BY t.id",
					    {array, max_tenants}));
				} catch (const DbError &e) {
					if (e.sqlstate() != "42883")
						throw;
					found.emplace(lease->Exec("SELECT t.id, t.plan, tenancy.usage(t.id) FROM tenancy.tenants t "
					                          " WHERE t.id OPERATOR(pg_catalog.=) ANY ($1::uuid[]) ORDER BY t.id",
					                          {array}));
				}
				Result &r = *found;
				for (int i = 0; i < r.rows(); i++) {
					std::string id = r.get(i, 0), plan = r.get(i, 1);
					auto usage = nlohmann::json::parse(r.get(i, 2), nullptr, false);
					if (!usage.is_object())
						continue;
					auto users = usage["current_usage"]["users_count"];
					if (users.is_number())
						gauges.push_back(
						    {"tenancy_tenant_active_users", {{"tenant_id", id}, {"plan", plan}}, users.get<double>()});
					for (auto &[quota, value] : usage["utilization_percentages"].items())
						if (value.is_number())
							gauges.push_back({"tenancy_tenant_quota_utilization_percent",
							                  {{"tenant_id", id}, {"quota_type", quota}},
							                  value.get<double>()});
				}
			} catch (const std::exception &e) {
				Log(LogLevel::kWarn, "metrics gauges skipped", {{"error", e.what()}, {"region", region}});
			}
	}
	return Reply{200, ctx.app.metrics.Render(ctx.config->metrics_max_tenants, gauges),
	             "text/plain; version=0.0.4; charset=utf-8"};
}

Reply
OpenApi(RequestContext &)
{
	return Reply::RawJson(200, OpenApiDocument());
}

} // namespace tenancyd::handlers
