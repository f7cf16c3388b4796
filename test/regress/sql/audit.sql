-- audit: who/what/before/after of every registry change, the append-only guard, and tamper detection by the chain
\set VERBOSITY terse
CREATE ROLE regress_audit_admin NOLOGIN IN ROLE tenancy_admin;
CREATE ROLE regress_audit_app NOLOGIN IN ROLE tenancy_app;
CREATE FUNCTION pg_temp.tid(s text) RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM tenancy.tenants WHERE slug = s $$;
SELECT coalesce(max(id), 0) AS start_id FROM tenancy.audit_log \gset

-- a non-superuser admin makes changes; each event names it as current_user, the login role as session_user
SET ROLE regress_audit_admin;
SELECT slug FROM tenancy.create_tenant('Audit Co', 'audit-co', 'team', admin_email => 'owner@audit.co');
SELECT status FROM tenancy.update_tenant(pg_temp.tid('audit-co'), '{"status": "active", "configuration": {"a": 1}}');
SELECT email FROM tenancy.add_user(pg_temp.tid('audit-co'), 'dev@audit.co');
SELECT role FROM tenancy.set_user_role((SELECT id FROM tenancy.users WHERE email = 'dev@audit.co'), 'admin');
SELECT tenancy.remove_user((SELECT id FROM tenancy.users WHERE email = 'dev@audit.co'));
SELECT tenancy.delete_tenant(pg_temp.tid('audit-co'));
RESET ROLE;
SELECT pg_temp.tid('audit-co') AS audit_id \gset
SELECT action, current_user_name, session_user_name = session_user AS session_ok, context_tenant_id IS NULL AS no_context,
       tenant_id = pg_temp.tid('audit-co') AS about_tenant, before IS NOT NULL AS has_before, after IS NOT NULL AS has_after
  FROM tenancy.audit_log WHERE id > :start_id ORDER BY id;
-- before and after hold the rows
SELECT before ->> 'status' AS before_status, after ->> 'status' AS after_status, after -> 'configuration' AS config
  FROM tenancy.audit_log WHERE id > :start_id AND action = 'tenant_updated';
SELECT before ->> 'role' AS before_role, after ->> 'role' AS after_role
  FROM tenancy.audit_log WHERE id > :start_id AND action = 'user_role_changed';
-- the chain: each event links to the one before it
SELECT count(*) FILTER (WHERE a.prev_hash = coalesce(p.hash, decode(repeat('00', 32), 'hex'))) AS linked, count(*) AS events,
       bool_and(length(a.hash) = 32) AS sha256
  FROM tenancy.audit_log a LEFT JOIN LATERAL (SELECT hash FROM tenancy.audit_log b WHERE b.id < a.id ORDER BY b.id DESC LIMIT 1) p ON true
 WHERE a.id > :start_id;
SELECT * FROM tenancy.verify_audit_log();
-- the chain head names the newest event
SELECT h.last_id = (SELECT max(id) FROM tenancy.audit_log) AND h.last_hash = (SELECT hash FROM tenancy.audit_log ORDER BY id DESC LIMIT 1) AS head_ok
  FROM tenancy.audit_chain_head h;

-- the tenant context of the transaction is recorded
SELECT id AS ctx_id FROM tenancy.create_tenant('Ctx Co', 'ctx-co') \gset
BEGIN;
SELECT tenancy.set_tenant(pg_temp.tid('ctx-co'));
SELECT display_name FROM tenancy.update_tenant(pg_temp.tid('ctx-co'), '{"display_name": "Context"}');
COMMIT;
SELECT action, context_tenant_id = pg_temp.tid('ctx-co') AS context_recorded FROM tenancy.audit_log ORDER BY id DESC LIMIT 1;

-- tenancy._audit: admins log anything; an app role only about its own context tenant
SET ROLE regress_audit_admin;
SELECT tenancy._audit('custom_event', NULL, NULL, '{"k": "v"}');
RESET ROLE;
SET ROLE regress_audit_app;
BEGIN;
SELECT tenancy.set_tenant(:'ctx_id');
SELECT tenancy._audit('app_event', tenancy.current_tenant_id(), NULL, '{"n": 1}');
COMMIT;
RESET ROLE;
SELECT action, current_user_name, context_tenant_id = :'ctx_id' AS in_context, after
  FROM tenancy.audit_log WHERE action IN ('custom_event', 'app_event') ORDER BY id;
-- an app role may not use an action the extension writes itself (42501), in any case or spacing, even about its
-- own tenant; an admin may, and names of the app's own pass
SELECT max(id) AS reserved_start FROM tenancy.audit_log \gset
SET ROLE regress_audit_app;
BEGIN;
SELECT tenancy.set_tenant(:'ctx_id');
\set VERBOSITY default
SELECT tenancy._audit('tenant_exported', tenancy.current_tenant_id(), NULL, NULL);
\set VERBOSITY sqlstate
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ctx_id');
SELECT tenancy._audit(' Cross_Tenant_Read ', tenancy.current_tenant_id(), NULL, NULL);
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ctx_id');
SELECT tenancy._audit('quota_exceeded', tenancy.current_tenant_id(), NULL, '{"metric": "api_calls"}');
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ctx_id');
SELECT tenancy._audit(E'tenant_created\n', tenancy.current_tenant_id(), NULL, NULL);
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ctx_id');
SELECT tenancy._audit('app.tenant_exported', tenancy.current_tenant_id(), NULL, NULL);
COMMIT;
\set VERBOSITY terse
RESET ROLE;
SET ROLE regress_audit_admin;
SELECT tenancy._audit('tenant_updated', :'ctx_id', NULL, '{"by": "admin"}');
RESET ROLE;
SELECT action, current_user_name FROM tenancy.audit_log WHERE id > :reserved_start ORDER BY id;
SELECT * FROM tenancy.verify_audit_log();

-- events are appended when their transaction commits: a rolled-back savepoint or exception block leaves none,
-- a prepared transaction appends at PREPARE and its events count once COMMIT PREPARED is done
BEGIN;
SAVEPOINT s;
SELECT tenancy._audit('discarded_event', NULL, NULL, NULL);
ROLLBACK TO SAVEPOINT s;
SELECT tenancy._audit('kept_event', NULL, NULL, '{"n": 1}');
SELECT count(*) AS visible_before_commit FROM tenancy.audit_log WHERE action IN ('kept_event', 'discarded_event');
COMMIT;
DO $$
BEGIN
  BEGIN
    PERFORM tenancy._audit('discarded_event', NULL, NULL, NULL);
    RAISE division_by_zero;
  EXCEPTION WHEN division_by_zero THEN
    PERFORM tenancy._audit('kept_event', NULL, NULL, '{"n": 2}');
  END;
END
$$;
BEGIN;
SELECT tenancy._audit('prepared_event', NULL, NULL, NULL);
PREPARE TRANSACTION 'regress_audit_2pc';
COMMIT PREPARED 'regress_audit_2pc';
SELECT action, after FROM tenancy.audit_log WHERE action IN ('kept_event', 'discarded_event', 'prepared_event') ORDER BY id;
SELECT * FROM tenancy.verify_audit_log();

-- append-only: nobody may change or remove events, superusers included (42501)
\set VERBOSITY sqlstate
UPDATE tenancy.audit_log SET action = 'nothing' WHERE id = :start_id + 1;
DELETE FROM tenancy.audit_log WHERE id = :start_id + 1;
TRUNCATE tenancy.audit_log;
UPDATE tenancy.audit_chain_head SET last_id = 0;
DELETE FROM tenancy.audit_chain_head;
TRUNCATE tenancy.audit_chain_head;
SET session_replication_role = replica;
DELETE FROM tenancy.audit_log WHERE id = :start_id + 1;
RESET session_replication_role;
SET ROLE regress_audit_admin;
INSERT INTO tenancy.audit_log (occurred_at, session_user_name, current_user_name, action, prev_hash, hash)
  VALUES (now(), 'x', 'x', 'forged', '\x00', '\x00');
UPDATE tenancy.audit_log SET action = 'nothing';
DELETE FROM tenancy.audit_log;
TRUNCATE tenancy.audit_log;
UPDATE tenancy.audit_chain_head SET last_id = 0;
SELECT nextval('tenancy.audit_log_id_seq');
RESET ROLE;
SET ROLE regress_audit_app;
SELECT count(*) FROM tenancy.audit_log;
SELECT tenancy.verify_audit_log();
SELECT tenancy._audit('forged', :'ctx_id', NULL, NULL);
BEGIN;
SELECT tenancy.set_tenant(:'ctx_id');
SELECT tenancy._audit('forged', :'audit_id', NULL, NULL);
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ctx_id');
SELECT tenancy._audit('forged', NULL, NULL, NULL);
ROLLBACK;
RESET ROLE;
SELECT tenancy._audit(NULL, NULL, NULL, NULL);
SELECT tenancy._audit('', NULL, NULL, NULL);
SELECT tenancy._audit(repeat('x', 101), NULL, NULL, NULL);
\set VERBOSITY terse

-- tampering by someone who switches the guard off is found (each case rolled back)
SELECT min(id) AS first_id, max(id) AS last_id FROM tenancy.audit_log WHERE id > :start_id \gset
BEGIN;
ALTER TABLE tenancy.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE tenancy.audit_log SET after = after || '{"status": "cancelled"}' WHERE id = :first_id;
SELECT id = :first_id AS at_edited, problem FROM tenancy.verify_audit_log();
ROLLBACK;
-- an edit with a correctly recomputed hash breaks the link of the next event
BEGIN;
ALTER TABLE tenancy.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE tenancy.audit_log SET current_user_name = 'somebody_else',
       hash = sha256(prev_hash || convert_to(
         E'tenancy-audit-v1\n'
         || 'id=' || length(id::text) || ':' || id || E'\n'
         || 'occurred_at=' || length(x.us::text) || ':' || x.us || E'\n'
         || 'session_user=' || length(session_user_name) || ':' || session_user_name || E'\n'
         || 'current_user=13:somebody_else' || E'\n'
         || 'context_tenant=' || coalesce(length(context_tenant_id::text) || ':' || context_tenant_id, '~') || E'\n'
         || 'tenant_id=' || coalesce(length(tenant_id::text) || ':' || tenant_id, '~') || E'\n'
         || 'action=' || length(action) || ':' || action || E'\n'
         || 'before=' || coalesce(octet_length(before::text) || ':' || before::text, '~') || E'\n'
         || 'after=' || coalesce(octet_length(after::text) || ':' || after::text, '~') || E'\n', 'UTF8'))
  FROM (SELECT (extract(epoch FROM occurred_at - '2000-01-01 00:00:00+00') * 1000000)::bigint AS us
          FROM tenancy.audit_log WHERE id = :first_id) x
 WHERE id = :first_id;
SELECT id = :first_id + 1 AS at_next, problem FROM tenancy.verify_audit_log();
ROLLBACK;
-- a removed event in the middle
BEGIN;
ALTER TABLE tenancy.audit_log DISABLE TRIGGER audit_log_append_only;
DELETE FROM tenancy.audit_log WHERE id = :first_id + 2;
SELECT id = :first_id + 3 AS at_next, problem FROM tenancy.verify_audit_log();
ROLLBACK;
-- removed events at the end: the chain head still names the last one
BEGIN;
ALTER TABLE tenancy.audit_log DISABLE TRIGGER audit_log_append_only;
DELETE FROM tenancy.audit_log WHERE id >= :last_id - 1;
SELECT id = :last_id AS at_head, problem FROM tenancy.verify_audit_log();
ROLLBACK;
-- an event appended around the extension
BEGIN;
INSERT INTO tenancy.audit_log (occurred_at, session_user_name, current_user_name, action, prev_hash, hash)
  SELECT now(), 'x', 'x', 'forged', hash, hash FROM tenancy.audit_log ORDER BY id DESC LIMIT 1;
SELECT problem FROM tenancy.verify_audit_log();
ROLLBACK;
-- a removed chain head
BEGIN;
ALTER TABLE tenancy.audit_chain_head DISABLE TRIGGER audit_chain_head_guard;
DELETE FROM tenancy.audit_chain_head;
SELECT problem FROM tenancy.verify_audit_log();
ROLLBACK;
-- a chain head naming the right event with another hash
BEGIN;
ALTER TABLE tenancy.audit_chain_head DISABLE TRIGGER audit_chain_head_guard;
UPDATE tenancy.audit_chain_head SET last_hash = sha256('forged');
SELECT id = :last_id AS at_head, problem FROM tenancy.verify_audit_log();
ROLLBACK;
-- an event whose hash is not a SHA-256 digest: malformed, and the next event's link is broken
BEGIN;
ALTER TABLE tenancy.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE tenancy.audit_log SET hash = '\x00' WHERE id = :first_id;
SELECT id - :first_id AS offset, problem FROM tenancy.verify_audit_log();
ROLLBACK;
-- a malformed chain head is reported, and no event can be linked to it: the commit fails (XX001), nothing is kept
SELECT count(*) AS events_before FROM tenancy.audit_log \gset
BEGIN;
ALTER TABLE tenancy.audit_chain_head DISABLE TRIGGER audit_chain_head_guard;
UPDATE tenancy.audit_chain_head SET last_hash = '\x00';
SELECT id = :last_id AS at_head, problem FROM tenancy.verify_audit_log();
SELECT tenancy._audit('linked_to_corrupt_head', NULL, NULL, NULL);
\set VERBOSITY sqlstate
COMMIT;
\set VERBOSITY terse
SELECT count(*) = :events_before AS nothing_appended FROM tenancy.audit_log;
-- after the rollbacks the log verifies again
SELECT * FROM tenancy.verify_audit_log();

-- no registry function is SECURITY DEFINER (that would record the owner instead of the caller)
SELECT count(*) FROM pg_proc WHERE pronamespace = 'tenancy'::regnamespace AND prosecdef
   AND proname IN ('create_tenant', 'get_tenant', 'get_tenant_by_slug', 'update_tenant', 'delete_tenant', 'tenant_json',
                   'tenant_descendants', 'tenant_ancestors', 'add_user', 'list_users', 'set_user_role', 'remove_user',
                   '_audit', 'verify_audit_log');
DROP OWNED BY regress_audit_admin, regress_audit_app;
DROP ROLE regress_audit_admin, regress_audit_app;
