// daemon/metrics/registry.cpp
// Cardinality stays bounded at render time: per-tenant series for the busiest tenants only, the rest summed.
#include "metrics/registry.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <set>
#include <sstream>

namespace tenancyd {

namespace {
std::string
FormatDouble(double v)
{
	// Shortest text that reads back as the same double: le="0.005", not 0.0050000000000000001.
	char buf[64];
	auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
	return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}
} // namespace

std::string
EscapeLabelValue(const std::string &value)
{
	std::string out;
	out.reserve(value.size());
	for (char c : value) {
		if (c == '\\')
			out += "\\\\";
		else if (c == '"')
			out += "\\\"";
		else if (c == '\n')
			out += "\\n";
		else
			out += c;
	}
	return out;
}

void
MetricsRegistry::Histogram::Add(const Histogram &o)
{
	for (size_t i = 0; i < buckets.size(); i++)
		buckets[i] += o.buckets[i];
	count += o.count;
	sum += o.sum;
}

void
MetricsRegistry::TenantSeries::Add(const TenantSeries &o)
{
	total += o.total;
	for (const auto &[k, v] : o.requests)
		requests[k] += v;
	for (const auto &[k, v] : o.latency)
		latency[k].Add(v);
}

void
MetricsRegistry::Observe(const std::string &tenant, const std::string &endpoint, const std::string &method, int status,
                         double seconds, bool exists)
{
	std::lock_guard lock(mutex_);
	std::string key = tenant.empty() ? kNoTenant : tenant;
	auto it = tenants_.find(key);
	if (it == tenants_.end()) {
		if (!exists || tenants_.size() >= kMaxTenantsInMemory)
			key = kOtherTenants;
		it = tenants_.try_emplace(key).first;
	}
	TenantSeries &s = it->second;
	s.total++;
	s.requests[{endpoint, method, status}]++;
	Histogram &h = s.latency[endpoint];
	size_t b = 0;
	while (b < kBuckets.size() && seconds > kBuckets[b])
		b++;
	if (b < kBuckets.size())
		h.buckets[b]++;
	h.count++;
	h.sum += seconds;
}

size_t
MetricsRegistry::TenantCount() const
{
	std::lock_guard lock(mutex_);
	return tenants_.size();
}

std::vector<std::string>
MetricsRegistry::Busiest(int max_tenants) const
{
	std::vector<std::pair<uint64_t, std::string>> ranked;
	{
		std::lock_guard lock(mutex_);
		for (const auto &[id, s] : tenants_)
			if (id != kNoTenant && id != kOtherTenants)
				ranked.emplace_back(s.total, id);
	}
	std::sort(ranked.begin(), ranked.end(), [](const auto &a, const auto &b) {
		return a.first != b.first ? a.first > b.first : a.second < b.second;
	});
	std::vector<std::string> out;
	for (size_t i = 0; i < ranked.size() && static_cast<int>(i) < max_tenants; i++)
		out.push_back(ranked[i].second);
	return out;
}

std::string
MetricsRegistry::Render(int max_tenants, const std::vector<GaugeSample> &gauges) const
{
	std::vector<std::string> busiest = Busiest(max_tenants);
	std::set<std::string> shown(busiest.begin(), busiest.end());
	std::map<std::string, TenantSeries> view; // label value -> series
	{
		std::lock_guard lock(mutex_);
		for (const auto &[id, s] : tenants_) {
			bool apart = id == kNoTenant || shown.count(id);
			view[apart ? id : std::string(kOtherTenants)].Add(s);
		}
	}
	std::ostringstream out;
	out << "# HELP tenancy_tenant_requests_total HTTP requests answered, by tenant, route, method and status.\n"
	    << "# TYPE tenancy_tenant_requests_total counter\n";
	for (const auto &[id, s] : view)
		for (const auto &[k, v] : s.requests)
			out << "tenancy_tenant_requests_total{tenant_id=\"" << EscapeLabelValue(id) << "\",endpoint=\""
			    << EscapeLabelValue(std::get<0>(k)) << "\",method=\"" << EscapeLabelValue(std::get<1>(k))
			    << "\",status=\"" << std::get<2>(k) << "\"} " << v << "\n";
	out << "# HELP tenancy_tenant_response_seconds Time to answer a request, by tenant and route.\n"
	    << "# TYPE tenancy_tenant_response_seconds histogram\n";
	for (const auto &[id, s] : view)
		for (const auto &[endpoint, h] : s.latency) {
			std::string labels =
			    "tenant_id=\"" + EscapeLabelValue(id) + "\",endpoint=\"" + EscapeLabelValue(endpoint) + "\"";
			uint64_t cumulative = 0;
			for (size_t i = 0; i < kBuckets.size(); i++) {
				cumulative += h.buckets[i];
				out << "tenancy_tenant_response_seconds_bucket{" << labels << ",le=\"" << FormatDouble(kBuckets[i])
				    << "\"} " << cumulative << "\n";
			}
			out << "tenancy_tenant_response_seconds_bucket{" << labels << ",le=\"+Inf\"} " << h.count << "\n"
			    << "tenancy_tenant_response_seconds_sum{" << labels << "} " << FormatDouble(h.sum) << "\n"
			    << "tenancy_tenant_response_seconds_count{" << labels << "} " << h.count << "\n";
		}
	// Gauges come grouped by name; each name gets its HELP/TYPE once, even when it has no samples.
	const std::pair<const char *, const char *> kGauges[] = {
	    {"tenancy_tenant_active_users", "Users (invited or active) of the tenant."},
	    {"tenancy_tenant_quota_utilization_percent", "Usage of a quota as a percentage of its limit."},
	};
	for (const auto &[name, help] : kGauges) {
		out << "# HELP " << name << " " << help << "\n# TYPE " << name << " gauge\n";
		for (const GaugeSample &g : gauges) {
			if (g.name != name)
				continue;
			out << name << "{";
			for (size_t i = 0; i < g.labels.size(); i++)
				out << (i ? "," : "") << g.labels[i].first << "=\"" << EscapeLabelValue(g.labels[i].second) << "\"";
			out << "} " << FormatDouble(g.value) << "\n";
		}
	}
	return out.str();
}

} // namespace tenancyd
