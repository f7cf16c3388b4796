// extension/pg/export_sha256.cpp
// tenancy._sha256_agg(text): streaming SHA-256 (OpenSSL EVP) of rows in order, the per-table checksum of exports.
#include "tenancy/pg/boundary.hpp"

#include <openssl/evp.h>

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

// Lives in the aggregate's memory context. The EVP context is malloc'd by OpenSSL, so a reset callback of that
// memory context frees it on every path: normal end, error, or cancel.
struct Sha256State {
	EVP_MD_CTX *ctx;
	MemoryContextCallback free_ctx;
};

void
FreeSha256Context(void *arg)
{
	Sha256State *state = static_cast<Sha256State *>(arg);
	EVP_MD_CTX_free(state->ctx);
	state->ctx = NULL;
}

[[noreturn]] void
RaiseOpenSslFailure()
{
	ereport(ERROR, (errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION), errmsg("could not compute SHA-256"),
	                errdetail("OpenSSL's digest functions failed.")));
}

Sha256State *
NewState(MemoryContext aggcontext)
{
	Sha256State *state = static_cast<Sha256State *>(MemoryContextAllocZero(aggcontext, sizeof(Sha256State)));
	state->ctx = EVP_MD_CTX_new();
	if (state->ctx == NULL)
		RaiseOpenSslFailure();
	state->free_ctx.func = FreeSha256Context;
	state->free_ctx.arg = state;
	MemoryContextRegisterResetCallback(aggcontext, &state->free_ctx);
	if (EVP_DigestInit_ex(state->ctx, EVP_sha256(), NULL) != 1)
		RaiseOpenSslFailure();
	return state;
}

} // namespace

} // namespace tenancy::pg

using namespace tenancy;

// Transition: hashes the value and a newline, so ("ab","c") and ("a","bc") differ; NULL values are skipped.
extern "C" Datum
tenancy_sha256_agg_transfn(PG_FUNCTION_ARGS)
{
	MemoryContext aggcontext;
	if (!AggCheckCallContext(fcinfo, &aggcontext))
		elog(ERROR, "tenancy._sha256_agg called in non-aggregate context");
	pg::Sha256State *state =
	    PG_ARGISNULL(0) ? pg::NewState(aggcontext) : reinterpret_cast<pg::Sha256State *>(PG_GETARG_POINTER(0));
	if (!PG_ARGISNULL(1)) {
		text *value = PG_GETARG_TEXT_PP(1);
		if (EVP_DigestUpdate(state->ctx, VARDATA_ANY(value), VARSIZE_ANY_EXHDR(value)) != 1 ||
		    EVP_DigestUpdate(state->ctx, "\n", 1) != 1)
			pg::RaiseOpenSslFailure();
	}
	PG_RETURN_POINTER(state);
}

// Final: lower-case hex digest. Finalises a copy, so the state stays usable (the executor may call it again).
// No rows at all gives the digest of the empty string.
extern "C" Datum
tenancy_sha256_agg_finalfn(PG_FUNCTION_ARGS)
{
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned int length = 0;
	char hex[2 * EVP_MAX_MD_SIZE + 1];
	EVP_MD_CTX *copy = EVP_MD_CTX_new();
	if (copy == NULL)
		pg::RaiseOpenSslFailure();
	int ok;
	if (PG_ARGISNULL(0))
		ok = EVP_DigestInit_ex(copy, EVP_sha256(), NULL) == 1;
	else
		ok = EVP_MD_CTX_copy_ex(copy, reinterpret_cast<pg::Sha256State *>(PG_GETARG_POINTER(0))->ctx) == 1;
	ok = ok && EVP_DigestFinal_ex(copy, digest, &length) == 1;
	EVP_MD_CTX_free(copy); // freed before any ereport below
	if (!ok)
		pg::RaiseOpenSslFailure();
	uint64 n = hex_encode(reinterpret_cast<const char *>(digest), length, hex);
	hex[n] = '\0';
	PG_RETURN_TEXT_P(cstring_to_text(hex));
}
