// extension/core/key_transport.cpp
// X25519 + HKDF-SHA-256 + AES-256-GCM sealing of tenant data keys for a live move to a cluster with another master key.
#include "tenancy/core/key_transport.hpp"

#include "tenancy/core/error.hpp"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include <cstring>
#include <memory>
#include <string>

namespace tenancy::core {

namespace {

struct PkeyFree {
	void
	operator()(EVP_PKEY *k) const noexcept
	{
		EVP_PKEY_free(k);
	}
};
struct PkeyCtxFree {
	void
	operator()(EVP_PKEY_CTX *c) const noexcept
	{
		EVP_PKEY_CTX_free(c);
	}
};
struct KdfCtxFree {
	void
	operator()(EVP_KDF_CTX *c) const noexcept
	{
		EVP_KDF_CTX_free(c);
	}
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using PkeyCtxPtr = std::unique_ptr<EVP_PKEY_CTX, PkeyCtxFree>;
using KdfCtxPtr = std::unique_ptr<EVP_KDF_CTX, KdfCtxFree>;

constexpr char kRecipientLabel[] = "tenancy move recipient key v1";
constexpr char kKekLabel[] = "tenancy move key transport v1";

[[noreturn]] void
Fail(const char *what)
{
	throw Error(ErrorKind::kCryptoLibrary, std::string("OpenSSL failure: ") + what);
}

PkeyPtr
RecipientKey(const SecretKey &master, const std::uint8_t *nonce, std::size_t nonce_size)
{
	if (nonce_size != kTransportNonceSize)
		throw Error(ErrorKind::kInvalidInput, "invalid key transport nonce",
		            "A key transport nonce is " + std::to_string(kTransportNonceSize) + " bytes.");
	SecretKey secret;
	std::vector<std::uint8_t> input(kRecipientLabel, kRecipientLabel + sizeof(kRecipientLabel) - 1);
	input.insert(input.end(), nonce, nonce + nonce_size);
	size_t out_len = 0;
	if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, master.data(), SecretKey::kSize, input.data(),
	              input.size(), secret.data(), SecretKey::kSize, &out_len) == nullptr ||
	    out_len != SecretKey::kSize)
		Fail("could not derive the recipient key");
	PkeyPtr key(EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, nullptr, secret.data(), SecretKey::kSize));
	if (!key)
		Fail("could not build the X25519 recipient key");
	return key;
}

std::array<std::uint8_t, kTransportPublicSize>
PublicOf(EVP_PKEY *key)
{
	std::array<std::uint8_t, kTransportPublicSize> out{};
	size_t len = out.size();
	if (EVP_PKEY_get_raw_public_key(key, out.data(), &len) != 1 || len != out.size())
		Fail("could not read an X25519 public key");
	return out;
}

// HKDF-SHA-256 of the X25519 shared secret; salt = ephemeral || recipient public keys, info = label || tenant ||
// version, so each sealed key has its own key-encryption key.
SecretKey
KeyEncryptionKey(EVP_PKEY *own, EVP_PKEY *peer, const std::uint8_t *ephemeral_pub, const std::uint8_t *recipient_pub,
                 const TenantId &tenant, std::uint32_t key_version)
{
	PkeyCtxPtr ctx(EVP_PKEY_CTX_new(own, nullptr));
	SecretKey shared;
	size_t len = SecretKey::kSize;
	if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 || EVP_PKEY_derive_set_peer(ctx.get(), peer) != 1 ||
	    EVP_PKEY_derive(ctx.get(), shared.data(), &len) != 1 || len != SecretKey::kSize)
		Fail("X25519 key agreement failed");

	std::uint8_t salt[2 * kTransportPublicSize];
	memcpy(salt, ephemeral_pub, kTransportPublicSize);
	memcpy(salt + kTransportPublicSize, recipient_pub, kTransportPublicSize);
	std::vector<std::uint8_t> info(kKekLabel, kKekLabel + sizeof(kKekLabel) - 1);
	info.insert(info.end(), tenant.begin(), tenant.end());
	for (int shift = 24; shift >= 0; shift -= 8)
		info.push_back(static_cast<std::uint8_t>(key_version >> shift));

	EVP_KDF *kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
	KdfCtxPtr kctx(kdf ? EVP_KDF_CTX_new(kdf) : nullptr);
	EVP_KDF_free(kdf);
	char digest[] = "SHA256";
	OSSL_PARAM params[] = {
	    OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, shared.data(), SecretKey::kSize),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, salt, sizeof(salt)),
	    OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
	    OSSL_PARAM_construct_end(),
	};
	SecretKey kek;
	if (!kctx || EVP_KDF_derive(kctx.get(), kek.data(), SecretKey::kSize, params) != 1)
		Fail("HKDF-SHA-256 failed");
	return kek;
}

std::vector<std::uint8_t>
AssociatedData(const TenantId &tenant, std::uint32_t key_version, const std::uint8_t *ephemeral_pub)
{
	std::vector<std::uint8_t> aad(tenant.begin(), tenant.end());
	for (int shift = 24; shift >= 0; shift -= 8)
		aad.push_back(static_cast<std::uint8_t>(key_version >> shift));
	aad.push_back(kSealedKeyFormat);
	aad.insert(aad.end(), ephemeral_pub, ephemeral_pub + kTransportPublicSize);
	return aad;
}

} // namespace

std::array<std::uint8_t, kTransportPublicSize>
TransportPublicKey(const SecretKey &master, const std::uint8_t *nonce, std::size_t nonce_size)
{
	PkeyPtr key = RecipientKey(master, nonce, nonce_size);
	return PublicOf(key.get());
}

std::vector<std::uint8_t>
SealDataKey(const SecretKey &data_key, const std::uint8_t *recipient_public, std::size_t recipient_size,
            const TenantId &tenant, std::uint32_t key_version)
{
	if (recipient_size != kTransportPublicSize)
		throw Error(ErrorKind::kInvalidInput, "invalid key transport public key",
		            "A recipient key is a 32-byte X25519 public key.");
	PkeyPtr peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, recipient_public, recipient_size));
	PkeyCtxPtr gen(EVP_PKEY_CTX_new_id(EVP_PKEY_X25519, nullptr));
	EVP_PKEY *raw = nullptr;
	if (!peer || !gen || EVP_PKEY_keygen_init(gen.get()) != 1 || EVP_PKEY_keygen(gen.get(), &raw) != 1)
		Fail("could not generate an ephemeral X25519 key");
	PkeyPtr ephemeral(raw);
	auto ephemeral_pub = PublicOf(ephemeral.get());
	SecretKey kek =
	    KeyEncryptionKey(ephemeral.get(), peer.get(), ephemeral_pub.data(), recipient_public, tenant, key_version);

	std::vector<std::uint8_t> out(kSealedKeySize);
	out[0] = kSealedKeyFormat;
	memcpy(out.data() + 1, ephemeral_pub.data(), kTransportPublicSize);
	std::uint8_t *nonce = out.data() + 1 + kTransportPublicSize;
	std::uint8_t *body = nonce + 12;
	if (RAND_bytes(nonce, 12) != 1)
		Fail("could not draw a nonce");
	auto aad = AssociatedData(tenant, key_version, ephemeral_pub.data());
	CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
	int len = 0;
	if (!ctx || EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), kek.data(), nonce, nullptr) != 1 ||
	    EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
	    EVP_EncryptUpdate(ctx.get(), body, &len, data_key.data(), static_cast<int>(SecretKey::kSize)) != 1 ||
	    EVP_EncryptFinal_ex(ctx.get(), body + SecretKey::kSize, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, body + SecretKey::kSize) != 1)
		Fail("AES-256-GCM sealing failed");
	return out;
}

SecretKey
OpenSealedDataKey(const SecretKey &master, const std::uint8_t *nonce, std::size_t nonce_size,
                  const std::uint8_t *sealed, std::size_t sealed_size, const TenantId &tenant,
                  std::uint32_t key_version)
{
	if (sealed_size != kSealedKeySize || sealed[0] != kSealedKeyFormat)
		throw Error(ErrorKind::kInvalidInput, "invalid sealed data key",
		            "A sealed key is " + std::to_string(kSealedKeySize) + " bytes of format 1.");
	PkeyPtr own = RecipientKey(master, nonce, nonce_size);
	auto own_pub = PublicOf(own.get());
	const std::uint8_t *ephemeral_pub = sealed + 1;
	PkeyPtr peer(EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, nullptr, ephemeral_pub, kTransportPublicSize));
	if (!peer)
		throw Error(ErrorKind::kInvalidInput, "invalid sealed data key", "Its ephemeral public key is not valid.");
	SecretKey kek;
	try {
		kek = KeyEncryptionKey(own.get(), peer.get(), ephemeral_pub, own_pub.data(), tenant, key_version);
	} catch (const Error &) {
		// A forged ephemeral key of low order makes the key agreement fail: the sealed key is bad, not OpenSSL.
		throw Error(ErrorKind::kInvalidInput, "invalid sealed data key", "Its ephemeral public key is not valid.");
	}

	const std::uint8_t *iv = ephemeral_pub + kTransportPublicSize;
	const std::uint8_t *body = iv + 12;
	std::uint8_t tag[16];
	memcpy(tag, body + SecretKey::kSize, sizeof(tag));
	auto aad = AssociatedData(tenant, key_version, ephemeral_pub);
	SecretKey key;
	CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
	int len = 0;
	if (!ctx || EVP_DecryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), kek.data(), iv, nullptr) != 1 ||
	    EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
	    EVP_DecryptUpdate(ctx.get(), key.data(), &len, body, static_cast<int>(SecretKey::kSize)) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, sizeof(tag), tag) != 1)
		Fail("AES-256-GCM opening failed");
	if (EVP_DecryptFinal_ex(ctx.get(), key.data() + SecretKey::kSize, &len) != 1)
		throw Error(ErrorKind::kInvalidInput, "sealed data key does not open",
		            "It was altered, or sealed for another recipient key, tenant or key version.");
	return key;
}

} // namespace tenancy::core
