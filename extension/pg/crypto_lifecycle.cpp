// extension/pg/crypto_lifecycle.cpp
// Key lifecycle entry points: rotation, rewrap after a master-key change, crypto-shredding, and the key triggers.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/crypto_keys.hpp"
#include "tenancy/pg/privilege.hpp"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/elog.h"
#include "utils/inval.h"
#include "utils/rel.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_rotate_tenant_key);
PG_FUNCTION_INFO_V1(tenancy_rewrap_keys);
PG_FUNCTION_INFO_V1(tenancy_destroy_tenant_keys);
PG_FUNCTION_INFO_V1(tenancy_tenant_key_on_insert);
PG_FUNCTION_INFO_V1(tenancy_tenant_keys_on_delete);
PG_FUNCTION_INFO_V1(tenancy_tenant_keys_changed);
}

using namespace tenancy::pg;
using namespace tenancy::pg::crypto;

namespace {

// The uuid in column name of a trigger tuple; the column is NOT NULL in tenancy.tenants.
pg_uuid_t *
TupleUuid(HeapTuple tuple, TupleDesc desc, const char *name)
{
	int attnum = SPI_fnumber(desc, name);
	bool isnull;
	Datum value = heap_getattr(tuple, attnum, desc, &isnull);
	if (attnum <= 0 || isnull)
		elog(ERROR, "tenancy.tenants has no non-null column \"%s\"", name);
	return DatumGetUUIDP(value);
}

void
RequireTrigger(FunctionCallInfo fcinfo, const char *name)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("function \"%s\" must be fired as a trigger", name)));
}

} // namespace

// tenancy.rotate_tenant_key(tenant uuid) -> int: a new key version for new values; old versions still decrypt.
// Every backend drops its cached current version at once (the keys table's trigger sends a relcache invalidation).
extern "C" Datum
tenancy_rotate_tenant_key(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	PushHideStatement(&hide);
	RequireAdmin("rotate tenant keys");
	int32 version = CreateKeyVersion(PG_GETARG_UUID_P(0), KeyCreation::kRotate);
	PopHideStatement(&hide);
	PG_RETURN_INT32(version);
}

// tenancy.rewrap_keys() -> int: rewraps every live data key from tenancy.previous_master_key_file's key to the
// current master key, all or nothing; 0 when they are already wrapped by the current key.
extern "C" Datum
tenancy_rewrap_keys(PG_FUNCTION_ARGS)
{
	ErrorContextCallback hide;
	PushHideStatement(&hide);
	RequireAdmin("rewrap tenant keys");
	int32 count = RewrapAllKeys();
	PopHideStatement(&hide);
	PG_RETURN_INT32(count);
}

// tenancy._destroy_tenant_keys(tenant uuid) -> int: crypto-shredding, called by delete_tenant(id, erase => true).
extern "C" Datum
tenancy_destroy_tenant_keys(PG_FUNCTION_ARGS)
{
	RequireAdmin("destroy tenant keys");
	PG_RETURN_INT32(DestroyTenantKeys(PG_GETARG_UUID_P(0), false));
}

// BEFORE INSERT ON tenancy.tenants: a new tenant gets key version 1 and its encryption_key_id when the master key
// is available (else a NOTICE, and the key is made on first use). A row that already names a key, or was created
// before this transaction (pg_restore, import), is left alone.
extern "C" Datum
tenancy_tenant_key_on_insert(PG_FUNCTION_ARGS)
{
	RequireTrigger(fcinfo, "_tenant_key_on_insert");
	TriggerData *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
	HeapTuple tuple = trigdata->tg_trigtuple;
	TupleDesc desc = RelationGetDescr(trigdata->tg_relation);
	int key_attnum = SPI_fnumber(desc, "encryption_key_id");
	bool isnull;
	heap_getattr(tuple, key_attnum, desc, &isnull);
	if (!isnull)
		return PointerGetDatum(tuple);
	// A row created before this transaction is restored or imported, not new: pg_restore's COPY must not write
	// keys or audit events (they would collide with the restored ones). Its key comes on first use.
	int created_attnum = SPI_fnumber(desc, "created_at");
	Datum created = heap_getattr(tuple, created_attnum, desc, &isnull);
	if (created_attnum > 0 && !isnull && DatumGetTimestampTz(created) < GetCurrentTransactionStartTimestamp())
		return PointerGetDatum(tuple);

	pg_uuid_t *tenant = TupleUuid(tuple, desc, "id");
	int32 version = CreateKeyVersion(tenant, KeyCreation::kNewTenant);
	if (version == 0)
		return PointerGetDatum(tuple);
	int cols[1] = {key_attnum};
	Datum values[1] = {CStringGetTextDatum(KeyIdText(tenant, version))};
	bool nulls[1] = {false};
	return PointerGetDatum(heap_modify_tuple_by_cols(tuple, desc, 1, cols, values, nulls));
}

// AFTER DELETE ON tenancy.tenants: the keys of a deleted tenant are destroyed (audited when any was live) and their
// rows removed, whoever deleted the row.
extern "C" Datum
tenancy_tenant_keys_on_delete(PG_FUNCTION_ARGS)
{
	RequireTrigger(fcinfo, "_tenant_keys_on_delete");
	TriggerData *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
	DestroyTenantKeys(TupleUuid(trigdata->tg_trigtuple, RelationGetDescr(trigdata->tg_relation), "id"), true);
	return PointerGetDatum(NULL);
}

// AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.tenant_keys, per statement: a relcache invalidation of
// the keys table, delivered to every backend of the database at commit, flushes their key caches
// (crypto_key_cache.cpp). Covers every writer, including a superuser's direct DML.
extern "C" Datum
tenancy_tenant_keys_changed(PG_FUNCTION_ARGS)
{
	RequireTrigger(fcinfo, "_tenant_keys_changed");
	TriggerData *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
	CacheInvalidateRelcache(trigdata->tg_relation);
	NoteKeysWritten();
	return PointerGetDatum(NULL);
}
