// daemon/handlers/sql_util.cpp
// Named-notation calls keep the extension's own defaults: the daemon never restates a default value.
#include "handlers/sql_util.hpp"

#include "server/params.hpp"

#include <algorithm>

namespace tenancyd::handlers {

std::string
Rfc3339Sql(const std::string &column)
{
	return "pg_catalog.to_char(" + column + " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')";
}

Reply
PageReply(const Result &r, int limit)
{
	std::string items = "[";
	int n = std::min(r.rows(), limit);
	for (int i = 0; i < n; i++)
		items += (i ? "," : "") + r.get(i, 1);
	items += "]";
	std::string next = r.rows() > limit ? "\"" + EncodeCursor(r.get(limit - 1, 0)) + "\"" : "null";
	return Reply::RawJson(200, "{\"items\":" + items + ",\"next_cursor\":" + next + "}");
}

NamedArgs &
NamedArgs::Add(const char *name, const Param &value, const char *cast)
{
	if (!value)
		return *this;
	params_.push_back(value);
	if (!sql_.empty())
		sql_ += ", ";
	sql_ += std::string(name) + " => $" + std::to_string(params_.size()) + cast;
	return *this;
}

} // namespace tenancyd::handlers
