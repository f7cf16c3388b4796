// test/unit/core/envelope_test.cpp
// The AES-256-GCM envelope: layout, round trips, tamper detection of every byte, tenant and version binding; base64.
#include "tenancy/core/base64.hpp"
#include "tenancy/core/envelope.hpp"
#include "tenancy/core/error.hpp"
#include "tenancy/core/master_key.hpp"

#include "support/error_kind.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

using namespace tenancy::core;
using tenancy::test::KindOf;

namespace {

TenantId
Tenant(std::uint8_t fill)
{
	TenantId t;
	t.fill(fill);
	return t;
}

std::vector<std::uint8_t>
Seal(DataKeyCipher &cipher, const std::string &text)
{
	std::vector<std::uint8_t> out(SealedSize(text.size()));
	cipher.Seal(reinterpret_cast<const std::uint8_t *>(text.data()), text.size(), out.data());
	return out;
}

std::string
Open(DataKeyCipher &cipher, const std::vector<std::uint8_t> &envelope)
{
	// Open validates the length before writing; size the buffer only once it can be a real envelope.
	std::string out(envelope.size() >= kEnvelopeOverhead ? OpenedSize(envelope.size()) : 0, '\0');
	cipher.Open(envelope.data(), envelope.size(), reinterpret_cast<std::uint8_t *>(out.data()));
	return out;
}

} // namespace

TEST(Envelope, LayoutHasFormatVersionNonceAndTag)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(1), 0x01020304);
	auto env = Seal(cipher, "hello");
	ASSERT_EQ(env.size(), 5u + kEnvelopeOverhead);
	EXPECT_EQ(env[0], kEnvelopeFormat);
	EXPECT_EQ(env[1], 1);
	EXPECT_EQ(env[2], 2);
	EXPECT_EQ(env[3], 3);
	EXPECT_EQ(env[4], 4);
	EXPECT_EQ(EnvelopeKeyVersion(env.data(), env.size()), 0x01020304u);
	EXPECT_EQ(kEnvelopeOverhead, 1u + 4u + 12u + 16u);
}

TEST(Envelope, RoundTripsEverySize)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(7), 1);
	for (std::size_t size : {0, 1, 15, 16, 17, 1024, 1 << 20}) {
		std::string text(size, '\0');
		for (std::size_t i = 0; i < size; i++)
			text[i] = static_cast<char>(i * 31 + 7);
		auto env = Seal(cipher, text);
		EXPECT_EQ(env.size(), SealedSize(size));
		EXPECT_EQ(Open(cipher, env), text) << size;
	}
}

TEST(Envelope, ContextsAreReusedAcrossValuesAndKeysMatchAFreshCipher)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher writer(key, Tenant(3), 2);
	DataKeyCipher reader(key, Tenant(3), 2);
	for (int i = 0; i < 100; i++) {
		std::string text = "value " + std::to_string(i);
		EXPECT_EQ(Open(reader, Seal(writer, text)), text);
	}
}

namespace {

// Seals with a fresh EVP context initialised the textbook way (key and nonce in EVP_EncryptInit_ex), independent
// of DataKeyCipher's reused contexts and of how they set the nonce.
std::vector<std::uint8_t>
ReferenceSeal(const SecretKey &key, const TenantId &tenant, std::uint32_t version,
              const std::vector<std::uint8_t> &nonce, const std::string &text)
{
	std::vector<std::uint8_t> env(SealedSize(text.size()));
	env[0] = kEnvelopeFormat;
	for (int i = 0; i < 4; i++)
		env[1 + i] = static_cast<std::uint8_t>(version >> (24 - 8 * i));
	std::copy(nonce.begin(), nonce.end(), env.begin() + kEnvelopeHeaderSize);
	std::uint8_t aad[16 + kEnvelopeHeaderSize];
	std::memcpy(aad, tenant.data(), 16);
	std::memcpy(aad + 16, env.data(), kEnvelopeHeaderSize);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	std::uint8_t *body = env.data() + kEnvelopeHeaderSize + kEnvelopeNonceSize;
	int len = 0;
	EXPECT_EQ(EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key.data(), nonce.data()), 1);
	EXPECT_EQ(EVP_EncryptUpdate(ctx, nullptr, &len, aad, static_cast<int>(sizeof(aad))), 1);
	EXPECT_EQ(EVP_EncryptUpdate(ctx, body, &len, reinterpret_cast<const std::uint8_t *>(text.data()),
	                            static_cast<int>(text.size())),
	          1);
	EXPECT_EQ(EVP_EncryptFinal_ex(ctx, body + text.size(), &len), 1);
	EXPECT_EQ(EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, body + text.size()), 1);
	EVP_CIPHER_CTX_free(ctx);
	return env;
}

} // namespace

TEST(Envelope, ReusedDecryptContextOpensWhatAFreshContextSealedUnderEveryNonce)
{
	// Every value sets its own nonce on the one decrypting context: a nonce that did not take (the previous one
	// reused, or zeros) fails authentication here; so must a tampered value in between, without spoiling the next.
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(5), 4);
	for (int i = 0; i < 200; i++) {
		std::vector<std::uint8_t> nonce(kEnvelopeNonceSize);
		for (std::size_t b = 0; b < nonce.size(); b++)
			nonce[b] = static_cast<std::uint8_t>(i * 7 + b * 29 + (i % 3 == 0 ? 0 : 0x80));
		std::string text(static_cast<std::size_t>(i * 13 % 300), static_cast<char>('a' + i % 26));
		auto env = ReferenceSeal(key, Tenant(5), 4, nonce, text);
		EXPECT_EQ(Open(cipher, env), text) << i;
		auto in_place = env;
		EXPECT_EQ(std::string(reinterpret_cast<const char *>(in_place.data()),
		                      cipher.OpenInPlace(in_place.data(), in_place.size())),
		          text)
		    << i;
		auto bad = env;
		bad[kEnvelopeHeaderSize + static_cast<std::size_t>(i) % kEnvelopeNonceSize] ^= 0x04; // nonce byte
		EXPECT_EQ(KindOf([&] { Open(cipher, bad); }), ErrorKind::kDecryptionFailed) << i;
	}
}

TEST(Envelope, SamePlaintextGivesDifferentCiphertexts)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(1), 1);
	EXPECT_NE(Seal(cipher, "same"), Seal(cipher, "same"));
}

TEST(Envelope, ForkedChildNeverReusesTheParentsNonces)
{
	// Nonces come from a per-process batch: a child forked with a half-used batch must draw its own.
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(1), 1);
	Seal(cipher, "fills the parent's batch");
	int fds[2];
	ASSERT_EQ(pipe(fds), 0);
	pid_t pid = fork();
	ASSERT_GE(pid, 0);
	if (pid == 0) {
		auto env = Seal(cipher, "child");
		ssize_t written = write(fds[1], env.data() + kEnvelopeHeaderSize, kEnvelopeNonceSize);
		_exit(written == static_cast<ssize_t>(kEnvelopeNonceSize) ? 0 : 1);
	}
	std::vector<std::uint8_t> child_nonce(kEnvelopeNonceSize);
	ASSERT_EQ(read(fds[0], child_nonce.data(), child_nonce.size()), static_cast<ssize_t>(kEnvelopeNonceSize));
	int status = 0;
	waitpid(pid, &status, 0);
	close(fds[0]);
	close(fds[1]);
	auto env = Seal(cipher, "parent");
	std::vector<std::uint8_t> parent_nonce(env.begin() + kEnvelopeHeaderSize,
	                                       env.begin() + kEnvelopeHeaderSize + kEnvelopeNonceSize);
	EXPECT_NE(parent_nonce, child_nonce);
}

TEST(Envelope, EveryAlteredByteFails)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(1), 1);
	auto env = Seal(cipher, "attack at dawn, bring snacks");
	for (std::size_t i = 0; i < env.size(); i++) {
		for (std::uint8_t flip : {0x01, 0x80}) {
			auto bad = env;
			bad[i] ^= flip;
			EXPECT_EQ(KindOf([&] { Open(cipher, bad); }), ErrorKind::kDecryptionFailed) << "byte " << i;
		}
	}
}

TEST(Envelope, TruncationAndExtensionFail)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(1), 1);
	auto env = Seal(cipher, "some text");
	for (std::size_t len = 0; len < env.size(); len++) {
		std::vector<std::uint8_t> cut(env.begin(), env.begin() + len);
		EXPECT_EQ(KindOf([&] { Open(cipher, cut); }), ErrorKind::kDecryptionFailed) << len;
	}
	auto longer = env;
	longer.push_back(0);
	EXPECT_EQ(KindOf([&] { Open(cipher, longer); }), ErrorKind::kDecryptionFailed);
}

TEST(Envelope, BoundToTenantAndKeyVersion)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher tenant_a(key, Tenant(0xA), 1);
	// Same key bytes, other tenant: only the associated data differs, and that alone must fail.
	DataKeyCipher tenant_b(key, Tenant(0xB), 1);
	auto env = Seal(tenant_a, "secret of A");
	EXPECT_EQ(KindOf([&] { Open(tenant_b, env); }), ErrorKind::kDecryptionFailed);

	DataKeyCipher version2(key, Tenant(0xA), 2);
	auto relabelled = env;
	relabelled[4] = 2;
	EXPECT_EQ(KindOf([&] { Open(version2, relabelled); }), ErrorKind::kDecryptionFailed);
	EXPECT_EQ(KindOf([&] { Open(version2, env); }), ErrorKind::kDecryptionFailed);
}

TEST(Envelope, FailedOpenWipesOutput)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(1), 1);
	auto env = Seal(cipher, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
	env[env.size() - 1] ^= 1; // tag only: the body still decrypts to the plaintext before the check
	std::vector<std::uint8_t> out(OpenedSize(env.size()), 0xEE);
	EXPECT_THROW(cipher.Open(env.data(), env.size(), out.data()), Error);
	for (auto b : out)
		EXPECT_EQ(b, 0);
}

TEST(Envelope, OpenInPlaceMatchesOpenForEverySizeAndFailsLikeIt)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(9), 3);
	for (std::size_t size : {0, 1, 15, 16, 17, 1024, 1 << 20}) {
		std::string text(size, '\0');
		for (std::size_t i = 0; i < size; i++)
			text[i] = static_cast<char>(i * 13 + 5);
		auto env = Seal(cipher, text);
		auto buffer = env;
		std::size_t opened = cipher.OpenInPlace(buffer.data(), buffer.size());
		EXPECT_EQ(opened, size);
		EXPECT_EQ(std::string(reinterpret_cast<const char *>(buffer.data()), opened), text) << size;
	}
	auto env = Seal(cipher, "attack at dawn, bring snacks");
	for (std::size_t i = 0; i < env.size(); i++) {
		auto bad = env;
		bad[i] ^= 0x01;
		EXPECT_EQ(KindOf([&] { cipher.OpenInPlace(bad.data(), bad.size()); }), ErrorKind::kDecryptionFailed)
		    << "byte " << i;
	}
	DataKeyCipher other_tenant(key, Tenant(8), 3);
	auto moved = env;
	EXPECT_EQ(KindOf([&] { other_tenant.OpenInPlace(moved.data(), moved.size()); }), ErrorKind::kDecryptionFailed);
}

TEST(Envelope, FailedOpenInPlaceLeavesNoPlaintext)
{
	SecretKey key = GenerateDataKey();
	DataKeyCipher cipher(key, Tenant(1), 1);
	const std::string text = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	auto env = Seal(cipher, text);
	env[env.size() - 1] ^= 1; // tag only: the body decrypts to the plaintext before the check
	EXPECT_THROW(cipher.OpenInPlace(env.data(), env.size()), Error);
	std::string left(reinterpret_cast<const char *>(env.data()), env.size());
	EXPECT_EQ(left.find("AAAA"), std::string::npos);
}

TEST(Envelope, HeaderChecks)
{
	std::vector<std::uint8_t> env(kEnvelopeOverhead, 0);
	env[0] = kEnvelopeFormat;
	EXPECT_EQ(KindOf([&] { EnvelopeKeyVersion(env.data(), env.size()); }), ErrorKind::kDecryptionFailed); // version 0
	env[4] = 1;
	EXPECT_EQ(EnvelopeKeyVersion(env.data(), env.size()), 1u);
	env[0] = 2;
	EXPECT_EQ(KindOf([&] { EnvelopeKeyVersion(env.data(), env.size()); }), ErrorKind::kDecryptionFailed);
	env[0] = kEnvelopeFormat;
	EXPECT_EQ(KindOf([&] { EnvelopeKeyVersion(env.data(), env.size() - 1); }), ErrorKind::kDecryptionFailed);
}

TEST(Base64, RoundTripsAndMatchesRfc4648)
{
	const std::string vectors[][2] = {{"", ""},
	                                  {"f", "Zg=="},
	                                  {"fo", "Zm8="},
	                                  {"foo", "Zm9v"},
	                                  {"foob", "Zm9vYg=="},
	                                  {"fooba", "Zm9vYmE="},
	                                  {"foobar", "Zm9vYmFy"}};
	for (const auto &v : vectors) {
		EXPECT_EQ(Base64Encode(reinterpret_cast<const std::uint8_t *>(v[0].data()), v[0].size()), v[1]);
		std::vector<std::uint8_t> out(Base64MaxDecodedSize(v[1].size()) + 1);
		auto n = Base64Decode(v[1].data(), v[1].size(), out.data());
		ASSERT_TRUE(n.has_value()) << v[1];
		EXPECT_EQ(std::string(reinterpret_cast<char *>(out.data()), *n), v[0]);
	}
}

TEST(Base64, RefusesNonCanonicalText)
{
	for (const char *bad : {"Zg",          "Zg=",      "Zh==",      "Zm9=",      "Z=g=",
	                        "Zg==Zg==",    " Zm9v",    "Zm9v\n",    "Zm 9v",     "Zm9v====",
	                        "Zm9*",        "Zm9v-_==", "====",      "\tZm9v",    "Zm9v\r\n",
	                        "Zm=v",        "=m9v",     "Zm9vYg=\n", "Zm9vYg\n=", "Zm9v\x80\x80\x80\x80",
	                        "Zm9vYmE=    "}) {
		std::vector<std::uint8_t> out(64);
		EXPECT_FALSE(Base64Decode(bad, std::strlen(bad), out.data()).has_value()) << bad;
	}
}

TEST(Base64, AcceptsExactlyTheAlphabetInEveryPosition)
{
	// Every byte value in every position of an unpadded text: accepted exactly when it is one of the 64 characters
	// (NUL included: the length is given, not found).
	for (std::size_t pos = 0; pos < 8; pos++) {
		for (int c = 0; c < 256; c++) {
			char text[] = "Zm9vYmFy";
			text[pos] = static_cast<char>(c);
			bool alphabet =
			    (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
			std::vector<std::uint8_t> out(16);
			EXPECT_EQ(Base64Decode(text, 8, out.data()).has_value(), alphabet) << "position " << pos << " byte " << c;
		}
	}
}
