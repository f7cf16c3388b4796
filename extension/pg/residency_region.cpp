// extension/pg/residency_region.cpp
// The superuser setting tenancy.region: the data residency this cluster serves (empty: every residency).
#include "tenancy/pg/module.hpp"

extern "C" {
#include "postgres.h"
#include "utils/guc.h"
}

namespace tenancy::pg {

namespace {

// The values of tenancy.data_residency (sql/src/00_schema.sql); the empty string means single-cluster mode.
const char *const kResidencies[] = {"us", "eu", "uk", "canada", "australia"};

char *region = NULL;

// A typo in postgresql.conf must not silently turn enforcement off: anything but a residency (or empty) is refused.
bool
CheckRegion(char **newval, void **, GucSource)
{
	if (*newval == NULL || **newval == '\0')
		return true;
	for (const char *residency : kResidencies)
		if (strcmp(*newval, residency) == 0)
			return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errmsg("invalid value for parameter \"tenancy.region\": \"%s\"", *newval);
	GUC_check_errhint("Valid regions are us, eu, uk, canada and australia, or empty to accept every residency.");
	return false;
}

// PGC_SUSET: only a superuser (or postgresql.conf) decides which tenants a cluster may hold; no application or
// tenancy_admin session can SET it away to slip a tenant of another residency in.
void
InitResidencyRegion()
{
	DefineCustomStringVariable("tenancy.region",
	                           "Data residency served by this cluster (us, eu, uk, canada, australia).",
	                           "When set, tenants of any other residency are refused (TN005). Empty: every residency.",
	                           &region, "", PGC_SUSET, 0, CheckRegion, NULL, NULL);
}
TENANCY_REGISTER_INIT(InitResidencyRegion, 30);

} // namespace

} // namespace tenancy::pg
