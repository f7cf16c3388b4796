// extension/include/tenancy/core/fernet.hpp
// Fernet token decryption (github.com/fernet/spec), to migrate data the brief's Python code encrypted.
#pragma once

#include "tenancy/core/cpp_only.hpp"
#include "tenancy/core/secure_bytes.hpp"

#include <cstdint>
#include <optional>
#include <string_view>

namespace tenancy::core {

// Verifies and decrypts a Fernet token with a url-safe base64 key of 32 bytes (signing half, then encryption half).
// The token may also be base64-encoded once more (standard alphabet), as the brief's TenantEncryption stored it.
// With ttl_seconds, a token older than ttl or more than 60 seconds in the future (now is Unix seconds) is refused.
// A bad key is Error(kInvalidInput); a bad, altered or expired token is Error(kDecryptionFailed).
SecureBytes FernetDecrypt(std::string_view token, std::string_view key, std::optional<std::int64_t> ttl_seconds,
                          std::int64_t now);

} // namespace tenancy::core
