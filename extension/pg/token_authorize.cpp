// extension/pg/token_authorize.cpp
// tenancy.authorize_token in C: tenancyd's whole check of a tenant-token request (lookup, role permission, metering)
// without the plpgsql setup and search_path switch a plpgsql function pays in every transaction.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/request_caller.hpp"
#include "tenancy/pg/spi_plan.hpp"
#include "tenancy/pg/token_permits.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_authorize_token);

/* tenancy.consume (quota_functions.cpp): called as SQL would, so its access check and refusal audit apply */
extern Datum tenancy_consume(PG_FUNCTION_ARGS);
}

using namespace tenancy;

namespace {

// The live token with this digest, its tenant's plan, whether a live move of that tenant runs here and whether the
// tenant is active (active, or trial within its trial: the TN002 rule of tenancy.set_tenant). Every name and
// operator is schema-qualified, so the caller's search_path cannot redirect it. Prepared once per backend; the plan
// cache re-plans it after DDL.
const char *const kLookupSql = "SELECT k.id, k.tenant_id, k.role, k.token_sha256, t.plan,"
                               "       EXISTS (SELECT 1 FROM tenancy.tenant_moves mv"
                               "                WHERE mv.tenant_id OPERATOR(pg_catalog.=) k.tenant_id),"
                               "       (t.status OPERATOR(pg_catalog.=) 'active'::tenancy.tenant_status"
                               "        OR (t.status OPERATOR(pg_catalog.=) 'trial'::tenancy.tenant_status"
                               "            AND (t.trial_ends_at IS NULL"
                               "                 OR t.trial_ends_at OPERATOR(pg_catalog.>=) pg_catalog.now())))"
                               "  FROM tenancy.tenant_tokens k"
                               "  JOIN tenancy.tenants t ON t.id OPERATOR(pg_catalog.=) k.tenant_id"
                               " WHERE k.token_sha256 OPERATOR(pg_catalog.=) $1"
                               "   AND k.revoked_at IS NULL"
                               "   AND (k.expires_at IS NULL OR k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now())";
SPIPlanPtr lookup_plan = NULL;
const char *const kMoveGuardSql = "SELECT tenancy.move_guard($1)";
SPIPlanPtr move_guard_plan = NULL;

// One found token, copied out of SPI memory (plain data: PG calls may longjmp over it).
struct FoundToken {
	pg_uuid_t id;
	pg_uuid_t tenant_id;
	Oid role;
	bytea *token_sha256;
	Oid plan;
	bool plan_null;
	bool moving;
	bool active;
};

// Looks the digest up on a fresh snapshot (the function is VOLATILE, like the plpgsql it replaces); false if no
// live token has it.
bool
LookupToken(bytea *digest, FoundToken *found)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "authorize_token: SPI_connect failed");
	const Oid types[1] = {BYTEAOID};
	SPIPlanPtr plan = pg::KeptPlan(&lookup_plan, kLookupSql, 1, types, "the token lookup of authorize_token");
	Datum values[1] = {PointerGetDatum(digest)};
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "authorize_token: the token lookup failed");
	bool have = SPI_processed > 0;
	if (have) {
		HeapTuple row = SPI_tuptable->vals[0];
		TupleDesc desc = SPI_tuptable->tupdesc;
		bool isnull;
		memcpy(&found->id, DatumGetUUIDP(SPI_getbinval(row, desc, 1, &isnull)), sizeof(pg_uuid_t));
		memcpy(&found->tenant_id, DatumGetUUIDP(SPI_getbinval(row, desc, 2, &isnull)), sizeof(pg_uuid_t));
		found->role = DatumGetObjectId(SPI_getbinval(row, desc, 3, &isnull));
		bytea *sha = DatumGetByteaPP(SPI_getbinval(row, desc, 4, &isnull));
		found->token_sha256 = static_cast<bytea *>(SPI_palloc(VARSIZE_ANY(sha))); // the caller's context
		memcpy(found->token_sha256, sha, VARSIZE_ANY(sha));
		found->plan = DatumGetObjectId(SPI_getbinval(row, desc, 5, &found->plan_null));
		found->moving = DatumGetBool(SPI_getbinval(row, desc, 6, &isnull));
		found->active = DatumGetBool(SPI_getbinval(row, desc, 7, &isnull));
	}
	SPI_finish();
	return have;
}

// consume writes its counter in place, unseen by a live move's guard triggers: tenancy.move_guard raises 55006 while
// the tenant is frozen (nothing is metered on a source whose counters were handed over) and otherwise holds the
// freeze off until commit. Only called while a move of the tenant runs here.
void
GuardMove(pg_uuid_t *tenant)
{
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "authorize_token: SPI_connect failed");
	const Oid types[1] = {UUIDOID};
	SPIPlanPtr plan = pg::KeptPlan(&move_guard_plan, kMoveGuardSql, 1, types, "the move guard of authorize_token");
	Datum values[1] = {UUIDPGetDatum(tenant)};
	if (SPI_execute_plan(plan, values, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "authorize_token: the move guard failed");
	SPI_finish();
}

} // namespace

// tenancy.authorize_token(digest bytea, target_tenant_id uuid, action text, request jsonb) -> table (token_id,
// tenant_id, role, token_sha256, permitted, plan, within_quota, tenant_active): no row for no live token; otherwise
// whether the role permits action while the tenant is active (TN005 for an unknown action) and, for a permitted call
// to the token's own tenant, whether one api_calls unit was metered within the quota (NULL when nothing was
// metered). With request, the session's audit events name the token found and the request (request_caller.cpp).
extern "C" Datum
tenancy_authorize_token(PG_FUNCTION_ARGS)
{
	// The caller of the previous request never carries over, whatever happens below.
	pg::ClearRequestCaller();
	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2))
		return (Datum)0; // no row, as the STRICT function of 0.2.0 answered
	bytea *digest = PG_GETARG_BYTEA_PP(0);
	pg_uuid_t *target = PG_GETARG_UUID_P(1);
	text *action = PG_GETARG_TEXT_PP(2);
	FoundToken found;
	if (!LookupToken(digest, &found))
		return (Datum)0; // no row

	// An unknown action is an error before anything else: a typo in tenancyd never passes silently.
	bool permitted = pg::RolePermitsAction(ObjectIdGetDatum(found.role), action) && found.active;
	if (!PG_ARGISNULL(3))
		pg::SetRequestCaller(PG_GETARG_JSONB_P(3), &found.id,
		                     DatumGetCString(DirectFunctionCall1(enum_out, ObjectIdGetDatum(found.role))),
		                     &found.tenant_id);

	Datum values[8];
	bool nulls[8] = {false, false, false, false, false, found.plan_null, true, false};
	values[0] = UUIDPGetDatum(&found.id);
	values[1] = UUIDPGetDatum(&found.tenant_id);
	values[2] = ObjectIdGetDatum(found.role);
	values[3] = PointerGetDatum(found.token_sha256);
	values[4] = BoolGetDatum(permitted);
	values[5] = ObjectIdGetDatum(found.plan);
	values[6] = BoolGetDatum(false);
	values[7] = BoolGetDatum(found.active);
	// Only a permitted call to the token's own tenant is metered: a token of A naming B meters nothing of A or B,
	// and a suspended, cancelled or expired-trial tenant's token is permitted nothing.
	if (permitted && memcmp(found.tenant_id.data, target->data, UUID_LEN) == 0) {
		if (found.moving)
			GuardMove(&found.tenant_id);
		values[6] = DirectFunctionCall3(tenancy_consume, UUIDPGetDatum(&found.tenant_id),
		                                CStringGetTextDatum("api_calls"), Int64GetDatum(1));
		nulls[6] = false;
	}
	ReturnSetInfo *rsinfo = reinterpret_cast<ReturnSetInfo *>(fcinfo->resultinfo);
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum)0;
}

namespace {

int max_tokens_per_tenant = 100;

// tenancy.max_tokens_per_tenant, read by tenancy.issue_token (sql/src/70_tokens.sql).
void
InitTokens(void)
{
	DefineCustomIntVariable("tenancy.max_tokens_per_tenant",
	                        "Most live (neither revoked nor expired) tenancyd tokens a tenant may have.",
	                        "tenancy.issue_token refuses more with TN003.", &max_tokens_per_tenant, 100, 1, 1000000,
	                        PGC_SUSET, 0, NULL, NULL, NULL);
}

} // namespace

TENANCY_REGISTER_INIT(InitTokens, 30);
