// extension/include/tenancy/pg/tenant_cache.hpp
// Per-backend cache of tenant status and hierarchy, flushed by a relcache invalidation of tenancy.tenants.
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

enum class TenantUsability { kUsable, kNotFound, kNotActive };

// Whether the tenant may be a context: it exists and is trial (not expired) or active. Reads tenancy.tenants as
// the extension owner on a cache miss only. Never raises for the tenant's own state.
TenantUsability LookupTenantUsability(const pg_uuid_t *id);

// Raises TN001 (unknown) or TN002 (suspended, cancelled, trial expired) unless the tenant may be a context.
void RequireUsableTenant(const pg_uuid_t *id);

// The tenant and all its descendants (any depth), as a palloc'd array in the caller's memory context; *count is
// set to its length (at least 1: the tenant itself comes first).
pg_uuid_t *TenantAndDescendants(const pg_uuid_t *id, int *count);

} // namespace tenancy::pg
