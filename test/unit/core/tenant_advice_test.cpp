// test/unit/core/tenant_advice_test.cpp
// The large-tenant thresholds of the brief and the action each one recommends.
#include "tenancy/core/tenant_advice.hpp"

#include <gtest/gtest.h>

using namespace tenancy::core;

TEST(TenantAdvice, NothingBelowOrAtTheThresholds)
{
	EXPECT_TRUE(AdviseTenant(TenantStats{1000, 10000, 100 * 1024}).empty());
	EXPECT_TRUE(AdviseTenant(TenantStats{0, 0, 0}).empty());
	EXPECT_TRUE(AdviseTenant(TenantStats{}).empty()); // unknown figures are never advised on
}

TEST(TenantAdvice, EachThresholdHasItsAction)
{
	auto a = AdviseTenant(TenantStats{1001, -1, -1});
	ASSERT_EQ(a.size(), 1u);
	EXPECT_EQ(a[0].metric, "projects");
	EXPECT_EQ(a[0].action, "index");
	EXPECT_EQ(a[0].value, 1001);
	EXPECT_EQ(a[0].threshold, 1000);

	a = AdviseTenant(TenantStats{-1, 10001, -1});
	ASSERT_EQ(a.size(), 1u);
	EXPECT_EQ(a[0].action, "isolate");

	a = AdviseTenant(TenantStats{-1, -1, 102401});
	ASSERT_EQ(a.size(), 1u);
	EXPECT_EQ(a[0].action, "archive");
}

TEST(TenantAdvice, AllThreeInOrder)
{
	auto a = AdviseTenant(TenantStats{5000, 50000, 500000});
	ASSERT_EQ(a.size(), 3u);
	EXPECT_EQ(a[0].metric, "projects");
	EXPECT_EQ(a[1].metric, "api_calls_per_hour");
	EXPECT_EQ(a[2].metric, "storage_mb");
}
