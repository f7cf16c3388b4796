// extension/include/tenancy/pg/tenant_context.hpp
// The tenant context of the current transaction: C API for other areas (PG regime: may ereport).
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

// The tenant context of the current transaction: the tenant given to set_tenant()/set_tenant_token(), else a
// transaction-local app.tenant_id naming a trial/active tenant (ignored in signed mode). Returns false when there
// is none. Cheap: after the first call in a transaction it touches no catalog or table.
bool CurrentTenantId(pg_uuid_t *out);

// Sets the context for the current transaction only (GUC_ACTION_LOCAL: reverted at COMMIT/ROLLBACK, restored by
// ROLLBACK TO SAVEPOINT). Validates nothing: callers check the tenant first (RequireUsableTenant). NULL clears it.
void SetTenantContext(const pg_uuid_t *id);

// Makes id the context until the caller's current GUC nest level is popped (GUC_ACTION_SAVE): for the owner-run
// doorways (RunAsTableOwner), so that work done as a table's owner sees exactly one tenant's rows through the
// table's own policy. The tenant is not validated: only for ids the caller already checked.
void SetTenantContextInNestLevel(const pg_uuid_t *id);

// True when the current transaction declared a WITH HOLD cursor: it then has no tenant context (see
// isolation_hold_cursor.cpp).
bool HoldCursorDeclaredInTransaction(void);

// True when tenancy.context_mode = 'signed': only set_tenant_token (or an admin's set_tenant) sets the context.
bool SignedContextMode(void);

} // namespace tenancy::pg
