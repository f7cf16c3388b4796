-- sql/src/98_ownership.sql
-- Least privilege: the role tenancy_owner (NOLOGIN, no attributes, no members) owns schema tenancy and the
-- SECURITY DEFINER functions and may read and write the rows of the extension's tables, so that code running with
-- the extension's rights has the rights of that role, not the cluster's. Runs on every install and every update
-- (the Makefile appends it to each upgrade step), so objects added later are covered. docs/isolation.md
-- "Privilege model" says what runs as whom.
DO $owner$
DECLARE
  r record;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'tenancy_owner') THEN
    CREATE ROLE tenancy_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS;
  END IF;
  SELECT * INTO r FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) 'tenancy_owner';
  -- A pre-existing role of that name (made by someone with CREATEROLE) must not be a way in.
  IF r.rolsuper OR r.rolcanlogin OR r.rolcreaterole OR r.rolcreatedb OR r.rolreplication OR r.rolbypassrls THEN
    RAISE EXCEPTION 'role "tenancy_owner" must have no attributes'
      USING ERRCODE = '42501',
            DETAIL = 'It owns the extension''s objects; login, superuser, CREATEROLE, CREATEDB, REPLICATION or '
                     'BYPASSRLS would hand them, or more, to whoever uses it.',
            HINT = 'ALTER ROLE tenancy_owner NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS;';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
              WHERE m.roleid OPERATOR(pg_catalog.=) r.oid OR m.member OPERATOR(pg_catalog.=) r.oid) THEN
    RAISE EXCEPTION 'role "tenancy_owner" must have no members and belong to no role'
      USING ERRCODE = '42501',
            DETAIL = 'A member could act as the owner of every tenancy table; a membership would give the owner '
                     'rights beyond the extension''s objects.',
            HINT = 'REVOKE the memberships of tenancy_owner, then retry.';
  END IF;
END
$owner$;

ALTER SCHEMA tenancy OWNER TO tenancy_owner;

DO $owned$
DECLARE
  f record;
BEGIN
  -- SECURITY DEFINER functions run as tenancy_owner, except the ones whose work needs a superuser (each says why
  -- where it is defined): reading every tenant's rows of application tables, and the live move's replication.
  FOR f IN
    SELECT p.oid::pg_catalog.regprocedure AS fn
      FROM pg_catalog.pg_proc p
     WHERE p.pronamespace OPERATOR(pg_catalog.=) 'tenancy'::pg_catalog.regnamespace
       AND p.prosecdef
       AND p.proowner OPERATOR(pg_catalog.<>) 'tenancy_owner'::pg_catalog.regrole
       AND NOT (p.proname OPERATOR(pg_catalog.=) ANY (ARRAY[
             -- recount the rows of application tables of every tenant (track_quota)
             'reconcile_quota', '_quota_register_tracked',
             -- live move: publications, replication slots, CREATE/ALTER/DROP SUBSCRIPTION (superuser in PostgreSQL
             -- 15), guards and replica identities on application tables; why each, in sql/src/88_move.sql. Its
             -- other SECURITY DEFINER functions (move_orphans, move_adopt, move_source_progress,
             -- move_source_freeze, move_target_caught_up, move_target_transport_key, _move_guard) need only
             -- schema tenancy and run as tenancy_owner.
             'move_source_prepare', 'move_source_create_slot', 'move_source_handover', 'move_source_finish',
             'move_target_prepare', 'move_target_subscribe', 'move_target_progress', 'move_target_switch',
             'move_target_finish', 'move_target_abort'
           ]::pg_catalog.name[]))
     ORDER BY p.oid
  LOOP
    EXECUTE pg_catalog.format('ALTER FUNCTION %s OWNER TO tenancy_owner', f.fn);
  END LOOP;
END
$owned$;

-- Tables, views and sequences stay the installing superuser's: tenancy_owner gets the rows (DML), never the
-- definitions. An owner could add a trigger, rule, index expression, CHECK or default to a table, and superuser-run
-- code (imports, live moves, recounts) reads and writes these tables: whoever could act as tenancy_owner would then
-- have code of its own run as the superuser. With DML only, a slip that hands out tenancy_owner hands out rows.
-- region_connections gets nothing (sql/src/89_region_connections.sql: only the superuser may say where a live
-- move's subscription connects).
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA tenancy TO tenancy_owner;
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA tenancy TO tenancy_owner;
DO $registry$
BEGIN
  -- tenancy.tenants has row-level security for the admin and app roles (35_registry_access.sql); the owner role
  -- is not the table's owner any more, so it gets its own policy: every row, as the C lookups need.
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_policy p
                  WHERE p.polrelid OPERATOR(pg_catalog.=) 'tenancy.tenants'::pg_catalog.regclass
                    AND p.polname OPERATOR(pg_catalog.=) 'tenants_owner_role_all') THEN
    CREATE POLICY tenants_owner_role_all ON tenancy.tenants FOR ALL TO tenancy_owner USING (true) WITH CHECK (true);
  END IF;
  IF pg_catalog.to_regclass('tenancy.region_connections') IS NOT NULL THEN
    REVOKE ALL ON tenancy.region_connections FROM tenancy_owner;
  END IF;
END
$registry$;

-- The owner role runs the extension's own functions from owner-run C code and SECURITY DEFINER functions.
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA tenancy TO tenancy_owner;
