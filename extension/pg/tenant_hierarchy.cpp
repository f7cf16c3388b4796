// extension/pg/tenant_hierarchy.cpp
// tenant_descendants() and tenant_ancestors(): callable by app roles for their own context tenant's tree.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_context.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/tuplestore.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_tenant_descendants);
PG_FUNCTION_INFO_V1(tenancy_tenant_ancestors);
}

namespace tenancy::pg {

namespace {

// Both walks stop after 32 levels (tenancy._max_hierarchy_depth()), so even a cycle written around the API ends.
const char *const kDescendantsQuery =
    "WITH RECURSIVE d(id, depth) AS ("
    "  SELECT t.id, 1 FROM tenancy.tenants t WHERE t.parent_tenant_id OPERATOR(pg_catalog.=) $1"
    "  UNION"
    "  SELECT t.id, d.depth OPERATOR(pg_catalog.+) 1 FROM tenancy.tenants t"
    "    JOIN d ON t.parent_tenant_id OPERATOR(pg_catalog.=) d.id"
    "   WHERE d.depth OPERATOR(pg_catalog.<) 32)"
    "SELECT id FROM d WHERE id OPERATOR(pg_catalog.<>) $1 GROUP BY id ORDER BY pg_catalog.min(depth), id";

const char *const kAncestorsQuery =
    "WITH RECURSIVE a(id, depth) AS ("
    "  SELECT t.parent_tenant_id, 1 FROM tenancy.tenants t"
    "   WHERE t.id OPERATOR(pg_catalog.=) $1 AND t.parent_tenant_id IS NOT NULL"
    "  UNION"
    "  SELECT t.parent_tenant_id, a.depth OPERATOR(pg_catalog.+) 1 FROM tenancy.tenants t"
    "    JOIN a ON t.id OPERATOR(pg_catalog.=) a.id"
    "   WHERE t.parent_tenant_id IS NOT NULL AND a.depth OPERATOR(pg_catalog.<) 32)"
    "SELECT id FROM a WHERE id OPERATOR(pg_catalog.<>) $1 GROUP BY id ORDER BY pg_catalog.min(depth), id";

struct WalkRequest {
	pg_uuid_t *tenant;
	const char *query;
	ReturnSetInfo *rsinfo;
};

// Runs as the extension owner: app roles cannot read other tenants' rows, but may learn their own tree's ids.
void
WalkAsOwner(void *arg)
{
	WalkRequest *req = static_cast<WalkRequest *>(arg);
	Oid types[1] = {UUIDOID};
	Datum values[1] = {UUIDPGetDatum(req->tenant)};

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT 1 FROM tenancy.tenants WHERE id OPERATOR(pg_catalog.=) $1", 1, types, values,
	                          NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not look up the tenant");
	if (SPI_processed == 0)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_TENANT_NOT_FOUND),
		                errmsg("tenant \"%s\" does not exist",
		                       DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(req->tenant))))));
	if (SPI_execute_with_args(req->query, 1, types, values, NULL, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not walk the tenant hierarchy");
	for (uint64 i = 0; i < SPI_processed; i++) {
		bool isnull;
		Datum id = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		tuplestore_putvalues(req->rsinfo->setResult, req->rsinfo->setDesc, &id, &isnull);
	}
	SPI_finish();
}

// Admins may ask about any tenant; other callers only about their context tenant: any other tenant, and any
// tenant at all without a context, is 42501 (as for encrypt/decrypt naming a tenant).
void
RequireOwnTree(pg_uuid_t *tenant)
{
	if (CallerIsAdmin())
		return;
	pg_uuid_t context;
	bool has_context = CurrentTenantId(&context);
	if (!has_context || memcmp(&context, tenant, sizeof(context)) != 0)
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		                errmsg("permission denied to read the hierarchy of another tenant"),
		                errdetail("Without tenancy_admin, only the current tenant context can be named."),
		                has_context ? 0 : errhint("Call tenancy.set_tenant() first.")));
}

Datum
Walk(FunctionCallInfo fcinfo, const char *query)
{
	WalkRequest req;
	req.tenant = PG_GETARG_UUID_P(0);
	req.query = query;
	RequireOwnTree(req.tenant);
	InitMaterializedSRF(fcinfo, MAT_SRF_USE_EXPECTED_DESC);
	req.rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	RunAsExtensionOwner(WalkAsOwner, &req);
	return (Datum)0;
}

} // namespace

} // namespace tenancy::pg

// tenancy.tenant_descendants(id) -> setof uuid: every tenant below id (nearest first), id itself excluded.
extern "C" Datum
tenancy_tenant_descendants(PG_FUNCTION_ARGS)
{
	return tenancy::pg::Walk(fcinfo, tenancy::pg::kDescendantsQuery);
}

// tenancy.tenant_ancestors(id) -> setof uuid: every tenant above id (parent first), id itself excluded.
extern "C" Datum
tenancy_tenant_ancestors(PG_FUNCTION_ARGS)
{
	return tenancy::pg::Walk(fcinfo, tenancy::pg::kAncestorsQuery);
}
