// daemon/db/pool_set.hpp
// The shared pool plus an optional pool reserved for tenants of some plans (pools.dedicated_for: [enterprise]),
// for one cluster: database.conninfo, or one region's cluster with regions (region/router.hpp holds one per region).
#pragma once

#include "config.hpp"
#include "db/pool.hpp"

#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

namespace tenancyd {

class PoolSet {
  public:
	explicit PoolSet(const Config &config);
	// Pools of the cluster at conninfo; name prefixes the pools' log names (e.g. "eu").
	PoolSet(const Config &config, const std::string &conninfo, const std::string &name);
	// A lease from the dedicated pool when the tenant's plan (as last seen) is dedicated, else from the shared one.
	Lease AcquireFor(const std::string &tenant_id);
	// Records a tenant's plan, learned from a tenant document or a token lookup.
	void RememberPlan(const std::string &tenant_id, const std::string &plan);
	bool Ping();
	PoolHealth Probe(); // the shared pool's (Pool::Probe)
	void CheckIdle(std::chrono::milliseconds idle);
	void CloseAll();
	bool
	HasDedicated() const
	{
		return dedicated_ != nullptr;
	}

  private:
	static constexpr size_t kMaxRememberedPlans = 100000;
	Pool shared_;
	std::unique_ptr<Pool> dedicated_;
	std::set<std::string> dedicated_plans_;
	std::mutex mutex_;
	std::unordered_map<std::string, bool> tenant_is_dedicated_;
};

} // namespace tenancyd
