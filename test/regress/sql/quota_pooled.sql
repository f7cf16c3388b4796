-- quota_pooled: consume_pooled/release_pooled, a hierarchy sharing its quotas (a child counts against its own limit
-- and every ancestor's, all or none)
\set VERBOSITY terse
SELECT id AS root FROM tenancy.create_tenant('Pool Root', 'pool-root', 'team') \gset
SELECT id AS a FROM tenancy.create_tenant('Pool A', 'pool-a', 'team', parent_tenant_id => :'root') \gset
SELECT id AS b FROM tenancy.create_tenant('Pool B', 'pool-b', 'team', parent_tenant_id => :'root') \gset
SELECT id AS a1 FROM tenancy.create_tenant('Pool A1', 'pool-a1', 'team', parent_tenant_id => :'a') \gset
SELECT tenancy.set_quota_override(:'root', 'ai_requests', 10);
SELECT tenancy.set_quota_override(:'b', 'ai_requests', 5);
CREATE FUNCTION pg_temp.used(t uuid) RETURNS bigint LANGUAGE sql AS $$ SELECT used FROM tenancy._quota_state(t, 'ai_requests') $$;
-- children draw on the root's pool
SELECT tenancy.consume_pooled(:'a1', 'ai_requests', 6);
SELECT pg_temp.used(:'a1') AS a1, pg_temp.used(:'a') AS a, pg_temp.used(:'root') AS root;
-- the root's limit refuses b although b's own limit would allow it; nothing is counted anywhere
SELECT tenancy.consume_pooled(:'b', 'ai_requests', 5);
SELECT pg_temp.used(:'b') AS b, pg_temp.used(:'root') AS root;
SELECT tenancy.consume_pooled(:'b', 'ai_requests', 4);
-- b's own limit refuses too, and the root keeps its unit
SELECT tenancy.release_pooled(:'a1', 'ai_requests', 6);
SELECT tenancy.consume_pooled(:'b', 'ai_requests', 2);
SELECT pg_temp.used(:'b') AS b, pg_temp.used(:'root') AS root, pg_temp.used(:'a1') AS a1, pg_temp.used(:'a') AS a;
-- a plain consume of a child does not touch the pool
SELECT tenancy.consume(:'a', 'ai_requests', 100);
SELECT pg_temp.used(:'a') AS a, pg_temp.used(:'root') AS root;
-- the root itself draws on its own limit only
SELECT tenancy.consume_pooled(:'root', 'ai_requests', 6);
SELECT tenancy.consume_pooled(:'root', 'ai_requests', 7);
-- refusals are audited on the tenant whose limit refused
SELECT t.slug, l.after->>'limit' AS lim FROM tenancy.audit_log l JOIN tenancy.tenants t ON t.id = l.tenant_id
 WHERE l.action = 'quota_exceeded' AND t.slug LIKE 'pool-%' ORDER BY l.id;
-- usage with descendants sums the subtree
SELECT tenancy.usage(:'root', true) -> 'current_usage' -> 'ai_requests_today' AS subtree;
-- a tenant without counter rows (as if created before the counter trigger existed) is metered like any other:
-- its rows are made on first use, and the pool counts it
SELECT id AS c FROM tenancy.create_tenant('Pool C', 'pool-c', 'team', parent_tenant_id => :'root') \gset
DELETE FROM tenancy.quota_counters WHERE tenant_id = :'c';
SELECT tenancy.release(:'root', 'ai_requests', 1);
SELECT tenancy.consume_pooled(:'c', 'ai_requests', 1);
SELECT pg_temp.used(:'c') AS c, pg_temp.used(:'root') AS root;
SELECT count(*) AS rows_made FROM tenancy.quota_counters WHERE tenant_id = :'c';
-- invalid input:
\set VERBOSITY sqlstate
SELECT tenancy.consume_pooled(:'a1', 'ai_requests', 0);
SELECT tenancy.consume_pooled(:'a1', 'bandwidth');
SELECT tenancy.consume_pooled('00000000-0000-0000-0000-000000000000', 'ai_requests');
SELECT tenancy.release_pooled(:'a1', 'ai_requests', -1);
SELECT tenancy.release_pooled('00000000-0000-0000-0000-000000000000', 'ai_requests');
