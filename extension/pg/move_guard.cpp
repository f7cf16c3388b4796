// extension/pg/move_guard.cpp
// tenancy.move_guard(tenant): the live-move write guard for writes no trigger sees, limited to the caller's tenant.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_context.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/uuid.h"

PG_FUNCTION_INFO_V1(tenancy_move_guard);
}

namespace {

// Run as the extension owner: application roles cannot read tenancy.tenant_moves. _move_check raises 55006 for a
// frozen tenant and otherwise holds the move row FOR SHARE until the transaction ends.
void
RunMoveCheck(void *arg)
{
	pg_uuid_t *tenant = static_cast<pg_uuid_t *>(arg);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "move_guard: SPI_connect failed");
	Oid types[1] = {UUIDOID};
	Datum values[1] = {UUIDPGetDatum(tenant)};
	int rc = SPI_execute_with_args("SELECT tenancy._move_check(ARRAY[$1]::pg_catalog.uuid[])", 1, types, values, NULL,
	                               false, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "move_guard: the move check failed: %s", SPI_result_code_string(rc));
	SPI_finish();
}

} // namespace

// tenancy.move_guard(tenant_id uuid) -> boolean: true, or 55006 while a live move freezes the tenant's writes; holds
// the freeze off until commit. An admin may guard any tenant; any other caller only its context tenant: the answer
// tells whether a tenant is being moved (and where), and the lock holds off that tenant's freeze.
extern "C" Datum
tenancy_move_guard(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	if (!tenancy::pg::CallerIsAdmin()) {
		pg_uuid_t context;
		if (!tenancy::pg::CurrentTenantId(&context))
			ereport(ERROR, (errcode(TENANCY_ERRCODE_NO_TENANT_CONTEXT), errmsg("no tenant context"),
			                errhint("Call tenancy.set_tenant() first, or use a role with tenancy_admin.")));
		if (memcmp(context.data, tenant->data, UUID_LEN) != 0)
			ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			                errmsg("permission denied for the move guard of another tenant"),
			                errdetail("Roles without tenancy_admin may only guard writes of their context tenant.")));
	}
	tenancy::pg::RunAsExtensionOwner(RunMoveCheck, tenant);
	PG_RETURN_BOOL(true);
}
