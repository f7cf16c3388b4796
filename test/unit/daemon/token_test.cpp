// test/unit/daemon/token_test.cpp
// Token hashing, constant-time comparison, bearer parsing, token generation, base64url.
#include "auth/authorizer.hpp"
#include "auth/token.hpp"

#include <gtest/gtest.h>
#include <set>

using namespace tenancyd;

TEST(Token, Sha256KnownVector)
{
	EXPECT_EQ(ToHex(Sha256("abc")), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	EXPECT_EQ(ToHex(Sha256("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Token, HexRoundTrip)
{
	std::string raw = Sha256("admin-token");
	EXPECT_EQ(FromHex(ToHex(raw)), raw);
	EXPECT_EQ(FromHex("ABcd"), std::string("\xab\xcd"));
	EXPECT_FALSE(FromHex("abc"));
	EXPECT_FALSE(FromHex("zz"));
	EXPECT_FALSE(FromHex("ab:cd"));                    // no separators
	EXPECT_FALSE(FromHex(std::string("ab\0\0cd", 6))); // a NUL does not end the input early
	EXPECT_EQ(FromHex(""), std::string());
}

TEST(Token, ConstantTimeEquals)
{
	std::string a = Sha256("a"), b = Sha256("b");
	EXPECT_TRUE(ConstantTimeEquals(a, Sha256("a")));
	EXPECT_FALSE(ConstantTimeEquals(a, b));
	std::string c = a;
	c[31] ^= 1; // differs only in the last byte
	EXPECT_FALSE(ConstantTimeEquals(a, c));
	EXPECT_FALSE(ConstantTimeEquals(a, a.substr(0, 31)));
	EXPECT_FALSE(ConstantTimeEquals("", a));
}

TEST(Token, ParseBearer)
{
	EXPECT_EQ(ParseBearer("Bearer abc"), "abc");
	EXPECT_EQ(ParseBearer("bearer  abc "), "abc");
	EXPECT_FALSE(ParseBearer(""));
	EXPECT_FALSE(ParseBearer("Bearer"));
	EXPECT_FALSE(ParseBearer("Bearer "));
	EXPECT_FALSE(ParseBearer("Basic YWJj"));
	EXPECT_FALSE(ParseBearer("Bearer a b"));
	EXPECT_FALSE(ParseBearer(std::string("Bearer a\0b", 10)));
	EXPECT_FALSE(ParseBearer("Bearer " + std::string(600, 'a')));
}

TEST(Token, GeneratedTokensAreUniqueAndUrlSafe)
{
	std::set<std::string> seen;
	for (int i = 0; i < 200; i++) {
		std::string t = GenerateTenantToken();
		EXPECT_EQ(t.rfind("tnt_", 0), 0u);
		EXPECT_EQ(t.size(), 4u + 43u); // 32 bytes in unpadded base64url
		EXPECT_EQ(t.find_first_of("+/="), std::string::npos);
		EXPECT_TRUE(seen.insert(t).second);
	}
}

TEST(Token, Base64Url)
{
	EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
	EXPECT_EQ(Base64UrlDecode("-_8"), std::string("\xfb\xff"));
	EXPECT_FALSE(Base64UrlDecode("a"));
	EXPECT_FALSE(Base64UrlDecode("ab=c"));
	EXPECT_FALSE(Base64UrlDecode("-_9")); // non-canonical trailing bits
}

TEST(RetryAfter, UntilNextMonthUtc)
{
	// 2026-11-30T23:59:00Z -> 60 s to 2026-12-01; 2026-12-31T00:00:00Z -> 1 day to 2027-01-01.
	EXPECT_EQ(SecondsUntilNextMonthUtc(1796083140), 60);
	EXPECT_EQ(SecondsUntilNextMonthUtc(1798675200), 86400);
}
