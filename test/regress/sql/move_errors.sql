-- move_errors: the refusals of the live move protocol (sql/src/88_move.sql) that one cluster can reach, and the
-- rolled-back and aborted ends of a move; the two-cluster move itself is test/integration/residency_move.sh
\set VERBOSITY sqlstate
SET client_min_messages = warning;
-- sqlstate and message (tenant ids masked) of a statement that must fail
CREATE FUNCTION mv_error(stmt text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  st text; msg text;
BEGIN
  EXECUTE stmt;
  RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT;
  RETURN st || ' | ' || regexp_replace(msg, '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}', '<id>', 'g');
END
$$;
CREATE TABLE mv_items (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, n integer);
CREATE TABLE mv_plain (tenant_id uuid NOT NULL);
SELECT tenancy.enable_isolation('mv_items');
SELECT (tenancy.create_tenant('Mv Parent', 'mv-parent', 'enterprise', 'eu')).id AS parent \gset
SELECT (tenancy.create_tenant('Mv Child', 'mv-child', 'team', 'eu', :'parent')).id AS child \gset
-- a tenant token of the child: tenancyd's authorize_token meters api_calls, which the guard triggers do not see
SELECT count(*) AS token FROM tenancy.issue_token(:'child', 'admin', sha256('mv_child_token'), 'mv');

-- source: unknown tenant, child tenants, a server without logical decoding, steps without a prepared move
SELECT mv_error($$SELECT tenancy.move_source_prepare('00000000-0000-0000-0000-00000000a001', 'us')$$);
SELECT mv_error(format('SELECT tenancy.move_source_prepare(%L, %L)', :'parent', 'us'));
SELECT mv_error(format('SELECT tenancy.move_source_prepare(%L, %L)', :'child', 'us'));
SELECT mv_error(format('SELECT tenancy.move_source_create_slot(%L)', :'child'));
SELECT mv_error(format('SELECT tenancy.move_source_freeze(%L)', :'child'));
SELECT mv_error(format('SELECT tenancy.move_source_handover(%L, %L)', :'child', '\x00'));
SELECT mv_error(format('SELECT tenancy.move_source_finish(%L, %L)', :'child', 'done'));
SELECT mv_error(format('SELECT tenancy.move_source_finish(%L, NULL)', :'child'));
SELECT mv_error(format('SELECT tenancy.move_source_finish(%L, %L)', :'child', 'rolled_back'));
SELECT tenancy.move_source_progress(:'child') IS NULL AS no_progress;

-- a source move row as prepare leaves it (the publication and slot need wal_level = logical): out-of-order steps
INSERT INTO tenancy.tenant_moves (tenant_id, side, source_region, target_region, phase, publication_name, slot_name)
VALUES (:'child', 'source', 'eu', 'us', 'prepare', tenancy._move_name(:'child'), tenancy._move_name(:'child'));
SELECT tenancy._move_set_guards(true);
-- nobody holds its orchestrator lock (inserted, not prepared): an orphan, which this session may take over
SELECT tenant_id = :'child' AS orphan, target_region, phase, frozen FROM tenancy.move_orphans();
SELECT tenancy.move_adopt(:'child') AS adopted;
SELECT count(*) AS orphans_once_adopted FROM tenancy.move_orphans();
SELECT tenancy.move_adopt(:'parent') AS adopted_without_a_move, tenancy._move_lock_holders(:'parent', false) AS held;
SELECT mv_error(format('SELECT tenancy.move_source_prepare(%L, %L)', :'child', 'us'));
SELECT mv_error(format('SELECT tenancy.move_source_freeze(%L)', :'child'));
SELECT mv_error(format('SELECT tenancy.move_source_handover(%L, %L)', :'child', '\x00'));
SELECT mv_error(format('SELECT tenancy.move_source_finish(%L, %L)', :'child', 'switched'));
SELECT mv_error(format('SELECT tenancy.move_target_transport_key(%L)', :'child'));
SELECT tenancy.move_source_progress(:'child') - 'started_at' AS progress;
-- not frozen: the guard lets the tenant's writes through
INSERT INTO mv_items (tenant_id, n) VALUES (:'child', 1);
SELECT tenancy.move_guard(:'child');
SELECT permitted, within_quota FROM tenancy.authorize_token(sha256('mv_child_token'), :'child', 'usage.read');
SELECT (tenancy.usage(:'child') -> 'current_usage' ->> 'api_calls_this_month')::bigint AS calls_before \gset
-- frozen: every guarded write of the tenant is refused, another tenant's are not
UPDATE tenancy.tenant_moves SET frozen = true, phase = 'freezing' WHERE tenant_id = :'child';
-- frozen: a tenant-token request is refused (tenancyd answers 503) and nothing is metered
SELECT mv_error(format('SELECT * FROM tenancy.authorize_token(sha256(%L), %L, %L)', 'mv_child_token', :'child',
                       'usage.read'));
SELECT (tenancy.usage(:'child') -> 'current_usage' ->> 'api_calls_this_month')::bigint - :calls_before AS metered;
SELECT mv_error(format('INSERT INTO mv_items (tenant_id, n) VALUES (%L, 2)', :'child'));
SELECT mv_error('UPDATE mv_items SET n = 3');
SELECT mv_error('DELETE FROM mv_items');
SELECT mv_error(format('SELECT tenancy.add_user(%L, %L)', :'child', 'late@child.io'));
SELECT mv_error(format('SELECT tenancy.move_guard(%L)', :'child'));
INSERT INTO mv_items (tenant_id, n) VALUES (:'parent', 4) RETURNING n;
-- an application role learns about (and locks the move row of) only its context tenant: none without a context
-- (TN004), another tenant's refused before anything is read (42501, not 55006 naming the target region)
CREATE ROLE regress_mv_app;
GRANT tenancy_app TO regress_mv_app;
SET ROLE regress_mv_app;
SELECT mv_error(format('SELECT tenancy.move_guard(%L)', :'child'));
BEGIN;
SELECT tenancy.set_tenant(:'parent');
SELECT mv_error(format('SELECT tenancy.move_guard(%L)', :'child'));
SELECT tenancy.move_guard(:'parent') AS own_tenant_not_moving;
SELECT tenancy.set_tenant(:'child');
SELECT mv_error(format('SELECT tenancy.move_guard(%L)', :'child'));
COMMIT;
RESET ROLE;
DROP ROLE regress_mv_app;
-- rolled back: the move row goes, the guards with it, writes are allowed again
SELECT tenancy.move_source_finish(:'child', 'rolled_back');
SELECT tenancy._move_lock_holders(:'child', false) AS lock_held_after_finish;
SELECT count(*) AS moves, (SELECT count(*) FROM pg_trigger WHERE tgname = 'tenancy_move_guard') AS guards
  FROM tenancy.tenant_moves;
INSERT INTO mv_items (tenant_id, n) VALUES (:'child', 5) RETURNING n;

-- target: refused tenant rows and tables
SELECT mv_error($$SELECT tenancy.move_target_prepare('{"slug": "x"}', '[]', 'us')$$);
SET tenancy.region = 'eu';
SELECT mv_error($$SELECT tenancy.move_target_prepare('{"id": "00000000-0000-0000-0000-00000000a002", "slug": "mv-in"}',
                                                     '[]', 'us')$$);
RESET tenancy.region;
SELECT mv_error(format('SELECT tenancy.move_target_prepare(%L, %L, %L)',
                       jsonb_build_object('id', :'parent', 'slug', 'mv-parent'), '[]', 'us'));
SELECT mv_error($$SELECT tenancy.move_target_prepare('{"id": "00000000-0000-0000-0000-00000000a002", "slug": "mv-in"}',
                                                     '[{"table": "public.mv_missing", "kind": "isolated"}]', 'us')$$);
SELECT mv_error($$SELECT tenancy.move_target_prepare('{"id": "00000000-0000-0000-0000-00000000a002", "slug": "mv-in"}',
                 '[{"table": "public.mv_plain", "kind": "isolated", "tenant_column": "tenant_id"}]', 'us')$$);
SELECT mv_error($$SELECT tenancy.move_target_prepare('{"id": "00000000-0000-0000-0000-00000000a002", "slug": "mv-in"}',
                 '[{"table": "public.mv_items", "kind": "isolated", "tenant_column": "n"}]', 'us')$$);
SELECT count(*) AS nothing_left FROM tenancy.tenants WHERE id = '00000000-0000-0000-0000-00000000a002';
-- steps of a move that does not exist here
SELECT mv_error($$SELECT tenancy.move_target_subscribe('00000000-0000-0000-0000-00000000a002', 'host=x')$$);
SELECT mv_error($$SELECT tenancy.move_target_transport_key('00000000-0000-0000-0000-00000000a002')$$);
SELECT mv_error($$SELECT tenancy.move_target_switch('00000000-0000-0000-0000-00000000a002', 1, '{}', '00')$$);
SELECT tenancy.move_target_progress('00000000-0000-0000-0000-00000000a002') IS NULL AS no_progress,
       tenancy.move_target_caught_up('00000000-0000-0000-0000-00000000a002', 0) AS caught_up,
       tenancy.move_target_abort('00000000-0000-0000-0000-00000000a002') AS aborted;

-- a move into this cluster: the tenant row is created frozen, applications cannot write it
-- (the source's row of another tenant, with the parent set to one that is not here: it becomes a root)
SELECT tenancy.move_target_prepare(
  to_jsonb(t) || '{"id": "00000000-0000-0000-0000-00000000a002", "slug": "mv-in",
                   "parent_tenant_id": "00000000-0000-0000-0000-00000000a0ff"}',
  '[{"table": "public.mv_items", "kind": "isolated", "tenant_column": "tenant_id"}]', 'us')
  FROM tenancy.tenants t WHERE t.id = :'parent';
SELECT slug, data_residency, parent_tenant_id FROM tenancy.tenants WHERE id = '00000000-0000-0000-0000-00000000a002';
SELECT mv_error($$INSERT INTO mv_items (tenant_id, n) VALUES ('00000000-0000-0000-0000-00000000a002', 6)$$);
SELECT mv_error($$SELECT tenancy.move_target_prepare('{"id": "00000000-0000-0000-0000-00000000a002", "slug": "mv-in"}',
                                                     '[]', 'us')$$);
SELECT mv_error($$SELECT tenancy.move_target_finish('00000000-0000-0000-0000-00000000a002')$$);
SELECT mv_error($$SELECT tenancy.move_target_switch('00000000-0000-0000-0000-00000000a002', 1, '{"keys": []}', '00')$$);
SELECT tenancy.move_target_progress('00000000-0000-0000-0000-00000000a002') - 'received_lsn' - 'tables' AS progress;
-- the key hand-over primitives refuse malformed input
SELECT mv_error($$SELECT tenancy._move_transport_key('\x00')$$);
SELECT length(tenancy._move_transport_key(uuid_send(gen_random_uuid()))) AS public_key_bytes;
SELECT mv_error(format('SELECT tenancy._move_seal_key(%L, 1, %L, %L)', :'parent',
                       (SELECT wrapped_key FROM tenancy.tenant_keys WHERE tenant_id = :'parent'), '\x00'));
SELECT mv_error(format('SELECT tenancy._move_open_key(%L, 1, %L, %L)', :'parent', '\x01', '\x00'));
-- the subscription applies rows as its owner, a superuser: code of another role that it would run on the move's
-- tables (a trigger that fires in replica mode, a default) is refused first; a trigger for origin mode only is not
CREATE ROLE regress_mv_tblowner;
CREATE FUNCTION mv_sneaky() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE FUNCTION mv_sneaky_default() RETURNS integer LANGUAGE sql AS 'SELECT 1';
ALTER FUNCTION mv_sneaky() OWNER TO regress_mv_tblowner;
ALTER FUNCTION mv_sneaky_default() OWNER TO regress_mv_tblowner;
CREATE TRIGGER mv_sneaky BEFORE INSERT ON mv_items FOR EACH ROW EXECUTE FUNCTION mv_sneaky();
SELECT tenancy._move_apply_hazards() IS NULL AS origin_trigger_no_hazard;
ALTER TABLE mv_items ENABLE ALWAYS TRIGGER mv_sneaky;
ALTER TABLE mv_items ALTER COLUMN n SET DEFAULT mv_sneaky_default();
SELECT tenancy._move_apply_hazards() AS hazards;
SELECT mv_error($$SELECT tenancy.move_target_subscribe('00000000-0000-0000-0000-00000000a002')$$);
DROP TRIGGER mv_sneaky ON mv_items;
ALTER TABLE mv_items ALTER COLUMN n DROP DEFAULT;
DROP FUNCTION mv_sneaky(), mv_sneaky_default();
DROP ROLE regress_mv_tblowner;
SELECT tenancy._move_apply_hazards() IS NULL AS no_hazards;
-- the subscription's connection comes only from the region registry, which only a superuser reads or writes: none
-- registered for the source region (55000); a connection string that is not the registered one (42501); the
-- registered one is used (this one cannot connect: 08006, nothing created)
SELECT mv_error($$SELECT tenancy.move_target_subscribe('00000000-0000-0000-0000-00000000a002')$$);
SELECT mv_error($$SELECT tenancy.move_target_subscribe('00000000-0000-0000-0000-00000000a002', 'host=x')$$);
CREATE ROLE regress_mv_admin;
GRANT tenancy_admin TO regress_mv_admin;
SET ROLE regress_mv_admin;
SELECT mv_error($$INSERT INTO tenancy.region_connections (region, conninfo) VALUES ('eu', 'host=evil.example')$$);
SELECT mv_error($$SELECT count(*) FROM tenancy.region_connections$$);
RESET ROLE;
DROP ROLE regress_mv_admin;
INSERT INTO tenancy.region_connections (region, conninfo)
VALUES ('eu', 'host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2');
SELECT mv_error($$SELECT tenancy.move_target_subscribe('00000000-0000-0000-0000-00000000a002', 'host=x')$$);
SELECT split_part(mv_error($$SELECT tenancy.move_target_subscribe('00000000-0000-0000-0000-00000000a002',
                                                                  'host=127.0.0.1 port=1 dbname=nowhere connect_timeout=2')$$),
                  ' | ', 1) AS registered_one_used;
SELECT split_part(mv_error($$SELECT tenancy.move_target_subscribe('00000000-0000-0000-0000-00000000a002')$$), ' | ', 1)
       AS registered_one_used;
SELECT count(*) AS subscriptions FROM pg_subscription;
DELETE FROM tenancy.region_connections;
-- a subscription in another phase cannot be made
UPDATE tenancy.tenant_moves SET phase = 'catching_up' WHERE tenant_id = '00000000-0000-0000-0000-00000000a002';
SELECT mv_error($$SELECT tenancy.move_target_subscribe('00000000-0000-0000-0000-00000000a002')$$);
-- abort removes the tenant, the move row and the guards; a tenant living here is never touched
SELECT tenancy.move_target_abort('00000000-0000-0000-0000-00000000a002') AS aborted;
SELECT (SELECT count(*) FROM tenancy.tenants WHERE id = '00000000-0000-0000-0000-00000000a002') AS tenants,
       (SELECT count(*) FROM tenancy.tenant_moves) AS moves,
       (SELECT count(*) FROM pg_trigger WHERE tgname = 'tenancy_move_guard') AS guards;
SELECT tenancy.move_target_abort(:'parent') AS aborted, tenancy.move_target_finish(:'parent') AS dropped;
SELECT count(*) AS parent_here FROM tenancy.tenants WHERE id = :'parent';

-- who runs what: the registry stays the superuser's; the move functions that need a superuser (88_move.sql says
-- why) are the superuser's, the others tenancy_owner's
SELECT r.rolsuper AS registry_owned_by_superuser FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
 WHERE c.oid = 'tenancy.region_connections'::regclass;
SELECT p.oid::regprocedure AS function, r.rolsuper AS runs_as_superuser, r.rolname = 'tenancy_owner' AS runs_as_owner
  FROM pg_proc p JOIN pg_roles r ON r.oid = p.proowner
 WHERE p.pronamespace = 'tenancy'::regnamespace AND p.prosecdef AND p.proname ~ '^_?move'
 ORDER BY p.proname, 1::text;

-- the audit trail of the two ends
SELECT action, after ->> 'side' AS side FROM tenancy.audit_log
 WHERE action LIKE 'tenant_move%' AND tenant_id IN (:'child', '00000000-0000-0000-0000-00000000a002') ORDER BY id;

SELECT tenancy.delete_tenant(:'child', erase => true);
SELECT tenancy.delete_tenant(:'parent', erase => true);
SELECT tenancy.disable_isolation('mv_items');
DROP TABLE mv_items, mv_plain;
DROP FUNCTION mv_error(text);
