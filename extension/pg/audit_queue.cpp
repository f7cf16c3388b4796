// extension/pg/audit_queue.cpp
// Audit events that outlive the caller's transaction (reads across tenants, exports, refusals) and the outside
// anchor of the chain head. A backend copies the event into a queue in shared memory; the audit writer, a dynamic
// background worker of that database, appends it to tenancy.audit_log through the ordinary chained append, in a
// transaction of its own, and wakes the backend once it committed. The writer also writes the chain head to the
// server log ("tenancy audit anchor: db=... seq=... hash=..."), where the database superuser cannot rewrite it.
//
// Why one writer per database, started on demand: a background worker connects to one database for life, and
// events belong to the database they were written in. A static launcher would still have to start one worker per
// database, and a worker idling in a database blocks DROP DATABASE; so a backend starts the writer of its database
// when it queues an event (or moves the chain head) and none runs, and the writer exits once idle: at once when no
// client is connected to its database any more, else after kIdleExit.
//
// Plain C-style code in the PG regime throughout: no C++ object with a destructor is alive across a call that may
// ereport (the PG_TRY blocks below hold none).
#include "tenancy/pg/audit.hpp"
#include "tenancy/pg/audit_queue.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/privilege.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/indexing.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_extension.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/condition_variable.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/wait_event.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_audit_anchor);

/* background worker entry point (bgw_function_name) */
PGDLLEXPORT void tenancy_audit_writer_main(Datum arg);
}

namespace tenancy::pg {

namespace {

constexpr Size kChunk = 256;          // queue allocation unit; an event takes as many adjacent chunks as it needs
constexpr int kMaxWriters = 64;       // databases with a writer (or unreported drops) at once
constexpr int kBatch = 64;            // events appended per writer transaction
constexpr long kPollMs = 250;         // writer's idle tick, and its exit check
constexpr long kIdleExitMs = 30000;   // a writer idle this long exits even while clients are connected
constexpr long kStartGraceMs = 10000; // a writer asked for this long ago that never registered is presumed dead
constexpr long kWarnEveryMs = 10000;  // least time between two "queue full" warnings of one backend
constexpr int kQueuedShare = 75;      // percent of the queue that queued (not waited for) events may hold

enum RecordState : uint8 { kPending = 1, kWriting = 2, kWritten = 3, kFailed = 4 };
enum ChunkMark : uint8 { kChunkFree = 0, kChunkStart = 1, kChunkBody = 2 };

// One database's writer: running (pid set), being started (starting), or gone with drops still to report.
struct Writer {
	Oid db; /* InvalidOid: entry free */
	pid_t pid;
	Latch *latch;
	bool starting;
	TimestampTz start_requested;
	uint64 dropped; /* queued events of this database dropped (queue full) and not yet recorded */
};

// Header of a queued event, at the start of its first chunk; the strings and jsonb bytes follow it.
struct Record {
	uint64 seq; /* order of the queue, and identity of the record for its waiter */
	Oid db;
	uint32 nchunks;
	uint8 state;
	bool wait;      /* a backend waits for kWritten / kFailed and frees the record */
	bool abandoned; /* its waiter left (error, cancel, timeout): the writer frees it */
	bool has_tenant;
	bool has_context;
	pg_uuid_t tenant;
	pg_uuid_t context;
	TimestampTz occurred_at;
	uint32 action_len, session_user_len, current_user_len; /* with the terminating NUL */
	uint32 before_len, after_len;                          /* jsonb varlena sizes, 0 for SQL NULL */
};

struct QueueShared {
	LWLock *lock;              /* everything below, the marks and the records */
	ConditionVariable written; /* broadcast when records reach kWritten or kFailed */
	uint64 next_seq;
	uint32 nchunks;
	uint32 cursor;      /* first-fit allocation starts here */
	uint32 queued_used; /* chunks held by kQueued events: at most kQueuedShare of the queue */
	Writer writers[kMaxWriters];
	uint8 marks[FLEXIBLE_ARRAY_MEMBER]; /* ChunkMark per chunk */
};

QueueShared *queue = NULL;
char *chunks = NULL;

int queue_size_kb = 1024;
int anchor_interval_s = 60;
int write_timeout_ms = 30000;

shmem_request_hook_type prev_shmem_request_hook = NULL;
shmem_startup_hook_type prev_shmem_startup_hook = NULL;

Size
QueueHeaderSize(uint32 nchunks)
{
	return MAXALIGN(add_size(offsetof(QueueShared, marks), nchunks));
}

uint32
QueueChunks(void)
{
	return (uint32)((Size)queue_size_kb * 1024 / kChunk);
}

void
AuditQueueShmemRequest(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(add_size(QueueHeaderSize(QueueChunks()), mul_size(QueueChunks(), kChunk)));
	RequestNamedLWLockTranche("tenancy_audit_queue", 1);
}

// Runs in the postmaster at start and after every crash restart: the queue starts empty (events queued with
// kQueued and not yet written when the server crashed are lost, as AuditDelivery documents).
void
AuditQueueShmemStartup(void)
{
	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	uint32 n = QueueChunks();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	bool found;
	queue = static_cast<QueueShared *>(ShmemInitStruct("tenancy audit queue", QueueHeaderSize(n), &found));
	bool chunks_found;
	chunks = static_cast<char *>(ShmemInitStruct("tenancy audit queue chunks", mul_size(n, kChunk), &chunks_found));
	if (!found) {
		memset(queue, 0, QueueHeaderSize(n));
		queue->lock = &(GetNamedLWLockTranche("tenancy_audit_queue"))->lock;
		ConditionVariableInit(&queue->written);
		queue->nchunks = n;
	}
	LWLockRelease(AddinShmemInitLock);
}

void
InitAuditQueue(void)
{
	DefineCustomIntVariable("tenancy.audit_anchor_interval",
	                        "Least time between two anchors of the audit chain head written to the server log.",
	                        "0 turns anchoring off. A busy database's head is anchored at most this often, and "
	                        "whenever its audit writer goes idle.",
	                        &anchor_interval_s, 60, 0, 86400, PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("tenancy.audit_write_timeout",
	                        "Longest wait for the audit writer to commit the event of a read across tenants or an "
	                        "export; the call fails (and hands out nothing) after it.",
	                        NULL, &write_timeout_ms, 30000, 100, INT_MAX, PGC_SUSET, GUC_UNIT_MS, NULL, NULL, NULL);
	if (!LoadedAtStartup())
		return;
	DefineCustomIntVariable("tenancy.audit_queue_size", "Shared memory for audit events waiting for the audit writer.",
	                        "Reads across tenants and exports fail while it is full; refusals are dropped.",
	                        &queue_size_kb, 1024, 64, 1024 * 1024, PGC_POSTMASTER, GUC_UNIT_KB, NULL, NULL, NULL);
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = AuditQueueShmemRequest;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = AuditQueueShmemStartup;
}
TENANCY_REGISTER_INIT(InitAuditQueue, 40);

Record *
RecordAt(uint32 start)
{
	return reinterpret_cast<Record *>(chunks + (Size)start * kChunk);
}

char *
RecordData(Record *r)
{
	return reinterpret_cast<char *>(r) + MAXALIGN(sizeof(Record));
}

// Lock held (exclusive). First fit of n adjacent free chunks from the cursor, wrapping once; -1 when none.
int64
FindRun(uint32 n)
{
	uint32 total = queue->nchunks, run = 0, i = queue->cursor;
	for (uint64 step = 0; step < 2 * (uint64)total + 1; step++) {
		if (i >= total) {
			i = 0;
			run = 0;
		}
		if (queue->marks[i] == kChunkFree) {
			if (++run == n)
				return (int64)i + 1 - n;
		} else
			run = 0;
		i++;
	}
	return -1;
}

// Lock held (exclusive).
void
FreeRecord(uint32 start)
{
	Record *r = RecordAt(start);
	uint32 n = r->nchunks;
	if (!r->wait)
		queue->queued_used -= n;
	r->state = 0;
	r->seq = 0;
	memset(&queue->marks[start], kChunkFree, n);
}

// Lock held. The entry of db, or NULL.
Writer *
FindWriter(Oid db)
{
	for (Writer &w : queue->writers)
		if (w.db == db)
			return &w;
	return NULL;
}

// Lock held (exclusive). The entry of db, claimed if it had none; NULL when every entry is taken.
Writer *
ClaimWriter(Oid db)
{
	Writer *w = FindWriter(db);
	if (w != NULL)
		return w;
	for (Writer &e : queue->writers)
		if (e.db == InvalidOid) {
			memset(&e, 0, sizeof(e));
			e.db = db;
			return &e;
		}
	return NULL;
}

enum class WriterState { kRunning, kMustStart, kStarting, kNoRoom };

// Lock held (exclusive). What the caller must do so that db's events get written: set *latch (running), start a
// writer (the entry is marked starting: the caller must call StartWriter, then WriterStartFailed if it failed),
// nothing (another backend is starting one), or give up (no entry free).
WriterState
PrepareWriter(Oid db, Latch **latch)
{
	*latch = NULL;
	Writer *w = ClaimWriter(db);
	if (w == NULL)
		return WriterState::kNoRoom;
	if (w->pid != 0) {
		*latch = w->latch;
		return WriterState::kRunning;
	}
	TimestampTz now = GetCurrentTimestamp();
	if (w->starting && !TimestampDifferenceExceeds(w->start_requested, now, kStartGraceMs))
		return WriterState::kStarting;
	w->starting = true;
	w->start_requested = now;
	return WriterState::kMustStart;
}

void
WriterStartFailed(Oid db)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	Writer *w = FindWriter(db);
	if (w != NULL && w->pid == 0) {
		w->starting = false;
		if (w->dropped == 0)
			w->db = InvalidOid;
	}
	LWLockRelease(queue->lock);
}

// The role the writer connects as: the extension's owner (pg_extension.extowner, the role that ran CREATE
// EXTENSION). PostgreSQL 15 lets no background worker connect as a NOLOGIN role; then it connects as the bootstrap
// superuser (InvalidOid). Either way it writes as the extension owner (RunAsExtensionOwner), with search_path
// pinned. Cached: a backend never changes database.
Oid
WriterLoginRole(void)
{
	static bool looked_up = false;
	static Oid role = InvalidOid;
	if (looked_up)
		return role;
	Oid owner = ExtensionCreatorId();
	if (OidIsValid(owner)) {
		HeapTuple r = SearchSysCache1(AUTHOID, ObjectIdGetDatum(owner));
		if (!HeapTupleIsValid(r) || !((Form_pg_authid)GETSTRUCT(r))->rolcanlogin)
			owner = InvalidOid;
		if (HeapTupleIsValid(r))
			ReleaseSysCache(r);
	}
	role = owner;
	looked_up = true;
	return role;
}

// Asks the postmaster for a writer of db (the caller marked the entry starting). False when no worker slot is free.
bool
StartWriter(Oid db, Oid login)
{
	BackgroundWorker worker;
	memset(&worker, 0, sizeof(worker));
	snprintf(worker.bgw_name, BGW_MAXLEN, "tenancy audit writer for database %u", db);
	snprintf(worker.bgw_type, BGW_MAXLEN, "tenancy audit writer");
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "tenancy");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "tenancy_audit_writer_main");
	worker.bgw_main_arg = ObjectIdGetDatum(db);
	memcpy(worker.bgw_extra, &login, sizeof(login));
	worker.bgw_notify_pid = 0;
	return RegisterDynamicBackgroundWorker(&worker, NULL);
}

// Acts on PrepareWriter's answer, the lock released. False when a needed writer could not be started.
bool
PokeWriter(WriterState state, Latch *latch, Oid db, Oid login)
{
	switch (state) {
	case WriterState::kRunning:
		SetLatch(latch); /* harmless if the writer just exited: its latch has no owner then */
		return true;
	case WriterState::kStarting:
		return true;
	case WriterState::kMustStart:
		if (StartWriter(db, login))
			return true;
		WriterStartFailed(db);
		return false;
	case WriterState::kNoRoom:
		return false;
	}
	return false;
}

// Lock held (exclusive) or not at all (then taken). The waiter of the record at start leaves: the record is freed
// now unless the writer is appending it (then the writer frees it).
void
AbandonRecord(uint32 start, uint64 seq)
{
	if (!LWLockHeldByMeInMode(queue->lock, LW_EXCLUSIVE)) {
		if (LWLockHeldByMe(queue->lock))
			LWLockRelease(queue->lock);
		LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	}
	Record *r = RecordAt(start);
	if (queue->marks[start] == kChunkStart && r->seq == seq) {
		if (r->state == kWriting)
			r->abandoned = true;
		else
			FreeRecord(start);
	}
	LWLockRelease(queue->lock);
}

void
WarnDropped(const char *action)
{
	static TimestampTz last_warning = 0;
	TimestampTz now = GetCurrentTimestamp();
	if (last_warning != 0 && !TimestampDifferenceExceeds(last_warning, now, kWarnEveryMs))
		return;
	last_warning = now;
	ereport(WARNING, (errmsg("audit event \"%s\" dropped: the audit queue is full", action),
	                  errdetail("The audit writer records the number of dropped events as an audit_events_dropped "
	                            "event."),
	                  errhint("Raise tenancy.audit_queue_size, or look for a stalled audit writer.")));
}

// Waits until the writer committed (or failed) the record at start; frees it. Errors leave no record behind.
void
WaitWritten(uint32 start, uint64 seq, Oid db, Oid login, const char *action)
{
	TimestampTz deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), write_timeout_ms);
	volatile uint8 outcome = 0;
	volatile bool timed_out = false, no_writer = false;
	PG_TRY();
	{
		ConditionVariablePrepareToSleep(&queue->written);
		for (;;) {
			Latch *latch = NULL;
			WriterState writer = WriterState::kRunning;
			LWLockAcquire(queue->lock, LW_EXCLUSIVE);
			Record *r = RecordAt(start);
			Assert(r->seq == seq);
			if (r->state == kWritten || r->state == kFailed) {
				outcome = r->state;
				FreeRecord(start);
			} else if (r->state == kPending)
				writer = PrepareWriter(db, &latch); /* the writer may have exited (or died) meanwhile */
			LWLockRelease(queue->lock);
			if (outcome != 0)
				break;
			if (writer != WriterState::kRunning && !PokeWriter(writer, latch, db, login)) {
				no_writer = true;
				break;
			}
			long remaining_ms = TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline);
			if (remaining_ms <= 0) {
				timed_out = true;
				break;
			}
			ConditionVariableTimedSleep(&queue->written, Min(remaining_ms, 1000L), PG_WAIT_EXTENSION);
		}
		ConditionVariableCancelSleep();
	}
	PG_CATCH();
	{
		/* cancelled or terminated while waiting: the event may still be written, but this caller reads nothing */
		ConditionVariableCancelSleep();
		AbandonRecord(start, seq);
		PG_RE_THROW();
	}
	PG_END_TRY();

	if (outcome == kWritten)
		return;
	if (outcome != kFailed)
		AbandonRecord(start, seq);
	if (no_writer)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("could not start the audit writer for event \"%s\"", action),
		                errdetail("Every background worker slot is taken; the event was not written and nothing was "
		                          "read."),
		                errhint("Raise max_worker_processes, or retry later.")));
	if (timed_out)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
		                errmsg("audit writer did not write event \"%s\" in time", action),
		                errdetail("Waited tenancy.audit_write_timeout (%d ms); nothing was read.", write_timeout_ms),
		                errhint("Look for a stalled audit writer in the server log or pg_stat_activity, or a lock on "
		                        "the audit tables held by this or another transaction.")));
	ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
	                errmsg("audit writer could not write event \"%s\"", action),
	                errdetail("The event was not written and nothing was read; the server log has the cause.")));
}

} // namespace

void
EnqueueAuditEvent(const AuditEventData *ev, AuditDelivery delivery)
{
	bool wait = delivery == AuditDelivery::kCommittedBeforeReturn;
	if (queue == NULL) {
		if (wait)
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("audit writer is not available"),
			                errdetail("Event \"%s\" must be written outside the transaction, which needs tenancy in "
			                          "shared_preload_libraries.",
			                          ev->action),
			                errhint("Add tenancy to shared_preload_libraries and restart the server.")));
		/* a refusal without the writer: best effort, in the transaction */
		WriteAuditEvent(ev->action, ev->tenant, ev->before, ev->after);
		return;
	}
	if (RecoveryInProgress()) {
		if (wait)
			ereport(ERROR, (errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			                errmsg("cannot write audit event \"%s\" during recovery", ev->action)));
		return;
	}

	Oid db = MyDatabaseId;
	Oid login = WriterLoginRole(); /* catalog access: before the lock */
	uint32 lens[5] = {(uint32)strlen(ev->action) + 1, (uint32)strlen(ev->session_user) + 1,
	                  (uint32)strlen(ev->current_user) + 1, ev->before ? (uint32)VARSIZE(ev->before) : 0,
	                  ev->after ? (uint32)VARSIZE(ev->after) : 0};
	Size need = MAXALIGN(sizeof(Record));
	for (uint32 len : lens)
		need = add_size(need, len);
	Size nchunks = (need + kChunk - 1) / kChunk;

	Latch *latch = NULL;
	WriterState writer = WriterState::kNoRoom;
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	/* Queued events (refusals) may fill only kQueuedShare of the queue: a flood of them can never crowd out the
	 * event of a read, which would then fail closed. */
	bool fits = nchunks <= queue->nchunks &&
	            (wait || queue->queued_used + nchunks <= (uint64)queue->nchunks * kQueuedShare / 100);
	int64 start = fits ? FindRun((uint32)nchunks) : -1;
	if (start < 0) {
		if (!wait) {
			Writer *w = ClaimWriter(db);
			if (w != NULL)
				w->dropped++;
			writer = PrepareWriter(db, &latch); /* to drain the queue and record the drop */
		}
		LWLockRelease(queue->lock);
		if (wait)
			ereport(ERROR,
			        (errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED), errmsg("audit queue is full"),
			         errdetail("Event \"%s\" could not be queued for the audit writer; nothing was read.", ev->action),
			         errhint("Retry later, or raise tenancy.audit_queue_size.")));
		WarnDropped(ev->action);
		PokeWriter(writer, latch, db, login);
		return;
	}

	Record *r = RecordAt((uint32)start);
	memset(r, 0, sizeof(Record));
	r->seq = ++queue->next_seq;
	r->db = db;
	r->nchunks = (uint32)nchunks;
	r->state = kPending;
	r->wait = wait;
	r->has_tenant = ev->tenant != NULL;
	if (ev->tenant)
		r->tenant = *ev->tenant;
	r->has_context = ev->has_context;
	r->context = ev->context_tenant;
	r->occurred_at = ev->occurred_at;
	r->action_len = lens[0];
	r->session_user_len = lens[1];
	r->current_user_len = lens[2];
	r->before_len = lens[3];
	r->after_len = lens[4];
	char *p = RecordData(r);
	const void *parts[5] = {ev->action, ev->session_user, ev->current_user, ev->before, ev->after};
	for (int i = 0; i < 5; i++) {
		if (lens[i] > 0)
			memcpy(p, parts[i], lens[i]);
		p += lens[i];
	}
	queue->marks[start] = kChunkStart;
	if (nchunks > 1)
		memset(&queue->marks[start + 1], kChunkBody, nchunks - 1);
	queue->cursor = (uint32)(start + nchunks) % queue->nchunks;
	if (!wait)
		queue->queued_used += (uint32)nchunks;
	uint64 seq = r->seq;
	writer = PrepareWriter(db, &latch);
	LWLockRelease(queue->lock);

	bool poked = PokeWriter(writer, latch, db, login);
	if (wait) {
		if (!poked) {
			AbandonRecord((uint32)start, seq);
			ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			                errmsg("could not start the audit writer for event \"%s\"", ev->action),
			                errdetail("Every background worker slot is taken; the event was not written and nothing "
			                          "was read."),
			                errhint("Raise max_worker_processes, or retry later.")));
		}
		WaitWritten((uint32)start, seq, db, login, ev->action);
	}
	/* kQueued with no writer: the event waits in the queue for the next writer of this database */
}

void
AuditHeadMoved(void)
{
	if (queue == NULL || anchor_interval_s == 0 || IsBackgroundWorker)
		return;
	Oid db = MyDatabaseId;
	LWLockAcquire(queue->lock, LW_SHARED);
	Writer *w = FindWriter(db);
	bool covered = w != NULL && (w->pid != 0 || w->starting);
	LWLockRelease(queue->lock);
	if (covered)
		return;
	Oid login = WriterLoginRole();
	Latch *latch;
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	WriterState state = PrepareWriter(db, &latch);
	LWLockRelease(queue->lock);
	if (state == WriterState::kMustStart && !PokeWriter(state, latch, db, login))
		ereport(LOG, (errmsg("could not start the tenancy audit writer to anchor the audit chain head"),
		              errhint("Raise max_worker_processes.")));
}

namespace {

// ---- the audit writer (background worker) ----

Oid writer_db = InvalidOid;
bool writer_registered = false; /* this process is (or was) the writer of writer_db */
char *writer_db_name = NULL;
bool anchor_logged = false;
int64 anchor_id = 0;
uint8 anchor_hash[kAuditHashLength];

struct TakenRecord {
	uint32 start;
	uint64 seq;
};

int
CompareTaken(const void *a, const void *b)
{
	uint64 x = static_cast<const TakenRecord *>(a)->seq, y = static_cast<const TakenRecord *>(b)->seq;
	return x < y ? -1 : (x > y ? 1 : 0);
}

// Under the lock: the oldest pending records of this database, marked kWriting. Returns how many.
int
TakeBatch(TakenRecord *taken)
{
	int count = 0;
	/* all pending records of the database, oldest kBatch kept: the scan is over a few thousand marks */
	TakenRecord *all = static_cast<TakenRecord *>(palloc(sizeof(TakenRecord) * (queue->nchunks + 1)));
	int nall = 0;
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	for (uint32 i = 0; i < queue->nchunks;) {
		if (queue->marks[i] != kChunkStart) {
			i++;
			continue;
		}
		Record *r = RecordAt(i);
		if (r->db == writer_db && r->state == kPending)
			all[nall++] = TakenRecord{i, r->seq};
		i += r->nchunks;
	}
	if (nall > 1)
		qsort(all, nall, sizeof(TakenRecord), CompareTaken);
	for (int i = 0; i < nall && count < kBatch; i++) {
		RecordAt(all[i].start)->state = kWriting;
		taken[count++] = all[i];
	}
	LWLockRelease(queue->lock);
	pfree(all);
	return count;
}

// The event of a kWriting record, copied into CurrentMemoryContext (only this writer touches a kWriting record's
// contents, so no lock is needed).
AuditEventData *
EventOf(uint32 start)
{
	Record *r = RecordAt(start);
	AuditEventData *ev = static_cast<AuditEventData *>(palloc0(sizeof(AuditEventData)));
	const char *p = RecordData(r);
	ev->action = pstrdup(p);
	p += r->action_len;
	ev->session_user = pstrdup(p);
	p += r->session_user_len;
	ev->current_user = pstrdup(p);
	p += r->current_user_len;
	if (r->before_len > 0) {
		ev->before = static_cast<Jsonb *>(palloc(r->before_len));
		memcpy(ev->before, p, r->before_len);
	}
	p += r->before_len;
	if (r->after_len > 0) {
		ev->after = static_cast<Jsonb *>(palloc(r->after_len));
		memcpy(ev->after, p, r->after_len);
	}
	if (r->has_tenant) {
		pg_uuid_t *tenant = static_cast<pg_uuid_t *>(palloc(sizeof(pg_uuid_t)));
		*tenant = r->tenant;
		ev->tenant = tenant;
	}
	ev->has_context = r->has_context;
	ev->context_tenant = r->context;
	ev->occurred_at = r->occurred_at;
	return ev;
}

// Appends events in one transaction of the writer; false (logged) when it failed and was rolled back.
bool
AppendInOwnTransaction(List *events)
{
	MemoryContext caller = CurrentMemoryContext;
	volatile bool ok = true;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, "tenancy audit writer: appending events");
	PG_TRY();
	{
		AppendAuditEvents(events);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller);
		ErrorData *error = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG, (errmsg("tenancy audit writer could not append %d audit event(s): %s", list_length(events),
		                     error->message)));
		FreeErrorData(error);
		ok = false;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	MemoryContextSwitchTo(caller);
	return ok;
}

// Under the lock: the outcome of taken records; waiters learn it from the condition variable.
void
FinishRecords(const TakenRecord *taken, int count, bool written)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	for (int i = 0; i < count; i++) {
		Record *r = RecordAt(taken[i].start);
		if (r->seq != taken[i].seq)
			continue;
		if (r->wait && !r->abandoned)
			r->state = written ? kWritten : kFailed;
		else {
			if (!written)
				ereport(LOG,
				        (errmsg("tenancy audit writer dropped audit event \"%s\" it could not append", RecordData(r))));
			FreeRecord(taken[i].start);
		}
	}
	LWLockRelease(queue->lock);
	ConditionVariableBroadcast(&queue->written);
}

// Writes the pending events of the database, a batch per transaction; a failed batch is retried one event at a
// time so one bad event cannot hold back the others. Returns the number of events taken.
int
DrainQueue(MemoryContext scratch)
{
	TakenRecord taken[kBatch];
	int count = TakeBatch(taken);
	if (count == 0)
		return 0;
	MemoryContext old = MemoryContextSwitchTo(scratch);
	List *events = NIL;
	for (int i = 0; i < count; i++)
		events = lappend(events, EventOf(taken[i].start));
	if (AppendInOwnTransaction(events))
		FinishRecords(taken, count, true);
	else
		for (int i = 0; i < count; i++)
			FinishRecords(&taken[i], 1, AppendInOwnTransaction(list_make1(list_nth(events, i))));
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch);
	return count;
}

// Records queued events of this database that backends dropped (queue full) as one audit_events_dropped event.
void
RecordDrops(MemoryContext scratch)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	Writer *w = FindWriter(writer_db);
	uint64 dropped = w ? w->dropped : 0;
	if (w)
		w->dropped = 0;
	LWLockRelease(queue->lock);
	if (dropped == 0)
		return;
	MemoryContext old = MemoryContextSwitchTo(scratch);
	AuditEventData *ev = static_cast<AuditEventData *>(palloc0(sizeof(AuditEventData)));
	ev->action = "audit_events_dropped";
	char *doc = psprintf("{\"dropped\": " UINT64_FORMAT ", \"reason\": \"audit queue full\"}", dropped);
	ev->occurred_at = GetCurrentTimestamp();
	bool ok = false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	MemoryContextSwitchTo(scratch);
	/* the writer's own login role (catalog access needs the transaction) */
	ev->session_user = GetUserNameFromId(GetSessionUserId(), false);
	ev->current_user = ev->session_user;
	ev->after = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(doc)));
	CommitTransactionCommand();
	MemoryContextSwitchTo(scratch);
	ok = AppendInOwnTransaction(list_make1(ev));
	if (!ok) {
		LWLockAcquire(queue->lock, LW_EXCLUSIVE);
		if ((w = FindWriter(writer_db)) != NULL)
			w->dropped += dropped;
		LWLockRelease(queue->lock);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(scratch);
}

// Writes the chain head to the server log, unless it is the one this writer logged last (when only_if_changed).
void
LogAnchor(bool only_if_changed)
{
	MemoryContext caller = CurrentMemoryContext;
	int64 id = 0;
	uint8 hash[kAuditHashLength];
	volatile bool found = false;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PushActiveSnapshot(GetTransactionSnapshot());
	PG_TRY();
	{
		found = ReadAuditChainHead(&id, hash);
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller);
		ErrorData *error = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(LOG, (errmsg("tenancy audit writer could not read the audit chain head: %s", error->message)));
		FreeErrorData(error);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	if (!found)
		return;
	if (only_if_changed && anchor_logged && id == anchor_id && memcmp(hash, anchor_hash, sizeof(hash)) == 0)
		return;
	char hex[2 * kAuditHashLength + 1];
	for (int i = 0; i < kAuditHashLength; i++)
		snprintf(hex + 2 * i, 3, "%02x", hash[i]);
	ereport(LOG, (errmsg("tenancy audit anchor: db=%s seq=" INT64_FORMAT " hash=%s", writer_db_name, id, hex),
	              errhidestmt(true)));
	anchor_logged = true;
	anchor_id = id;
	memcpy(anchor_hash, hash, sizeof(hash));
}

// Lock held (exclusive): true when a record of this database waits.
bool
AnyPending(void)
{
	for (uint32 i = 0; i < queue->nchunks;) {
		if (queue->marks[i] != kChunkStart) {
			i++;
			continue;
		}
		Record *r = RecordAt(i);
		if (r->db == writer_db && r->state == kPending)
			return true;
		i += r->nchunks;
	}
	return false;
}

// on_shmem_exit: leaves the entry (kept while drops are unreported) and hands records being written back to the
// queue: the next writer appends them (possibly a second time, when this one died after its commit: a duplicate
// event is preferred to a missing one).
void
WriterExit(int, Datum)
{
	if (queue == NULL || !writer_registered)
		return;
	if (LWLockHeldByMe(queue->lock))
		LWLockRelease(queue->lock);
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	Writer *w = FindWriter(writer_db);
	if (w != NULL && w->pid == MyProcPid) {
		w->pid = 0;
		w->latch = NULL;
		w->starting = false;
		if (w->dropped == 0)
			w->db = InvalidOid;
	}
	for (uint32 i = 0; i < queue->nchunks;) {
		if (queue->marks[i] != kChunkStart) {
			i++;
			continue;
		}
		Record *r = RecordAt(i);
		if (r->db == writer_db && r->state == kWriting)
			r->state = kPending;
		i += r->nchunks;
	}
	LWLockRelease(queue->lock);
	ConditionVariableBroadcast(&queue->written); /* waiters start another writer */
}

// Under the lock: this process becomes the writer of its database; false when another one already is.
bool
RegisterAsWriter(void)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	Writer *w = ClaimWriter(writer_db);
	bool mine = false;
	if (w != NULL && (w->pid == 0 || w->pid == MyProcPid)) {
		w->pid = MyProcPid;
		w->latch = MyLatch;
		w->starting = false;
		mine = writer_registered = true;
	}
	LWLockRelease(queue->lock);
	return mine;
}

// Under the lock: leaves when nothing of this database waits. False (and stays) when something does.
bool
UnregisterIfIdle(void)
{
	LWLockAcquire(queue->lock, LW_EXCLUSIVE);
	bool idle = !AnyPending();
	Writer *w = FindWriter(writer_db);
	if (idle && w != NULL && w->dropped > 0)
		idle = false;
	if (idle && w != NULL && w->pid == MyProcPid) {
		w->pid = 0;
		w->latch = NULL;
		if (w->dropped == 0)
			w->db = InvalidOid;
	}
	LWLockRelease(queue->lock);
	return idle;
}

} // namespace

} // namespace tenancy::pg

using namespace tenancy;

// Main of the audit writer of one database (bgw_main_arg: the database; bgw_extra: the login role, see
// WriterLoginRole).
void
tenancy_audit_writer_main(Datum arg)
{
	pqsignal(SIGTERM, die);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	pg::writer_db = DatumGetObjectId(arg);
	Oid login;
	memcpy(&login, MyBgworkerEntry->bgw_extra, sizeof(login));
	if (pg::queue == NULL)
		proc_exit(0);
	before_shmem_exit(pg::WriterExit, (Datum)0);
	BackgroundWorkerInitializeConnectionByOid(pg::writer_db, login, 0);
	if (!pg::RegisterAsWriter())
		proc_exit(0); /* another writer serves the database */

	/* Durable before a waiting reader goes on, whatever the cluster's default; no caller-made object is reachable */
	SetConfigOption("synchronous_commit", "on", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("application_name", "tenancy audit writer", PGC_USERSET, PGC_S_SESSION);
	pgstat_report_appname("tenancy audit writer");

	StartTransactionCommand();
	char *name = get_database_name(pg::writer_db);
	pg::writer_db_name = MemoryContextStrdup(TopMemoryContext, name ? name : "?");
	CommitTransactionCommand();

	MemoryContext scratch = AllocSetContextCreate(TopMemoryContext, "tenancy audit writer", ALLOCSET_DEFAULT_SIZES);
	TimestampTz last_activity = GetCurrentTimestamp();
	TimestampTz next_anchor = 0;
	if (pg::anchor_interval_s > 0)
		next_anchor = TimestampTzPlusMilliseconds(last_activity, (int64)pg::anchor_interval_s * 1000);

	for (;;) {
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending) {
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (pg::anchor_interval_s > 0)
				next_anchor = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), (int64)pg::anchor_interval_s * 1000);
		}
		ResetLatch(MyLatch);

		int written = 0, batch;
		while ((batch = pg::DrainQueue(scratch)) > 0)
			written += batch;
		pg::RecordDrops(scratch);

		TimestampTz now = GetCurrentTimestamp();
		if (written > 0)
			last_activity = now;
		if (pg::anchor_interval_s > 0 && now >= next_anchor) {
			pg::LogAnchor(true);
			next_anchor = TimestampTzPlusMilliseconds(now, (int64)pg::anchor_interval_s * 1000);
		}
		/* idle: leave at once when no client is left in the database (DROP DATABASE waits for no one), else
		 * after kIdleExitMs; the head it leaves behind is anchored first */
		if (written == 0 && (CountDBConnections(pg::writer_db) == 0 ||
		                     TimestampDifferenceExceeds(last_activity, now, pg::kIdleExitMs))) {
			if (pg::UnregisterIfIdle()) {
				if (pg::anchor_interval_s > 0)
					pg::LogAnchor(true);
				break;
			}
		}
		(void)WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH, pg::kPollMs, PG_WAIT_EXTENSION);
	}
	proc_exit(0);
}

// tenancy.audit_anchor(OUT seq bigint, OUT hash bytea): the chain head now, also written to the server log as an
// anchor line; NULLs while the log is empty.
extern "C" Datum
tenancy_audit_anchor(PG_FUNCTION_ARGS)
{
	TupleDesc desc;
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	int64 id = 0;
	uint8 hash[pg::kAuditHashLength];
	Datum values[2] = {0, 0};
	bool nulls[2] = {true, true};
	if (pg::ReadAuditChainHead(&id, hash)) {
		char hex[2 * pg::kAuditHashLength + 1];
		for (int i = 0; i < pg::kAuditHashLength; i++)
			snprintf(hex + 2 * i, 3, "%02x", hash[i]);
		ereport(LOG, (errmsg("tenancy audit anchor: db=%s seq=" INT64_FORMAT " hash=%s",
		                     get_database_name(MyDatabaseId), id, hex),
		              errhidestmt(true)));
		bytea *b = static_cast<bytea *>(palloc(VARHDRSZ + pg::kAuditHashLength));
		SET_VARSIZE(b, VARHDRSZ + pg::kAuditHashLength);
		memcpy(VARDATA(b), hash, pg::kAuditHashLength);
		values[0] = Int64GetDatum(id);
		values[1] = PointerGetDatum(b);
		nulls[0] = nulls[1] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}
