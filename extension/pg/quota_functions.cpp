// extension/pg/quota_functions.cpp
// SQL entry points of quota metering: consume, consume_or_raise, release, set_usage and their internal helpers.
#include "tenancy/core/quota_metric.hpp"
#include "tenancy/pg/audit.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/quota_access.hpp"
#include "tenancy/pg/quota_counter.hpp"
#include "tenancy/pg/quota_store.hpp"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/date.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_consume);
PG_FUNCTION_INFO_V1(tenancy_consume_or_raise);
PG_FUNCTION_INFO_V1(tenancy_release);
PG_FUNCTION_INFO_V1(tenancy_set_usage);
PG_FUNCTION_INFO_V1(tenancy_consume_at);
PG_FUNCTION_INFO_V1(tenancy_quota_state);
PG_FUNCTION_INFO_V1(tenancy_quota_set_count);
PG_FUNCTION_INFO_V1(tenancy_quota_limits_changed);
PG_FUNCTION_INFO_V1(tenancy_consume_pooled);
PG_FUNCTION_INFO_V1(tenancy_release_pooled);
}

using namespace tenancy;
using tenancy::core::QuotaMetric;

namespace {

void
RequirePositiveAmount(int64 amount)
{
	if (amount <= 0)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("amount must be positive"),
		                errdetail("The amount given was " INT64_FORMAT ".", amount)));
}

// release, release_pooled and set_usage move gauges only (SPEC.md): a flow's usage (api_calls, ai_requests) is
// what its window counted, which the application must not take back, and a row count follows its rows.
void
RequireGauge(QuotaMetric metric, const char *what)
{
	if (core::QuotaMetricIsGauge(metric))
		return;
	const char *hint =
	    core::QuotaWindowOf(metric) == core::QuotaWindow::kMonth
	        ? "Usage of api_calls resets at the start of the next calendar month (UTC); an administrator can raise the "
	          "limit with tenancy.set_quota_override()."
	    : core::QuotaWindowOf(metric) == core::QuotaWindow::kDay
	        ? "Usage of ai_requests resets at the start of the next day (UTC); an administrator can raise the limit "
	          "with tenancy.set_quota_override()."
	        : "Row counts follow their rows: delete the rows, or let an administrator run tenancy.reconcile_quota().";
	ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
	                errmsg("cannot %s metric \"%s\"", what, core::QuotaMetricName(metric)),
	                errdetail("Only the gauges storage_mb and concurrent_sessions can be released or set."),
	                errhint("%s", hint)));
}

// Where the next window starts, for the hint of a refusal.
const char *
WindowHint(QuotaMetric metric)
{
	switch (core::QuotaWindowOf(metric)) {
	case core::QuotaWindow::kMonth:
		return "Usage resets at the start of the next calendar month (UTC); an administrator can raise the limit "
		       "with tenancy.set_quota_override().";
	case core::QuotaWindow::kDay:
		return "Usage resets at the start of the next day (UTC); an administrator can raise the limit with "
		       "tenancy.set_quota_override().";
	case core::QuotaWindow::kNone:
		break;
	}
	return "Release usage first, or ask an administrator to raise the limit with tenancy.set_quota_override().";
}

// One quota_exceeded event, rate-limited by the counter (QuotaRefusal::audit_due). outside: the refusal raises, so
// the event goes to the audit writer (queued, outside the transaction the error rolls back); otherwise it is
// written with the caller's transaction.
void
AuditRefusal(const pg_uuid_t *tenant, QuotaMetric metric, int64 amount, const pg::QuotaRefusal &r, bool outside)
{
	char doc[256];
	snprintf(doc, sizeof(doc),
	         "{\"metric\": \"%s\", \"usage\": " INT64_FORMAT ", \"limit\": " INT64_FORMAT
	         ", \"requested\": " INT64_FORMAT ", \"suppressed_refusals\": " INT64_FORMAT "}",
	         core::QuotaMetricName(metric), r.usage, r.limit, amount, r.suppressed);
	Jsonb *after = DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(doc)));
	if (outside)
		pg::WriteAuditEventOutside(pg::AuditDelivery::kQueued, "quota_exceeded", tenant, NULL, after);
	else
		pg::WriteAuditEvent("quota_exceeded", tenant, NULL, after);
}

// The shared body of consume, consume_or_raise and _consume_at.
bool
Consume(const pg_uuid_t *tenant, QuotaMetric metric, int64 amount, int64 now_us, bool raise)
{
	RequirePositiveAmount(amount);
	pg::QuotaRefusal refusal;
	memset(&refusal, 0, sizeof(refusal));
	refusal.can_audit = true;
	if (QuotaCounterConsume(tenant, metric, amount, now_us, &refusal))
		return true;
	if (raise && refusal.audit_due)
		AuditRefusal(tenant, metric, amount, refusal, true);
	if (raise)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_QUOTA_EXCEEDED),
		                errmsg("quota exceeded for metric \"%s\"", core::QuotaMetricName(metric)),
		                errdetail("Metric \"%s\" is at " INT64_FORMAT " of its limit of " INT64_FORMAT "; " INT64_FORMAT
		                          " more would exceed it.",
		                          core::QuotaMetricName(metric), refusal.usage, refusal.limit, amount),
		                errhint("%s", WindowHint(metric))));
	if (refusal.audit_due)
		AuditRefusal(tenant, metric, amount, refusal, false);
	return false;
}

// consume and consume_or_raise: (tenant_id, metric, amount) checked for the caller, counted now.
Datum
ConsumeNow(FunctionCallInfo fcinfo, bool raise)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	QuotaMetric metric = pg::QuotaMetricArg(PG_GETARG_TEXT_PP(1));
	pg::RequireQuotaAccess(tenant);
	PG_RETURN_BOOL(Consume(tenant, metric, PG_GETARG_INT64(2), pg::QuotaNowMicros(), raise));
}

} // namespace

// tenancy.consume(tenant_id uuid, metric text, amount bigint = 1) -> boolean
extern "C" Datum
tenancy_consume(PG_FUNCTION_ARGS)
{
	return ConsumeNow(fcinfo, false);
}

// tenancy.consume_or_raise(tenant_id uuid, metric text, amount bigint = 1) -> boolean (true, or TN003)
extern "C" Datum
tenancy_consume_or_raise(PG_FUNCTION_ARGS)
{
	return ConsumeNow(fcinfo, true);
}

// tenancy.release(tenant_id uuid, metric text, amount bigint = 1)
extern "C" Datum
tenancy_release(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	QuotaMetric metric = pg::QuotaMetricArg(PG_GETARG_TEXT_PP(1));
	int64 amount = PG_GETARG_INT64(2);
	pg::RequireQuotaAccess(tenant);
	RequireGauge(metric, "release usage of");
	RequirePositiveAmount(amount);
	pg::QuotaCounterRelease(tenant, metric, amount, pg::QuotaNowMicros());
	PG_RETURN_VOID();
}

// tenancy.set_usage(tenant_id uuid, metric text, value bigint): gauges only.
extern "C" Datum
tenancy_set_usage(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	QuotaMetric metric = pg::QuotaMetricArg(PG_GETARG_TEXT_PP(1));
	int64 value = PG_GETARG_INT64(2);
	pg::RequireQuotaAccess(tenant);
	RequireGauge(metric, "set the usage of");
	if (value < 0)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("usage must not be negative"),
		                errdetail("The value given was " INT64_FORMAT ".", value)));
	pg::QuotaCounterSet(tenant, metric, value, pg::QuotaNowMicros());
	PG_RETURN_VOID();
}

// tenancy._consume_at(tenant_id uuid, metric text, amount bigint, at timestamptz) -> boolean: consume as if the
// wall clock read `at`, so tests cross month and day boundaries without waiting. Admin only.
extern "C" Datum
tenancy_consume_at(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	QuotaMetric metric = pg::QuotaMetricArg(PG_GETARG_TEXT_PP(1));
	int64 amount = PG_GETARG_INT64(2);
	int64 at = pg::QuotaUnixMicros(PG_GETARG_TIMESTAMPTZ(3));
	pg::RequireAdmin("meter quotas at a given time");
	PG_RETURN_BOOL(Consume(tenant, metric, amount, at, false));
}

// tenancy._quota_state(tenant_id uuid, metric text, at timestamptz) -> (window_start date, used bigint,
// reserved bigint, max bigint, active_day date, shared boolean): a counter as the metering code sees it.
extern "C" Datum
tenancy_quota_state(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	QuotaMetric metric = pg::QuotaMetricArg(PG_GETARG_TEXT_PP(1));
	int64 at = pg::QuotaUnixMicros(PG_GETARG_TIMESTAMPTZ(2));
	pg::RequireAdmin("inspect quota counters");
	pg::QuotaReading r;
	pg::QuotaCounterRead(tenant, metric, at, &r);

	TupleDesc desc;
	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	desc = BlessTupleDesc(desc);
	Datum values[6] = {DateADTGetDatum(pg::QuotaDayToDate(r.window_start)),
	                   Int64GetDatum(r.used),
	                   Int64GetDatum(r.reserved),
	                   Int64GetDatum(r.limit),
	                   DateADTGetDatum(pg::QuotaDayToDate(r.active_day)),
	                   BoolGetDatum(r.shared)};
	bool nulls[6] = {
	    core::QuotaWindowOf(metric) == core::QuotaWindow::kNone, false, false, false, r.active_day == 0, false};
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

// tenancy._quota_set_count(tenant_id uuid, metric text, value bigint): sets any metric (reconciliation). Admin only.
extern "C" Datum
tenancy_quota_set_count(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	QuotaMetric metric = pg::QuotaMetricArg(PG_GETARG_TEXT_PP(1));
	int64 value = PG_GETARG_INT64(2);
	pg::RequireAdmin("set quota counters");
	if (value < 0)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT), errmsg("usage must not be negative")));
	pg::QuotaCounterSet(tenant, metric, value, pg::QuotaNowMicros());
	PG_RETURN_VOID();
}

// Trigger on tenancy.plans, tenancy.quota_overrides and tenancy.tenants: limits may have changed.
extern "C" Datum
tenancy_quota_limits_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
		                errmsg("tenancy._quota_limits_changed() must be called as a trigger")));
	pg::QuotaLimitsChanged();
	return PointerGetDatum(NULL);
}

// tenancy.consume_pooled(tenant_id uuid, metric text, amount bigint = 1) -> boolean: counts amount against the
// tenant's limit and each ancestor's at once (a hierarchy sharing its quotas), or nowhere when any would pass its
// limit; the refusal is audited on the tenant whose limit refused.
extern "C" Datum
tenancy_consume_pooled(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	QuotaMetric metric = pg::QuotaMetricArg(PG_GETARG_TEXT_PP(1));
	int64 amount = PG_GETARG_INT64(2);
	pg::RequireQuotaAccess(tenant);
	RequirePositiveAmount(amount);
	int count;
	pg_uuid_t *chain = pg::QuotaTenantChain(tenant, &count);
	pg::QuotaRefusal refusal;
	memset(&refusal, 0, sizeof(refusal));
	refusal.can_audit = true;
	int refused = -1;
	if (pg::QuotaCounterConsumePooled(chain, count, metric, amount, pg::QuotaNowMicros(), &refusal, &refused))
		PG_RETURN_BOOL(true);
	if (refusal.audit_due)
		AuditRefusal(&chain[refused], metric, amount, refusal, false);
	PG_RETURN_BOOL(false);
}

// tenancy.release_pooled(tenant_id uuid, metric text, amount bigint = 1): gives amount back to the tenant and each
// ancestor (the inverse of consume_pooled), at most what the tenant itself still holds from consume_pooled: a
// child never gives back a sibling's share of the pool.
extern "C" Datum
tenancy_release_pooled(PG_FUNCTION_ARGS)
{
	pg_uuid_t *tenant = PG_GETARG_UUID_P(0);
	QuotaMetric metric = pg::QuotaMetricArg(PG_GETARG_TEXT_PP(1));
	int64 amount = PG_GETARG_INT64(2);
	pg::RequireQuotaAccess(tenant);
	RequireGauge(metric, "release usage of");
	RequirePositiveAmount(amount);
	int count;
	pg_uuid_t *chain = pg::QuotaTenantChain(tenant, &count);
	pg::QuotaCounterReleasePooled(chain, count, metric, amount, pg::QuotaNowMicros());
	PG_RETURN_VOID();
}
