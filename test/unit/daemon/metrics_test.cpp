// test/unit/daemon/metrics_test.cpp
// Prometheus rendering: names and types of SPEC.md, label escaping, bounded tenant cardinality, SLA windows.
#include "metrics/registry.hpp"
#include "metrics/sla_tracker.hpp"

#include <gtest/gtest.h>
#include <regex>

using namespace tenancyd;

namespace {
size_t
Count(const std::string &text, const std::string &needle)
{
	size_t n = 0;
	for (size_t p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1))
		n++;
	return n;
}
} // namespace

TEST(Metrics, NamesAndTypes)
{
	MetricsRegistry m;
	m.Observe("t1", "/api/v1/tenants/{id}", "GET", 200, 0.003);
	std::string text = m.Render(10, {{"tenancy_tenant_active_users", {{"tenant_id", "t1"}, {"plan", "team"}}, 3}});
	EXPECT_NE(text.find("# TYPE tenancy_tenant_requests_total counter"), std::string::npos);
	EXPECT_NE(text.find("# TYPE tenancy_tenant_response_seconds histogram"), std::string::npos);
	EXPECT_NE(text.find("# TYPE tenancy_tenant_active_users gauge"), std::string::npos);
	EXPECT_NE(text.find("# TYPE tenancy_tenant_quota_utilization_percent gauge"), std::string::npos);
	EXPECT_NE(text.find("tenancy_tenant_requests_total{tenant_id=\"t1\",endpoint=\"/api/v1/tenants/{id}\","
	                    "method=\"GET\",status=\"200\"} 1"),
	          std::string::npos);
	EXPECT_NE(text.find("le=\"0.005\"} 1"), std::string::npos);
	EXPECT_NE(text.find("le=\"0.0025\"} 0"), std::string::npos);
	EXPECT_NE(text.find("le=\"+Inf\"} 1"), std::string::npos);
	EXPECT_NE(text.find("tenancy_tenant_active_users{tenant_id=\"t1\",plan=\"team\"} 3"), std::string::npos);
}

TEST(Metrics, LabelEscaping)
{
	EXPECT_EQ(EscapeLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
}

TEST(Metrics, CardinalityIsBounded)
{
	MetricsRegistry m;
	for (int t = 0; t < 50; t++)
		for (int i = 0; i <= t; i++) // tenant t makes t+1 requests: the busiest are the highest numbers
			m.Observe("tenant-" + std::to_string(t), "/api/v1/tenants/{id}/usage", "GET", 200, 0.001);
	std::string text = m.Render(3, {});
	std::regex tenant_label("tenant_id=\"([^\"]+)\"");
	std::set<std::string> tenants;
	for (auto it = std::sregex_iterator(text.begin(), text.end(), tenant_label); it != std::sregex_iterator(); ++it)
		tenants.insert((*it)[1]);
	EXPECT_EQ(tenants, (std::set<std::string>{"tenant-47", "tenant-48", "tenant-49", "other"}));
	// The other 47 tenants' 1128 requests are summed, none lost.
	EXPECT_NE(text.find("tenancy_tenant_requests_total{tenant_id=\"other\",endpoint=\"/api/v1/tenants/{id}/usage\","
	                    "method=\"GET\",status=\"200\"} 1128"),
	          std::string::npos);
	EXPECT_EQ(Count(text, "tenancy_tenant_requests_total{"), 4u);
}

TEST(Sla, WindowedMeasurement)
{
	SlaTracker sla;
	auto now = std::chrono::system_clock::now();
	sla.Record("t", 200, 0.010, now);
	sla.Record("t", 503, 0.030, now);
	sla.Record("t", 200, 0.020, now - std::chrono::hours(48));
	SlaMeasurement day = sla.Measure("t", 24, now);
	EXPECT_EQ(day.requests, 2u);
	EXPECT_EQ(day.server_errors, 1u);
	EXPECT_NEAR(day.total_seconds, 0.040, 1e-9);
	EXPECT_EQ(sla.Measure("t", 72, now).requests, 3u);
	EXPECT_EQ(sla.Measure("other", 24, now).requests, 0u);
}
