-- sql/src/40_isolation.sql
-- Row-level-security isolation: the generated policies' functions, enable/disable_isolation, the record of what
-- was done, the event triggers that protect later partitions, isolated_tables, verify_isolation, erasure.

-- What enable_isolation did to each table (the root it was called on and every partition/child), so that
-- disable_isolation undoes exactly that and verify_isolation can tell a generated policy from an edited one.
CREATE TABLE tenancy.isolation_config (
  relid regclass PRIMARY KEY,
  root regclass NOT NULL,
  tenant_column name NOT NULL,
  include_descendants boolean NOT NULL,
  prior_rls_enabled boolean NOT NULL,
  prior_rls_forced boolean NOT NULL,
  prior_default text,
  prior_not_null boolean NOT NULL,
  created_index regclass,
  policy_qual text NOT NULL,
  policy_check text NOT NULL,
  descendants_qual text,
  cross_tenant_qual text NOT NULL
);
COMMENT ON TABLE tenancy.isolation_config IS
  'internal: tables protected by enable_isolation, their previous state and the deparsed generated policies';
SELECT pg_catalog.pg_extension_config_dump('tenancy.isolation_config', '');

-- The policy's context. Raises TN004 without a context unless tenancy.missing_context = 'empty' (then NULL: no
-- row matches) or a tenancy_admin cross-tenant read is active. STABLE LEAKPROOF, so "col = f()" is an index
-- condition and prunes partitions at executor start.
CREATE FUNCTION tenancy._policy_tenant_id() RETURNS uuid
LANGUAGE c STABLE PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'tenancy_policy_tenant_id';
COMMENT ON FUNCTION tenancy._policy_tenant_id() IS
  'internal: tenant context for isolation policies; TN004 (or NULL with tenancy.missing_context = empty) without one';

CREATE FUNCTION tenancy._policy_tenant_ids() RETURNS uuid[]
LANGUAGE c STABLE PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'tenancy_policy_tenant_ids';
COMMENT ON FUNCTION tenancy._policy_tenant_ids() IS
  'internal: the context tenant and its descendants, for read policies of include_descendants tables';

CREATE FUNCTION tenancy._cross_tenant_active() RETURNS boolean
LANGUAGE c STABLE PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'tenancy_cross_tenant_active';
COMMENT ON FUNCTION tenancy._cross_tenant_active() IS
  'internal: true while an audited cross-tenant read (begin_cross_tenant) is active in this transaction';

CREATE FUNCTION tenancy.begin_cross_tenant(reason text) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_begin_cross_tenant';
COMMENT ON FUNCTION tenancy.begin_cross_tenant(text) IS
  'tenancy_admin only: lets this transaction read every tenant''s rows of isolated tables; audited with the reason';

CREATE FUNCTION tenancy.enable_isolation(tbl regclass, tenant_column name = 'tenant_id',
                                         include_descendants boolean = false) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_enable_isolation';
COMMENT ON FUNCTION tenancy.enable_isolation(regclass, name, boolean) IS
  'protects a table and every partition with generated row-level-security policies on its tenant column; idempotent';

CREATE FUNCTION tenancy.disable_isolation(tbl regclass) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_disable_isolation';
COMMENT ON FUNCTION tenancy.disable_isolation(regclass) IS
  'undoes exactly what enable_isolation did to the table and its partitions';

CREATE FUNCTION tenancy._erase_tenant_rows(tenant uuid) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_erase_tenant_rows';
COMMENT ON FUNCTION tenancy._erase_tenant_rows(uuid) IS
  'internal (delete_tenant with erase): deletes the tenant''s rows from every isolated table; returns the row count';

-- Partitions created or attached later, inheritance children, and tables created while tenancy.auto_isolate names
-- a column, get the same protection at the end of the DDL command; dropped tables leave the record.
CREATE FUNCTION tenancy._isolation_ddl_end() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_isolation_ddl_end';
COMMENT ON FUNCTION tenancy._isolation_ddl_end() IS
  'internal: isolates new partitions/children of isolated tables and tenancy.auto_isolate tables';
CREATE FUNCTION tenancy._isolation_sql_drop() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_isolation_sql_drop';
COMMENT ON FUNCTION tenancy._isolation_sql_drop() IS 'internal: forgets dropped isolated tables';

CREATE EVENT TRIGGER tenancy_isolation_ddl_end ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
  EXECUTE FUNCTION tenancy._isolation_ddl_end();
CREATE EVENT TRIGGER tenancy_isolation_sql_drop ON sql_drop
  EXECUTE FUNCTION tenancy._isolation_sql_drop();

CREATE FUNCTION tenancy._refuse_truncate() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_refuse_truncate';
COMMENT ON FUNCTION tenancy._refuse_truncate() IS
  'internal: TRUNCATE of an isolated table would remove every tenant''s rows; only tenancy_admin may';

CREATE VIEW tenancy.isolated_tables WITH (security_barrier) AS
SELECT c.relid AS table_name,
       c.root AS isolated_via,
       c.tenant_column,
       c.include_descendants,
       k.relrowsecurity AS rls_enabled,
       k.relforcerowsecurity AS rls_forced,
       (SELECT pg_catalog.array_agg(p.polname::text ORDER BY p.polname)
          FROM pg_catalog.pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) k.oid) AS policies,
       c.created_index
  FROM tenancy.isolation_config c
  JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid;
COMMENT ON VIEW tenancy.isolated_tables IS 'every table protected by enable_isolation, with its RLS state and policies';

REVOKE ALL ON tenancy.isolation_config, tenancy.isolated_tables FROM PUBLIC;
GRANT SELECT ON tenancy.isolation_config, tenancy.isolated_tables TO tenancy_admin;
REVOKE ALL ON FUNCTION tenancy._policy_tenant_id(), tenancy._policy_tenant_ids(), tenancy._cross_tenant_active(),
  tenancy.begin_cross_tenant(text), tenancy.enable_isolation(regclass, name, boolean),
  tenancy.disable_isolation(regclass), tenancy._erase_tenant_rows(uuid), tenancy._isolation_ddl_end(),
  tenancy._isolation_sql_drop(), tenancy._refuse_truncate() FROM PUBLIC;
-- Policies are evaluated with the querying role's privileges: every role that queries an isolated table (the
-- owner too, under FORCE) must be a member of tenancy_app or tenancy_admin; others get 42501 (fail closed).
GRANT EXECUTE ON FUNCTION tenancy._policy_tenant_id(), tenancy._policy_tenant_ids(), tenancy._cross_tenant_active(),
  tenancy._refuse_truncate() TO tenancy_app, tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.begin_cross_tenant(text), tenancy.enable_isolation(regclass, name, boolean),
  tenancy.disable_isolation(regclass), tenancy._erase_tenant_rows(uuid) TO tenancy_admin;

-- Signed context mode (tenancy.context_mode = 'signed'): a context that SQL injection cannot switch.
CREATE FUNCTION tenancy.set_tenant_token(token text) RETURNS uuid
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_set_tenant_token';
COMMENT ON FUNCTION tenancy.set_tenant_token(text) IS
  'verifies an HMAC-signed tenant token and sets its tenant as the context of the current transaction';
CREATE FUNCTION tenancy.sign_tenant_token(tenant uuid, ttl interval = '1 hour') RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_sign_tenant_token';
COMMENT ON FUNCTION tenancy.sign_tenant_token(uuid, interval) IS
  'tenancy_admin only: a token for set_tenant_token, signed with tenancy.context_secret_file, valid for ttl';
REVOKE ALL ON FUNCTION tenancy.set_tenant_token(text), tenancy.sign_tenant_token(uuid, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.set_tenant_token(text) TO tenancy_app, tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.sign_tenant_token(uuid, interval) TO tenancy_admin;
