// daemon/auth/authorizer.cpp
// The token check runs in SQL (tenancy.authorize_token decides validity and role permissions and meters the call);
// the daemon only hashes the presented token and compares digests in constant time.
#include "auth/authorizer.hpp"

#include "auth/token.hpp"
#include "errors.hpp"
#include "region/request_routing.hpp"

#include <algorithm>
#include <atomic>
#include <ctime>
#include <string_view>

namespace tenancyd {

namespace {

ApiError
Unauthorized()
{
	return ApiError(401, "unauthorized", "missing, invalid, revoked or expired bearer token");
}

// One round trip per request: the token's tenant, role and permission, the metering of a permitted call to its own
// tenant, and for a route with answer_sql its answer once metered. One statement text per route (prepared once per
// connection, keyed by address), so they are built once for the whole route table.
const std::string &
AuthorizeSql(const Route &route)
{
	static const std::vector<std::string> kSql = [] {
		std::vector<std::string> sql;
		for (const Route &r : Routes())
			sql.push_back(std::string("SELECT a.token_id, a.tenant_id, a.role, a.token_sha256, a.permitted, a.plan, "
			                          "a.within_quota, ") +
			              (r.answer_sql ? std::string("CASE WHEN a.within_quota THEN ") + r.answer_sql + " END"
			                            : std::string("NULL")) +
			              ", a.tenant_active FROM tenancy.authorize_token($1::bytea, $2::uuid, $3::text, $4::jsonb) a");
		return sql;
	}();
	return kSql.at(static_cast<size_t>(&route - Routes().data()));
}

// Regions mode: a token is stored in its tenant's region. Look there first (the lease is kept for the request, so
// the metering and the handler run on that cluster), then in the other regions, so a valid token of another
// region's tenant is told apart from an invalid one (403, not 401).
template <typename Lookup>
Result
LookupInRegions(RequestContext &ctx, Lookup &&lookup)
{
	std::vector<std::string> order;
	if (!ctx.tenant_id.empty() && LocateTenant(ctx))
		order.push_back(ctx.region);
	for (const std::string &region : ctx.app.router.Regions())
		if (region != ctx.region)
			order.push_back(region);
	std::optional<Result> last;
	for (const std::string &region : order) {
		bool home = region == ctx.region;
		Lease lease = ctx.app.router.AcquireIn(region, home ? ctx.tenant_id : "");
		last.emplace(lookup(*lease));
		if (last->rows() > 0) {
			if (home)
				ctx.lease.emplace(std::move(lease));
			break;
		}
	}
	if (!last)
		throw ApiError(503, "region_unavailable", "no region is configured");
	return std::move(*last);
}

// A key no other request of this process has: tells connections apart whose session was told about this request.
std::string
NextCallerKey()
{
	static std::atomic<unsigned long long> counter{0};
	return std::to_string(++counter);
}

// What the audit log records of the request besides the token (which the database adds itself): the peer address,
// the request id, and the X-Forwarded-For a front proxy set (as the client sent it: recorded, never trusted).
std::string
RequestClaims(const RequestContext &ctx)
{
	nlohmann::json claims = {{"remote_addr", ctx.req.remote_addr}, {"request_id", ctx.request_id}};
	if (ctx.req.has_header("X-Forwarded-For")) {
		// Printable ASCII only and bounded, so the claims stay far below authorize_token's 1 kB whatever is sent.
		std::string forwarded;
		for (unsigned char c : ctx.req.get_header_value("X-Forwarded-For"))
			if (c >= 0x20 && c < 0x7f && forwarded.size() < 200)
				forwarded.push_back(static_cast<char>(c));
		claims["forwarded_for"] = forwarded;
	}
	return claims.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool
RequestIdChar(unsigned char c)
{
	return isalnum(c) || c == '-' || c == '_' || c == '.' || c == ':';
}

} // namespace

std::string
RequestIdOf(const httplib::Request &req)
{
	std::string id = req.get_header_value("X-Request-Id");
	if (!id.empty() && id.size() <= 128 && std::all_of(id.begin(), id.end(), RequestIdChar))
		return id;
	return GenerateRequestId();
}

long
SecondsUntilNextMonthUtc(std::time_t now)
{
	std::tm tm{};
	gmtime_r(&now, &tm);
	std::tm next{};
	next.tm_year = tm.tm_mon == 11 ? tm.tm_year + 1 : tm.tm_year;
	next.tm_mon = (tm.tm_mon + 1) % 12;
	next.tm_mday = 1;
	return static_cast<long>(timegm(&next) - now);
}

void
Authorize(RequestContext &ctx, const Route &route)
{
	t_session_caller = SessionCaller{}; // no API caller for the audit log until one is authenticated
	if (route.access == Access::kPublic ||
	    (route.access == Access::kMetrics && !ctx.config->metrics_require_admin_token)) {
		t_session_caller.keep = true; // health checks and metrics write no audit event
		return;
	}
	auto token = ParseBearer(ctx.req.get_header_value("Authorization"));
	if (!token)
		throw Unauthorized();
	std::string digest = Sha256(*token);
	if (ConstantTimeEquals(digest, ctx.config->admin_token_sha256)) {
		ctx.caller.kind = Caller::Kind::kAdmin;
		// Only a request that can write an audit event (a change, or an export) pays the set_request_caller
		// statement; the admin token's reads leave the session as it is.
		bool writes = std::string_view(route.method) != "GET" ||
		              (route.action && std::string_view(route.action) == "export.read");
		t_session_caller = writes ? SessionCaller{NextCallerKey(), RequestClaims(ctx)} : SessionCaller{"", {}, true};
		return;
	}
	// /metrics also takes the scrape token (metrics.token_sha256), which opens nothing else.
	if (route.access == Access::kMetrics) {
		if (ctx.config->metrics_token_sha256.empty() || !ConstantTimeEquals(digest, ctx.config->metrics_token_sha256))
			throw Unauthorized();
		return;
	}
	// Only tenant tokens are looked up; anything else cannot match a stored digest.
	if (token->rfind("tnt_", 0) != 0)
		throw Unauthorized();
	// Built once: in regions mode the same lookup may run in several regions.
	// authorize_token itself tells each session it runs on that the token found acts for this request (the audit
	// log's caller), in the same statement: tenant-token requests stay one statement.
	const std::vector<Param> params = {"\\x" + ToHex(digest),
	                                   ctx.tenant_id.empty() ? "00000000-0000-0000-0000-000000000000" : ctx.tenant_id,
	                                   std::string(route.action ? route.action : "none"), RequestClaims(ctx)};
	t_session_caller = SessionCaller{NextCallerKey(), std::nullopt};
	auto lookup = [&](Connection &conn) {
		conn.CallerToldBy(t_session_caller.key);
		return conn.ExecPrepared(AuthorizeSql(route).c_str(), params);
	};
	if (!ctx.app.router.enabled() && !ctx.lease)
		ctx.lease.emplace(ctx.app.pools.AcquireFor(ctx.tenant_id));
	Result r = ctx.app.router.enabled() ? LookupInRegions(ctx, lookup) : lookup(ctx.db());
	if (r.rows() != 1)
		throw Unauthorized();
	auto stored = FromHex(r.get(0, 3).substr(2)); // bytea text output is \x<hex>
	if (!stored || !ConstantTimeEquals(*stored, digest))
		throw Unauthorized();
	ctx.caller.kind = Caller::Kind::kTenant;
	ctx.caller.token_id = r.get(0, 0);
	ctx.caller.tenant_id = r.get(0, 1);
	ctx.caller.role = r.get(0, 2);
	if (!r.null(0, 5))
		ctx.app.RememberPlan(ctx.region, ctx.caller.tenant_id, r.get(0, 5));
	if (route.access == Access::kAdmin)
		throw ApiError(403, "permission_denied", "this route needs the admin token", "42501");
	if (ctx.caller.tenant_id != ctx.tenant_id)
		throw ApiError(403, "permission_denied", "the token belongs to another tenant", "42501");
	// A suspended, cancelled or expired-trial tenant's tokens are refused on every route (daemon/README.md); the
	// admin token still reaches the tenant (export, reactivation).
	if (r.get(0, 8) != "t")
		throw ApiError(403, "tenant_not_active",
		               "tenant \"" + ctx.tenant_id +
		                   "\" is not active (suspended, cancelled or its trial ended): its tokens are refused",
		               "TN002");
	if (r.get(0, 4) != "t")
		throw ApiError(403, "permission_denied",
		               "a token with role \"" + ctx.caller.role + "\" may not call " + route.method + " " + route.path,
		               "42501");
	if (r.get(0, 6) != "t") {
		ApiError e(429, "quota_exceeded", "the tenant's api_calls quota for this month is used up", "TN003");
		e.retry_after = static_cast<int>(SecondsUntilNextMonthUtc(std::time(nullptr)));
		throw e;
	}
	if (!r.null(0, 7))
		ctx.answer = r.get(0, 7);
}

} // namespace tenancyd
