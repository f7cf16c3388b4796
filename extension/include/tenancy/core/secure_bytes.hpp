// extension/include/tenancy/core/secure_bytes.hpp
// Byte buffers for key material that are wiped with OPENSSL_cleanse whenever they die, on every path.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <openssl/crypto.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tenancy::core {

// A 256-bit key (master key or tenant data key). Not copyable, so a key never lingers in a forgotten copy.
class SecretKey {
  public:
	static constexpr std::size_t kSize = 32;

	SecretKey() = default;
	SecretKey(const SecretKey &) = delete;
	SecretKey &operator=(const SecretKey &) = delete;
	SecretKey(SecretKey &&other) noexcept : bytes_(other.bytes_)
	{
		OPENSSL_cleanse(other.bytes_.data(), kSize);
	}
	SecretKey &
	operator=(SecretKey &&other) noexcept
	{
		bytes_ = other.bytes_;
		OPENSSL_cleanse(other.bytes_.data(), kSize);
		return *this;
	}
	~SecretKey()
	{
		OPENSSL_cleanse(bytes_.data(), kSize);
	}

	std::uint8_t *
	data() noexcept
	{
		return bytes_.data();
	}
	const std::uint8_t *
	data() const noexcept
	{
		return bytes_.data();
	}

  private:
	std::array<std::uint8_t, kSize> bytes_{};
};

// A variable-length buffer of secret bytes (a key file's content, a decrypted Fernet plaintext): wiped on
// destruction. Growth never happens behind our back: callers size it once.
class SecureBytes {
  public:
	SecureBytes() = default;
	explicit SecureBytes(std::size_t size) : bytes_(size) {}
	SecureBytes(const SecureBytes &) = delete;
	SecureBytes &operator=(const SecureBytes &) = delete;
	SecureBytes(SecureBytes &&) noexcept = default;
	SecureBytes &
	operator=(SecureBytes &&other) noexcept
	{
		Wipe();
		bytes_ = std::move(other.bytes_);
		return *this;
	}
	~SecureBytes()
	{
		Wipe();
	}

	// Shrinks the logical size after the fact (the memory is wiped when the buffer dies, whatever its size).
	void
	Truncate(std::size_t size) noexcept
	{
		if (size < bytes_.size()) {
			OPENSSL_cleanse(bytes_.data() + size, bytes_.size() - size);
			bytes_.resize(size);
		}
	}
	std::uint8_t *
	data() noexcept
	{
		return bytes_.data();
	}
	const std::uint8_t *
	data() const noexcept
	{
		return bytes_.data();
	}
	std::size_t
	size() const noexcept
	{
		return bytes_.size();
	}

  private:
	void
	Wipe() noexcept
	{
		if (bytes_.capacity() > 0)
			OPENSSL_cleanse(bytes_.data(), bytes_.capacity());
	}
	std::vector<std::uint8_t> bytes_;
};

} // namespace tenancy::core
