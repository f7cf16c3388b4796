// daemon/server/json_body.hpp
// Strict JSON request bodies: RFC 8259 plus no duplicate keys, nesting <= 64, no NUL characters.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tenancyd {

constexpr int kMaxJsonDepth = 64;

// Parses a request body into a JSON object. An empty body is {}. Throws ApiError 400 naming what is wrong (a raw
// NUL byte anywhere, trailing bytes, overflow included: never another exception).
// Numbers in the result are approximations (doubles; 0 for one beyond a double such as 1e400): a handler that
// passes a document on to PostgreSQL passes the validated body text, which jsonb keeps exactly (numeric).
nlohmann::json ParseJsonObject(const std::string &body);

// Field access for request objects; each throws ApiError 400 naming the field.
// Throws when obj holds a key outside `allowed`.
void RejectUnknownFields(const nlohmann::json &obj, std::initializer_list<const char *> allowed);
// nullopt when absent or JSON null; throws when present with another type.
std::optional<std::string> OptionalString(const nlohmann::json &obj, const char *key);
std::string RequiredString(const nlohmann::json &obj, const char *key);
std::optional<bool> OptionalBool(const nlohmann::json &obj, const char *key);

} // namespace tenancyd
