// extension/pg/crypto_functions.cpp
// SQL entry points of tenant encryption: encrypt/decrypt (text, bytea), reencrypt, key version helpers.
#include "tenancy/core/base64.hpp"
#include "tenancy/core/envelope.hpp"
#include "tenancy/core/error.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/crypto_keys.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_context.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_encrypt);
PG_FUNCTION_INFO_V1(tenancy_decrypt);
PG_FUNCTION_INFO_V1(tenancy_encrypt_bytea);
PG_FUNCTION_INFO_V1(tenancy_decrypt_bytea);
PG_FUNCTION_INFO_V1(tenancy_reencrypt);
PG_FUNCTION_INFO_V1(tenancy_reencrypt_bytea);
PG_FUNCTION_INFO_V1(tenancy_ciphertext_key_version);
PG_FUNCTION_INFO_V1(tenancy_ciphertext_key_version_bytea);
PG_FUNCTION_INFO_V1(tenancy_current_key_version);
}

namespace tenancy::pg::crypto {

namespace {

void
HideStatement(void *)
{
	errhidestmt(true);
}

// The tenant of a call: the first argument when the function has one more argument than its value arguments,
// else the context (TN004 without one). A caller without tenancy_admin may only name its context tenant (42501).
void
ResolveTenant(FunctionCallInfo fcinfo, int value_args, pg_uuid_t *out)
{
	pg_uuid_t context;
	bool explicit_tenant = PG_NARGS() > value_args;
	if (explicit_tenant) {
		*out = *PG_GETARG_UUID_P(0);
		if (CallerIsAdmin())
			return;
		if (CurrentTenantId(&context) && memcmp(context.data, out->data, UUID_LEN) == 0)
			return;
		ereport(ERROR,
		        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied to use the keys of another tenant"),
		         errdetail("Without tenancy_admin, only the tenant of the current context may be named."),
		         errhint("Call tenancy.set_tenant() for that tenant first.")));
	}
	if (!CurrentTenantId(out))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_NO_TENANT_CONTEXT), errmsg("no tenant context"),
		                errhint("Call tenancy.set_tenant() in this transaction, or pass the tenant id.")));
}

[[noreturn]] void
ThrowNotBase64()
{
	throw core::Error(core::ErrorKind::kDecryptionFailed, "could not decrypt value",
	                  "The ciphertext is not the base64 text tenancy.encrypt returns.");
}

// Decoded envelope of a text ciphertext (palloc'd) and its key version. Core regime.
struct Envelope {
	uint8 *data;
	size_t size;
	uint32 version;
};

Envelope
DecodeTextEnvelope(const text *ciphertext)
{
	Envelope env;
	const char *chars = VARDATA_ANY(ciphertext);
	size_t n = VARSIZE_ANY_EXHDR(ciphertext);
	env.data = static_cast<uint8 *>(PallocOrThrow(core::Base64MaxDecodedSize(n) + 1));
	auto size = core::Base64Decode(chars, n, env.data);
	if (!size)
		ThrowNotBase64();
	env.size = *size;
	env.version = core::EnvelopeKeyVersion(env.data, env.size);
	return env;
}

Envelope
ByteaEnvelope(const bytea *ciphertext)
{
	Envelope env;
	env.data = reinterpret_cast<uint8 *>(const_cast<char *>(VARDATA_ANY(ciphertext)));
	env.size = VARSIZE_ANY_EXHDR(ciphertext);
	env.version = core::EnvelopeKeyVersion(env.data, env.size);
	return env;
}

// Seals bytes and returns the envelope as base64 text. Core regime.
text *
SealToText(core::DataKeyCipher *cipher, const uint8 *plaintext, size_t size)
{
	size_t sealed_size = core::SealedSize(size);
	uint8 *sealed = static_cast<uint8 *>(PallocOrThrow(sealed_size));
	cipher->Seal(plaintext, size, sealed);
	size_t chars = core::Base64EncodedSize(sealed_size);
	text *out = static_cast<text *>(PallocOrThrow(VARHDRSZ + chars + 1));
	core::Base64Encode(sealed, sealed_size, VARDATA(out));
	SET_VARSIZE(out, VARHDRSZ + chars);
	pfree(sealed); // cannot fail: a chunk we just allocated
	return out;
}

bytea *
SealToBytea(core::DataKeyCipher *cipher, const uint8 *plaintext, size_t size)
{
	size_t sealed_size = core::SealedSize(size);
	bytea *out = static_cast<bytea *>(PallocOrThrow(VARHDRSZ + sealed_size));
	cipher->Seal(plaintext, size, reinterpret_cast<uint8 *>(VARDATA(out)));
	SET_VARSIZE(out, VARHDRSZ + sealed_size);
	return out;
}

// Opens an envelope into a new varlena (text or bytea share the layout). Core regime.
struct varlena *
OpenToVarlena(core::DataKeyCipher *cipher, const Envelope &env)
{
	size_t size = core::OpenedSize(env.size);
	struct varlena *out = static_cast<struct varlena *>(PallocOrThrow(VARHDRSZ + size));
	cipher->Open(env.data, env.size, reinterpret_cast<uint8 *>(VARDATA(out)));
	SET_VARSIZE(out, VARHDRSZ + size);
	return out;
}

// Decrypted text must be valid in the database encoding (a bytea ciphertext may hold anything): 22021 otherwise.
void
VerifyTextEncoding(const text *value)
{
	pg_verifymbstr(VARDATA(value), VARSIZE(value) - VARHDRSZ, false);
}

// Wipes a plaintext copy that only existed to be re-encrypted.
void
WipeVarlena(struct varlena *value)
{
	explicit_bzero(VARDATA(value), VARSIZE(value) - VARHDRSZ);
}

} // namespace

} // namespace tenancy::pg::crypto

using namespace tenancy;
using namespace tenancy::pg::crypto;
using tenancy::pg::CallCore;

// Every entry point pushes HideStatement first, so no error raised below it (ours, SPI's, the key store's) echoes
// the statement and its plaintext into the server log. Arguments are detoasted before a cipher pointer is taken:
// detoasting may process invalidations, which flush the cache and free ciphers.

// tenancy.encrypt([tenant uuid,] plaintext text) -> text
extern "C" Datum
tenancy_encrypt(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide = {error_context_stack, HideStatement, NULL};
	error_context_stack = &hide;
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 1, &tenant);
	text *plaintext = PG_GETARG_TEXT_PP(PG_NARGS() - 1);
	core::DataKeyCipher *cipher = CurrentKeyCipher(&tenant);
	text *result = CallCore(
	    [&] {
		    return SealToText(cipher, reinterpret_cast<const uint8 *>(VARDATA_ANY(plaintext)),
		                      VARSIZE_ANY_EXHDR(plaintext));
	    },
	    true);
	error_context_stack = hide.previous;
	PG_RETURN_TEXT_P(result);
}

// tenancy.decrypt([tenant uuid,] ciphertext text) -> text
extern "C" Datum
tenancy_decrypt(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide = {error_context_stack, HideStatement, NULL};
	error_context_stack = &hide;
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 1, &tenant);
	text *ciphertext = PG_GETARG_TEXT_PP(PG_NARGS() - 1);
	Envelope env = CallCore([&] { return DecodeTextEnvelope(ciphertext); }, true);
	core::DataKeyCipher *cipher = VersionKeyCipher(&tenant, env.version);
	text *result = reinterpret_cast<text *>(CallCore([&] { return OpenToVarlena(cipher, env); }, true));
	VerifyTextEncoding(result);
	error_context_stack = hide.previous;
	PG_RETURN_TEXT_P(result);
}

// tenancy.encrypt_bytea([tenant uuid,] plaintext bytea) -> bytea
extern "C" Datum
tenancy_encrypt_bytea(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide = {error_context_stack, HideStatement, NULL};
	error_context_stack = &hide;
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 1, &tenant);
	bytea *plaintext = PG_GETARG_BYTEA_PP(PG_NARGS() - 1);
	core::DataKeyCipher *cipher = CurrentKeyCipher(&tenant);
	bytea *result = CallCore(
	    [&] {
		    return SealToBytea(cipher, reinterpret_cast<const uint8 *>(VARDATA_ANY(plaintext)),
		                       VARSIZE_ANY_EXHDR(plaintext));
	    },
	    true);
	error_context_stack = hide.previous;
	PG_RETURN_BYTEA_P(result);
}

// tenancy.decrypt_bytea([tenant uuid,] ciphertext bytea) -> bytea
extern "C" Datum
tenancy_decrypt_bytea(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide = {error_context_stack, HideStatement, NULL};
	error_context_stack = &hide;
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 1, &tenant);
	bytea *ciphertext = PG_GETARG_BYTEA_PP(PG_NARGS() - 1);
	Envelope env = CallCore([&] { return ByteaEnvelope(ciphertext); }, true);
	core::DataKeyCipher *cipher = VersionKeyCipher(&tenant, env.version);
	bytea *result = reinterpret_cast<bytea *>(CallCore([&] { return OpenToVarlena(cipher, env); }, true));
	error_context_stack = hide.previous;
	PG_RETURN_BYTEA_P(result);
}

// tenancy.reencrypt(tenant uuid, ciphertext text) -> text: the value under the tenant's current key. The old
// cipher is used before the current one is looked up (a lookup may flush the cache and free the old one).
extern "C" Datum
tenancy_reencrypt(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide = {error_context_stack, HideStatement, NULL};
	error_context_stack = &hide;
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 1, &tenant);
	text *ciphertext = PG_GETARG_TEXT_PP(1);
	Envelope env = CallCore([&] { return DecodeTextEnvelope(ciphertext); }, true);
	core::DataKeyCipher *old_cipher = VersionKeyCipher(&tenant, env.version);
	struct varlena *plaintext = CallCore([&] { return OpenToVarlena(old_cipher, env); }, true);
	core::DataKeyCipher *cipher = CurrentKeyCipher(&tenant);
	text *result = CallCore(
	    [&] {
		    return SealToText(cipher, reinterpret_cast<const uint8 *>(VARDATA(plaintext)),
		                      VARSIZE(plaintext) - VARHDRSZ);
	    },
	    true);
	WipeVarlena(plaintext);
	error_context_stack = hide.previous;
	PG_RETURN_TEXT_P(result);
}

// tenancy.reencrypt_bytea(tenant uuid, ciphertext bytea) -> bytea
extern "C" Datum
tenancy_reencrypt_bytea(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide = {error_context_stack, HideStatement, NULL};
	error_context_stack = &hide;
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 1, &tenant);
	bytea *ciphertext = PG_GETARG_BYTEA_PP(1);
	Envelope env = CallCore([&] { return ByteaEnvelope(ciphertext); }, true);
	core::DataKeyCipher *old_cipher = VersionKeyCipher(&tenant, env.version);
	struct varlena *plaintext = CallCore([&] { return OpenToVarlena(old_cipher, env); }, true);
	core::DataKeyCipher *cipher = CurrentKeyCipher(&tenant);
	bytea *result = CallCore(
	    [&] {
		    return SealToBytea(cipher, reinterpret_cast<const uint8 *>(VARDATA(plaintext)),
		                       VARSIZE(plaintext) - VARHDRSZ);
	    },
	    true);
	WipeVarlena(plaintext);
	error_context_stack = hide.previous;
	PG_RETURN_BYTEA_P(result);
}

// tenancy.ciphertext_key_version(text) -> int: the key version a ciphertext names (TN006 if it is no envelope).
extern "C" Datum
tenancy_ciphertext_key_version(PG_FUNCTION_ARGS)
{
	text *ciphertext = PG_GETARG_TEXT_PP(0);
	uint32 version = CallCore([&] { return DecodeTextEnvelope(ciphertext).version; }, true);
	PG_RETURN_INT32(static_cast<int32>(version));
}

extern "C" Datum
tenancy_ciphertext_key_version_bytea(PG_FUNCTION_ARGS)
{
	bytea *ciphertext = PG_GETARG_BYTEA_PP(0);
	uint32 version = CallCore([&] { return ByteaEnvelope(ciphertext).version; }, true);
	PG_RETURN_INT32(static_cast<int32>(version));
}

// tenancy.current_key_version(tenant uuid) -> int: NULL when the tenant has no live key (none is created).
extern "C" Datum
tenancy_current_key_version(PG_FUNCTION_ARGS)
{
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 0, &tenant);
	int32 version = CurrentKeyVersion(&tenant);
	if (version == 0)
		PG_RETURN_NULL();
	PG_RETURN_INT32(version);
}
