// extension/pg/quota_track.cpp
// track_quota's row-counting trigger: a row insert consumes one unit (TN003 past the limit), a delete releases one
// at commit, and an aborted insert gives its unit back, so counts follow committed rows.
#include "tenancy/core/quota_metric.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/quota_access.hpp"
#include "tenancy/pg/quota_counter.hpp"
#include "tenancy/pg/tenant_cache.hpp"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_quota_track);
}

using namespace tenancy;
using tenancy::core::QuotaMetric;

namespace {

/*
 * Units this transaction consumed (to give back if it, or the subtransaction that took them, aborts), units it will
 * release at commit (a deleted row still counts until its delete commits, as other transactions still see it), and
 * released units it took back for a new row of the same tenant (a delete then an insert in one transaction). Kept
 * in TopTransactionContext; the pointers are reset at every transaction end.
 */
enum class PendingKind { kConsumed, kRelease, kReused };

struct PendingUnit {
	pg_uuid_t tenant;
	QuotaMetric metric;
	PendingKind kind;
	int nest_level;
	int release_level; // kReused: the level of the release it took
};

PendingUnit *pending = NULL;
int pending_count = 0;
int pending_capacity = 0;
bool callbacks_registered = false;

void
ResetPending(void)
{
	pending = NULL;
	pending_count = 0;
	pending_capacity = 0;
}

PendingUnit *
AddPending(const pg_uuid_t *tenant, QuotaMetric metric, PendingKind kind, int nest_level)
{
	if (pending_count == pending_capacity) {
		int capacity = pending_capacity == 0 ? 16 : pending_capacity * 2;
		PendingUnit *grown =
		    static_cast<PendingUnit *>(MemoryContextAlloc(TopTransactionContext, capacity * sizeof(PendingUnit)));
		if (pending_count > 0)
			memcpy(grown, pending, pending_count * sizeof(PendingUnit));
		pending = grown;
		pending_capacity = capacity;
	}
	PendingUnit *u = &pending[pending_count++];
	memcpy(u->tenant.data, tenant->data, UUID_LEN);
	u->metric = metric;
	u->kind = kind;
	u->nest_level = nest_level;
	u->release_level = 0;
	return u;
}

// Takes back one unit this transaction is about to release for (tenant, metric), if any: the new row reuses the
// deleted row's place.
bool
ReuseReleased(const pg_uuid_t *tenant, QuotaMetric metric)
{
	for (int i = pending_count - 1; i >= 0; i--) {
		if (pending[i].kind == PendingKind::kRelease && pending[i].metric == metric &&
		    memcmp(pending[i].tenant.data, tenant->data, UUID_LEN) == 0) {
			int release_level = pending[i].nest_level;
			pending[i] = pending[--pending_count];
			PendingUnit *u = AddPending(tenant, metric, PendingKind::kReused, GetCurrentTransactionNestLevel());
			u->release_level = release_level;
			return true;
		}
	}
	return false;
}

// Undoes the work of nesting levels >= level: consumed units go back, releases are forgotten, and a reuse of a
// release that survives (made at an outer level) turns back into that release. Runs inside abort processing:
// shared memory only, never an error.
void
UndoFromLevel(int level)
{
	int count = pending_count;
	for (int i = 0; i < count; i++) {
		PendingUnit *u = &pending[i];
		if (u->nest_level < level)
			continue;
		if (u->kind == PendingKind::kConsumed) {
			(void)pg::QuotaCounterCompensate(&u->tenant, u->metric, 1);
			u->nest_level = -1;
		} else if (u->kind == PendingKind::kRelease || u->release_level >= level) {
			u->nest_level = -1;
		} else {
			u->kind = PendingKind::kRelease;
			u->nest_level = u->release_level;
		}
	}
	int kept = 0;
	for (int i = 0; i < pending_count; i++)
		if (pending[i].nest_level >= 0)
			pending[kept++] = pending[i];
	pending_count = kept;
}

void
TrackXactCallback(XactEvent event, void *)
{
	switch (event) {
	case XACT_EVENT_PRE_COMMIT:
	case XACT_EVENT_PRE_PREPARE:
		/* still a normal transaction state: releases may load counters (SPI needs a snapshot) and write */
		if (pending_count > 0) {
			PushActiveSnapshot(GetTransactionSnapshot());
			for (int i = 0; i < pending_count; i++)
				if (pending[i].kind == PendingKind::kRelease &&
				    pg::LookupTenantUsability(&pending[i].tenant) != pg::TenantUsability::kNotFound)
					pg::QuotaCounterRelease(&pending[i].tenant, pending[i].metric, 1, pg::QuotaNowMicros());
			PopActiveSnapshot();
		}
		pending_count = 0;
		break;
	case XACT_EVENT_ABORT:
		UndoFromLevel(1);
		ResetPending();
		break;
	case XACT_EVENT_COMMIT:
	case XACT_EVENT_PREPARE:
		ResetPending();
		break;
	default:
		break;
	}
}

void
TrackSubXactCallback(SubXactEvent event, SubTransactionId, SubTransactionId, void *)
{
	int level = GetCurrentTransactionNestLevel();
	if (event == SUBXACT_EVENT_ABORT_SUB) {
		UndoFromLevel(level);
	} else if (event == SUBXACT_EVENT_COMMIT_SUB) {
		for (int i = 0; i < pending_count; i++) {
			if (pending[i].nest_level >= level)
				pending[i].nest_level = level - 1;
			if (pending[i].release_level >= level)
				pending[i].release_level = level - 1;
		}
	}
}

// The tenant of a row when it counts (tenant column not NULL and, with a status column, status not 'disabled').
bool
RowCounts(HeapTuple tuple, TupleDesc desc, int tenant_att, int status_att, pg_uuid_t *tenant)
{
	bool isnull;
	Datum d = heap_getattr(tuple, tenant_att, desc, &isnull);
	if (isnull)
		return false;
	memcpy(tenant->data, DatumGetUUIDP(d)->data, UUID_LEN);
	if (status_att == InvalidAttrNumber)
		return true;
	Datum status = heap_getattr(tuple, status_att, desc, &isnull);
	if (isnull)
		return true;
	Oid typoutput;
	bool varlena;
	getTypeOutputInfo(TupleDescAttr(desc, status_att - 1)->atttypid, &typoutput, &varlena);
	return strcmp(OidOutputFunctionCall(typoutput, status), "disabled") != 0;
}

AttrNumber
ColumnArg(Relation rel, const char *name, bool uuid_required)
{
	AttrNumber att = get_attnum(RelationGetRelid(rel), name);
	if (att == InvalidAttrNumber)
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_COLUMN),
		                errmsg("column \"%s\" of relation \"%s\" does not exist", name, RelationGetRelationName(rel))));
	if (uuid_required && TupleDescAttr(RelationGetDescr(rel), att - 1)->atttypid != UUIDOID)
		ereport(ERROR, (errcode(ERRCODE_DATATYPE_MISMATCH), errmsg("column \"%s\" must be of type uuid", name)));
	return att;
}

} // namespace

// tenancy._quota_track(): trigger created by track_quota(tbl, metric) with arguments (metric, tenant column
// [, status column]); BEFORE INSERT OR UPDATE and AFTER DELETE, FOR EACH ROW.
extern "C" Datum
tenancy_quota_track(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("tenancy._quota_track() must be called as a trigger")));
	TriggerData *trig = reinterpret_cast<TriggerData *>(fcinfo->context);
	if (!TRIGGER_FIRED_FOR_ROW(trig->tg_event) || trig->tg_trigger->tgnargs < 2)
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("tenancy._quota_track() must be a row trigger with a metric and a tenant column")));
	if (!callbacks_registered) {
		RegisterXactCallback(TrackXactCallback, NULL);
		RegisterSubXactCallback(TrackSubXactCallback, NULL);
		callbacks_registered = true;
	}

	char **args = trig->tg_trigger->tgargs;
	QuotaMetric metric = pg::QuotaMetricArg(cstring_to_text(args[0]));
	Relation rel = trig->tg_relation;
	TupleDesc desc = RelationGetDescr(rel);
	AttrNumber tenant_att = ColumnArg(rel, args[1], true);
	AttrNumber status_att = trig->tg_trigger->tgnargs > 2 ? ColumnArg(rel, args[2], false) : InvalidAttrNumber;
	pg_uuid_t old_tenant, new_tenant;
	bool old_counts = false, new_counts = false;
	HeapTuple result = NULL;

	if (TRIGGER_FIRED_BY_INSERT(trig->tg_event)) {
		new_counts = RowCounts(trig->tg_trigtuple, desc, tenant_att, status_att, &new_tenant);
		result = trig->tg_trigtuple;
	} else if (TRIGGER_FIRED_BY_UPDATE(trig->tg_event)) {
		old_counts = RowCounts(trig->tg_trigtuple, desc, tenant_att, status_att, &old_tenant);
		new_counts = RowCounts(trig->tg_newtuple, desc, tenant_att, status_att, &new_tenant);
		result = trig->tg_newtuple;
		if (old_counts && new_counts && memcmp(old_tenant.data, new_tenant.data, UUID_LEN) == 0)
			old_counts = new_counts = false; /* same tenant, still counted: nothing moves */
	} else if (TRIGGER_FIRED_BY_DELETE(trig->tg_event)) {
		old_counts = RowCounts(trig->tg_trigtuple, desc, tenant_att, status_att, &old_tenant);
		result = trig->tg_trigtuple;
	}

	if (new_counts) {
		pg::QuotaRefusal refusal;
		memset(&refusal, 0, sizeof(refusal));
		if (pg::QuotaCounterConsume(&new_tenant, metric, 1, pg::QuotaNowMicros(), &refusal))
			AddPending(&new_tenant, metric, PendingKind::kConsumed, GetCurrentTransactionNestLevel());
		else if (!ReuseReleased(&new_tenant, metric))
			ereport(ERROR, (errcode(TENANCY_ERRCODE_QUOTA_EXCEEDED),
			                errmsg("quota exceeded for metric \"%s\"", core::QuotaMetricName(metric)),
			                errdetail("Metric \"%s\" is at " INT64_FORMAT " of its limit of " INT64_FORMAT
			                          "; one more row in \"%s\" would exceed it.",
			                          core::QuotaMetricName(metric), refusal.usage, refusal.limit,
			                          RelationGetRelationName(rel)),
			                errhint("Delete rows first, or ask an administrator to raise the limit with "
			                        "tenancy.set_quota_override().")));
	}
	if (old_counts)
		AddPending(&old_tenant, metric, PendingKind::kRelease, GetCurrentTransactionNestLevel());
	return PointerGetDatum(result);
}
