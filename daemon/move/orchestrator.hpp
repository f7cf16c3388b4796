// daemon/move/orchestrator.hpp
// Runs live tenant moves between region clusters (the SQL protocol of sql/src/88_move.sql) in background threads.
#pragma once

#include "db/pool.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace tenancyd {

// What a move needs from regions mode (handlers/move.cpp binds them to the Router and the configuration).
struct MoveRegions {
	// Connection options of an admin connection to a region's cluster (the move opens its own, off the request
	// pools, with a statement timeout for long steps).
	std::function<PoolOptions(const std::string &region)> admin_options;
	// The directory switch: compare-and-set from -> to; false when the tenant is not at `from`. Throws on errors.
	std::function<bool(const std::string &tenant_id, const std::string &from, const std::string &to)> switch_region;
	// A connection from the region's request pool (the periodic look for orphaned moves).
	std::function<Lease(const std::string &region)> acquire;
	// Whether this instance has a cluster for the region.
	std::function<bool(const std::string &region)> serves;
	// How long a request that read the directory just before the switch may still run against the source (its
	// pool wait plus its statement timeout): the source stays frozen (503, Retry-After) that long before the tenant
	// is erased there, so such a request never gets a 404 for a tenant that exists.
	std::chrono::milliseconds drain{0};
};

// A move as GET /api/v1/tenants/{id}/move reports it. Phases:
//   prepare -> copying -> catching_up -> freezing -> switched -> cleaning -> done
//   a failure before switched -> rolled_back (the tenant stays in, and is served by, the source region)
//   a failure after switched -> failed (the target serves the tenant; the source keeps it frozen until an operator
//   finishes it, docs/residency.md 4.1)
//   a move whose orchestrator is gone, taken over: recovering -> rolled_back, or -> switched -> cleaning -> done
struct MoveStatus {
	std::string tenant_id;
	std::string from;
	std::string to;
	std::string phase = "prepare";
	std::string error;         // why a move failed or rolled back, empty otherwise
	long long rows_copied = 0; // the tenant's rows on the target so far
	long long rows_total = 0;  // the tenant's rows on the source when the move started
	long long lag_bytes = -1;  // WAL the target has not confirmed yet (-1: unknown)
	long long freeze_ms = -1;  // write freeze, from the freeze to the directory switch
	long long total_ms = -1;   // once finished
	long long tokens_moved = -1;
	bool target_cleaned = true; // false while a rolled-back move's target leftovers wait for the target
	bool adopted = false;       // taken over from an orchestrator that stopped mid-move (AdoptOrphans)
	std::string started_at;
	std::string finished_at;
	nlohmann::json tables = nlohmann::json::array();

	nlohmann::json ToJson() const;
	bool
	Finished() const
	{
		return phase == "done" || phase == "rolled_back" || phase == "failed";
	}
};

class MoveOrchestrator {
  public:
	explicit MoveOrchestrator(MoveRegions regions) : regions_(std::move(regions)) {}
	// Prepares the move on the source (its errors answer the request: TN007 children, 55000 no wal_level = logical,
	// ...) and runs the rest in a background thread. Returns the first status. ApiError 409 when a move of that
	// tenant is still running, here or (a move record on the source) on another tenancyd.
	MoveStatus Start(const std::string &tenant_id, const std::string &from, const std::string &to);
	// The status of the tenant's last move started (or adopted) by this instance.
	std::optional<MoveStatus> Status(const std::string &tenant_id);
	// Takes over the moves out of these regions whose orchestrator is gone (a tenancyd stopped mid-move: no session
	// holds the move's lock, tenancy.move_orphans) and ends each in a background thread: forward when the target
	// already switched, rolled back otherwise. Called periodically; a region that does not answer is skipped.
	void AdoptOrphans(const std::vector<std::string> &regions);
	// At shutdown: waits (up to `limit`) while a move of this instance is in its freeze or past its switch, which
	// end within seconds; a move still copying is left. Returns how many move threads still run: the process must
	// then exit without destroying what they use (their connections close with it, so another tenancyd, or this
	// one restarted, takes those moves over).
	int SettleForShutdown(std::chrono::milliseconds limit);

  private:
	struct State {
		std::mutex mutex;
		MoveStatus status;
		std::unique_ptr<Pool> source; // the move's own connections, closed when it ends
		std::unique_ptr<Pool> target;
		// Changes the status under the mutex (request threads read it for GET .../move).
		template <typename F>
		void
		Update(F &&update)
		{
			std::lock_guard lock(mutex);
			update(status);
		}
	};
	void Run(std::shared_ptr<State> state, std::string prepared);
	// An adopted move: the target decides whether it switched, then Forward or RollBack. guard holds the move's lock.
	void Resume(std::shared_ptr<State> state, Lease guard);
	// After the switch, only forward: tokens, directory, target cleanup, the drain, the source's erasure.
	void Forward(State &state, const std::string &tokens, const std::string &subscription_oid,
	             std::chrono::steady_clock::time_point started,
	             std::optional<std::chrono::steady_clock::time_point> frozen);
	void RollBack(State &state, const std::string &subscription_oid, std::chrono::steady_clock::time_point started);
	// After a failure past the switch: the target serves the tenant, the frozen source waits for an operator.
	void MarkFailed(State &state, const std::string &why, std::chrono::steady_clock::time_point started);
	// Counts a move thread while it runs.
	struct Running {
		explicit Running(std::atomic<int> &n) : n_(n)
		{
			n_++;
		}
		~Running()
		{
			n_--;
		}
		std::atomic<int> &n_;
	};
	MoveRegions regions_;
	std::atomic<int> running_{0};
	std::mutex mutex_;
	std::map<std::string, std::shared_ptr<State>> moves_;
};

} // namespace tenancyd
