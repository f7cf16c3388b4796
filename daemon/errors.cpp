// daemon/errors.cpp
// SQLSTATE -> HTTP status in one table (SPEC.md "Errors"), plus the JSON error body every failure shares.
#include "errors.hpp"

#include <array>
#include <nlohmann/json.hpp>

namespace tenancyd {

namespace {

struct Entry {
	const char *sqlstate; // five characters, or two for a whole class
	SqlStateMapping mapping;
};

// Exact states first, then classes. Messages of TN states are written for users; server-internal ones are not.
constexpr std::array kSqlStateTable = {
    Entry{"TN001", {404, "tenant_not_found", true}},
    Entry{"TN002", {403, "tenant_not_active", true}},
    Entry{"TN003", {429, "quota_exceeded", true}},
    Entry{"TN004", {403, "no_tenant_context", true}},
    Entry{"TN005", {400, "invalid_input", true}},
    Entry{"TN006", {400, "decryption_failed", true}},
    Entry{"TN007", {409, "hierarchy_conflict", true}},
    Entry{"23505", {409, "duplicate", true}},
    Entry{"23503", {409, "reference_conflict", true}},
    Entry{"23502", {400, "invalid_input", true}},
    Entry{"23514", {400, "invalid_input", true}},
    Entry{"42501", {403, "permission_denied", true}},
    Entry{"42704", {404, "not_found", true}},
    Entry{"42883", {501, "not_implemented", false}},
    Entry{"53400", {429, "tenant_busy", true}},             // a tenant's share of the pool is in use (db/pool.cpp)
    Entry{"54000", {413, "configuration_too_large", true}}, // update_tenant's configuration cap (issue #16)
    Entry{"55000", {503, "not_set_up", true}},
    Entry{"55006", {503, "tenant_moving", true}}, // a live move's write freeze (sql/src/88_move.sql)
    Entry{"57014", {503, "database_timeout", false}},
    Entry{"53300", {503, "database_unavailable", false}},
    Entry{"40001", {503, "retry", false}},
    Entry{"40P01", {503, "retry", false}},
    // classes
    Entry{"22", {400, "invalid_input", true}},
    Entry{"08", {503, "database_unavailable", false}},
    Entry{"57", {503, "database_unavailable", false}},
};

} // namespace

SqlStateMapping
MapSqlState(const std::string &sqlstate)
{
	for (const auto &e : kSqlStateTable)
		if (sqlstate == e.sqlstate)
			return e.mapping;
	if (sqlstate.size() == 5)
		for (const auto &e : kSqlStateTable)
			if (std::string_view(e.sqlstate).size() == 2 && sqlstate.compare(0, 2, e.sqlstate) == 0)
				return e.mapping;
	return {500, "internal_error", false};
}

ApiError
ErrorFromSqlState(const std::string &sqlstate, const std::string &message, const std::string &detail)
{
	SqlStateMapping m = MapSqlState(sqlstate);
	if (!m.expose_message) {
		std::string generic = m.status == 500   ? "internal error"
		                      : m.status == 501 ? "not implemented by the installed tenancy extension"
		                                        : "database unavailable";
		return ApiError(m.status, m.code, generic, sqlstate);
	}
	ApiError e(m.status, m.code, message, sqlstate, detail);
	if (sqlstate == "55006" || sqlstate == "53400")
		e.retry_after = 1; // the write freeze of a live move lasts well under a second
	return e;
}

std::string
ErrorBody(const std::string &code, const std::string &message, const std::string &sqlstate,
          const std::string &detail)
{
	nlohmann::json err = {{"code", code}, {"message", message}};
	err["detail"] = detail.empty() ? nlohmann::json(nullptr) : nlohmann::json(detail);
	err["sqlstate"] = sqlstate.empty() ? nlohmann::json(nullptr) : nlohmann::json(sqlstate);
	// replace: a message from the database could in theory hold invalid UTF-8; never throw while reporting.
	return nlohmann::json{{"error", err}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::pair<std::string, std::string>
DefaultErrorFor(int status)
{
	switch (status) {
	case 400:
		return {"bad_request", "malformed request"};
	case 401:
		return {"unauthorized", "missing or invalid bearer token"};
	case 403:
		return {"forbidden", "forbidden"};
	case 404:
		return {"not_found", "no such route"};
	case 405:
		return {"method_not_allowed", "method not allowed"};
	case 413:
		return {"payload_too_large", "request body exceeds limits.max_body_bytes"};
	case 414:
		return {"uri_too_long", "request URI too long"};
	case 416:
		return {"range_not_satisfiable", "range not satisfiable"};
	case 501:
		return {"not_implemented", "not implemented"};
	case 503:
		return {"unavailable", "service unavailable"};
	default:
		return {status >= 500 ? "internal_error" : "bad_request", status >= 500 ? "internal error" : "bad request"};
	}
}

} // namespace tenancyd
