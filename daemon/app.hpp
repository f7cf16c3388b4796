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
	// The pools of a region ("" in single-cluster mode).
	PoolSet &PoolsIn(const std::string &region) { return region.empty() ? pools : router.PoolsOf(region); }
	MetricsRegistry metrics;
	SlaTracker sla;
};

} // namespace tenancyd
