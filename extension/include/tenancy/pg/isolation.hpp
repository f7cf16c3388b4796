// extension/include/tenancy/pg/isolation.hpp
// Shared state of the isolation feature (PG regime): the cross-tenant flag and the "our own DDL" guard.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace tenancy::pg {

// True while a tenancy_admin cross-tenant read is active in this transaction (begin_cross_tenant).
bool CrossTenantActive(void);

// Sets the transaction-local cross-tenant flag (callers check privileges and audit first).
void SetCrossTenantActive(void);

// Protects relid and every partition/inheritance child with the generated policies, RLS, default, index and the
// TRUNCATE guard, recording what it changed under the given root. Runs the DDL as the extension owner: callers
// check the caller's rights first. manage_not_null: also SET NOT NULL (recursing) when the column lacks it.
void IsolateRelation(Oid relid, const char *column, bool include_descendants, Oid root, bool manage_not_null);

// True while enable_isolation/disable_isolation run their own DDL: the event trigger then stays out of the way.
extern bool isolation_work_active;

} // namespace tenancy::pg
