// daemon/auth/token.hpp
// Bearer tokens: parsing the header, SHA-256 hashing, constant-time comparison and generating tenant tokens.
#pragma once

#include <optional>
#include <string>

namespace tenancyd {

// The token of "Authorization: Bearer <token>" (scheme case-insensitive), or nullopt when absent or malformed.
std::optional<std::string> ParseBearer(const std::string &header_value);

// Raw 32-byte SHA-256 digest of the token.
std::string Sha256(const std::string &data);
// Lower-case hex of bytes, and its inverse (nullopt on odd length or a non-hex character).
std::string ToHex(const std::string &bytes);
std::optional<std::string> FromHex(const std::string &hex);

// Equal length and equal bytes, in time independent of where they differ (CRYPTO_memcmp).
bool ConstantTimeEquals(const std::string &a, const std::string &b);

// A new tenant token: "tnt_" + base64url of 32 bytes from the OpenSSL CSPRNG.
std::string GenerateTenantToken();

// A new request id: 16 hex digits from the OpenSSL CSPRNG.
std::string GenerateRequestId();

// base64url without padding, and its inverse (nullopt on bad input).
std::string Base64UrlEncode(const std::string &bytes);
std::optional<std::string> Base64UrlDecode(const std::string &text);

} // namespace tenancyd
