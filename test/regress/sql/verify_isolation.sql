-- verify_isolation: one deliberately broken setup per problem class, each reported with a fix hint; applying
-- the hints leaves nothing to report
\set VERBOSITY sqlstate
CREATE ROLE regress_vrf_owner;
CREATE ROLE regress_vrf_app;
CREATE ROLE regress_vrf_admin;
GRANT tenancy_app TO regress_vrf_app;
GRANT tenancy_admin TO regress_vrf_admin;
CREATE VIEW vrf_report AS
  SELECT table_name, problem, hint FROM tenancy.verify_isolation()
   WHERE table_name::text LIKE 'vrf%' OR problem LIKE '%vrf%';

-- a correct setup reports nothing
CREATE TABLE vrf_ok (id int, tenant_id uuid);
SELECT tenancy.enable_isolation('vrf_ok');
CREATE VIEW vrf_ok_invoker WITH (security_invoker = true) AS SELECT * FROM vrf_ok;
CREATE VIEW vrf_ok_barrier WITH (security_barrier) AS SELECT * FROM vrf_ok;
SELECT * FROM vrf_report;

-- 1. a table with a tenant column and no policy
CREATE TABLE vrf_unprotected (id int, tenant_id uuid);
-- 2. row level security not forced (the owner bypasses it), and not enabled at all
CREATE TABLE vrf_not_forced (id int, tenant_id uuid);
SELECT tenancy.enable_isolation('vrf_not_forced');
ALTER TABLE vrf_not_forced NO FORCE ROW LEVEL SECURITY;
CREATE TABLE vrf_disabled (id int, tenant_id uuid);
SELECT tenancy.enable_isolation('vrf_disabled');
ALTER TABLE vrf_disabled DISABLE ROW LEVEL SECURITY;
-- 3. a policy edited by hand, a policy dropped, an extra permissive policy
CREATE TABLE vrf_edited (id int, tenant_id uuid);
SELECT tenancy.enable_isolation('vrf_edited');
ALTER POLICY tenancy_isolation ON vrf_edited USING (true);
CREATE TABLE vrf_dropped (id int, tenant_id uuid);
SELECT tenancy.enable_isolation('vrf_dropped', include_descendants => true);
DROP POLICY tenancy_descendants_read ON vrf_dropped;
CREATE TABLE vrf_extra (id int, tenant_id uuid);
SELECT tenancy.enable_isolation('vrf_extra');
CREATE POLICY everyone_reads ON vrf_extra FOR SELECT USING (true);
CREATE POLICY narrower ON vrf_extra AS RESTRICTIVE USING (id > 0);  -- restrictive: only narrows, not reported
-- 4. a partition reachable without a policy
CREATE TABLE vrf_parted (tenant_id uuid NOT NULL, id int) PARTITION BY HASH (tenant_id);
CREATE TABLE vrf_parted_p0 PARTITION OF vrf_parted FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE vrf_parted_p1 PARTITION OF vrf_parted FOR VALUES WITH (MODULUS 2, REMAINDER 1);
SELECT tenancy.enable_isolation('vrf_parted');
SELECT tenancy.disable_isolation('vrf_parted_p1');
-- and an inheritance child added while the event trigger was disabled
ALTER EVENT TRIGGER tenancy_isolation_ddl_end DISABLE;
CREATE TABLE vrf_child () INHERITS (vrf_ok);
ALTER EVENT TRIGGER tenancy_isolation_ddl_end ENABLE;
-- 5. a view that is neither security_invoker nor security_barrier, and a materialized view
CREATE VIEW vrf_view AS SELECT * FROM vrf_ok;
CREATE MATERIALIZED VIEW vrf_matview AS SELECT * FROM vrf_ok;
-- 6. a SECURITY DEFINER function owned by a superuser that the app role can execute
CREATE FUNCTION vrf_definer() RETURNS bigint LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog
  AS 'SELECT count(*) FROM public.vrf_ok';
-- 7. an application role with BYPASSRLS, and an isolated table owned by an application role
CREATE TABLE vrf_app_owned (id int, tenant_id uuid);
SELECT tenancy.enable_isolation('vrf_app_owned');
ALTER TABLE vrf_app_owned OWNER TO regress_vrf_app;
ALTER ROLE regress_vrf_app BYPASSRLS;
-- 8. unique keys without the tenant column (an insert would reveal another tenant's value): a primary key, a unique
-- constraint, a partial unique index on an expression, a key that only INCLUDEs the tenant column, an exclusion
-- constraint. Keys with the tenant column, first or not, are fine, and a partitioned table's key is looked at once
-- (not per partition)
CREATE TABLE vrf_keys (id int PRIMARY KEY, tenant_id uuid, code text, email text, slot int,
  CONSTRAINT vrf_keys_code_key UNIQUE (code), CONSTRAINT vrf_keys_slot_excl EXCLUDE USING btree (slot WITH =));
CREATE UNIQUE INDEX vrf_keys_email_idx ON vrf_keys (lower(email)) WHERE email IS NOT NULL;
CREATE UNIQUE INDEX vrf_keys_included_idx ON vrf_keys (email) INCLUDE (tenant_id);
CREATE UNIQUE INDEX vrf_keys_code_tenant_idx ON vrf_keys (code, tenant_id);
CREATE UNIQUE INDEX vrf_keys_tenant_code_idx ON vrf_keys (tenant_id, code);
SELECT tenancy.enable_isolation('vrf_keys');
CREATE TABLE vrf_keys_parted (tenant_id uuid NOT NULL, id int, PRIMARY KEY (id, tenant_id)) PARTITION BY HASH (tenant_id);
CREATE TABLE vrf_keys_parted_p0 PARTITION OF vrf_keys_parted FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE vrf_keys_parted_p1 PARTITION OF vrf_keys_parted FOR VALUES WITH (MODULUS 2, REMAINDER 1);
SELECT tenancy.enable_isolation('vrf_keys_parted');

SELECT * FROM vrf_report;

-- an admin that is not a superuser can run it; an application role cannot
SET ROLE regress_vrf_admin;
SELECT count(*) > 0 AS reports FROM tenancy.verify_isolation();
RESET ROLE;
SET ROLE regress_vrf_app;
SELECT count(*) FROM tenancy.verify_isolation();
RESET ROLE;

-- apply the hints
SELECT tenancy.enable_isolation('vrf_unprotected', 'tenant_id');
ALTER TABLE vrf_not_forced ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
SELECT tenancy.enable_isolation('vrf_disabled');
SELECT tenancy.enable_isolation('vrf_edited', 'tenant_id', false);
SELECT tenancy.enable_isolation('vrf_dropped', 'tenant_id', true);
DROP POLICY everyone_reads ON vrf_extra;
SELECT tenancy.enable_isolation('vrf_parted', 'tenant_id', false);
SELECT tenancy.enable_isolation('vrf_ok', 'tenant_id', false);
ALTER VIEW vrf_view SET (security_invoker = true);
DROP MATERIALIZED VIEW vrf_matview;
REVOKE EXECUTE ON FUNCTION vrf_definer() FROM PUBLIC, tenancy_app;
ALTER ROLE regress_vrf_app NOBYPASSRLS;
ALTER TABLE vrf_app_owned OWNER TO regress_vrf_owner;
-- the unique-key hints are runnable as given (the exclusion constraint's is a description)
DO $$
DECLARE
  h text;
BEGIN
  FOR h IN SELECT hint FROM vrf_report WHERE problem LIKE 'unique key %' AND hint NOT LIKE 'recreate %' LOOP
    EXECUTE h;
  END LOOP;
END
$$;
ALTER TABLE vrf_keys DROP CONSTRAINT vrf_keys_slot_excl,
  ADD CONSTRAINT vrf_keys_slot_excl EXCLUDE USING btree (tenant_id WITH =, slot WITH =);
SELECT * FROM vrf_report;

DROP VIEW vrf_report;
DROP FUNCTION vrf_definer();
DROP VIEW vrf_view, vrf_ok_invoker, vrf_ok_barrier;
DROP TABLE vrf_child, vrf_ok, vrf_unprotected, vrf_not_forced, vrf_disabled, vrf_edited, vrf_dropped, vrf_extra,
  vrf_parted, vrf_app_owned, vrf_keys, vrf_keys_parted;
DROP ROLE regress_vrf_owner, regress_vrf_app, regress_vrf_admin;
SELECT count(*) AS records_left FROM tenancy.isolation_config;
