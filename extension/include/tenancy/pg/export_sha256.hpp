// extension/include/tenancy/pg/export_sha256.hpp
// Incremental SHA-256 (OpenSSL EVP) of export checksums, its context freed with a PostgreSQL memory context. PG regime.
#pragma once

#include <openssl/evp.h>

extern "C" {
#include "postgres.h"
}

namespace tenancy::pg {

// The EVP context is malloc'd by OpenSSL: a reset callback of the memory context holding this frees it on every
// path (normal end, error, cancel).
struct Sha256 {
	EVP_MD_CTX *ctx;
	MemoryContextCallback free_ctx;
};

// A started SHA-256 in memory, freed when memory is reset or deleted.
Sha256 *NewSha256(MemoryContext memory);
void UpdateSha256(Sha256 *sha, const char *data, size_t length);
// The lower-case hex digest into hex (65 bytes). Finalises a copy, so sha stays usable.
void FinishSha256(const Sha256 *sha, char *hex);

} // namespace tenancy::pg
