-- residency: tenancy.region (superuser only, validated), enforcement in create_tenant, update_tenant and on direct
-- writes to the registry, single-cluster mode, and backup_policy by residency and plan
\set VERBOSITY sqlstate
CREATE ROLE regress_res_admin;
CREATE ROLE regress_res_app;
GRANT tenancy_admin TO regress_res_admin;
GRANT tenancy_app TO regress_res_app;
-- sqlstate, message, detail and hint of a statement that must fail
CREATE FUNCTION res_error(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text; det text; hnt text;
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL,
                          hnt = PG_EXCEPTION_HINT;
  RETURN concat_ws(' | ', st, msg, nullif(det, ''), nullif(hnt, ''));
END
$$;

-- single-cluster mode (unset): every residency is accepted
SHOW tenancy.region;
SELECT t.slug, t.data_residency
  FROM (VALUES ('Res US', 'res-us', 'developer', 'us'), ('Res EU', 'res-eu', 'team', 'eu'),
               ('Res UK', 'res-uk', 'enterprise', 'uk'), ('Res CA', 'res-ca', 'team', 'canada'),
               ('Res AU', 'res-au', 'developer', 'australia')) v(org, slug, plan, residency),
       LATERAL tenancy.create_tenant(v.org, v.slug, v.plan, v.residency) t ORDER BY t.slug;

-- only a superuser sets the region, and only to a residency
SET ROLE regress_res_admin;
SET tenancy.region = 'us';
SELECT set_config('tenancy.region', 'us', true);
RESET ROLE;
SET tenancy.region = 'mars';
SET tenancy.region = 'EU';
SHOW tenancy.region;

-- an EU cluster: other residencies are refused with TN005, the hint names the tenant's region
SET tenancy.region = 'eu';
SELECT res_error($$SELECT tenancy.create_tenant('Res US 2', 'res-us-2', 'team', 'us')$$);
SELECT res_error($$SELECT tenancy.create_tenant('Res default', 'res-default')$$);  -- default residency us
SELECT res_error($$SELECT tenancy.create_tenant('Res AU 2', 'res-au-2', data_residency => 'australia')$$);
SELECT res_error($$SELECT tenancy.update_tenant((SELECT id FROM tenancy.tenants WHERE slug = 'res-eu'),
                                                '{"data_residency": "uk"}')$$);
-- direct writes to the registry cannot slip around the functions
SELECT res_error($$INSERT INTO tenancy.tenants (organization_name, slug, data_residency) VALUES ('X', 'res-x', 'us')$$);
SELECT res_error($$UPDATE tenancy.tenants SET data_residency = 'canada' WHERE slug = 'res-eu'$$);
-- an admin goes through the same checks
SET ROLE regress_res_admin;
SELECT res_error($$SELECT tenancy.create_tenant('Res US 3', 'res-us-3', 'team', 'us')$$);
SELECT (tenancy.create_tenant('Res EU 2', 'res-eu-2', 'developer', 'eu')).data_residency;
RESET ROLE;
-- nothing of the refused tenants was written
SELECT count(*) FROM tenancy.tenants WHERE slug IN ('res-us-2', 'res-default', 'res-au-2', 'res-x', 'res-us-3');
SELECT data_residency FROM tenancy.tenants WHERE slug = 'res-eu';
-- a tenant of another residency that is already here (region set later, or being moved out) may still change
-- everything but its residency, and may move to the region of this cluster
SELECT plan, status FROM tenancy.update_tenant((SELECT id FROM tenancy.tenants WHERE slug = 'res-us'),
                                               '{"plan": "team", "status": "active"}');
SELECT data_residency FROM tenancy.update_tenant((SELECT id FROM tenancy.tenants WHERE slug = 'res-ca'),
                                                 '{"data_residency": "eu"}');

-- backup_policy: regions by residency, retention by plan, the cluster's region
SELECT slug, tenancy.backup_policy(id) - 'tenant_id' AS policy FROM tenancy.tenants WHERE slug LIKE 'res-%' ORDER BY slug;
SELECT (tenancy.backup_policy(id) ->> 'tenant_id')::uuid = id FROM tenancy.tenants WHERE slug = 'res-uk';
RESET tenancy.region;
SELECT tenancy.backup_policy(id) -> 'cluster_region', tenancy.backup_policy(id) -> 'served_here'
  FROM tenancy.tenants WHERE slug = 'res-us';
-- the plan's retention follows a plan change
SELECT plan FROM tenancy.update_tenant((SELECT id FROM tenancy.tenants WHERE slug = 'res-au'), '{"plan": "enterprise"}');
SELECT tenancy.backup_policy(id) -> 'retention_days' FROM tenancy.tenants WHERE slug = 'res-au';

-- invalid input and missing rights:
SELECT tenancy.backup_policy('00000000-0000-0000-0000-000000000000');
SELECT tenancy.backup_policy(NULL) IS NULL;
SET ROLE regress_res_app;
SELECT tenancy.backup_policy((SELECT id FROM tenancy.tenants WHERE slug = 'res-us'));
RESET ROLE;
SET ROLE regress_res_admin;
SELECT tenancy.backup_policy(id) ->> 'retention_days' FROM tenancy.tenants WHERE slug = 'res-us';
RESET ROLE;

-- clean up
SELECT tenancy.delete_tenant(id, erase => true) FROM tenancy.tenants WHERE slug LIKE 'res-%';
DROP FUNCTION res_error(text);
DROP ROLE regress_res_admin, regress_res_app;
