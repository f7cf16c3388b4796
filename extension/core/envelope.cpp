// extension/core/envelope.cpp
// AES-256-GCM sealing and opening of tenancy.encrypt envelopes with reusable, pre-keyed EVP contexts.
#include "tenancy/core/envelope.hpp"

#include "tenancy/core/error.hpp"

#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include <climits>
#include <cstring>
#include <pthread.h>

namespace tenancy::core {

namespace {

// Random nonces from OpenSSL's CSPRNG, drawn in batches: with OpenSSL 3.0 one RAND_bytes call costs more than
// sealing a kilobyte (it locks and looks up the DRBG every time), while its cost per byte is small. A batch belongs
// to one process: a fork handler empties the forking thread's batch in the child (every backend is a forked child),
// so two processes never hand out the same bytes. getpid() per value would cost as much as RAND_bytes here.
// Nonces are public, so the batch needs no wiping.
class NonceSource {
  public:
	void
	Next(std::uint8_t *out)
	{
		static const bool fork_handler = pthread_atfork(nullptr, nullptr, &ForgetInChild) == 0;
		if (!fork_handler)
			used_ = sizeof(batch_); // no handler: never reuse a batch
		if (used_ == sizeof(batch_)) {
			if (RAND_bytes(batch_, static_cast<int>(sizeof(batch_))) != 1)
				throw Error(ErrorKind::kCryptoLibrary, "OpenSSL failure: could not generate a nonce");
			used_ = 0;
		}
		std::memcpy(out, batch_ + used_, kEnvelopeNonceSize);
		used_ += kEnvelopeNonceSize;
	}

  private:
	static void ForgetInChild();

	std::uint8_t batch_[kEnvelopeNonceSize * 256];
	std::size_t used_ = sizeof(batch_);
};

thread_local NonceSource nonce_source;

void
NonceSource::ForgetInChild()
{
	nonce_source.used_ = sizeof(nonce_source.batch_);
}

[[noreturn]] void
ThrowLibrary(const char *what)
{
	throw Error(ErrorKind::kCryptoLibrary, std::string("OpenSSL failure: ") + what);
}

[[noreturn]] void
ThrowTampered()
{
	throw Error(ErrorKind::kDecryptionFailed, "could not decrypt value",
	            "The ciphertext was altered, belongs to another tenant, or was not produced by tenancy.encrypt.");
}

void
PutBigEndian32(std::uint8_t *out, std::uint32_t v) noexcept
{
	out[0] = static_cast<std::uint8_t>(v >> 24);
	out[1] = static_cast<std::uint8_t>(v >> 16);
	out[2] = static_cast<std::uint8_t>(v >> 8);
	out[3] = static_cast<std::uint8_t>(v);
}

CipherCtxPtr
NewKeyedContext(const SecretKey &key, bool encrypt)
{
	CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
	if (!ctx)
		throw std::bad_alloc();
	if (EVP_CipherInit_ex2(ctx.get(), EVP_aes_256_gcm(), key.data(), nullptr, encrypt ? 1 : 0, nullptr) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, static_cast<int>(kEnvelopeNonceSize), nullptr) != 1)
		ThrowLibrary("could not initialise AES-256-GCM");
	return ctx;
}

} // namespace

std::uint32_t
EnvelopeKeyVersion(const std::uint8_t *envelope, std::size_t size)
{
	if (size < kEnvelopeOverhead)
		throw Error(ErrorKind::kDecryptionFailed, "could not decrypt value",
		            "The ciphertext is shorter than the smallest tenancy envelope.");
	if (envelope[0] != kEnvelopeFormat)
		throw Error(ErrorKind::kDecryptionFailed, "could not decrypt value",
		            "The ciphertext has an unknown envelope format version.");
	std::uint32_t version = (static_cast<std::uint32_t>(envelope[1]) << 24) |
	                        (static_cast<std::uint32_t>(envelope[2]) << 16) |
	                        (static_cast<std::uint32_t>(envelope[3]) << 8) | envelope[4];
	if (version == 0 || version > static_cast<std::uint32_t>(INT_MAX))
		throw Error(ErrorKind::kDecryptionFailed, "could not decrypt value",
		            "The ciphertext names an invalid key version.");
	return version;
}

DataKeyCipher::DataKeyCipher(const SecretKey &key, const TenantId &tenant, std::uint32_t key_version)
    : encrypt_(NewKeyedContext(key, true)), decrypt_(NewKeyedContext(key, false)), tenant_(tenant),
      key_version_(key_version)
{
}

std::array<std::uint8_t, kEnvelopeHeaderSize + 16>
DataKeyCipher::AssociatedData(std::uint32_t key_version) const noexcept
{
	std::array<std::uint8_t, kEnvelopeHeaderSize + 16> aad{};
	std::memcpy(aad.data(), tenant_.data(), tenant_.size());
	aad[16] = kEnvelopeFormat;
	PutBigEndian32(aad.data() + 17, key_version);
	return aad;
}

void
DataKeyCipher::Seal(const std::uint8_t *plaintext, std::size_t size, std::uint8_t *out)
{
	if (size > static_cast<std::size_t>(INT_MAX) - kEnvelopeOverhead)
		throw Error(ErrorKind::kInvalidInput, "value too large to encrypt");
	EVP_CIPHER_CTX *ctx = encrypt_.get();
	std::uint8_t *nonce = out + kEnvelopeHeaderSize;
	std::uint8_t *body = nonce + kEnvelopeNonceSize;
	out[0] = kEnvelopeFormat;
	PutBigEndian32(out + 1, key_version_);
	nonce_source.Next(nonce);

	auto aad = AssociatedData(key_version_);
	int len = 0;
	int final_len = 0;
	// A NULL key keeps the schedule already in the context; only the nonce changes per value.
	if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, nullptr, nonce) != 1 ||
	    EVP_EncryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
	    (size > 0 && EVP_EncryptUpdate(ctx, body, &len, plaintext, static_cast<int>(size)) != 1) ||
	    EVP_EncryptFinal_ex(ctx, body + size, &final_len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, static_cast<int>(kEnvelopeTagSize), body + size) != 1)
		ThrowLibrary("AES-256-GCM encryption failed");
}

void
DataKeyCipher::Open(const std::uint8_t *envelope, std::size_t size, std::uint8_t *out)
{
	std::uint32_t version = EnvelopeKeyVersion(envelope, size);
	if (version != key_version_)
		ThrowTampered();
	std::size_t body_size = OpenedSize(size);
	const std::uint8_t *nonce = envelope + kEnvelopeHeaderSize;
	// The tag is copied because SET_TAG takes a non-const pointer.
	std::uint8_t tag[kEnvelopeTagSize];
	std::memcpy(tag, nonce + kEnvelopeNonceSize + body_size, kEnvelopeTagSize);
	Decrypt(nonce, nonce + kEnvelopeNonceSize, body_size, tag, out);
}

std::size_t
DataKeyCipher::OpenInPlace(std::uint8_t *envelope, std::size_t size)
{
	std::uint32_t version = EnvelopeKeyVersion(envelope, size);
	if (version != key_version_)
		ThrowTampered();
	std::size_t body_size = OpenedSize(size);
	// Nonce and tag are saved before the body moves over them to the front, where it is decrypted in place
	// (EVP allows in == out, not a partial overlap).
	std::uint8_t nonce[kEnvelopeNonceSize];
	std::uint8_t tag[kEnvelopeTagSize];
	std::memcpy(nonce, envelope + kEnvelopeHeaderSize, kEnvelopeNonceSize);
	std::memcpy(tag, envelope + kEnvelopeHeaderSize + kEnvelopeNonceSize + body_size, kEnvelopeTagSize);
	std::memmove(envelope, envelope + kEnvelopeHeaderSize + kEnvelopeNonceSize, body_size);
	Decrypt(nonce, envelope, body_size, tag, envelope);
	return body_size;
}

void
DataKeyCipher::Decrypt(const std::uint8_t *nonce, const std::uint8_t *body, std::size_t body_size, std::uint8_t *tag,
                       std::uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = decrypt_.get();
	auto aad = AssociatedData(key_version_);
	int len = 0;
	int final_len = 0;
	// Nonce and tag in one parameter call. OpenSSL 3.0 asks the provider for the IV length through OSSL_PARAMs on
	// every EVP_DecryptInit_ex given an IV (3.1 caches it) and runs SET_TAG through a second round of them. The GCM
	// provider's "tlsivfixed" parameter of length -1 sets the whole IV (of the length set at keying) and starts a new
	// message exactly as an init with an IV does; the key schedule stays.
	OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, kEnvelopeTagSize),
	                       OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TLS1_IV_FIXED,
	                                                         const_cast<std::uint8_t *>(nonce),
	                                                         static_cast<std::size_t>(-1)),
	                       OSSL_PARAM_construct_end()};
	if (EVP_CIPHER_CTX_set_params(ctx, params) != 1 ||
	    EVP_DecryptUpdate(ctx, nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
	    (body_size > 0 && EVP_DecryptUpdate(ctx, out, &len, body, static_cast<int>(body_size)) != 1))
		ThrowLibrary("AES-256-GCM decryption failed");
	if (EVP_DecryptFinal_ex(ctx, out + body_size, &final_len) != 1) {
		// Unauthenticated plaintext must never survive: wipe what DecryptUpdate wrote.
		OPENSSL_cleanse(out, body_size);
		ThrowTampered();
	}
}

} // namespace tenancy::core
