// daemon/app.hpp
// Process-wide state shared by the handlers: the live configuration (swapped on SIGHUP), pools (one set, or one per
// region with the tenant directory in regions mode), and metrics.
#pragma once

#include "config.hpp"
#include "db/pool_set.hpp"
#include "metrics/registry.hpp"
#include "metrics/sla_tracker.hpp"
#include "region/router.hpp"

#include <memory>
#include <mutex>

namespace tenancyd {

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
};

} // namespace tenancyd
