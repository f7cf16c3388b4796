// extension/pg/tenant_context.cpp
// The tenant context: set_tenant, current_tenant_id, the transaction-local app.tenant_id, and the C API.
#include "tenancy/core/uuid_text.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_cache.hpp"
#include "tenancy/pg/tenant_context.hpp"

extern "C" {
#include "postgres.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "executor/executor.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_set_tenant);
PG_FUNCTION_INFO_V1(tenancy_current_tenant_id);
}

namespace tenancy::pg {

namespace {

// The context set by set_tenant() lives in the hidden setting tenancy.tenant_id, always set with
// GUC_ACTION_LOCAL. The GUC machinery then gives exactly the lifetime SPEC.md asks for: reverted at COMMIT and
// ROLLBACK, restored by ROLLBACK TO SAVEPOINT, one statement outside a transaction block, cleared by RESET ALL,
// and copied into parallel workers (which is why it is a GUC and not a static variable).
char *context_setting = NULL;

// Parsed form of the setting, kept by the GUC machinery as the variable's "extra" and copied here by the assign
// hook, so reading the context never parses text.
struct ContextExtra {
	bool valid;
	pg_uuid_t id;
};
ContextExtra context_current = {false, {}};

// Only SetTenantContext (after validating the tenant) and parallel worker start-up may store a tenant in the
// setting; a superuser's SET tenancy.tenant_id is refused by the check hook (non-superusers cannot SET it at all).
bool context_setter_active = false;

enum ContextMode { kContextPlain, kContextSigned };
int context_mode = kContextPlain;
const struct config_enum_entry kContextModes[] = {
    {"plain", kContextPlain, false}, {"signed", kContextSigned, false}, {NULL, 0, false}};

bool
CheckContextSetting(char **newval, void **extra, GucSource)
{
	ContextExtra parsed = {false, {}};
	if (*newval != NULL && (*newval)[0] != '\0') {
		if (!context_setter_active && !InitializingParallelWorker) {
			GUC_check_errcode(ERRCODE_INSUFFICIENT_PRIVILEGE);
			GUC_check_errmsg("the tenant context can only be set by tenancy.set_tenant()");
			return false;
		}
		core::UuidBytes bytes;
		if (!core::ParseUuid(*newval, bytes)) {
			GUC_check_errdetail("The value is not a uuid.");
			return false;
		}
		memcpy(parsed.id.data, bytes.data(), UUID_LEN);
		parsed.valid = true;
	}
	/* PostgreSQL 15 frees "extra" with free(): allocate it with malloc (guc_malloc is not exported) */
	void *mem = malloc(sizeof(ContextExtra));
	if (mem == NULL)
		return false;
	memcpy(mem, &parsed, sizeof(parsed));
	*extra = mem;
	return true;
}

// Assign hook of both hidden uuid settings: copies the check hook's parsed value into *target.
template <ContextExtra *target>
void
AssignParsedSetting(const char *, void *extra)
{
	if (extra != NULL)
		*target = *static_cast<ContextExtra *>(extra);
	else
		target->valid = false;
}

// The app.tenant_id value the leader validated in this transaction, as a hidden transaction-local setting: GUCs
// are copied into parallel workers, but the GUC stack is not (a worker sees every value as session-level), so a
// worker honours app.tenant_id only when it equals the value its leader validated.
char *validated_app_setting = NULL;
ContextExtra validated_app = {false, {}};

ExecutorStart_hook_type previous_executor_start = NULL;
bool AppTenantId(pg_uuid_t *out);

// Before a plan that will enter parallel mode starts, resolve app.tenant_id in the leader: a parallel plan built
// earlier (a cached generic plan) may call current_tenant_id() for the first time in parallel mode, when the
// validated value could no longer be recorded for the workers. Costs one setting lookup per parallel query.
void
ContextExecutorStart(QueryDesc *query_desc, int eflags)
{
	if (query_desc->plannedstmt->parallelModeNeeded && !IsInParallelMode() && !context_current.valid &&
	    !IsParallelWorker()) {
		pg_uuid_t ignored;
		(void)AppTenantId(&ignored);
	}
	if (previous_executor_start)
		previous_executor_start(query_desc, eflags);
	else
		standard_ExecutorStart(query_desc, eflags);
}

void
InitTenantContext()
{
	previous_executor_start = ExecutorStart_hook;
	ExecutorStart_hook = ContextExecutorStart;
	DefineCustomStringVariable("tenancy.tenant_id", "Tenant context of the current transaction (set_tenant).",
	                           "Set only by tenancy.set_tenant(); transaction-local.", &context_setting, "", PGC_SUSET,
	                           GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE, CheckContextSetting,
	                           AssignParsedSetting<&context_current>, NULL);
	DefineCustomStringVariable(
	    "tenancy.validated_app_tenant_id", "app.tenant_id value validated in the current transaction (internal).", NULL,
	    &validated_app_setting, "", PGC_SUSET, GUC_NO_SHOW_ALL | GUC_NOT_IN_SAMPLE | GUC_DISALLOW_IN_FILE,
	    CheckContextSetting, AssignParsedSetting<&validated_app>, NULL);
	DefineCustomEnumVariable("tenancy.context_mode", "How the tenant context may be set: plain or signed.",
	                         "In signed mode only tenancy.set_tenant_token() sets the context for non-admin roles, "
	                         "and app.tenant_id is ignored.",
	                         &context_mode, kContextPlain, kContextModes, PGC_SUSET, 0, NULL, NULL, NULL);
}
TENANCY_REGISTER_INIT(InitTenantContext, 10);

// PostgreSQL's guc_name_compare (static in guc.c): ASCII case-insensitive, the order of the variables array.
int
GucNameCompare(const char *a, const char *b)
{
	while (*a && *b) {
		char ca = *a++;
		char cb = *b++;
		if (ca >= 'A' && ca <= 'Z')
			ca += 'a' - 'A';
		if (cb >= 'A' && cb <= 'Z')
			cb += 'a' - 'A';
		if (ca != cb)
			return ca - cb;
	}
	if (*a)
		return 1;
	if (*b)
		return -1;
	return 0;
}

// find_option() is static in PostgreSQL 15; the variables array is kept sorted by name, so a binary search finds
// the same entry (also a placeholder created by SET app.tenant_id).
struct config_generic *
FindSetting(const char *name)
{
	struct config_generic **vars = get_guc_variables();
	int lo = 0;
	int hi = GetNumConfigOptions() - 1;
	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		int cmp = GucNameCompare(name, vars[mid]->name);
		if (cmp == 0)
			return vars[mid];
		if (cmp < 0)
			hi = mid - 1;
		else
			lo = mid + 1;
	}
	return NULL;
}

// The current value of app.tenant_id if, and only if, it was set transaction-locally (SET LOCAL or
// set_config(..., true)) at the innermost level that changed it: the top of the variable's GUC stack is then a
// LOCAL entry and the value reverts at transaction end. A session-level value (plain SET, set_config(..., false),
// connection options, ALTER ROLE/DATABASE SET) has no such entry and is never a context: a transaction pooler
// would hand it to the next client.
const char *
TransactionLocalAppTenantId()
{
	struct config_generic *gen = FindSetting("app.tenant_id");
	if (gen == NULL || gen->vartype != PGC_STRING || gen->stack == NULL)
		return NULL;
	if (gen->stack->state != GUC_LOCAL && gen->stack->state != GUC_SET_LOCAL)
		return NULL;
	return *reinterpret_cast<struct config_string *>(gen)->variable;
}

// app.tenant_id is validated at most once per transaction and value: the result is remembered with the local
// transaction id. Values longer than any uuid spelling are malformed and not remembered.
constexpr int kMaxAppValue = 48;
LocalTransactionId app_lxid = InvalidLocalTransactionId;
char app_value[kMaxAppValue + 1];
bool app_usable = false;
pg_uuid_t app_id;

void
SetHiddenSetting(const char *name, const char *value, GucAction action = GUC_ACTION_LOCAL)
{
	context_setter_active = true;
	PG_TRY();
	{
		(void)set_config_option(name, value, PGC_SUSET, PGC_S_SESSION, action, true, ERROR, false);
	}
	PG_FINALLY();
	{
		context_setter_active = false;
	}
	PG_END_TRY();
}

// In a parallel worker: app.tenant_id counts only if the leader validated exactly this value (see above).
bool
WorkerAppTenantId(pg_uuid_t *out)
{
	if (!validated_app.valid)
		return false;
	const char *value = GetConfigOption("app.tenant_id", true, false);
	if (value == NULL || strcmp(value, validated_app_setting) != 0)
		return false;
	*out = validated_app.id;
	return true;
}

bool
AppTenantId(pg_uuid_t *out)
{
	if (SignedContextMode())
		return false;
	if (IsParallelWorker())
		return WorkerAppTenantId(out);
	const char *value = TransactionLocalAppTenantId();
	if (value == NULL || value[0] == '\0')
		return false;
	size_t len = strlen(value);
	if (len > kMaxAppValue)
		return false;
	if (app_lxid == MyProc->lxid && strcmp(app_value, value) == 0) {
		if (app_usable)
			*out = app_id;
		return app_usable;
	}

	/* copy before any lookup: the lookup may run SQL, which could change the setting's storage */
	char copy[kMaxAppValue + 1];
	memcpy(copy, value, len + 1);
	core::UuidBytes bytes;
	bool usable = core::ParseUuid(std::string_view(copy, len), bytes);
	pg_uuid_t id;
	if (usable) {
		memcpy(id.data, bytes.data(), UUID_LEN);
		usable = LookupTenantUsability(&id) == TenantUsability::kUsable;
	}
	app_lxid = MyProc->lxid;
	memcpy(app_value, copy, len + 1);
	app_usable = usable;
	if (usable) {
		app_id = id;
		*out = id;
		/* record it for parallel workers; in parallel mode no setting can change, and workers then see none */
		if (!IsInParallelMode())
			SetHiddenSetting("tenancy.validated_app_tenant_id", copy);
	}
	return usable;
}

} // namespace

bool
SignedContextMode(void)
{
	return context_mode == kContextSigned;
}

bool
CurrentTenantId(pg_uuid_t *out)
{
	if (HoldCursorDeclaredInTransaction())
		return false;
	if (context_current.valid) {
		*out = context_current.id;
		return true;
	}
	return AppTenantId(out);
}

void
SetTenantContext(const pg_uuid_t *id)
{
	if (id != NULL && HoldCursorDeclaredInTransaction())
		ereport(ERROR, (errcode(ERRCODE_INVALID_CURSOR_DEFINITION),
		                errmsg("cannot set a tenant context in a transaction that declared a WITH HOLD cursor"),
		                errdetail("The cursor would keep the tenant's rows readable after the context ends.")));
	const char *text = id ? DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id))) : "";
	SetHiddenSetting("tenancy.tenant_id", text);
}

void
SetTenantContextInNestLevel(const pg_uuid_t *id)
{
	SetHiddenSetting("tenancy.tenant_id", DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(id))),
	                 GUC_ACTION_SAVE);
}

} // namespace tenancy::pg

using namespace tenancy;

// tenancy.set_tenant(uuid): validates the tenant (TN001/TN002) and makes it the context of the current
// transaction. NULL clears the context for the rest of the transaction. In signed mode only admin roles may call
// it (others use set_tenant_token).
extern "C" Datum
tenancy_set_tenant(PG_FUNCTION_ARGS)
{
	if (pg::SignedContextMode() && !pg::CallerIsAdmin())
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		                errmsg("permission denied to set the tenant context with set_tenant"),
		                errdetail("The server runs with tenancy.context_mode = 'signed'."),
		                errhint("Use tenancy.set_tenant_token() with a token from tenancy.sign_tenant_token().")));
	if (PG_ARGISNULL(0)) {
		pg::SetTenantContext(NULL);
		PG_RETURN_VOID();
	}
	pg_uuid_t *id = PG_GETARG_UUID_P(0);
	pg::RequireUsableTenant(id);
	pg::SetTenantContext(id);
	PG_RETURN_VOID();
}

// tenancy.current_tenant_id() -> uuid: the context, or NULL. STABLE, PARALLEL SAFE, LEAKPROOF: it reads no
// argument and raises no data-dependent error, so policies comparing a column with it stay index conditions.
extern "C" Datum
tenancy_current_tenant_id(PG_FUNCTION_ARGS)
{
	pg_uuid_t id;
	if (!pg::CurrentTenantId(&id))
		PG_RETURN_NULL();
	pg_uuid_t *result = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
	*result = id;
	PG_RETURN_UUID_P(result);
}
