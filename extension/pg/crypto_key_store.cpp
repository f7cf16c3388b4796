// extension/pg/crypto_key_store.cpp
// tenancy.tenant_keys through SPI, as the extension owner: fetch, create/rotate, destroy and rewrap data keys.
#include "tenancy/core/master_key.hpp"
#include "tenancy/pg/audit.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/crypto_keys.hpp"
#include "tenancy/pg/privilege.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "access/parallel.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/uuid.h"
}

namespace tenancy::pg::crypto {

namespace {

core::TenantId
ToTenantId(const pg_uuid_t *tenant)
{
	core::TenantId id;
	memcpy(id.data(), tenant->data, UUID_LEN);
	return id;
}

// A bytea copy of bytes, palloc'd with PallocOrThrow so it is safe inside CallCore.
bytea *
ByteaOf(const uint8 *data, size_t size)
{
	bytea *out = static_cast<bytea *>(PallocOrThrow(VARHDRSZ + size));
	SET_VARSIZE(out, VARHDRSZ + size);
	memcpy(VARDATA(out), data, size);
	return out;
}

Jsonb *
JsonbOf(const char *json)
{
	return DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json)));
}

// The column of row 0 of SPI_tuptable, or NULL; bytea values are copied into context (outside SPI's memory).
bytea *
CopyByteaColumn(int column, MemoryContext context)
{
	bool isnull;
	Datum value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, column, &isnull);
	if (isnull)
		return NULL;
	MemoryContext old = MemoryContextSwitchTo(context);
	bytea *copy = DatumGetByteaPCopy(value);
	MemoryContextSwitchTo(old);
	return copy;
}

int32
Int32Column(int row, int column)
{
	bool isnull;
	Datum value = SPI_getbinval(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, column, &isnull);
	return isnull ? 0 : DatumGetInt32(value);
}

bytea *
FetchFingerprint(MemoryContext context)
{
	if (SPI_execute("SELECT fingerprint FROM tenancy.master_key_fingerprint", true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read tenancy.master_key_fingerprint");
	return SPI_processed > 0 ? CopyByteaColumn(1, context) : NULL;
}

struct FetchArgs {
	const pg_uuid_t *tenant;
	int32 version;
	bool fresh_snapshot;
	StoredKey *out;
	MemoryContext context;
};

void
FetchAsOwner(void *p)
{
	FetchArgs *args = static_cast<FetchArgs *>(p);
	Oid types[2] = {UUIDOID, INT4OID};
	Datum values[2] = {UUIDPGetDatum(args->tenant), Int32GetDatum(args->version)};
	SPI_connect();
	int rc = SPI_execute_with_args(
	    args->version == 0 ? "SELECT version, wrapped_key FROM tenancy.tenant_keys "
	                         "WHERE tenant_id OPERATOR(pg_catalog.=) $1 ORDER BY version DESC LIMIT 1"
	                       : "SELECT version, wrapped_key FROM tenancy.tenant_keys "
	                         "WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND version OPERATOR(pg_catalog.=) $2",
	    2, types, values, NULL, !args->fresh_snapshot, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read tenancy.tenant_keys");
	StoredKey *out = args->out;
	out->found = SPI_processed > 0;
	if (out->found) {
		out->version = Int32Column(0, 1);
		out->wrapped = CopyByteaColumn(2, args->context);
		out->destroyed = out->wrapped == NULL;
		out->fingerprint = FetchFingerprint(args->context);
	}
	SPI_finish();
}

// What CallCore hands back from key generation: plain pointers to palloc'd bytes.
struct NewKeyMaterial {
	bool master_unavailable; // only for KeyCreation::kNewTenant
	char reason[512];
	bytea *wrapped;
	bytea *fingerprint_to_store; // NULL when one is stored already
};

// Loads the master key, checks it against the stored fingerprint, generates and wraps a data key. The master key
// and the data key die (wiped) inside this call.
NewKeyMaterial
GenerateWrappedKey(const pg_uuid_t *tenant, int32 version, bytea *stored_fingerprint, bool tolerate_no_master)
{
	const char *file = master_key_file ? master_key_file : "";
	const char *command = master_key_command ? master_key_command : "";
	return CallCore(
	    [&] {
		    NewKeyMaterial result;
		    memset(&result, 0, sizeof(result));
		    try {
			    core::SecretKey master = core::LoadMasterKey(file, command);
			    auto fp = core::MasterKeyFingerprint(master);
			    if (stored_fingerprint != NULL && (VARSIZE_ANY_EXHDR(stored_fingerprint) != fp.size() ||
			                                       memcmp(VARDATA_ANY(stored_fingerprint), fp.data(), fp.size()) != 0))
				    throw core::Error(core::ErrorKind::kNotSetUp,
				                      "the configured master key is not the one that wrapped the tenant keys",
				                      "Its fingerprint differs from the one stored when the first key was created; "
				                      "no key was created.",
				                      "Restore the right key in tenancy.master_key_file, or run "
				                      "tenancy.rewrap_keys() with the old key in tenancy.previous_master_key_file.");
			    core::SecretKey data_key = core::GenerateDataKey();
			    auto wrapped = core::WrapDataKey(master, data_key, ToTenantId(tenant), static_cast<uint32>(version));
			    result.wrapped = ByteaOf(wrapped.data(), wrapped.size());
			    if (stored_fingerprint == NULL)
				    result.fingerprint_to_store = ByteaOf(fp.data(), fp.size());
		    } catch (const core::Error &e) {
			    if (!tolerate_no_master || e.kind() != core::ErrorKind::kNotSetUp)
				    throw;
			    result.master_unavailable = true;
			    strlcpy(result.reason, e.what(), sizeof(result.reason));
		    }
		    return result;
	    },
	    true);
}

struct CreateArgs {
	const pg_uuid_t *tenant;
	KeyCreation how;
	int32 version;    // out
	int32 previous;   // out: newest version before, 0 when none
	bool created;     // out
	char reason[512]; // out: why no key was made (kNewTenant without a master key)
	MemoryContext context;
};

void
ExecOrFail(const char *sql, int nargs, Oid *types, Datum *values, int expected)
{
	int rc = SPI_execute_with_args(sql, nargs, types, values, NULL, false, 0);
	if (rc != expected)
		elog(ERROR, "SPI failed (%d) on: %s", rc, sql);
}

void
CreateAsOwner(void *p)
{
	CreateArgs *args = static_cast<CreateArgs *>(p);
	Oid types[3] = {UUIDOID, INT4OID, BYTEAOID};
	Datum values[3] = {UUIDPGetDatum(args->tenant), 0, 0};
	SPI_connect();

	if (args->how != KeyCreation::kNewTenant) {
		// The registry row lock serialises key creation and rotation of one tenant.
		ExecOrFail("SELECT 1 FROM tenancy.tenants WHERE id OPERATOR(pg_catalog.=) $1 FOR NO KEY UPDATE", 1, types,
		           values, SPI_OK_SELECT);
		if (SPI_processed == 0) {
			char *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(args->tenant)));
			ereport(ERROR, (errcode(TENANCY_ERRCODE_TENANT_NOT_FOUND), errmsg("tenant \"%s\" does not exist", id),
			                errhidestmt(true)));
		}
	}
	ExecOrFail("SELECT version, wrapped_key IS NULL FROM tenancy.tenant_keys WHERE tenant_id OPERATOR(pg_catalog.=) $1 "
	           "ORDER BY version DESC LIMIT 1",
	           1, types, values, SPI_OK_SELECT);
	if (SPI_processed > 0) {
		args->previous = Int32Column(0, 1);
		bool isnull;
		bool destroyed = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (args->how != KeyCreation::kRotate) {
			// Someone created it meanwhile (on demand), or a restored row already has one.
			if (destroyed && args->how == KeyCreation::kNewTenant) {
				strlcpy(args->reason, "its keys were destroyed", sizeof(args->reason));
				args->version = 0;
				SPI_finish();
				return;
			}
			if (destroyed)
				ereport(ERROR,
				        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				         errmsg("the data keys of this tenant were destroyed"),
				         errhint("tenancy.rotate_tenant_key() creates a new key for new values."), errhidestmt(true)));
			args->version = args->previous;
			SPI_finish();
			return;
		}
	}
	// Versions are numbered from 1 and never removed (a destroyed one keeps its row), so the newest is the count.
	if (args->how == KeyCreation::kRotate && args->previous >= max_key_versions) {
		char *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(args->tenant)));
		ereport(ERROR, (errcode(TENANCY_ERRCODE_QUOTA_EXCEEDED),
		                errmsg("tenant \"%s\" already has %d data-key versions, the most allowed", id, args->previous),
		                errhint("Raise tenancy.max_key_versions_per_tenant to rotate further."), errhidestmt(true)));
	}
	if (IsInParallelMode())
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("cannot create a tenant data key during a parallel operation"),
		                errhint("Call tenancy.rotate_tenant_key() for the tenant once, outside the parallel query."),
		                errhidestmt(true)));
	args->version = args->previous + 1;

	bytea *fingerprint = FetchFingerprint(args->context);
	NewKeyMaterial material =
	    GenerateWrappedKey(args->tenant, args->version, fingerprint, args->how == KeyCreation::kNewTenant);
	if (material.master_unavailable) {
		strlcpy(args->reason, material.reason, sizeof(args->reason));
		args->version = 0;
		SPI_finish();
		return;
	}
	values[1] = Int32GetDatum(args->version);
	values[2] = PointerGetDatum(material.wrapped);
	ExecOrFail("INSERT INTO tenancy.tenant_keys (tenant_id, version, wrapped_key) VALUES ($1, $2, $3)", 3, types,
	           values, SPI_OK_INSERT);
	if (material.fingerprint_to_store != NULL) {
		Datum fp = PointerGetDatum(material.fingerprint_to_store);
		Oid fp_type = BYTEAOID;
		ExecOrFail("INSERT INTO tenancy.master_key_fingerprint (fingerprint) VALUES ($1) ON CONFLICT DO NOTHING", 1,
		           &fp_type, &fp, SPI_OK_INSERT);
	}
	if (args->how != KeyCreation::kNewTenant) {
		Oid id_types[2] = {UUIDOID, TEXTOID};
		Datum id_values[2] = {UUIDPGetDatum(args->tenant), CStringGetTextDatum(KeyIdText(args->tenant, args->version))};
		ExecOrFail("UPDATE tenancy.tenants SET encryption_key_id = $2 WHERE id OPERATOR(pg_catalog.=) $1", 2, id_types,
		           id_values, SPI_OK_UPDATE);
	}
	args->created = true;
	SPI_finish();
}

struct DestroyArgs {
	const pg_uuid_t *tenant;
	bool remove_rows;
	int32 destroyed; // out
};

void
DestroyAsOwner(void *p)
{
	DestroyArgs *args = static_cast<DestroyArgs *>(p);
	Oid types[1] = {UUIDOID};
	Datum values[1] = {UUIDPGetDatum(args->tenant)};
	SPI_connect();
	// The wrapped key is overwritten with NULL; the row stays as a tombstone so versions are never reused and a
	// decrypt names the reason.
	ExecOrFail("UPDATE tenancy.tenant_keys SET wrapped_key = NULL, destroyed_at = pg_catalog.now() "
	           "WHERE tenant_id OPERATOR(pg_catalog.=) $1 AND wrapped_key IS NOT NULL",
	           1, types, values, SPI_OK_UPDATE);
	args->destroyed = static_cast<int32>(SPI_processed);
	if (args->remove_rows)
		ExecOrFail("DELETE FROM tenancy.tenant_keys WHERE tenant_id OPERATOR(pg_catalog.=) $1", 1, types, values,
		           SPI_OK_DELETE);
	// "<id>:destroyed", not NULL: a restored tenants row that names no key would get a fresh version 1 from the
	// insert trigger, colliding with the restored tombstones.
	Oid id_types[2] = {UUIDOID, TEXTOID};
	Datum id_values[2] = {values[0], CStringGetTextDatum(psprintf(
	                                     "%s:destroyed", DatumGetCString(DirectFunctionCall1(uuid_out, values[0]))))};
	if (args->destroyed > 0)
		ExecOrFail("UPDATE tenancy.tenants SET encryption_key_id = $2 WHERE id OPERATOR(pg_catalog.=) $1", 2, id_types,
		           id_values, SPI_OK_UPDATE);
	SPI_finish();
}

struct RewrapArgs {
	int32 count; // out
	bool already_done;
};

// Rewraps in three steps so no key lives across a PG call: read every live row (SPI), rewrap all of them in one
// CallCore, write them back (SPI). The table lock keeps new keys out meanwhile.
void
RewrapAsOwner(void *p)
{
	RewrapArgs *args = static_cast<RewrapArgs *>(p);
	MemoryContext context = CurrentMemoryContext;
	SPI_connect();
	ExecOrFail("LOCK TABLE tenancy.tenant_keys IN EXCLUSIVE MODE", 0, NULL, NULL, SPI_OK_UTILITY);
	bytea *stored_fp = FetchFingerprint(context);
	ExecOrFail("SELECT tenant_id, version, wrapped_key FROM tenancy.tenant_keys WHERE wrapped_key IS NOT NULL "
	           "ORDER BY tenant_id, version",
	           0, NULL, NULL, SPI_OK_SELECT);
	uint64 n = SPI_processed;
	MemoryContext old = MemoryContextSwitchTo(context);
	pg_uuid_t *tenants = static_cast<pg_uuid_t *>(palloc0(sizeof(pg_uuid_t) * (n + 1)));
	int32 *versions = static_cast<int32 *>(palloc0(sizeof(int32) * (n + 1)));
	bytea **wrapped = static_cast<bytea **>(palloc0(sizeof(bytea *) * (n + 1)));
	bytea **rewrapped = static_cast<bytea **>(palloc0(sizeof(bytea *) * (n + 1)));
	for (uint64 i = 0; i < n; i++) {
		bool isnull;
		HeapTuple row = SPI_tuptable->vals[i];
		tenants[i] = *DatumGetUUIDP(SPI_getbinval(row, SPI_tuptable->tupdesc, 1, &isnull));
		versions[i] = DatumGetInt32(SPI_getbinval(row, SPI_tuptable->tupdesc, 2, &isnull));
		wrapped[i] = DatumGetByteaPCopy(SPI_getbinval(row, SPI_tuptable->tupdesc, 3, &isnull));
	}
	MemoryContextSwitchTo(old);

	const char *file = master_key_file ? master_key_file : "";
	const char *command = master_key_command ? master_key_command : "";
	const char *previous = previous_master_key_file ? previous_master_key_file : "";
	bytea *new_fp = CallCore(
	    [&]() -> bytea * {
		    core::SecretKey current = core::LoadMasterKey(file, command);
		    auto current_fp = core::MasterKeyFingerprint(current);
		    auto matches = [&](const std::array<uint8, 32> &fp) {
			    return stored_fp != NULL && VARSIZE_ANY_EXHDR(stored_fp) == fp.size() &&
			           memcmp(VARDATA_ANY(stored_fp), fp.data(), fp.size()) == 0;
		    };
		    if (matches(current_fp)) {
			    args->already_done = true;
			    return NULL;
		    }
		    if (*previous == '\0')
			    throw core::Error(core::ErrorKind::kNotSetUp, "tenancy.previous_master_key_file is not set",
			                      "rewrap_keys() unwraps every data key with the previous master key.",
			                      "Set it to the file of the old master key (superuser), then run it again.");
		    core::SecretKey old_master = core::LoadMasterKeyFile(previous);
		    if (stored_fp != NULL && !matches(core::MasterKeyFingerprint(old_master)))
			    throw core::Error(core::ErrorKind::kNotSetUp,
			                      "neither the current nor the previous master key wrapped the tenant keys",
			                      "Their fingerprints differ from the stored one; nothing was rewrapped.",
			                      "Point tenancy.previous_master_key_file at the key the data keys were wrapped with.");
		    for (uint64 i = 0; i < n; i++) {
			    core::TenantId id = ToTenantId(&tenants[i]);
			    core::SecretKey data_key =
			        core::UnwrapDataKey(old_master, reinterpret_cast<const uint8 *>(VARDATA_ANY(wrapped[i])),
			                            VARSIZE_ANY_EXHDR(wrapped[i]), id, static_cast<uint32>(versions[i]));
			    auto again = core::WrapDataKey(current, data_key, id, static_cast<uint32>(versions[i]));
			    rewrapped[i] = ByteaOf(again.data(), again.size());
		    }
		    return ByteaOf(current_fp.data(), current_fp.size());
	    },
	    true);

	if (!args->already_done) {
		Oid types[3] = {UUIDOID, INT4OID, BYTEAOID};
		for (uint64 i = 0; i < n; i++) {
			Datum values[3] = {UUIDPGetDatum(&tenants[i]), Int32GetDatum(versions[i]), PointerGetDatum(rewrapped[i])};
			ExecOrFail("UPDATE tenancy.tenant_keys SET wrapped_key = $3 WHERE tenant_id OPERATOR(pg_catalog.=) $1 "
			           "AND version OPERATOR(pg_catalog.=) $2",
			           3, types, values, SPI_OK_UPDATE);
		}
		Oid fp_type = BYTEAOID;
		Datum fp = PointerGetDatum(new_fp);
		ExecOrFail("DELETE FROM tenancy.master_key_fingerprint", 0, NULL, NULL, SPI_OK_DELETE);
		ExecOrFail("INSERT INTO tenancy.master_key_fingerprint (fingerprint) VALUES ($1)", 1, &fp_type, &fp,
		           SPI_OK_INSERT);
		args->count = static_cast<int32>(n);
	}
	SPI_finish();
}

} // namespace

char *
KeyIdText(const pg_uuid_t *tenant, int32 version)
{
	char *id = DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(tenant)));
	return psprintf("%s:v%d", id, version);
}

Oid
TenantKeysRelid(void)
{
	Oid nsp = get_namespace_oid("tenancy", true);
	return OidIsValid(nsp) ? get_relname_relid("tenant_keys", nsp) : InvalidOid;
}

void
FetchStoredKey(const pg_uuid_t *tenant, int32 version, StoredKey *out, bool fresh_snapshot)
{
	memset(out, 0, sizeof(*out));
	FetchArgs args = {tenant, version, fresh_snapshot, out, CurrentMemoryContext};
	RunAsExtensionOwner(FetchAsOwner, &args);
}

int32
CreateKeyVersion(const pg_uuid_t *tenant, KeyCreation how)
{
	CreateArgs args;
	memset(&args, 0, sizeof(args));
	args.tenant = tenant;
	args.how = how;
	args.context = CurrentMemoryContext;
	NoteKeysWritten();
	RunAsExtensionOwner(CreateAsOwner, &args);
	if (how == KeyCreation::kNewTenant && args.version == 0) {
		ereport(NOTICE, (errmsg("tenant created without a data key"), errdetail("%s.", args.reason),
		                 errhint("Its key is created on first use once the master key is configured.")));
		return 0;
	}
	if (args.created) {
		char *after =
		    psprintf("{\"key_id\": \"%s\", \"key_version\": %d}", KeyIdText(tenant, args.version), args.version);
		char *before = args.previous > 0 ? psprintf("{\"key_version\": %d}", args.previous) : NULL;
		WriteAuditEvent(how == KeyCreation::kRotate ? "tenant_key_rotated" : "tenant_key_created", tenant,
		                before ? JsonbOf(before) : NULL, JsonbOf(after));
	}
	return args.version;
}

int32
DestroyTenantKeys(const pg_uuid_t *tenant, bool remove_rows)
{
	DestroyArgs args = {tenant, remove_rows, 0};
	NoteKeysWritten();
	RunAsExtensionOwner(DestroyAsOwner, &args);
	if (args.destroyed > 0)
		WriteAuditEvent("tenant_keys_destroyed", tenant, NULL,
		                JsonbOf(psprintf("{\"destroyed_versions\": %d}", args.destroyed)));
	return args.destroyed;
}

int32
RewrapAllKeys(void)
{
	RewrapArgs args = {0, false};
	NoteKeysWritten();
	RunAsExtensionOwner(RewrapAsOwner, &args);
	if (!args.already_done)
		WriteAuditEvent("master_key_rewrapped", NULL, NULL, JsonbOf(psprintf("{\"rewrapped_keys\": %d}", args.count)));
	return args.count;
}

} // namespace tenancy::pg::crypto
