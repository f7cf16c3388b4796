// extension/core/tenant_token.cpp
// HMAC-SHA-256 tenant tokens (OpenSSL) and the secret file they are signed with; no PostgreSQL here.
#include "tenancy/core/tenant_token.hpp"

#include "tenancy/core/error.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <fstream>
#include <iterator>
#include <sys/stat.h>
#include <vector>

namespace tenancy::core {

namespace {

constexpr std::string_view kVersion = "v1";

std::string
Mac(std::string_view secret, std::string_view message)
{
	unsigned char out[EVP_MAX_MD_SIZE];
	unsigned int out_len = 0;
	if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
	         reinterpret_cast<const unsigned char *>(message.data()), message.size(), out, &out_len) == nullptr)
		throw Error(ErrorKind::kCryptoLibrary, "could not compute the token signature");
	return std::string(reinterpret_cast<char *>(out), out_len);
}

// base64url without padding (RFC 4648 section 5) on top of OpenSSL's base64.
std::string
Base64UrlEncode(std::string_view raw)
{
	std::vector<unsigned char> buf(4 * ((raw.size() + 2) / 3) + 1);
	int n =
	    EVP_EncodeBlock(buf.data(), reinterpret_cast<const unsigned char *>(raw.data()), static_cast<int>(raw.size()));
	std::string out(reinterpret_cast<char *>(buf.data()), static_cast<std::size_t>(n));
	while (!out.empty() && out.back() == '=')
		out.pop_back();
	for (char &c : out)
		c = c == '+' ? '-' : (c == '/' ? '_' : c);
	return out;
}

bool
Base64UrlDecode(std::string_view text, std::string &out)
{
	std::string b64(text);
	for (char &c : b64) {
		if (c == '-')
			c = '+';
		else if (c == '_')
			c = '/';
		else if (c == '+' || c == '/' || c == '=')
			return false; /* only the url-safe alphabet, unpadded */
	}
	std::size_t pad = (4 - b64.size() % 4) % 4;
	if (pad == 3)
		return false;
	b64.append(pad, '=');
	std::vector<unsigned char> buf(b64.size() / 4 * 3 + 1);
	int n =
	    EVP_DecodeBlock(buf.data(), reinterpret_cast<const unsigned char *>(b64.data()), static_cast<int>(b64.size()));
	if (n < 0)
		return false;
	out.assign(reinterpret_cast<char *>(buf.data()), static_cast<std::size_t>(n) - pad);
	return true;
}

[[noreturn]] void
Invalid()
{
	throw Error(ErrorKind::kPermissionDenied, "invalid tenant token",
	            "The token is malformed or its signature does not match.",
	            "Ask for a new token from tenancy.sign_tenant_token().");
}

} // namespace

std::string
SignTenantToken(std::string_view secret, const UuidBytes &tenant, std::int64_t expires_at)
{
	std::string payload = std::string(kVersion) + "." + FormatUuid(tenant) + "." + std::to_string(expires_at);
	return payload + "." + Base64UrlEncode(Mac(secret, payload));
}

VerifiedToken
VerifyTenantToken(std::string_view secret, std::string_view token, std::int64_t now)
{
	if (token.size() > 256)
		Invalid();
	std::size_t last_dot = token.rfind('.');
	if (last_dot == std::string_view::npos)
		Invalid();
	std::string_view payload = token.substr(0, last_dot);
	std::string given_mac;
	std::string_view mac_text = token.substr(last_dot + 1);
	// Only the canonical spelling: unused low bits of the last character could otherwise vary.
	if (!Base64UrlDecode(mac_text, given_mac) || Base64UrlEncode(given_mac) != mac_text)
		Invalid();
	std::string expected_mac = Mac(secret, payload);
	// Constant-time: the comparison's duration says nothing about how many bytes matched.
	if (given_mac.size() != expected_mac.size() ||
	    CRYPTO_memcmp(given_mac.data(), expected_mac.data(), expected_mac.size()) != 0)
		Invalid();

	// The signature is ours, so the payload is too; parse it strictly all the same.
	std::size_t first_dot = payload.find('.');
	std::size_t second_dot = payload.find('.', first_dot == std::string_view::npos ? 0 : first_dot + 1);
	if (first_dot == std::string_view::npos || second_dot == std::string_view::npos ||
	    payload.substr(0, first_dot) != kVersion)
		Invalid();
	VerifiedToken result{};
	std::string_view uuid_text = payload.substr(first_dot + 1, second_dot - first_dot - 1);
	std::string_view expiry_text = payload.substr(second_dot + 1);
	if (uuid_text.size() != 36 || !ParseUuid(uuid_text, result.tenant) || expiry_text.empty() ||
	    expiry_text.size() > 18)
		Invalid();
	std::int64_t expiry = 0;
	for (char c : expiry_text) {
		if (c < '0' || c > '9')
			Invalid();
		expiry = expiry * 10 + (c - '0');
	}
	if (expiry <= now)
		throw Error(ErrorKind::kPermissionDenied, "tenant token has expired", "The token's expiry time has passed.",
		            "Ask for a new token from tenancy.sign_tenant_token().");
	result.expires_at = expiry;
	return result;
}

std::string
ReadSecretFile(const std::string &path)
{
	const std::string hint = "Point tenancy.context_secret_file at a file of at least 32 random bytes, mode 0600, "
	                         "owned by the server's operating system user.";
	if (path.empty())
		throw Error(ErrorKind::kNotSetUp, "tenancy.context_secret_file is not set",
		            "Signed tenant tokens need a server-side secret.", hint);
	struct stat st;
	if (stat(path.c_str(), &st) != 0)
		throw Error(ErrorKind::kNotSetUp, "could not read the tenant token secret file",
		            "The file \"" + path + "\" does not exist or cannot be accessed.", hint);
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		throw Error(ErrorKind::kNotSetUp, "tenant token secret file has group or world access",
		            "The file \"" + path + "\" must be readable by its owner only.", hint);
	std::ifstream in(path, std::ios::binary);
	if (!in)
		throw Error(ErrorKind::kNotSetUp, "could not read the tenant token secret file",
		            "The file \"" + path + "\" cannot be opened.", hint);
	std::string secret((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
	if (!secret.empty() && secret.back() == '\n')
		secret.pop_back();
	if (secret.size() < kMinSecretBytes) {
		WipeSecret(secret);
		throw Error(ErrorKind::kNotSetUp, "tenant token secret is too short", "The secret must have at least 32 bytes.",
		            hint);
	}
	return secret;
}

void
WipeSecret(std::string &secret) noexcept
{
	if (!secret.empty())
		OPENSSL_cleanse(secret.data(), secret.size());
	secret.clear();
}

} // namespace tenancy::core
