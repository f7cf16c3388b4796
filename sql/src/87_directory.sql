-- sql/src/87_directory.sql
-- The tenant directory of tenancyd's regions mode: which region's cluster holds each tenant (id, slug, region only).

-- It lives in one database that every tenancyd instance reads (directory.conninfo), so it holds no tenant data:
-- only where the data is. A row is 'pending' while the tenant is being created in its region (region_xid names
-- that cluster's transaction, so any instance can later tell with pg_xact_status whether the tenant exists);
-- only 'active' rows route requests. The slug is unique here too, so slugs stay unique across regions.
CREATE TABLE tenancy.tenant_directory (
  tenant_id uuid PRIMARY KEY,
  slug text NOT NULL,
  region tenancy.data_residency NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'active')),
  region_xid xid8,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  CONSTRAINT tenant_directory_slug_key UNIQUE (slug),
  CONSTRAINT tenant_directory_pending_xid CHECK (state OPERATOR(pg_catalog.=) 'active' OR region_xid IS NOT NULL)
);
COMMENT ON TABLE tenancy.tenant_directory IS
  'tenancyd regions mode: the region whose cluster holds each tenant (id, slug, region; never tenant data)';
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenant_directory', '');

-- Every change is announced on channel tenancy_directory (payload: the tenant id), so a daemon instance that
-- caches entries drops its copy when another instance activates, moves or forgets a tenant.
CREATE FUNCTION tenancy._directory_notify() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM pg_catalog.pg_notify('tenancy_directory', OLD.tenant_id::text);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION tenancy._directory_notify() IS
  'internal: notifies channel tenancy_directory with the tenant id of a changed or removed directory entry';

CREATE TRIGGER tenant_directory_notify AFTER UPDATE OR DELETE ON tenancy.tenant_directory
  FOR EACH ROW EXECUTE FUNCTION tenancy._directory_notify();

REVOKE ALL ON tenancy.tenant_directory FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy._directory_notify() FROM PUBLIC;
-- The daemon (a tenancy_admin member) reads and maintains the directory itself.
GRANT SELECT, INSERT, UPDATE, DELETE ON tenancy.tenant_directory TO tenancy_admin;
