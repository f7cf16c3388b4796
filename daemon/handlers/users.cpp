// daemon/handlers/users.cpp
// Users of a tenant: add (201; TN003 -> 429 when max_users is reached, TN002 -> 403 when the tenant is not active)
// and list with cursor pagination, a status filter and the optional permission matrix of each user's role.
#include "errors.hpp"
#include "handlers/handlers.hpp"
#include "handlers/sql_util.hpp"
#include "server/json_body.hpp"
#include "server/params.hpp"

namespace tenancyd::handlers {

namespace {

// The user document of SPEC.md "HTTP details", built by the server from a row `u` of tenancy.users.
std::string
UserJsonSql()
{
	return "pg_catalog.jsonb_build_object('id', u.id, 'tenant_id', u.tenant_id, 'email', u.email, "
	       "'first_name', u.first_name, 'last_name', u.last_name, 'role', u.role, 'status', u.status, "
	       "'created_at', " +
	       Rfc3339Sql("u.created_at") + ")";
}

} // namespace

Reply
AddUser(RequestContext &ctx)
{
	const auto &b = ctx.body;
	RejectUnknownFields(b, {"email", "first_name", "last_name", "role", "send_invitation"});
	std::string email = RequiredString(b, "email");
	auto role = OptionalString(b, "role");
	auto invite = OptionalBool(b, "send_invitation");
	NamedArgs args;
	args.Add("tenant_id", ctx.tenant_id, "::uuid")
	    .Add("email", email)
	    .Add("first_name", OptionalString(b, "first_name"))
	    .Add("last_name", OptionalString(b, "last_name"))
	    .Add("role", role)
	    .Add("send_invitation", invite ? Param(*invite ? "true" : "false") : std::nullopt);
	return ctx.db().Transaction([&] {
		// A tenant token cannot create a user with more rights than its own role (tenancy.token_may_grant).
		if (ctx.caller.kind == Caller::Kind::kTenant) {
			Result g = ctx.db().Exec("SELECT tenancy.token_may_grant($1::tenancy.user_role, "
			                         "  COALESCE($2::text, 'developer')::tenancy.user_role)",
			                         {ctx.caller.role, role});
			if (g.get(0, 0) != "t")
				throw ApiError(403, "permission_denied",
				               "a token with role \"" + ctx.caller.role + "\" may not add a user with role \"" +
				                   role.value_or("developer") + "\"",
				               "42501");
		}
		Result r = ctx.db().Exec(("SELECT " + UserJsonSql() + " FROM tenancy.add_user(" + args.sql() + ") u").c_str(),
		                         args.params());
		return Reply::RawJson(201, r.get(0, 0));
	});
}

Reply
ListUsers(RequestContext &ctx)
{
	int limit = ParseLimit(ctx.Query("limit"));
	bool include_roles = false;
	if (auto v = ctx.Query("include_roles"))
		include_roles = ParseBoolParam(*v, "include_roles");
	Param cursor;
	if (auto c = ctx.Query("cursor"))
		cursor = DecodeCursor(*c);
	// permissions: the role's level for each resource of the matrix, from tenancy.permission.
	std::string sql =
	    "SELECT u.id, " + UserJsonSql() +
	    " || CASE WHEN $4::boolean THEN pg_catalog.jsonb_build_object('permissions', "
	    "      (SELECT pg_catalog.jsonb_object_agg(res, tenancy.permission(u.role, res)) "
	    "         FROM pg_catalog.unnest(ARRAY['users', 'projects', 'admin', 'billing', 'ai_services']) res)) "
	    "    ELSE '{}'::jsonb END "
	    "  FROM tenancy.list_users($1::uuid, $2) u "
	    " WHERE ($3::uuid IS NULL OR u.id OPERATOR(pg_catalog.>) $3::uuid) "
	    " ORDER BY u.id LIMIT $5::int";
	Result r = ctx.db().Exec(sql.c_str(), {ctx.tenant_id, ctx.Query("status"), cursor,
	                                       include_roles ? "true" : "false", std::to_string(limit + 1)});
	return PageReply(r, limit);
}

} // namespace tenancyd::handlers
