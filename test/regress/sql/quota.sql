-- quota: consume, consume_or_raise, release, set_usage, limits and overrides, windows, usage reports, every error
-- (release and set_usage move the gauges only: flows and row counts are TN005)
\set VERBOSITY terse
SELECT id AS dev FROM tenancy.create_tenant('Quota Dev', 'quota-dev') \gset
SELECT id AS team FROM tenancy.create_tenant('Quota Team', 'quota-team', 'team') \gset
SELECT id AS clock FROM tenancy.create_tenant('Quota Clock', 'quota-clock', 'team') \gset
-- the test servers preload the library: counters live in shared memory, one durable row per metric
SELECT shared FROM tenancy._quota_state(:'dev', 'api_calls');
SELECT metric, reserved FROM tenancy.quota_counters WHERE tenant_id = :'dev' ORDER BY metric;

-- consume up to the limit exactly (developer: 100 ai_requests a day), then refusals consume nothing
SELECT tenancy.consume(:'dev', 'ai_requests', 99);
SELECT tenancy.consume(:'dev', 'ai_requests');
SELECT tenancy.consume(:'dev', 'ai_requests');
SELECT tenancy.consume(:'dev', 'ai_requests', 1000);
SELECT used, max, reserved <= max AS reserved_within_limit FROM tenancy._quota_state(:'dev', 'ai_requests');
-- an administrator's recount gives back (release cannot: see below), a consume larger than what is left is
-- refused whole
SELECT tenancy._quota_set_count(:'dev', 'ai_requests', 90);
SELECT tenancy.consume(:'dev', 'ai_requests', 11);
SELECT tenancy.consume(:'dev', 'ai_requests', 10);
SELECT used FROM tenancy._quota_state(:'dev', 'ai_requests');
-- release never goes below zero
SELECT tenancy.release(:'dev', 'storage_mb', 5);
SELECT used FROM tenancy._quota_state(:'dev', 'storage_mb');
-- the durable bound covers the usage and never passes the limit
SELECT reserved >= 100 AND reserved <= 100 AS covered FROM tenancy.quota_counters
 WHERE tenant_id = :'dev' AND metric = 'ai_requests';

-- refusals are audited, rate-limited per tenant and metric (one event for the refusals above)
SELECT action, after->>'metric' AS metric, after->>'usage' AS usage, after->>'limit' AS lim, after->>'requested' AS requested
  FROM tenancy.audit_log WHERE tenant_id = :'dev' AND action = 'quota_exceeded' ORDER BY id;
-- once the interval has passed, the next refusal writes an event counting the suppressed ones
SET tenancy.quota_audit_interval = 0;
SELECT tenancy.consume(:'dev', 'ai_requests');
SELECT after->>'suppressed_refusals' AS suppressed FROM tenancy.audit_log
 WHERE tenant_id = :'dev' AND action = 'quota_exceeded' ORDER BY id DESC LIMIT 1;
RESET tenancy.quota_audit_interval;
SELECT count(*) AS events FROM tenancy.audit_log WHERE tenant_id = :'dev' AND action = 'quota_exceeded';
SELECT * FROM tenancy.verify_audit_log();

-- consume_or_raise: true, or TN003 with the metric, usage and limit
SELECT tenancy.consume_or_raise(:'team', 'ai_requests', 999);
SELECT tenancy.consume_or_raise(:'team', 'ai_requests');
\set VERBOSITY default
SELECT tenancy.consume_or_raise(:'team', 'ai_requests');
SELECT tenancy.consume_or_raise(:'team', 'users', 11);
\set VERBOSITY terse

-- consume is not transactional (like nextval): a rollback keeps the units counted
BEGIN;
SELECT tenancy.consume(:'team', 'api_calls', 40);
ROLLBACK;
SELECT used FROM tenancy._quota_state(:'team', 'api_calls');

-- gauges: set_usage sets, whatever the limit; consume and release move them
SELECT tenancy.set_usage(:'team', 'storage_mb', 5000);
SELECT tenancy.consume(:'team', 'storage_mb', 5240);
SELECT tenancy.consume(:'team', 'storage_mb', 1);
SELECT tenancy.set_usage(:'team', 'storage_mb', 20000);
SELECT used, max FROM tenancy._quota_state(:'team', 'storage_mb');
SELECT tenancy.set_usage(:'team', 'storage_mb', 0);
SELECT tenancy.consume(:'team', 'concurrent_sessions', 10);
SELECT tenancy.consume(:'team', 'concurrent_sessions');
SELECT tenancy.release(:'team', 'concurrent_sessions');
SELECT tenancy.consume(:'team', 'concurrent_sessions');

-- a plan change applies at once, in both directions
SELECT tenancy.consume(:'dev', 'concurrent_sessions', 2);
SELECT tenancy.consume(:'dev', 'concurrent_sessions');
SELECT (tenancy.update_tenant(:'dev', '{"plan": "team"}')).plan;
SELECT tenancy.consume(:'dev', 'concurrent_sessions');
SELECT (tenancy.update_tenant(:'dev', '{"plan": "developer"}')).plan;
SELECT tenancy.consume(:'dev', 'concurrent_sessions');
-- and so does an edit of the plan figures
UPDATE tenancy.plans SET max_concurrent_sessions = 4 WHERE plan = 'developer';
SELECT tenancy.consume(:'dev', 'concurrent_sessions');
SELECT tenancy.consume(:'dev', 'concurrent_sessions');
UPDATE tenancy.plans SET max_concurrent_sessions = 2 WHERE plan = 'developer';
-- per-tenant overrides: set, raise, remove (NULL), each audited
SELECT tenancy.set_quota_override(:'dev', 'concurrent_sessions', 5);
SELECT tenancy.consume(:'dev', 'concurrent_sessions');
SELECT tenancy.consume(:'dev', 'concurrent_sessions');
SELECT max FROM tenancy._quota_state(:'dev', 'concurrent_sessions');
SELECT tenancy.set_quota_override(:'dev', 'concurrent_sessions', NULL);
SELECT max FROM tenancy._quota_state(:'dev', 'concurrent_sessions');
SELECT tenancy.set_quota_override(:'dev', 'concurrent_sessions', 0);
SELECT tenancy.consume(:'dev', 'concurrent_sessions');
SELECT tenancy.set_quota_override(:'dev', 'concurrent_sessions', NULL);
SELECT action, before, after FROM tenancy.audit_log WHERE tenant_id = :'dev' AND action = 'quota_override_set' ORDER BY id;
SELECT metric, max_value FROM tenancy.quota_overrides WHERE tenant_id = :'dev';

-- windows: api_calls per calendar month (UTC), ai_requests per day (UTC); a new window starts at zero
SELECT tenancy._consume_at(:'clock', 'api_calls', 100000, '2030-01-31 23:59:59.999999+00');
SELECT tenancy._consume_at(:'clock', 'api_calls', 1, '2030-01-31 23:59:59.999999+00');
SELECT tenancy._consume_at(:'clock', 'api_calls', 1, '2030-02-01 00:00:00+00');
SELECT window_start, used FROM tenancy._quota_state(:'clock', 'api_calls', '2030-02-01 00:00:00+00');
SELECT tenancy._consume_at(:'clock', 'api_calls', 99999, '2030-02-28 23:59:59+00');
SELECT tenancy._consume_at(:'clock', 'api_calls', 1, '2030-02-28 23:59:59+00');
SELECT tenancy._consume_at(:'clock', 'api_calls', 1, '2030-03-01 00:00:00+00');
-- a leap February, and a day boundary in another time zone is still the UTC one
SELECT tenancy._consume_at(:'clock', 'ai_requests', 1000, '2032-02-29 12:00:00+00');
SELECT tenancy._consume_at(:'clock', 'ai_requests', 1, '2032-02-29 23:59:59-00');
SELECT tenancy._consume_at(:'clock', 'ai_requests', 1, '2032-02-29 20:00:00-05');
SELECT window_start, used FROM tenancy._quota_state(:'clock', 'ai_requests', '2032-03-01 01:00:00+00');
-- a call whose clock is behind the counter's window counts in the current window
SELECT tenancy._consume_at(:'clock', 'ai_requests', 1, '2032-02-29 00:00:00+00');
SELECT window_start, used FROM tenancy._quota_state(:'clock', 'ai_requests', '2032-03-01 01:00:00+00');
-- the durable row follows the window
SELECT metric, window_start FROM tenancy.quota_counters WHERE tenant_id = :'clock' AND metric IN ('api_calls', 'ai_requests') ORDER BY 1;

-- usage(): the brief's shape, six figures each, utilization rounded to 4 decimals
SELECT tenancy.usage(:'team') - 'tenant_id' - 'last_calculated_at' AS usage;
SELECT (tenancy.usage(:'team') ->> 'tenant_id')::uuid = :'team' AS same_tenant,
       tenancy.usage(:'team') ->> 'last_calculated_at' ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$' AS rfc3339;
-- users are counted from tenancy.users (invited and active), projects from tracked tables
SELECT (tenancy.add_user(:'team', 'ann@example.com')).status;
SELECT (tenancy.add_user(:'team', 'bob@example.com', send_invitation => false)).status;
SELECT tenancy.usage(:'team') -> 'current_usage' -> 'users_count' AS users;
-- include_descendants sums the subtree against the parent's quotas
SELECT id AS child FROM tenancy.create_tenant('Quota Child', 'quota-child', 'team', parent_tenant_id => :'team') \gset
SELECT tenancy.consume(:'child', 'api_calls', 25);
SELECT tenancy.consume(:'team', 'api_calls', 75);
SELECT tenancy.usage(:'team') -> 'current_usage' -> 'api_calls_this_month' AS own,
       tenancy.usage(:'team', include_descendants => true) -> 'current_usage' -> 'api_calls_this_month' AS subtree,
       tenancy.usage(:'team', true) -> 'utilization_percentages' -> 'api_calls' AS pct;

-- usage_trends: daily readings written as metering happens; today's is live
SELECT id AS trend FROM tenancy.create_tenant('Quota Trend', 'quota-trend', 'team') \gset
SELECT tenancy._consume_at(:'trend', 'ai_requests', 5, now() - interval '2 days');
SELECT tenancy._consume_at(:'trend', 'ai_requests', 7, now() - interval '1 day');
SELECT tenancy.consume(:'trend', 'ai_requests', 3);
SELECT tenancy.set_usage(:'trend', 'storage_mb', 42);
SELECT (now() AT TIME ZONE 'UTC')::date - day AS days_ago, metric, value
  FROM tenancy.usage_trends(:'trend', '7 days', ARRAY['ai_requests', 'storage']) ORDER BY 1 DESC, 2;
SELECT (now() AT TIME ZONE 'UTC')::date - day AS days_ago, metric, value
  FROM tenancy.usage_trends(:'trend', '1 day', ARRAY['ai_requests']) ORDER BY 1 DESC, 2;
SELECT count(*) AS history_rows FROM tenancy.usage_history WHERE tenant_id = :'trend';
-- history older than 400 days is dropped as new readings are written
INSERT INTO tenancy.usage_history VALUES (:'trend', 'ai_requests', (now() AT TIME ZONE 'UTC')::date - 401, 1),
                                          (:'trend', 'ai_requests', (now() AT TIME ZONE 'UTC')::date - 399, 1);
SELECT tenancy._consume_at(:'trend', 'ai_requests', 1, now() + interval '1 day');
SELECT (now() AT TIME ZONE 'UTC')::date - day AS days_ago FROM tenancy.usage_history
 WHERE tenant_id = :'trend' AND metric = 'ai_requests' ORDER BY 1 DESC;

-- invalid input:
\set VERBOSITY sqlstate
SELECT tenancy.consume(:'dev', 'api_calls', 0);
SELECT tenancy.consume(:'dev', 'api_calls', -1);
SELECT tenancy.consume(:'dev', 'bandwidth');
SELECT tenancy.consume(:'dev', 'API_CALLS');
SELECT tenancy.consume('00000000-0000-0000-0000-000000000000', 'api_calls');
SELECT tenancy.consume_or_raise(:'dev', 'api_calls', 0);
SELECT tenancy.release(:'dev', 'storage_mb', 0);
SELECT tenancy.release(:'dev', 'nope');
SELECT tenancy.release('00000000-0000-0000-0000-000000000000', 'storage_mb');
SELECT tenancy.set_usage(:'dev', 'api_calls', 1);
SELECT tenancy.set_usage(:'dev', 'users', 1);
SELECT tenancy.set_usage(:'dev', 'storage_mb', -1);
SELECT tenancy.set_usage('00000000-0000-0000-0000-000000000000', 'storage_mb', 1);
SELECT tenancy.usage('00000000-0000-0000-0000-000000000000');
SELECT tenancy.usage_trends(:'dev', '0 days');
SELECT tenancy.usage_trends(:'dev', '401 days');
SELECT tenancy.usage_trends(:'dev', '30 days', ARRAY['bandwidth']);
SELECT tenancy.usage_trends('00000000-0000-0000-0000-000000000000');
SELECT tenancy.set_quota_override(:'dev', 'bandwidth', 1);
SELECT tenancy.set_quota_override(:'dev', 'api_calls', -1);
SELECT tenancy.set_quota_override('00000000-0000-0000-0000-000000000000', 'api_calls', 1);
SELECT tenancy._consume_at(:'dev', 'api_calls', 1, 'infinity');
-- release, release_pooled and set_usage refuse every metric that is not a gauge: the windowed flows (an
-- application resetting its own monthly or daily quota) and the row counts; nothing moves
SELECT used AS api_calls_before FROM tenancy._quota_state(:'team', 'api_calls');
SELECT used AS ai_requests_before FROM tenancy._quota_state(:'team', 'ai_requests');
SELECT tenancy.release(:'team', 'api_calls');
SELECT tenancy.release(:'team', 'api_calls', 1000000);
SELECT tenancy.release(:'team', 'ai_requests');
SELECT tenancy.release(:'team', 'users');
SELECT tenancy.release(:'team', 'projects');
SELECT tenancy.release_pooled(:'team', 'api_calls');
SELECT tenancy.release_pooled(:'team', 'ai_requests');
SELECT tenancy.release_pooled(:'team', 'users');
SELECT tenancy.release_pooled(:'team', 'projects');
SELECT tenancy.set_usage(:'team', 'api_calls', 0);
SELECT tenancy.set_usage(:'team', 'ai_requests', 0);
SELECT tenancy.set_usage(:'team', 'projects', 0);
SELECT used AS api_calls_after FROM tenancy._quota_state(:'team', 'api_calls');
SELECT used AS ai_requests_after FROM tenancy._quota_state(:'team', 'ai_requests');
\set VERBOSITY default
SELECT tenancy.release(:'team', 'api_calls', 5);
SELECT tenancy.release(:'team', 'ai_requests', 5);
SELECT tenancy.set_usage(:'team', 'users', 0);
\set VERBOSITY terse
-- NULL arguments: STRICT functions answer NULL and count nothing
SELECT tenancy.consume(NULL, 'api_calls') IS NULL AS n1, tenancy.consume(:'dev', NULL) IS NULL AS n2,
       tenancy.consume(:'dev', 'api_calls', NULL) IS NULL AS n3;
-- the counter rows are the metering code's: nothing of them is granted
SELECT has_table_privilege('tenancy_admin', 'tenancy.quota_counters', 'UPDATE') AS admin_update,
       has_table_privilege('tenancy_app', 'tenancy.quota_counters', 'SELECT') AS app_select,
       has_function_privilege('public', 'tenancy.consume(uuid, text, bigint)', 'EXECUTE') AS public_consume;
