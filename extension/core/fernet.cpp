// extension/core/fernet.cpp
// Fernet: url-safe base64 over OpenSSL's decoder, HMAC-SHA-256 checked in constant time, then AES-128-CBC.
#include "tenancy/core/fernet.hpp"

#include "tenancy/core/base64.hpp"
#include "tenancy/core/envelope.hpp"
#include "tenancy/core/error.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <climits>
#include <string>

namespace tenancy::core {

namespace {

constexpr std::uint8_t kFernetVersion = 0x80;
constexpr std::size_t kHeaderSize = 1 + 8 + 16; // version, timestamp, IV
constexpr std::size_t kHmacSize = 32;
constexpr std::int64_t kMaxClockSkew = 60;

[[noreturn]] void
ThrowBadToken(const std::string &detail)
{
	throw Error(ErrorKind::kDecryptionFailed, "could not decrypt Fernet token", detail);
}

// Url-safe base64 (RFC 4648 section 5, padded) is the standard alphabet with '-' and '_' for '+' and '/': map it
// and let the strict standard decoder do the rest. A '+' or '/' in the input is refused, as the spec's vectors ask.
std::optional<SecureBytes>
DecodeUrlSafe(std::string_view text)
{
	if (text.find_first_of("+/") != std::string_view::npos)
		return std::nullopt;
	// The mapped copy may hold the key itself, so it lives in a buffer that is wiped.
	SecureBytes standard(text.size());
	std::transform(text.begin(), text.end(), standard.data(), [](char c) {
		return static_cast<std::uint8_t>(c == '-' ? '+' : c == '_' ? '/' : c);
	});
	SecureBytes out(Base64MaxDecodedSize(text.size()));
	auto size = Base64Decode(reinterpret_cast<const char *>(standard.data()), standard.size(), out.data());
	if (!size)
		return std::nullopt;
	out.Truncate(*size);
	return out;
}

std::optional<SecureBytes>
DecodeToken(std::string_view token)
{
	auto raw = DecodeUrlSafe(token);
	if (raw && raw->size() > 0 && raw->data()[0] == kFernetVersion)
		return raw;
	// The brief stored base64.b64encode(token): undo that layer and try again. Line breaks are dropped first, as
	// PostgreSQL's encode(..., 'base64') inserts them every 76 characters.
	std::string outer;
	outer.reserve(token.size());
	for (char c : token)
		if (c != '\n' && c != '\r')
			outer.push_back(c);
	SecureBytes inner(Base64MaxDecodedSize(outer.size()));
	auto size = Base64Decode(outer.data(), outer.size(), inner.data());
	if (!size)
		return raw;
	auto again = DecodeUrlSafe(std::string_view(reinterpret_cast<const char *>(inner.data()), *size));
	if (again && again->size() > 0 && again->data()[0] == kFernetVersion)
		return again;
	return raw;
}

} // namespace

SecureBytes
FernetDecrypt(std::string_view token, std::string_view key, std::optional<std::int64_t> ttl_seconds, std::int64_t now)
{
	auto key_bytes = DecodeUrlSafe(key);
	if (!key_bytes || key_bytes->size() != 32)
		throw Error(ErrorKind::kInvalidInput, "invalid Fernet key",
		            "A Fernet key is 32 bytes in url-safe base64 (44 characters).");
	const std::uint8_t *signing_key = key_bytes->data();
	const std::uint8_t *encryption_key = key_bytes->data() + 16;

	auto data = DecodeToken(token);
	if (!data)
		ThrowBadToken("The token is not valid url-safe base64.");
	const std::uint8_t *bytes = data->data();
	std::size_t size = data->size();
	if (size < kHeaderSize + 16 + kHmacSize || (size - kHeaderSize - kHmacSize) % 16 != 0)
		ThrowBadToken("The token has an impossible length.");
	if (bytes[0] != kFernetVersion)
		ThrowBadToken("The token has an unknown version.");

	std::uint8_t mac[kHmacSize];
	std::size_t mac_len = 0;
	if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, signing_key, 16, bytes, size - kHmacSize, mac,
	              sizeof(mac), &mac_len) == nullptr)
		throw Error(ErrorKind::kCryptoLibrary, "OpenSSL failure: could not compute HMAC-SHA-256");
	if (CRYPTO_memcmp(mac, bytes + size - kHmacSize, kHmacSize) != 0)
		ThrowBadToken("The token's HMAC does not match: it was altered or made with another key.");

	std::int64_t timestamp = 0;
	for (int i = 1; i <= 8; i++)
		timestamp = static_cast<std::int64_t>((static_cast<std::uint64_t>(timestamp) << 8) | bytes[i]);
	if (ttl_seconds) {
		if (timestamp + *ttl_seconds < now)
			ThrowBadToken("The token has expired.");
		if (now + kMaxClockSkew < timestamp)
			ThrowBadToken("The token's timestamp is too far in the future.");
	}

	const std::uint8_t *iv = bytes + 9;
	const std::uint8_t *ciphertext = bytes + kHeaderSize;
	std::size_t ciphertext_size = size - kHeaderSize - kHmacSize;
	if (ciphertext_size > static_cast<std::size_t>(INT_MAX))
		ThrowBadToken("The token is too large.");
	SecureBytes plaintext(ciphertext_size + 16);
	CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
	int len = 0;
	int final_len = 0;
	if (!ctx || EVP_DecryptInit_ex2(ctx.get(), EVP_aes_128_cbc(), encryption_key, iv, nullptr) != 1 ||
	    EVP_DecryptUpdate(ctx.get(), plaintext.data(), &len, ciphertext, static_cast<int>(ciphertext_size)) != 1)
		throw Error(ErrorKind::kCryptoLibrary, "OpenSSL failure: AES-128-CBC decryption failed");
	if (EVP_DecryptFinal_ex(ctx.get(), plaintext.data() + len, &final_len) != 1)
		ThrowBadToken("The token's padding is invalid.");
	plaintext.Truncate(static_cast<std::size_t>(len + final_len));
	return plaintext;
}

} // namespace tenancy::core
