// daemon/handlers/tenants.cpp
// Tenant routes: create and list (admin token), get and patch (admin token or a token of that tenant). In regions
// mode a tenant is created in its residency's cluster and the list merges every region's.
#include "errors.hpp"
#include "region/router.hpp"
#include "handlers/handlers.hpp"
#include "handlers/sql_util.hpp"
#include "server/json_body.hpp"
#include "server/params.hpp"

#include <algorithm>
#include <map>

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
		ctx.app.RememberPlan(ctx.region, id, doc["plan"].get<std::string>());
	return Reply::RawJson(status, std::move(text));
}

// Regions mode: the region a new tenant's residency names (the extension's default residency when absent).
std::string
RegionForNewTenant(RequestContext &ctx, const std::optional<std::string> &residency)
{
	std::string region = residency.value_or("us");
	const auto &all = Residencies();
	if (std::find(all.begin(), all.end(), region) == all.end())
		throw ApiError(400, "invalid_input",
		               "invalid data_residency \"" + region.substr(0, 64) + "\"; use us, eu, uk, canada, australia",
		               "TN005");
	if (!ctx.app.router.Serves(region))
		throw ApiError(400, "invalid_input", "data residency \"" + region + "\" has no cluster in this deployment",
		               "TN005", "tenancyd's regions: names no connection string for it.");
	return region;
}

// A page of one cluster's tenants after the cursor: (id, document) rows, at most limit + 1.
Result
TenantPage(Connection &db, RequestContext &ctx, const Param &parent, const Param &cursor, int limit)
{
	// Keyset pagination on id: stable under concurrent inserts, no OFFSET scans.
	return db.Exec("SELECT t.id, tenancy.tenant_json(t.id) FROM tenancy.tenants t "
	               " WHERE ($1::text IS NULL OR t.status OPERATOR(pg_catalog.=) ($1::text)::tenancy.tenant_status) "
	               "   AND ($2::text IS NULL OR t.plan OPERATOR(pg_catalog.=) ($2::text)::tenancy.tenant_plan) "
	               "   AND ($3::uuid IS NULL OR t.parent_tenant_id OPERATOR(pg_catalog.=) $3::uuid) "
	               "   AND ($4::uuid IS NULL OR t.id OPERATOR(pg_catalog.>) $4::uuid) "
	               " ORDER BY t.id LIMIT $5::int",
	               {ctx.Query("status"), ctx.Query("plan"), parent, cursor, std::to_string(limit + 1)});
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
	std::string sql = "SELECT t.id, t.slug FROM tenancy.create_tenant(" + args.sql() + ") t";
	if (ctx.app.router.enabled()) {
		ctx.region = RegionForNewTenant(ctx, OptionalString(b, "data_residency"));
		CreatedTenant created = ctx.app.router.CreateTenant(ctx.region, [&](Connection &db) {
			Result r = db.Exec(sql.c_str(), args.params());
			Result doc = db.Exec("SELECT tenancy.tenant_json($1::uuid)", {r.get(0, 0)});
			return CreatedTenant{r.get(0, 0), r.get(0, 1), doc.get(0, 0)};
		});
		return Reply::RawJson(201, std::move(created.document));
	}
	return ctx.db().Transaction([&] {
		Result r = ctx.db().Exec(sql.c_str(), args.params());
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
	if (!ctx.app.router.enabled())
		return PageReply(TenantPage(ctx.db(), ctx, parent, cursor, limit), limit);
	// Regions mode: every region's first limit + 1 tenants after the cursor, merged by id: the smallest limit of
	// them are the page, exactly as one cluster would give it. A tenant seen in two clusters counts once.
	std::map<std::string, std::string> page; // id -> document (uuid text sorts like uuid)
	for (const std::string &region : ctx.app.router.Regions()) {
		Lease lease = ctx.app.router.AcquireIn(region);
		Result r = TenantPage(*lease, ctx, parent, cursor, limit);
		for (int i = 0; i < r.rows(); i++)
			page.emplace(r.get(i, 0), r.get(i, 1));
	}
	std::string items = "[", last;
	int n = 0;
	for (auto it = page.begin(); it != page.end() && n < limit; ++it, ++n) {
		items += (n ? "," : "") + it->second;
		last = it->first;
	}
	items += "]";
	std::string next = static_cast<int>(page.size()) > limit ? "\"" + EncodeCursor(last) + "\"" : "null";
	return Reply::RawJson(200, "{\"items\":" + items + ",\"next_cursor\":" + next + "}");
}

Reply
GetTenant(RequestContext &ctx)
{
	return TenantReply(ctx, 200, ctx.tenant_id);
}

Reply
PatchTenant(RequestContext &ctx)
{
	// The body text as sent (ParseJsonObject validated it): jsonb keeps its numbers exactly, where a dump of the
	// parsed document would have re-rounded them through doubles (18446744073709551616, 1e-400, 1e400).
	const std::string &changes = ctx.req.body;
	if (changes.find_first_not_of(" \t\r\n") == std::string::npos)
		throw ApiError(400, "invalid_json", "the request body is empty; PATCH takes a JSON object of the changes");
	// Regions mode: a new residency is a live move to another region's cluster (handlers/move.cpp), admin only.
	if (ctx.app.router.enabled() && ctx.body.contains("data_residency") && ctx.body["data_residency"].is_string() &&
	    ctx.body["data_residency"].get<std::string>() != ctx.region) {
		if (!ctx.caller.is_admin())
			throw ApiError(403, "permission_denied", "moving a tenant to another region needs the admin token",
			               "42501");
		if (ctx.body.size() != 1)
			throw ApiError(
			    409, "region_move_unsupported",
			    "a change of data_residency to another region cannot be combined with other changes", "",
			    "PATCH data_residency alone, or POST /api/v1/tenants/" + ctx.tenant_id +
			        "/move with {\"data_residency\": \"<region>\"}; it answers 202 and the move's Location.");
		return StartMove(ctx, ctx.body["data_residency"].get<std::string>());
	}
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
		// One cluster cannot move a tenant's data, so relabelling its residency would only switch its backup
		// regions: refused (the admin token included) unless unchanged. Regions mode moves it (above).
		if (!ctx.app.router.enabled() && ctx.body.contains("data_residency") &&
		    ctx.body["data_residency"].is_string()) {
			std::string to = ctx.body["data_residency"].get<std::string>();
			const auto &all = Residencies();
			Result cur = ctx.db().Exec("SELECT t.data_residency::pg_catalog.text FROM tenancy.tenants t "
			                           " WHERE t.id OPERATOR(pg_catalog.=) $1::uuid",
			                           {ctx.tenant_id});
			if (cur.rows() == 1 && cur.get(0, 0) != to && std::find(all.begin(), all.end(), to) != all.end())
				throw ApiError(409, "region_move_unsupported",
				               "data_residency cannot change from \"" + cur.get(0, 0) + "\" to \"" + to +
				                   "\": this tenancyd serves one cluster, so the tenant's data cannot move",
				               "",
				               "A residency change is a live move between clusters: configure tenancyd's regions: "
				               "with a cluster per region, then PATCH data_residency with the admin token.");
		}
		Result r = ctx.db().Exec("SELECT t.id FROM tenancy.update_tenant($1::uuid, $2::jsonb) t",
		                         {ctx.tenant_id, changes});
		return TenantReply(ctx, 200, r.get(0, 0));
	});
}

} // namespace tenancyd::handlers
