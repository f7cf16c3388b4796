// extension/pg/audit.cpp
// The append-only, SHA-256-chained audit log: the writer (C API and tenancy._audit, appended at commit), the guard
// trigger and tenancy.verify_audit_log(). Events that must outlive the transaction go through audit_queue.cpp.
#include "tenancy/core/audit_chain.hpp"
#include "tenancy/pg/audit.hpp"
#include "tenancy/pg/audit_queue.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/request_caller.hpp"
#include "tenancy/pg/spi_plan.hpp"
#include "tenancy/pg/tenant_context.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "access/parallel.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_audit);
PG_FUNCTION_INFO_V1(tenancy_audit_guard);
PG_FUNCTION_INFO_V1(tenancy_verify_audit_log);
}

namespace tenancy::pg {

namespace {

// Advisory lock key serialising appends to the chain: (classid, objid) spelled "tena" / 'audit'.
constexpr int32 kAuditLockClass = 0x74656e61;
constexpr int32 kAuditLockObject = 1;

// Set only while WriteAuditEvent moves the chain head; the guard trigger refuses every other UPDATE of the head,
// and every UPDATE, DELETE and TRUNCATE of the log itself. Reset on every path (PG_FINALLY).
bool chain_head_write_allowed = false;

// Everything WriteAuditEvent captured in the caller's identity, queued until the transaction commits.
using PendingEvent = AuditEventData;

const char *
UuidText(const pg_uuid_t *uuid)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(uuid))));
}

const char *
JsonbText(Jsonb *jb)
{
	return JsonbToCString(NULL, &jb->root, VARSIZE(jb));
}

// Builds the core view of an event from PostgreSQL values (PG regime: the text conversions may ereport, so they
// run before CallCore and only plain C strings cross).
struct EventText {
	int64 id;
	TimestampTz occurred_at;
	const char *session_user;
	const char *current_user;
	const char *context_tenant;
	const char *tenant;
	const char *action;
	const char *before;
	const char *after;
};

core::AuditDigest
HashEvent(const core::AuditDigest &prev, const EventText &t)
{
	return CallCore([&] {
		core::AuditEvent e;
		e.id = t.id;
		e.occurred_at_us = t.occurred_at;
		e.session_user = t.session_user;
		e.current_user = t.current_user;
		if (t.context_tenant)
			e.context_tenant = t.context_tenant;
		if (t.tenant)
			e.tenant_id = t.tenant;
		e.action = t.action;
		if (t.before)
			e.before = t.before;
		if (t.after)
			e.after = t.after;
		return core::AuditChainHash(prev, e);
	});
}

bytea *
DigestBytea(const core::AuditDigest &digest)
{
	bytea *out = (bytea *)palloc(VARHDRSZ + digest.size());
	SET_VARSIZE(out, VARHDRSZ + digest.size());
	memcpy(VARDATA(out), digest.data(), digest.size());
	return out;
}

bool
ByteaDigest(Datum value, bool isnull, core::AuditDigest *out)
{
	if (isnull)
		return false;
	bytea *b = DatumGetByteaPP(value);
	if (VARSIZE_ANY_EXHDR(b) != out->size())
		return false;
	memcpy(out->data(), VARDATA_ANY(b), out->size());
	return true;
}

// The four statements of an append, prepared once per backend (SPI_keepplan): parsing and planning them on every
// event cost more than the rest of the append. The plan cache re-plans them after DDL on the audit tables.
enum AppendStatement { kReadHead, kNextId, kInsertEvent, kMoveHead, kAppendStatementCount };
SPIPlanPtr append_plans[kAppendStatementCount];

const Oid kInsertEventTypes[11] = {INT8OID, TIMESTAMPTZOID, TEXTOID,  TEXTOID,  UUIDOID, UUIDOID,
                                   TEXTOID, JSONBOID,       JSONBOID, BYTEAOID, BYTEAOID};
const Oid kMoveHeadTypes[2] = {INT8OID, BYTEAOID};

// Text of each statement, indexed by AppendStatement.
struct AppendStatementText {
	const char *sql;
	int nargs;
	const Oid *types;
};
const AppendStatementText kAppendStatements[kAppendStatementCount] = {
    {"SELECT last_hash FROM tenancy.audit_chain_head", 0, NULL},
    {"SELECT pg_catalog.nextval('tenancy.audit_log_id_seq'::pg_catalog.regclass)", 0, NULL},
    {"INSERT INTO tenancy.audit_log (id, occurred_at, session_user_name, current_user_name, context_tenant_id, "
     "tenant_id, action, before, after, prev_hash, hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
     11, kInsertEventTypes},
    {"INSERT INTO tenancy.audit_chain_head AS h (singleton, last_id, last_hash) VALUES (true, $1, $2) "
     "ON CONFLICT (singleton) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash",
     2, kMoveHeadTypes},
};

SPIPlanPtr
AppendPlan(AppendStatement which)
{
	const AppendStatementText &text = kAppendStatements[which];
	return KeptPlan(&append_plans[which], text.sql, text.nargs, text.types, "an audit log statement");
}

// Runs one append statement on the latest snapshot. The chain lock is held, so the latest snapshot shows the head
// every earlier writer committed; the transaction's own (REPEATABLE READ) snapshot would show a stale head, and
// updating the head from it would be a serialization failure.
void
ExecuteOnLatest(AppendStatement which, Datum *values, const char *nulls, int expected)
{
	if (SPI_execute_snapshot(AppendPlan(which), values, nulls, GetLatestSnapshot(), InvalidSnapshot, false, false, 0) !=
	    expected)
		elog(ERROR, "audit log statement %d failed", static_cast<int>(which));
}

// Appends one queued event after prev and returns its hash. Runs as the extension owner, inside SPI.
core::AuditDigest
AppendOne(const PendingEvent *ev, const core::AuditDigest &prev, int64 *id_out)
{
	ExecuteOnLatest(kNextId, NULL, NULL, SPI_OK_SELECT);
	bool isnull;
	int64 id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	EventText t;
	t.id = id;
	t.occurred_at = ev->occurred_at;
	t.session_user = ev->session_user;
	t.current_user = ev->current_user;
	t.context_tenant = ev->has_context ? UuidText(&ev->context_tenant) : NULL;
	t.tenant = ev->tenant ? UuidText(ev->tenant) : NULL;
	t.action = ev->action;
	t.before = ev->before ? JsonbText(ev->before) : NULL;
	t.after = ev->after ? JsonbText(ev->after) : NULL;
	core::AuditDigest hash = HashEvent(prev, t);

	Datum values[11] = {Int64GetDatum(id),
	                    TimestampTzGetDatum(ev->occurred_at),
	                    CStringGetTextDatum(ev->session_user),
	                    CStringGetTextDatum(ev->current_user),
	                    ev->has_context ? UUIDPGetDatum(&ev->context_tenant) : (Datum)0,
	                    ev->tenant ? UUIDPGetDatum(const_cast<pg_uuid_t *>(ev->tenant)) : (Datum)0,
	                    CStringGetTextDatum(ev->action),
	                    ev->before ? JsonbPGetDatum(ev->before) : (Datum)0,
	                    ev->after ? JsonbPGetDatum(ev->after) : (Datum)0,
	                    PointerGetDatum(DigestBytea(prev)),
	                    PointerGetDatum(DigestBytea(hash))};
	/* 'n' marks SQL NULL for the optional columns: context, tenant, before, after */
	char nulls[11];
	memset(nulls, ' ', sizeof(nulls));
	nulls[4] = ev->has_context ? ' ' : 'n';
	nulls[5] = ev->tenant ? ' ' : 'n';
	nulls[7] = ev->before ? ' ' : 'n';
	nulls[8] = ev->after ? ' ' : 'n';
	ExecuteOnLatest(kInsertEvent, values, nulls, SPI_OK_INSERT);
	*id_out = id;
	return hash;
}

// Runs as the extension owner at commit: takes the chain lock, links every queued event (in the order they were
// written) to the current head, inserts them and moves the head once. The head row lives in its own table so
// deleting the log's tail cannot also rewrite the head.
void
AppendAllAsOwner(void *arg)
{
	List *events = static_cast<List *>(arg);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	/* Held from here to the end of the commit: the next writer links to these events once they are durable. */
	DirectFunctionCall2(pg_advisory_xact_lock_int4, Int32GetDatum(kAuditLockClass), Int32GetDatum(kAuditLockObject));

	ExecuteOnLatest(kReadHead, NULL, NULL, SPI_OK_SELECT);
	core::AuditDigest prev = core::kAuditGenesis;
	if (SPI_processed > 0) {
		bool isnull;
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		if (!ByteaDigest(d, isnull, &prev))
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("audit chain head is corrupted"),
			                errhint("Run tenancy.verify_audit_log() to locate the damage.")));
	}

	int64 last_id = 0;
	ListCell *lc;
	foreach (lc, events)
		prev = AppendOne(static_cast<PendingEvent *>(lfirst(lc)), prev, &last_id);

	Datum head_values[2] = {Int64GetDatum(last_id), PointerGetDatum(DigestBytea(prev))};
	chain_head_write_allowed = true;
	PG_TRY();
	{
		ExecuteOnLatest(kMoveHead, head_values, NULL, SPI_OK_INSERT);
	}
	PG_FINALLY();
	{
		chain_head_write_allowed = false;
	}
	PG_END_TRY();

	SPI_finish();
}

// Events of the current transaction, in TopTransactionContext, appended to the chain at commit. Appending at
// commit keeps the chain lock for the commit only: a transaction that wrote an event and then waits for a row
// lock can never deadlock with another writer, and concurrent writers never wait for each other's work.
List *queued_events = NIL;
// Set once this transaction's events were appended (pre-commit): later events are appended at once.
bool appended_this_xact = false;
bool callbacks_registered = false;

void
AppendQueued(void)
{
	if (queued_events == NIL)
		return;
	List *events = queued_events;
	queued_events = NIL; /* an error below aborts the transaction, which discards the events anyway */
	RunAsExtensionOwner(AppendAllAsOwner, events);
	AuditHeadMoved();
}

void
AuditXactCallback(XactEvent event, void *)
{
	switch (event) {
	case XACT_EVENT_PRE_COMMIT:
	case XACT_EVENT_PRE_PREPARE:
		/* still a normal transaction state: SPI may run, and an error aborts the transaction */
		AppendQueued();
		appended_this_xact = true;
		break;
	case XACT_EVENT_COMMIT:
	case XACT_EVENT_ABORT:
	case XACT_EVENT_PREPARE:
	case XACT_EVENT_PARALLEL_COMMIT:
	case XACT_EVENT_PARALLEL_ABORT:
		/* the list lived in TopTransactionContext, which is going away */
		queued_events = NIL;
		appended_this_xact = false;
		break;
	default:
		break;
	}
}

// A rolled-back subtransaction (ROLLBACK TO SAVEPOINT, a PL/pgSQL exception block) takes its events with it; a
// committed one hands them to its parent.
void
AuditSubXactCallback(SubXactEvent event, SubTransactionId my_subid, SubTransactionId parent_subid, void *)
{
	if (queued_events == NIL || (event != SUBXACT_EVENT_ABORT_SUB && event != SUBXACT_EVENT_COMMIT_SUB))
		return;
	ListCell *lc;
	foreach (lc, queued_events) {
		PendingEvent *ev = static_cast<PendingEvent *>(lfirst(lc));
		if (ev->subid != my_subid)
			continue;
		if (event == SUBXACT_EVENT_COMMIT_SUB)
			ev->subid = parent_subid;
		else
			queued_events = foreach_delete_current(queued_events, lc);
	}
}

// Copies of the caller's values in TopTransactionContext, where they live until the commit appends them.
Jsonb *
CopyJsonb(const Jsonb *jb)
{
	if (jb == NULL)
		return NULL;
	Jsonb *copy = (Jsonb *)palloc(VARSIZE(jb));
	memcpy(copy, jb, VARSIZE(jb));
	return copy;
}

// The tenancyd caller the session acts for (request_caller.cpp), if any, as after's "_caller" key: which token (id,
// role, tenant) or the admin token, the database role that said so, the remote address and the request id. Kept in
// after (an object, or one made for it) so the hash chain covers it with no new column.
Jsonb *
WithRequestCaller(Jsonb *after)
{
	Jsonb *caller = RequestCaller();
	if (caller == NULL || (after != NULL && !JB_ROOT_IS_OBJECT(after)))
		return after;
	StringInfoData buf;
	initStringInfo(&buf);
	appendStringInfoString(&buf, "{\"_caller\": ");
	appendStringInfoString(&buf, JsonbText(caller));
	appendStringInfoChar(&buf, '}');
	Datum wrapped = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	if (after == NULL)
		return DatumGetJsonbP(wrapped);
	return DatumGetJsonbP(DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(after), wrapped));
}

} // namespace

void
CaptureAuditEvent(AuditEventData *ev, const char *action, const pg_uuid_t *tenant, Jsonb *before, Jsonb *after)
{
	if (action == NULL || action[0] == '\0')
		elog(ERROR, "audit event without an action");
	/* Captured now, in the caller's identity: the caller, never the extension owner, and the context it had. */
	Oid session_user = GetSessionUserId(), current_user = GetUserId();
	memset(ev, 0, sizeof(*ev));
	ev->has_context = CurrentTenantId(&ev->context_tenant);
	ev->action = pstrdup(action);
	if (tenant != NULL) {
		pg_uuid_t *copy = (pg_uuid_t *)palloc(sizeof(pg_uuid_t));
		memcpy(copy, tenant, sizeof(pg_uuid_t));
		ev->tenant = copy;
	}
	ev->before = CopyJsonb(before);
	ev->after = CopyJsonb(WithRequestCaller(after));
	ev->session_user = GetUserNameFromId(session_user, false);
	ev->current_user = GetUserNameFromId(current_user, false);
	ev->occurred_at = GetCurrentTimestamp();
	ev->subid = GetCurrentSubTransactionId();
}

void
AppendAuditEvents(List *events)
{
	RunAsExtensionOwner(AppendAllAsOwner, events);
}

namespace {

struct HeadRead {
	int64 id;
	uint8 *hash;
	bool found;
};

void
ReadHeadAsOwner(void *arg)
{
	HeadRead *read = static_cast<HeadRead *>(arg);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute("SELECT last_id, last_hash FROM tenancy.audit_chain_head", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the audit chain head");
	if (SPI_processed > 0) {
		bool id_null, hash_null;
		Datum id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &id_null);
		Datum hash = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &hash_null);
		core::AuditDigest digest;
		if (id_null || !ByteaDigest(hash, hash_null, &digest))
			ereport(ERROR, (errcode(ERRCODE_DATA_CORRUPTED), errmsg("audit chain head is corrupted"),
			                errhint("Run tenancy.verify_audit_log() to locate the damage.")));
		read->id = DatumGetInt64(id);
		memcpy(read->hash, digest.data(), kAuditHashLength);
		read->found = true;
	}
	SPI_finish();
}

} // namespace

bool
ReadAuditChainHead(int64 *id, uint8 hash[kAuditHashLength])
{
	static_assert(std::tuple_size<core::AuditDigest>::value == kAuditHashLength, "SHA-256 digest");
	HeadRead read = {0, hash, false};
	RunAsExtensionOwner(ReadHeadAsOwner, &read);
	*id = read.id;
	return read.found;
}

void
WriteAuditEvent(const char *action, const pg_uuid_t *tenant, Jsonb *before, Jsonb *after)
{
	if (action == NULL || action[0] == '\0')
		elog(ERROR, "audit event without an action");
	if (IsParallelWorker())
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_TRANSACTION_STATE), errmsg("cannot write audit events in a parallel worker")));
	if (!callbacks_registered) {
		RegisterXactCallback(AuditXactCallback, NULL);
		RegisterSubXactCallback(AuditSubXactCallback, NULL);
		callbacks_registered = true;
	}

	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	PendingEvent *ev = (PendingEvent *)palloc0(sizeof(PendingEvent));
	CaptureAuditEvent(ev, action, tenant, before, after);
	queued_events = lappend(queued_events, ev);
	MemoryContextSwitchTo(old);

	/* Written by another module's pre-commit work after ours ran: append it now, the commit is under way. */
	if (appended_this_xact)
		AppendQueued();
}

void
WriteAuditEventOutside(AuditDelivery delivery, const char *action, const pg_uuid_t *tenant, Jsonb *before, Jsonb *after)
{
	if (IsParallelWorker())
		ereport(ERROR,
		        (errcode(ERRCODE_INVALID_TRANSACTION_STATE), errmsg("cannot write audit events in a parallel worker")));
	AuditEventData ev;
	CaptureAuditEvent(&ev, action, tenant, before, after);
	EnqueueAuditEvent(&ev, delivery);
}

} // namespace tenancy::pg

using namespace tenancy;

namespace tenancy::pg {

namespace {

// Every action the extension itself writes (C and SQL). A caller without tenancy_admin may not write these: an
// application role could otherwise plant a "tenant_exported" or "cross_tenant_read" the extension never wrote.
// test/integration/audit_reserved_actions.sh collects the action names from the sources and fails when one is
// missing here, so a new event cannot be added without reserving it.
constexpr const char *kReservedActions[] = {
    "audit_event_imported",
    "audit_events_dropped",
    "cross_tenant_read",
    "master_key_rewrapped",
    "partitions_created",
    "quota_exceeded",
    "quota_override_set",
    "table_partitioned",
    "table_repartitioned",
    "tenant_cancelled",
    "tenant_created",
    "tenant_erased",
    "tenant_exported",
    "tenant_imported",
    "tenant_isolated",
    "tenant_key_created",
    "tenant_key_rotated",
    "tenant_keys_destroyed",
    "tenant_manifest_exported",
    "tenant_move_frozen",
    "tenant_move_handover",
    "tenant_move_rolled_back",
    "tenant_move_slot_created",
    "tenant_move_started",
    "tenant_move_subscribed",
    "tenant_moved_in",
    "tenant_moved_out",
    "tenant_rows_exported",
    "tenant_unisolated",
    "tenant_updated",
    "token_issued",
    "token_revoked",
    "user_added",
    "user_removed",
    "user_role_changed",
};

// True when action, without surrounding white space and ignoring case, is one of the extension's own (so
// "Tenant_Exported " does not pass for a different action either).
bool
IsReservedAction(const char *action)
{
	const char *start = action;
	while (*start == ' ' || *start == '\t' || *start == '\n' || *start == '\r')
		start++;
	size_t len = strlen(start);
	while (len > 0 &&
	       (start[len - 1] == ' ' || start[len - 1] == '\t' || start[len - 1] == '\n' || start[len - 1] == '\r'))
		len--;
	for (const char *reserved : kReservedActions)
		if (strlen(reserved) == len && pg_strncasecmp(start, reserved, len) == 0)
			return true;
	return false;
}

} // namespace

} // namespace tenancy::pg

// tenancy._audit(action, tenant_id, before, after): the SQL doorway to WriteAuditEvent for other areas' SQL code.
// A caller without tenancy_admin may only log events about its own context tenant, so an application role cannot
// plant events about other tenants, and may not use an action name the extension writes itself.
extern "C" Datum
tenancy_audit(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("audit action must not be null")));
	const char *action = text_to_cstring(PG_GETARG_TEXT_PP(0));
	if (action[0] == '\0' || strlen(action) > 100)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("invalid audit action \"%s\"", action),
		                errdetail("An audit action has between 1 and 100 characters.")));
	pg_uuid_t *tenant = PG_ARGISNULL(1) ? NULL : PG_GETARG_UUID_P(1);
	/* the extension's own SQL (run by an admin, or as the owner by a SECURITY DEFINER function) writes anything */
	if (!pg::CallerIsAdmin() && GetUserId() != pg::ExtensionOwnerId()) {
		if (pg::IsReservedAction(action))
			ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			                errmsg("permission denied to write audit events with action \"%s\"", action),
			                errdetail("The action is one the tenancy extension writes itself."),
			                errhint("Choose an action name of your own, for example one starting with \"app.\".")));
		pg_uuid_t context;
		if (tenant == NULL || !pg::CurrentTenantId(&context) || memcmp(&context, tenant, sizeof(context)) != 0)
			ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			                errmsg("permission denied to write audit events about another tenant"),
			                errdetail("Without tenancy_admin, events may only name the current tenant context.")));
	}
	pg::WriteAuditEvent(action, tenant, PG_ARGISNULL(2) ? NULL : PG_GETARG_JSONB_P(2),
	                    PG_ARGISNULL(3) ? NULL : PG_GETARG_JSONB_P(3));
	PG_RETURN_VOID();
}

// Trigger on tenancy.audit_log and tenancy.audit_chain_head: refuses UPDATE, DELETE and TRUNCATE from everyone,
// superusers included, except the head update that WriteAuditEvent itself makes.
extern "C" Datum
tenancy_audit_guard(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("tenancy._audit_guard() must be called as a trigger")));
	TriggerData *trigdata = (TriggerData *)fcinfo->context;
	if (TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) && TRIGGER_FIRED_FOR_ROW(trigdata->tg_event) &&
	    pg::chain_head_write_allowed)
		return PointerGetDatum(trigdata->tg_newtuple);
	ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
	                errmsg("table \"%s\" is append-only", RelationGetRelationName(trigdata->tg_relation)),
	                errdetail("Audit events are written only by the tenancy extension and are never changed or "
	                          "removed.")));
	PG_RETURN_NULL();
}

namespace tenancy::pg {

namespace {

void
ReportProblem(ReturnSetInfo *rsinfo, int64 id, const char *problem)
{
	Datum values[2] = {Int64GetDatum(id), CStringGetTextDatum(problem)};
	bool nulls[2] = {false, false};
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
}

const char *
TextOrNull(HeapTuple tuple, TupleDesc desc, int column)
{
	bool isnull;
	Datum d = SPI_getbinval(tuple, desc, column, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

const char *
UuidOrNull(HeapTuple tuple, TupleDesc desc, int column)
{
	bool isnull;
	Datum d = SPI_getbinval(tuple, desc, column, &isnull);
	return isnull ? NULL : UuidText(DatumGetUUIDP(d));
}

const char *
JsonbOrNull(HeapTuple tuple, TupleDesc desc, int column)
{
	bool isnull;
	Datum d = SPI_getbinval(tuple, desc, column, &isnull);
	return isnull ? NULL : JsonbText(DatumGetJsonbP(d));
}

} // namespace

} // namespace tenancy::pg

// tenancy.verify_audit_log() -> setof (id bigint, problem text): walks the chain in id order and reports every
// altered event (hash mismatch), broken link (an event inserted or removed before it) and a log whose end does not
// match the chain head (events removed from, or appended after, the tail). Empty when the log is intact.
//
// tenancy.verify_audit_log(anchor_seq bigint, anchor_hash bytea): the same, and also a problem when the chain no
// longer holds event anchor_seq with hash anchor_hash, as an anchor line of the server log published it ("tenancy
// audit anchor: db=... seq=... hash=..."): the tail was cut and the head rewound, or the chain rewritten, which the
// chain alone cannot show.
extern "C" Datum
tenancy_verify_audit_log(PG_FUNCTION_ARGS)
{
	bool anchored = PG_NARGS() == 2;
	int64 anchor_id = 0;
	core::AuditDigest anchor_hash{};
	if (anchored) {
		if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
			ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("audit anchor must not be null"),
			                errhint("Pass seq and hash of a \"tenancy audit anchor:\" line of the server log.")));
		anchor_id = PG_GETARG_INT64(0);
		if (!pg::ByteaDigest(PG_GETARG_DATUM(1), false, &anchor_hash))
			ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("invalid audit anchor hash"),
			                errdetail("An anchor hash is a SHA-256 digest of %d bytes.", (int)anchor_hash.size()),
			                errhint("Pass the hash of the anchor line as bytea, for example '\\x' || hex.")));
	}
	bool anchor_seen = false;
	ReturnSetInfo *rsinfo = (ReturnSetInfo *)fcinfo->resultinfo;
	InitMaterializedSRF(fcinfo, 0);
	MemoryContext outer = CurrentMemoryContext;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");

	bool has_head = false;
	int64 head_id = 0;
	core::AuditDigest head_hash{};
	if (SPI_execute("SELECT last_id, last_hash FROM tenancy.audit_chain_head", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read the audit chain head");
	if (SPI_processed > 0) {
		bool isnull;
		has_head = true;
		head_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		Datum d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
		if (!pg::ByteaDigest(d, isnull, &head_hash))
			pg::ReportProblem(rsinfo, head_id, "the chain head holds a malformed hash");
	}

	SPIPlanPtr plan = SPI_prepare("SELECT id, occurred_at, session_user_name, current_user_name, context_tenant_id, "
	                              "tenant_id, action, before, after, prev_hash, hash "
	                              "FROM tenancy.audit_log ORDER BY id",
	                              0, NULL);
	if (plan == NULL)
		elog(ERROR, "could not prepare the audit log scan");
	Portal portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);

	/* Per-batch context: the text conversions of a large log must not accumulate. */
	MemoryContext batch = AllocSetContextCreate(CurrentMemoryContext, "tenancy audit verify", ALLOCSET_DEFAULT_SIZES);
	core::AuditDigest expected_prev = core::kAuditGenesis;
	bool any_row = false, head_seen = false;
	int64 first_id = 0;
	for (;;) {
		SPI_cursor_fetch(portal, true, 1000);
		if (SPI_processed == 0)
			break;
		MemoryContext spi_context = MemoryContextSwitchTo(batch);
		for (uint64 i = 0; i < SPI_processed; i++) {
			HeapTuple tuple = SPI_tuptable->vals[i];
			TupleDesc desc = SPI_tuptable->tupdesc;
			bool isnull;
			CHECK_FOR_INTERRUPTS();

			pg::EventText t;
			t.id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
			Datum at = SPI_getbinval(tuple, desc, 2, &isnull);
			t.occurred_at = isnull ? 0 : DatumGetTimestampTz(at);
			t.session_user = pg::TextOrNull(tuple, desc, 3);
			t.current_user = pg::TextOrNull(tuple, desc, 4);
			t.context_tenant = pg::UuidOrNull(tuple, desc, 5);
			t.tenant = pg::UuidOrNull(tuple, desc, 6);
			t.action = pg::TextOrNull(tuple, desc, 7);
			t.before = pg::JsonbOrNull(tuple, desc, 8);
			t.after = pg::JsonbOrNull(tuple, desc, 9);
			if (!any_row)
				first_id = t.id;
			any_row = true;

			MemoryContext old = MemoryContextSwitchTo(outer);
			core::AuditDigest prev{}, stored{};
			Datum d = SPI_getbinval(tuple, desc, 10, &isnull);
			bool prev_ok = pg::ByteaDigest(d, isnull, &prev);
			d = SPI_getbinval(tuple, desc, 11, &isnull);
			bool stored_ok = pg::ByteaDigest(d, isnull, &stored);
			if (!prev_ok || !stored_ok || !t.session_user || !t.current_user || !t.action)
				pg::ReportProblem(rsinfo, t.id, "malformed event: a required column is missing or malformed");
			else {
				if (prev != expected_prev)
					pg::ReportProblem(rsinfo, t.id,
					                  "broken link: prev_hash does not match the previous event (an event was removed "
					                  "or inserted before this one)");
				if (pg::HashEvent(prev, t) != stored)
					pg::ReportProblem(rsinfo, t.id, "hash mismatch: the event was altered");
			}
			if (has_head && t.id > head_id)
				pg::ReportProblem(rsinfo, t.id, "event lies beyond the chain head (not written by tenancy)");
			if (anchored && t.id == anchor_id) {
				anchor_seen = true;
				if (stored_ok && stored != anchor_hash)
					pg::ReportProblem(rsinfo, t.id,
					                  "the anchored event has another hash than its anchor (the chain was rewritten)");
			}
			if (has_head && t.id == head_id) {
				head_seen = true;
				if (stored != head_hash)
					pg::ReportProblem(rsinfo, t.id, "the chain head does not match this event");
			}
			MemoryContextSwitchTo(old);
			expected_prev = stored;
		}
		MemoryContextSwitchTo(spi_context);
		MemoryContextReset(batch);
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);

	MemoryContext old = MemoryContextSwitchTo(outer);
	if (has_head && !head_seen)
		pg::ReportProblem(rsinfo, head_id,
		                  "event named by the chain head is missing (events were removed from the end of the log)");
	if (!has_head && any_row)
		pg::ReportProblem(rsinfo, first_id, "the audit chain head is missing");
	if (anchored && !anchor_seen) {
		if (!has_head || head_id < anchor_id)
			pg::ReportProblem(rsinfo, anchor_id,
			                  "the anchored event is missing and the chain head lies before it (events were cut from "
			                  "the end of the log and the head rewound)");
		else
			pg::ReportProblem(rsinfo, anchor_id, "the anchored event is missing (events were removed)");
	}
	MemoryContextSwitchTo(old);

	SPI_finish();
	return (Datum)0;
}
