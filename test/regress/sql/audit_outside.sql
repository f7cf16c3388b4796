-- audit_outside: events that outlive the caller's transaction (reads across tenants, exports, consume_or_raise's
-- refusal), written by the audit writer; the outside anchor of the chain head and verify_audit_log(anchor)
\set VERBOSITY terse
CREATE ROLE regress_ao_admin NOLOGIN IN ROLE tenancy_admin;
CREATE ROLE regress_ao_app NOLOGIN IN ROLE tenancy_app;
GRANT CREATE ON SCHEMA public TO regress_ao_admin;
SELECT id AS t1 FROM tenancy.create_tenant('Outside One', 'ao-one', 'enterprise') \gset
SELECT id AS t2 FROM tenancy.create_tenant('Outside Two', 'ao-two', 'developer') \gset
CREATE TABLE public.ao_items (id serial PRIMARY KEY, tenant_id uuid NOT NULL, v text);
SELECT tenancy.enable_isolation('public.ao_items');
GRANT SELECT, INSERT ON public.ao_items TO regress_ao_admin, regress_ao_app;
GRANT USAGE ON SEQUENCE public.ao_items_id_seq TO regress_ao_app;
SET ROLE regress_ao_app;
BEGIN;
SELECT tenancy.set_tenant(:'t1');
INSERT INTO public.ao_items (v) VALUES ('one');
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'t2');
INSERT INTO public.ao_items (v) VALUES ('two');
COMMIT;
RESET ROLE;
SELECT coalesce(max(id), 0) AS start_id FROM tenancy.audit_log \gset

-- a read across tenants, then ROLLBACK: the event was committed before begin_cross_tenant returned
SET ROLE regress_ao_admin;
BEGIN;
SELECT tenancy.begin_cross_tenant('rolled back read');
SELECT count(*) AS rows_read FROM public.ao_items;
ROLLBACK;
-- inside a rolled-back savepoint, and in a READ ONLY transaction (the writer's transaction writes, not the caller's)
BEGIN;
SAVEPOINT s;
SELECT tenancy.begin_cross_tenant('savepoint read');
ROLLBACK TO SAVEPOINT s;
ROLLBACK;
BEGIN READ ONLY;
SELECT tenancy.begin_cross_tenant('read only read');
SELECT count(*) AS rows_read FROM public.ao_items;
COMMIT;
RESET ROLE;
SELECT action, after ->> 'reason' AS reason, current_user_name, session_user_name = session_user AS session_ok,
       context_tenant_id IS NULL AS no_context
  FROM tenancy.audit_log WHERE id > :start_id AND action = 'cross_tenant_read' ORDER BY id;

-- exports, then ROLLBACK: the document, the manifest and the COPY-form rows each left their event
SET ROLE regress_ao_admin;
BEGIN;
SELECT tenancy.export_tenant(:'t1') -> 'manifest' ->> 'tenant_id' = :'t1' AS exported;
SELECT tenancy.export_manifest(:'t1') IS NOT NULL AS manifest;
SELECT count(*) AS rows FROM tenancy.export_table(:'t1', 'public.ao_items') AS t(id text, tenant_id text, v text);
ROLLBACK;
RESET ROLE;
SELECT action, tenant_id = :'t1' AS about_t1, current_user_name
  FROM tenancy.audit_log WHERE id > :start_id AND action LIKE 'tenant_%exported' ORDER BY id;

-- a refused consume_or_raise (TN003) is audited although its error rolls the transaction back; the event is
-- queued (asynchronous), so wait for it with a bound
SET tenancy.quota_audit_interval = 0;
SET ROLE regress_ao_app;
BEGIN;
SELECT tenancy.set_tenant(:'t2');
\set VERBOSITY sqlstate
SELECT tenancy.consume_or_raise(:'t2', 'users', 1000000);
\set VERBOSITY terse
ROLLBACK;
RESET ROLE;
DO $$
BEGIN
  FOR i IN 1 .. 200 LOOP
    EXIT WHEN EXISTS (SELECT FROM tenancy.audit_log WHERE action = 'quota_exceeded' AND after ->> 'requested' = '1000000');
    PERFORM pg_sleep(0.05);
  END LOOP;
END
$$;
SELECT action, tenant_id = :'t2' AS about_t2, current_user_name, context_tenant_id = :'t2' AS in_context,
       after ->> 'metric' AS metric, after ->> 'requested' AS requested
  FROM tenancy.audit_log WHERE id > :start_id AND action = 'quota_exceeded' ORDER BY id;
RESET tenancy.quota_audit_interval;

-- the chain holds the writer's events between the ordinary ones
SELECT * FROM tenancy.verify_audit_log();

-- fail closed: without tenancy_admin no event and no read; an event too large for the queue is refused (53400)
-- and leaves the read disabled
SET ROLE regress_ao_app;
\set VERBOSITY sqlstate
SELECT tenancy.begin_cross_tenant('not an admin');
RESET ROLE;
SET ROLE regress_ao_admin;
BEGIN;
SAVEPOINT s;
SELECT tenancy.begin_cross_tenant(repeat('x', 2 * 1024 * 1024));
ROLLBACK TO SAVEPOINT s;
SELECT count(*) AS no_cross_tenant_read FROM public.ao_items;
ROLLBACK;
\set VERBOSITY terse
RESET ROLE;
SELECT count(*) AS huge_events FROM tenancy.audit_log WHERE id > :start_id AND length(after ->> 'reason') > 1000000;

-- the outside anchor: audit_anchor() names the head (and logs it); verify_audit_log(anchor) is empty while the
-- chain holds it
SELECT seq AS anchor_seq, encode(hash, 'hex') AS anchor_hex FROM tenancy.audit_anchor() \gset
SELECT :anchor_seq = (SELECT last_id FROM tenancy.audit_chain_head) AS anchor_is_head;
SELECT * FROM tenancy.verify_audit_log(:anchor_seq, decode(:'anchor_hex', 'hex'));
-- a superuser cuts the newest events and rewinds the head (guards switched off): the chain alone still verifies,
-- the anchor does not
BEGIN;
ALTER TABLE tenancy.audit_log DISABLE TRIGGER audit_log_append_only;
ALTER TABLE tenancy.audit_chain_head DISABLE TRIGGER audit_chain_head_guard;
DELETE FROM tenancy.audit_log WHERE id > :anchor_seq - 2;
UPDATE tenancy.audit_chain_head h SET last_id = l.id, last_hash = l.hash
  FROM (SELECT id, hash FROM tenancy.audit_log ORDER BY id DESC LIMIT 1) l;
SELECT count(*) AS problems_without_anchor FROM tenancy.verify_audit_log();
SELECT id = :anchor_seq AS at_anchor, problem FROM tenancy.verify_audit_log(:anchor_seq, decode(:'anchor_hex', 'hex'));
ROLLBACK;
-- the anchored event rewritten (another hash) is reported too
BEGIN;
ALTER TABLE tenancy.audit_log DISABLE TRIGGER audit_log_append_only;
UPDATE tenancy.audit_log SET hash = sha256(hash) WHERE id = :anchor_seq;
SELECT id = :anchor_seq AS at_anchor, problem FROM tenancy.verify_audit_log(:anchor_seq, decode(:'anchor_hex', 'hex'))
 WHERE problem LIKE 'the anchored%';
ROLLBACK;
-- an anchor the log never held (a forged or foreign one) is reported; older anchors keep verifying
SELECT id = :anchor_seq AS at_anchor, problem
  FROM tenancy.verify_audit_log(:anchor_seq, sha256('not the hash'));
SELECT problem FROM tenancy.verify_audit_log(:anchor_seq + 1000000, decode(:'anchor_hex', 'hex'));
SELECT count(*) AS older_anchor_problems
  FROM tenancy.audit_log l, tenancy.verify_audit_log(l.id, l.hash) v WHERE l.id = :start_id + 1;
-- bad anchors (TN005); the zero-argument form is unchanged; app roles may call neither form nor audit_anchor
\set VERBOSITY sqlstate
SELECT * FROM tenancy.verify_audit_log(NULL, NULL);
SELECT * FROM tenancy.verify_audit_log(1, '\x00');
SET ROLE regress_ao_app;
SELECT * FROM tenancy.verify_audit_log(1, sha256(''));
SELECT * FROM tenancy.audit_anchor();
SELECT * FROM tenancy.verify_audit_log();
RESET ROLE;
\set VERBOSITY terse
SELECT * FROM tenancy.verify_audit_log();

DROP TABLE public.ao_items;
DROP OWNED BY regress_ao_admin, regress_ao_app;
DROP ROLE regress_ao_admin, regress_ao_app;
