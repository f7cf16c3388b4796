// daemon/handlers/sql_util.hpp
// Small helpers the handlers share: calls with named optional arguments, timestamp formatting in SQL, list pages.
#pragma once

#include "db/pool.hpp"
#include "server/context.hpp"

#include <string>
#include <vector>

namespace tenancyd::handlers {

// SQL text that renders a timestamptz column as RFC 3339 UTC ("2024-01-01T00:00:00Z").
std::string Rfc3339Sql(const std::string &column);

// The {"items": [...], "next_cursor": ...} page of a keyset query that fetched up to limit + 1 rows of (id, JSON
// document): the extra row only tells that there is a next page, whose cursor is the last shown id.
Reply PageReply(const Result &r, int limit);

// Builds `name => $n` arguments for the arguments that are present, so absent ones keep the function's defaults.
// Only the fixed argument names of our own code reach the SQL text; every value is a parameter.
class NamedArgs {
public:
	NamedArgs &Add(const char *name, const Param &value, const char *cast = "");
	std::string sql() const { return sql_; }
	const std::vector<Param> &params() const { return params_; }

private:
	std::string sql_;
	std::vector<Param> params_;
};

} // namespace tenancyd::handlers
