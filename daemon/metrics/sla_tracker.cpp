// daemon/metrics/sla_tracker.cpp
// Hourly buckets older than the longest allowed window (400 days) are dropped, so memory per tenant is bounded.
#include "metrics/sla_tracker.hpp"

namespace tenancyd {

namespace {
constexpr int64_t kMaxHours = 9600;

int64_t
HourOf(std::chrono::system_clock::time_point t)
{
	return std::chrono::duration_cast<std::chrono::hours>(t.time_since_epoch()).count();
}
} // namespace

SlaTracker::SlaTracker() : started_(std::chrono::system_clock::now()) {}

void
SlaTracker::Record(const std::string &tenant, int status, double seconds, bool exists,
                   std::chrono::system_clock::time_point at)
{
	int64_t hour = HourOf(at);
	std::lock_guard lock(mutex_);
	auto it = tenants_.find(tenant);
	if (it == tenants_.end()) {
		if (!exists)
			return;
		if (tenants_.size() >= kMaxTenants) {
			// Evict the least recently served tenant (a scan, only when full and only for a confirmed tenant).
			auto oldest = tenants_.end();
			for (auto e = tenants_.begin(); e != tenants_.end(); ++e)
				if (oldest == tenants_.end() || e->second.empty() ||
				    (!oldest->second.empty() && e->second.back().hour < oldest->second.back().hour))
					oldest = e;
			tenants_.erase(oldest);
		}
		it = tenants_.try_emplace(tenant).first;
	}
	auto &buckets = it->second;
	if (buckets.empty() || buckets.back().hour != hour)
		buckets.push_back(Bucket{hour});
	while (!buckets.empty() && buckets.front().hour < hour - kMaxHours)
		buckets.pop_front();
	Bucket &b = buckets.back();
	b.requests++;
	b.server_errors += status >= 500 ? 1 : 0;
	b.seconds += seconds;
}

size_t
SlaTracker::TenantCount() const
{
	std::lock_guard lock(mutex_);
	return tenants_.size();
}

SlaMeasurement
SlaTracker::Measure(const std::string &tenant, int window_hours, std::chrono::system_clock::time_point now) const
{
	SlaMeasurement m;
	auto from = now - std::chrono::hours(window_hours);
	m.window_start = from < started_ ? started_ : from;
	int64_t first_hour = HourOf(now) - window_hours + 1;
	std::lock_guard lock(mutex_);
	auto it = tenants_.find(tenant);
	if (it == tenants_.end())
		return m;
	for (const Bucket &b : it->second)
		if (b.hour >= first_hour) {
			m.requests += b.requests;
			m.server_errors += b.server_errors;
			m.total_seconds += b.seconds;
		}
	return m;
}

} // namespace tenancyd
