// daemon/handlers/export.cpp
// Tenant export: tenancy.export_tenant's document as is. Without that function installed the server answers
// 42883, which the error table maps to 501.
#include "errors.hpp"
#include "handlers/handlers.hpp"

namespace tenancyd::handlers {

Reply
ExportTenant(RequestContext &ctx)
{
	// An export reads every row of the tenant and holds its connection meanwhile: a few at a time per tenant and in
	// all, so one tenant's exports cannot take the pool from every other tenant (issue #16).
	if (!ctx.app.exports.TryEnter(ctx.tenant_id, ctx.config->max_exports_per_tenant, ctx.config->max_exports)) {
		ApiError e(429, "too_many_exports",
		           "too many exports are running (limits.max_exports_per_tenant, limits.max_exports); retry later");
		e.retry_after = 5;
		throw e;
	}
	struct Leave {
		App &app;
		const std::string &tenant;
		~Leave()
		{
			app.exports.Leave(tenant);
		}
	} leave{ctx.app, ctx.tenant_id};
	Result r = ctx.db().Exec("SELECT tenancy.export_tenant($1::uuid)", {ctx.tenant_id});
	if (r.rows() != 1 || r.null(0, 0))
		throw ApiError(404, "tenant_not_found", "tenant \"" + ctx.tenant_id + "\" does not exist");
	Reply reply = Reply::RawJson(200, r.get(0, 0));
	reply.headers["Cache-Control"] = "no-store";
	return reply;
}

} // namespace tenancyd::handlers
