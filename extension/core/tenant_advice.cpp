// extension/core/tenant_advice.cpp
// Maps a tenant's figures to the brief's recommendations: many projects -> index, heavy traffic -> isolate its
// rows in a partition of their own, large storage -> archive.
#include "tenancy/core/tenant_advice.hpp"

namespace tenancy::core {

std::vector<Advice>
AdviseTenant(const TenantStats &stats)
{
	std::vector<Advice> out;
	if (stats.projects > kAdviceProjects)
		out.push_back(Advice{"projects", stats.projects, kAdviceProjects, "index",
		                     "More than 1,000 projects: create indexes that lead with the tenant column for its "
		                     "frequent queries."});
	if (stats.api_calls_per_hour > kAdviceApiCallsPerHour)
		out.push_back(Advice{"api_calls_per_hour", stats.api_calls_per_hour, kAdviceApiCallsPerHour, "isolate",
		                     "More than 10,000 API calls an hour: give its rows a partition of their own with "
		                     "tenancy.isolate_tenant()."});
	if (stats.storage_mb > kAdviceStorageMb)
		out.push_back(Advice{"storage_mb", stats.storage_mb, kAdviceStorageMb, "archive",
		                     "More than 100 GB of rows: archive old rows (tenancy.export_tenant) and delete them."});
	return out;
}

} // namespace tenancy::core
