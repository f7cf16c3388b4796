// daemon/move/orchestrator.cpp
// The live move protocol step by step, with rollback before the switch and retries after it (docs/residency.md 4.1).
// The SQL functions do the work on each cluster; this file only sequences them and switches the directory entry.
#include "move/orchestrator.hpp"

#include "errors.hpp"
#include "log.hpp"

#include <chrono>
#include <ctime>
#include <thread>

namespace tenancyd {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

std::string
NowRfc3339()
{
	std::time_t now = std::time(nullptr);
	std::tm tm{};
	gmtime_r(&now, &tm);
	char buf[32];
	std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

long long
MillisSince(Clock::time_point start)
{
	return std::chrono::duration_cast<milliseconds>(Clock::now() - start).count();
}

// A step that did not complete; before the switch it rolls the move back.
struct StepFailed : std::runtime_error {
	using std::runtime_error::runtime_error;
};

std::string
Describe(const std::exception &e)
{
	if (const auto *db = dynamic_cast<const DbError *>(&e))
		return db->sqlstate().empty() ? std::string("connection lost: ") + db->what()
		                              : db->sqlstate() + ": " + db->what();
	return e.what();
}

// One statement with its own statement timeout (the move's connections default to a long one).
Result
ExecWithTimeout(Connection &conn, const char *sql, const std::vector<Param> &params, const char *timeout)
{
	return conn.Transaction([&] {
		conn.Exec("SELECT pg_catalog.set_config('statement_timeout', $1, true)", {std::string(timeout)});
		return conn.Exec(sql, params);
	});
}

// After the switch the move only goes forward: a step is retried until it succeeds (or attempts run out).
template <typename Step>
void
Retry(const char *what, const std::string &tenant, int attempts, milliseconds pause, Step &&step)
{
	for (int attempt = 1;; attempt++) {
		try {
			step();
			return;
		} catch (const std::exception &e) {
			if (attempt >= attempts)
				throw;
			Log(LogLevel::kWarn, "tenant move: retrying a step",
			    {{"tenant_id", tenant}, {"step", what}, {"attempt", attempt}, {"error", Describe(e)}});
			std::this_thread::sleep_for(pause);
		}
	}
}

// The tenant's tokens (SHA-256 digests, never token values) as JSON, and their insertion on the target. Tokens are
// stored per region and not replicated; tenant_tokens is guarded, so none changes on the frozen source meanwhile.
constexpr const char *kReadTokensSql =
    "SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(k)), '[]'::jsonb)::text FROM tenancy.tenant_tokens k "
    " WHERE k.tenant_id OPERATOR(pg_catalog.=) $1::uuid";
constexpr const char *kWriteTokensSql =
    "INSERT INTO tenancy.tenant_tokens (id, tenant_id, role, name, token_sha256, created_at, expires_at, revoked_at) "
    "SELECT t.id, t.tenant_id, t.role, t.name, t.token_sha256, t.created_at, t.expires_at, t.revoked_at "
    "  FROM pg_catalog.jsonb_populate_recordset(NULL::tenancy.tenant_tokens, $1::jsonb) t "
    "ON CONFLICT (id) DO NOTHING";

} // namespace

nlohmann::json
MoveStatus::ToJson() const
{
	auto optional = [](long long v) { return v < 0 ? nlohmann::json(nullptr) : nlohmann::json(v); };
	auto text = [](const std::string &s) { return s.empty() ? nlohmann::json(nullptr) : nlohmann::json(s); };
	return {{"tenant_id", tenant_id},
	        {"from", from},
	        {"to", to},
	        {"phase", phase},
	        {"rows_copied", rows_copied},
	        {"rows_total", rows_total},
	        {"lag_bytes", optional(lag_bytes)},
	        {"tables", tables},
	        {"freeze_ms", optional(freeze_ms)},
	        {"total_ms", optional(total_ms)},
	        {"tokens_moved", optional(tokens_moved)},
	        {"target_cleaned", target_cleaned},
	        {"adopted", adopted},
	        {"started_at", started_at},
	        {"finished_at", text(finished_at)},
	        {"error", text(error)}};
}

MoveStatus
MoveOrchestrator::Start(const std::string &tenant_id, const std::string &from, const std::string &to)
{
	auto state = std::make_shared<State>();
	state->status.tenant_id = tenant_id;
	state->status.from = from;
	state->status.to = to;
	state->status.started_at = NowRfc3339();
	{
		std::lock_guard lock(mutex_);
		auto it = moves_.find(tenant_id);
		if (it != moves_.end()) {
			std::lock_guard state_lock(it->second->mutex);
			const MoveStatus &last = it->second->status;
			if (!last.Finished() || !last.target_cleaned)
				throw ApiError(409, "move_in_progress",
				               "tenant \"" + tenant_id + "\" is already being moved to region \"" + last.to + "\"",
				               "55006", "GET /api/v1/tenants/" + tenant_id + "/move reports its progress.");
		}
		moves_[tenant_id] = state;
	}
	auto forget = [&] {
		std::lock_guard lock(mutex_);
		auto it = moves_.find(tenant_id);
		if (it != moves_.end() && it->second == state)
			moves_.erase(it);
	};
	// The source's prepare runs in the request: its refusals (a move already recorded there, child tenants, no
	// wal_level = logical) answer the caller instead of a failed move.
	std::string prepared;
	try {
		state->source = std::make_unique<Pool>(regions_.admin_options(from));
		state->target = std::make_unique<Pool>(regions_.admin_options(to));
		Lease src = state->source->Acquire();
		prepared = src->Exec("SELECT tenancy.move_source_prepare($1::uuid, $2)", {tenant_id, to}).get(0, 0);
	} catch (const DbError &e) {
		forget();
		if (e.sqlstate() == "55006")
			throw ApiError(409, "move_in_progress", e.what(), "55006",
			               "The source cluster has a move record of this tenant: another tenancyd runs its move, or "
			               "an interrupted one waits for tenancy.move_source_finish(id, 'rolled_back').");
		throw;
	} catch (...) {
		forget();
		throw;
	}
	long long total = 0;
	for (const auto &t : nlohmann::json::parse(prepared).value("tables", nlohmann::json::array()))
		total += t.value("rows", 0LL);
	MoveStatus first;
	{
		std::lock_guard lock(state->mutex);
		state->status.rows_total = total;
		first = state->status;
	}
	Log(LogLevel::kInfo, "tenant move started", {{"tenant_id", tenant_id}, {"from", from}, {"to", to}});
	std::thread([this, state, prepared, running = std::make_shared<Running>(running_)] {
		Run(state, prepared);
	}).detach();
	return first;
}

std::optional<MoveStatus>
MoveOrchestrator::Status(const std::string &tenant_id)
{
	std::shared_ptr<State> state;
	{
		std::lock_guard lock(mutex_);
		auto it = moves_.find(tenant_id);
		if (it == moves_.end())
			return std::nullopt;
		state = it->second;
	}
	std::lock_guard lock(state->mutex);
	return state->status;
}

void
MoveOrchestrator::Run(std::shared_ptr<State> state, std::string prepared)
{
	const std::string tenant = state->status.tenant_id, from = state->status.from, to = state->status.to;
	auto phase = [&](const char *name) {
		state->Update([&](MoveStatus &s) { s.phase = name; });
		Log(LogLevel::kInfo, "tenant move", {{"tenant_id", tenant}, {"from", from}, {"to", to}, {"phase", name}});
	};
	const Clock::time_point started = Clock::now();
	Clock::time_point frozen;
	std::string subscription_oid;
	bool switched = false;
	try {
		Lease src = state->source->Acquire();
		Lease dst = state->target->Acquire();
		// A transaction of its own, before any write in it; it waits for transactions running on the source.
		src->Exec("SELECT tenancy.move_source_create_slot($1::uuid)", {tenant});
		dst->Exec("SELECT tenancy.move_target_prepare($1::jsonb -> 'tenant', $1::jsonb -> 'tables', $2)",
		          {prepared, to});
		phase("copying");
		// The target subscribes with the connection its superuser registered for the source region
		// (tenancy.region_connections), never one tenancyd passes.
		subscription_oid = dst->Exec("SELECT tenancy.move_target_subscribe($1::uuid)", {tenant}).get(0, 0);

		// Initial copy, then streaming, until every table is ready.
		for (bool ready = false; !ready;) {
			auto p = nlohmann::json::parse(
			    dst->Exec("SELECT tenancy.move_target_progress($1::uuid)::text", {tenant}).get(0, 0));
			Result sp = src->Exec("SELECT tenancy.move_source_progress($1::uuid) ->> 'lag_bytes'", {tenant});
			ready = p.value("all_ready", false);
			state->Update([&](MoveStatus &s) {
				s.rows_copied = p.value("rows_copied", 0LL);
				s.tables = p.value("tables", nlohmann::json::array());
				s.lag_bytes = sp.null(0, 0) ? -1 : std::stoll(sp.get(0, 0));
				if (ready)
					s.phase = "catching_up";
			});
			if (!p.value("subscription_enabled", false))
				throw StepFailed("the subscription was disabled by an error on the target (see its server log)");
			if (MillisSince(started) > 3600 * 1000)
				throw StepFailed("the initial copy did not finish within an hour");
			if (!ready)
				std::this_thread::sleep_for(milliseconds(250));
		}
		auto key = nlohmann::json::parse(
		    dst->Exec("SELECT tenancy.move_target_transport_key($1::uuid)::text", {tenant}).get(0, 0));

		// The write freeze: the catch-up of the last writes, the handover, the switch and the directory entry.
		phase("freezing");
		frozen = Clock::now();
		const std::string epoch =
		    ExecWithTimeout(*src, "SELECT tenancy.move_source_freeze($1::uuid)", {tenant}, "10s").get(0, 0);
		while (dst->Exec("SELECT tenancy.move_target_caught_up($1::uuid, $2::bigint)", {tenant, epoch}).get(0, 0) !=
		       "t") {
			if (MillisSince(frozen) > 30000)
				throw StepFailed("the target did not catch up with the freeze within 30 s");
			std::this_thread::sleep_for(milliseconds(2));
		}
		const std::string handover =
		    src->Exec("SELECT tenancy.move_source_handover($1::uuid, pg_catalog.decode($2, 'hex'))::text",
		              {tenant, key.at("public_key").get<std::string>()})
		        .get(0, 0);
		const std::string tokens = src->Exec(kReadTokensSql, {tenant}).get(0, 0);
		try {
			ExecWithTimeout(*dst, "SELECT tenancy.move_target_switch($1::uuid, $2::bigint, $3::jsonb, $4)",
			                {tenant, epoch, handover, key.at("nonce").get<std::string>()}, "60s");
		} catch (const DbError &e) {
			if (!e.connection_lost() && !e.sqlstate().empty())
				throw;
			// Did the switch commit before the connection broke? Its move record is gone on the target if it did.
			Lease again = state->target->Acquire();
			if (!again->Exec("SELECT tenancy.move_target_progress($1::uuid)", {tenant}).null(0, 0))
				throw;
		}
		switched = true;
		phase("switched");
		Forward(*state, tokens, subscription_oid, started, frozen);
	} catch (const std::exception &e) {
		const std::string why = Describe(e);
		Log(LogLevel::kError, "tenant move failed",
		    {{"tenant_id", tenant}, {"from", from}, {"to", to}, {"error", why}, {"switched", switched}});
		if (switched) {
			MarkFailed(*state, why, started);
		} else {
			state->Update([&](MoveStatus &s) { s.error = why; });
			RollBack(*state, subscription_oid, started);
		}
	}
	state->source->CloseAll();
	state->target->CloseAll();
}

void
MoveOrchestrator::Forward(State &state, const std::string &tokens, const std::string &subscription_oid,
                          Clock::time_point started, std::optional<Clock::time_point> frozen)
{
	const std::string tenant = state.status.tenant_id, from = state.status.from, to = state.status.to;
	// The tokens go first: the directory then sends requests to the target.
	Retry("tokens", tenant, 120, milliseconds(500), [&] {
		Lease t = state.target->Acquire();
		t->Exec(kWriteTokensSql, {tokens});
	});
	const auto moved_tokens = static_cast<long long>(nlohmann::json::parse(tokens).size());
	Retry("directory", tenant, 600, milliseconds(500), [&] {
		if (!regions_.switch_region(tenant, from, to))
			Log(LogLevel::kWarn, "tenant move: the directory entry was not at the source region",
			    {{"tenant_id", tenant}, {"from", from}, {"to", to}});
	});
	state.Update([&](MoveStatus &s) {
		if (frozen)
			s.freeze_ms = MillisSince(*frozen);
		s.tokens_moved = moved_tokens;
		s.phase = "cleaning";
	});
	Log(LogLevel::kInfo, "tenant move", {{"tenant_id", tenant}, {"from", from}, {"to", to}, {"phase", "cleaning"}});
	const Clock::time_point directory_switched = Clock::now();
	Retry("target finish", tenant, 60, milliseconds(1000), [&] {
		Lease t = state.target->Acquire();
		t->Exec("SELECT tenancy.move_target_finish($1::uuid)", {tenant});
	});
	const auto drained = Clock::now() - directory_switched;
	if (drained < regions_.drain)
		std::this_thread::sleep_for(regions_.drain - drained);
	const std::vector<Param> finish = {tenant, subscription_oid.empty() ? Param() : Param(subscription_oid)};
	Retry("source finish", tenant, 60, milliseconds(1000), [&] {
		Lease s = state.source->Acquire();
		s->Exec("SELECT tenancy.move_source_finish($1::uuid, 'switched', $2::oid)", finish);
	});
	state.Update([&](MoveStatus &s) {
		s.phase = "done";
		s.lag_bytes = 0;
		s.total_ms = MillisSince(started);
		s.finished_at = NowRfc3339();
	});
	Log(LogLevel::kInfo, "tenant move done",
	    {{"tenant_id", tenant}, {"from", from}, {"to", to}, {"total_ms", MillisSince(started)}});
}

void
MoveOrchestrator::MarkFailed(State &state, const std::string &why, Clock::time_point started)
{
	// The target serves the tenant (or will once the directory says so); the frozen source waits for an operator:
	// move_source_finish(id, 'switched') there (docs/residency.md 4.1), or a tenancyd adopts it once this one stops.
	state.Update([&](MoveStatus &s) {
		s.error = why;
		s.phase = "failed";
		s.total_ms = MillisSince(started);
		s.finished_at = NowRfc3339();
	});
}

void
MoveOrchestrator::AdoptOrphans(const std::vector<std::string> &regions)
{
	for (const std::string &from : regions) {
		std::vector<std::pair<std::string, std::string>> orphans; // tenant, target region
		try {
			Lease lease = regions_.acquire(from);
			Result r = lease->Exec("SELECT o.tenant_id::text, o.target_region FROM tenancy.move_orphans() o", {});
			for (int i = 0; i < r.rows(); i++)
				orphans.emplace_back(r.get(i, 0), r.get(i, 1));
		} catch (const std::exception &e) {
			continue; // the region does not answer now (its requests say so): looked at again next time
		}
		for (const auto &[tenant, to] : orphans) {
			{
				std::lock_guard lock(mutex_);
				auto it = moves_.find(tenant);
				if (it != moves_.end()) {
					std::lock_guard state_lock(it->second->mutex);
					if (!it->second->status.Finished())
						continue; // ours, still running
				}
			}
			if (!regions_.serves(to)) {
				Log(LogLevel::kWarn, "tenant move: an orphaned move to a region this tenancyd has no cluster for",
				    {{"tenant_id", tenant}, {"from", from}, {"to", to}});
				continue;
			}
			auto state = std::make_shared<State>();
			state->status.tenant_id = tenant;
			state->status.from = from;
			state->status.to = to;
			state->status.phase = "recovering";
			state->status.adopted = true;
			state->status.started_at = NowRfc3339();
			try {
				state->source = std::make_unique<Pool>(regions_.admin_options(from));
				state->target = std::make_unique<Pool>(regions_.admin_options(to));
				Lease guard = state->source->Acquire();
				// Another instance may have taken it between the list and here: the lock decides.
				if (guard->Exec("SELECT tenancy.move_adopt($1::uuid)", {tenant}).get(0, 0) != "t")
					continue;
				{
					std::lock_guard lock(mutex_);
					moves_[tenant] = state;
				}
				Log(LogLevel::kWarn, "tenant move: taking over a move whose orchestrator is gone",
				    {{"tenant_id", tenant}, {"from", from}, {"to", to}});
				std::thread([this, state, g = std::move(guard),
				             running = std::make_shared<Running>(running_)]() mutable {
					Resume(state, std::move(g));
				}).detach();
			} catch (const std::exception &e) {
				Log(LogLevel::kWarn, "tenant move: could not take over an orphaned move",
				    {{"tenant_id", tenant}, {"from", from}, {"to", to}, {"error", Describe(e)}});
			}
		}
	}
}

int
MoveOrchestrator::SettleForShutdown(milliseconds limit)
{
	const auto deadline = Clock::now() + limit;
	auto critical = [&] {
		std::lock_guard lock(mutex_);
		for (const auto &[tenant, state] : moves_) {
			std::lock_guard state_lock(state->mutex);
			const std::string &p = state->status.phase;
			if (p == "freezing" || p == "switched" || p == "cleaning" || p == "recovering")
				return true;
		}
		return false;
	};
	while (running_ > 0 && critical() && Clock::now() < deadline)
		std::this_thread::sleep_for(milliseconds(100));
	return running_;
}

void
MoveOrchestrator::Resume(std::shared_ptr<State> state, Lease guard)
{
	const std::string tenant = state->status.tenant_id;
	const Clock::time_point started = Clock::now();
	// The target decides. move_target_abort locks the target's move row, as move_target_switch does: after it
	// either a switch committed (the tenant lives there without a move row) or none ever will (the row is gone).
	std::string subscription_oid;
	std::optional<bool> switched;
	for (int attempt = 1; !switched; attempt++) {
		try {
			Lease dst = state->target->Acquire();
			Result sub = dst->Exec("SELECT s.oid::text FROM tenancy.tenant_moves m JOIN pg_catalog.pg_subscription s "
			                       "    ON s.subname OPERATOR(pg_catalog.=) m.subscription_name "
			                       " WHERE m.tenant_id OPERATOR(pg_catalog.=) $1::uuid",
			                       {tenant});
			if (sub.rows() == 1)
				subscription_oid = sub.get(0, 0); // its tablesync slots on the source go with the rollback
			const bool aborted = dst->Exec("SELECT tenancy.move_target_abort($1::uuid)", {tenant}).get(0, 0) == "t";
			switched = !aborted && dst->Exec("SELECT EXISTS (SELECT 1 FROM tenancy.tenants t "
			                                 "  WHERE t.id OPERATOR(pg_catalog.=) $1::uuid)",
			                                 {tenant})
			                               .get(0, 0) == "t";
		} catch (const std::exception &e) {
			// Without the target's answer nothing is safe to decide: a frozen source stays frozen meanwhile.
			if (attempt >= 720) {
				MarkFailed(*state, "the target region did not answer for an hour: " + Describe(e), started);
				break;
			}
			if (attempt == 1)
				Log(LogLevel::kWarn, "tenant move: waiting for the target region to decide an orphaned move",
				    {{"tenant_id", tenant}, {"to", state->status.to}, {"error", Describe(e)}});
			std::this_thread::sleep_for(milliseconds(5000));
		}
	}
	if (switched && *switched) {
		try {
			state->Update([](MoveStatus &s) { s.phase = "switched"; });
			std::string tokens;
			Retry("tokens", tenant, 120, milliseconds(500), [&] {
				Lease s = state->source->Acquire();
				tokens = s->Exec(kReadTokensSql, {tenant}).get(0, 0);
			});
			Forward(*state, tokens, "", started, std::nullopt);
		} catch (const std::exception &e) {
			Log(LogLevel::kError, "tenant move failed", {{"tenant_id", tenant}, {"error", Describe(e)}});
			MarkFailed(*state, Describe(e), started);
		}
	} else if (switched) {
		state->Update([](MoveStatus &s) { s.error = "its orchestrator stopped before the switch"; });
		RollBack(*state, subscription_oid, started);
	}
	{
		Lease release = std::move(guard); // the lock goes with the connection, closed below
	}
	state->source->CloseAll();
	state->target->CloseAll();
}

void
MoveOrchestrator::RollBack(State &state, const std::string &subscription_oid, Clock::time_point started)
{
	const std::string tenant = state.status.tenant_id, to = state.status.to;
	// The source first: the tenant works there again at once.
	const std::vector<Param> finish = {tenant, subscription_oid.empty() ? Param() : Param(subscription_oid)};
	std::string source_error = "the source did not answer";
	for (int attempt = 0; attempt < 30 && !source_error.empty(); attempt++) {
		try {
			Lease source = state.source->Acquire();
			source->Exec("SELECT tenancy.move_source_finish($1::uuid, 'rolled_back', $2::oid)", finish);
			source_error.clear();
		} catch (const DbError &e) {
			if (e.sqlstate() == "55000")
				source_error.clear(); // no move record left on the source: nothing to roll back there
			else
				std::this_thread::sleep_for(milliseconds(1000));
		}
	}
	state.Update([&](MoveStatus &s) {
		s.phase = source_error.empty() ? "rolled_back" : "failed";
		if (!source_error.empty())
			s.error += "; rollback on the source failed: run tenancy.move_source_finish(id, 'rolled_back') there";
		s.target_cleaned = false;
		s.total_ms = MillisSince(started);
		s.finished_at = NowRfc3339();
	});
	// Then the target's leftovers, whenever it answers again (for up to an hour).
	for (int attempt = 0; attempt < 720; attempt++) {
		try {
			Lease target = state.target->Acquire();
			target->Exec("SELECT tenancy.move_target_abort($1::uuid)", {tenant});
			state.Update([](MoveStatus &s) { s.target_cleaned = true; });
			Log(LogLevel::kInfo, "tenant move rolled back",
			    {{"tenant_id", tenant}, {"to", to}, {"ms", MillisSince(started)}});
			return;
		} catch (const std::exception &) {
			std::this_thread::sleep_for(milliseconds(5000));
		}
	}
	Log(LogLevel::kError, "tenant move: target leftovers not removed; run tenancy.move_target_abort(id) there",
	    {{"tenant_id", tenant}, {"to", to}});
}

} // namespace tenancyd
