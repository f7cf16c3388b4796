// extension/include/tenancy/pg/isolation.hpp
// Shared state of the isolation feature (PG regime): the cross-tenant flag and the "our own DDL" guard.
#pragma once

extern "C" {
#include "postgres.h"
#include "nodes/nodes.h"
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

// Raises 42501 when parsetree (an event trigger's) creates a temporary table that is not ON COMMIT DROP while a
// tenant context or a cross-tenant read is active: the table would carry the tenant's rows past the transaction,
// to the next client of a pooled session.
void RefuseTenantTempTable(Node *parsetree);

// True while enable_isolation/disable_isolation run their own DDL: the event trigger then stays out of the way.
extern bool isolation_work_active;

} // namespace tenancy::pg
