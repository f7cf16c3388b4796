// extension/include/tenancy/pg/audit.hpp
// C API of the hash-chained audit log (tenancy.audit_log) for every area of the extension. PG regime.
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

// Appends one event to tenancy.audit_log, linked into the SHA-256 chain. action is required (a short snake_case
// verb such as "quota_exceeded"); tenant, before and after may be NULL.
// Records session_user, current_user (GetUserId() at this call: call it before any RunAsExtensionOwner switch, or
// the owner is recorded instead of the caller) and the tenant context; does its own switch to the extension owner
// for the insert, so callers need no privilege on the table. Appends are serialised by a transaction-level lock
// until commit, so concurrent writers never fork the chain. May ereport (PG regime: never call inside CallCore
// without PgCall).
void WriteAuditEvent(const char *action, const pg_uuid_t *tenant, Jsonb *before, Jsonb *after);

} // namespace tenancy::pg
