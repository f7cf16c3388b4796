-- quota_ranking: the tenants nearest their quotas by the durable counters (what tenancyd's /metrics exports quota
-- gauges for), windowed metrics in their current window only, cancelled tenants left out.
\set VERBOSITY sqlstate
SELECT count(*) FROM (SELECT tenancy.create_tenant('Rank ' || s, 'rank-' || s, 'developer')
                        FROM unnest(ARRAY['low', 'high', 'mid', 'gone']) s) x;
CREATE FUNCTION pg_temp.tid(s text) RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM tenancy.tenants WHERE slug = 'rank-' || s $$;
SELECT tenancy.consume(pg_temp.tid('high'), 'api_calls', 9000);
SELECT tenancy.consume(pg_temp.tid('mid'), 'api_calls', 5000);
SELECT tenancy.consume(pg_temp.tid('low'), 'api_calls', 10);
SELECT tenancy.consume(pg_temp.tid('gone'), 'api_calls', 9999);
SELECT tenancy.delete_tenant(pg_temp.tid('gone'));
-- ours in order (other tests' tenants may rank too; reserved may run a metering block ahead of usage: bounds, not
-- exact figures); the cancelled tenant is left out
SELECT t.slug, r.utilization_percent >= 50 AS at_least_half
  FROM tenancy.quota_ranking(100000) r JOIN tenancy.tenants t ON t.id = r.tenant_id
 WHERE t.slug LIKE 'rank-%' ORDER BY r.utilization_percent DESC;
-- max_tenants bounds the answer
SELECT count(*) <= 2 AS bounded FROM tenancy.quota_ranking(2);
SELECT count(*) AS none FROM tenancy.quota_ranking(0);
SELECT count(*) AS null_limit FROM tenancy.quota_ranking(NULL);
-- tenancy_app may not read the ranking; tenancy_admin may
CREATE ROLE regress_rank_app NOLOGIN IN ROLE tenancy_app;
SET ROLE regress_rank_app;
SELECT count(*) FROM tenancy.quota_ranking(10);
RESET ROLE;
DROP ROLE regress_rank_app;
SELECT count(*) FROM (SELECT tenancy.delete_tenant(pg_temp.tid(s), erase => true)
                        FROM unnest(ARRAY['low', 'high', 'mid', 'gone']) s) x;
