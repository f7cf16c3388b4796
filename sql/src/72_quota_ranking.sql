-- sql/src/72_quota_ranking.sql
-- The tenants nearest their quotas, read from the durable counters: tenancyd's /metrics exports quota gauges for
-- these (issue #16: it chose tenants by its own request counters, so a tenant used only through SQL never fired the
-- quota alerts). reserved is the counters' upper bound of usage (at most one metering block ahead), good for a
-- ranking; the exported values come from tenancy.usage() of the tenants ranked.

-- SECURITY DEFINER: reads tenancy.quota_counters, which tenancy_admin cannot read directly; returns only ids and
-- percentages. Windowed metrics count only in their current window (api_calls: the UTC month, ai_requests: the day).
CREATE FUNCTION tenancy.quota_ranking(max_tenants integer)
RETURNS TABLE (tenant_id uuid, utilization_percent numeric)
LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT c.tenant_id,
         pg_catalog.max(c.reserved::pg_catalog.numeric OPERATOR(pg_catalog.*) 100::pg_catalog.numeric
                        OPERATOR(pg_catalog./) l.lim::pg_catalog.numeric) AS utilization_percent
    FROM tenancy.quota_counters c
    JOIN tenancy.tenants t ON t.id OPERATOR(pg_catalog.=) c.tenant_id
    JOIN tenancy.plans p ON p.plan OPERATOR(pg_catalog.=) t.plan
    LEFT JOIN tenancy.quota_overrides o
      ON o.tenant_id OPERATOR(pg_catalog.=) c.tenant_id AND o.metric OPERATOR(pg_catalog.=) c.metric
    CROSS JOIN LATERAL (SELECT coalesce(o.max_value, CASE c.metric
             WHEN 'users' THEN p.max_users
             WHEN 'projects' THEN p.max_projects
             WHEN 'api_calls' THEN p.max_api_calls_per_month
             WHEN 'storage_mb' THEN p.max_storage_mb
             WHEN 'ai_requests' THEN p.max_ai_requests_per_day
             WHEN 'concurrent_sessions' THEN p.max_concurrent_sessions END) AS lim) l
   WHERE l.lim OPERATOR(pg_catalog.>) 0
     AND t.status OPERATOR(pg_catalog.<>) 'cancelled'::tenancy.tenant_status
     AND CASE c.metric
           WHEN 'api_calls' THEN c.window_start OPERATOR(pg_catalog.>=)
                pg_catalog.date_trunc('month', pg_catalog.now() AT TIME ZONE 'UTC')::pg_catalog.date
           WHEN 'ai_requests' THEN c.window_start OPERATOR(pg_catalog.>=)
                (pg_catalog.now() AT TIME ZONE 'UTC')::pg_catalog.date
           ELSE true END
   GROUP BY c.tenant_id
   ORDER BY 2 DESC, 1
   LIMIT greatest(quota_ranking.max_tenants, 0)
$$;
COMMENT ON FUNCTION tenancy.quota_ranking(integer) IS
  'the max_tenants tenants with the highest quota utilization (from the durable counters), for monitoring';
REVOKE ALL ON FUNCTION tenancy.quota_ranking(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.quota_ranking(integer) TO tenancy_admin;
