// daemon/server/params.cpp
// Strict parsing of request parameters: anything that is not exactly the documented form is a 400.
#include "server/params.hpp"

#include "auth/token.hpp"
#include "errors.hpp"

#include <cctype>

namespace tenancyd {

std::optional<Period>
ParsePeriod(const std::string &text, long max_hours)
{
	if (text.size() < 2 || text.size() > 8)
		return std::nullopt;
	char unit = text.back();
	if (unit != 'd' && unit != 'h')
		return std::nullopt;
	long n = 0;
	for (size_t i = 0; i + 1 < text.size(); i++) {
		if (!std::isdigit(static_cast<unsigned char>(text[i])))
			return std::nullopt;
		n = n * 10 + (text[i] - '0');
	}
	if (n < 1 || (text[0] == '0'))
		return std::nullopt;
	long hours = unit == 'd' ? n * 24 : n;
	if (hours > max_hours)
		return std::nullopt;
	return Period{hours, text, std::to_string(hours) + " hours"};
}

bool
IsUuid(const std::string &text)
{
	if (text.size() != 36)
		return false;
	for (size_t i = 0; i < text.size(); i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (text[i] != '-')
				return false;
		} else if (!std::isxdigit(static_cast<unsigned char>(text[i]))) {
			return false;
		}
	}
	return true;
}

std::string
RequireUuid(const std::string &text, const char *name)
{
	if (!IsUuid(text))
		throw ApiError(400, "invalid_uuid", std::string(name) + " must be a uuid");
	return text;
}

int
ParseLimit(const std::optional<std::string> &text)
{
	if (!text)
		return 100;
	const std::string &t = *text;
	bool digits = !t.empty() && t.size() <= 4;
	for (char c : t)
		digits = digits && std::isdigit(static_cast<unsigned char>(c));
	int n = digits ? std::stoi(t) : 0;
	if (!digits || n < 1 || n > 1000 || t[0] == '0')
		throw ApiError(400, "invalid_limit", "limit must be an integer from 1 to 1000");
	return n;
}

std::string
EncodeCursor(const std::string &last_id)
{
	return Base64UrlEncode("v1:" + last_id);
}

std::string
DecodeCursor(const std::string &cursor)
{
	auto raw = Base64UrlDecode(cursor);
	if (!raw || raw->rfind("v1:", 0) != 0 || !IsUuid(raw->substr(3)))
		throw ApiError(400, "invalid_cursor", "cursor is not one this server returned");
	return raw->substr(3);
}

bool
ParseBoolParam(const std::string &text, const char *name)
{
	if (text == "true" || text == "1")
		return true;
	if (text == "false" || text == "0")
		return false;
	throw ApiError(400, "invalid_parameter", std::string(name) + " must be true or false");
}

} // namespace tenancyd
