// test/unit/core/key_transport_test.cpp
// Key hand-over of a live move: a data key sealed on the source opens only on the target's master key and nonce.
#include "tenancy/core/error.hpp"
#include "tenancy/core/key_transport.hpp"
#include "tenancy/core/master_key.hpp"

#include <gtest/gtest.h>

#include <cstring>

using namespace tenancy::core;

namespace {

SecretKey
KeyOf(std::uint8_t fill)
{
	SecretKey k;
	std::memset(k.data(), fill, SecretKey::kSize);
	return k;
}

const TenantId kTenant = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
const TenantId kOther = {16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1};
const std::uint8_t kNonce[kTransportNonceSize] = {7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};

} // namespace

TEST(KeyTransport, RoundTripAcrossMasterKeys)
{
	SecretKey target_master = KeyOf(0x42);
	SecretKey data_key = GenerateDataKey();
	auto pub = TransportPublicKey(target_master, kNonce, sizeof(kNonce));
	auto sealed = SealDataKey(data_key, pub.data(), pub.size(), kTenant, 3);
	ASSERT_EQ(sealed.size(), kSealedKeySize);
	SecretKey opened =
	    OpenSealedDataKey(target_master, kNonce, sizeof(kNonce), sealed.data(), sealed.size(), kTenant, 3);
	EXPECT_EQ(std::memcmp(opened.data(), data_key.data(), SecretKey::kSize), 0);
	// The sealed form never contains the key in clear.
	for (std::size_t i = 0; i + SecretKey::kSize <= sealed.size(); i++)
		EXPECT_NE(std::memcmp(sealed.data() + i, data_key.data(), SecretKey::kSize), 0);
}

TEST(KeyTransport, RecipientKeyIsDeterministicPerNonce)
{
	SecretKey master = KeyOf(0x42);
	std::uint8_t other_nonce[kTransportNonceSize] = {};
	EXPECT_EQ(TransportPublicKey(master, kNonce, sizeof(kNonce)), TransportPublicKey(master, kNonce, sizeof(kNonce)));
	EXPECT_NE(TransportPublicKey(master, kNonce, sizeof(kNonce)),
	          TransportPublicKey(master, other_nonce, sizeof(other_nonce)));
}

TEST(KeyTransport, RefusesWrongMasterNonceTenantVersionOrTampering)
{
	SecretKey master = KeyOf(0x42);
	SecretKey data_key = GenerateDataKey();
	auto pub = TransportPublicKey(master, kNonce, sizeof(kNonce));
	auto sealed = SealDataKey(data_key, pub.data(), pub.size(), kTenant, 1);
	std::uint8_t other_nonce[kTransportNonceSize] = {};
	SecretKey other_master = KeyOf(0x43);
	auto refuses = [&](const SecretKey &m, const std::uint8_t *nonce, const std::vector<std::uint8_t> &s,
	                   const TenantId &t, std::uint32_t v) {
		try {
			OpenSealedDataKey(m, nonce, kTransportNonceSize, s.data(), s.size(), t, v);
		} catch (const Error &e) {
			return e.kind() == ErrorKind::kInvalidInput;
		}
		return false;
	};
	EXPECT_TRUE(refuses(other_master, kNonce, sealed, kTenant, 1));
	EXPECT_TRUE(refuses(master, other_nonce, sealed, kTenant, 1));
	EXPECT_TRUE(refuses(master, kNonce, sealed, kOther, 1));
	EXPECT_TRUE(refuses(master, kNonce, sealed, kTenant, 2));
	for (std::size_t i : {std::size_t{1}, std::size_t{40}, sealed.size() - 1}) {
		auto tampered = sealed;
		tampered[i] ^= 0x01;
		EXPECT_TRUE(refuses(master, kNonce, tampered, kTenant, 1)) << "byte " << i;
	}
	auto truncated = sealed;
	truncated.pop_back();
	EXPECT_TRUE(refuses(master, kNonce, truncated, kTenant, 1));
}

TEST(KeyTransport, RefusesMalformedInputs)
{
	SecretKey data_key = GenerateDataKey();
	std::uint8_t short_pub[16] = {};
	EXPECT_THROW(SealDataKey(data_key, short_pub, sizeof(short_pub), kTenant, 1), Error);
	EXPECT_THROW(TransportPublicKey(KeyOf(1), kNonce, 8), Error);
}
