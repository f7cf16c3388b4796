// extension/core/quota_block.cpp
// Block-size policy of durable quota reservations (see quota_block.hpp for the guarantees it serves).
#include "tenancy/core/quota_block.hpp"

#include <algorithm>
#include <limits>

namespace tenancy::core {

int64_t
SaturatingAdd(int64_t a, int64_t b) noexcept
{
	if (b > 0 && a > std::numeric_limits<int64_t>::max() - b)
		return std::numeric_limits<int64_t>::max();
	return a + b;
}

int64_t
QuotaBlockSize(int64_t limit, int64_t used, int64_t max_block) noexcept
{
	int64_t remaining = limit - used;
	if (remaining <= 0)
		return 1;
	return std::clamp<int64_t>(remaining / 16, 1, std::max<int64_t>(1, max_block));
}

int64_t
QuotaReservationTarget(int64_t limit, int64_t used, int64_t amount, int64_t max_block) noexcept
{
	int64_t needed = SaturatingAdd(used, amount);
	int64_t ahead = SaturatingAdd(used, std::max(amount, QuotaBlockSize(limit, used, max_block)));
	// Never reserve past the limit (a crash then never reports more than the limit) unless the usage itself is
	// already past it (a gauge set above its limit).
	return std::max(needed, std::min(ahead, limit));
}

bool
QuotaShouldPrefetch(int64_t limit, int64_t used, int64_t reserved, int64_t max_block) noexcept
{
	if (reserved >= limit)
		return false; // nothing more may ever be reserved in this window
	return reserved - used < (QuotaBlockSize(limit, used, max_block) + 3) / 4;
}

} // namespace tenancy::core
