// extension/include/tenancy/core/key_transport.hpp
// Moving tenant data keys between clusters with different master keys: sealed to an X25519 key of the target.
#pragma once

#include "tenancy/core/cpp_only.hpp"
#include "tenancy/core/envelope.hpp"
#include "tenancy/core/secure_bytes.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tenancy::core {

// The target's recipient key is derived from its master key and a random request nonce (HMAC-SHA-256), so the
// target keeps no state between handing out the public key and opening the sealed keys, and only a cluster holding
// that master key can open them.
constexpr std::size_t kTransportNonceSize = 16;
constexpr std::size_t kTransportPublicSize = 32;
// Sealed key: format byte, ephemeral X25519 public key, 96-bit nonce, the 32-byte data key under AES-256-GCM with a
// key derived by HKDF-SHA-256 from the shared secret, 128-bit tag. Associated data binds tenant and key version.
constexpr std::uint8_t kSealedKeyFormat = 1;
constexpr std::size_t kSealedKeySize = 1 + kTransportPublicSize + 12 + SecretKey::kSize + 16;

std::array<std::uint8_t, kTransportPublicSize> TransportPublicKey(const SecretKey &master, const std::uint8_t *nonce,
                                                                  std::size_t nonce_size);

// Seals a data key for the holder of the recipient public key (the source side of a move).
std::vector<std::uint8_t> SealDataKey(const SecretKey &data_key, const std::uint8_t *recipient_public,
                                      std::size_t recipient_size, const TenantId &tenant, std::uint32_t key_version);

// Opens a sealed key with the recipient key derived from master and nonce (the target side). Throws
// Error(kInvalidInput) when the sealed key was altered, sealed for another key, tenant or version.
SecretKey OpenSealedDataKey(const SecretKey &master, const std::uint8_t *nonce, std::size_t nonce_size,
                            const std::uint8_t *sealed, std::size_t sealed_size, const TenantId &tenant,
                            std::uint32_t key_version);

} // namespace tenancy::core
