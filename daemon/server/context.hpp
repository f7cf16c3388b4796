// daemon/server/context.hpp
// What a handler sees (RequestContext) and returns (Reply), and the shape of one route table entry.
#pragma once

#include "app.hpp"
#include "db/pool.hpp"

#include <httplib.h>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace tenancyd {

// Who is calling: the admin token, or a tenant token with its tenant and role.
struct Caller {
	enum class Kind { kAnonymous, kAdmin, kTenant } kind = Kind::kAnonymous;
	std::string tenant_id; // tenant tokens only
	std::string role;      // tenant tokens only
	std::string token_id;  // tenant tokens only
	bool
	is_admin() const
	{
		return kind == Kind::kAdmin;
	}
};

struct RequestContext {
	const httplib::Request &req;
	App &app;
	std::shared_ptr<const Config> config;
	std::map<std::string, std::string> path; // named path parameters, already validated as uuids
	std::string tenant_id;                   // path {id}, when the route has one
	std::string region;                      // regions mode: the region of tenant_id once routed ("" otherwise)
	nlohmann::json body = nlohmann::json::object();
	Caller caller;
	std::optional<Lease> lease;        // taken before the handler runs when the route needs the database
	std::optional<std::string> answer; // the route's answer_sql, when Authorize fetched it with the token check
	std::string request_id;            // X-Request-Id of the answer; in the audit log of the changes it makes

	Connection &
	db()
	{
		if (!lease)
			throw std::logic_error("no database connection was taken for this request");
		return **lease;
	}
	std::optional<std::string>
	Query(const char *name) const
	{
		if (!req.has_param(name))
			return std::nullopt;
		return req.get_param_value(name);
	}
};

struct Reply {
	Reply(int status_ = 200, std::string body_ = "", std::string content_type_ = "application/json")
	    : status(status_), body(std::move(body_)), content_type(std::move(content_type_))
	{
	}
	int status;
	std::string body; // serialized JSON unless content_type says otherwise
	std::string content_type;
	std::map<std::string, std::string> headers;

	static Reply
	Json(int status, const nlohmann::json &doc)
	{
		return Reply{status, doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace)};
	}
	// A JSON document that PostgreSQL already serialized (jsonb output is valid JSON).
	static Reply
	RawJson(int status, std::string text)
	{
		return Reply{status, std::move(text)};
	}
};

// Who may call a route.
enum class Access {
	kPublic,  // no token
	kMetrics, // the admin or the scrape token (metrics.token_sha256); public with metrics.require_admin_token: false
	kAdmin,   // the admin token only
	kTenant,  // the admin token, or a token of the {id} tenant whose role permits `action`
};

using HandlerFn = Reply (*)(RequestContext &);

struct Route {
	const char *method; // GET, POST, PATCH, DELETE
	const char *path;   // OpenAPI-style, e.g. /api/v1/tenants/{id}/users; /api/v1 routes also answer under /v1
	Access access;
	const char *action; // tenancy.token_permits action for tenant tokens, nullptr otherwise
	bool needs_db;      // take a pooled connection before the handler
	bool has_body;      // parse the body as a JSON object
	HandlerFn handler;
	// SQL expression of the route's whole answer over the path tenant $2::uuid, or nullptr. A tenant-token request
	// then gets it in the same statement as its token check and metering (one round trip instead of two).
	const char *answer_sql = nullptr;
};

// The route table (routes.cpp).
const std::vector<Route> &Routes();

} // namespace tenancyd
