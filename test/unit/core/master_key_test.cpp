// test/unit/core/master_key_test.cpp
// Master key parsing, file permission checks, command source, fingerprint, and data key wrapping.
#include "tenancy/core/error.hpp"
#include "tenancy/core/master_key.hpp"

#include "support/error_kind.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <sys/stat.h>
#include <unistd.h>

using namespace tenancy::core;
using tenancy::test::KindOf;

namespace {

const std::string kHex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

// A scratch file removed at scope exit.
struct TempFile {
	std::string path;
	TempFile(const std::string &content, mode_t mode)
	{
		char name[] = "/tmp/tenancy-mk-XXXXXX";
		int fd = mkstemp(name);
		path = name;
		EXPECT_EQ(write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
		close(fd);
		chmod(path.c_str(), mode);
	}
	~TempFile()
	{
		unlink(path.c_str());
	}
};

std::string
KeyBytes(const SecretKey &k)
{
	return std::string(reinterpret_cast<const char *>(k.data()), SecretKey::kSize);
}

SecretKey
Parse(const std::string &s)
{
	return ParseMasterKey(reinterpret_cast<const std::uint8_t *>(s.data()), s.size(), "test");
}

} // namespace

TEST(MasterKey, ParsesHexWithAndWithoutNewlineAndRaw)
{
	std::string raw;
	for (int i = 0; i < 32; i++)
		raw.push_back(static_cast<char>(i));
	EXPECT_EQ(KeyBytes(Parse(kHex)), raw);
	EXPECT_EQ(KeyBytes(Parse(kHex + "\n")), raw);
	std::string upper = kHex;
	for (auto &c : upper)
		c = static_cast<char>(toupper(c));
	EXPECT_EQ(KeyBytes(Parse(upper)), raw);
	EXPECT_EQ(KeyBytes(Parse(raw)), raw);
}

TEST(MasterKey, RefusesMalformedKeys)
{
	for (const std::string &bad :
	     {std::string(), std::string("short"), kHex.substr(0, 63), kHex + "0", kHex + "\n\n", kHex + " ",
	      kHex.substr(0, 62) + "zz", std::string(31, 'a'), std::string(33, 'a'), kHex.substr(0, 62) + ":0"}) {
		EXPECT_EQ(KindOf([&] { Parse(bad); }), ErrorKind::kNotSetUp) << bad;
	}
}

TEST(MasterKey, MalformedMessageNeverQuotesTheContent)
{
	try {
		Parse(kHex.substr(0, 60) + "zzzz");
		FAIL();
	} catch (const Error &e) {
		EXPECT_EQ(std::string(e.what()).find("0001020304"), std::string::npos);
		EXPECT_EQ(e.detail().find("0001020304"), std::string::npos);
	}
}

TEST(MasterKey, LoadsFileOnlyWhenPrivate)
{
	TempFile ok(kHex + "\n", 0600);
	EXPECT_EQ(KeyBytes(LoadMasterKeyFile(ok.path)), KeyBytes(Parse(kHex)));
	TempFile owner_read_only(kHex, 0400);
	EXPECT_NO_THROW(LoadMasterKeyFile(owner_read_only.path));
	for (mode_t mode : {0640, 0604, 0660, 0644, 0610}) {
		TempFile shared(kHex, mode);
		EXPECT_EQ(KindOf([&] { LoadMasterKeyFile(shared.path); }), ErrorKind::kNotSetUp) << std::oct << mode;
	}
	EXPECT_EQ(KindOf([&] { LoadMasterKeyFile("/nonexistent/tenancy.key"); }), ErrorKind::kNotSetUp);
	EXPECT_EQ(KindOf([&] { LoadMasterKeyFile("/tmp"); }), ErrorKind::kNotSetUp);
}

TEST(MasterKey, CommandSourceAndPrecedence)
{
	EXPECT_EQ(KeyBytes(LoadMasterKeyCommand("echo " + kHex)), KeyBytes(Parse(kHex)));
	EXPECT_EQ(KindOf([&] { LoadMasterKeyCommand("echo " + kHex + "; exit 3"); }), ErrorKind::kNotSetUp);
	EXPECT_EQ(KindOf([&] { LoadMasterKeyCommand("echo nothex"); }), ErrorKind::kNotSetUp);

	std::string other(64, 'f');
	TempFile file(other, 0600);
	EXPECT_EQ(KeyBytes(LoadMasterKey(file.path, "echo " + kHex)), KeyBytes(Parse(other))); // the file wins
	EXPECT_EQ(KeyBytes(LoadMasterKey("", "echo " + kHex)), KeyBytes(Parse(kHex)));
	EXPECT_EQ(KindOf([&] { LoadMasterKey("", ""); }), ErrorKind::kNotSetUp);
}

TEST(MasterKey, FingerprintIsStableAndKeySpecific)
{
	auto a = MasterKeyFingerprint(Parse(kHex));
	EXPECT_EQ(a, MasterKeyFingerprint(Parse(kHex)));
	EXPECT_NE(a, MasterKeyFingerprint(Parse(std::string(64, 'f'))));
}

TEST(MasterKey, WrapUnwrapIsBoundToMasterTenantAndVersion)
{
	SecretKey master = Parse(kHex);
	SecretKey data_key = GenerateDataKey();
	TenantId tenant;
	tenant.fill(5);
	auto wrapped = WrapDataKey(master, data_key, tenant, 3);
	ASSERT_EQ(wrapped.size(), kWrappedKeySize);
	EXPECT_EQ(std::string(reinterpret_cast<char *>(wrapped.data()) + 13, 32).find(KeyBytes(data_key)),
	          std::string::npos);
	EXPECT_EQ(KeyBytes(UnwrapDataKey(master, wrapped.data(), wrapped.size(), tenant, 3)), KeyBytes(data_key));

	SecretKey wrong = Parse(std::string(64, 'e'));
	EXPECT_EQ(KindOf([&] { UnwrapDataKey(wrong, wrapped.data(), wrapped.size(), tenant, 3); }), ErrorKind::kNotSetUp);
	EXPECT_EQ(KindOf([&] { UnwrapDataKey(master, wrapped.data(), wrapped.size(), tenant, 4); }), ErrorKind::kNotSetUp);
	TenantId other = tenant;
	other[0] ^= 1;
	EXPECT_EQ(KindOf([&] { UnwrapDataKey(master, wrapped.data(), wrapped.size(), other, 3); }), ErrorKind::kNotSetUp);
	for (std::size_t i = 0; i < wrapped.size(); i++) {
		auto bad = wrapped;
		bad[i] ^= 0x10;
		EXPECT_EQ(KindOf([&] { UnwrapDataKey(master, bad.data(), bad.size(), tenant, 3); }), ErrorKind::kNotSetUp);
	}
	EXPECT_EQ(KindOf([&] { UnwrapDataKey(master, wrapped.data(), wrapped.size() - 1, tenant, 3); }),
	          ErrorKind::kNotSetUp);
}

TEST(MasterKey, DataKeysAreRandom)
{
	EXPECT_NE(KeyBytes(GenerateDataKey()), KeyBytes(GenerateDataKey()));
}
