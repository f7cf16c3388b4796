// daemon/region/request_routing.cpp
// A tenant unknown to the directory answers exactly like a tenant unknown to the single cluster: 404 TN001.
#include "region/request_routing.hpp"

#include "errors.hpp"

namespace tenancyd {

bool
LocateTenant(RequestContext &ctx)
{
	if (!ctx.region.empty())
		return true;
	auto region = ctx.app.router.RegionOf(ctx.tenant_id);
	if (!region)
		return false;
	ctx.region = *region;
	return true;
}

void
AcquireForRequest(RequestContext &ctx)
{
	if (!ctx.app.router.enabled()) {
		ctx.lease.emplace(ctx.app.pools.AcquireFor(ctx.tenant_id));
		return;
	}
	if (ctx.tenant_id.empty())
		return;
	if (!LocateTenant(ctx))
		throw ErrorFromSqlState("TN001", "tenant \"" + ctx.tenant_id + "\" does not exist", "");
	ctx.lease.emplace(ctx.app.router.AcquireIn(ctx.region, ctx.tenant_id));
}

} // namespace tenancyd
