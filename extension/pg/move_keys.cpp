// extension/pg/move_keys.cpp
// SQL entry points of the key hand-over of a live tenant move: recipient key, seal (source), open and re-wrap (target).
#include "tenancy/core/key_transport.hpp"
#include "tenancy/core/master_key.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/crypto_keys.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(tenancy_move_transport_key);
PG_FUNCTION_INFO_V1(tenancy_move_seal_key);
PG_FUNCTION_INFO_V1(tenancy_move_open_key);
PG_FUNCTION_INFO_V1(tenancy_move_master_fingerprint);
}

using namespace tenancy;
using namespace tenancy::pg;

namespace {

// A bytea of the given bytes; PallocOrThrow, so it may run inside CallCore.
bytea *
ByteaOf(const uint8 *data, size_t size)
{
	bytea *out = static_cast<bytea *>(PallocOrThrow(VARHDRSZ + size));
	SET_VARSIZE(out, VARHDRSZ + size);
	memcpy(VARDATA(out), data, size);
	return out;
}

core::TenantId
TenantIdOf(const pg_uuid_t *tenant)
{
	core::TenantId id;
	memcpy(id.data(), tenant->data, UUID_LEN);
	return id;
}

core::SecretKey
MasterKey()
{
	return core::LoadMasterKey(crypto::master_key_file ? crypto::master_key_file : "",
	                           crypto::master_key_command ? crypto::master_key_command : "");
}

const uint8 *
Bytes(bytea *b)
{
	return reinterpret_cast<const uint8 *>(VARDATA_ANY(b));
}

} // namespace

// tenancy._move_transport_key(nonce bytea) -> bytea: the X25519 public key, derived from this cluster's master key
// and the nonce, to which the source seals the tenant's data keys.
extern "C" Datum
tenancy_move_transport_key(PG_FUNCTION_ARGS)
{
	bytea *nonce = PG_GETARG_BYTEA_PP(0);
	bytea *out = CallCore(
	    [&]() -> bytea * {
		    auto pub = core::TransportPublicKey(MasterKey(), Bytes(nonce), VARSIZE_ANY_EXHDR(nonce));
		    return ByteaOf(pub.data(), pub.size());
	    },
	    true);
	PG_RETURN_BYTEA_P(out);
}

// tenancy._move_seal_key(tenant uuid, version int, wrapped bytea, recipient bytea) -> bytea: unwraps a data key
// with this cluster's master key and seals it to the recipient; the plain key never leaves this function.
extern "C" Datum
tenancy_move_seal_key(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	int32 version = PG_GETARG_INT32(1);
	bytea *wrapped = PG_GETARG_BYTEA_PP(2);
	bytea *recipient = PG_GETARG_BYTEA_PP(3);
	bytea *out = CallCore(
	    [&]() -> bytea * {
		    core::TenantId id = TenantIdOf(tenant);
		    core::SecretKey data_key = core::UnwrapDataKey(MasterKey(), Bytes(wrapped), VARSIZE_ANY_EXHDR(wrapped), id,
		                                                   static_cast<uint32>(version));
		    auto sealed = core::SealDataKey(data_key, Bytes(recipient), VARSIZE_ANY_EXHDR(recipient), id,
		                                    static_cast<uint32>(version));
		    return ByteaOf(sealed.data(), sealed.size());
	    },
	    true);
	PG_RETURN_BYTEA_P(out);
}

// tenancy._move_open_key(tenant uuid, version int, sealed bytea, nonce bytea) -> bytea: opens a sealed key with the
// recipient key of nonce and wraps it under this cluster's master key (the tenancy.tenant_keys form).
extern "C" Datum
tenancy_move_open_key(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	int32 version = PG_GETARG_INT32(1);
	bytea *sealed = PG_GETARG_BYTEA_PP(2);
	bytea *nonce = PG_GETARG_BYTEA_PP(3);
	bytea *out = CallCore(
	    [&]() -> bytea * {
		    core::TenantId id = TenantIdOf(tenant);
		    core::SecretKey master = MasterKey();
		    core::SecretKey data_key =
		        core::OpenSealedDataKey(master, Bytes(nonce), VARSIZE_ANY_EXHDR(nonce), Bytes(sealed),
		                                VARSIZE_ANY_EXHDR(sealed), id, static_cast<uint32>(version));
		    auto wrapped = core::WrapDataKey(master, data_key, id, static_cast<uint32>(version));
		    return ByteaOf(wrapped.data(), wrapped.size());
	    },
	    true);
	PG_RETURN_BYTEA_P(out);
}

// tenancy._move_master_fingerprint() -> bytea: the fingerprint of this cluster's master key, to check it against
// tenancy.master_key_fingerprint before keys are wrapped with it.
extern "C" Datum
tenancy_move_master_fingerprint(PG_FUNCTION_ARGS)
{
	bytea *out = CallCore(
	    [&]() -> bytea * {
		    auto fp = core::MasterKeyFingerprint(MasterKey());
		    return ByteaOf(fp.data(), fp.size());
	    },
	    true);
	PG_RETURN_BYTEA_P(out);
}
