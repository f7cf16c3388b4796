// extension/include/tenancy/pg/audit_queue.hpp
// Internal to the audit log: the pieces shared by the in-transaction writer (audit.cpp) and the audit queue and its
// background writer (audit_queue.cpp). PG regime: everything here may ereport.
#pragma once

#include "tenancy/pg/audit.hpp"

extern "C" {
#include "postgres.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

constexpr int kAuditHashLength = 32;

// One event as captured in the caller's identity; its strings and values live in one memory context.
struct AuditEventData {
	const char *action;
	const pg_uuid_t *tenant; /* NULL: no tenant */
	Jsonb *before;           /* NULL: SQL NULL */
	Jsonb *after;
	const char *session_user;
	const char *current_user;
	pg_uuid_t context_tenant;
	bool has_context;
	TimestampTz occurred_at;
	SubTransactionId subid; /* in-transaction events only: the subtransaction that wrote it */
};

// Fills ev from the caller (session_user, current_user, tenant context, now) with copies in CurrentMemoryContext.
void CaptureAuditEvent(AuditEventData *ev, const char *action, const pg_uuid_t *tenant, Jsonb *before, Jsonb *after);

// Appends events (a List of AuditEventData *, in order) to the chain in the current transaction, as the extension
// owner and under the chain lock (held to the end of the transaction).
void AppendAuditEvents(List *events);

// The chain head (id and hash of the newest event) as the current snapshot sees it; false when the log is empty.
bool ReadAuditChainHead(int64 *id, uint8 hash[kAuditHashLength]);

// Hands ev to the audit writer (audit_queue.cpp); see AuditDelivery.
void EnqueueAuditEvent(const AuditEventData *ev, AuditDelivery delivery);

// Called before the commit of a transaction that moved the chain head: makes sure an audit writer will publish an
// anchor for the new head (tenancy.audit_anchor_interval). Never ereports for a writer that cannot start.
void AuditHeadMoved(void);

} // namespace tenancy::pg
