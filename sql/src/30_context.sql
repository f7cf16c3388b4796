-- sql/src/30_context.sql
-- Tenant context: set_tenant, current_tenant_id, and the invalidation trigger of the per-backend tenant cache.

CREATE FUNCTION tenancy.set_tenant(id uuid) RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_set_tenant';
COMMENT ON FUNCTION tenancy.set_tenant(uuid) IS
  'sets the tenant context for the current transaction only (TN001 unknown, TN002 not trial/active); NULL clears it';

-- STABLE + LEAKPROOF: a policy "tenant_id = current_tenant_id()" is an index condition and drives partition pruning.
CREATE FUNCTION tenancy.current_tenant_id() RETURNS uuid
LANGUAGE c STABLE PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'tenancy_current_tenant_id';
COMMENT ON FUNCTION tenancy.current_tenant_id() IS
  'tenant context of the current transaction (set_tenant, or a transaction-local app.tenant_id), or NULL';

CREATE FUNCTION tenancy._tenants_changed() RETURNS trigger
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_tenants_changed';
COMMENT ON FUNCTION tenancy._tenants_changed() IS
  'internal: invalidates every backend''s tenant status cache after a change to tenancy.tenants';

CREATE TRIGGER tenants_invalidate_context_cache
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.tenants
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._tenants_changed();

REVOKE ALL ON FUNCTION tenancy.set_tenant(uuid), tenancy.current_tenant_id(), tenancy._tenants_changed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.set_tenant(uuid), tenancy.current_tenant_id() TO tenancy_admin, tenancy_app;
