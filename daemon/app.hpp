// daemon/app.hpp
// Process-wide state shared by the handlers: the live configuration (swapped on SIGHUP), pools and metrics.
#pragma once

#include "config.hpp"
#include "db/pool_set.hpp"
#include "metrics/registry.hpp"
#include "metrics/sla_tracker.hpp"

#include <memory>
#include <mutex>

namespace tenancyd {

class App {
public:
	explicit App(Config config) : config_(std::make_shared<const Config>(config)), pools(config) {}
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
	PoolSet pools;
	MetricsRegistry metrics;
	SlaTracker sla;
};

} // namespace tenancyd
