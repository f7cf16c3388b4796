// daemon/auth/token.cpp
// OpenSSL does the work (EVP SHA-256, RAND_bytes, CRYPTO_memcmp, EVP base64); nothing here is hand-rolled crypto.
#include "auth/token.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdexcept>
#include <strings.h>
#include <vector>

namespace tenancyd {

std::optional<std::string>
ParseBearer(const std::string &header_value)
{
	constexpr const char kScheme[] = "bearer ";
	if (header_value.size() <= sizeof kScheme - 1 || strncasecmp(header_value.c_str(), kScheme, sizeof kScheme - 1))
		return std::nullopt;
	std::string token = header_value.substr(sizeof kScheme - 1);
	while (!token.empty() && token.front() == ' ')
		token.erase(0, 1);
	while (!token.empty() && (token.back() == ' ' || token.back() == '\t'))
		token.pop_back();
	if (token.empty() || token.size() > 512)
		return std::nullopt;
	for (unsigned char c : token)
		if (c <= 0x20 || c >= 0x7f)
			return std::nullopt;
	return token;
}

std::string
Sha256(const std::string &data)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int len = 0;
	if (EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr) != 1)
		throw std::runtime_error("SHA-256 failed");
	return std::string(reinterpret_cast<char *>(digest), len);
}

std::string
ToHex(const std::string &bytes)
{
	static const char kDigits[] = "0123456789abcdef";
	std::string out;
	out.reserve(bytes.size() * 2);
	for (unsigned char c : bytes) {
		out.push_back(kDigits[c >> 4]);
		out.push_back(kDigits[c & 15]);
	}
	return out;
}

std::optional<std::string>
FromHex(const std::string &hex)
{
	// OpenSSL decodes either case and refuses odd lengths and non-hex characters; with no separator allowed
	// (sep '\0'), "ab:cd" is refused too. It reads a C string, so an embedded NUL must not cut the input short.
	std::string out(hex.size() / 2, '\0');
	size_t len = 0;
	if (hex.find('\0') != std::string::npos ||
	    (!hex.empty() && OPENSSL_hexstr2buf_ex(reinterpret_cast<unsigned char *>(out.data()), out.size(), &len,
	                                           hex.c_str(), '\0') != 1)) {
		ERR_clear_error(); // a stale entry would confuse this thread's next TLS call
		return std::nullopt;
	}
	return out;
}

bool
ConstantTimeEquals(const std::string &a, const std::string &b)
{
	// The lengths of digests are public (32 bytes); only the contents must not leak through timing.
	if (a.size() != b.size())
		return false;
	return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string
GenerateTenantToken()
{
	unsigned char secret[32];
	if (RAND_bytes(secret, sizeof secret) != 1)
		throw std::runtime_error("RAND_bytes failed");
	std::string token = "tnt_" + Base64UrlEncode(std::string(reinterpret_cast<char *>(secret), sizeof secret));
	OPENSSL_cleanse(secret, sizeof secret);
	return token;
}

std::string
GenerateRequestId()
{
	unsigned char bytes[8];
	if (RAND_bytes(bytes, sizeof bytes) != 1)
		throw std::runtime_error("RAND_bytes failed");
	return ToHex(std::string(reinterpret_cast<char *>(bytes), sizeof bytes));
}

std::string
Base64UrlEncode(const std::string &bytes)
{
	std::vector<unsigned char> out(4 * ((bytes.size() + 2) / 3) + 1);
	int n = EVP_EncodeBlock(out.data(), reinterpret_cast<const unsigned char *>(bytes.data()),
	                        static_cast<int>(bytes.size()));
	std::string s(reinterpret_cast<char *>(out.data()), n);
	while (!s.empty() && s.back() == '=')
		s.pop_back();
	for (char &c : s)
		c = c == '+' ? '-' : c == '/' ? '_' : c;
	return s;
}

std::optional<std::string>
Base64UrlDecode(const std::string &text)
{
	if (text.empty() || text.size() > 4096)
		return std::nullopt;
	std::string s = text;
	for (char &c : s) {
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (!isalnum(static_cast<unsigned char>(c)))
			return std::nullopt;
	}
	size_t pad = (4 - s.size() % 4) % 4;
	if (pad == 3)
		return std::nullopt;
	s.append(pad, '=');
	std::vector<unsigned char> out(s.size());
	int n = EVP_DecodeBlock(out.data(), reinterpret_cast<const unsigned char *>(s.data()), static_cast<int>(s.size()));
	if (n < 0)
		return std::nullopt;
	std::string decoded(reinterpret_cast<char *>(out.data()), n - pad); // DecodeBlock counts padding as zero bytes
	if (Base64UrlEncode(decoded) != text)
		return std::nullopt; // non-canonical encodings are refused, so every cursor has one spelling
	return decoded;
}

} // namespace tenancyd
