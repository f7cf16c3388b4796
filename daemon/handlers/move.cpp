// daemon/handlers/move.cpp
// Live tenant moves between regions: POST starts one (PATCH data_residency across regions too), GET reports it.
#include "errors.hpp"
#include "handlers/handlers.hpp"
#include "move/orchestrator.hpp"

#include <map>
#include <memory>
#include <mutex>

namespace tenancyd::handlers {

namespace {

// One orchestrator per App, bound to its regions. Never destroyed: its move threads are detached and may outlive
// main's return by the moment it takes the process to exit.
MoveOrchestrator &
Moves(App &app)
{
	static std::mutex mutex;
	static auto *by_app = new std::map<App *, std::unique_ptr<MoveOrchestrator>>();
	std::lock_guard lock(mutex);
	auto &slot = (*by_app)[&app];
	if (!slot) {
		MoveRegions regions;
		regions.admin_options = [&app](const std::string &region) {
			auto config = app.config();
			PoolOptions o;
			o.name = "move/" + region;
			o.conninfo = app.router.ConninfoOf(region);
			o.size = 2; // one per step, one to check an outcome or retry while the other is held
			o.acquire_timeout_ms = config->db_acquire_timeout_ms;
			o.connect_timeout_s = config->db_connect_timeout_s;
			o.statement_timeout_ms = 600000; // the slot waits for running transactions; the freeze sets its own
			return o;
		};
		regions.switch_region = [&app](const std::string &tenant, const std::string &from, const std::string &to) {
			return app.router.directory().SwitchRegion(tenant, from, to);
		};
		regions.acquire = [&app](const std::string &region) { return app.router.AcquireIn(region); };
		regions.serves = [&app](const std::string &region) { return app.router.Serves(region); };
		auto config = app.config();
		regions.drain = std::chrono::milliseconds(config->db_acquire_timeout_ms + config->db_statement_timeout_ms);
		slot = std::make_unique<MoveOrchestrator>(std::move(regions));
	}
	return *slot;
}

std::string
Location(const std::string &tenant_id)
{
	return "/api/v1/tenants/" + tenant_id + "/move";
}

} // namespace

Reply
StartMove(RequestContext &ctx, const std::string &to)
{
	if (!ctx.app.router.enabled())
		throw ApiError(409, "regions_not_configured",
		               "moving a tenant between regions needs regions: in the tenancyd configuration", "",
		               "One cluster serves every residency here; see docs/residency.md, section 5.");
	std::optional<std::string> from = ctx.app.router.RegionOf(ctx.tenant_id);
	if (!from)
		throw ErrorFromSqlState("TN001", "tenant \"" + ctx.tenant_id + "\" does not exist", "");
	if (!ctx.app.router.Serves(*from))
		throw ApiError(503, "region_unavailable", "this tenancyd has no cluster for region \"" + *from + "\"", "",
		               "Add the region's connection string under regions: in the configuration.");
	if (!ctx.app.router.Serves(to))
		throw ApiError(400, "invalid_input", "data residency \"" + to.substr(0, 64) + "\" is not a configured region",
		               "TN005", "The regions of this tenancyd are the keys of regions: in its configuration.");
	if (*from == to)
		throw ApiError(400, "invalid_input",
		               "tenant \"" + ctx.tenant_id + "\" already resides in region \"" + to + "\"", "TN005");
	MoveStatus status = Moves(ctx.app).Start(ctx.tenant_id, *from, to);
	Reply reply = Reply::Json(202, status.ToJson());
	reply.headers["Location"] = Location(ctx.tenant_id);
	return reply;
}

void
AdoptOrphanedMoves(App &app)
{
	if (app.router.enabled())
		Moves(app).AdoptOrphans(app.router.Regions());
}

int
SettleMovesForShutdown(App &app)
{
	if (!app.router.enabled())
		return 0;
	// Within systemd's default stop timeout (90 s): a freeze plus the drain before the source is erased.
	return Moves(app).SettleForShutdown(std::chrono::seconds(30));
}

Reply
MoveTenant(RequestContext &ctx)
{
	for (const auto &[key, value] : ctx.body.items())
		if (key != "data_residency")
			throw ApiError(400, "invalid_input", "unknown field \"" + key.substr(0, 64) + "\"", "TN005",
			               "The body of a move is {\"data_residency\": \"<region>\"}.");
	const auto it = ctx.body.find("data_residency");
	if (it == ctx.body.end() || !it->is_string())
		throw ApiError(400, "invalid_input", "data_residency must be a string naming the target region", "TN005");
	return StartMove(ctx, it->get<std::string>());
}

Reply
GetMove(RequestContext &ctx)
{
	if (!ctx.app.router.enabled())
		throw ApiError(404, "move_not_found", "tenant moves need regions: in the tenancyd configuration");
	std::optional<MoveStatus> status = Moves(ctx.app).Status(ctx.tenant_id);
	if (!status) {
		// Not started by this instance: a move another tenancyd runs still shows in the source's move record.
		std::optional<std::string> region = ctx.app.router.RegionOf(ctx.tenant_id);
		if (!region)
			throw ErrorFromSqlState("TN001", "tenant \"" + ctx.tenant_id + "\" does not exist", "");
		Lease lease = ctx.app.router.AcquireIn(*region);
		Result r = lease->Exec("SELECT tenancy.move_source_progress($1::uuid)::text", {ctx.tenant_id});
		if (r.null(0, 0))
			throw ApiError(404, "move_not_found", "tenant \"" + ctx.tenant_id + "\" has no move known here");
		auto source = nlohmann::json::parse(r.get(0, 0));
		Reply reply = Reply::Json(200, {{"tenant_id", ctx.tenant_id},
		                                {"from", *region},
		                                {"to", source.value("target_region", "")},
		                                {"phase", source.value("phase", "")},
		                                {"lag_bytes", source.value("lag_bytes", nlohmann::json(nullptr))},
		                                {"started_at", source.value("started_at", nlohmann::json(nullptr))},
		                                {"orchestrated_elsewhere", true}});
		reply.headers["Cache-Control"] = "no-store";
		return reply;
	}
	Reply reply = Reply::Json(200, status->ToJson());
	reply.headers["Cache-Control"] = "no-store";
	return reply;
}

} // namespace tenancyd::handlers
