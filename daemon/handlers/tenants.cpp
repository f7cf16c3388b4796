// daemon/handlers/tenants.cpp
// Tenant routes: create and list (admin token), get and patch (admin token or a token of that tenant).
#include "errors.hpp"
#include "handlers/handlers.hpp"
#include "handlers/sql_util.hpp"
#include "server/json_body.hpp"
#include "server/params.hpp"

namespace tenancyd::handlers {

namespace {

// The tenant as the API shows it (tenancy.tenant_json); remembers its plan for the dedicated pool.
Reply
TenantReply(RequestContext &ctx, int status, const std::string &id)
{
	Result r = ctx.db().Exec("SELECT tenancy.tenant_json($1::uuid)", {id});
	if (r.rows() != 1 || r.null(0, 0))
		throw ApiError(404, "tenant_not_found", "tenant \"" + id + "\" does not exist");
	std::string text = r.get(0, 0);
	auto doc = nlohmann::json::parse(text, nullptr, false);
	if (doc.is_object() && doc.contains("plan") && doc["plan"].is_string())
		ctx.app.pools.RememberPlan(id, doc["plan"].get<std::string>());
	return Reply::RawJson(status, std::move(text));
}

} // namespace

Reply
CreateTenant(RequestContext &ctx)
{
	const auto &b = ctx.body;
	RejectUnknownFields(b, {"organization_name", "display_name", "slug", "admin_email", "plan", "data_residency",
	                        "parent_tenant_id"});
	NamedArgs args;
	args.Add("organization_name", RequiredString(b, "organization_name"))
	    .Add("slug", RequiredString(b, "slug"))
	    .Add("plan", OptionalString(b, "plan"))
	    .Add("data_residency", OptionalString(b, "data_residency"))
	    .Add("display_name", OptionalString(b, "display_name"))
	    .Add("admin_email", OptionalString(b, "admin_email"));
	if (auto parent = OptionalString(b, "parent_tenant_id"))
		args.Add("parent_tenant_id", RequireUuid(*parent, "parent_tenant_id"), "::uuid");
	return ctx.db().Transaction([&] {
		Result r = ctx.db().Exec(("SELECT t.id FROM tenancy.create_tenant(" + args.sql() + ") t").c_str(),
		                         args.params());
		return TenantReply(ctx, 201, r.get(0, 0));
	});
}

Reply
ListTenants(RequestContext &ctx)
{
	int limit = ParseLimit(ctx.Query("limit"));
	Param cursor, parent;
	if (auto c = ctx.Query("cursor"))
		cursor = DecodeCursor(*c);
	if (auto p = ctx.Query("parent"))
		parent = RequireUuid(*p, "parent");
	// Keyset pagination on id: stable under concurrent inserts, no OFFSET scans.
	Result r = ctx.db().Exec(
	    "SELECT t.id, tenancy.tenant_json(t.id) FROM tenancy.tenants t "
	    " WHERE ($1::text IS NULL OR t.status OPERATOR(pg_catalog.=) ($1::text)::tenancy.tenant_status) "
	    "   AND ($2::text IS NULL OR t.plan OPERATOR(pg_catalog.=) ($2::text)::tenancy.tenant_plan) "
	    "   AND ($3::uuid IS NULL OR t.parent_tenant_id OPERATOR(pg_catalog.=) $3::uuid) "
	    "   AND ($4::uuid IS NULL OR t.id OPERATOR(pg_catalog.>) $4::uuid) "
	    " ORDER BY t.id LIMIT $5::int",
	    {ctx.Query("status"), ctx.Query("plan"), parent, cursor, std::to_string(limit + 1)});
	return PageReply(r, limit);
}

Reply
GetTenant(RequestContext &ctx)
{
	return TenantReply(ctx, 200, ctx.tenant_id);
}

Reply
PatchTenant(RequestContext &ctx)
{
	std::string changes = ctx.body.dump();
	return ctx.db().Transaction([&] {
		// A tenant token may change only what its role allows (tenancy.token_permits 'tenant.patch.<key>'):
		// plan needs billing rights, status and parent_tenant_id the admin token.
		if (ctx.caller.kind == Caller::Kind::kTenant) {
			Result p = ctx.db().Exec("SELECT k FROM pg_catalog.jsonb_object_keys($2::jsonb) k "
			                         " WHERE NOT tenancy.token_permits($1::tenancy.user_role, 'tenant.patch.' || k) "
			                         " ORDER BY k LIMIT 1",
			                         {ctx.caller.role, changes});
			if (p.rows() > 0)
				throw ApiError(403, "permission_denied",
				               "a token with role \"" + ctx.caller.role + "\" may not change \"" + p.get(0, 0) + "\"",
				               "42501");
		}
		Result r = ctx.db().Exec("SELECT t.id FROM tenancy.update_tenant($1::uuid, $2::jsonb) t",
		                         {ctx.tenant_id, changes});
		return TenantReply(ctx, 200, r.get(0, 0));
	});
}

} // namespace tenancyd::handlers
