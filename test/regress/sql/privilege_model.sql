-- privilege_model: who owns what (docs/isolation.md "Privilege model"), and the doorways: owner-run work sees a
-- pinned search_path, DDL and erasure on an application table run as the table's owner, never the superuser.
\set VERBOSITY sqlstate

-- tenancy_owner: no login, no attribute, no member, member of nothing
SELECT rolname, rolsuper, rolcanlogin, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolinherit
  FROM pg_roles WHERE rolname = 'tenancy_owner';
SELECT count(*) AS memberships FROM pg_auth_members m JOIN pg_roles r ON r.oid IN (m.roleid, m.member)
 WHERE r.rolname = 'tenancy_owner';

-- it owns the schema; the tables, views and sequences stay the superuser's (only the superuser can add code to
-- them: triggers, rules, index expressions, checks, defaults), and it may read and write their rows, but those of
-- tenancy.region_connections (sql/src/89_region_connections.sql; move_errors checks it)
SELECT nspowner::regrole FROM pg_namespace WHERE nspname = 'tenancy';
SELECT c.relkind, c.relowner::regrole, count(*) > 0 AS some
  FROM pg_class c WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT c.oid::regclass AS tables_without_owner_role_dml
  FROM pg_class c WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p')
   AND NOT has_table_privilege('tenancy_owner', c.oid, 'SELECT, INSERT, UPDATE, DELETE') ORDER BY 1;
SELECT count(*) AS tables_the_owner_role_may_add_code_to
  FROM pg_class c WHERE c.relnamespace = 'tenancy'::regnamespace
   AND (pg_has_role('tenancy_owner', c.relowner, 'USAGE')
        OR has_table_privilege('tenancy_owner', c.oid, 'TRIGGER, REFERENCES'));

-- whoever acts as tenancy_owner (a slip, or a CREATEROLE role granting it to itself) gets rows, not code that
-- superuser-run imports, moves and recounts would run: no trigger, index or rule on the extension's tables
SET ROLE tenancy_owner;
CREATE FUNCTION tenancy.slip() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER slip BEFORE INSERT ON tenancy.tenants FOR EACH ROW EXECUTE FUNCTION tenancy.slip();
CREATE INDEX slip_idx ON tenancy.users ((tenancy.slip_key(email)));
CREATE RULE slip AS ON INSERT TO tenancy.users DO ALSO NOTHING;
ALTER TABLE tenancy.audit_log DISABLE TRIGGER USER;
DROP FUNCTION tenancy.slip();
RESET ROLE;

-- every SECURITY DEFINER function runs as tenancy_owner, but the listed ones that need a superuser
SELECT p.proowner = 'tenancy_owner'::regrole AS as_owner_role, count(*) > 0 AS some
  FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace AND p.prosecdef GROUP BY 1 ORDER BY 1;
SELECT p.proname AS runs_as_superuser
  FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace AND p.prosecdef
   AND p.proowner <> 'tenancy_owner'::regrole ORDER BY 1;
-- and each of them pins its search_path
SELECT p.oid::regprocedure AS secdef_without_pinned_path
  FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace AND p.prosecdef
   AND NOT coalesce(p.proconfig @> ARRAY['search_path=pg_catalog, pg_temp'], false);

-- an application table owned by an ordinary role, with a trigger that records who runs it and under which path
CREATE ROLE regress_pm_owner;
GRANT tenancy_app TO regress_pm_owner;
CREATE SCHEMA pm AUTHORIZATION regress_pm_owner;
CREATE TABLE pm.seen (who name, path text);
CREATE TABLE pm.notes (tenant_id uuid NOT NULL, body text);
GRANT INSERT ON pm.seen TO PUBLIC;
ALTER TABLE pm.notes OWNER TO regress_pm_owner;
CREATE FUNCTION pm.record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pm.seen VALUES (current_user, current_setting('search_path'));
  RETURN OLD;
END $$;
ALTER FUNCTION pm.record() OWNER TO regress_pm_owner;
CREATE TRIGGER record BEFORE DELETE ON pm.notes FOR EACH ROW EXECUTE FUNCTION pm.record();
SELECT id AS t1 FROM tenancy.create_tenant('PM One', 'pm-one') \gset
SELECT id AS t2 FROM tenancy.create_tenant('PM Two', 'pm-two') \gset
-- enable_isolation's DDL runs as the owner: the policies it made belong to a table the owner still owns
SELECT tenancy.enable_isolation('pm.notes');
SELECT relowner::regrole, relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'pm.notes'::regclass;
BEGIN;
SELECT tenancy.set_tenant(:'t1');
INSERT INTO pm.notes (body) VALUES ('one a'), ('one b');
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'t2');
INSERT INTO pm.notes (body) VALUES ('two');
COMMIT;
-- erasing a tenant deletes its rows as the table's owner (its trigger runs with the owner's rights, not the
-- superuser's) under the pinned path, and leaves the other tenant's rows
SELECT tenancy.delete_tenant(:'t1', erase => true);
SELECT who, path, count(*) FROM pm.seen GROUP BY 1, 2;
SELECT count(*) AS t2_rows FROM pm.notes WHERE tenant_id = :'t2';
SELECT count(*) AS t1_rows FROM pm.notes WHERE tenant_id = :'t1';

-- importing a copy of a tenant writes its rows as the table's owner too (its trigger sees the owner, and the
-- table's policy admits the rows because they belong to the new tenant of the context)
TRUNCATE pm.seen;
CREATE TRIGGER record_insert BEFORE INSERT ON pm.notes FOR EACH ROW EXECUTE FUNCTION pm.record();
CREATE OR REPLACE FUNCTION pm.record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO pm.seen VALUES (current_user, current_setting('search_path'));
  RETURN coalesce(NEW, OLD);
END $$;
SELECT tenancy.import_tenant(jsonb_set(tenancy.export_tenant(:'t2'), '{manifest,slug}', '"pm-two"'),
                             'e0000000-0000-0000-0000-0000000000e1') AS copy;
SELECT who, path, count(*) FROM pm.seen GROUP BY 1, 2;
SELECT tenant_id, body FROM pm.notes WHERE tenant_id = 'e0000000-0000-0000-0000-0000000000e1';
-- and nobody but a superuser may call the owner's-write doorway (it would run SQL as another role)
SET ROLE regress_pm_owner;
SELECT tenancy._write_as_table_owner('pm.notes', :'t2', 'DELETE FROM pm.notes');
RESET ROLE;

-- an owner without tenancy's rights cannot have its table isolated: its policies would call functions it cannot
-- use, and every erasure and import would fail half-way
CREATE ROLE regress_pm_outsider;
CREATE TABLE pm.outside (tenant_id uuid NOT NULL);
ALTER TABLE pm.outside OWNER TO regress_pm_outsider;
\set VERBOSITY default
SELECT tenancy.enable_isolation('pm.outside');
\set VERBOSITY sqlstate
DROP TABLE pm.outside;
DROP ROLE regress_pm_outsider;

-- track_quota attaches its trigger as the calling admin, who owns the table
CREATE ROLE regress_pm_admin;
GRANT tenancy_admin TO regress_pm_admin;
GRANT CREATE, USAGE ON SCHEMA pm TO regress_pm_admin;
SET ROLE regress_pm_admin;
CREATE TABLE pm.items (id bigserial, tenant_id uuid NOT NULL);
SELECT tenancy.track_quota('pm.items', 'projects');
RESET ROLE;
DROP TABLE pm.items;
DELETE FROM tenancy.quota_tracked_tables WHERE table_name::text = 'pm.items';

-- a temporary table isolated by tenancy.auto_isolate leaves with its session without sql_drop: its record must not
-- break erasure of any tenant, nor make a later table pass for isolated
SET tenancy.auto_isolate = 'tenant_id';
CREATE TEMP TABLE tmp_auto (tenant_id uuid NOT NULL, v text);
RESET tenancy.auto_isolate;
SELECT count(*) AS temp_records FROM tenancy.isolation_config WHERE relid::oid = 'tmp_auto'::regclass::oid;
\c -
SELECT id AS t3 FROM tenancy.create_tenant('PM Three', 'pm-three') \gset
SELECT tenancy.delete_tenant(:'t3', erase => true);
CREATE TABLE pm.after_temp (id int);
SELECT count(*) AS stale_records FROM tenancy.isolation_config c
 WHERE NOT EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = c.relid::oid);
DROP TABLE pm.after_temp;

DROP SCHEMA pm CASCADE;
DROP OWNED BY regress_pm_owner;
DROP ROLE regress_pm_owner;
DROP OWNED BY regress_pm_admin;
DROP ROLE regress_pm_admin;
