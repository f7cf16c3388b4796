-- sql/src/71_sla.sql
-- SLA targets by plan (SPEC.md): what tenancyd's SLA report compares its measurements with.

CREATE FUNCTION tenancy.sla_targets(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p tenancy.tenant_plan;
BEGIN
  SELECT t.plan INTO p FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) sla_targets.tenant_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TN001', MESSAGE = format('tenant "%s" does not exist', tenant_id);
  END IF;
  RETURN CASE p
    WHEN 'enterprise' THEN '{"uptime_percent": 99.95, "response_time_ms": 200, "support_response_hours": 1}'::jsonb
    WHEN 'team' THEN '{"uptime_percent": 99.9, "response_time_ms": 500, "support_response_hours": 4}'::jsonb
    ELSE '{"uptime_percent": 99.5, "response_time_ms": 1000, "support_response_hours": 24}'::jsonb
  END || jsonb_build_object('plan', p);
END
$$;
COMMENT ON FUNCTION tenancy.sla_targets(uuid) IS 'uptime, response-time and support targets of the tenant''s plan';
REVOKE ALL ON FUNCTION tenancy.sla_targets(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.sla_targets(uuid) TO tenancy_admin;
