// daemon/handlers/export.cpp
// Tenant export: tenancy.export_tenant's document as is. Without that function installed the server answers
// 42883, which the error table maps to 501.
#include "errors.hpp"
#include "handlers/handlers.hpp"

namespace tenancyd::handlers {

Reply
ExportTenant(RequestContext &ctx)
{
	Result r = ctx.db().Exec("SELECT tenancy.export_tenant($1::uuid)", {ctx.tenant_id});
	if (r.rows() != 1 || r.null(0, 0))
		throw ApiError(404, "tenant_not_found", "tenant \"" + ctx.tenant_id + "\" does not exist");
	Reply reply = Reply::RawJson(200, r.get(0, 0));
	reply.headers["Cache-Control"] = "no-store";
	return reply;
}

} // namespace tenancyd::handlers
