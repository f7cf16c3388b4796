// extension/include/tenancy/core/quota_report.hpp
// Formatting of usage reports: utilization percentages (4 decimals) and RFC 3339 UTC timestamps.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <cstdint>
#include <string>

namespace tenancy::core {

// used / limit * 100 rounded half-up to 4 decimals, as a JSON number without trailing zeros but with at least one
// decimal ("8.5", "0.0045", "12.0"). A zero limit reads 0.0 while unused and 100.0 once anything is used.
std::string FormatUtilization(int64_t used, int64_t limit);

// "2024-01-15T10:30:00Z" for Unix microseconds (seconds truncated toward the past).
std::string FormatUtcTimestamp(int64_t unix_micros);

} // namespace tenancy::core
