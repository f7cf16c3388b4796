// extension/pg/quota_access.cpp
// Authorization of quota calls (admin any tenant, app roles their context tenant) and shared argument parsing.
#include "tenancy/pg/quota_access.hpp"

#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_context.hpp"

#include <string_view>

extern "C" {
#include "postgres.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"
}

namespace tenancy::pg {

void
RequireQuotaAccess(const pg_uuid_t *tenant)
{
	if (CallerIsAdmin())
		return;
	pg_uuid_t context;
	if (!CurrentTenantId(&context))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_NO_TENANT_CONTEXT), errmsg("no tenant context"),
		                errhint("Call tenancy.set_tenant() first, or use a role with tenancy_admin.")));
	if (memcmp(context.data, tenant->data, UUID_LEN) != 0)
		ereport(ERROR,
		        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("permission denied for the quotas of another tenant"),
		         errdetail("Roles without tenancy_admin may only meter their context tenant.")));
}

core::QuotaMetric
QuotaMetricArg(text *name)
{
	/* compared in place: consume parses its metric on every call, and a copy would be an allocation per call */
	std::string_view metric(VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name));
	return CallCore([&] { return core::ParseQuotaMetricOrThrow(metric); });
}

int64
QuotaUnixMicros(TimestampTz ts)
{
	if (TIMESTAMP_NOT_FINITE(ts))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("timestamp must be finite")));
	return ts + (int64{POSTGRES_EPOCH_JDATE} - UNIX_EPOCH_JDATE) * USECS_PER_DAY;
}

} // namespace tenancy::pg
