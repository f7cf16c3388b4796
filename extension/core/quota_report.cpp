// extension/core/quota_report.cpp
// Exact integer formatting of utilization percentages and UTC timestamps for usage().
#include "tenancy/core/quota_report.hpp"

#include "tenancy/core/quota_metric.hpp"

#include <cstdio>

namespace tenancy::core {

std::string
FormatUtilization(int64_t used, int64_t limit)
{
	if (used < 0)
		used = 0;
	if (limit <= 0)
		return used > 0 ? "100.0" : "0.0";
	// percent in units of 1/10000, rounded half-up; 128-bit so used * 10^6 cannot overflow
	__int128 scaled = (static_cast<__int128>(used) * 1000000 * 2 + limit) / (static_cast<__int128>(limit) * 2);
	std::string whole = std::to_string(static_cast<long long>(scaled / 10000));
	char frac[8];
	std::snprintf(frac, sizeof(frac), "%04d", static_cast<int>(scaled % 10000));
	std::string decimals(frac);
	while (decimals.size() > 1 && decimals.back() == '0')
		decimals.pop_back();
	return whole + "." + decimals;
}

std::string
FormatUtcTimestamp(int64_t unix_micros)
{
	int32_t day = UtcDayOf(unix_micros);
	int64_t seconds = unix_micros / 1000000 - (unix_micros % 1000000 < 0 ? 1 : 0) - int64_t{day} * 86400;
	char buf[16];
	std::snprintf(buf, sizeof(buf), "T%02d:%02d:%02dZ", static_cast<int>(seconds / 3600),
	              static_cast<int>(seconds / 60 % 60), static_cast<int>(seconds % 60));
	return FormatDay(day) + buf;
}

} // namespace tenancy::core
