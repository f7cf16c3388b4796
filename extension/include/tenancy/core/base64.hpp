// extension/include/tenancy/core/base64.hpp
// Strict standard base64 (RFC 4648, padded): OpenSSL's EVP_EncodeBlock encodes, stringencoders' modp_b64 decodes.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace tenancy::core {

// Characters EVP_EncodeBlock writes for n bytes (without the NUL it also writes).
constexpr std::size_t
Base64EncodedSize(std::size_t n)
{
	return 4 * ((n + 2) / 3);
}

// Largest number of bytes a base64 text of n characters can decode to.
constexpr std::size_t
Base64MaxDecodedSize(std::size_t n)
{
	return 3 * (n / 4);
}

// Writes Base64EncodedSize(n) characters and a NUL to out; returns the number of characters.
std::size_t Base64Encode(const std::uint8_t *in, std::size_t n, char *out);
std::string Base64Encode(const std::uint8_t *in, std::size_t n);

// Decodes into out (at least Base64MaxDecodedSize(n) bytes) and returns the byte count, or nullopt unless the text is
// canonical padded base64: a multiple of 4 characters of the standard alphabet, '=' only as 1-2 final characters, no
// whitespace, and zero unused bits, so that every distinct text decodes to distinct bytes (an altered character can
// never decode to the same ciphertext).
std::optional<std::size_t> Base64Decode(const char *in, std::size_t n, std::uint8_t *out);

} // namespace tenancy::core
