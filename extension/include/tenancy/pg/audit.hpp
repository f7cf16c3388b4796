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

// How WriteAuditEventOutside's event reaches tenancy.audit_log.
enum class AuditDelivery {
	// Returns only once the audit writer has committed the event, so data handed out after the call is always
	// audited, even if the caller then rolls back or dies. Fails closed: raises (and the caller must hand out
	// nothing) when the event cannot be written: queue full (53400), no writer or tenancy.audit_write_timeout
	// passed (55000), server not started with tenancy in shared_preload_libraries (55000).
	kCommittedBeforeReturn,
	// Returns at once. Dropped when the queue is full (counted: the writer records an audit_events_dropped event,
	// and a WARNING goes to the server log); lost if the server crashes before the writer committed it. For
	// refusals, so that a flood of them stays cheap.
	kQueued,
};

// Records one event like WriteAuditEvent (same capture of the caller), but outside the caller's transaction: a
// background worker of the database (the audit writer) appends it to the chain in a transaction of its own, so
// neither ROLLBACK nor a rolled-back savepoint removes it. For reads across tenants, exports and refusals; changes
// keep WriteAuditEvent (their event belongs to the change). May ereport (PG regime).
void WriteAuditEventOutside(AuditDelivery delivery, const char *action, const pg_uuid_t *tenant, Jsonb *before,
                            Jsonb *after);

} // namespace tenancy::pg
