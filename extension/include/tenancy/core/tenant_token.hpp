// extension/include/tenancy/core/tenant_token.hpp
// Signed tenant-context tokens: HMAC-SHA-256 over tenant id and expiry with a server-side secret.
#pragma once

#include "tenancy/core/cpp_only.hpp"
#include "tenancy/core/uuid_text.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace tenancy::core {

// Token text: "v1.<tenant uuid>.<expiry, Unix seconds>.<base64url(HMAC-SHA-256(secret, "v1.<uuid>.<expiry>"))>",
// unpadded base64url, so it is safe in URLs, headers and SQL literals.
inline constexpr std::size_t kMinSecretBytes = 32;

std::string SignTenantToken(std::string_view secret, const UuidBytes &tenant, std::int64_t expires_at);

struct VerifiedToken {
	UuidBytes tenant;
	std::int64_t expires_at;
};

// Checks format, MAC (constant-time comparison) and expiry against now. Throws Error(kPermissionDenied) for a
// malformed, forged or expired token; the message never says which byte was wrong.
VerifiedToken VerifyTenantToken(std::string_view secret, std::string_view token, std::int64_t now);

// The secret of tenancy.context_secret_file: the file's bytes without one trailing newline. Throws
// Error(kNotSetUp) when the file is missing, unreadable, readable by group or others, or shorter than
// kMinSecretBytes.
std::string ReadSecretFile(const std::string &path);

// Wipes a secret held in a std::string (OPENSSL_cleanse), for every exit path of its holder.
void WipeSecret(std::string &secret) noexcept;

// Wipes the secret when it goes out of scope, whether its holder returns or throws.
struct WipeOnExit {
	std::string &secret;
	~WipeOnExit()
	{
		WipeSecret(secret);
	}
};

} // namespace tenancy::core
