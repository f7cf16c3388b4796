// extension/pg/crypto_scope.cpp
// Whose keys a caller without tenancy_admin may use: its context tenant, and that tenant's descendants while some
// table is isolated with include_descendants (a parent then reads its descendants' rows, so it must decrypt them).
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/crypto_keys.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_cache.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "access/parallel.h"
#include "catalog/namespace.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/snapmgr.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_crypto_scope_changed);
}

namespace tenancy::pg::crypto {

namespace {

// Whether tenancy.isolation_config has an include_descendants table, cached per backend. A statement trigger on
// that table invalidates its relcache entry on every change; the callback below then forgets the answer, in every
// backend, before its next transaction uses it.
enum class DescendantScope { kUnknown, kOff, kOn };
DescendantScope descendant_scope = DescendantScope::kUnknown;
Oid config_relid = InvalidOid;
uint64 scope_invalidations = 0;

void
ScopeRelcacheCallback(Datum, Oid relid)
{
	if (relid == InvalidOid || relid == config_relid) {
		descendant_scope = DescendantScope::kUnknown;
		config_relid = InvalidOid; // looked up again: DROP/CREATE EXTENSION gives the table a new OID
		scope_invalidations++;
	}
}

void
InitCryptoScope()
{
	CacheRegisterRelcacheCallback(ScopeRelcacheCallback, (Datum)0);
}
TENANCY_REGISTER_INIT(InitCryptoScope, 62);

// Runs as the extension owner: app roles have no privilege on tenancy.isolation_config. Reads with the latest
// snapshot (an older transaction snapshot could predate an invalidation already processed), or the active one in
// parallel mode, where the caller does not cache the answer.
void
ReadDescendantScope(void *arg)
{
	bool *on = static_cast<bool *>(arg);
	SPI_connect();
	SPIPlanPtr plan =
	    SPI_prepare("SELECT EXISTS (SELECT FROM tenancy.isolation_config WHERE include_descendants)", 0, NULL);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	Snapshot snapshot = IsInParallelMode() ? GetActiveSnapshot() : GetLatestSnapshot();
	int rc = SPI_execute_snapshot(plan, NULL, NULL, snapshot, InvalidSnapshot, true, false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "include_descendants lookup failed: %s", SPI_result_code_string(rc));
	bool isnull;
	*on = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)) && !isnull;
	SPI_finish();
}

bool
DescendantScopeOn()
{
	if (descendant_scope != DescendantScope::kUnknown)
		return descendant_scope == DescendantScope::kOn;
	if (!OidIsValid(config_relid)) {
		config_relid = get_relname_relid("isolation_config", get_namespace_oid("tenancy", false));
		if (!OidIsValid(config_relid))
			elog(ERROR, "relation tenancy.isolation_config does not exist");
	}
	uint64 before = scope_invalidations;
	bool on = false;
	RunAsExtensionOwner(ReadDescendantScope, &on);
	// Keep the answer only if no invalidation arrived while it was read (the table may have changed under it).
	if (before == scope_invalidations && !IsInParallelMode())
		descendant_scope = on ? DescendantScope::kOn : DescendantScope::kOff;
	return on;
}

} // namespace

bool
DescendantKeysUsable(const pg_uuid_t *context, const pg_uuid_t *tenant)
{
	if (!DescendantScopeOn())
		return false;
	// TenantAndDescendants is cached per backend and flushed when tenancy.tenants changes (a new parent included).
	int count;
	pg_uuid_t *tree = TenantAndDescendants(context, &count);
	bool found = false;
	for (int i = 1; i < count && !found; i++)
		found = memcmp(tree[i].data, tenant->data, UUID_LEN) == 0;
	pfree(tree);
	return found;
}

} // namespace tenancy::pg::crypto

// tenancy._crypto_scope_changed(): statement trigger on tenancy.isolation_config. Its relcache invalidation reaches
// every backend when the change commits; ScopeRelcacheCallback then forgets whether descendants' keys are usable.
extern "C" Datum
tenancy_crypto_scope_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("function \"%s\" must be fired as a trigger", "_crypto_scope_changed")));
	TriggerData *trigdata = reinterpret_cast<TriggerData *>(fcinfo->context);
	CacheInvalidateRelcache(trigdata->tg_relation);
	return PointerGetDatum(NULL);
}
