// daemon/server/params.hpp
// Query-string and path parameters: uuids, list limits, opaque cursors, periods like "30d" or "12h", booleans.
#pragma once

#include <optional>
#include <string>

namespace tenancyd {

// A period of "<n>d" or "<n>h", n >= 1, at most max_hours in total.
struct Period {
	long hours;
	std::string text;      // as the client wrote it, e.g. "30d"
	std::string interval;  // as PostgreSQL reads it, e.g. "720 hours"
};
std::optional<Period> ParsePeriod(const std::string &text, long max_hours);

// True for the canonical 8-4-4-4-12 hex form (either case).
bool IsUuid(const std::string &text);
// The uuid or ApiError 400 naming the parameter.
std::string RequireUuid(const std::string &text, const char *name);

// limit: absent -> 100; "1".."1000" -> that; anything else ApiError 400.
int ParseLimit(const std::optional<std::string> &text);

// Opaque cursor <-> the last uuid of the previous page; a bad cursor is ApiError 400.
std::string EncodeCursor(const std::string &last_id);
std::string DecodeCursor(const std::string &cursor);

// "true"/"false" (also 1/0); anything else ApiError 400 naming the parameter.
bool ParseBoolParam(const std::string &text, const char *name);

} // namespace tenancyd
