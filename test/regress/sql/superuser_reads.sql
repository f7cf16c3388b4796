-- superuser_reads: the reads tenancy makes with superuser rights (export, import, partitions(), quota recounts)
-- never run code of an application table's owner. Planning a read folds the constant calls of index expressions
-- and predicates, partition keys, CHECK constraints and statistics in the planner's identity; the import's values
-- are converted to the column types (domain checks, casts) only in the owner's insert.
\set VERBOSITY sqlstate

CREATE ROLE regress_sr_owner;
GRANT tenancy_admin TO regress_sr_owner;
CREATE SCHEMA sr AUTHORIZATION regress_sr_owner;
SET ROLE regress_sr_owner;
-- the owner's function: harmless as its owner, fails loudly when someone more privileged runs it
CREATE FUNCTION sr.trap() RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    RAISE EXCEPTION 'owner code ran as superuser %', current_user;
  END IF;
END $$;
CREATE FUNCTION sr.folded(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM sr.trap();
  RETURN i;
END $$;
CREATE FUNCTION sr.ok(v text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
  PERFORM sr.trap();
  RETURN true;
END $$;
CREATE DOMAIN sr.code AS text CHECK (sr.ok(VALUE));
CREATE TABLE sr.notes (tenant_id uuid NOT NULL, id int PRIMARY KEY, body text);
CREATE TABLE sr.codes (tenant_id uuid NOT NULL, code sr.code PRIMARY KEY);
SELECT tenancy.enable_isolation('sr.notes');
SELECT tenancy.enable_isolation('sr.codes');
SELECT id AS t1 FROM tenancy.create_tenant('SR One', 'sr-one') \gset
SELECT id AS t2 FROM tenancy.create_tenant('SR Two', 'sr-two') \gset
BEGIN;
SELECT tenancy.set_tenant(:'t1');
INSERT INTO sr.notes (id, body) VALUES (1, 'one');
INSERT INTO sr.codes (code) VALUES ('c1');
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'t2');
INSERT INTO sr.codes (code) VALUES ('c2');
COMMIT;

-- import: the domain check of a kept key runs in the owner's insert, never as the superuser
SELECT tenancy.export_tenant(:'t1') AS doc \gset
BEGIN;
SELECT tenancy.set_tenant(:'t1');
DELETE FROM sr.codes;
DELETE FROM sr.notes;
COMMIT;
SELECT tenancy.import_tenant(:'doc', gen_random_uuid()) IS NOT NULL AS copy_imported;
-- a kept key that a row here holds already is still reported naming the key (23505)
\set VERBOSITY default
SELECT tenancy.import_tenant(:'doc', gen_random_uuid());
\set VERBOSITY sqlstate

-- an index expression with a constant call of the owner's function: every read with superuser rights refuses
CREATE INDEX notes_folded ON sr.notes ((body || sr.folded(0)::text));
\set VERBOSITY terse
SELECT tenancy.export_tenant(:'t1');
SELECT count(*) FROM tenancy.export_table(:'t1', 'sr.notes') AS r(a text, b text, c text);
-- the live move counts the move's tables with superuser rights too (move_source_prepare, move_target_progress)
RESET ROLE;
SELECT tenancy._move_table_list(:'t1');
SET ROLE regress_sr_owner;
\set VERBOSITY sqlstate
DROP INDEX sr.notes_folded;
-- the same in an index predicate, a CHECK constraint, a statistics object
CREATE INDEX notes_pred ON sr.notes (body) WHERE sr.folded(1) = 1;
SELECT tenancy.export_tenant(:'t1');
DROP INDEX sr.notes_pred;
ALTER TABLE sr.notes ADD CONSTRAINT notes_check CHECK (sr.folded(2) = 2);
SELECT tenancy.export_tenant(:'t1');
ALTER TABLE sr.notes DROP CONSTRAINT notes_check;
CREATE STATISTICS sr.notes_stats ON (body || sr.folded(3)::text), id FROM sr.notes;
SELECT tenancy.export_tenant(:'t1');
DROP STATISTICS sr.notes_stats;
-- built-in functions are fine
CREATE INDEX notes_lower ON sr.notes (lower(body));
SELECT (tenancy.export_tenant(:'t1') -> 'manifest' ->> 'tenant_id')::uuid = :'t1' AS exported;

-- partitions(): every leaf is counted with superuser rights, a leaf's index as well
CREATE TABLE sr.events (tenant_id uuid NOT NULL, body text) PARTITION BY LIST (tenant_id);
CREATE TABLE sr.events_rest PARTITION OF sr.events DEFAULT;
SELECT count(*) AS leaves FROM tenancy.partitions('sr.events');
CREATE INDEX ON sr.events_rest ((body || sr.folded(4)::text));
SELECT count(*) AS leaves FROM tenancy.partitions('sr.events');
-- a partition key expression
CREATE TABLE sr.keyed (tenant_id uuid NOT NULL, n int) PARTITION BY RANGE ((n + sr.folded(5)));
SELECT count(*) AS leaves FROM tenancy.partitions('sr.keyed');

-- quota recounts (track_quota, reconcile_quota) read every tenant's rows with superuser rights
CREATE TABLE sr.projects (tenant_id uuid NOT NULL, name text);
-- (a tenancy_admin member tracks its own table: the counting trigger's function is granted to tenancy_admin)
SELECT tenancy.track_quota('sr.projects', 'projects');
ALTER TABLE sr.projects ADD CONSTRAINT projects_check CHECK (sr.folded(6) = 6);
RESET ROLE;
SELECT count(*) FROM tenancy.reconcile_quota('projects');
SELECT tenancy.track_quota('sr.projects', 'projects');
ALTER TABLE sr.projects DROP CONSTRAINT projects_check;
SELECT count(*) FROM tenancy.reconcile_quota('projects');

-- a partition counted on its own: its parent's partition key is checked too
SET ROLE regress_sr_owner;
CREATE TABLE sr.keyed_leaf PARTITION OF sr.keyed DEFAULT;
RESET ROLE;
SELECT tenancy.track_quota('sr.keyed_leaf', 'projects');

-- _quota_register_tracked is SECURITY DEFINER and granted to tenancy_admin: called directly it records only what
-- track_quota prepared, never a column of the caller's own type whose cast to text the recount would run
SET ROLE regress_sr_owner;
CREATE TYPE sr.kind AS ENUM ('a');
CREATE FUNCTION sr.kind_text(v sr.kind) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  PERFORM sr.trap();
  RETURN 'a';
END $$;
CREATE CAST (sr.kind AS text) WITH FUNCTION sr.kind_text(sr.kind);
CREATE TABLE sr.kinds (k sr.kind);
INSERT INTO sr.kinds VALUES ('a');
SELECT tenancy._quota_register_tracked('sr.kinds', 'projects', 'k');
CREATE VIEW sr.kinds_view AS SELECT NULL::uuid AS tenant_id, sr.kind_text(k) FROM sr.kinds;
SELECT tenancy._quota_register_tracked('sr.kinds_view', 'projects', 'tenant_id');
RESET ROLE;
-- and a recount refuses a recorded table whose tenant column is not uuid (recorded before this check existed)
INSERT INTO tenancy.quota_tracked_tables (table_name, metric, tenant_column) VALUES ('sr.kinds', 'projects', 'k');
SELECT count(*) FROM tenancy.reconcile_quota('projects');
DELETE FROM tenancy.quota_tracked_tables WHERE table_name = 'sr.kinds'::regclass;

-- COPY-form import: a staging table of the caller's with an index of its own is refused
SET ROLE regress_sr_owner;
BEGIN;
SELECT tenancy.export_manifest(:'t2') -> 'manifest' AS manifest \gset
SELECT count(*) > 0 AS staged FROM tenancy.import_tables(:'manifest');
CREATE INDEX ON pg_temp.tenancy_import_1 ((c1 || sr.folded(7)::text));
SELECT tenancy.import_tenant_copied(:'manifest', gen_random_uuid());
ROLLBACK;
-- nor one that is a partition (read on its own under constraint_exclusion = on, the planner would fold its
-- parent's partition key expression)
BEGIN;
SET LOCAL constraint_exclusion = on;
SELECT count(*) > 0 AS staged FROM tenancy.import_tables(:'manifest');
CREATE TEMP TABLE staged_parent (ord bigint, c1 text, c2 text) PARTITION BY LIST ((c1 || sr.folded(8)::text));
DROP TABLE pg_temp.tenancy_import_1;
CREATE TEMP TABLE tenancy_import_1 PARTITION OF staged_parent DEFAULT;
SELECT tenancy.import_tenant_copied(:'manifest', gen_random_uuid());
ROLLBACK;
RESET ROLE;

-- the import grants its staged rows to each table's owner: an owner whose name needs quoting too
CREATE ROLE "Regress SR Owner";
GRANT tenancy_app TO "Regress SR Owner";
GRANT USAGE ON SCHEMA sr TO "Regress SR Owner";
CREATE TABLE sr.quoted (tenant_id uuid NOT NULL, body text);
ALTER TABLE sr.quoted OWNER TO "Regress SR Owner";
SELECT tenancy.enable_isolation('sr.quoted');
SELECT id AS t3 FROM tenancy.create_tenant('SR Three', 'sr-three') \gset
BEGIN;
SELECT tenancy.set_tenant(:'t3');
INSERT INTO sr.quoted (body) VALUES ('three');
COMMIT;
SELECT tenancy.import_tenant(tenancy.export_tenant(:'t3'), gen_random_uuid()) IS NOT NULL AS quoted_owner_imported;
-- a format 1 document stages every table's rows in one table (the tenant's users and audit events too): the owner's
-- trigger, run during the import, sees no staged table holding other tables' rows, only a copy of its own rows
CREATE TABLE sr.seen (other_rows bigint);
CREATE FUNCTION sr.peek() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  r record;
  n bigint;
  total bigint := 0;
BEGIN
  FOR r IN SELECT c.oid::regclass AS rel FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
            WHERE a.attname = 'table_name' AND c.relnamespace = pg_my_temp_schema()
              AND has_table_privilege(c.oid, 'SELECT') LOOP
    EXECUTE format('SELECT count(*) FROM %s WHERE table_name <> %L', r.rel, 'sr.quoted') INTO n;
    total := total + n;
  END LOOP;
  INSERT INTO sr.seen VALUES (total);
  RETURN NEW;
END $$;
ALTER TABLE sr.seen OWNER TO "Regress SR Owner";
ALTER FUNCTION sr.peek() OWNER TO "Regress SR Owner";
CREATE TRIGGER peek BEFORE INSERT ON sr.quoted FOR EACH ROW EXECUTE FUNCTION sr.peek();
CREATE FUNCTION sr_v1(d jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  e jsonb;
  rows jsonb;
  tables jsonb := '[]';
  data jsonb := '{}';
BEGIN
  FOR e IN SELECT x.v FROM jsonb_array_elements(d -> 'manifest' -> 'tables') WITH ORDINALITY x(v, i) ORDER BY x.i LOOP
    EXECUTE format('SELECT coalesce(jsonb_agg(to_jsonb(t)), ''[]'') FROM %s t WHERE t.%I = %L', e ->> 'table',
                   e ->> 'tenant_column', d -> 'manifest' ->> 'tenant_id') INTO rows;
    data := data || jsonb_build_object(e ->> 'table', rows);
    tables := tables || jsonb_build_array(e || jsonb_build_object('rows', jsonb_array_length(rows), 'sha256',
      (SELECT tenancy._sha256_agg(r.value::text ORDER BY r.i) FROM jsonb_array_elements(rows) WITH ORDINALITY r(value, i))));
  END LOOP;
  RETURN jsonb_build_object('format', 'tenancy-tenant-export', 'format_version', 1, 'data', data,
    'manifest', (d -> 'manifest') - 'format_version' || jsonb_build_object('tables', tables));
END
$$;
SELECT tenancy.import_tenant(sr_v1(tenancy.export_tenant(:'t3')), gen_random_uuid()) IS NOT NULL AS format1_imported;
SELECT count(*) AS owner_writes, max(other_rows) AS other_tables_rows_seen FROM sr.seen;
DROP FUNCTION sr_v1(jsonb);

SELECT tenancy.delete_tenant(id, erase => true) FROM tenancy.tenants WHERE slug LIKE 'sr-%' ORDER BY slug;
DELETE FROM tenancy.quota_tracked_tables WHERE table_name = 'sr.projects'::regclass;
DROP SCHEMA sr CASCADE;
DROP OWNED BY regress_sr_owner;
DROP ROLE regress_sr_owner;
DROP OWNED BY "Regress SR Owner";
DROP ROLE "Regress SR Owner";
