// test/unit/core/tenant_token_test.cpp
// Signed tenant tokens: format, verification, tampering, expiry, and the secret file rules.
#include "tenancy/core/error.hpp"
#include "tenancy/core/tenant_token.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <sys/stat.h>

using namespace tenancy::core;

namespace {

const std::string kSecret = "0123456789abcdef0123456789abcdef-test-secret";

UuidBytes
Tenant(const char *text)
{
	UuidBytes b{};
	EXPECT_TRUE(ParseUuid(text, b));
	return b;
}

ErrorKind
VerifyKind(const std::string &secret, const std::string &token, std::int64_t now)
{
	try {
		VerifyTenantToken(secret, token, now);
	} catch (const Error &e) {
		return e.kind();
	}
	return ErrorKind::kInternal; /* "no error" marker */
}

std::string
TempFile(const std::string &content, mode_t mode)
{
	char name[] = "/tmp/tenancy-token-test-XXXXXX";
	int fd = mkstemp(name);
	EXPECT_GE(fd, 0);
	FILE *f = fdopen(fd, "w");
	fwrite(content.data(), 1, content.size(), f);
	fclose(f);
	chmod(name, mode);
	return name;
}

} // namespace

TEST(TenantToken, HasTheDocumentedFormat)
{
	std::string token = SignTenantToken(kSecret, Tenant("a0000000-0000-0000-0000-00000000000a"), 1700000000);
	EXPECT_EQ(token.rfind("v1.a0000000-0000-0000-0000-00000000000a.1700000000.", 0), 0u);
	std::string mac = token.substr(token.rfind('.') + 1);
	EXPECT_EQ(mac.size(), 43u); /* 32 bytes, unpadded base64url */
	EXPECT_EQ(mac.find_first_of("+/="), std::string::npos);
}

TEST(TenantToken, RoundTrips)
{
	auto tenant = Tenant("a0000000-0000-0000-0000-00000000000a");
	VerifiedToken v = VerifyTenantToken(kSecret, SignTenantToken(kSecret, tenant, 2000), 1999);
	EXPECT_EQ(v.tenant, tenant);
	EXPECT_EQ(v.expires_at, 2000);
}

TEST(TenantToken, RefusesTamperingAnywhere)
{
	std::string token = SignTenantToken(kSecret, Tenant("a0000000-0000-0000-0000-00000000000a"), 5000);
	for (std::size_t i = 0; i < token.size(); i++) {
		std::string bad = token;
		bad[i] = bad[i] == 'b' ? 'c' : 'b';
		EXPECT_EQ(VerifyKind(kSecret, bad, 1000), ErrorKind::kPermissionDenied) << "position " << i;
	}
	/* another tenant's id with this token's signature */
	std::string swapped = token;
	swapped.replace(3, 36, "b0000000-0000-0000-0000-00000000000b");
	EXPECT_EQ(VerifyKind(kSecret, swapped, 1000), ErrorKind::kPermissionDenied);
	/* a later expiry with this token's signature */
	std::string extended = token;
	extended.replace(40, 4, "9999");
	EXPECT_EQ(VerifyKind(kSecret, extended, 1000), ErrorKind::kPermissionDenied);
}

TEST(TenantToken, RefusesAnotherSecret)
{
	std::string token = SignTenantToken(kSecret, Tenant("a0000000-0000-0000-0000-00000000000a"), 5000);
	EXPECT_EQ(VerifyKind(kSecret + "x", token, 1000), ErrorKind::kPermissionDenied);
}

TEST(TenantToken, RefusesExpiredTokens)
{
	std::string token = SignTenantToken(kSecret, Tenant("a0000000-0000-0000-0000-00000000000a"), 5000);
	EXPECT_EQ(VerifyKind(kSecret, token, 4999), ErrorKind::kInternal);
	EXPECT_EQ(VerifyKind(kSecret, token, 5000), ErrorKind::kPermissionDenied);
	EXPECT_EQ(VerifyKind(kSecret, token, 9000), ErrorKind::kPermissionDenied);
}

TEST(TenantToken, RefusesMalformedTokens)
{
	for (const char *bad : {"", ".", "v1", "v1.x.1.abc", "v2.a0000000-0000-0000-0000-00000000000a.5000.AAAA",
	                        "not a token at all", "v1.a0000000-0000-0000-0000-00000000000a.5000.===="})
		EXPECT_EQ(VerifyKind(kSecret, bad, 1000), ErrorKind::kPermissionDenied) << bad;
	EXPECT_EQ(VerifyKind(kSecret, std::string(1000, 'a'), 1000), ErrorKind::kPermissionDenied);
}

TEST(TenantToken, ReadsTheSecretFile)
{
	std::string path = TempFile(kSecret + "\n", 0600);
	std::string secret = ReadSecretFile(path);
	EXPECT_EQ(secret, kSecret);
	WipeSecret(secret);
	EXPECT_TRUE(secret.empty());
	std::remove(path.c_str());
}

TEST(TenantToken, RefusesUnsafeSecretFiles)
{
	auto kind = [](const std::string &path) {
		try {
			ReadSecretFile(path);
		} catch (const Error &e) {
			return e.kind();
		}
		return ErrorKind::kInternal;
	};
	EXPECT_EQ(kind(""), ErrorKind::kNotSetUp);
	EXPECT_EQ(kind("/nonexistent/tenancy.secret"), ErrorKind::kNotSetUp);
	std::string world = TempFile(kSecret, 0644);
	EXPECT_EQ(kind(world), ErrorKind::kNotSetUp);
	std::string shortfile = TempFile("short", 0600);
	EXPECT_EQ(kind(shortfile), ErrorKind::kNotSetUp);
	std::remove(world.c_str());
	std::remove(shortfile.c_str());
}
