// extension/core/quota_metric.cpp
// Quota metric names and kinds, and UTC calendar window arithmetic (civil-date conversions after H. Hinnant).
#include "tenancy/core/quota_metric.hpp"

#include "tenancy/core/error.hpp"

#include <cstdio>

namespace tenancy::core {

namespace {

constexpr const char *kMetricNames[kQuotaMetricCount] = {
    "users", "projects", "api_calls", "storage_mb", "ai_requests", "concurrent_sessions",
};

constexpr int64_t kMicrosPerDay = int64_t{86400} * 1000000;

} // namespace

const char *
QuotaMetricName(QuotaMetric metric) noexcept
{
	int i = static_cast<int>(metric);
	return (i >= 0 && i < kQuotaMetricCount) ? kMetricNames[i] : "unknown";
}

std::optional<QuotaMetric>
ParseQuotaMetric(std::string_view name) noexcept
{
	for (int i = 0; i < kQuotaMetricCount; i++)
		if (name == kMetricNames[i])
			return static_cast<QuotaMetric>(i);
	return std::nullopt;
}

QuotaMetric
ParseQuotaMetricOrThrow(std::string_view name)
{
	auto metric = ParseQuotaMetric(name);
	if (!metric)
		throw Error(ErrorKind::kInvalidInput, "unknown quota metric \"" + std::string(name) + "\"",
		            "The metrics are users, projects, api_calls, storage_mb, ai_requests and concurrent_sessions.");
	return *metric;
}

QuotaWindow
QuotaWindowOf(QuotaMetric metric) noexcept
{
	switch (metric) {
	case QuotaMetric::kApiCalls:
		return QuotaWindow::kMonth;
	case QuotaMetric::kAiRequests:
		return QuotaWindow::kDay;
	default:
		return QuotaWindow::kNone;
	}
}

bool
QuotaMetricIsGauge(QuotaMetric metric) noexcept
{
	return metric == QuotaMetric::kStorageMb || metric == QuotaMetric::kConcurrentSessions;
}

// days_from_civil: era-based, exact for every date an int32 day count can hold.
int32_t
DaysFromCivil(int year, unsigned month, unsigned day) noexcept
{
	int y = year - (month <= 2 ? 1 : 0);
	int era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = static_cast<unsigned>(y - era * 400);
	unsigned doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + static_cast<int32_t>(doe) - 719468;
}

void
CivilFromDays(int32_t days, int &year, unsigned &month, unsigned &day) noexcept
{
	int64_t z = int64_t{days} + 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = static_cast<unsigned>(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	day = doy - (153 * mp + 2) / 5 + 1;
	month = mp < 10 ? mp + 3 : mp - 9;
	year = static_cast<int>(yoe + era * 400) + (month <= 2 ? 1 : 0);
}

int32_t
UtcDayOf(int64_t unix_micros) noexcept
{
	int64_t q = unix_micros / kMicrosPerDay;
	if (unix_micros % kMicrosPerDay < 0)
		q--;
	return static_cast<int32_t>(q);
}

int32_t
QuotaWindowStart(QuotaWindow window, int64_t unix_micros) noexcept
{
	switch (window) {
	case QuotaWindow::kNone:
		return 0;
	case QuotaWindow::kDay:
		return UtcDayOf(unix_micros);
	case QuotaWindow::kMonth: {
		int year;
		unsigned month, day;
		CivilFromDays(UtcDayOf(unix_micros), year, month, day);
		return DaysFromCivil(year, month, 1);
	}
	}
	return 0;
}

std::string
FormatDay(int32_t days)
{
	int year;
	unsigned month, day;
	CivilFromDays(days, year, month, day);
	char buf[32];
	std::snprintf(buf, sizeof(buf), "%04d-%02u-%02u", year, month, day);
	return buf;
}

} // namespace tenancy::core
