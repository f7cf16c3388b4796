// extension/pg/export_sha256.cpp
// Incremental SHA-256 (OpenSSL EVP) of export checksums, and tenancy._sha256_agg(text) over it.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/export_sha256.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/memutils.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_sha256_agg_transfn);
PG_FUNCTION_INFO_V1(tenancy_sha256_agg_finalfn);
}

namespace tenancy::pg {

namespace {

void
FreeSha256Context(void *arg)
{
	Sha256 *sha = static_cast<Sha256 *>(arg);
	EVP_MD_CTX_free(sha->ctx);
	sha->ctx = NULL;
}

[[noreturn]] void
RaiseOpenSslFailure()
{
	ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION), errmsg("could not compute SHA-256"),
	                errdetail("OpenSSL's digest functions failed.")));
}

} // namespace

Sha256 *
NewSha256(MemoryContext memory)
{
	Sha256 *sha = static_cast<Sha256 *>(MemoryContextAllocZero(memory, sizeof(Sha256)));
	sha->ctx = EVP_MD_CTX_new();
	if (sha->ctx == NULL)
		RaiseOpenSslFailure();
	sha->free_ctx.func = FreeSha256Context;
	sha->free_ctx.arg = sha;
	MemoryContextRegisterResetCallback(memory, &sha->free_ctx);
	if (EVP_DigestInit_ex(sha->ctx, EVP_sha256(), NULL) != 1)
		RaiseOpenSslFailure();
	return sha;
}

void
UpdateSha256(Sha256 *sha, const char *data, size_t length)
{
	if (EVP_DigestUpdate(sha->ctx, data, length) != 1)
		RaiseOpenSslFailure();
}

void
FinishSha256(const Sha256 *sha, char *hex)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int length = 0;
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	if (copy == NULL)
		RaiseOpenSslFailure();
	bool ok = EVP_MD_CTX_copy_ex(copy, sha->ctx) == 1 && EVP_DigestFinal_ex(copy, digest, &length) == 1;
	EVP_MD_CTX_free(copy); // freed before any ereport below
	if (!ok)
		RaiseOpenSslFailure();
	uint64 n = hex_encode(reinterpret_cast<const char *>(digest), length, hex);
	hex[n] = '\0';
}

} // namespace tenancy::pg

using namespace tenancy;

// Transition: hashes the value and a newline, so ("ab","c") and ("a","bc") differ; NULL values are skipped. The
// state lives in the aggregate's memory context.
extern "C" Datum
tenancy_sha256_agg_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "tenancy._sha256_agg called in non-aggregate context");
	pg::Sha256 *state =
	    PG_ARGISNULL(0) ? pg::NewSha256(aggcontext) : reinterpret_cast<pg::Sha256 *>(PG_GETARG_POINTER(0));
	if (!PG_ARGISNULL(1)) {
		text *value = PG_GETARG_TEXT_PP(1);
		pg::UpdateSha256(state, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value));
		pg::UpdateSha256(state, "\n", 1);
	}
	PG_RETURN_POINTER(state);
}

// Final: lower-case hex digest; the state stays usable (the executor may call it again). No rows at all gives the
// digest of the empty string.
extern "C" Datum
tenancy_sha256_agg_finalfn(PG_FUNCTION_ARGS)
{
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	pg::FinishSha256(PG_ARGISNULL(0) ? pg::NewSha256(CurrentMemoryContext)
	                                 : reinterpret_cast<pg::Sha256 *>(PG_GETARG_POINTER(0)),
	                 hex);
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}
