-- sql/src/00_schema.sql
-- Schema, roles, domain enums, the plans config table and the tenant registry table.
\echo Use "CREATE EXTENSION tenancy" to load this file. \quit

-- The extension owns the schema (no IF NOT EXISTS): nobody can pre-create it with objects of their own.
CREATE SCHEMA tenancy;
COMMENT ON SCHEMA tenancy IS 'enterprise multi-tenancy: registry, isolation, quotas, encryption, audit';

-- Cluster-wide roles, created once; the extension never drops them (other databases may use them).
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenancy_admin') THEN
    CREATE ROLE tenancy_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenancy_app') THEN
    CREATE ROLE tenancy_app NOLOGIN;
  END IF;
END
$roles$;

REVOKE ALL ON SCHEMA tenancy FROM PUBLIC;
GRANT USAGE ON SCHEMA tenancy TO tenancy_admin, tenancy_app;

CREATE TYPE tenancy.tenant_status AS ENUM ('trial', 'active', 'suspended', 'cancelled');
CREATE TYPE tenancy.tenant_plan AS ENUM ('developer', 'team', 'enterprise');
CREATE TYPE tenancy.data_residency AS ENUM ('us', 'eu', 'uk', 'canada', 'australia');
CREATE TYPE tenancy.user_role AS ENUM ('owner', 'admin', 'manager', 'developer', 'viewer', 'guest');
CREATE TYPE tenancy.user_status AS ENUM ('invited', 'active', 'disabled');
COMMENT ON TYPE tenancy.tenant_status IS 'lifecycle of a tenant: trial -> active -> suspended/cancelled';
COMMENT ON TYPE tenancy.tenant_plan IS 'billing plan; its quotas live in tenancy.plans';
COMMENT ON TYPE tenancy.data_residency IS 'region whose cluster holds the tenant''s data';
COMMENT ON TYPE tenancy.user_role IS 'role of a user inside its tenant (see tenancy.permission)';
COMMENT ON TYPE tenancy.user_status IS 'invited and active users count against max_users';

-- Plan figures (SPEC.md). A DBA may edit them; pg_dump keeps the edits (config dump below), and the merge trigger
-- lets pg_restore's rows replace the seeds that CREATE EXTENSION inserted instead of colliding with them.
CREATE TABLE tenancy.plans (
  plan tenancy.tenant_plan PRIMARY KEY,
  price_usd_month numeric(10, 2) NOT NULL CHECK (price_usd_month >= 0),
  max_users bigint NOT NULL CHECK (max_users >= 0),
  max_projects bigint NOT NULL CHECK (max_projects >= 0),
  max_api_calls_per_month bigint NOT NULL CHECK (max_api_calls_per_month >= 0),
  max_storage_mb bigint NOT NULL CHECK (max_storage_mb >= 0),
  max_ai_requests_per_day bigint NOT NULL CHECK (max_ai_requests_per_day >= 0),
  max_concurrent_sessions bigint NOT NULL CHECK (max_concurrent_sessions >= 0)
);
COMMENT ON TABLE tenancy.plans IS 'quota figures and price of each plan; edits survive pg_dump/pg_restore and upgrades';

INSERT INTO tenancy.plans VALUES
  ('developer', 50, 1, 5, 10000, 1024, 100, 2),
  ('team', 200, 10, 50, 100000, 10240, 1000, 10),
  ('enterprise', 800, 999999, 999999, 999999999, 1048576, 10000, 100);

CREATE FUNCTION tenancy._plans_merge_restored_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE tenancy.plans SET price_usd_month = NEW.price_usd_month, max_users = NEW.max_users,
         max_projects = NEW.max_projects, max_api_calls_per_month = NEW.max_api_calls_per_month,
         max_storage_mb = NEW.max_storage_mb, max_ai_requests_per_day = NEW.max_ai_requests_per_day,
         max_concurrent_sessions = NEW.max_concurrent_sessions
   WHERE plan OPERATOR(pg_catalog.=) NEW.plan;
  IF FOUND THEN
    RETURN NULL;  -- the seeded row now holds the restored figures
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION tenancy._plans_merge_restored_row() IS 'internal: a restored plans row updates the seeded one';
CREATE TRIGGER plans_merge_restored_row BEFORE INSERT ON tenancy.plans
  FOR EACH ROW EXECUTE FUNCTION tenancy._plans_merge_restored_row();
SELECT pg_catalog.pg_extension_config_dump('tenancy.plans', '');

-- The tenant registry. Slug rules are checked in C++ (tenancy._validate_slug) with a clear error; the CHECK here is
-- the last line of defence against direct writes.
CREATE TABLE tenancy.tenants (
  id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
  organization_name text NOT NULL CHECK (pg_catalog.length(organization_name) BETWEEN 1 AND 255),
  display_name text CHECK (pg_catalog.length(display_name) <= 255),
  slug text NOT NULL CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]*[a-z0-9])$' AND pg_catalog.length(slug) BETWEEN 3 AND 63),
  status tenancy.tenant_status NOT NULL DEFAULT 'trial',
  plan tenancy.tenant_plan NOT NULL DEFAULT 'developer' REFERENCES tenancy.plans (plan),
  data_residency tenancy.data_residency NOT NULL DEFAULT 'us',
  encryption_key_id text,
  configuration jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(configuration) = 'object'),
  -- Deferred: pg_restore loads the table in physical order, where a child may precede its parent.
  parent_tenant_id uuid REFERENCES tenancy.tenants (id) DEFERRABLE INITIALLY DEFERRED,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  trial_ends_at timestamptz,
  CONSTRAINT tenants_slug_key UNIQUE (slug),
  CONSTRAINT tenants_not_own_parent CHECK (parent_tenant_id IS DISTINCT FROM id)
);
CREATE INDEX tenants_parent_idx ON tenancy.tenants (parent_tenant_id) WHERE parent_tenant_id IS NOT NULL;
COMMENT ON TABLE tenancy.tenants IS 'tenant registry: one row per tenant organization';
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenants', '');

CREATE FUNCTION tenancy._validate_slug(slug text) RETURNS void
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_validate_slug';
COMMENT ON FUNCTION tenancy._validate_slug(text) IS 'internal: raises TN005 for a slug that breaks the slug rule';

CREATE FUNCTION tenancy._normalize_email(email text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_normalize_email';
COMMENT ON FUNCTION tenancy._normalize_email(text) IS 'internal: lower-cased e-mail address, or TN005';

GRANT SELECT ON tenancy.plans TO tenancy_admin, tenancy_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenancy.plans TO tenancy_admin;
GRANT SELECT ON tenancy.tenants TO tenancy_admin;
