// extension/core/base64.cpp
// Canonical base64 on top of OpenSSL's block encoder: OpenSSL does the coding, we only reject non-canonical text.
#include "tenancy/core/base64.hpp"

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
	if (n % 4 != 0 || n > static_cast<std::size_t>(INT_MAX))
		return std::nullopt;
	// Decoding first streams the text into the cache once; the checks below then read it from there.
	int decoded = EVP_DecodeBlock(out, reinterpret_cast<const unsigned char *>(in), static_cast<int>(n));
	if (decoded < 0 || static_cast<std::size_t>(decoded) != Base64MaxDecodedSize(n))
		return std::nullopt;
	std::size_t padding = 0;
	while (padding < 2 && in[n - 1 - padding] == '=')
		padding++;
	// EVP_DecodeBlock trims surrounding whitespace and decodes '=' anywhere as zero bits: refuse both.
	if (std::memchr(in, '=', n - padding) != nullptr)
		return std::nullopt;
	unsigned char first = static_cast<unsigned char>(in[0]);
	if (first == ' ' || first == '\t' || first == '\n' || first == '\r')
		return std::nullopt;
	std::size_t size = static_cast<std::size_t>(decoded) - padding;

	// Unused low bits of the last group must be zero: re-encode the last group and compare it with the input.
	std::size_t tail_bytes = size % 3 == 0 ? 3 : size % 3;
	char tail[5];
	EVP_EncodeBlock(reinterpret_cast<unsigned char *>(tail), out + size - tail_bytes, static_cast<int>(tail_bytes));
	if (std::memcmp(tail, in + n - 4, 4) != 0)
		return std::nullopt;
	return size;
}

} // namespace tenancy::core
