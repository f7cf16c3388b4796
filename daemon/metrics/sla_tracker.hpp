// daemon/metrics/sla_tracker.hpp
// Measured service level per tenant: requests, server errors and response time in hourly buckets over a window.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>

namespace tenancyd {

struct SlaMeasurement {
	uint64_t requests = 0;
	uint64_t server_errors = 0; // answers with a 5xx status
	double total_seconds = 0;
	std::chrono::system_clock::time_point window_start; // the later of (now - window) and process start
};

class SlaTracker {
public:
	static constexpr size_t kMaxTenants = 20000;
	SlaTracker();
	// Counts one answer. A tenant not yet tracked gets an entry only when `exists` (the database confirmed the
	// tenant: a token of it authenticated, or the request succeeded), so requests for made-up tenant ids cannot fill
	// the table; when it is full, the tenant whose last request is oldest makes room.
	void Record(const std::string &tenant, int status, double seconds, bool exists = true,
	            std::chrono::system_clock::time_point at = std::chrono::system_clock::now());
	size_t TenantCount() const;
	SlaMeasurement Measure(const std::string &tenant, int window_hours,
	                       std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) const;

private:
	struct Bucket {
		int64_t hour; // hours since the epoch
		uint64_t requests = 0;
		uint64_t server_errors = 0;
		double seconds = 0;
	};
	mutable std::mutex mutex_;
	std::unordered_map<std::string, std::deque<Bucket>> tenants_;
	std::chrono::system_clock::time_point started_;
};

} // namespace tenancyd
