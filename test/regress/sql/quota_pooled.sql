-- quota_pooled: consume_pooled/release_pooled, a hierarchy sharing its quotas (a child counts against its own limit
-- and every ancestor's, all or none); release_pooled gives back only what the tenant itself drew from the pool
\set VERBOSITY terse
SELECT id AS root FROM tenancy.create_tenant('Pool Root', 'pool-root', 'team') \gset
SELECT id AS a FROM tenancy.create_tenant('Pool A', 'pool-a', 'team', parent_tenant_id => :'root') \gset
SELECT id AS b FROM tenancy.create_tenant('Pool B', 'pool-b', 'team', parent_tenant_id => :'root') \gset
SELECT id AS a1 FROM tenancy.create_tenant('Pool A1', 'pool-a1', 'team', parent_tenant_id => :'a') \gset
SELECT tenancy.set_quota_override(:'root', 'concurrent_sessions', 10);
SELECT tenancy.set_quota_override(:'b', 'concurrent_sessions', 5);
CREATE FUNCTION pg_temp.used(t uuid) RETURNS bigint LANGUAGE sql AS $$ SELECT used FROM tenancy._quota_state(t, 'concurrent_sessions') $$;
-- children draw on the root's pool
SELECT tenancy.consume_pooled(:'a1', 'concurrent_sessions', 6);
SELECT pg_temp.used(:'a1') AS a1, pg_temp.used(:'a') AS a, pg_temp.used(:'root') AS root;
-- the root's limit refuses b although b's own limit would allow it; nothing is counted anywhere
SELECT tenancy.consume_pooled(:'b', 'concurrent_sessions', 5);
SELECT pg_temp.used(:'b') AS b, pg_temp.used(:'root') AS root;
SELECT tenancy.consume_pooled(:'b', 'concurrent_sessions', 4);
-- b's own limit refuses too, and the root keeps its unit
SELECT tenancy.release_pooled(:'a1', 'concurrent_sessions', 6);
SELECT tenancy.consume_pooled(:'b', 'concurrent_sessions', 2);
SELECT pg_temp.used(:'b') AS b, pg_temp.used(:'root') AS root, pg_temp.used(:'a1') AS a1, pg_temp.used(:'a') AS a;
-- a plain consume of a child does not touch the pool
SELECT tenancy.consume(:'a', 'concurrent_sessions', 5);
SELECT pg_temp.used(:'a') AS a, pg_temp.used(:'root') AS root;
-- the root itself draws on its own limit only
SELECT tenancy.consume_pooled(:'root', 'concurrent_sessions', 6);
SELECT tenancy.consume_pooled(:'root', 'concurrent_sessions', 7);
-- refusals are audited on the tenant whose limit refused
SELECT t.slug, l.after->>'limit' AS lim FROM tenancy.audit_log l JOIN tenancy.tenants t ON t.id = l.tenant_id
 WHERE l.action = 'quota_exceeded' AND t.slug LIKE 'pool-%' ORDER BY l.id;
-- usage with descendants sums the subtree
SELECT tenancy.usage(:'root', true) -> 'current_usage' -> 'concurrent_sessions' AS subtree;
-- a tenant without counter rows (as if created before the counter trigger existed) is metered like any other:
-- its rows are made on first use, and the pool counts it
SELECT id AS c FROM tenancy.create_tenant('Pool C', 'pool-c', 'team', parent_tenant_id => :'root') \gset
DELETE FROM tenancy.quota_counters WHERE tenant_id = :'c';
SELECT tenancy.release(:'root', 'concurrent_sessions', 1);
SELECT tenancy.consume_pooled(:'c', 'concurrent_sessions', 1);
SELECT pg_temp.used(:'c') AS c, pg_temp.used(:'root') AS root;
SELECT count(*) AS rows_made FROM tenancy.quota_counters WHERE tenant_id = :'c';

-- siblings: a child gives back only what it drew from the pool itself, never a sibling's share
SELECT id AS sroot FROM tenancy.create_tenant('Pool S Root', 'pool-s-root', 'team') \gset
SELECT id AS s1 FROM tenancy.create_tenant('Pool S1', 'pool-s1', 'team', parent_tenant_id => :'sroot') \gset
SELECT id AS s2 FROM tenancy.create_tenant('Pool S2', 'pool-s2', 'team', parent_tenant_id => :'sroot') \gset
SELECT id AS s11 FROM tenancy.create_tenant('Pool S11', 'pool-s11', 'team', parent_tenant_id => :'s1') \gset
CREATE ROLE regress_pool_app LOGIN IN ROLE tenancy_app;
SELECT tenancy.consume_pooled(:'s2', 'concurrent_sessions', 4);
SELECT tenancy.consume_pooled(:'s1', 'concurrent_sessions', 1);
-- the application of s1 asks back more than s1 drew: only s1's own unit leaves the pool
SET ROLE regress_pool_app;
BEGIN;
SELECT tenancy.set_tenant(:'s1');
SELECT tenancy.release_pooled(:'s1', 'concurrent_sessions', 5);
-- holding nothing more, s1 gives back nothing: s2's four stay counted in the pool
SELECT tenancy.release_pooled(:'s1', 'concurrent_sessions', 4);
-- units s1 counted with a plain consume (its own limit) were never in the pool: they do not lower it either
SELECT tenancy.consume(:'s1', 'concurrent_sessions', 3);
SELECT tenancy.release_pooled(:'s1', 'concurrent_sessions', 3);
COMMIT;
RESET ROLE;
SELECT pg_temp.used(:'s1') AS s1, pg_temp.used(:'s2') AS s2, pg_temp.used(:'sroot') AS sroot;
-- with a pool of 6, s2's share leaves room for 2 (s1's plain units are not in the pool)
SELECT tenancy.set_quota_override(:'sroot', 'concurrent_sessions', 6);
SELECT tenancy.consume_pooled(:'s11', 'concurrent_sessions', 3);
SELECT tenancy.consume_pooled(:'s11', 'concurrent_sessions', 2);
SELECT pg_temp.used(:'s11') AS s11, pg_temp.used(:'s1') AS s1, pg_temp.used(:'sroot') AS sroot;
-- an intermediate tenant cannot give back what its child drew through it
SELECT tenancy.release_pooled(:'s1', 'concurrent_sessions', 2);
SELECT pg_temp.used(:'s1') AS s1, pg_temp.used(:'sroot') AS sroot;
-- each gives back its own share, exactly
SELECT tenancy.release_pooled(:'s11', 'concurrent_sessions', 2);
SELECT tenancy.release_pooled(:'s2', 'concurrent_sessions', 4);
SELECT pg_temp.used(:'s11') AS s11, pg_temp.used(:'s1') AS s1, pg_temp.used(:'s2') AS s2, pg_temp.used(:'sroot') AS sroot;
DROP ROLE regress_pool_app;

-- invalid input:
\set VERBOSITY sqlstate
SELECT tenancy.consume_pooled(:'a1', 'concurrent_sessions', 0);
SELECT tenancy.consume_pooled(:'a1', 'bandwidth');
SELECT tenancy.consume_pooled('00000000-0000-0000-0000-000000000000', 'concurrent_sessions');
SELECT tenancy.release_pooled(:'a1', 'concurrent_sessions', -1);
SELECT tenancy.release_pooled('00000000-0000-0000-0000-000000000000', 'concurrent_sessions');
-- the windowed flows cannot be given back, pooled or not (their window resets them)
SELECT tenancy.consume_pooled(:'a1', 'ai_requests', 2);
SELECT tenancy.release_pooled(:'a1', 'ai_requests', 2);
SELECT tenancy.release_pooled(:'a1', 'api_calls', 1);
SELECT used FROM tenancy._quota_state(:'root', 'ai_requests');
