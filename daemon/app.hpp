// daemon/app.hpp
// Process-wide state shared by the handlers: the live configuration (swapped on SIGHUP), pools (one set, or one per
// region with the tenant directory in regions mode), and metrics.
#pragma once

#include "config.hpp"
#include "db/pool_set.hpp"
#include "metrics/registry.hpp"
#include "metrics/sla_tracker.hpp"
#include "region/router.hpp"

#include <map>
#include <memory>
#include <mutex>

namespace tenancyd {

// Bounds concurrent heavy requests (exports): per key (tenant) and in all. TryEnter never waits.
class ConcurrencyGate {
  public:
	bool
	TryEnter(const std::string &key, int per_key, int total)
	{
		std::lock_guard lock(mutex_);
		auto it = running_.find(key);
		if (all_ >= total || (it != running_.end() && it->second >= per_key))
			return false;
		running_[key]++;
		all_++;
		return true;
	}
	void
	Leave(const std::string &key)
	{
		std::lock_guard lock(mutex_);
		if (--running_[key] <= 0)
			running_.erase(key);
		all_--;
	}

  private:
	std::mutex mutex_;
	std::map<std::string, int> running_;
	int all_ = 0;
};

class App {
public:
	explicit App(Config config) : config_(std::make_shared<const Config>(config)), pools(config), router(config) {}
	std::shared_ptr<const Config> config() const
	{
		std::lock_guard lock(mutex_);
		return config_;
	}
	// Applies a reloaded configuration; keys that need a restart keep their old values in effect.
	void SetConfig(Config config)
	{
		std::lock_guard lock(mutex_);
		config_ = std::make_shared<const Config>(std::move(config));
	}

private:
	mutable std::mutex mutex_;
	std::shared_ptr<const Config> config_;

public:
	PoolSet pools; // single-cluster mode (unused when router.enabled())
	Router router; // regions mode
	// Records a tenant's plan (for the dedicated pool) in the pools its requests use: the single cluster's, or in
	// regions mode those of region, the tenant's region once routed (nothing when the request was not routed).
	void
	RememberPlan(const std::string &region, const std::string &tenant_id, const std::string &plan)
	{
		if (!router.enabled())
			pools.RememberPlan(tenant_id, plan);
		else if (!region.empty())
			router.PoolsOf(region).RememberPlan(tenant_id, plan);
	}
	MetricsRegistry metrics;
	SlaTracker sla;
	ConcurrencyGate exports; // GET .../export: limits.max_exports_per_tenant and limits.max_exports
};

} // namespace tenancyd
