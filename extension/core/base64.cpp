// extension/core/base64.cpp
// Canonical base64: OpenSSL's block encoder writes it, stringencoders' modp_b64 decoder reads it; we only check it.
#include "tenancy/core/base64.hpp"

#include <modp_b64.h>
#include <openssl/evp.h>

#include <climits>
#include <cstring>
#include <new>

namespace tenancy::core {

std::size_t
Base64Encode(const std::uint8_t *in, std::size_t n, char *out)
{
	if (n > static_cast<std::size_t>(INT_MAX / 4 * 3))
		throw std::bad_alloc();
	return static_cast<std::size_t>(EVP_EncodeBlock(reinterpret_cast<unsigned char *>(out), in, static_cast<int>(n)));
}

std::string
Base64Encode(const std::uint8_t *in, std::size_t n)
{
	std::string out(Base64EncodedSize(n) + 1, '\0');
	out.resize(Base64Encode(in, n, out.data()));
	return out;
}

std::optional<std::size_t>
Base64Decode(const char *in, std::size_t n, std::uint8_t *out)
{
	if (n == 0)
		return 0;
	if (n % 4 != 0)
		return std::nullopt;
	// modp_b64_decode (built with padding, as Debian builds it) refuses every character outside the standard
	// alphabet, whitespace included, and '=' anywhere but as the 1-2 last characters, in the one pass that decodes:
	// OpenSSL 3.0's EVP_DecodeBlock is slower, trims whitespace and decodes '=' anywhere, which took a second pass
	// over the text to refuse. It writes at most Base64MaxDecodedSize(n) bytes.
	std::size_t size = modp_b64_decode(reinterpret_cast<char *>(out), in, n);
	if (size == static_cast<std::size_t>(-1) || size + 2 < Base64MaxDecodedSize(n))
		return std::nullopt;

	// Unused low bits of the last group must be zero: re-encode the last group and compare it with the input.
	std::size_t tail_bytes = size % 3 == 0 ? 3 : size % 3;
	char tail[5];
	EVP_EncodeBlock(reinterpret_cast<unsigned char *>(tail), out + size - tail_bytes, static_cast<int>(tail_bytes));
	if (std::memcmp(tail, in + n - 4, 4) != 0)
		return std::nullopt;
	return size;
}

} // namespace tenancy::core
