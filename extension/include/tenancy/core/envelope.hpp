// extension/include/tenancy/core/envelope.hpp
// The ciphertext envelope of tenancy.encrypt: AES-256-GCM under a tenant's data key, bound to tenant and key version.
#pragma once

#include "tenancy/core/cpp_only.hpp"
#include "tenancy/core/secure_bytes.hpp"

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>

namespace tenancy::core {

using TenantId = std::array<std::uint8_t, 16>;

// Layout (all sizes in bytes):
//   [0]      format version, kEnvelopeFormat
//   [1..4]   key version, unsigned big-endian, >= 1
//   [5..16]  96-bit random nonce
//   [17..]   ciphertext, as long as the plaintext
//   [-16..]  128-bit GCM tag
// Associated data: the 16-byte tenant id followed by bytes [0..4], so a ciphertext moved to another tenant, or its
// header altered, fails authentication.
constexpr std::uint8_t kEnvelopeFormat = 1;
constexpr std::size_t kEnvelopeHeaderSize = 5;
constexpr std::size_t kEnvelopeNonceSize = 12;
constexpr std::size_t kEnvelopeTagSize = 16;
constexpr std::size_t kEnvelopeOverhead = kEnvelopeHeaderSize + kEnvelopeNonceSize + kEnvelopeTagSize;

constexpr std::size_t
SealedSize(std::size_t plaintext_size)
{
	return plaintext_size + kEnvelopeOverhead;
}

// Reads the key version of an envelope; throws Error(kDecryptionFailed) when it is too short or of an unknown format.
std::uint32_t EnvelopeKeyVersion(const std::uint8_t *envelope, std::size_t size);

// Size of the plaintext inside a well-formed envelope (EnvelopeKeyVersion has accepted it).
constexpr std::size_t
OpenedSize(std::size_t envelope_size)
{
	return envelope_size - kEnvelopeOverhead;
}

struct CipherCtxFree {
	void
	operator()(EVP_CIPHER_CTX *ctx) const noexcept
	{
		EVP_CIPHER_CTX_free(ctx); // also cleanses the expanded key schedule
	}
};
using CipherCtxPtr = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;

// One tenant data key, keyed into an encrypting and a decrypting EVP context once; each value then only sets a new
// nonce, so the key schedule is never recomputed on the hot path. The raw key is not kept.
class DataKeyCipher {
  public:
	DataKeyCipher(const SecretKey &key, const TenantId &tenant, std::uint32_t key_version);

	std::uint32_t
	key_version() const noexcept
	{
		return key_version_;
	}
	const TenantId &
	tenant() const noexcept
	{
		return tenant_;
	}

	// Writes SealedSize(size) bytes to out, with a fresh random nonce.
	void Seal(const std::uint8_t *plaintext, std::size_t size, std::uint8_t *out);

	// Authenticates and decrypts a whole envelope of this key's version into out (OpenedSize(size) bytes). Throws
	// Error(kDecryptionFailed) on any altered byte, wiping whatever was written to out.
	void Open(const std::uint8_t *envelope, std::size_t size, std::uint8_t *out);

	// The same in place: the plaintext replaces the envelope's first OpenedSize(size) bytes; returns that size.
	// Throws like Open, with the buffer wiped of any unauthenticated plaintext.
	std::size_t OpenInPlace(std::uint8_t *envelope, std::size_t size);

  private:
	void Decrypt(const std::uint8_t *nonce, const std::uint8_t *body, std::size_t body_size, std::uint8_t *tag,
	             std::uint8_t *out);
	std::array<std::uint8_t, kEnvelopeHeaderSize + 16> AssociatedData(std::uint32_t key_version) const noexcept;

	CipherCtxPtr encrypt_;
	CipherCtxPtr decrypt_;
	TenantId tenant_;
	std::uint32_t key_version_;
};

} // namespace tenancy::core
