-- sql/src/35_registry_access.sql
-- Row-level access to the tenant registry: an application role reads only its context tenant's row.

-- tenancy_admin sees and changes every tenant (its SECURITY INVOKER admin functions rely on it); tenancy_app sees
-- exactly the tenant of its transaction's context and nothing without one. FORCE is not set: the extension owner
-- (which the C code switches to for cross-tenant lookups) keeps its view of every row.
ALTER TABLE tenancy.tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenants_admin_all ON tenancy.tenants FOR ALL TO tenancy_admin USING (true) WITH CHECK (true);
CREATE POLICY tenants_app_own_row ON tenancy.tenants FOR SELECT TO tenancy_app
  USING (id OPERATOR(pg_catalog.=) tenancy.current_tenant_id());
GRANT SELECT ON tenancy.tenants TO tenancy_app;
