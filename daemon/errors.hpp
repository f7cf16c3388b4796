// daemon/errors.hpp
// The one place where failures become HTTP: ApiError, the SQLSTATE -> HTTP status table, and the error JSON body.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>

namespace tenancyd {

// A failure that answers the client with a JSON error body. sqlstate is empty when the error did not come from SQL.
class ApiError : public std::runtime_error {
public:
	ApiError(int status, std::string code, const std::string &message, std::string sqlstate = "",
	         std::string detail = "")
	    : std::runtime_error(message), status_(status), code_(std::move(code)), sqlstate_(std::move(sqlstate)),
	      detail_(std::move(detail))
	{
	}
	int status() const { return status_; }
	const std::string &code() const { return code_; }
	const std::string &sqlstate() const { return sqlstate_; }
	const std::string &detail() const { return detail_; }
	// Seconds for a Retry-After header (0: none).
	int retry_after = 0;

private:
	int status_;
	std::string code_;
	std::string sqlstate_;
	std::string detail_;
};

// How one SQLSTATE answers over HTTP.
struct SqlStateMapping {
	int status;
	const char *code;
	bool expose_message; // false: the server's message may carry internals, answer a generic one
};

// Looks up an exact SQLSTATE, then its two-character class; unknown states are 500 "internal_error".
SqlStateMapping MapSqlState(const std::string &sqlstate);

// Builds the ApiError for a database error with this SQLSTATE and server message.
ApiError ErrorFromSqlState(const std::string &sqlstate, const std::string &message, const std::string &detail);

// {"error": {"code", "message", "detail", "sqlstate"}} with null for an empty detail or sqlstate.
std::string ErrorBody(const std::string &code, const std::string &message, const std::string &sqlstate,
                      const std::string &detail = "");

// Default code and message for an HTTP status produced outside our handlers (404 route, 413 body, ...).
std::pair<std::string, std::string> DefaultErrorFor(int status);

} // namespace tenancyd
