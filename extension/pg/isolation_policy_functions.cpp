// extension/pg/isolation_policy_functions.cpp
// Functions called by the generated policies, tenancy.missing_context, the cross-tenant flag, the TRUNCATE guard.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/isolation.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_cache.hpp"
#include "tenancy/pg/tenant_context.hpp"

extern "C" {
#include "postgres.h"
#include "access/parallel.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/guc.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_policy_tenant_id);
PG_FUNCTION_INFO_V1(tenancy_policy_tenant_ids);
PG_FUNCTION_INFO_V1(tenancy_cross_tenant_active);
PG_FUNCTION_INFO_V1(tenancy_refuse_truncate);
}

namespace tenancy::pg {

bool isolation_work_active = false;

namespace {

enum MissingContext { kMissingError, kMissingEmpty };
int missing_context = kMissingError;
const struct config_enum_entry kMissingContextOptions[] = {
    {"error", kMissingError, false}, {"empty", kMissingEmpty, false}, {NULL, 0, false}};

// The cross-tenant flag: a hidden transaction-local setting (so it reaches parallel workers and dies with the
// transaction), settable only through SetCrossTenantActive.
bool cross_tenant = false;
bool cross_tenant_setter_active = false;

bool
CheckCrossTenant(bool *newval, void **, GucSource)
{
	if (*newval && !cross_tenant_setter_active && !InitializingParallelWorker) {
		GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
		GUC_check_errmsg("cross-tenant reads can only be started by tenancy.begin_cross_tenant()");
		return false;
	}
	return true;
}

void
InitIsolationSettings()
{
	DefineCustomEnumVariable("tenancy.missing_context",
	                         "What a query on an isolated table does without a tenant context: error or empty.",
	                         "error raises TN004; empty returns no rows. Never all rows.", &missing_context,
	                         kMissingError, kMissingContextOptions, PGC_SUSET, 0, NULL, NULL, NULL);
	DefineCustomBoolVariable("tenancy.cross_tenant", "Audited cross-tenant read of this transaction (internal).", NULL,
	                         &cross_tenant, false, PGC_SUSET,
	                         GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE, CheckCrossTenant, NULL, NULL);
}
TENANCY_REGISTER_INIT(InitIsolationSettings, 20);

// The context for a policy. Without one: TN004, or false (the caller returns NULL: no row matches) when the
// superuser chose tenancy.missing_context = 'empty' or an admin's cross-tenant read is active (its own policy then
// decides).
bool
PolicyContext(pg_uuid_t *id)
{
	if (CurrentTenantId(id))
		return true;
	if (CrossTenantActive() || missing_context == kMissingEmpty)
		return false;
	ereport(ERROR, (errcode(TENANCY_ERRCODE_NO_TENANT_CONTEXT), errmsg("no tenant context"),
	                errdetail("Queries on isolated tables need a tenant context."),
	                errhint("Call tenancy.set_tenant() in the same transaction first.")));
	return false;
}

} // namespace

bool
CrossTenantActive(void)
{
	return cross_tenant;
}

void
SetCrossTenantActive(void)
{
	cross_tenant_setter_active = true;
	PG_TRY();
	{
		(void)set_config_option("tenancy.cross_tenant", "on", PGC_SUSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, ERROR,
		                        false);
	}
	PG_FINALLY();
	{
		cross_tenant_setter_active = false;
	}
	PG_END_TRY();
}

} // namespace tenancy::pg

using namespace tenancy;

// tenancy._policy_tenant_id() -> uuid: the context for the isolation policy (see PolicyContext).
extern "C" Datum
tenancy_policy_tenant_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t id;
	if (!pg::PolicyContext(&id))
		PG_RETURN_NULL();
	pg_uuid_t *result = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
	*result = id;
	PG_RETURN_UUID_P(result);
}

// tenancy._policy_tenant_ids() -> uuid[]: the context tenant and its descendants (cached per backend).
extern "C" Datum
tenancy_policy_tenant_ids(PG_FUNCTION_ARGS)
{
	pg_uuid_t id;
	if (!pg::PolicyContext(&id))
		PG_RETURN_NULL();
	int count;
	pg_uuid_t *ids = pg::TenantAndDescendants(&id, &count);
	Datum *elems = static_cast<Datum *>(palloc(sizeof(Datum) * count));
	for (int i = 0; i < count; i++)
		elems[i] = UUIDPGetDatum(&ids[i]);
	/* uuid's storage is fixed (pg_type: 16 bytes, by reference, char alignment): no catalog lookup per call */
	PG_RETURN_ARRAYTYPE_P(construct_array(elems, count, UUIDOID, UUID_LEN, false, TYPALIGN_CHAR));
}

// tenancy._cross_tenant_active() -> boolean: the USING clause of the tenancy_admin cross-tenant policy.
extern "C" Datum
tenancy_cross_tenant_active(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(pg::CrossTenantActive());
}

// tenancy._refuse_truncate(): BEFORE TRUNCATE trigger of isolated tables. Row-level security does not apply to
// TRUNCATE, so an application role granted it could remove every tenant's rows; only admins may.
extern "C" Datum
tenancy_refuse_truncate(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("tenancy._refuse_truncate() must be called as a trigger")));
	TriggerData *trigdata = (TriggerData *)fcinfo->context;
	if (!pg::CallerIsAdmin())
		ereport(ERROR,
		        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		         errmsg("cannot truncate isolated table \"%s\"", RelationGetRelationName(trigdata->tg_relation)),
		         errdetail("TRUNCATE is not subject to row-level security and would remove every tenant's rows."),
		         errhint("Use DELETE, which the isolation policy limits to the current tenant.")));
	return PointerGetDatum(NULL);
}
