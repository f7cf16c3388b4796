-- isolation: enable_isolation on plain and partitioned tables, what it generates, plans, descendants, missing
-- context, the audited cross-tenant path, event triggers, isolated_tables, disable_isolation, erasure
\set VERBOSITY sqlstate
INSERT INTO tenancy.tenants (id, organization_name, slug, status, parent_tenant_id) VALUES
  ('a0000000-0000-0000-0000-00000000000a', 'Acme', 'iso-acme', 'active', NULL),
  ('b0000000-0000-0000-0000-00000000000b', 'Beta', 'iso-beta', 'active', NULL);
INSERT INTO tenancy.tenants (id, organization_name, slug, status, parent_tenant_id) VALUES
  ('c0000000-0000-0000-0000-00000000000c', 'Acme EU', 'iso-acme-eu', 'active', 'a0000000-0000-0000-0000-00000000000a');
INSERT INTO tenancy.tenants (id, organization_name, slug, status, parent_tenant_id) VALUES
  ('d0000000-0000-0000-0000-00000000000d', 'Acme DE', 'iso-acme-de', 'active', 'c0000000-0000-0000-0000-00000000000c');
CREATE ROLE regress_iso_owner;
CREATE ROLE regress_iso_app;
CREATE ROLE regress_iso_admin;
GRANT tenancy_app TO regress_iso_app, regress_iso_owner;
GRANT tenancy_admin TO regress_iso_admin;

CREATE TABLE orders (id bigint NOT NULL, tenant_id uuid, item text, PRIMARY KEY (id));
CREATE TABLE not_uuid (id int, tenant_id text);
CREATE VIEW orders_view AS SELECT * FROM orders;
ALTER TABLE orders OWNER TO regress_iso_owner;
GRANT SELECT, INSERT, UPDATE, DELETE ON orders TO regress_iso_app, regress_iso_admin;

-- invalid input and missing rights:
SELECT tenancy.enable_isolation('orders', 'owner_id');
SELECT tenancy.enable_isolation('not_uuid');
SELECT tenancy.enable_isolation('orders_view');
SELECT tenancy.enable_isolation('tenancy.tenants');
SET ROLE regress_iso_app;
SELECT tenancy.enable_isolation('orders');
SET ROLE regress_iso_admin;
SELECT tenancy.enable_isolation('orders');  -- an admin that does not own the table
RESET ROLE;

-- protect it, twice: the same result (idempotent)
SELECT tenancy.enable_isolation('orders');
SELECT tenancy.enable_isolation('orders');
-- but not with another tenant column
CREATE TABLE twice (tenant_id uuid, other_tenant uuid);
SELECT tenancy.enable_isolation('twice');
\set VERBOSITY terse
SELECT tenancy.enable_isolation('twice', 'other_tenant');
\set VERBOSITY sqlstate
DROP TABLE twice;
SELECT polname, polcmd, polpermissive, polroles::regrole[], pg_get_expr(polqual, polrelid) AS using_expr,
       pg_get_expr(polwithcheck, polrelid) AS check_expr
  FROM pg_policy WHERE polrelid = 'orders'::regclass ORDER BY polname;
SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'orders'::regclass;
SELECT attnotnull, pg_get_expr(adbin, adrelid) AS default_expr
  FROM pg_attribute LEFT JOIN pg_attrdef ON adrelid = attrelid AND adnum = attnum
 WHERE attrelid = 'orders'::regclass AND attname = 'tenant_id';
SELECT indexrelid::regclass, pg_get_indexdef(indexrelid) FROM pg_index WHERE indrelid = 'orders'::regclass ORDER BY 1;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'orders'::regclass ORDER BY 1;

-- each tenant writes and reads its own rows; the default fills tenant_id from the context
SET ROLE regress_iso_app;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
INSERT INTO orders (id, item) VALUES (1, 'anvil'), (2, 'rocket');
COMMIT;
BEGIN;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
INSERT INTO orders (id, item) VALUES (3, 'bicycle');
SELECT id, item, tenant_id FROM orders ORDER BY id;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SELECT id, item FROM orders ORDER BY id;
-- the policy is an index condition evaluated once, not a filter per row
SET LOCAL enable_seqscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM orders WHERE item = 'anvil';
COMMIT;

-- no context: TN004 by default; no rows with missing_context = 'empty' (a superuser setting); never all rows
SELECT count(*) FROM orders;
SET tenancy.missing_context = 'empty';
RESET ROLE;
SET tenancy.missing_context = 'empty';
SET ROLE regress_iso_app;
SELECT count(*) FROM orders;
UPDATE orders SET item = 'stolen';
DELETE FROM orders;
INSERT INTO orders (id, item) VALUES (9, 'no context');
RESET ROLE;
RESET tenancy.missing_context;

-- the audited cross-tenant path: only tenancy_admin members, only reads, only with a reason
SET ROLE regress_iso_app;
SELECT tenancy.begin_cross_tenant('curious');
RESET ROLE;
SET ROLE regress_iso_admin;
SELECT count(*) FROM orders;
BEGIN;
SELECT tenancy.begin_cross_tenant('   ');
ROLLBACK;
BEGIN;
SELECT tenancy.begin_cross_tenant('quarterly billing export');
SELECT id, item FROM orders ORDER BY id;
UPDATE orders SET item = 'cross-tenant write';
DELETE FROM orders;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
UPDATE orders SET item = item;
COMMIT;
SELECT count(*) FROM orders;  -- the transaction ended: no cross-tenant read any more
RESET ROLE;
SELECT action, current_user_name, after FROM tenancy.audit_log WHERE action = 'cross_tenant_read'
   AND current_user_name LIKE 'regress_iso%' ORDER BY id;

-- partitioned tables: every partition gets the policy; later partitions too (event trigger)
CREATE TABLE events (tenant_id uuid NOT NULL, id bigint, body text, PRIMARY KEY (tenant_id, id))
  PARTITION BY HASH (tenant_id);
CREATE TABLE events_p0 PARTITION OF events FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 4, REMAINDER 1);
GRANT SELECT, INSERT ON events TO regress_iso_app;
SELECT tenancy.enable_isolation('events');
CREATE TABLE events_p2 PARTITION OF events FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE events_p3 (LIKE events);
ALTER TABLE events ATTACH PARTITION events_p3 FOR VALUES WITH (MODULUS 4, REMAINDER 3);
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT array_agg(polname ORDER BY polname) FROM pg_policy WHERE polrelid = c.oid) AS policies
  FROM pg_class c WHERE c.relname LIKE 'events%' AND c.relkind IN ('r', 'p') ORDER BY 1;
SET ROLE regress_iso_app;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
INSERT INTO events (id, body) VALUES (1, 'a1'), (2, 'a2');
COMMIT;
BEGIN;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
INSERT INTO events (id, body) VALUES (1, 'b1');
-- initial pruning at executor start: one partition scanned, by index
EXPLAIN (COSTS OFF) SELECT * FROM events WHERE id = 1;
SELECT id, body FROM events ORDER BY id;
COMMIT;
RESET ROLE;

-- include_descendants: a parent reads (only reads) its descendants' rows; a child never sees its parent's
CREATE TABLE projects (id int PRIMARY KEY, tenant_id uuid NOT NULL, name text);
GRANT SELECT, INSERT, UPDATE, DELETE ON projects TO regress_iso_app;
SELECT tenancy.enable_isolation('projects', include_descendants => true);
INSERT INTO projects VALUES
  (1, 'a0000000-0000-0000-0000-00000000000a', 'acme'), (2, 'c0000000-0000-0000-0000-00000000000c', 'acme eu'),
  (3, 'd0000000-0000-0000-0000-00000000000d', 'acme de'), (4, 'b0000000-0000-0000-0000-00000000000b', 'beta');
SET ROLE regress_iso_app;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SELECT id, name FROM projects ORDER BY id;
UPDATE projects SET name = name || ' (edited)';
DELETE FROM projects WHERE id = 3;
SELECT id, name FROM projects ORDER BY id;
INSERT INTO projects VALUES (5, 'c0000000-0000-0000-0000-00000000000c', 'written for a child');
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant('c0000000-0000-0000-0000-00000000000c');
SELECT id, name FROM projects ORDER BY id;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant('d0000000-0000-0000-0000-00000000000d');
SELECT id, name FROM projects ORDER BY id;
COMMIT;
RESET ROLE;
-- re-parenting reaches the descendants cache at once
UPDATE tenancy.tenants SET parent_tenant_id = NULL WHERE id = 'c0000000-0000-0000-0000-00000000000c';
SET ROLE regress_iso_app;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SELECT id, name FROM projects ORDER BY id;
COMMIT;
RESET ROLE;

-- tenancy.auto_isolate: new tables with that column are isolated, e.g. CREATE TABLE ... (LIKE ...)
SET tenancy.auto_isolate = 'tenant_id';
CREATE TABLE orders_archive (LIKE orders);
CREATE TABLE unrelated (id int);
RESET tenancy.auto_isolate;
CREATE TABLE orders_scratch (LIKE orders);

SELECT table_name, isolated_via, tenant_column, include_descendants, rls_enabled, rls_forced, policies,
       created_index IS NOT NULL AS created_index
  FROM tenancy.isolated_tables ORDER BY table_name::text;

-- erasure of one tenant's rows from every isolated table (delete_tenant(erase) calls it)
SELECT tenancy._erase_tenant_rows('b0000000-0000-0000-0000-00000000000b');
SELECT count(*) FILTER (WHERE tenant_id = 'b0000000-0000-0000-0000-00000000000b') AS b_rows, count(*) AS all_rows
  FROM (SELECT tenant_id FROM orders UNION ALL SELECT tenant_id FROM events UNION ALL SELECT tenant_id FROM projects) s;
SET ROLE regress_iso_app;
SELECT tenancy._erase_tenant_rows('a0000000-0000-0000-0000-00000000000a');
RESET ROLE;

-- disable_isolation undoes exactly what was done: the table's state equals the one before enable_isolation
CREATE TABLE plain (id int, tenant_id uuid DEFAULT '00000000-0000-0000-0000-000000000000');
CREATE TEMP TABLE before_state AS
SELECT c.relrowsecurity, c.relforcerowsecurity, a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       (SELECT count(*) FROM pg_index WHERE indrelid = c.oid) AS indexes,
       (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies,
       (SELECT count(*) FROM pg_trigger WHERE tgrelid = c.oid) AS triggers
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum WHERE c.oid = 'plain'::regclass;
SELECT tenancy.enable_isolation('plain');
SELECT tenancy.disable_isolation('plain');
SELECT c.relrowsecurity, c.relforcerowsecurity, a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default_expr,
       (SELECT count(*) FROM pg_index WHERE indrelid = c.oid) AS indexes,
       (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies,
       (SELECT count(*) FROM pg_trigger WHERE tgrelid = c.oid) AS triggers
  FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
  LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum WHERE c.oid = 'plain'::regclass
EXCEPT SELECT * FROM before_state;
SELECT tenancy.disable_isolation('plain');
-- a partitioned table: the partitions too
SELECT tenancy.disable_isolation('events');
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity,
       (SELECT count(*) FROM pg_policy WHERE polrelid = c.oid) AS policies
  FROM pg_class c WHERE c.relname LIKE 'events%' AND c.relkind IN ('r', 'p') ORDER BY 1;
-- a dropped table leaves no record behind
DROP TABLE orders_archive;
SELECT table_name FROM tenancy.isolated_tables ORDER BY table_name::text;

DROP VIEW orders_view;
DROP TABLE orders, not_uuid, events, projects, unrelated, orders_scratch, plain;
SELECT count(*) AS records_left FROM tenancy.isolation_config;
DROP ROLE regress_iso_owner, regress_iso_app, regress_iso_admin;
DELETE FROM tenancy.tenants WHERE slug LIKE 'iso-%' AND parent_tenant_id IS NOT NULL;
DELETE FROM tenancy.tenants WHERE slug LIKE 'iso-%';
