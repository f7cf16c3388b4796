// daemon/db/pool_set.cpp
// Tenants of dedicated plans never queue behind the shared pool once their plan is known.
#include "db/pool_set.hpp"

#include <algorithm>

namespace tenancyd {

namespace {
PoolOptions
OptionsFrom(const Config &c, const std::string &conninfo, const std::string &name, int size)
{
	PoolOptions o;
	o.name = name;
	o.conninfo = conninfo;
	o.size = size;
	o.acquire_timeout_ms = c.db_acquire_timeout_ms;
	o.connect_timeout_s = c.db_connect_timeout_s;
	o.statement_timeout_ms = c.db_statement_timeout_ms;
	// One tenant's share: database.max_connections_per_tenant, by default half the pool (at least one).
	o.max_per_tenant =
	    std::min(size, c.db_max_connections_per_tenant > 0 ? c.db_max_connections_per_tenant : std::max(1, size / 2));
	return o;
}
} // namespace

PoolSet::PoolSet(const Config &config) : PoolSet(config, config.db_conninfo, "") {}

PoolSet::PoolSet(const Config &config, const std::string &conninfo, const std::string &name)
    : shared_(OptionsFrom(config, conninfo, name.empty() ? "shared" : name + "/shared", config.db_pool_size))
{
	if (!config.pools_dedicated_for.empty()) {
		dedicated_ = std::make_unique<Pool>(OptionsFrom(
		    config, conninfo, name.empty() ? "dedicated" : name + "/dedicated", config.pools_dedicated_size));
		dedicated_plans_.insert(config.pools_dedicated_for.begin(), config.pools_dedicated_for.end());
	}
}

Lease
PoolSet::AcquireFor(const std::string &tenant_id)
{
	if (dedicated_ && !tenant_id.empty()) {
		bool dedicated = false;
		{
			std::lock_guard lock(mutex_);
			auto it = tenant_is_dedicated_.find(tenant_id);
			dedicated = it != tenant_is_dedicated_.end() && it->second;
		}
		if (dedicated)
			return dedicated_->Acquire(tenant_id);
	}
	return shared_.Acquire(tenant_id);
}

void
PoolSet::RememberPlan(const std::string &tenant_id, const std::string &plan)
{
	if (!dedicated_)
		return;
	std::lock_guard lock(mutex_);
	if (tenant_is_dedicated_.size() >= kMaxRememberedPlans)
		tenant_is_dedicated_.clear(); // a plain reset keeps memory bounded; plans are relearned on next use
	tenant_is_dedicated_[tenant_id] = dedicated_plans_.count(plan) > 0;
}

bool
PoolSet::Ping()
{
	return shared_.Ping();
}

PoolHealth
PoolSet::Probe()
{
	return shared_.Probe();
}

void
PoolSet::CheckIdle(std::chrono::milliseconds idle)
{
	shared_.CheckIdle(idle);
	if (dedicated_)
		dedicated_->CheckIdle(idle);
}

void
PoolSet::CloseAll()
{
	shared_.CloseAll();
	if (dedicated_)
		dedicated_->CloseAll();
}

} // namespace tenancyd
