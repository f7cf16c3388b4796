-- context_temp_tables: under a tenant context (or a cross-tenant read) a temporary table must be ON COMMIT DROP:
-- through a transaction pooler the server session, and its temporary tables with the tenant's rows, go on to the
-- next client. Every way of creating one is refused (42501, with a hint); ON COMMIT DROP and no context are fine.
\set VERBOSITY terse
SET client_min_messages = warning;
SELECT id AS ta FROM tenancy.create_tenant('Temp A', 'temp-a') \gset
SELECT id AS tb FROM tenancy.create_tenant('Temp B', 'temp-b') \gset
CREATE TABLE tmp_docs (id int, tenant_id uuid, body text);
SELECT tenancy.enable_isolation('tmp_docs');
INSERT INTO tmp_docs VALUES (1, :'ta', 'secret of a'), (2, :'tb', 'secret of b');
CREATE ROLE regress_tmp_app LOGIN IN ROLE tenancy_app;
CREATE ROLE regress_tmp_admin LOGIN IN ROLE tenancy_admin;
GRANT SELECT, INSERT ON tmp_docs TO regress_tmp_app, regress_tmp_admin;
CREATE FUNCTION keep_rows() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  CREATE TEMP TABLE kept_in_function AS SELECT * FROM tmp_docs;
END
$$;
SET ROLE regress_tmp_app;
-- the session's temporary schema exists (a table made outside any context, which is allowed)
CREATE TEMP TABLE scratch (x int);
DROP TABLE scratch;

\set VERBOSITY default
BEGIN;
SELECT tenancy.set_tenant(:'ta');
CREATE TEMP TABLE kept AS SELECT * FROM tmp_docs;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ta');
SELECT * INTO TEMP kept FROM tmp_docs;
ROLLBACK;
\set VERBOSITY terse
-- every other spelling: a plain CREATE TEMP TABLE filled later, pg_temp named, pg_temp first in search_path,
-- ON COMMIT DELETE ROWS / PRESERVE ROWS, TEMPORARY, the app.tenant_id context, inside a function
BEGIN;
SELECT tenancy.set_tenant(:'ta');
CREATE TEMP TABLE kept (LIKE tmp_docs);
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ta');
CREATE TABLE pg_temp.kept AS SELECT * FROM tmp_docs;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ta');
CREATE TABLE pg_temp.kept (id int);
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ta');
SET LOCAL search_path = pg_temp, public;
CREATE TABLE kept AS SELECT * FROM tmp_docs;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ta');
CREATE TEMP TABLE kept ON COMMIT DELETE ROWS AS SELECT * FROM tmp_docs;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ta');
CREATE TEMPORARY TABLE kept (id int) ON COMMIT PRESERVE ROWS;
ROLLBACK;
BEGIN;
SET LOCAL app.tenant_id = :'ta';
CREATE TEMP TABLE kept AS SELECT * FROM tmp_docs;
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ta');
SELECT keep_rows();
ROLLBACK;
-- a context set outside a transaction block lasts for its statement only: the next statement may create one
SELECT tenancy.set_tenant(:'ta');
CREATE TEMP TABLE after_statement (x int);
DROP TABLE after_statement;
-- nothing was left behind
SELECT count(*) AS temp_tables FROM pg_class WHERE relpersistence = 't' AND relkind = 'r'
   AND relnamespace = pg_my_temp_schema();

-- ON COMMIT DROP is fine: the table goes with the transaction
BEGIN;
SELECT tenancy.set_tenant(:'ta');
CREATE TEMP TABLE kept ON COMMIT DROP AS SELECT * FROM tmp_docs;
SELECT body FROM kept;
CREATE TEMP TABLE kept2 (LIKE tmp_docs) ON COMMIT DROP;
COMMIT;
SELECT to_regclass('pg_temp.kept') IS NULL AS dropped;
-- a permanent table under a context is not this check's business (privileges decide)
RESET ROLE;
BEGIN;
SELECT tenancy.set_tenant(:'ta');
CREATE TABLE tmp_permanent AS SELECT body FROM tmp_docs;
COMMIT;
SELECT count(*) > 0 AS created FROM tmp_permanent;
DROP TABLE tmp_permanent;

-- an administrator's cross-tenant read is a context too
SET ROLE regress_tmp_admin;
BEGIN;
SELECT tenancy.begin_cross_tenant('regress: copy every tenant''s rows');
CREATE TEMP TABLE everything AS SELECT * FROM tmp_docs;
ROLLBACK;
BEGIN;
SELECT tenancy.begin_cross_tenant('regress: copy every tenant''s rows');
CREATE TEMP TABLE everything ON COMMIT DROP AS SELECT * FROM tmp_docs;
SELECT count(*) AS rows FROM everything;
COMMIT;
RESET ROLE;

-- clean up
DROP FUNCTION keep_rows();
DROP TABLE tmp_docs;
DROP ROLE regress_tmp_app, regress_tmp_admin;
