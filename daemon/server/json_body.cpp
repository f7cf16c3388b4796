// daemon/server/json_body.cpp
// nlohmann-json's parser validates syntax and UTF-8; its callback adds the checks RFC 8259 leaves open.
#include "server/json_body.hpp"

#include "errors.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <unordered_set>
#include <vector>

namespace tenancyd {

namespace {

ApiError
BadJson(const std::string &message)
{
	return ApiError(400, "invalid_json", message);
}

bool
HasNul(const std::string &s)
{
	return s.find('\0') != std::string::npos;
}

bool
IsJsonNumber(std::string_view t)
{
	// RFC 8259: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
	size_t i = 0;
	auto digits = [&] {
		size_t from = i;
		while (i < t.size() && t[i] >= '0' && t[i] <= '9')
			i++;
		return i > from;
	};
	if (i < t.size() && t[i] == '-')
		i++;
	if (i < t.size() && t[i] == '0')
		i++;
	else if (!digits())
		return false;
	if (i < t.size() && t[i] == '.' && (++i, !digits()))
		return false;
	if (i < t.size() && (t[i] == 'e' || t[i] == 'E')) {
		i++;
		if (i < t.size() && (t[i] == '+' || t[i] == '-'))
			i++;
		if (!digits())
			return false;
	}
	return i == t.size();
}

// nlohmann-json refuses numbers beyond a double (1e400, -1e999) with out_of_range; PostgreSQL's jsonb keeps them
// exactly (numeric). The parse only checks syntax and reads strings, so such a number is handed to it as 0; the
// body text itself is what reaches the database (BodyJsonText). Returns body unchanged when no number overflows.
std::string
MaskOverflowingNumbers(const std::string &body)
{
	std::string out;
	bool changed = false, in_string = false;
	size_t copied = 0;
	for (size_t i = 0; i < body.size(); i++) {
		char c = body[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = false;
			continue;
		}
		if (c == '"') {
			in_string = true;
			continue;
		}
		if (c != '-' && (c < '0' || c > '9'))
			continue;
		size_t end = i;
		while (end < body.size() && std::strchr("0123456789+-.eE", body[end]) && body[end] != '\0')
			end++;
		std::string token = body.substr(i, end - i);
		if (IsJsonNumber(token) && !std::isfinite(std::strtod(token.c_str(), nullptr))) {
			out.append(body, copied, i - copied);
			out += '0';
			copied = end;
			changed = true;
		}
		i = end - 1;
	}
	if (!changed)
		return body;
	out.append(body, copied, std::string::npos);
	return out;
}

} // namespace

nlohmann::json
ParseJsonObject(const std::string &raw_body)
{
	if (raw_body.empty())
		return nlohmann::json::object();
	// nlohmann-json 3.11 takes a raw NUL byte for the end of the input: `{}\0anything` would pass as `{}`.
	if (size_t nul = raw_body.find('\0'); nul != std::string::npos)
		throw BadJson("malformed JSON at byte " + std::to_string(nul + 1) + " (a raw NUL byte)");
	const std::string body = MaskOverflowingNumbers(raw_body);
	using nlohmann::json;
	// One set of seen keys per open object; a vector keeps the nesting explicit and bounded by kMaxJsonDepth.
	std::vector<std::unordered_set<std::string>> seen_keys;
	std::vector<bool> is_object;
	auto callback = [&](int depth, json::parse_event_t event, json &parsed) -> bool {
		switch (event) {
		case json::parse_event_t::object_start:
		case json::parse_event_t::array_start:
			if (depth + 1 > kMaxJsonDepth)
				throw BadJson("JSON nesting is deeper than 64 levels");
			is_object.push_back(event == json::parse_event_t::object_start);
			seen_keys.emplace_back();
			break;
		case json::parse_event_t::object_end:
		case json::parse_event_t::array_end:
			if (!seen_keys.empty()) {
				seen_keys.pop_back();
				is_object.pop_back();
			}
			break;
		case json::parse_event_t::key: {
			const std::string &key = parsed.get_ref<const std::string &>();
			if (HasNul(key))
				throw BadJson("JSON keys must not contain NUL characters");
			if (!seen_keys.empty() && !seen_keys.back().insert(key).second)
				throw BadJson("duplicate JSON key \"" + key + "\"");
			break;
		}
		case json::parse_event_t::value:
			if (parsed.is_string() && HasNul(parsed.get_ref<const std::string &>()))
				throw BadJson("JSON strings must not contain NUL characters");
			break;
		}
		return true;
	};
	json doc;
	try {
		doc = json::parse(body, callback, /*allow_exceptions=*/true, /*ignore_comments=*/false);
	} catch (const json::parse_error &e) {
		// e.byte is safe to show; e.what() would echo parts of the body, which we never do.
		throw BadJson("malformed JSON at byte " + std::to_string(e.byte));
	} catch (const json::exception &e) {
		// Anything else nlohmann-json raises for an input (out_of_range, type_error) is a bad body, never a 500.
		throw BadJson("malformed JSON (" + std::string(e.id == 406 ? "number out of range" : "unsupported value") +
		              ")");
	}
	if (!doc.is_object())
		throw BadJson("the request body must be a JSON object");
	return doc;
}

void
RejectUnknownFields(const nlohmann::json &obj, std::initializer_list<const char *> allowed)
{
	for (const auto &[key, value] : obj.items()) {
		bool known = false;
		for (const char *a : allowed)
			known = known || key == a;
		if (!known)
			throw ApiError(400, "unknown_field", "unknown field \"" + key + "\"");
	}
}

std::optional<std::string>
OptionalString(const nlohmann::json &obj, const char *key)
{
	auto it = obj.find(key);
	if (it == obj.end() || it->is_null())
		return std::nullopt;
	if (!it->is_string())
		throw ApiError(400, "invalid_type", std::string("field \"") + key + "\" must be a string");
	return it->get<std::string>();
}

std::string
RequiredString(const nlohmann::json &obj, const char *key)
{
	auto v = OptionalString(obj, key);
	if (!v)
		throw ApiError(400, "missing_field", std::string("field \"") + key + "\" is required");
	return *v;
}

std::optional<bool>
OptionalBool(const nlohmann::json &obj, const char *key)
{
	auto it = obj.find(key);
	if (it == obj.end() || it->is_null())
		return std::nullopt;
	if (!it->is_boolean())
		throw ApiError(400, "invalid_type", std::string("field \"") + key + "\" must be a boolean");
	return it->get<bool>();
}

} // namespace tenancyd
