// daemon/metrics/registry.hpp
// Per-tenant request counters and latency histograms, rendered as Prometheus text with bounded cardinality.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace tenancyd {

// A gauge sample read from the database at scrape time.
struct GaugeSample {
	std::string name; // metric name
	std::vector<std::pair<std::string, std::string>> labels;
	double value;
};

class MetricsRegistry {
public:
  // 0.2, 0.5 and 1 are the plans' SLA response-time targets (enterprise, team, developer): the dashboard's SLA
  // table and the alert rules read those buckets (tenancy.sla_targets).
  static constexpr std::array<double, 14> kBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
	                                                  0.2,   0.25,   0.5,   1,    2.5,   5,    10};
  // Requests outside any tenant (admin listing, tenant creation) carry this tenant_id.
  static constexpr const char *kNoTenant = "none";
  static constexpr const char *kOtherTenants = "other";
  // Distinct tenants kept apart in memory; beyond this they are summed under "other" at once.
  static constexpr size_t kMaxTenantsInMemory = 20000;

  // Counts one request. tenant empty means kNoTenant. endpoint is the route pattern, never the raw path.
  // A tenant not yet seen gets its own series only when `exists` (the database confirmed it); requests about
  // unknown tenant ids are counted under kOtherTenants, so made-up ids never take a place in memory.
  void Observe(const std::string &tenant, const std::string &endpoint, const std::string &method, int status,
	           double seconds, bool exists = true);
  size_t TenantCount() const;
  // The max_tenants busiest tenants (by requests since start).
  std::vector<std::string> Busiest(int max_tenants) const;
  // Prometheus text exposition 0.0.4: the busiest max_tenants tenants apart, the rest as tenant_id="other".
  std::string Render(int max_tenants, const std::vector<GaugeSample> &gauges) const;

private:
	struct Histogram {
		std::array<uint64_t, kBuckets.size()> buckets{}; // non-cumulative
		uint64_t count = 0;
		double sum = 0;
		void Add(const Histogram &o);
	};
	struct TenantSeries {
		uint64_t total = 0;
		std::map<std::tuple<std::string, std::string, int>, uint64_t> requests; // endpoint, method, status
		std::map<std::string, Histogram> latency;                              // endpoint
		void Add(const TenantSeries &o);
	};
	mutable std::mutex mutex_;
	std::map<std::string, TenantSeries> tenants_;
};

// Prometheus label value escaping: backslash, double quote and newline.
std::string EscapeLabelValue(const std::string &value);

} // namespace tenancyd
