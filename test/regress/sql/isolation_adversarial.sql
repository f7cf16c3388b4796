-- isolation_adversarial: an application role (member of tenancy_app, not the owner) tries every way to reach
-- another tenant's rows of an isolated table; then the owner itself under FORCE ROW LEVEL SECURITY.
-- Each attempt shows zero rows of the other tenant or an error.
\set VERBOSITY sqlstate
INSERT INTO tenancy.tenants (id, organization_name, slug, status) VALUES
  ('a0000000-0000-0000-0000-00000000000a', 'Acme', 'adv-acme', 'active'),
  ('b0000000-0000-0000-0000-00000000000b', 'Beta', 'adv-beta', 'active');
CREATE ROLE regress_adv_owner LOGIN;
CREATE ROLE regress_adv_app LOGIN;
GRANT tenancy_app TO regress_adv_owner, regress_adv_app;
GRANT CREATE ON SCHEMA public TO regress_adv_owner, regress_adv_app;

SET ROLE regress_adv_owner;
-- the primary key is (id) alone on purpose: see the unique-constraint side channel below
CREATE TABLE notes (id int PRIMARY KEY, tenant_id uuid NOT NULL, body text);
CREATE TABLE docs (tenant_id uuid NOT NULL, id int, body text, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id);
CREATE TABLE docs_p0 PARTITION OF docs FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE docs_p1 PARTITION OF docs FOR VALUES WITH (MODULUS 2, REMAINDER 1);
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON notes, docs, docs_p0, docs_p1 TO regress_adv_app;
RESET ROLE;
SELECT tenancy.enable_isolation('notes');
SELECT tenancy.enable_isolation('docs');
INSERT INTO notes VALUES (1, 'a0000000-0000-0000-0000-00000000000a', 'a secret 1'),
                         (2, 'a0000000-0000-0000-0000-00000000000a', 'a secret 2'),
                         (3, 'b0000000-0000-0000-0000-00000000000b', 'b secret 3'),
                         (4, 'b0000000-0000-0000-0000-00000000000b', 'b secret 4');
INSERT INTO docs SELECT tenant_id, id, body FROM notes;
-- helper for checks as superuser: the rows of tenant B, untouched at the end of every attempt
CREATE VIEW b_rows AS SELECT 'notes' AS t, id, body FROM notes WHERE tenant_id = 'b0000000-0000-0000-0000-00000000000b'
  UNION ALL SELECT 'docs', id, body FROM docs WHERE tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT * FROM b_rows ORDER BY 1, 2;

SET ROLE regress_adv_app;
-- a leaky function: not LEAKPROOF, cheap, reports every row it is shown
CREATE FUNCTION leak(text) RETURNS boolean LANGUAGE plpgsql COST 0.0000001 AS
$$ BEGIN RAISE NOTICE 'leak saw: %', $1; RETURN true; END $$;
\set VERBOSITY default

BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
-- 1. direct SELECT
SELECT id, body FROM notes ORDER BY id;
SELECT id, body FROM notes WHERE tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT id, body FROM notes WHERE id = 3 OR true ORDER BY id;
-- 2. UPDATE / DELETE without WHERE touch only the context's rows
UPDATE notes SET body = body || ' (edited by a)';
SAVEPOINT s;
DELETE FROM notes;
ROLLBACK TO SAVEPOINT s;
-- 3. INSERT with another tenant's id
INSERT INTO notes VALUES (10, 'b0000000-0000-0000-0000-00000000000b', 'planted in b');
ROLLBACK TO SAVEPOINT s;
-- 4. UPDATE moving a row to another tenant
UPDATE notes SET tenant_id = 'b0000000-0000-0000-0000-00000000000b' WHERE id = 1;
ROLLBACK TO SAVEPOINT s;
-- 5. INSERT ... ON CONFLICT DO UPDATE onto another tenant's key (id 3 belongs to b)
INSERT INTO notes VALUES (3, 'a0000000-0000-0000-0000-00000000000a', 'takeover')
  ON CONFLICT (id) DO UPDATE SET body = 'taken over', tenant_id = EXCLUDED.tenant_id;
ROLLBACK TO SAVEPOINT s;
INSERT INTO docs VALUES ('a0000000-0000-0000-0000-00000000000a', 3, 'own row, same id as b''s')
  ON CONFLICT (tenant_id, id) DO UPDATE SET body = 'taken over';
-- 6. RETURNING shows only rows the policy let through
UPDATE notes SET body = body RETURNING id, body;
DELETE FROM docs WHERE id = 3 RETURNING tenant_id, id;
-- 7. COPY TO is filtered; COPY FROM is refused on a table with row level security
COPY notes TO STDOUT;
COPY (SELECT id FROM notes WHERE tenant_id <> tenancy.current_tenant_id()) TO STDOUT;
SAVEPOINT s;
\copy notes FROM '/dev/null'
ROLLBACK TO SAVEPOINT s;
-- 8. TRUNCATE is refused even with the TRUNCATE privilege
TRUNCATE notes;
ROLLBACK TO SAVEPOINT s;
TRUNCATE docs_p0;
ROLLBACK TO SAVEPOINT s;
-- 9. a leaky function in WHERE sees only the context's rows (the policy runs first)
SELECT id FROM notes WHERE leak(body) ORDER BY id;
-- 10. a view without security_barrier, created by the app role: the policy still runs first
CREATE VIEW notes_plain AS SELECT * FROM notes;
SELECT id FROM notes_plain WHERE leak(body) ORDER BY id;
-- 11. direct SELECT from each partition
SELECT 'docs_p0' AS p, id FROM docs_p0 UNION ALL SELECT 'docs_p1', id FROM docs_p1 ORDER BY 1, 2;
UPDATE docs_p0 SET body = 'via partition';
UPDATE docs_p1 SET body = 'via partition';
-- 12. row_security = off does not switch the policy off, it refuses the query
SET LOCAL row_security = off;
SELECT count(*) FROM notes;
ROLLBACK TO SAVEPOINT s;
-- and the app role cannot change the table or its policies
ALTER TABLE notes DISABLE ROW LEVEL SECURITY;
ROLLBACK TO SAVEPOINT s;
DROP POLICY tenancy_isolation ON notes;
ROLLBACK TO SAVEPOINT s;
CREATE POLICY open_door ON notes USING (true);
ROLLBACK TO SAVEPOINT s;
SELECT set_config('tenancy.cross_tenant', 'on', true);
ROLLBACK TO SAVEPOINT s;
SELECT tenancy.begin_cross_tenant('pretending to be an admin');
ROLLBACK TO SAVEPOINT s;
COMMIT;

-- 13. a prepared statement planned under A and executed under B: B's rows (also as a cached generic plan)
SET plan_cache_mode = force_generic_plan;
PREPARE all_notes AS SELECT id, body FROM notes ORDER BY id;
PREPARE doc_by_id(int) AS SELECT id, body FROM docs WHERE id = $1;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
EXECUTE all_notes;
EXECUTE doc_by_id(1);
COMMIT;
BEGIN;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
EXECUTE all_notes;
EXECUTE doc_by_id(1);
EXECUTE doc_by_id(3);
COMMIT;
EXECUTE all_notes;
RESET plan_cache_mode;
DEALLOCATE ALL;

-- 14. a cursor WITH HOLD under A would be materialized at COMMIT and outlive the context: refused, and a
-- transaction that declared one gets no context, so nothing of A is kept
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
DECLARE c CURSOR WITH HOLD FOR SELECT id, body FROM notes ORDER BY id;
COMMIT;
FETCH ALL FROM c;
SET tenancy.missing_context = 'empty';
RESET ROLE;
SET tenancy.missing_context = 'empty';
SET ROLE regress_adv_app;
BEGIN;
DECLARE c2 CURSOR WITH HOLD FOR SELECT id, body FROM notes ORDER BY id;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
ROLLBACK;
BEGIN;
DECLARE c2 CURSOR WITH HOLD FOR SELECT id, body FROM notes ORDER BY id;
SET LOCAL app.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
SELECT tenancy.current_tenant_id() IS NULL AS no_context;
COMMIT;
FETCH ALL FROM c2;
CLOSE c2;
RESET ROLE;
-- nor can a superuser switch the cross-tenant flag on around begin_cross_tenant (which audits the read)
SET tenancy.cross_tenant = on;
SELECT set_config('tenancy.cross_tenant', 'on', true);
RESET tenancy.missing_context;
SET ROLE regress_adv_app;
-- a cursor without HOLD dies with its transaction
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
DECLARE c3 CURSOR FOR SELECT id FROM notes ORDER BY id;
FETCH ALL FROM c3;
COMMIT;
FETCH ALL FROM c3;

\set VERBOSITY sqlstate
-- 15. no context, or a NULL / empty / malformed / unknown / session-level one: TN004, never rows
SELECT count(*) FROM notes;
SELECT count(*) FROM docs_p0;
BEGIN; SELECT tenancy.set_tenant(NULL); SELECT count(*) FROM notes; ROLLBACK;
BEGIN; SET LOCAL app.tenant_id = ''; SELECT count(*) FROM notes; ROLLBACK;
BEGIN; SET LOCAL app.tenant_id = 'b0000000-0000-0000-0000-00000000000'; SELECT count(*) FROM notes; ROLLBACK;
BEGIN; SET LOCAL app.tenant_id = 'b0000000-0000-0000-0000-00000000000b'' OR ''1''=''1'; SELECT count(*) FROM notes; ROLLBACK;
BEGIN; SET LOCAL app.tenant_id = 'f0000000-0000-0000-0000-00000000000f'; SELECT count(*) FROM notes; ROLLBACK;
SET app.tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT count(*) FROM notes;
BEGIN; SELECT count(*) FROM notes; ROLLBACK;
RESET app.tenant_id;
-- the transaction-local app.tenant_id works like set_tenant
BEGIN; SET LOCAL app.tenant_id = 'b0000000-0000-0000-0000-00000000000b'; SELECT id FROM notes ORDER BY id; ROLLBACK;

-- 16. RESET ALL and DISCARD ALL leave no context behind
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
RESET ALL;
SELECT count(*) FROM notes;
ROLLBACK;
DISCARD ALL;
SET ROLE regress_adv_app;  -- DISCARD ALL also reset the role
SELECT count(*) FROM notes;

-- 17. a subtransaction that switches to B and rolls back: A's rows again, B's never leak into A's work
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SAVEPOINT s;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
SELECT id FROM notes ORDER BY id;
ROLLBACK TO SAVEPOINT s;
SELECT id FROM notes ORDER BY id;
COMMIT;
SELECT current_user;
RESET ROLE;

-- 18. the table owner is held by FORCE ROW LEVEL SECURITY like everyone else
SET ROLE regress_adv_owner;
SELECT count(*) FROM notes;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SELECT id FROM notes ORDER BY id;
SELECT id FROM docs_p1 ORDER BY id;
UPDATE notes SET body = 'owner edit';
INSERT INTO notes VALUES (11, 'b0000000-0000-0000-0000-00000000000b', 'owner plants in b');
ROLLBACK;
RESET ROLE;

-- B's rows are exactly as they were
SELECT * FROM b_rows ORDER BY 1, 2;

-- 19. the unique-constraint side channel: with a unique key that lacks the tenant column, an INSERT learns that
-- the key exists in some other tenant (23505) without seeing the row. docs/isolation.md advises putting the tenant
-- column in every unique key, as docs (tenant_id, id) does: there the same id is simply another row.
SET ROLE regress_adv_app;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SAVEPOINT s;
INSERT INTO notes VALUES (3, 'a0000000-0000-0000-0000-00000000000a', 'probe');
ROLLBACK TO SAVEPOINT s;
INSERT INTO docs VALUES ('a0000000-0000-0000-0000-00000000000a', 4, 'probe');
SELECT id FROM docs ORDER BY id;
ROLLBACK;
RESET ROLE;

DROP VIEW b_rows;
DROP OWNED BY regress_adv_app;
DROP TABLE notes, docs;
REVOKE CREATE ON SCHEMA public FROM regress_adv_owner, regress_adv_app;
DROP ROLE regress_adv_owner, regress_adv_app;
DELETE FROM tenancy.tenants WHERE slug LIKE 'adv-%';
