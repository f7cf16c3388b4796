// daemon/region/request_routing.hpp
// The routing glue of the dispatcher: which cluster a request's connection comes from, in either mode.
#pragma once

#include "server/context.hpp"

namespace tenancyd {

// Takes ctx.lease for the request: single-cluster mode as before; regions mode from the region of ctx.tenant_id
// (ctx.region), none for routes without a tenant (their handlers go through ctx.app.router themselves).
// Throws ApiError 404 (TN001) for a tenant the directory does not know.
void AcquireForRequest(RequestContext &ctx);

// Regions mode: sets ctx.region from the directory when the tenant is known; false when it is not.
bool LocateTenant(RequestContext &ctx);

} // namespace tenancyd
