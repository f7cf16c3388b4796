// extension/include/tenancy/core/quota_block.hpp
// Block-size policy of durable quota reservations: how far ahead of usage the durable record may run.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <cstdint>

namespace tenancy::core {

// A reservation block: the next durable upper bound of usage. Usage is served from shared memory while it stays
// at or below the durable bound, so a crash can over-count by at most (bound - usage), never under-count.
//
// The block is a sixteenth of what is left below the limit, clamped to [1, max_block]: far from the limit it is
// large (few WAL flushes), near it it shrinks to single units, and the bound never passes the limit for a
// consume, so even the over-count after a crash can never report more than the limit.
int64_t QuotaBlockSize(int64_t limit, int64_t used, int64_t max_block) noexcept;

// The durable bound to write so that used + amount fits, with a block of headroom: at least used + amount, at most
// max(limit, used + amount). Gauges being set (set_usage) may lie above the limit, hence the max.
int64_t QuotaReservationTarget(int64_t limit, int64_t used, int64_t amount, int64_t max_block) noexcept;

// True when the headroom left (reserved - used) has fallen below a quarter of a block, so the caller should extend
// the reservation now, while other callers still consume the rest (the refill overlaps with their work); each
// extension then moves the bound by at least three quarters of a block, one WAL flush for that many calls.
bool QuotaShouldPrefetch(int64_t limit, int64_t used, int64_t reserved, int64_t max_block) noexcept;

// Saturating a + b for non-negative b (amounts near INT64_MAX must not wrap into a negative usage).
int64_t SaturatingAdd(int64_t a, int64_t b) noexcept;

} // namespace tenancy::core
