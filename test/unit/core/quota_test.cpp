// test/unit/core/quota_test.cpp
// Quota metrics, UTC calendar windows (month and day boundaries, leap years) and the reservation block policy.
#include "tenancy/core/error.hpp"
#include "tenancy/core/quota_block.hpp"
#include "tenancy/core/quota_metric.hpp"
#include "tenancy/core/quota_report.hpp"

#include <gtest/gtest.h>

#include <cstdint>

using namespace tenancy::core;

namespace {

constexpr int64_t kMicrosPerSecond = 1000000;

// Unix microseconds of a UTC date and time.
int64_t
At(int year, unsigned month, unsigned day, int hour = 0, int minute = 0, int second = 0, int64_t micros = 0)
{
	return (int64_t{DaysFromCivil(year, month, day)} * 86400 + hour * 3600 + minute * 60 + second) * kMicrosPerSecond +
	       micros;
}

} // namespace

TEST(QuotaMetric, ParsesTheSixNames)
{
	EXPECT_EQ(ParseQuotaMetric("users"), QuotaMetric::kUsers);
	EXPECT_EQ(ParseQuotaMetric("api_calls"), QuotaMetric::kApiCalls);
	EXPECT_EQ(ParseQuotaMetric("concurrent_sessions"), QuotaMetric::kConcurrentSessions);
	EXPECT_FALSE(ParseQuotaMetric("API_CALLS"));
	EXPECT_FALSE(ParseQuotaMetric("storage"));
	EXPECT_FALSE(ParseQuotaMetric(""));
	for (int i = 0; i < kQuotaMetricCount; i++)
		EXPECT_EQ(ParseQuotaMetric(QuotaMetricName(static_cast<QuotaMetric>(i))), static_cast<QuotaMetric>(i));
}

TEST(QuotaMetric, UnknownNameIsInvalidInput)
{
	try {
		ParseQuotaMetricOrThrow("bandwidth");
		FAIL() << "no error";
	} catch (const Error &e) {
		EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput);
		EXPECT_STREQ(e.what(), "unknown quota metric \"bandwidth\"");
	}
}

TEST(QuotaMetric, KindsAndWindows)
{
	EXPECT_EQ(QuotaWindowOf(QuotaMetric::kApiCalls), QuotaWindow::kMonth);
	EXPECT_EQ(QuotaWindowOf(QuotaMetric::kAiRequests), QuotaWindow::kDay);
	EXPECT_EQ(QuotaWindowOf(QuotaMetric::kUsers), QuotaWindow::kNone);
	EXPECT_TRUE(QuotaMetricIsGauge(QuotaMetric::kStorageMb));
	EXPECT_TRUE(QuotaMetricIsGauge(QuotaMetric::kConcurrentSessions));
	EXPECT_FALSE(QuotaMetricIsGauge(QuotaMetric::kApiCalls));
	EXPECT_FALSE(QuotaMetricIsGauge(QuotaMetric::kProjects));
}

TEST(QuotaWindowTest, CivilRoundTrip)
{
	EXPECT_EQ(DaysFromCivil(1970, 1, 1), 0);
	EXPECT_EQ(DaysFromCivil(2000, 3, 1), 11017);
	EXPECT_EQ(DaysFromCivil(1969, 12, 31), -1);
	for (int32_t d = -800000; d <= 800000; d += 7) {
		int y;
		unsigned m, dd;
		CivilFromDays(d, y, m, dd);
		ASSERT_EQ(DaysFromCivil(y, m, dd), d);
	}
	EXPECT_EQ(FormatDay(DaysFromCivil(2026, 11, 26)), "2026-11-26");
	EXPECT_EQ(FormatDay(DaysFromCivil(2024, 2, 29)), "2024-02-29");
}

TEST(QuotaWindowTest, MonthBoundaries)
{
	int32_t nov = DaysFromCivil(2026, 11, 1);
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2026, 11, 1)), nov);
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2026, 11, 30, 23, 59, 59, 999999)), nov);
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2026, 12, 1)), DaysFromCivil(2026, 12, 1));
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2026, 10, 31, 23, 59, 59, 999999)), DaysFromCivil(2026, 10, 1));
	// year end, leap February, non-leap February, century rules
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2026, 12, 31, 23, 59, 59)), DaysFromCivil(2026, 12, 1));
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2027, 1, 1)), DaysFromCivil(2027, 1, 1));
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2028, 2, 29, 12)), DaysFromCivil(2028, 2, 1));
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2028, 3, 1)), DaysFromCivil(2028, 3, 1));
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2100, 2, 28, 23)), DaysFromCivil(2100, 2, 1));
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2100, 3, 1)), DaysFromCivil(2100, 3, 1));
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, At(2000, 2, 29)), DaysFromCivil(2000, 2, 1));
}

TEST(QuotaWindowTest, DayBoundaries)
{
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kDay, At(2026, 11, 26)), DaysFromCivil(2026, 11, 26));
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kDay, At(2026, 11, 26, 23, 59, 59, 999999)), DaysFromCivil(2026, 11, 26));
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kDay, At(2026, 11, 27)), DaysFromCivil(2026, 11, 27));
	// before the Unix epoch the division must floor, not truncate
	EXPECT_EQ(UtcDayOf(-1), -1);
	EXPECT_EQ(UtcDayOf(At(1969, 12, 31, 23, 59, 59)), -1);
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kMonth, -1), DaysFromCivil(1969, 12, 1));
}

TEST(QuotaWindowTest, NoWindowIsConstant)
{
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kNone, At(2026, 11, 26)), 0);
	EXPECT_EQ(QuotaWindowStart(QuotaWindow::kNone, At(1999, 1, 1)), 0);
}

TEST(QuotaBlock, ShrinksNearTheLimit)
{
	EXPECT_EQ(QuotaBlockSize(1000000, 0, 1024), 1024);
	EXPECT_EQ(QuotaBlockSize(20000, 0, 1024), 1024);
	EXPECT_EQ(QuotaBlockSize(20000, 19000, 1024), 62);
	EXPECT_EQ(QuotaBlockSize(20000, 19990, 1024), 1);
	EXPECT_EQ(QuotaBlockSize(20000, 19999, 1024), 1);
	EXPECT_EQ(QuotaBlockSize(20000, 20000, 1024), 1);
	EXPECT_EQ(QuotaBlockSize(20000, 25000, 1024), 1);
	EXPECT_EQ(QuotaBlockSize(20000, 0, 0), 1);
}

TEST(QuotaBlock, TargetNeverPassesTheLimitForAConsume)
{
	for (int64_t used = 0; used < 20000; used += 37) {
		for (int64_t amount : {int64_t{1}, int64_t{5}, int64_t{300}}) {
			if (used + amount > 20000)
				continue;
			int64_t target = QuotaReservationTarget(20000, used, amount, 1024);
			ASSERT_GE(target, used + amount);
			ASSERT_LE(target, 20000);
			ASSERT_LE(target - used, std::max<int64_t>(amount, 1024));
		}
	}
	EXPECT_EQ(QuotaReservationTarget(20000, 19999, 1, 1024), 20000);
	EXPECT_EQ(QuotaReservationTarget(10, 0, 1, 1024), 1);
}

TEST(QuotaBlock, GaugeAboveLimitIsCovered)
{
	EXPECT_EQ(QuotaReservationTarget(100, 0, 500, 1024), 500);
	EXPECT_EQ(QuotaReservationTarget(100, 150, 10, 1024), 160);
}

TEST(QuotaBlock, Saturates)
{
	const int64_t max = INT64_MAX;
	EXPECT_EQ(SaturatingAdd(max - 1, 5), max);
	EXPECT_EQ(QuotaReservationTarget(max, max - 2, 1, 1024), max - 1);
	EXPECT_GE(QuotaReservationTarget(max, 0, max, 1024), 0);
}

TEST(QuotaBlock, PrefetchAtAQuarterBlock)
{
	EXPECT_FALSE(QuotaShouldPrefetch(1000000, 0, 1024, 1024));
	EXPECT_FALSE(QuotaShouldPrefetch(1000000, 768, 1024, 1024));
	EXPECT_TRUE(QuotaShouldPrefetch(1000000, 769, 1024, 1024));
	EXPECT_FALSE(QuotaShouldPrefetch(20000, 19999, 20000, 1024)); // reserved up to the limit: nothing to fetch
}

TEST(QuotaReport, UtilizationLikeTheBrief)
{
	EXPECT_EQ(FormatUtilization(45, 999999), "0.0045");
	EXPECT_EQ(FormatUtilization(23, 999999), "0.0023");
	EXPECT_EQ(FormatUtilization(85000, 1000000), "8.5");
	EXPECT_EQ(FormatUtilization(8500, 1048576), "0.8106");
	EXPECT_EQ(FormatUtilization(750, 10000), "7.5");
	EXPECT_EQ(FormatUtilization(12, 100), "12.0");
	EXPECT_EQ(FormatUtilization(0, 100), "0.0");
	EXPECT_EQ(FormatUtilization(1, 3), "33.3333");
	EXPECT_EQ(FormatUtilization(2, 3), "66.6667");
	EXPECT_EQ(FormatUtilization(150, 100), "150.0");
	EXPECT_EQ(FormatUtilization(0, 0), "0.0");
	EXPECT_EQ(FormatUtilization(1, 0), "100.0");
	EXPECT_EQ(FormatUtilization(INT64_MAX, INT64_MAX), "100.0");
}

TEST(QuotaReport, Rfc3339Utc)
{
	EXPECT_EQ(FormatUtcTimestamp(At(2024, 1, 15, 10, 30, 0)), "2024-01-15T10:30:00Z");
	EXPECT_EQ(FormatUtcTimestamp(At(2026, 12, 31, 23, 59, 59, 999999)), "2026-12-31T23:59:59Z");
	EXPECT_EQ(FormatUtcTimestamp(0), "1970-01-01T00:00:00Z");
	EXPECT_EQ(FormatUtcTimestamp(-1), "1969-12-31T23:59:59Z");
}
