// extension/include/tenancy/core/quota_metric.hpp
// The six quota metrics of SPEC.md, their kinds (window flow, gauge, row count) and calendar windows (UTC).
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tenancy::core {

// Order is the on-disk and shared-memory metric code: append only.
enum class QuotaMetric : int {
	kUsers = 0,
	kProjects = 1,
	kApiCalls = 2,
	kStorageMb = 3,
	kAiRequests = 4,
	kConcurrentSessions = 5,
};
constexpr int kQuotaMetricCount = 6;

// How a metric's usage resets: never (gauges and row counts), at each UTC month or at each UTC day.
enum class QuotaWindow { kNone, kMonth, kDay };

// SQL name ("api_calls") of a metric.
const char *QuotaMetricName(QuotaMetric metric) noexcept;

// The metric of a SQL name; nullopt when unknown. ParseQuotaMetricOrThrow raises TN005 naming the valid ones.
std::optional<QuotaMetric> ParseQuotaMetric(std::string_view name) noexcept;
QuotaMetric ParseQuotaMetricOrThrow(std::string_view name);

QuotaWindow QuotaWindowOf(QuotaMetric metric) noexcept;

// Gauges (storage_mb, concurrent_sessions) are the only metrics set_usage may set.
bool QuotaMetricIsGauge(QuotaMetric metric) noexcept;

// Days since 1970-01-01 of a UTC calendar date, and back (proleptic Gregorian, any int32 day).
int32_t DaysFromCivil(int year, unsigned month, unsigned day) noexcept;
void CivilFromDays(int32_t days, int &year, unsigned &month, unsigned &day) noexcept;

// The UTC day (days since 1970-01-01) holding a Unix time in microseconds (floor division: correct before 1970).
int32_t UtcDayOf(int64_t unix_micros) noexcept;

// First day (days since 1970-01-01) of the window holding unix_micros: the month's first day, the day itself, or 0
// for metrics without a window. A new window starts at zero without any job: its start simply differs.
int32_t QuotaWindowStart(QuotaWindow window, int64_t unix_micros) noexcept;

// "2026-11-26" for a day number.
std::string FormatDay(int32_t days);

} // namespace tenancy::core
