-- context: set_tenant / current_tenant_id lifetime (commit, rollback, savepoints, one statement), the
-- transaction-local app.tenant_id, RESET ALL / DISCARD ALL, malformed values, cache invalidation, parallel workers
\set VERBOSITY sqlstate
-- tenants written directly as superuser (the registry functions are tested in their own files)
INSERT INTO tenancy.tenants (id, organization_name, slug, status, trial_ends_at) VALUES
  ('a0000000-0000-0000-0000-00000000000a', 'Acme', 'ctx-acme', 'active', NULL),
  ('b0000000-0000-0000-0000-00000000000b', 'Beta', 'ctx-beta', 'trial', now() + interval '30 days'),
  ('c0000000-0000-0000-0000-00000000000c', 'Gamma', 'ctx-gamma', 'suspended', NULL),
  ('d0000000-0000-0000-0000-00000000000d', 'Delta', 'ctx-delta', 'cancelled', NULL),
  ('e0000000-0000-0000-0000-00000000000e', 'Epsilon', 'ctx-epsilon', 'trial', now() - interval '1 day');
CREATE ROLE regress_ctx_app LOGIN;
GRANT tenancy_app TO regress_ctx_app;

-- no context at first
SELECT tenancy.current_tenant_id() IS NULL AS no_context;

-- inside a transaction block: visible until COMMIT, gone after it
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SELECT tenancy.current_tenant_id();
SELECT tenancy.current_tenant_id();
COMMIT;
SELECT tenancy.current_tenant_id() IS NULL AS cleared_by_commit;

-- and gone after ROLLBACK
BEGIN;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
SELECT tenancy.current_tenant_id();
ROLLBACK;
SELECT tenancy.current_tenant_id() IS NULL AS cleared_by_rollback;

-- and after a failed transaction
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SELECT 1 / 0;
ROLLBACK;
SELECT tenancy.current_tenant_id() IS NULL AS cleared_by_abort;

-- ROLLBACK TO SAVEPOINT restores the value from before the savepoint; RELEASE keeps the inner one
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SAVEPOINT s1;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
SELECT tenancy.current_tenant_id();
ROLLBACK TO SAVEPOINT s1;
SELECT tenancy.current_tenant_id();
SAVEPOINT s2;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
RELEASE SAVEPOINT s2;
SELECT tenancy.current_tenant_id();
SAVEPOINT s3;
SELECT tenancy.set_tenant(NULL);
SELECT tenancy.current_tenant_id() IS NULL AS cleared_by_null;
ROLLBACK TO SAVEPOINT s3;
SELECT tenancy.current_tenant_id();
COMMIT;
SELECT tenancy.current_tenant_id() IS NULL AS no_context;

-- outside a transaction block the context lasts one statement
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SELECT tenancy.current_tenant_id() IS NULL AS gone_next_statement;
SELECT (SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a')) IS NULL AS set,
       (SELECT tenancy.current_tenant_id()) AS same_statement;
SELECT tenancy.current_tenant_id() IS NULL AS gone_next_statement;

-- an unknown tenant is TN001; suspended, cancelled and expired-trial tenants are TN002; the context is unchanged
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SAVEPOINT s;
SELECT tenancy.set_tenant('f0000000-0000-0000-0000-00000000000f');
ROLLBACK TO SAVEPOINT s;
SELECT tenancy.set_tenant('c0000000-0000-0000-0000-00000000000c');
ROLLBACK TO SAVEPOINT s;
SELECT tenancy.set_tenant('d0000000-0000-0000-0000-00000000000d');
ROLLBACK TO SAVEPOINT s;
SELECT tenancy.set_tenant('e0000000-0000-0000-0000-00000000000e');
ROLLBACK TO SAVEPOINT s;
SELECT tenancy.current_tenant_id();
COMMIT;
\set VERBOSITY default
SELECT tenancy.set_tenant('c0000000-0000-0000-0000-00000000000c');
SELECT tenancy.set_tenant('f0000000-0000-0000-0000-00000000000f');
\set VERBOSITY sqlstate

-- the status cache follows status changes: usable, suspended, usable again, trial expiry
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
UPDATE tenancy.tenants SET status = 'suspended' WHERE id = 'b0000000-0000-0000-0000-00000000000b';
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
UPDATE tenancy.tenants SET status = 'active' WHERE id = 'b0000000-0000-0000-0000-00000000000b';
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
UPDATE tenancy.tenants SET status = 'trial', trial_ends_at = now() - interval '1 second'
 WHERE id = 'b0000000-0000-0000-0000-00000000000b';
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
UPDATE tenancy.tenants SET trial_ends_at = now() + interval '30 days' WHERE id = 'b0000000-0000-0000-0000-00000000000b';
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
-- a change rolled back leaves the cache right too
BEGIN;
UPDATE tenancy.tenants SET status = 'suspended' WHERE id = 'b0000000-0000-0000-0000-00000000000b';
SAVEPOINT s;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
ROLLBACK;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');

-- the hidden setting cannot be set directly, even by a superuser
SET tenancy.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
BEGIN;
SET LOCAL tenancy.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
ROLLBACK;
SELECT set_config('tenancy.tenant_id', 'a0000000-0000-0000-0000-00000000000a', true);
SELECT tenancy.current_tenant_id() IS NULL AS no_context;
-- nor can the value parallel workers trust for app.tenant_id
SET tenancy.validated_app_tenant_id = 'a0000000-0000-0000-0000-00000000000a';
SELECT set_config('tenancy.validated_app_tenant_id', 'a0000000-0000-0000-0000-00000000000a', true);

-- app.tenant_id: honoured when transaction-local (SET LOCAL, set_config(..., true))
BEGIN;
SET LOCAL app.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
SELECT tenancy.current_tenant_id();
COMMIT;
SELECT tenancy.current_tenant_id() IS NULL AS cleared_by_commit;
BEGIN;
SELECT set_config('app.tenant_id', 'b0000000-0000-0000-0000-00000000000b', true) IS NOT NULL AS set;
SELECT tenancy.current_tenant_id();
-- changed again in the same transaction: the new value counts
SELECT set_config('app.tenant_id', 'a0000000-0000-0000-0000-00000000000a', true) IS NOT NULL AS set;
SELECT tenancy.current_tenant_id();
SAVEPOINT s;
SET LOCAL app.tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT tenancy.current_tenant_id();
ROLLBACK TO SAVEPOINT s;
SELECT tenancy.current_tenant_id();
ROLLBACK;
-- one statement outside a block
SELECT set_config('app.tenant_id', 'a0000000-0000-0000-0000-00000000000a', true) IS NOT NULL AS set,
       (SELECT tenancy.current_tenant_id()) AS same_statement;
SELECT tenancy.current_tenant_id() IS NULL AS gone_next_statement;

-- a session-level app.tenant_id is never a context, neither inside nor outside a transaction block
SET app.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
SELECT tenancy.current_tenant_id() IS NULL AS session_value_ignored;
BEGIN;
SELECT tenancy.current_tenant_id() IS NULL AS session_value_ignored;
SET app.tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT tenancy.current_tenant_id() IS NULL AS plain_set_in_block_ignored;
-- SET then SET LOCAL in the same transaction: the local value counts until the transaction ends
SET LOCAL app.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
SELECT tenancy.current_tenant_id();
COMMIT;
SELECT current_setting('app.tenant_id') AS session_value, tenancy.current_tenant_id() IS NULL AS ignored;
SELECT set_config('app.tenant_id', 'a0000000-0000-0000-0000-00000000000a', false) IS NOT NULL AS set;
SELECT tenancy.current_tenant_id() IS NULL AS session_value_ignored;
-- a SET inside a savepoint over a local value is session-level again: no context (fail closed)
BEGIN;
SET LOCAL app.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
SAVEPOINT s;
SET app.tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT tenancy.current_tenant_id() IS NULL AS no_context;
ROLLBACK;
RESET app.tenant_id;

-- NULL, empty, malformed, unknown and inactive values mean no context, never an error
BEGIN;
SET LOCAL app.tenant_id = '';
SELECT tenancy.current_tenant_id() IS NULL AS empty;
SET LOCAL app.tenant_id = 'not-a-uuid';
SELECT tenancy.current_tenant_id() IS NULL AS malformed;
SET LOCAL app.tenant_id = 'a0000000-0000-0000-0000-00000000000a; DROP TABLE x';
SELECT tenancy.current_tenant_id() IS NULL AS injection;
SET LOCAL app.tenant_id = 'a0000000-0000-0000-0000-00000000000a0000000000000000000000000000000000';
SELECT tenancy.current_tenant_id() IS NULL AS too_long;
SET LOCAL app.tenant_id = 'f0000000-0000-0000-0000-00000000000f';
SELECT tenancy.current_tenant_id() IS NULL AS unknown;
SET LOCAL app.tenant_id = 'c0000000-0000-0000-0000-00000000000c';
SELECT tenancy.current_tenant_id() IS NULL AS suspended;
SET LOCAL app.tenant_id = 'e0000000-0000-0000-0000-00000000000e';
SELECT tenancy.current_tenant_id() IS NULL AS trial_expired;
SELECT set_config('app.tenant_id', NULL, true) IS NOT NULL AS set;
SELECT tenancy.current_tenant_id() IS NULL AS null_value;
-- other spellings of a uuid are accepted, as by the uuid type
SET LOCAL app.tenant_id = '{A0000000-00000000-00000000-0000000A}';
SELECT tenancy.current_tenant_id();
COMMIT;

-- set_tenant wins over app.tenant_id
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SET LOCAL app.tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT tenancy.current_tenant_id();
COMMIT;

-- RESET ALL clears the context; DISCARD ALL (outside a block) leaves none
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SET LOCAL app.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
RESET ALL;
SELECT tenancy.current_tenant_id() IS NULL AS cleared_by_reset_all;
COMMIT;
SET app.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
DISCARD ALL;
SELECT tenancy.current_tenant_id() IS NULL AS no_context_after_discard_all;
SELECT current_setting('app.tenant_id', true) AS app_tenant_id_after_discard;

-- parallel workers see the context of their leader (set_tenant and app.tenant_id)
CREATE TABLE ctx_parallel AS SELECT g AS n FROM generate_series(1, 1000) g;
ANALYZE ctx_parallel;
BEGIN;
SET LOCAL force_parallel_mode = on;
SET LOCAL parallel_setup_cost = 0;
SET LOCAL parallel_tuple_cost = 0;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
EXPLAIN (COSTS OFF) SELECT count(*) FROM ctx_parallel WHERE tenancy.current_tenant_id() IS NOT NULL;
SELECT count(*) FROM ctx_parallel WHERE tenancy.current_tenant_id() = 'a0000000-0000-0000-0000-00000000000a';
SELECT tenancy.set_tenant(NULL);
SET LOCAL app.tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT count(*) FROM ctx_parallel WHERE tenancy.current_tenant_id() = 'b0000000-0000-0000-0000-00000000000b';
COMMIT;
-- a session-level value reaches no worker either
SET app.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
BEGIN;
SET LOCAL force_parallel_mode = on;
SELECT count(*) FROM ctx_parallel WHERE tenancy.current_tenant_id() IS NOT NULL;
COMMIT;
RESET app.tenant_id;
DROP TABLE ctx_parallel;

-- an application role: uses the context, cannot set the hidden setting
SET ROLE regress_ctx_app;
BEGIN;
SELECT tenancy.set_tenant('a0000000-0000-0000-0000-00000000000a');
SELECT tenancy.current_tenant_id();
COMMIT;
SET tenancy.tenant_id = 'a0000000-0000-0000-0000-00000000000a';
SELECT set_config('tenancy.tenant_id', 'a0000000-0000-0000-0000-00000000000a', true);
SELECT set_config('tenancy.validated_app_tenant_id', 'a0000000-0000-0000-0000-00000000000a', true);
SELECT tenancy.set_tenant('c0000000-0000-0000-0000-00000000000c');
RESET ROLE;

-- function properties the policies rely on
SELECT p.proname, p.provolatile, p.proparallel, p.proleakproof, p.proisstrict
  FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace
   AND p.proname IN ('set_tenant', 'current_tenant_id') ORDER BY 1;
SELECT has_function_privilege('public', 'tenancy.set_tenant(uuid)', 'EXECUTE') AS public_can_set;

DROP ROLE regress_ctx_app;
DELETE FROM tenancy.tenants WHERE slug LIKE 'ctx-%';
