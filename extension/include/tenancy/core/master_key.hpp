// extension/include/tenancy/core/master_key.hpp
// The master key: loading it from a file or a command, its fingerprint, and wrapping tenant data keys with it.
#pragma once

#include "tenancy/core/cpp_only.hpp"
#include "tenancy/core/envelope.hpp"
#include "tenancy/core/secure_bytes.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace tenancy::core {

// Accepts exactly 32 raw bytes, or 64 hexadecimal characters optionally followed by one newline. source names the
// origin in error messages ("file \"/etc/key\""); errors are Error(kNotSetUp) and never quote the content.
SecretKey ParseMasterKey(const std::uint8_t *data, std::size_t size, const std::string &source);

// Reads a master key file; refuses anything but a regular file without group or other permission bits.
SecretKey LoadMasterKeyFile(const std::string &path);

// Runs command with /bin/sh and parses its standard output; a non-zero exit status is an error.
SecretKey LoadMasterKeyCommand(const std::string &command);

// The key named by the settings (tenancy.master_key_file, tenancy.master_key_command). The file wins when both are set;
// neither set is Error(kNotSetUp).
SecretKey LoadMasterKey(const std::string &file, const std::string &command);

// HMAC-SHA-256 of a fixed label under the key: stored in the database to tell a wrong master key before any data key
// is created with it. It reveals nothing about the key.
std::array<std::uint8_t, 32> MasterKeyFingerprint(const SecretKey &master);

// A fresh random 256-bit data key.
SecretKey GenerateDataKey();

// Wrapped form: format byte, 96-bit nonce, the 32-byte key encrypted with AES-256-GCM under the master key, 128-bit
// tag; associated data binds it to its tenant and version, so a wrapped key copied to another row does not unwrap.
constexpr std::size_t kWrappedKeySize = 1 + 12 + SecretKey::kSize + 16;
std::vector<std::uint8_t> WrapDataKey(const SecretKey &master, const SecretKey &data_key, const TenantId &tenant,
                                      std::uint32_t key_version);

// Throws Error(kNotSetUp) when the master key is wrong or the wrapped key was altered.
SecretKey UnwrapDataKey(const SecretKey &master, const std::uint8_t *wrapped, std::size_t size, const TenantId &tenant,
                        std::uint32_t key_version);

} // namespace tenancy::core
