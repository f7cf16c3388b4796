// daemon/auth/authorizer.hpp
// Decides who is calling a route: 401 for a missing or bad token, 403 for another tenant or a role without the
// permission, 429 when the tenant's api_calls quota is used up. Throws ApiError; fills ctx.caller on success.
#pragma once

#include "server/context.hpp"

namespace tenancyd {

void Authorize(RequestContext &ctx, const Route &route);

// The request's id for logs, the X-Request-Id answer header and the audit log: the client's (or front proxy's)
// X-Request-Id when it is 1-128 characters of [A-Za-z0-9._:-], else a new random one.
std::string RequestIdOf(const httplib::Request &req);

// Seconds from `now` to the start of the next calendar month in UTC (when api_calls quotas reset).
long SecondsUntilNextMonthUtc(std::time_t now);

} // namespace tenancyd
