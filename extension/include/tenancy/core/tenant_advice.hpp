// extension/include/tenancy/core/tenant_advice.hpp
// The brief's large-tenant thresholds and the action each one calls for (tenancy.tenant_advice()).
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <cstdint>
#include <string>
#include <vector>

namespace tenancy::core {

// Thresholds of the brief: more than 1,000 projects, more than 10,000 API calls an hour, more than 100 GB.
constexpr std::int64_t kAdviceProjects = 1000;
constexpr std::int64_t kAdviceApiCallsPerHour = 10000;
constexpr std::int64_t kAdviceStorageMb = 100 * 1024;

// What is known about one tenant; a negative value means unknown and is never advised on.
struct TenantStats {
	std::int64_t projects = -1;
	std::int64_t api_calls_per_hour = -1;
	std::int64_t storage_mb = -1;
};

struct Advice {
	std::string metric; // projects, api_calls_per_hour, storage_mb
	std::int64_t value; // the tenant's figure
	std::int64_t threshold;
	std::string action; // index, isolate, archive
	std::string reason; // one sentence for the DBA
};

// Every threshold the tenant is over (strictly), in the order projects, API calls, storage.
std::vector<Advice> AdviseTenant(const TenantStats &stats);

} // namespace tenancy::core
