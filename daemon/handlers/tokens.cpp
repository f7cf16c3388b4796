// daemon/handlers/tokens.cpp
// Tenant tokens: issued here (the value is shown once, only its SHA-256 reaches the database) and revoked. A token
// issued with a token is scoped by it (role, expiry, life), and a token revokes only what it could have issued.
#include "auth/token.hpp"
#include "errors.hpp"
#include "handlers/handlers.hpp"
#include "handlers/sql_util.hpp"
#include "server/json_body.hpp"
#include "server/params.hpp"

namespace tenancyd::handlers {

namespace {
constexpr long kMaxTokenLifetimeHours = 3650L * 24;
}

Reply
IssueToken(RequestContext &ctx)
{
	const auto &b = ctx.body;
	RejectUnknownFields(b, {"role", "name", "expires_in"});
	std::string role = RequiredString(b, "role");
	Param expires;
	if (auto e = OptionalString(b, "expires_in")) {
		auto period = ParsePeriod(*e, kMaxTokenLifetimeHours);
		if (!period)
			throw ApiError(400, "invalid_period", "expires_in must be <n>d or <n>h, at most 3650d");
		expires = period->interval;
	}
	std::string token = GenerateTenantToken();
	NamedArgs args;
	args.Add("tenant_id", ctx.tenant_id, "::uuid")
	    .Add("role", role)
	    .Add("token_sha256", "\\x" + ToHex(Sha256(token)), "::bytea")
	    .Add("name", OptionalString(b, "name"))
	    .Add("expires_in", expires, "::interval")
	    .Add("issuer_role", ctx.caller.kind == Caller::Kind::kTenant ? Param(ctx.caller.role) : std::nullopt)
	    // A token's token never outranks nor outlives it, and is revoked with it (tenancy.issue_token).
	    .Add("issuer_token_id", ctx.caller.kind == Caller::Kind::kTenant ? Param(ctx.caller.token_id) : std::nullopt,
	         "::uuid");
	std::string sql = "SELECT t.id, t.tenant_id, t.role, t.name, " + Rfc3339Sql("t.created_at") + ", " +
	                  Rfc3339Sql("t.expires_at") + " FROM tenancy.issue_token(" + args.sql() + ") t";
	Result r = ctx.db().Exec(sql.c_str(), args.params());
	nlohmann::json doc = {{"id", r.get(0, 0)},         {"token", token},
	                      {"role", r.get(0, 2)},       {"name", r.null(0, 3) ? nlohmann::json() : nlohmann::json(r.get(0, 3))},
	                      {"tenant_id", r.get(0, 1)},  {"created_at", r.get(0, 4)},
	                      {"expires_at", r.null(0, 5) ? nlohmann::json() : nlohmann::json(r.get(0, 5))}};
	Reply reply = Reply::Json(201, doc);
	reply.headers["Cache-Control"] = "no-store";
	return reply;
}

Reply
RevokeToken(RequestContext &ctx)
{
	// A token revokes only tokens it could have issued (its role or weaker); the revoked token's own go with it.
	ctx.db().Exec("SELECT tenancy.revoke_token($1::uuid, $2::uuid, $3::uuid)",
	              {ctx.tenant_id, ctx.path.at("token_id"),
	               ctx.caller.kind == Caller::Kind::kTenant ? Param(ctx.caller.token_id) : std::nullopt});
	return Reply{204, ""};
}

} // namespace tenancyd::handlers
