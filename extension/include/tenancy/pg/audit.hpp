// extension/include/tenancy/pg/audit.hpp
// C API of the hash-chained audit log (tenancy.audit_log) for every area of the extension. PG regime.
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

// Records one event for tenancy.audit_log, linked into the SHA-256 chain. action is required (a short snake_case
// verb such as "quota_exceeded"); tenant, before and after may be NULL (they are copied).
// Captures session_user, current_user (GetUserId() at this call: call it before any RunAsExtensionOwner switch, or
// the owner is recorded instead of the caller), the tenant context and the time now. The event is queued in the
// transaction and appended when it commits (or prepares), under the chain lock and as the extension owner, so
// callers need no privilege on the table, writers never wait for each other's work or deadlock on the chain, and a
// rolled-back transaction or savepoint leaves no event. Consequence: the event is not visible in
// tenancy.audit_log to the transaction that wrote it. May ereport (PG regime: never call inside a CallCore lambda);
// refuses to run in a parallel worker.
void WriteAuditEvent(const char *action, const pg_uuid_t *tenant, Jsonb *before, Jsonb *after);

} // namespace tenancy::pg
