// extension/pg/isolation_cross_tenant.cpp
// begin_cross_tenant: the explicit, audited path by which tenancy_admin members read every tenant's rows.
#include "tenancy/pg/boundary.hpp" /* core headers first: audit.hpp includes postgres.h */
#include "tenancy/pg/audit.hpp"
#include "tenancy/pg/isolation.hpp"
#include "tenancy/pg/privilege.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/jsonb.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_begin_cross_tenant);
}

using namespace tenancy;

// tenancy.begin_cross_tenant(reason text): for the rest of the transaction, the tenancy_admin_cross_tenant policy
// of every isolated table lets this role read all rows (never write them: that policy is FOR SELECT). The reason is
// required and written to the audit log with the calling role, so a cross-tenant read is never silent: the event is
// committed by the audit writer before this returns (a ROLLBACK of the caller cannot remove it), and no row can be
// read across tenants when it could not be written.
extern "C" Datum
tenancy_begin_cross_tenant(PG_FUNCTION_ARGS)
{
	const char *reason = text_to_cstring(PG_GETARG_TEXT_PP(0));
	pg::RequireAdmin("read across tenants");
	if (strspn(reason, " \t\r\n") == strlen(reason))
		ereport(ERROR,
		        (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("a reason for the cross-tenant read is required"),
		         errhint("Say why every tenant's rows must be read, for the audit log.")));
	StringInfoData json;
	initStringInfo(&json);
	appendStringInfoString(&json, "{\"reason\": ");
	escape_json(&json, reason);
	appendStringInfoChar(&json, '}');
	Jsonb *after = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(json.data)));
	pg::WriteAuditEventOutside(pg::AuditDelivery::kCommittedBeforeReturn, "cross_tenant_read", NULL, NULL, after);
	pg::SetCrossTenantActive();
	PG_RETURN_VOID();
}
