-- partitions_isolation: every partition function keeps isolation whole. After each operation verify_isolation()
-- is empty, and the app role reading (or writing) a partition directly sees only its own tenant.
\set VERBOSITY terse
SET client_min_messages = warning;
CREATE ROLE regress_pi_owner LOGIN;
CREATE ROLE regress_pi_app LOGIN;
GRANT tenancy_admin TO regress_pi_owner;
GRANT tenancy_app TO regress_pi_app;
GRANT CREATE ON SCHEMA public TO regress_pi_owner;
RESET client_min_messages;
INSERT INTO tenancy.tenants (id, organization_name, slug, status)
SELECT ('e0000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'Pi ' || g, 'regress-pi-' || g, 'active'
  FROM generate_series(1, 12) g;

-- Reads every leaf of tbl directly, as the calling role, with tenant's context: rows seen and rows of other tenants
-- seen (which must be 0). The leaves are granted to the app role first, as a DBA might.
CREATE FUNCTION leaf_view(tbl regclass, tenant uuid) RETURNS TABLE (leaves bigint, rows_seen bigint, foreign_rows bigint)
LANGUAGE plpgsql AS $$
DECLARE leaf regclass; n bigint; f bigint;
BEGIN
  leaves := 0; rows_seen := 0; foreign_rows := 0;
  PERFORM tenancy.set_tenant(tenant);
  FOR leaf IN SELECT relid FROM pg_partition_tree(tbl) WHERE isleaf LOOP
    EXECUTE format('SELECT count(*), count(*) FILTER (WHERE tenant_id <> $1) FROM %s', leaf) INTO n, f USING tenant;
    leaves := leaves + 1; rows_seen := rows_seen + n; foreign_rows := foreign_rows + f;
  END LOOP;
  RETURN NEXT;
END $$;
CREATE FUNCTION grant_leaves(tbl regclass) RETURNS void LANGUAGE plpgsql AS $$
DECLARE leaf regclass;
BEGIN
  FOR leaf IN SELECT relid FROM pg_partition_tree(tbl) WHERE isleaf LOOP
    EXECUTE format('GRANT SELECT, INSERT ON %s TO regress_pi_app', leaf);
  END LOOP;
END $$;
-- the whole check after an operation: no isolation problem, every leaf protected, and the app's direct view
CREATE FUNCTION check_notes() RETURNS TABLE (problems bigint, unprotected_leaves bigint, leaves bigint,
                                             rows_seen bigint, foreign_rows bigint)
LANGUAGE plpgsql AS $$
BEGIN
  problems := (SELECT count(*) FROM tenancy.verify_isolation());
  unprotected_leaves := (SELECT count(*) FROM pg_partition_tree('notes') t JOIN pg_class c ON c.oid = t.relid
                          WHERE NOT (c.relrowsecurity AND c.relforcerowsecurity
                                     AND EXISTS (SELECT 1 FROM pg_policy p WHERE p.polrelid = c.oid
                                                  AND p.polname = 'tenancy_isolation')));
  PERFORM grant_leaves('notes');
  SET LOCAL ROLE regress_pi_app;
  SELECT v.leaves, v.rows_seen, v.foreign_rows INTO leaves, rows_seen, foreign_rows
    FROM leaf_view('notes', 'e0000000-0000-4000-8000-000000000003') v;
  RETURN NEXT;
END $$;
GRANT EXECUTE ON FUNCTION leaf_view(regclass, uuid) TO regress_pi_app;

SET ROLE regress_pi_owner;
CREATE TABLE notes (tenant_id uuid NOT NULL, id int NOT NULL, body text, PRIMARY KEY (tenant_id, id));
GRANT SELECT, INSERT, UPDATE, DELETE ON notes TO regress_pi_app;
INSERT INTO notes SELECT t.id, n, 'note ' || n FROM tenancy.tenants t, generate_series(1, 10) n
 WHERE t.slug LIKE 'regress-pi-%';
SELECT tenancy.enable_isolation('notes');
RESET ROLE;
SELECT * FROM check_notes();

-- partition_table keeps the isolation: the new table and each partition are protected
SET ROLE regress_pi_owner;
SELECT tenancy.partition_table('notes', 4) AS rows_moved;
RESET ROLE;
SELECT * FROM check_notes();
SELECT table_name, isolated_via, tenant_column, rls_enabled, rls_forced, policies FROM tenancy.isolated_tables
 WHERE isolated_via = 'notes'::regclass ORDER BY 1;
SELECT polname, pg_get_expr(polqual, polrelid) FROM pg_policy WHERE polrelid = 'notes'::regclass ORDER BY 1;
SELECT pg_get_expr(adbin, adrelid) AS tenant_default FROM pg_attrdef
 WHERE adrelid = 'notes'::regclass AND adnum = 1;

-- repartition, isolate, repartition with an isolated tenant, unisolate: the same checks after each, with
-- tenancy.auto_isolate set (the staging tables must not be isolated on creation, or the row copy would fail)
SET tenancy.auto_isolate = 'tenant_id';
SET ROLE regress_pi_owner;
SELECT tenancy.repartition('notes', 8) AS rows_moved;
RESET ROLE;
SELECT * FROM check_notes();
SET ROLE regress_pi_owner;
SELECT tenancy.isolate_tenant('notes', 'e0000000-0000-4000-8000-000000000003') AS rows_moved;
RESET ROLE;
SELECT * FROM check_notes();
SET ROLE regress_pi_owner;
SELECT tenancy.repartition('notes', 2) AS rows_moved;
RESET ROLE;
SELECT * FROM check_notes();
SET ROLE regress_pi_owner;
SELECT tenancy.unisolate_tenant('notes', 'e0000000-0000-4000-8000-000000000003') AS rows_moved;
RESET ROLE;
SELECT * FROM check_notes();
SHOW tenancy.auto_isolate;
RESET tenancy.auto_isolate;

-- the app through the parent: its own rows, pruned to its partition; other tenants' rows cannot be written,
-- neither through the parent nor into a partition directly
SET ROLE regress_pi_app;
BEGIN;
SELECT tenancy.set_tenant('e0000000-0000-4000-8000-000000000003');
SELECT count(*), count(DISTINCT tenant_id) FROM notes;
INSERT INTO notes (id, body) VALUES (100, 'mine') RETURNING tenant_id, tableoid::regclass;
\set VERBOSITY sqlstate
SAVEPOINT s;
INSERT INTO notes VALUES ('e0000000-0000-4000-8000-000000000004', 101, 'not mine');
ROLLBACK TO s;
INSERT INTO notes_p000 VALUES ('e0000000-0000-4000-8000-000000000004', 101, 'not mine');
ROLLBACK;
-- without a context a partition read directly is refused, never all rows
SELECT count(*) FROM notes_p000;
\set VERBOSITY terse
RESET ROLE;

-- create_partitions on an isolated table declared PARTITION BY HASH: new partitions are protected at once
SET ROLE regress_pi_owner;
CREATE TABLE events (tenant_id uuid NOT NULL, at int) PARTITION BY HASH (tenant_id);
SELECT tenancy.enable_isolation('events');
SELECT tenancy.create_partitions('events', 4);
RESET ROLE;
SELECT count(*) AS problems FROM tenancy.verify_isolation();
SELECT count(*) AS protected_partitions FROM tenancy.isolated_tables WHERE isolated_via = 'events'::regclass
   AND table_name <> 'events'::regclass AND rls_forced;

-- clean up
SET client_min_messages = warning;
DROP TABLE notes, events;
DROP FUNCTION leaf_view(regclass, uuid), grant_leaves(regclass), check_notes();
REVOKE CREATE ON SCHEMA public FROM regress_pi_owner;
DROP ROLE regress_pi_owner, regress_pi_app;
