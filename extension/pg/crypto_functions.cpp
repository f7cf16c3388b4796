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

} // namespace

void
PushHideStatement(ErrorContextCallback *callback)
{
	callback->previous = error_context_stack;
	callback->callback = HideStatement;
	callback->arg = NULL;
	error_context_stack = callback;
}

void
PopHideStatement(ErrorContextCallback *callback)
{
	error_context_stack = callback->previous;
}

namespace {

// The tenant of a call: the first argument when the function has one more argument than its value arguments,
// else the context (TN004 without one). A caller without tenancy_admin may only name its context tenant, or a
// descendant of it while a table is isolated with include_descendants (crypto_scope.cpp); 42501 otherwise.
void
ResolveTenant(FunctionCallInfo fcinfo, int value_args, pg_uuid_t *out)
{
	pg_uuid_t context;
	bool explicit_tenant = PG_NARGS() > value_args;
	if (explicit_tenant) {
		*out = *PG_GETARG_UUID_P(0);
		if (CallerIsAdmin())
			return;
		if (CurrentTenantId(&context) &&
		    (memcmp(context.data, out->data, UUID_LEN) == 0 || DescendantKeysUsable(&context, out)))
			return;
		ereport(ERROR,
		        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied to use the keys of another tenant"),
		         errdetail("Without tenancy_admin, only the tenant of the current context may be named, or one of "
		                   "its descendants while a table is isolated with include_descendants."),
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

// A ciphertext envelope and its key version. Core regime. A text ciphertext is decoded straight into the data of
// the varlena that its plaintext will be returned in (result), and opened there in place: one allocation, no copy.
struct Envelope {
	uint8 *data;
	size_t size;
	uint32 version;
	struct varlena *result; // NULL when data is the caller's bytea argument
};

Envelope
DecodeTextEnvelope(const text *ciphertext)
{
	Envelope env;
	const char *chars = VARDATA_ANY(ciphertext);
	size_t n = VARSIZE_ANY_EXHDR(ciphertext);
	// The text usually comes straight from a shared buffer that is not in the CPU cache: ask for all of its lines
	// at once rather than one stall after another as the decoder walks through it.
	for (size_t offset = 0; offset < n && offset < 16384; offset += 64)
		__builtin_prefetch(chars + offset);
	env.result = static_cast<struct varlena *>(PallocOrThrow(VARHDRSZ + core::Base64MaxDecodedSize(n)));
	env.data = reinterpret_cast<uint8 *>(VARDATA(env.result));
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
	env.result = NULL;
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

// Opens an envelope into a varlena (text or bytea share the layout): in place when it was decoded into one, else
// into a new one. Core regime.
struct varlena *
OpenToVarlena(core::DataKeyCipher *cipher, const Envelope &env)
{
	if (env.result != NULL) {
		size_t size = cipher->OpenInPlace(env.data, env.size);
		SET_VARSIZE(env.result, VARHDRSZ + size);
		return env.result;
	}
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

namespace {

// The text and bytea forms differ only in the ciphertext's form (base64 text or the binary envelope) and in the
// encoding check of decrypted text. Every entry point pushes the statement hider first, so no error raised below it
// (ours, SPI's, the key store's) echoes the statement and its plaintext into the server log. Arguments are detoasted
// before a cipher pointer is taken: detoasting may process invalidations, which flush the cache and free ciphers.

// Seals bytes under the tenant's current key into a ciphertext of the given form.
struct varlena *
SealValue(const pg_uuid_t *tenant, const char *plaintext, size_t size, bool as_text)
{
	core::DataKeyCipher *cipher = CurrentKeyCipher(tenant);
	const uint8 *bytes = reinterpret_cast<const uint8 *>(plaintext);
	return CallCore([&] { return as_text ? SealToText(cipher, bytes, size) : SealToBytea(cipher, bytes, size); }, true);
}

// Opens a ciphertext of the given form with the key version it names.
struct varlena *
OpenValue(const pg_uuid_t *tenant, const struct varlena *ciphertext, bool as_text)
{
	Envelope env = CallCore([&] { return as_text ? DecodeTextEnvelope(ciphertext) : ByteaEnvelope(ciphertext); }, true);
	core::DataKeyCipher *cipher = VersionKeyCipher(tenant, env.version);
	return CallCore([&] { return OpenToVarlena(cipher, env); }, true);
}

// encrypt([tenant uuid,] plaintext)
Datum
Encrypt(FunctionCallInfo fcinfo, bool as_text)
{
	ErrorContextCallback hide;
	PushHideStatement(&hide);
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 1, &tenant);
	struct varlena *plaintext = PG_GETARG_VARLENA_PP(PG_NARGS() - 1);
	struct varlena *result = SealValue(&tenant, VARDATA_ANY(plaintext), VARSIZE_ANY_EXHDR(plaintext), as_text);
	PopHideStatement(&hide);
	PG_RETURN_POINTER(result);
}

// decrypt([tenant uuid,] ciphertext)
Datum
Decrypt(FunctionCallInfo fcinfo, bool as_text)
{
	ErrorContextCallback hide;
	PushHideStatement(&hide);
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 1, &tenant);
	struct varlena *result = OpenValue(&tenant, PG_GETARG_VARLENA_PP(PG_NARGS() - 1), as_text);
	if (as_text)
		VerifyTextEncoding(result);
	PopHideStatement(&hide);
	PG_RETURN_POINTER(result);
}

// reencrypt(tenant uuid, ciphertext): the value under the tenant's current key. The old cipher is used before the
// current one is looked up (a lookup may flush the cache and free the old one).
Datum
Reencrypt(FunctionCallInfo fcinfo, bool as_text)
{
	ErrorContextCallback hide;
	PushHideStatement(&hide);
	pg_uuid_t tenant;
	ResolveTenant(fcinfo, 1, &tenant);
	struct varlena *plaintext = OpenValue(&tenant, PG_GETARG_VARLENA_PP(1), as_text);
	struct varlena *result = SealValue(&tenant, VARDATA(plaintext), VARSIZE(plaintext) - VARHDRSZ, as_text);
	WipeVarlena(plaintext);
	PopHideStatement(&hide);
	PG_RETURN_POINTER(result);
}

} // namespace

// tenancy.encrypt([tenant uuid,] plaintext text) -> text
extern "C" Datum
tenancy_encrypt(PG_FUNCTION_ARGS)
{
	return Encrypt(fcinfo, true);
}

// tenancy.decrypt([tenant uuid,] ciphertext text) -> text
extern "C" Datum
tenancy_decrypt(PG_FUNCTION_ARGS)
{
	return Decrypt(fcinfo, true);
}

// tenancy.encrypt_bytea([tenant uuid,] plaintext bytea) -> bytea
extern "C" Datum
tenancy_encrypt_bytea(PG_FUNCTION_ARGS)
{
	return Encrypt(fcinfo, false);
}

// tenancy.decrypt_bytea([tenant uuid,] ciphertext bytea) -> bytea
extern "C" Datum
tenancy_decrypt_bytea(PG_FUNCTION_ARGS)
{
	return Decrypt(fcinfo, false);
}

// tenancy.reencrypt(tenant uuid, ciphertext text) -> text
extern "C" Datum
tenancy_reencrypt(PG_FUNCTION_ARGS)
{
	return Reencrypt(fcinfo, true);
}

// tenancy.reencrypt_bytea(tenant uuid, ciphertext bytea) -> bytea
extern "C" Datum
tenancy_reencrypt_bytea(PG_FUNCTION_ARGS)
{
	return Reencrypt(fcinfo, false);
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
