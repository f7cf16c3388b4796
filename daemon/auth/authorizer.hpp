// daemon/auth/authorizer.hpp
// Decides who is calling a route: 401 for a missing or bad token, 403 for another tenant or a role without the
// permission, 429 when the tenant's api_calls quota is used up. Throws ApiError; fills ctx.caller on success.
#pragma once

#include "server/context.hpp"

namespace tenancyd {

void Authorize(RequestContext &ctx, const Route &route);

// Seconds from `now` to the start of the next calendar month in UTC (when api_calls quotas reset).
long SecondsUntilNextMonthUtc(std::time_t now);

} // namespace tenancyd
