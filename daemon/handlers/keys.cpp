// daemon/handlers/keys.cpp
// Key rotation: tenancy.rotate_tenant_key gives the tenant a new data-key version; old versions still decrypt.
#include "handlers/handlers.hpp"
#include "server/json_body.hpp"

namespace tenancyd::handlers {

Reply
RotateKey(RequestContext &ctx)
{
	RejectUnknownFields(ctx.body, {});
	Result r = ctx.db().Exec("SELECT tenancy.rotate_tenant_key($1::uuid)", {ctx.tenant_id});
	return Reply::Json(200, {{"tenant_id", ctx.tenant_id}, {"key_version", std::stoll(r.get(0, 0))}});
}

} // namespace tenancyd::handlers
