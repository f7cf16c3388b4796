-- export: export_tenant/import_tenant round trips (same id, new id), the streaming form (export_manifest,
-- export_rows, import_tenant_staged), checksums against tampering and forged rows, conflicts, all-or-nothing,
-- residency on import, privileges and audit
\set VERBOSITY sqlstate
CREATE ROLE regress_exp_admin;
CREATE ROLE regress_exp_app;
GRANT tenancy_admin TO regress_exp_admin;
GRANT tenancy_app TO regress_exp_app;
CREATE SCHEMA exp;
CREATE TABLE exp.projects (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL, name text NOT NULL,
                           owner_id uuid REFERENCES tenancy.users (id) ON DELETE SET NULL, budget numeric,
                           tags text[], meta jsonb, created_at timestamptz DEFAULT '2026-01-01 00:00:00+00',
                           secret text);
CREATE TABLE exp.tasks (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL,
                        project_id uuid NOT NULL REFERENCES exp.projects (id) ON DELETE CASCADE,
                        parent_id uuid REFERENCES exp.tasks (id) ON DELETE CASCADE, title text,
                        title_length int GENERATED ALWAYS AS (length(title)) STORED, done boolean DEFAULT false);
CREATE TABLE exp.events (tenant_id uuid NOT NULL, seq bigint NOT NULL, payload bytea, PRIMARY KEY (tenant_id, seq))
  PARTITION BY HASH (tenant_id);
CREATE TABLE exp.events_p0 PARTITION OF exp.events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE exp.events_p1 PARTITION OF exp.events FOR VALUES WITH (MODULUS 2, REMAINDER 1);
SELECT tenancy.enable_isolation(t) FROM unnest(ARRAY['exp.projects', 'exp.tasks', 'exp.events']::regclass[]) t;
GRANT USAGE ON SCHEMA exp TO regress_exp_app;
GRANT USAGE ON SCHEMA exp TO regress_exp_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA exp TO regress_exp_app;

-- two tenants with rows in every table; tasks reference projects and each other, projects a user
INSERT INTO tenancy.tenants (id, organization_name, slug, status, plan, data_residency) VALUES
  ('a1000000-0000-0000-0000-00000000000a', 'Exp A', 'exp-a', 'active', 'team', 'eu'),
  ('b1000000-0000-0000-0000-00000000000b', 'Exp B', 'exp-b', 'suspended', 'developer', 'us');
SELECT tenancy.add_user('a1000000-0000-0000-0000-00000000000a', 'owner@exp-a.io', 'Ann', 'Owner', 'owner', false)
  IS NOT NULL;
INSERT INTO tenancy.quota_overrides VALUES ('a1000000-0000-0000-0000-00000000000a', 'projects', 77);
INSERT INTO exp.projects (id, tenant_id, name, owner_id, budget, tags, meta)
SELECT ('c1000000-0000-0000-0000-' || lpad(g::text, 12, '0'))::uuid, 'a1000000-0000-0000-0000-00000000000a',
       'project ' || g, (SELECT id FROM tenancy.users WHERE email = 'owner@exp-a.io'), g * 1.5,
       ARRAY['x', 'y "quoted"'], jsonb_build_object('n', g, 'nested', jsonb_build_object('ok', true))
  FROM generate_series(1, 3) g;
INSERT INTO exp.projects (tenant_id, name) VALUES ('b1000000-0000-0000-0000-00000000000b', 'b secret');
-- an encrypted value: it decrypts again after a restore into the same tenant (the wrapped key travels along)
UPDATE exp.projects SET secret = tenancy.encrypt(tenant_id, 'the secret of ' || name) WHERE name = 'project 1';
INSERT INTO exp.tasks (id, tenant_id, project_id, parent_id, title)
VALUES ('d1000000-0000-0000-0000-000000000001', 'a1000000-0000-0000-0000-00000000000a',
        'c1000000-0000-0000-0000-000000000001', NULL, 'root task'),
       ('d1000000-0000-0000-0000-000000000002', 'a1000000-0000-0000-0000-00000000000a',
        'c1000000-0000-0000-0000-000000000001', 'd1000000-0000-0000-0000-000000000001', E'child \\ task\n"two"');
INSERT INTO exp.tasks (tenant_id, project_id, title)
SELECT tenant_id, id, 'b task' FROM exp.projects WHERE tenant_id = 'b1000000-0000-0000-0000-00000000000b';
INSERT INTO exp.events SELECT 'a1000000-0000-0000-0000-00000000000a', g, decode('00ff' || g, 'hex')
  FROM generate_series(10, 14) g;
INSERT INTO exp.events VALUES ('b1000000-0000-0000-0000-00000000000b', 1, '\x01');

-- the tables this test prints (other parts of the extension may add registry tables to exports)
CREATE TEMP VIEW exp_tables AS SELECT unnest(ARRAY['tenancy.tenants', 'tenancy.users', 'tenancy.quota_overrides',
  'exp.events', 'exp.projects', 'exp.tasks']);

-- the document: format, manifest (tables in restore order, counts, checksums), only tenant A's rows
SET ROLE regress_exp_admin;
SELECT tenancy.export_tenant('a1000000-0000-0000-0000-00000000000a') AS doc \gset
RESET ROLE;
SELECT :'doc'::jsonb ->> 'format' AS format, :'doc'::jsonb -> 'format_version' AS version,
       :'doc'::jsonb -> 'manifest' ->> 'tenant_id' AS tenant, :'doc'::jsonb -> 'manifest' ->> 'slug' AS slug,
       :'doc'::jsonb -> 'manifest' ->> 'extension_version' AS extension_version,
       :'doc'::jsonb -> 'manifest' -> 'source_region' AS source_region;
SELECT e.value ->> 'table' AS table_name, e.value ->> 'kind' AS kind, e.value ->> 'tenant_column' AS tenant_column,
       e.value -> 'rows' AS rows, length(e.value ->> 'sha256') AS sha256_length, e.value -> 'columns' AS columns
  FROM jsonb_array_elements(:'doc'::jsonb -> 'manifest' -> 'tables') WITH ORDINALITY e(value, i)
 WHERE e.value ->> 'table' IN (SELECT * FROM exp_tables) ORDER BY e.i;
SELECT e.value ->> 'table' AS last_table FROM jsonb_array_elements(:'doc'::jsonb -> 'manifest' -> 'tables')
  WITH ORDINALITY e(value, i) ORDER BY e.i DESC LIMIT 1;
SELECT d.key, count(*) AS rows,
       count(*) FILTER (WHERE r.value ->> CASE d.key WHEN 'tenancy.tenants' THEN 'id' ELSE 'tenant_id' END
                              = 'a1000000-0000-0000-0000-00000000000a') AS of_tenant_a
  FROM jsonb_each(:'doc'::jsonb -> 'data') d, jsonb_array_elements(d.value) r
 WHERE d.key IN (SELECT * FROM exp_tables) GROUP BY d.key ORDER BY d.key;
-- the checksum is SHA-256 over each row's jsonb text and a newline, in document order
SELECT bool_and(e.value ->> 'sha256' = (SELECT tenancy._sha256_agg(r.value::text ORDER BY r.i)
                                          FROM jsonb_array_elements(:'doc'::jsonb -> 'data' -> (e.value ->> 'table'))
                                               WITH ORDINALITY r(value, i))) AS checksums_ok
  FROM jsonb_array_elements(:'doc'::jsonb -> 'manifest' -> 'tables') e;
SELECT tenancy._sha256_agg(x) = encode(sha256(convert_to('a' || E'\n' || 'b' || E'\n', 'UTF8')), 'hex') AS agg_ok,
       (SELECT tenancy._sha256_agg(x) FROM (SELECT 'x' WHERE false) s(x)) = encode(sha256(''), 'hex') AS empty_ok
  FROM (VALUES ('a'), ('b')) v(x);
-- exporting again gives the same checksums for the data tables (only the audit log grew)
SELECT e.value ->> 'table' AS table_name, e.value ->> 'sha256' = f.value ->> 'sha256' AS same
  FROM jsonb_array_elements(:'doc'::jsonb -> 'manifest' -> 'tables') e,
       jsonb_array_elements(tenancy.export_tenant('a1000000-0000-0000-0000-00000000000a') -> 'manifest' -> 'tables') f
 WHERE e.value ->> 'table' = f.value ->> 'table' AND e.value ->> 'table' IN (SELECT * FROM exp_tables) ORDER BY 1;

-- the streaming form: the manifest without data, rows for COPY in the same order and with the same checksums
SET ROLE regress_exp_admin;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT tenancy.export_manifest('a1000000-0000-0000-0000-00000000000a') AS manifest_doc \gset
CREATE TEMP TABLE staged (ord bigint GENERATED ALWAYS AS IDENTITY, table_name text, "row" jsonb);
INSERT INTO staged (table_name, "row") SELECT * FROM tenancy.export_rows('a1000000-0000-0000-0000-00000000000a');
COMMIT;
SELECT * FROM tenancy.export_rows('a1000000-0000-0000-0000-00000000000a', 'exp.tasks') ORDER BY 1, 2;
RESET ROLE;
SELECT :'manifest_doc'::jsonb ? 'data' AS has_data;
SELECT e.value ->> 'table' AS table_name, e.value = f.value AS same
  FROM jsonb_array_elements(:'doc'::jsonb -> 'manifest' -> 'tables') e,
       jsonb_array_elements(:'manifest_doc'::jsonb -> 'manifest' -> 'tables') f
 WHERE e.value ->> 'table' = f.value ->> 'table' AND e.value ->> 'kind' <> 'audit'
   AND e.value ->> 'table' IN (SELECT * FROM exp_tables) ORDER BY 1;
SELECT table_name, count(*) FROM staged WHERE table_name IN (SELECT * FROM exp_tables) GROUP BY 1 ORDER BY 1;
SELECT count(*) > 0 AS audit_rows_staged FROM staged WHERE table_name = 'tenancy.audit_log';

-- invalid input and missing rights:
SET ROLE regress_exp_app;
SELECT tenancy.export_tenant('a1000000-0000-0000-0000-00000000000a');
SELECT tenancy.import_tenant('{}');
SELECT * FROM tenancy.export_rows('a1000000-0000-0000-0000-00000000000a');
SELECT tenancy.export_manifest('a1000000-0000-0000-0000-00000000000a');
RESET ROLE;
SET ROLE regress_exp_admin;
SELECT tenancy.export_tenant('00000000-0000-0000-0000-000000000000');
SELECT * FROM tenancy.export_rows('00000000-0000-0000-0000-000000000000');
SELECT * FROM tenancy.export_rows(NULL);
SELECT * FROM tenancy.export_rows('a1000000-0000-0000-0000-00000000000a', 'pg_class');
SELECT tenancy.import_tenant(NULL);
SELECT tenancy.import_tenant('[]');
SELECT tenancy.import_tenant('{"format": "tenancy-tenant-export", "format_version": 2, "manifest": {}, "data": {}}');
SELECT tenancy.import_tenant(:'doc'::jsonb - 'manifest');
SELECT tenancy.import_tenant(jsonb_set(:'doc', '{manifest,tenant_id}', '"not a uuid"'));
-- the tenant is still here: 23505, with or without a new id (its slug then)
SELECT tenancy.import_tenant(:'doc');
SELECT tenancy.import_tenant(:'doc', 'a2000000-0000-0000-0000-00000000000a');
RESET ROLE;

-- tampering: a changed value, a removed row, an added row, a changed count are all refused (TN005)
SELECT tenancy.delete_tenant('a1000000-0000-0000-0000-00000000000a', erase => true);
CREATE FUNCTION exp_import_error(d jsonb) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text;
BEGIN
  PERFORM tenancy.import_tenant(d);
  RETURN 'imported';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
  RETURN st || ' ' || msg;
END
$$;
SELECT exp_import_error(jsonb_set(:'doc', '{data,exp.projects,0,name}', '"renamed"'));
SELECT exp_import_error(jsonb_set(:'doc', '{data,exp.events,0,payload}', '"\\x00"'));
SELECT exp_import_error(jsonb_set(:'doc', '{data,exp.tasks}', (:'doc'::jsonb -> 'data' -> 'exp.tasks') - 1));
SELECT exp_import_error(jsonb_set(:'doc', '{data,tenancy.users}', '[]'));
SELECT exp_import_error(jsonb_set(:'doc', ARRAY['manifest', 'tables', (
  SELECT (e.i - 1)::text FROM jsonb_array_elements(:'doc'::jsonb -> 'manifest' -> 'tables') WITH ORDINALITY e(v, i)
   WHERE e.v ->> 'table' = 'exp.events'), 'rows'], '99'));
SELECT exp_import_error(jsonb_set(:'doc', '{data,exp.unknown}', '[{"tenant_id": "a1000000-0000-0000-0000-00000000000a"}]'));
-- a table entry without its checksum; a document without the tenant row (its empty table's checksum recomputed)
SELECT exp_import_error(jsonb_set(:'doc', '{manifest,tables,0,sha256}', 'null'));
SELECT exp_import_error(jsonb_set(jsonb_set(jsonb_set(:'doc', '{data,tenancy.tenants}', '[]'),
                                            '{manifest,tables,0,rows}', '0'),
                                  '{manifest,tables,0,sha256}', to_jsonb(encode(sha256(''), 'hex'))));
-- a column or a table with rows that this database lacks
CREATE TEMP VIEW exp_entry AS SELECT e.v ->> 'table' AS tbl, (e.i - 1)::text AS i
  FROM jsonb_array_elements(:'doc'::jsonb -> 'manifest' -> 'tables') WITH ORDINALITY e(v, i);
SELECT exp_import_error(jsonb_set(:'doc', ARRAY['manifest', 'tables', i, 'columns'],
                                  (:'doc'::jsonb -> 'manifest' -> 'tables' -> i::int -> 'columns') || '"nonexistent"'))
  FROM exp_entry WHERE tbl = 'exp.tasks';
SELECT exp_import_error(jsonb_set(jsonb_set(:'doc'::jsonb #- '{data,exp.events}', '{data,exp.gone}',
                                            :'doc'::jsonb -> 'data' -> 'exp.events'),
                                  ARRAY['manifest', 'tables', i, 'table'], '"exp.gone"'))
  FROM exp_entry WHERE tbl = 'exp.events';
-- a forged row of tenant B with a recomputed checksum: refused, it would write into another tenant
CREATE FUNCTION exp_forge(d jsonb, tbl text, extra jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  rows jsonb := (d -> 'data' -> tbl) || jsonb_build_array(extra);
  i int;
BEGIN
  SELECT e.i - 1 INTO i FROM jsonb_array_elements(d -> 'manifest' -> 'tables') WITH ORDINALITY e(v, i)
   WHERE e.v ->> 'table' = tbl;
  d := jsonb_set(d, ARRAY['data', tbl], rows);
  d := jsonb_set(d, ARRAY['manifest', 'tables', i::text, 'rows'], to_jsonb(jsonb_array_length(rows)));
  RETURN jsonb_set(d, ARRAY['manifest', 'tables', i::text, 'sha256'],
                   to_jsonb((SELECT tenancy._sha256_agg(r.value::text ORDER BY r.i)
                               FROM jsonb_array_elements(rows) WITH ORDINALITY r(value, i))));
END
$$;
SELECT exp_import_error(exp_forge(:'doc', 'exp.events',
                                  '{"tenant_id": "b1000000-0000-0000-0000-00000000000b", "seq": 99, "payload": null}'));
SELECT exp_import_error(exp_forge(:'doc', 'exp.events', '{"seq": 98, "payload": null}'));
-- a forged manifest that calls another column the tenant column: refused before any row is looked at
SELECT exp_import_error(jsonb_set(exp_forge(:'doc', 'tenancy.users', jsonb_build_object(
         'id', gen_random_uuid(), 'tenant_id', 'b1000000-0000-0000-0000-00000000000b',
         'email', 'a1000000-0000-0000-0000-00000000000a', 'role', 'owner', 'status', 'active')),
       ARRAY['manifest', 'tables', '1', 'tenant_column'], '"email"'));
SELECT exp_import_error(jsonb_set(:'doc', ARRAY['manifest', 'tables', (
  SELECT (e.i - 1)::text FROM jsonb_array_elements(:'doc'::jsonb -> 'manifest' -> 'tables') WITH ORDINALITY e(v, i)
   WHERE e.v ->> 'table' = 'tenancy.users'), 'kind'], '"isolated"'));
-- a forged row that passes the checks but breaks a constraint: nothing of the tenant is left (all or nothing)
SELECT exp_import_error(exp_forge(:'doc', 'exp.tasks', jsonb_build_object('id', gen_random_uuid(),
  'tenant_id', 'a1000000-0000-0000-0000-00000000000a', 'project_id', 'c1000000-0000-0000-0000-000000000999')));
SELECT count(*) FROM tenancy.tenants WHERE slug = 'exp-a';
SELECT count(*) FROM exp.projects WHERE tenant_id = 'a1000000-0000-0000-0000-00000000000a';

-- a table that is not isolated here refuses the import; so does a cluster of another region
SELECT tenancy.disable_isolation('exp.events');
SELECT exp_import_error(:'doc');
SELECT tenancy.enable_isolation('exp.events');
SET tenancy.region = 'us';
SELECT exp_import_error(:'doc');
RESET tenancy.region;
SELECT count(*) FROM tenancy.tenants WHERE slug = 'exp-a';

-- restore into the same id: every data table has the checksum of the export
SET ROLE regress_exp_admin;
SELECT tenancy.import_tenant(:'doc');
RESET ROLE;
SELECT e.value ->> 'table' AS table_name, e.value ->> 'sha256' = f.value ->> 'sha256' AS same
  FROM jsonb_array_elements(:'doc'::jsonb -> 'manifest' -> 'tables') e,
       jsonb_array_elements(tenancy.export_tenant('a1000000-0000-0000-0000-00000000000a') -> 'manifest' -> 'tables') f
 WHERE e.value ->> 'table' = f.value ->> 'table' AND e.value ->> 'kind' <> 'audit'
   AND e.value ->> 'table' IN (SELECT * FROM exp_tables) ORDER BY 1;
SELECT name, budget, tags, meta FROM exp.projects WHERE tenant_id = 'a1000000-0000-0000-0000-00000000000a' ORDER BY name;
SELECT title, title_length, parent_id IS NOT NULL AS has_parent FROM exp.tasks
 WHERE tenant_id = 'a1000000-0000-0000-0000-00000000000a' ORDER BY title;
SELECT tenancy.decrypt(tenant_id, secret) FROM exp.projects WHERE name = 'project 1'
   AND tenant_id = 'a1000000-0000-0000-0000-00000000000a';
-- the app sees the restored rows under its context
SET ROLE regress_exp_app;
BEGIN;
SELECT tenancy.set_tenant('a1000000-0000-0000-0000-00000000000a');
SELECT count(*) AS projects, (SELECT count(*) FROM exp.events) AS events FROM exp.projects;
COMMIT;
RESET ROLE;

-- a copy under a new id (after the original is erased, so the slug is free): uuid keys are new, references follow
SELECT tenancy.delete_tenant('a1000000-0000-0000-0000-00000000000a', erase => true);
SET ROLE regress_exp_admin;
SELECT tenancy.import_tenant(:'doc', 'a3000000-0000-0000-0000-00000000000a');
RESET ROLE;
SELECT t.slug, t.status, t.plan, u.email, u.id <> (:'doc'::jsonb -> 'data' -> 'tenancy.users' -> 0 ->> 'id')::uuid AS new_user_id
  FROM tenancy.tenants t JOIN tenancy.users u ON u.tenant_id = t.id WHERE t.id = 'a3000000-0000-0000-0000-00000000000a';
SELECT count(*) AS projects, count(*) FILTER (WHERE p.id::text LIKE 'c1000000%') AS old_ids,
       count(*) FILTER (WHERE p.owner_id = u.id) AS owned_by_new_user
  FROM exp.projects p JOIN tenancy.users u ON u.tenant_id = p.tenant_id
 WHERE p.tenant_id = 'a3000000-0000-0000-0000-00000000000a';
SELECT count(*) AS tasks, count(*) FILTER (WHERE p.id IS NOT NULL) AS project_found,
       count(*) FILTER (WHERE t.parent_id IS NOT NULL AND EXISTS (SELECT 1 FROM exp.tasks x WHERE x.id = t.parent_id
                                                                  AND x.tenant_id = t.tenant_id)) AS parent_found
  FROM exp.tasks t LEFT JOIN exp.projects p ON p.id = t.project_id AND p.tenant_id = t.tenant_id
 WHERE t.tenant_id = 'a3000000-0000-0000-0000-00000000000a';
SELECT max_value FROM tenancy.quota_overrides WHERE tenant_id = 'a3000000-0000-0000-0000-00000000000a';
-- the copy has a key of its own; the copied ciphertext stays bound to the tenant it was written for (TN006)
SELECT tenancy.decrypt('a3000000-0000-0000-0000-00000000000a',
                       tenancy.encrypt('a3000000-0000-0000-0000-00000000000a', 'new secret'));
SELECT tenancy.decrypt(tenant_id, secret) FROM exp.projects WHERE name = 'project 1'
   AND tenant_id = 'a3000000-0000-0000-0000-00000000000a';
-- tenant B was never touched
SELECT (SELECT count(*) FROM exp.projects WHERE tenant_id = 'b1000000-0000-0000-0000-00000000000b') AS b_projects,
       (SELECT count(*) FROM exp.events WHERE tenant_id = 'b1000000-0000-0000-0000-00000000000b') AS b_events;

-- the streamed rows import like the document
SELECT tenancy.delete_tenant('a3000000-0000-0000-0000-00000000000a', erase => true);
SET ROLE regress_exp_admin;
SELECT tenancy.import_tenant_staged(:'manifest_doc'::jsonb -> 'manifest', 'staged');
SELECT tenancy.import_tenant_staged(:'manifest_doc'::jsonb -> 'manifest', 'exp.projects');  -- no SELECT on it
RESET ROLE;
GRANT SELECT ON exp.projects TO regress_exp_admin;
SET ROLE regress_exp_admin;
SELECT tenancy.import_tenant_staged(:'manifest_doc'::jsonb -> 'manifest', 'exp.projects');  -- row-level security
RESET ROLE;
SELECT count(*) FROM exp.tasks WHERE tenant_id = 'a1000000-0000-0000-0000-00000000000a';

-- audit: exports and imports are recorded in the caller's name; the chain verifies
SELECT action, current_user_name, after -> 'rows' -> 'exp.projects' AS projects
  FROM tenancy.audit_log WHERE action IN ('tenant_exported', 'tenant_manifest_exported', 'tenant_imported',
                                          'tenant_rows_exported')
 ORDER BY id;
SELECT count(*) > 0 FROM tenancy.audit_log WHERE action = 'audit_event_imported'
   AND tenant_id = 'a1000000-0000-0000-0000-00000000000a';
SELECT * FROM tenancy.verify_audit_log();

-- clean up
SELECT tenancy.delete_tenant(id, erase => true) FROM tenancy.tenants WHERE slug LIKE 'exp-%';
DROP FUNCTION exp_import_error(jsonb), exp_forge(jsonb, text, jsonb);
DROP TABLE staged;
DROP VIEW exp_tables, exp_entry;
DROP SCHEMA exp CASCADE;
DROP ROLE regress_exp_admin, regress_exp_app;
