-- sql/src/80_residency.sql
-- Data residency: the cluster's region (tenancy.region) enforced on the registry, and each tenant's backup policy.

-- The single enforcement point: every way a tenant row arrives (create_tenant, update_tenant, import_tenant, a
-- direct INSERT) passes this trigger. create_tenant/update_tenant already refuse early in _parse_residency with the
-- same message; this catches what does not go through them. Existing rows of another residency (a cluster that set
-- tenancy.region later, or a tenant being moved out) may still be updated as long as the residency stays.
CREATE FUNCTION tenancy._enforce_region() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  region text := pg_catalog.current_setting('tenancy.region', true);
BEGIN
  IF region IS NULL OR region OPERATOR(pg_catalog.=) ''
     OR NEW.data_residency::text OPERATOR(pg_catalog.=) region
     OR (TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND NEW.data_residency OPERATOR(pg_catalog.=) OLD.data_residency) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'TN005',
    MESSAGE = format('data residency "%s" is not served by this cluster', NEW.data_residency),
    DETAIL = format('This cluster serves region "%s" (tenancy.region).', region),
    HINT = format('Create the tenant on the cluster of region "%s" (tenancy.region = ''%s'').', NEW.data_residency,
                  NEW.data_residency);
END
$$;
COMMENT ON FUNCTION tenancy._enforce_region() IS
  'internal: refuses a tenant whose data residency is not the region this cluster serves (tenancy.region)';

CREATE TRIGGER tenants_enforce_region BEFORE INSERT OR UPDATE OF data_residency ON tenancy.tenants
  FOR EACH ROW EXECUTE FUNCTION tenancy._enforce_region();
-- ALWAYS: rows arriving by logical replication (apply workers run in replica mode) are checked too.
ALTER TABLE tenancy.tenants ENABLE ALWAYS TRIGGER tenants_enforce_region;

-- Backup regions by residency and retention by plan (SPEC.md "Domain"), with the region this cluster serves.
CREATE FUNCTION tenancy.backup_policy(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants := tenancy.get_tenant(tenant_id);
  regions text[];
  region text := NULLIF(pg_catalog.current_setting('tenancy.region', true), '');
BEGIN
  regions := CASE t.data_residency
    WHEN 'eu' THEN ARRAY['eu-central-1', 'eu-west-1', 'eu-north-1']
    WHEN 'us' THEN ARRAY['us-east-1', 'us-west-2', 'us-central-1']
    ELSE ARRAY[t.data_residency::text OPERATOR(pg_catalog.||) '-primary',
                t.data_residency::text OPERATOR(pg_catalog.||) '-secondary'] END;
  RETURN pg_catalog.jsonb_build_object(
    'tenant_id', t.id,
    'data_residency', t.data_residency,
    'plan', t.plan,
    'backup_regions', pg_catalog.to_jsonb(regions),
    'regions', pg_catalog.to_jsonb(regions),  -- SPEC.md's short name for backup_regions
    'retention_days', CASE t.plan WHEN 'developer' THEN 7 WHEN 'team' THEN 30 WHEN 'enterprise' THEN 365 END,
    'cluster_region', region,
    'served_here', region IS NULL OR region OPERATOR(pg_catalog.=) t.data_residency::text);
END
$$;
COMMENT ON FUNCTION tenancy.backup_policy(uuid) IS
  'backup regions (by data residency) and retention days (by plan) of a tenant, and the region this cluster serves';

REVOKE ALL ON FUNCTION tenancy._enforce_region(), tenancy.backup_policy(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.backup_policy(uuid) TO tenancy_admin;
