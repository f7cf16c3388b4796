-- sql/src/88_move.sql
-- Live tenant move between region clusters with logical replication: publication, slot, subscription, write freeze.

-- The protocol (docs/residency.md section 4). S = source cluster, T = target cluster, run by an orchestrator
-- (tenancyd, or psql) holding an admin connection to each:
--   S move_source_prepare    publication of the tenant's rows, guards, move record       phase prepare
--   S move_source_create_slot  logical slot (its own transaction: no writes before it)
--   T move_target_prepare    tenant row (target residency), guards refusing app writes   phase copying
--   T move_target_subscribe  subscription on S's publication and slot (initial copy, then streaming)
--   T move_target_progress / S move_source_progress until every table is ready          phase catching_up
--   S move_source_freeze     writes refused (55006); returns the marker epoch            phase freezing
--   T move_target_caught_up until the marker epoch arrived: everything S committed before is applied
--   T move_target_transport_key, S move_source_handover (counters, sequences, audit, sealed keys)
--   T move_target_switch     keys re-wrapped, counters, sequences, audit; subscription disabled; tenant live
--   T move_target_finish     subscription dropped (it was only disabled inside the freeze)
--   S move_source_finish(switched)  publication and slot dropped, rows erased, keys destroyed     phase done
-- A failure before the switch: S move_source_finish(rolled_back) and T move_target_abort (retried until T answers).
--
-- Who runs what (issue #15, least privilege). The SECURITY DEFINER functions below that truly need a superuser in
-- PostgreSQL 15 (the superuser list of sql/src/98_ownership.sql; everything else runs as tenancy_owner):
--   move_target_subscribe (both forms)  CREATE SUBSCRIPTION (superuser only), reads tenancy.region_connections
--                          (superuser only, so a tenancy_owner slip cannot point a move at another server)
--   move_target_switch     ALTER SUBSCRIPTION (only its owner, a superuser in PG15), setval on application sequences
--   move_target_finish, move_target_abort  DROP SUBSCRIPTION (its owner), DROP TRIGGER on application tables; abort
--                          erases the tenant's rows in application tables (delete_tenant erase)
--   move_target_prepare    CREATE TRIGGER (the guards) on application tables (their owner)
--   move_target_progress   counts the tenant's rows in application tables (privileges, FORCEd row security)
--   move_source_prepare    CREATE PUBLICATION FOR TABLE (ownership of every published table), ALTER TABLE REPLICA
--                          IDENTITY and CREATE TRIGGER on application tables
--   move_source_create_slot  pg_create_logical_replication_slot (REPLICATION)
--   move_source_finish     DROP PUBLICATION (its owner), pg_drop_replication_slot (REPLICATION), pg_terminate_backend
--                          of walsenders, DROP TRIGGER / REPLICA IDENTITY on application tables, the tenant's erase
--   move_source_handover   pg_sequence_last_value of application sequences (SELECT on them)
-- Only schema tenancy's own tables and catalog views readable by everyone, so tenancy_owner is enough: move_guard (C,
-- switches to the owner after checking the caller), _move_guard (the guard trigger), move_source_freeze,
-- move_source_progress (pg_replication_slots), move_target_caught_up and move_target_transport_key (public columns
-- of pg_subscription, pg_subscription_rel, the master key file read by the backend), move_orphans, move_adopt
-- (pg_locks, advisory locks).

-- One row per tenant being moved, on each side. Kept apart from tenancy.tenants (no foreign key): the source's row
-- outlives nothing (finish deletes it), the target's exists before the subscription brings the tenant's rows.
CREATE TABLE tenancy.tenant_moves (
  tenant_id uuid PRIMARY KEY,
  side text NOT NULL CHECK (side IN ('source', 'target')),
  source_region text,
  target_region text NOT NULL,
  phase text NOT NULL CHECK (phase IN ('prepare', 'copying', 'catching_up', 'freezing', 'switched', 'cleaning',
                                       'done', 'failed', 'rolled_back')),
  frozen boolean NOT NULL DEFAULT false,
  publication_name name,
  slot_name name,
  subscription_name name,
  started_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  frozen_at timestamptz
);
COMMENT ON TABLE tenancy.tenant_moves IS
  'live moves in progress on this cluster (source or target side); frozen refuses the tenant''s writes (55006)';

-- Published with the tenant's rows: the source bumps the epoch in the freeze transaction, so seeing it on the target
-- proves every change the source committed before the freeze has been applied there.
CREATE TABLE tenancy.move_markers (
  tenant_id uuid PRIMARY KEY,
  epoch bigint NOT NULL DEFAULT 0
);
COMMENT ON TABLE tenancy.move_markers IS 'catch-up marker of a live move, replicated with the tenant''s rows';

-- Replica identities a move changed to FULL (a row filter on a column outside the replica identity would make every
-- UPDATE and DELETE of the table fail while the publication exists); restored when the last move ends.
CREATE TABLE tenancy.move_replica_identities (
  relid regclass PRIMARY KEY,
  identity "char" NOT NULL,
  index_name name
);
COMMENT ON TABLE tenancy.move_replica_identities IS 'replica identities set to FULL for live moves, to restore';

-- Publication, slot and subscription name of a tenant's move (63 bytes fit: 13 + 32).
CREATE FUNCTION tenancy._move_name(tenant uuid) RETURNS name
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT ('tenancy_move_' OPERATOR(pg_catalog.||) pg_catalog.replace(tenant::pg_catalog.text, '-', ''))::pg_catalog.name
$$;
COMMENT ON FUNCTION tenancy._move_name(uuid) IS 'internal: publication, slot and subscription name of a tenant move';

-- The tables a move replicates, with their tenant column: every isolated table that is not a partition (a
-- partitioned root is published via its root, so every partition is covered) and the per-tenant registry tables.
-- Not replicated: tenancy.tenants (the target creates the row with its own residency), tenancy.tenant_keys
-- (re-wrapped under the target's master key), tenancy.audit_log (each cluster has its own hash chain),
-- tenancy.quota_counters (written in place, outside MVCC): move_target_switch carries those over.
CREATE FUNCTION tenancy._move_tables()
RETURNS TABLE (relid regclass, tenant_column name, kind text)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT c.relid, c.tenant_column, 'isolated'
    FROM tenancy.isolation_config c JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid
   WHERE NOT k.relispartition AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
  UNION ALL
  SELECT v.t::pg_catalog.regclass, 'tenant_id'::pg_catalog.name, 'registry'
    FROM (VALUES ('tenancy.users'), ('tenancy.quota_overrides'), ('tenancy.usage_history'),
                 ('tenancy.move_markers')) v(t)
   WHERE pg_catalog.to_regclass(v.t) IS NOT NULL
$$;
COMMENT ON FUNCTION tenancy._move_tables() IS 'internal: the tables a live move replicates, with their tenant column';

-- What the apply and table-sync workers of a move's subscription would run besides storing rows, as the superuser that
-- owns the subscription (PostgreSQL 15 applies as the subscription's owner, whoever owns the table): triggers that fire
-- in replica mode (ENABLE ALWAYS, ENABLE REPLICA) and the functions behind defaults, generated columns, check
-- constraints (also of the columns' domains), index expressions and predicates and partition keys of the move's
-- tables and their partitions. Lists each one whose function (or operator's function) is not the cluster's own
-- (owned by a superuser) or the extension's, or NULL: a table's owner could otherwise run code as the superuser by
-- having a tenant moved in.
CREATE FUNCTION tenancy._move_apply_hazards() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE rels AS (
    SELECT DISTINCT p.rel FROM tenancy._move_tables() t,
           LATERAL (SELECT t.relid::pg_catalog.oid AS rel
                    UNION SELECT pt.relid::pg_catalog.oid FROM pg_catalog.pg_partition_tree(t.relid) pt) p),
  types AS (
    SELECT a.atttypid AS typ FROM pg_catalog.pg_attribute a JOIN rels r ON a.attrelid OPERATOR(pg_catalog.=) r.rel
     WHERE a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
    UNION
    SELECT u.typ FROM types x JOIN pg_catalog.pg_type y ON y.oid OPERATOR(pg_catalog.=) x.typ,
           LATERAL (VALUES (y.typbasetype), (y.typelem)) u(typ)
     WHERE u.typ OPERATOR(pg_catalog.<>) 0::pg_catalog.oid),
  objs (classid, objid, what) AS (
    SELECT 'pg_catalog.pg_trigger'::pg_catalog.regclass, g.oid,
           pg_catalog.format('trigger %I on %s', g.tgname, g.tgrelid::pg_catalog.regclass)
      FROM pg_catalog.pg_trigger g JOIN rels r ON g.tgrelid OPERATOR(pg_catalog.=) r.rel
     WHERE g.tgenabled OPERATOR(pg_catalog.=) ANY (ARRAY['A', 'R']::"char"[])
    UNION ALL
    SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass, d.oid,
           pg_catalog.format('default of column %I of %s', a.attname, d.adrelid::pg_catalog.regclass)
      FROM pg_catalog.pg_attrdef d JOIN rels r ON d.adrelid OPERATOR(pg_catalog.=) r.rel
      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) d.adrelid
                                    AND a.attnum OPERATOR(pg_catalog.=) d.adnum
    UNION ALL
    SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, c.oid,
           pg_catalog.format('constraint %I on %s', c.conname, c.conrelid::pg_catalog.regclass)
      FROM pg_catalog.pg_constraint c JOIN rels r ON c.conrelid OPERATOR(pg_catalog.=) r.rel
    UNION ALL
    SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass, c.oid,
           pg_catalog.format('constraint %I of type %s', c.conname, c.contypid::pg_catalog.regtype)
      FROM pg_catalog.pg_constraint c JOIN types x ON c.contypid OPERATOR(pg_catalog.=) x.typ
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, i.indexrelid,
           pg_catalog.format('index %s', i.indexrelid::pg_catalog.regclass)
      FROM pg_catalog.pg_index i JOIN rels r ON i.indrelid OPERATOR(pg_catalog.=) r.rel
    UNION ALL
    SELECT 'pg_catalog.pg_class'::pg_catalog.regclass, r.rel,
           pg_catalog.format('partition key of %s', r.rel::pg_catalog.regclass)
      FROM rels r),
  fns AS (
    SELECT o.what, coalesce(op.oprcode::pg_catalog.oid, d.refobjid) AS fn
      FROM objs o JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) o.classid
                                             AND d.objid OPERATOR(pg_catalog.=) o.objid
      LEFT JOIN pg_catalog.pg_operator op
             ON d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
            AND op.oid OPERATOR(pg_catalog.=) d.refobjid
     WHERE d.refclassid OPERATOR(pg_catalog.=) ANY (ARRAY['pg_catalog.pg_proc', 'pg_catalog.pg_operator']::pg_catalog.regclass[]))
  SELECT pg_catalog.string_agg(DISTINCT pg_catalog.format('%s (function %s)', f.what, f.fn::pg_catalog.regprocedure),
                               ', ')
    FROM fns f JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) f.fn
    JOIN pg_catalog.pg_roles o ON o.oid OPERATOR(pg_catalog.=) p.proowner
   WHERE NOT o.rolsuper AND p.pronamespace OPERATOR(pg_catalog.<>) 'tenancy'::pg_catalog.regnamespace
$$;
COMMENT ON FUNCTION tenancy._move_apply_hazards() IS
  'internal: code of others that a move''s subscription would run as the superuser on the move''s tables, or NULL';

-- The tables the guard trigger protects: the replicated ones plus the registry row, the keys and the tokens.
CREATE FUNCTION tenancy._move_guarded_tables()
RETURNS TABLE (relid regclass, tenant_column name)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT t.relid, t.tenant_column FROM tenancy._move_tables() t
   WHERE t.relid OPERATOR(pg_catalog.<>) 'tenancy.move_markers'::pg_catalog.regclass
  UNION ALL SELECT 'tenancy.tenants'::pg_catalog.regclass, 'id'::pg_catalog.name
  UNION ALL SELECT 'tenancy.tenant_keys'::pg_catalog.regclass, 'tenant_id'::pg_catalog.name
  -- Tokens are not replicated (tenancyd copies them after the switch): none may be issued or revoked meanwhile.
  UNION ALL SELECT 'tenancy.tenant_tokens'::pg_catalog.regclass, 'tenant_id'::pg_catalog.name
$$;
COMMENT ON FUNCTION tenancy._move_guarded_tables() IS 'internal: the tables whose writes a move freeze refuses';

-- Raises 55006 when the tenant's writes are frozen here. Locks the move row FOR SHARE, so the freeze (an UPDATE of
-- that row) waits for every writer that passed this check to commit: nothing the source acknowledged after the
-- freeze began can exist, and nothing acknowledged before it is missed by the catch-up.
CREATE FUNCTION tenancy._move_check(tenants uuid[]) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
BEGIN
  FOR m IN SELECT * FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) ANY (tenants)
            ORDER BY mv.tenant_id FOR SHARE LOOP
    CONTINUE WHEN NOT m.frozen;
    IF m.side OPERATOR(pg_catalog.=) 'source' THEN
      RAISE EXCEPTION USING ERRCODE = 'object_in_use',
        MESSAGE = pg_catalog.format('tenant "%s" is being moved to region "%s"', m.tenant_id, m.target_region),
        DETAIL = 'Writes are paused for the final switch of a live move.',
        HINT = 'Retry in a moment: the tenant is then served by its new region.';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'object_in_use',
      MESSAGE = pg_catalog.format('tenant "%s" is being moved into this region', m.tenant_id),
      DETAIL = pg_catalog.format('Its data is still being copied; region "%s" serves it until the switch.', m.source_region),
      HINT = 'Send the request to the tenant''s current region.';
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._move_check(uuid[]) IS 'internal: raises 55006 when a tenant''s writes are frozen by a move';

-- BEFORE INSERT/UPDATE/DELETE row trigger on the guarded tables while a move runs (TG_ARGV[0]: tenant column).
-- SECURITY DEFINER: application roles cannot read tenancy.tenant_moves. Not ENABLE ALWAYS: apply workers on the
-- target (replica mode) must write the rows the guard refuses to applications there. It fires for every row of
-- every tenant, so it runs _move_check's locking query itself (one query per row, no nested call) and leaves
-- only the refusal of a frozen tenant to _move_check.
CREATE FUNCTION tenancy._move_guard() RETURNS trigger
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  -- NEW is NULL in a DELETE, OLD in an INSERT: their NULL ids match nothing.
  ids pg_catalog.uuid[] := ARRAY[(pg_catalog.to_jsonb(NEW) OPERATOR(pg_catalog.->>) TG_ARGV[0])::pg_catalog.uuid, (pg_catalog.to_jsonb(OLD) OPERATOR(pg_catalog.->>) TG_ARGV[0])::pg_catalog.uuid];
  m record;
BEGIN
  FOR m IN SELECT mv.tenant_id, mv.frozen FROM tenancy.tenant_moves mv
            WHERE mv.tenant_id OPERATOR(pg_catalog.=) ANY (ids) ORDER BY mv.tenant_id FOR SHARE LOOP
    IF m.frozen THEN
      PERFORM tenancy._move_check(ARRAY[m.tenant_id]);
    END IF;
  END LOOP;
  RETURN coalesce(NEW, OLD);
END
$$;
COMMENT ON FUNCTION tenancy._move_guard() IS 'internal: trigger refusing writes of a tenant frozen by a live move';

-- For writes that bypass the guarded tables (quota counters are written in place): call it in the same statement
-- before consume, e.g. SELECT CASE WHEN tenancy.move_guard($1) THEN tenancy.consume($1, $2, $3) END.
-- In C (extension/pg/move_guard.cpp): a caller without tenancy_admin may only name its context tenant (TN004
-- without one, 42501 for another tenant): the answer would tell it whether another tenant is moving and where,
-- and the lock would hold off that tenant's freeze. It runs _move_check as the extension owner after that check.
CREATE FUNCTION tenancy.move_guard(tenant_id uuid) RETURNS boolean
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_move_guard';
COMMENT ON FUNCTION tenancy.move_guard(uuid) IS
  'true, or 55006 while a live move freezes the tenant''s writes; holds them off the freeze until commit '
  '(the context tenant only, unless tenancy_admin)';

-- DDL on tables that applications write (guard triggers, replica identities), whose locks are held until commit, run
-- so that it never deadlocks with a writer: a writer holding one of those tables (tenancy.tenants after set_tenant,
-- say) and waiting for another that the DDL already locked would otherwise deadlock with it, and the deadlock
-- detector would fail one of the two. Each attempt takes its locks with a short lock_timeout in a subtransaction; a
-- timed-out attempt gives back every lock it took (the writer waiting for one finishes) and tries again a little
-- later; after 30 attempts the statements wait like any other.
CREATE FUNCTION tenancy._move_ddl(stmts text[]) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  stmt pg_catalog.text;
BEGIN
  FOR attempt IN 1 .. 30 LOOP
    BEGIN
      -- Local to this function (its SET clause gives it a GUC level of its own), undone with a failed attempt.
      PERFORM pg_catalog.set_config('lock_timeout', '200ms', true);
      FOREACH stmt IN ARRAY stmts LOOP
        EXECUTE stmt;
      END LOOP;
      RETURN;
    EXCEPTION WHEN lock_not_available THEN
      PERFORM pg_catalog.pg_sleep(CASE WHEN attempt OPERATOR(pg_catalog.<) 10 THEN 0.05 ELSE 0.2 END);
    END;
  END LOOP;
  FOREACH stmt IN ARRAY stmts LOOP
    EXECUTE stmt;
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._move_ddl(text[]) IS
  'internal: runs a move''s DDL on application-written tables, retried on lock timeouts (no deadlock with writers)';

-- Guards on or off: installed with the first move of the cluster, removed with the last one.
CREATE FUNCTION tenancy._move_set_guards(enable boolean) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM tenancy._move_ddl(ARRAY(
    SELECT CASE WHEN enable
             THEN pg_catalog.format('CREATE TRIGGER tenancy_move_guard BEFORE INSERT OR UPDATE OR DELETE ON %s'
                                    ' FOR EACH ROW EXECUTE FUNCTION tenancy._move_guard(%L)', g.relid, g.tenant_column)
             ELSE pg_catalog.format('DROP TRIGGER IF EXISTS tenancy_move_guard ON %s', g.relid) END
      FROM tenancy._move_guarded_tables() g
     WHERE NOT enable OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger tg
                                      WHERE tg.tgrelid OPERATOR(pg_catalog.=) g.relid::pg_catalog.oid
                                        AND tg.tgname OPERATOR(pg_catalog.=) 'tenancy_move_guard')
     ORDER BY g.relid::pg_catalog.text));
END
$$;
COMMENT ON FUNCTION tenancy._move_set_guards(boolean) IS 'internal: installs or removes the move guard triggers';

-- With the last move of the cluster (the tenant's on side, nothing else), removes the guards. Called before that
-- move row is locked: a writer of a frozen tenant waits in the guard for the row while holding its table's lock, so
-- dropping the guards (ACCESS EXCLUSIVE on each table) after locking the row would deadlock with it.
CREATE FUNCTION tenancy._move_unguard_last(tenant uuid, want_side text) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tenancy.tenant_moves mv
                  WHERE mv.tenant_id OPERATOR(pg_catalog.<>) tenant OR mv.side OPERATOR(pg_catalog.<>) want_side) THEN
    PERFORM tenancy._move_set_guards(false);
  END IF;
END
$$;
COMMENT ON FUNCTION tenancy._move_unguard_last(uuid, text) IS
  'internal: removes the move guards before the last move row is locked (no deadlock with a waiting writer)';

-- REPLICA IDENTITY FULL on every published table (and partition) whose identity does not cover its tenant column;
-- the originals are kept in tenancy.move_replica_identities.
CREATE FUNCTION tenancy._move_widen_identities() RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  stmts pg_catalog.text[] := '{}';
BEGIN
  FOR r IN
    SELECT p.rel, t.tenant_column, k.relreplident,
           (SELECT ic.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
             WHERE i.indrelid OPERATOR(pg_catalog.=) p.rel::pg_catalog.oid AND i.indisreplident) AS ident_index,
           (SELECT a.attnum FROM pg_catalog.pg_attribute a
             WHERE a.attrelid OPERATOR(pg_catalog.=) p.rel::pg_catalog.oid AND a.attname OPERATOR(pg_catalog.=) t.tenant_column) AS col
      FROM tenancy._move_tables() t,
           -- pg_partition_tree lists nothing for a table that is not partitioned: the table itself, then its tree.
           LATERAL (SELECT t.relid AS rel UNION SELECT pt.relid FROM pg_catalog.pg_partition_tree(t.relid) pt) p
      JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) p.rel::pg_catalog.oid
     WHERE k.relkind OPERATOR(pg_catalog.=) 'r'
  LOOP
    CONTINUE WHEN r.relreplident OPERATOR(pg_catalog.=) 'f';
    CONTINUE WHEN r.relreplident OPERATOR(pg_catalog.=) 'd' AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) r.rel::pg_catalog.oid AND i.indisprimary
        AND r.col OPERATOR(pg_catalog.=) ANY (i.indkey::int2[]));
    CONTINUE WHEN r.relreplident OPERATOR(pg_catalog.=) 'i' AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) r.rel::pg_catalog.oid AND i.indisreplident
        AND r.col OPERATOR(pg_catalog.=) ANY (i.indkey::int2[]));
    INSERT INTO tenancy.move_replica_identities VALUES (r.rel, r.relreplident, r.ident_index)
      ON CONFLICT (relid) DO NOTHING;
    stmts := stmts OPERATOR(pg_catalog.||) pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY FULL', r.rel);
  END LOOP;
  PERFORM tenancy._move_ddl(stmts);
END
$$;
COMMENT ON FUNCTION tenancy._move_widen_identities() IS
  'internal: REPLICA IDENTITY FULL where a move''s row filter column is outside the replica identity';

CREATE FUNCTION tenancy._move_restore_identities() RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r tenancy.move_replica_identities;
  stmts pg_catalog.text[] := '{}';
BEGIN
  FOR r IN DELETE FROM tenancy.move_replica_identities RETURNING * LOOP
    CONTINUE WHEN pg_catalog.to_regclass(r.relid::pg_catalog.text) IS NULL;
    stmts := stmts OPERATOR(pg_catalog.||) pg_catalog.format('ALTER TABLE %s REPLICA IDENTITY %s', r.relid,
                   CASE r.identity WHEN 'd' THEN 'DEFAULT' WHEN 'n' THEN 'NOTHING'
                                   ELSE pg_catalog.format('USING INDEX %I', r.index_name) END);
  END LOOP;
  PERFORM tenancy._move_ddl(stmts);
END
$$;
COMMENT ON FUNCTION tenancy._move_restore_identities() IS 'internal: restores the replica identities moves widened';

-- What the target needs to know about a replicated table: name, kind, tenant column, source row count.
CREATE FUNCTION tenancy._move_table_list(tenant uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t record;
  n pg_catalog.int8;
  out pg_catalog.jsonb := '[]';
BEGIN
  FOR t IN SELECT * FROM tenancy._move_tables() ORDER BY kind DESC, relid::pg_catalog.text LOOP
    -- counted with superuser rights (move_source_prepare): planning the count must run no code of the owner's,
    -- nor may a tenant column of the owner's type bring its cast to uuid into the comparison
    PERFORM tenancy._require_plain_read(t.relid);
    IF (SELECT a.atttypid FROM pg_catalog.pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) t.relid AND a.attname OPERATOR(pg_catalog.=) t.tenant_column
           AND NOT a.attisdropped) IS DISTINCT FROM 'pg_catalog.uuid'::pg_catalog.regtype THEN
      RAISE EXCEPTION 'cannot move % of a tenant: it is no longer a table with a uuid column "%"', t.relid,
        t.tenant_column USING ERRCODE = '42804',
        HINT = 'Restore the table and its tenant column, or disable isolation of it with tenancy.disable_isolation().';
    END IF;
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s x WHERE x.%I OPERATOR(pg_catalog.=) $1', t.relid,
                   t.tenant_column) INTO n USING tenant;
    out := out OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'table', t.relid::pg_catalog.text, 'kind', t.kind, 'tenant_column', t.tenant_column, 'rows', n));
  END LOOP;
  RETURN out;
END
$$;
COMMENT ON FUNCTION tenancy._move_table_list(uuid) IS 'internal: the replicated tables of a move with row counts';

CREATE FUNCTION tenancy._move_record(tenant uuid, want_side text) RETURNS tenancy.tenant_moves
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
BEGIN
  SELECT * INTO m FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) tenant FOR UPDATE;
  IF NOT FOUND OR m.side OPERATOR(pg_catalog.<>) want_side THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('tenant "%s" is not being moved %s this cluster', tenant,
                       CASE want_side WHEN 'source' THEN 'out of' ELSE 'into' END);
  END IF;
  RETURN m;
END
$$;
COMMENT ON FUNCTION tenancy._move_record(uuid, text) IS 'internal: the move row of a tenant on one side, locked';

-- The orchestrator lock of a tenant's move: a session advisory lock (class 1953459574, 'tnmv'; key hashtext(id)).
-- move_source_prepare takes it for the session that prepares the move, move_source_finish releases it; a source
-- move record whose lock nobody holds lost its orchestrator (a tenancyd that stopped mid-move), and move_adopt lets
-- another session take the move over.
CREATE FUNCTION tenancy._move_lock_holders(tenant uuid, only_mine boolean) RETURNS bigint
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.count(*) FROM pg_catalog.pg_locks l
   WHERE l.locktype OPERATOR(pg_catalog.=) 'advisory' AND l.granted AND l.objsubid OPERATOR(pg_catalog.=) 2
     AND l.database OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                             WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database())
     AND l.classid OPERATOR(pg_catalog.=) 1953459574::pg_catalog.oid
     AND l.objid OPERATOR(pg_catalog.=)
         ((pg_catalog.hashtext(tenant::pg_catalog.text)::pg_catalog.int8 OPERATOR(pg_catalog.&) 4294967295)::pg_catalog.oid)
     AND (NOT only_mine OR l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid())
$$;
COMMENT ON FUNCTION tenancy._move_lock_holders(uuid, boolean) IS
  'internal: holds of the orchestrator lock of a tenant''s move (all sessions, or this one)';

CREATE FUNCTION tenancy._move_lock_try(tenant uuid) RETURNS boolean
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.pg_try_advisory_lock(1953459574, pg_catalog.hashtext(tenant::pg_catalog.text))
$$;
COMMENT ON FUNCTION tenancy._move_lock_try(uuid) IS 'internal: takes the orchestrator lock of a tenant''s move';

CREATE FUNCTION tenancy._move_lock_release(tenant uuid) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Every hold of this session (a session that adopted and prepared holds it twice); none of another session.
  FOR i IN 1 .. tenancy._move_lock_holders(tenant, true) LOOP
    PERFORM pg_catalog.pg_advisory_unlock(1953459574, pg_catalog.hashtext(tenant::pg_catalog.text));
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._move_lock_release(uuid) IS 'internal: releases this session''s orchestrator lock';

-- Moves out of this cluster that lost their orchestrator: no session holds their lock. Other sessions' locks are
-- seen in pg_locks, so this is exact at the moment it runs; move_adopt decides (it takes the lock).
CREATE FUNCTION tenancy.move_orphans()
RETURNS TABLE (tenant_id uuid, target_region text, phase text, frozen boolean, started_at timestamptz)
LANGUAGE sql VOLATILE SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT m.tenant_id, m.target_region, m.phase, m.frozen, m.started_at FROM tenancy.tenant_moves m
   WHERE m.side OPERATOR(pg_catalog.=) 'source' AND tenancy._move_lock_holders(m.tenant_id, false) OPERATOR(pg_catalog.=) 0
   ORDER BY m.started_at
$$;
COMMENT ON FUNCTION tenancy.move_orphans() IS
  'live moves out of this cluster whose orchestrator session is gone (no session holds the move''s lock)';

-- Takes over the orchestration of an orphaned move out of this cluster: true when there is a source move record of
-- the tenant and this session now holds its lock (until it ends or calls move_source_finish); false when another
-- session holds it or there is no such move.
CREATE FUNCTION tenancy.move_adopt(tenant_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT tenancy._move_lock_try(tenant_id) THEN
    RETURN false;
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) move_adopt.tenant_id
                AND m.side OPERATOR(pg_catalog.=) 'source') THEN
    RETURN true;
  END IF;
  PERFORM pg_catalog.pg_advisory_unlock(1953459574, pg_catalog.hashtext(tenant_id::pg_catalog.text));
  RETURN false;
END
$$;
COMMENT ON FUNCTION tenancy.move_adopt(uuid) IS
  'live move, source: takes over an orphaned move (its orchestrator lock); then roll it back or finish it';

---------------------------------------------------------------------------------------------------------------------
-- Source side.

-- Starts a move out of this cluster: checks, the move row (phase prepare), the publication of the tenant's rows
-- with row filters, wider replica identities where needed, and the guard triggers. Returns what the target needs:
-- {publication, slot, tenant (registry row), tables [{table, kind, tenant_column, rows}]}.
CREATE FUNCTION tenancy.move_source_prepare(tenant_id uuid, target_region text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants;
  target tenancy.data_residency;
  pub pg_catalog.name := tenancy._move_name(tenant_id);
  tables pg_catalog.text;
  list pg_catalog.jsonb;
BEGIN
  -- NO KEY UPDATE, not UPDATE: an application transaction may hold a lock on a table this function alters next while
  -- its foreign key check waits for a KEY SHARE lock on this row; that must not wait for us (deadlock).
  SELECT * INTO t FROM tenancy.tenants x WHERE x.id OPERATOR(pg_catalog.=) tenant_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(tenant_id);
  END IF;
  IF NOT target_region OPERATOR(pg_catalog.=) ANY (pg_catalog.enum_range(NULL::tenancy.data_residency)::pg_catalog.text[]) THEN
    PERFORM tenancy._invalid_input(pg_catalog.format('invalid data residency "%s"', target_region), NULL,
                                   'Valid residencies are us, eu, uk, canada and australia.');
  END IF;
  target := target_region::tenancy.data_residency;
  IF target OPERATOR(pg_catalog.=) t.data_residency THEN
    PERFORM tenancy._invalid_input(pg_catalog.format('tenant "%s" already resides in region "%s"', t.slug, target_region));
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants c WHERE c.parent_tenant_id OPERATOR(pg_catalog.=) tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = pg_catalog.format('tenant "%s" has child tenants', t.slug),
      HINT = 'Move or re-parent the child tenants first.';
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) move_source_prepare.tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use', MESSAGE = pg_catalog.format('tenant "%s" is already being moved', t.slug),
      HINT = 'Wait for the move to finish, or roll it back with tenancy.move_source_finish(id, ''rolled_back'').';
  END IF;
  IF pg_catalog.current_setting('wal_level') OPERATOR(pg_catalog.<>) 'logical' THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = 'a live move needs wal_level = logical on the source cluster',
      HINT = 'Set wal_level = logical (and max_replication_slots, max_wal_senders) and restart the server.';
  END IF;
  -- This session orchestrates the move from now on (move_orphans, move_adopt). Taken after the checks, so a refused
  -- prepare holds nothing; a session that still holds the lock of an earlier move of the tenant keeps it.
  IF NOT tenancy._move_lock_try(tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use',
      MESSAGE = pg_catalog.format('another session holds the move lock of tenant "%s"', t.slug),
      HINT = 'A session that took over an earlier move of this tenant (tenancy.move_adopt) is still open.';
  END IF;

  INSERT INTO tenancy.tenant_moves (tenant_id, side, source_region, target_region, phase, publication_name, slot_name)
  VALUES (tenant_id, 'source', t.data_residency::pg_catalog.text, target_region, 'prepare', pub, pub);
  INSERT INTO tenancy.move_markers (tenant_id) VALUES (tenant_id)
    ON CONFLICT ON CONSTRAINT move_markers_pkey DO UPDATE SET epoch = 0;

  -- A quoted literal of the id in every row filter (PG15 filters take no parameters).
  SELECT pg_catalog.string_agg(pg_catalog.format('%s WHERE (%I OPERATOR(pg_catalog.=) %L::uuid)', m.relid, m.tenant_column,
                                      tenant_id), ', ' ORDER BY m.relid::pg_catalog.text)
    INTO tables FROM tenancy._move_tables() m;
  -- No TRUNCATE: truncating a shared table on the source must never empty it on the target.
  EXECUTE pg_catalog.format('CREATE PUBLICATION %I FOR TABLE %s WITH (publish = %L, publish_via_partition_root = true)',
                 pub, tables, 'insert, update, delete');
  PERFORM tenancy._move_widen_identities();
  PERFORM tenancy._move_set_guards(true);
  list := tenancy._move_table_list(tenant_id);
  PERFORM tenancy._audit('tenant_move_started', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'side', 'source', 'source_region', t.data_residency, 'target_region', target_region, 'publication', pub,
    'tables', list, 'by', session_user));
  RETURN pg_catalog.jsonb_build_object('publication', pub, 'slot', pub, 'tenant', pg_catalog.to_jsonb(t),
                                       'tables', list);
END
$$;
COMMENT ON FUNCTION tenancy.move_source_prepare(uuid, text) IS
  'live move, source: publication of the tenant''s rows (row filters), guards, move record; see docs/residency.md';

-- The logical slot of the move. Its own transaction, and before any write in it (PostgreSQL refuses a slot in a
-- transaction that wrote): the publication must exist before the slot's start, so it is not made by prepare.
CREATE FUNCTION tenancy.move_source_create_slot(tenant_id uuid) RETURNS pg_lsn
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  slot pg_catalog.name;
  lsn pg_catalog.pg_lsn;
BEGIN
  SELECT m.slot_name INTO slot FROM tenancy.tenant_moves m
   WHERE m.tenant_id OPERATOR(pg_catalog.=) move_source_create_slot.tenant_id
     AND m.side OPERATOR(pg_catalog.=) 'source' AND m.phase OPERATOR(pg_catalog.=) 'prepare';
  IF slot IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('tenant "%s" has no move being prepared on this cluster', tenant_id);
  END IF;
  SELECT s.lsn INTO lsn FROM pg_catalog.pg_create_logical_replication_slot(slot, 'pgoutput') s;
  UPDATE tenancy.tenant_moves SET phase = 'copying'
   WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_source_create_slot.tenant_id;
  PERFORM tenancy._audit('tenant_move_slot_created', tenant_id, NULL,
                         pg_catalog.jsonb_build_object('slot', slot, 'lsn', lsn::pg_catalog.text));
  RETURN lsn;
END
$$;
COMMENT ON FUNCTION tenancy.move_source_create_slot(uuid) IS
  'live move, source: the logical replication slot (call in a transaction of its own, before anything else)';

-- Progress as the source sees it: phase, slot activity and lag in bytes (WAL not yet confirmed by the target).
CREATE FUNCTION tenancy.move_source_progress(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
  s record;
BEGIN
  SELECT * INTO m FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) move_source_progress.tenant_id
     AND mv.side OPERATOR(pg_catalog.=) 'source';
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  SELECT r.active, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.confirmed_flush_lsn)::pg_catalog.int8 AS lag
    INTO s FROM pg_catalog.pg_replication_slots r WHERE r.slot_name OPERATOR(pg_catalog.=) m.slot_name;
  RETURN pg_catalog.jsonb_build_object('phase', m.phase, 'frozen', m.frozen, 'target_region', m.target_region,
    'slot_active', s.active, 'lag_bytes', s.lag, 'started_at', tenancy._rfc3339(m.started_at),
    'frozen_at', tenancy._rfc3339(m.frozen_at));
END
$$;
COMMENT ON FUNCTION tenancy.move_source_progress(uuid) IS 'live move, source: phase, slot activity and lag in bytes';

-- The write freeze. Waits for every writer of the tenant that passed the guard, then refuses new ones (55006), and
-- bumps the replicated marker in the same transaction. Returns the marker epoch to wait for on the target.
CREATE FUNCTION tenancy.move_source_freeze(tenant_id uuid) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'source');
  e pg_catalog.int8;
BEGIN
  IF m.phase OPERATOR(pg_catalog.<>) ALL (ARRAY['copying', 'catching_up', 'freezing']) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" cannot freeze in phase %s', tenant_id, m.phase);
  END IF;
  UPDATE tenancy.tenant_moves SET frozen = true, phase = 'freezing', frozen_at = pg_catalog.clock_timestamp()
   WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_source_freeze.tenant_id;
  UPDATE tenancy.move_markers SET epoch = move_markers.epoch OPERATOR(pg_catalog.+) 1
   WHERE move_markers.tenant_id OPERATOR(pg_catalog.=) move_source_freeze.tenant_id RETURNING epoch INTO e;
  PERFORM tenancy._audit('tenant_move_frozen', tenant_id, NULL, pg_catalog.jsonb_build_object('epoch', e));
  RETURN e;
END
$$;
COMMENT ON FUNCTION tenancy.move_source_freeze(uuid) IS
  'live move, source: refuses the tenant''s writes from now on (55006) and returns the catch-up marker epoch';

-- What does not travel by replication, read after the freeze: the registry row, quota usage per metric, the last
-- value of the sequences behind the replicated tables, the audit events, and the data keys sealed to the target's
-- recipient key (the plain keys never leave the server: tenancy._move_seal_key unwraps and seals in one call).
CREATE FUNCTION tenancy.move_source_handover(tenant_id uuid, recipient_key bytea) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'source');
  quota pg_catalog.jsonb := '{}';
  seqs pg_catalog.jsonb := '{}';
  keys pg_catalog.jsonb;
  audit pg_catalog.jsonb;
  metric pg_catalog.text;
  s record;
BEGIN
  IF NOT m.frozen THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" is not frozen', tenant_id),
      HINT = 'Call tenancy.move_source_freeze() first.';
  END IF;
  IF pg_catalog.to_regprocedure('tenancy._quota_state(uuid,text,timestamptz)') IS NOT NULL THEN
    FOREACH metric IN ARRAY ARRAY['users', 'projects', 'api_calls', 'storage_mb', 'ai_requests', 'concurrent_sessions']
    LOOP
      quota := quota OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(metric, (SELECT q.used FROM tenancy._quota_state(tenant_id, metric) q));
    END LOOP;
  END IF;
  FOR s IN SELECT DISTINCT d.objid::pg_catalog.regclass AS seq FROM tenancy._move_tables() t
             JOIN pg_catalog.pg_depend d ON d.refobjid OPERATOR(pg_catalog.=) t.relid::pg_catalog.oid
              AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
              AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[])
             JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) d.objid AND k.relkind OPERATOR(pg_catalog.=) 'S'
  LOOP
    seqs := seqs OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(s.seq::pg_catalog.text, pg_catalog.pg_sequence_last_value(s.seq));
  END LOOP;
  SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
           'version', k.version, 'created_at', k.created_at, 'destroyed_at', k.destroyed_at,
           'sealed', CASE WHEN k.wrapped_key IS NOT NULL THEN
                       pg_catalog.encode(tenancy._move_seal_key(k.tenant_id, k.version, k.wrapped_key, recipient_key),
                                         'base64') END) ORDER BY k.version), '[]')
    INTO keys FROM tenancy.tenant_keys k WHERE k.tenant_id OPERATOR(pg_catalog.=) move_source_handover.tenant_id;
  SELECT coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(a) ORDER BY a.id), '[]') INTO audit
    FROM tenancy.audit_log a WHERE a.tenant_id OPERATOR(pg_catalog.=) move_source_handover.tenant_id;
  PERFORM tenancy._audit('tenant_move_handover', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'keys', pg_catalog.jsonb_array_length(keys), 'audit_events', pg_catalog.jsonb_array_length(audit),
    'quota', quota, 'sequences', seqs));
  RETURN pg_catalog.jsonb_build_object(
    'tenant', (SELECT pg_catalog.to_jsonb(t) FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) move_source_handover.tenant_id),
    'quota', quota, 'sequences', seqs, 'keys', keys, 'audit', audit);
END
$$;
COMMENT ON FUNCTION tenancy.move_source_handover(uuid, bytea) IS
  'live move, source (frozen): registry row, quota usage, sequence values, audit events and keys sealed to the target';

-- Ends a move on the source. 'switched' (the target serves the tenant): publication and slot dropped, then the
-- tenant's rows erased and its keys destroyed here. 'rolled_back': publication and slot dropped, writes allowed
-- again; the tenant stays here. subscription_oid names the target's tablesync slots to drop as well.
CREATE FUNCTION tenancy.move_source_finish(tenant_id uuid, outcome text, subscription_oid oid DEFAULT NULL)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
  slot record;
  waited pg_catalog.int4 := 0;
BEGIN
  IF tenant_id IS NULL OR outcome IS NULL OR outcome OPERATOR(pg_catalog.<>) ALL (ARRAY['switched', 'rolled_back']) THEN
    PERFORM tenancy._invalid_input('outcome must be ''switched'' or ''rolled_back''');
  END IF;
  PERFORM tenancy._move_unguard_last(tenant_id, 'source');
  m := tenancy._move_record(tenant_id, 'source');
  IF outcome OPERATOR(pg_catalog.=) 'switched' AND NOT m.frozen THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" was never frozen; it cannot have switched', tenant_id);
  END IF;
  EXECUTE pg_catalog.format('DROP PUBLICATION IF EXISTS %I', m.publication_name);
  -- The slot (and tablesync slots of the target's subscription) once their walsenders are gone: the target drops
  -- its subscription first; a target that died leaves them inactive.
  FOR slot IN SELECT r.slot_name, r.active_pid FROM pg_catalog.pg_replication_slots r
               WHERE r.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
                 AND (r.slot_name OPERATOR(pg_catalog.=) m.slot_name
                      OR (subscription_oid IS NOT NULL
                          AND r.slot_name::pg_catalog.text OPERATOR(pg_catalog.~~) pg_catalog.format('pg\_%s\_sync\_%%', subscription_oid)))
  LOOP
    WHILE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots r WHERE r.slot_name OPERATOR(pg_catalog.=) slot.slot_name
                     AND r.active) AND waited OPERATOR(pg_catalog.<) 100 LOOP
      PERFORM pg_catalog.pg_sleep(0.05);
      waited := waited OPERATOR(pg_catalog.+) 1;
    END LOOP;
    -- Still streaming after 5 s: the move is over either way, end that walsender.
    PERFORM pg_catalog.pg_terminate_backend(r.active_pid, 5000) FROM pg_catalog.pg_replication_slots r
      WHERE r.slot_name OPERATOR(pg_catalog.=) slot.slot_name AND r.active;
    PERFORM pg_catalog.pg_drop_replication_slot(slot.slot_name);
  END LOOP;
  DELETE FROM tenancy.tenant_moves WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_source_finish.tenant_id;
  DELETE FROM tenancy.move_markers WHERE move_markers.tenant_id OPERATOR(pg_catalog.=) move_source_finish.tenant_id;
  IF NOT EXISTS (SELECT 1 FROM tenancy.tenant_moves mv WHERE mv.side OPERATOR(pg_catalog.=) 'source') THEN
    PERFORM tenancy._move_restore_identities();
  END IF;
  PERFORM tenancy._move_lock_release(tenant_id);
  IF outcome OPERATOR(pg_catalog.=) 'switched' THEN
    PERFORM tenancy._audit('tenant_moved_out', tenant_id, NULL, pg_catalog.jsonb_build_object(
      'target_region', m.target_region, 'frozen_at', tenancy._rfc3339(m.frozen_at), 'by', session_user));
    PERFORM tenancy.delete_tenant(tenant_id, erase => true);
  ELSE
    PERFORM tenancy._audit('tenant_move_rolled_back', tenant_id, NULL, pg_catalog.jsonb_build_object(
      'side', 'source', 'target_region', m.target_region, 'phase', m.phase, 'by', session_user));
  END IF;
END
$$;
COMMENT ON FUNCTION tenancy.move_source_finish(uuid, text, oid) IS
  'live move, source: ends it (''switched'': erase the tenant here; ''rolled_back'': writes allowed again)';

---------------------------------------------------------------------------------------------------------------------
-- Target side.

-- Starts a move into this cluster: the tables must exist and be isolated alike, the tenant (and its slug) must not
-- exist here. Creates the registry row with this cluster's residency (so tenants_enforce_region accepts it) and the
-- move row, frozen: applications cannot write the tenant here before the switch; the apply worker can (replica
-- mode does not fire the guard).
CREATE FUNCTION tenancy.move_target_prepare(tenant jsonb, tables jsonb, target_region text) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r tenancy.tenants;
  e pg_catalog.jsonb;
  tbl pg_catalog.regclass;
  region pg_catalog.text := NULLIF(pg_catalog.current_setting('tenancy.region', true), '');
BEGIN
  r := pg_catalog.jsonb_populate_record(NULL::tenancy.tenants, tenant);
  IF r.id IS NULL OR r.slug IS NULL THEN
    PERFORM tenancy._invalid_input('invalid tenant row for a move', 'The row must carry at least id and slug.');
  END IF;
  IF region IS NOT NULL AND region OPERATOR(pg_catalog.<>) target_region THEN
    PERFORM tenancy._invalid_input(pg_catalog.format('this cluster serves region "%s", not "%s"', region, target_region));
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) r.id) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = pg_catalog.format('tenant "%s" already exists', r.id);
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) r.id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use', MESSAGE = pg_catalog.format('tenant "%s" is already being moved', r.id),
      HINT = 'Remove the leftovers of the earlier attempt with tenancy.move_target_abort().';
  END IF;
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(tables) x LOOP
    tbl := pg_catalog.to_regclass(e OPERATOR(pg_catalog.->>) 'table');
    IF tbl IS NULL THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('table "%s" of the tenant does not exist in this database', e OPERATOR(pg_catalog.->>) 'table'),
        NULL, 'Create the application''s tables (and isolate them) on the target before moving a tenant.');
    END IF;
    IF e OPERATOR(pg_catalog.->>) 'kind' OPERATOR(pg_catalog.=) 'isolated' AND NOT EXISTS (
         SELECT 1 FROM tenancy.isolation_config ic WHERE ic.relid OPERATOR(pg_catalog.=) tbl
            AND ic.tenant_column::pg_catalog.text OPERATOR(pg_catalog.=) (e OPERATOR(pg_catalog.->>) 'tenant_column')) THEN
      PERFORM tenancy._invalid_input(pg_catalog.format('table "%s" is not isolated on column "%s" in this database', tbl,
                                            e OPERATOR(pg_catalog.->>) 'tenant_column'), NULL,
        pg_catalog.format('Run SELECT tenancy.enable_isolation(%L, %L) first.', tbl::pg_catalog.text, e OPERATOR(pg_catalog.->>) 'tenant_column'));
    END IF;
  END LOOP;

  -- A parent that is not here is dropped (the tenant becomes a root), as import_tenant does.
  INSERT INTO tenancy.tenants (id, organization_name, display_name, slug, status, plan, data_residency,
                               encryption_key_id, configuration, parent_tenant_id, created_at, updated_at, trial_ends_at)
  VALUES (r.id, r.organization_name, r.display_name, r.slug, r.status, r.plan, target_region::tenancy.data_residency,
          r.encryption_key_id, r.configuration,
          (SELECT p.id FROM tenancy.tenants p WHERE p.id OPERATOR(pg_catalog.=) r.parent_tenant_id),
          r.created_at, r.updated_at, r.trial_ends_at);
  -- After the row: the guard (installed next) refuses writes of a frozen tenant, ours included.
  INSERT INTO tenancy.tenant_moves (tenant_id, side, source_region, target_region, phase, frozen, subscription_name)
  VALUES (r.id, 'target', r.data_residency::pg_catalog.text, target_region, 'copying', true, tenancy._move_name(r.id));
  PERFORM tenancy._move_set_guards(true);
  PERFORM tenancy._audit('tenant_move_started', r.id, NULL, pg_catalog.jsonb_build_object(
    'side', 'target', 'source_region', r.data_residency, 'target_region', target_region, 'by', session_user));
END
$$;
COMMENT ON FUNCTION tenancy.move_target_prepare(jsonb, jsonb, text) IS
  'live move, target: checks the tables, creates the tenant row (this region) frozen until the switch';

-- The subscription on the source's publication and slot: initial copy of the tenant's rows (row filters apply to
-- it), then streaming. SECURITY DEFINER and run as a superuser because CREATE SUBSCRIPTION needs one in PostgreSQL
-- 15, so nothing of it is the caller's to choose: the connection string is the source region's entry in
-- tenancy.region_connections (which only a superuser writes), never an argument (a superuser's server would connect
-- wherever an admin says); every name is derived from the tenant id. The subscription's apply worker, a superuser's,
-- writes into every local table of the name the publication lists, so the subscription is created disabled and
-- enabled only when the tables it lists (pg_subscription_rel, fetched from the source at creation) are all tables of
-- the move (tenancy._move_tables(): the isolated tables and the per-tenant registry tables); otherwise it is refused
-- and rolled back. disable_on_error: a conflict stops the subscription instead of retrying forever, and the
-- orchestrator rolls back. Returns its oid.
CREATE FUNCTION tenancy.move_target_subscribe(tenant_id uuid) RETURNS oid
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'target');
  sub pg_catalog.name := tenancy._move_name(tenant_id);
  source_conninfo pg_catalog.text;
  subid pg_catalog.oid;
  stray pg_catalog.text;
BEGIN
  IF m.phase OPERATOR(pg_catalog.<>) 'copying' THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" cannot subscribe in phase %s', tenant_id, m.phase);
  END IF;
  stray := tenancy._move_apply_hazards();
  IF stray IS NOT NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
      MESSAGE = pg_catalog.format('the tables of the move of tenant "%s" would run code of other roles as a superuser',
                                  tenant_id),
      DETAIL = pg_catalog.format('The subscription writes them as its owner, a superuser (PostgreSQL 15): %s.', stray),
      HINT = 'Disable those triggers for replica mode (ALTER TABLE ... ENABLE TRIGGER), or have a superuser own '
             'the functions, before moving a tenant here.';
  END IF;
  SELECT c.conninfo INTO source_conninfo FROM tenancy.region_connections c
   WHERE c.region OPERATOR(pg_catalog.=) m.source_region;
  IF source_conninfo IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('region "%s" has no registered connection', m.source_region),
      DETAIL = 'A move into this cluster subscribes to the source region''s cluster with the connection string a '
               'superuser registered for that region in tenancy.region_connections.',
      HINT = pg_catalog.format('As a superuser: INSERT INTO tenancy.region_connections (region, conninfo) VALUES '
                               '(%L, ''host=... dbname=... user=...'').', m.source_region);
  END IF;
  EXECUTE pg_catalog.format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (create_slot = false,'
                            ' slot_name = %L, copy_data = true, enabled = false, disable_on_error = true)',
                            sub, source_conninfo, sub, sub);
  SELECT s.oid INTO subid FROM pg_catalog.pg_subscription s WHERE s.subname OPERATOR(pg_catalog.=) sub
     AND s.subdbid OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                            WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
  SELECT pg_catalog.string_agg(r.srrelid::pg_catalog.regclass::pg_catalog.text, ', '
                               ORDER BY r.srrelid::pg_catalog.regclass::pg_catalog.text)
    INTO stray FROM pg_catalog.pg_subscription_rel r
   WHERE r.srsubid OPERATOR(pg_catalog.=) subid
     AND NOT r.srrelid OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT t.relid::pg_catalog.oid FROM tenancy._move_tables() t));
  IF stray IS NOT NULL THEN
    -- Raised in the transaction that created it: the subscription is gone with it, nothing was applied.
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
      MESSAGE = pg_catalog.format('the publication of the move of tenant "%s" lists tables that are not the move''s',
                                  tenant_id),
      DETAIL = pg_catalog.format('Tables here that it would write: %s.', stray),
      HINT = 'A move replicates only the isolated tables and the per-tenant registry tables '
             '(tenancy.move_source_prepare publishes exactly those).';
  END IF;
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I ENABLE', sub);
  PERFORM tenancy._audit('tenant_move_subscribed', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'subscription', sub, 'source_region', m.source_region, 'by', session_user));
  RETURN subid;
END
$$;
COMMENT ON FUNCTION tenancy.move_target_subscribe(uuid) IS
  'live move, target: subscribes to the source region''s publication (its registered connection; initial copy, '
  'then streaming), only the move''s tables; returns its oid';

-- Deprecated (0.2.0 form): the connection string is accepted only when it is the one registered for the source
-- region in tenancy.region_connections; use move_target_subscribe(tenant_id).
CREATE FUNCTION tenancy.move_target_subscribe(tenant_id uuid, source_conninfo text) RETURNS oid
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'target');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM tenancy.region_connections c WHERE c.region OPERATOR(pg_catalog.=) m.source_region
                    AND c.conninfo OPERATOR(pg_catalog.=) source_conninfo) THEN
    RAISE EXCEPTION USING ERRCODE = 'insufficient_privilege',
      MESSAGE = pg_catalog.format('the connection string is not the one registered for region "%s"', m.source_region),
      DETAIL = 'A move subscribes only with the connection a superuser registered in tenancy.region_connections.',
      HINT = 'Call tenancy.move_target_subscribe(tenant_id), which uses the registered connection.';
  END IF;
  RETURN tenancy.move_target_subscribe(tenant_id);
END
$$;
COMMENT ON FUNCTION tenancy.move_target_subscribe(uuid, text) IS
  'deprecated: move_target_subscribe(tenant_id); the connection string must be the source region''s registered one';

-- Progress on the target: per table its sync state (pg_subscription_rel: i init, d copying, f copied, s synced,
-- r ready) and the tenant's rows here, the marker epoch applied so far, and the subscription's health.
CREATE FUNCTION tenancy.move_target_progress(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
  sub record;
  t record;
  n pg_catalog.int8;
  tables pg_catalog.jsonb := '[]';
  copied pg_catalog.int8 := 0;
  ready pg_catalog.bool := true;
BEGIN
  SELECT * INTO m FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) move_target_progress.tenant_id
     AND mv.side OPERATOR(pg_catalog.=) 'target';
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  SELECT s.oid, s.subenabled INTO sub FROM pg_catalog.pg_subscription s
   WHERE s.subname OPERATOR(pg_catalog.=) m.subscription_name;
  FOR t IN SELECT x.relid, x.tenant_column,
                  (SELECT r.srsubstate FROM pg_catalog.pg_subscription_rel r
                    WHERE r.srsubid OPERATOR(pg_catalog.=) sub.oid AND r.srrelid OPERATOR(pg_catalog.=) x.relid::pg_catalog.oid) AS state
             FROM tenancy._move_tables() x ORDER BY x.relid::pg_catalog.text LOOP
    -- counted with superuser rights: planning the count must run no code of the owner's, nor may a
    -- tenant column of the owner's type bring its cast to uuid into the comparison
    PERFORM tenancy._require_plain_read(t.relid);
    IF (SELECT a.atttypid FROM pg_catalog.pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) t.relid AND a.attname OPERATOR(pg_catalog.=) t.tenant_column
           AND NOT a.attisdropped) IS DISTINCT FROM 'pg_catalog.uuid'::pg_catalog.regtype THEN
      RAISE EXCEPTION 'cannot move % of a tenant: it is no longer a table with a uuid column "%"', t.relid,
        t.tenant_column USING ERRCODE = '42804',
        HINT = 'Restore the table and its tenant column, or disable isolation of it with tenancy.disable_isolation().';
    END IF;
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s x WHERE x.%I OPERATOR(pg_catalog.=) $1', t.relid,
                   t.tenant_column) INTO n USING tenant_id;
    tables := tables OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'table', t.relid::pg_catalog.text, 'state', t.state, 'rows', n));
    copied := copied OPERATOR(pg_catalog.+) n;
    ready := ready AND coalesce(t.state OPERATOR(pg_catalog.=) 'r', false);
  END LOOP;
  RETURN pg_catalog.jsonb_build_object(
    'phase', m.phase, 'subscribed', sub.oid IS NOT NULL, 'subscription_oid', sub.oid,
    'subscription_enabled', coalesce(sub.subenabled, false), 'all_ready', ready AND sub.oid IS NOT NULL,
    'rows_copied', copied, 'tables', tables,
    'marker_epoch', (SELECT k.epoch FROM tenancy.move_markers k WHERE k.tenant_id OPERATOR(pg_catalog.=) move_target_progress.tenant_id),
    'received_lsn', (SELECT st.latest_end_lsn::pg_catalog.text FROM pg_catalog.pg_stat_subscription st
                      WHERE st.subid OPERATOR(pg_catalog.=) sub.oid AND st.relid IS NULL));
END
$$;
COMMENT ON FUNCTION tenancy.move_target_progress(uuid) IS
  'live move, target: per-table sync state and rows copied, marker epoch, subscription health';

-- Cheap check for the freeze's wait (no row counts): the marker epoch of the freeze has been applied here and every
-- table is ready, so everything the source committed before its freeze is here.
CREATE FUNCTION tenancy.move_target_caught_up(tenant_id uuid, epoch bigint) RETURNS boolean
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT k.epoch OPERATOR(pg_catalog.>=) move_target_caught_up.epoch FROM tenancy.move_markers k
                    WHERE k.tenant_id OPERATOR(pg_catalog.=) move_target_caught_up.tenant_id), false)
     AND EXISTS (SELECT 1 FROM tenancy.tenant_moves m JOIN pg_catalog.pg_subscription s
                   ON s.subname OPERATOR(pg_catalog.=) m.subscription_name
                  WHERE m.tenant_id OPERATOR(pg_catalog.=) move_target_caught_up.tenant_id
                    AND m.side OPERATOR(pg_catalog.=) 'target'
                    AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription_rel r
                                     WHERE r.srsubid OPERATOR(pg_catalog.=) s.oid
                                       AND r.srsubstate OPERATOR(pg_catalog.<>) 'r'))
$$;
COMMENT ON FUNCTION tenancy.move_target_caught_up(uuid, bigint) IS
  'live move, target: true once the freeze''s marker epoch is applied and every table is ready';

-- The recipient key the source seals the tenant's data keys to: derived from this cluster's master key and a fresh
-- nonce, so nothing is stored; returns {nonce, public_key} (hex), both safe to pass through the orchestrator.
CREATE FUNCTION tenancy.move_target_transport_key(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'target');
  nonce pg_catalog.bytea := pg_catalog.uuid_send(pg_catalog.gen_random_uuid());
BEGIN
  RETURN pg_catalog.jsonb_build_object('nonce', pg_catalog.encode(nonce, 'hex'),
                                       'public_key', pg_catalog.encode(tenancy._move_transport_key(nonce), 'hex'));
END
$$;
COMMENT ON FUNCTION tenancy.move_target_transport_key(uuid) IS
  'live move, target: a recipient public key (and its nonce) for the source to seal the tenant''s data keys to';

CREATE FUNCTION tenancy._move_drop_subscription(sub name) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_subscription s WHERE s.subname OPERATOR(pg_catalog.=) sub) THEN
    RETURN false;
  END IF;
  -- Without a slot name DROP SUBSCRIPTION runs inside a transaction and never needs the source: the source drops
  -- its own slot (move_source_finish).
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I DISABLE', sub);
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', sub);
  EXECUTE pg_catalog.format('DROP SUBSCRIPTION %I', sub);
  RETURN true;
END
$$;
COMMENT ON FUNCTION tenancy._move_drop_subscription(name) IS 'internal: drops a move''s subscription, leaving its slot';

-- The switch, on the target, while the source is frozen: checks that the marker epoch of the freeze has arrived
-- and every table is ready, disables the subscription, re-wraps the sealed keys under this cluster's master key, and
-- carries over the registry row (but its residency), quota usage, sequence values and audit events. The tenant is
-- then live here: the orchestrator switches the directory and calls move_source_finish(id, 'switched').
CREATE FUNCTION tenancy.move_target_switch(tenant_id uuid, epoch bigint, handover jsonb, nonce text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'target');
  k pg_catalog.jsonb;
  src tenancy.tenants;
  fp pg_catalog.bytea;
  stored pg_catalog.bytea;
  q record;
  s record;
  ev pg_catalog.jsonb;
  nkeys pg_catalog.int4 := 0;
  nevents pg_catalog.int4 := 0;
BEGIN
  IF NOT tenancy.move_target_caught_up(tenant_id, epoch) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" has not caught up with the freeze', tenant_id),
      DETAIL = pg_catalog.format('Marker epoch %s has not been applied here, or a table is not ready yet.', epoch),
      HINT = 'Wait until tenancy.move_target_caught_up() is true.';
  END IF;
  -- Stopped, not dropped: DROP SUBSCRIPTION waits for its workers, and the freeze lasts until this commits.
  -- Disabled it applies nothing more, and the source drops its slot before it deletes the tenant's rows.
  EXECUTE pg_catalog.format('ALTER SUBSCRIPTION %I DISABLE', m.subscription_name);
  DELETE FROM tenancy.tenant_moves WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;
  DELETE FROM tenancy.move_markers WHERE move_markers.tenant_id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;

  -- Keys: wrapped by the source's master key there, sealed to our recipient key in transit, wrapped by ours here.
  IF pg_catalog.jsonb_array_length(handover OPERATOR(pg_catalog.->) 'keys') OPERATOR(pg_catalog.>) 0 THEN
    fp := tenancy._move_master_fingerprint();
    SELECT f.fingerprint INTO stored FROM tenancy.master_key_fingerprint f;
    IF stored IS NULL THEN
      INSERT INTO tenancy.master_key_fingerprint (fingerprint) VALUES (fp);
    ELSIF stored OPERATOR(pg_catalog.<>) fp THEN
      RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
        MESSAGE = 'the master key of this cluster does not match tenancy.master_key_fingerprint',
        HINT = 'Fix tenancy.master_key_file before moving tenants here.';
    END IF;
  END IF;
  DELETE FROM tenancy.tenant_keys tk WHERE tk.tenant_id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;
  FOR k IN SELECT x.value FROM pg_catalog.jsonb_array_elements(handover OPERATOR(pg_catalog.->) 'keys') x LOOP
    INSERT INTO tenancy.tenant_keys (tenant_id, version, wrapped_key, created_at, destroyed_at)
    VALUES (tenant_id, (k OPERATOR(pg_catalog.->>) 'version')::pg_catalog.int4,
            CASE WHEN k OPERATOR(pg_catalog.->>) 'sealed' IS NOT NULL THEN
              tenancy._move_open_key(tenant_id, (k OPERATOR(pg_catalog.->>) 'version')::pg_catalog.int4, pg_catalog.decode(k OPERATOR(pg_catalog.->>) 'sealed', 'base64'),
                                     pg_catalog.decode(nonce, 'hex')) END,
            (k OPERATOR(pg_catalog.->>) 'created_at')::pg_catalog.timestamptz, (k OPERATOR(pg_catalog.->>) 'destroyed_at')::pg_catalog.timestamptz);
    nkeys := nkeys OPERATOR(pg_catalog.+) 1;
  END LOOP;

  src := pg_catalog.jsonb_populate_record(NULL::tenancy.tenants, handover OPERATOR(pg_catalog.->) 'tenant');
  UPDATE tenancy.tenants t SET organization_name = src.organization_name, display_name = src.display_name,
         slug = src.slug, status = src.status, plan = src.plan, encryption_key_id = src.encryption_key_id,
         configuration = src.configuration, updated_at = src.updated_at, trial_ends_at = src.trial_ends_at
   WHERE t.id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;

  IF pg_catalog.to_regprocedure('tenancy._quota_set_count(uuid,text,bigint)') IS NOT NULL THEN
    FOR q IN SELECT x.key, x.value FROM pg_catalog.jsonb_each(handover OPERATOR(pg_catalog.->) 'quota') x
              WHERE pg_catalog.jsonb_typeof(x.value) OPERATOR(pg_catalog.=) 'number' LOOP
      PERFORM tenancy._quota_set_count(tenant_id, q.key, (q.value OPERATOR(pg_catalog.#>>) '{}')::pg_catalog.int8);
    END LOOP;
  END IF;
  -- Sequences are shared by every tenant of a table: never moved backwards.
  FOR s IN SELECT pg_catalog.to_regclass(x.key) AS seq, (x.value OPERATOR(pg_catalog.#>>) '{}')::pg_catalog.int8 AS v
             FROM pg_catalog.jsonb_each(handover OPERATOR(pg_catalog.->) 'sequences') x
            WHERE pg_catalog.jsonb_typeof(x.value) OPERATOR(pg_catalog.=) 'number' LOOP
    CONTINUE WHEN s.seq IS NULL;
    IF s.v OPERATOR(pg_catalog.>) coalesce(pg_catalog.pg_sequence_last_value(s.seq), 0) THEN
      PERFORM pg_catalog.setval(s.seq, s.v);
    END IF;
  END LOOP;
  -- History is re-appended to this cluster's own chain, each event carrying the original with its hashes.
  FOR ev IN SELECT x.value FROM pg_catalog.jsonb_array_elements(handover OPERATOR(pg_catalog.->) 'audit') WITH ORDINALITY x(value, i)
             ORDER BY x.i LOOP
    PERFORM tenancy._audit('audit_event_imported', tenant_id, NULL, ev);
    nevents := nevents OPERATOR(pg_catalog.+) 1;
  END LOOP;

  PERFORM tenancy._audit('tenant_moved_in', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'source_region', m.source_region, 'epoch', epoch, 'keys', nkeys, 'audit_events', nevents, 'by', session_user));
  RETURN pg_catalog.jsonb_build_object('keys', nkeys, 'audit_events', nevents);
END
$$;
COMMENT ON FUNCTION tenancy.move_target_switch(uuid, bigint, jsonb, text) IS
  'live move, target (source frozen, caught up): re-wrapped keys, registry row, quota, sequences, audit; tenant live';

-- After the switch, outside the freeze: drops the (disabled) subscription and, with the last move, the guards.
-- Idempotent; returns whether a subscription was dropped.
CREATE FUNCTION tenancy.move_target_finish(tenant_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  dropped pg_catalog.bool;
BEGIN
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) move_target_finish.tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = pg_catalog.format('the move of tenant "%s" has not switched yet', tenant_id),
      HINT = 'Call tenancy.move_target_switch() first, or tenancy.move_target_abort() to give up.';
  END IF;
  dropped := tenancy._move_drop_subscription(tenancy._move_name(tenant_id));
  IF NOT EXISTS (SELECT 1 FROM tenancy.tenant_moves) THEN
    PERFORM tenancy._move_set_guards(false);
  END IF;
  RETURN dropped;
END
$$;
COMMENT ON FUNCTION tenancy.move_target_finish(uuid) IS
  'live move, target (after the switch): drops the disabled subscription and, with the last move, the guards';

-- Removes the leftovers of a failed move into this cluster: the subscription, the tenant's rows and keys, the move
-- row. Only a tenant this cluster holds as a move target (never a tenant that lives here). Safe to repeat; returns
-- whether there was anything to remove.
CREATE FUNCTION tenancy.move_target_abort(tenant_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
BEGIN
  PERFORM tenancy._move_unguard_last(tenant_id, 'target');
  SELECT * INTO m FROM tenancy.tenant_moves mv WHERE mv.tenant_id OPERATOR(pg_catalog.=) move_target_abort.tenant_id
     AND mv.side OPERATOR(pg_catalog.=) 'target' FOR UPDATE;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  PERFORM tenancy._move_drop_subscription(m.subscription_name);
  DELETE FROM tenancy.tenant_moves WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_target_abort.tenant_id;
  DELETE FROM tenancy.move_markers WHERE move_markers.tenant_id OPERATOR(pg_catalog.=) move_target_abort.tenant_id;
  PERFORM tenancy._audit('tenant_move_rolled_back', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'side', 'target', 'source_region', m.source_region, 'by', session_user));
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) move_target_abort.tenant_id) THEN
    PERFORM tenancy.delete_tenant(tenant_id, erase => true);
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION tenancy.move_target_abort(uuid) IS
  'live move, target: removes a failed move''s subscription and copied rows (never a tenant living here)';

-- The key hand-over primitives (extension/pg/move_keys.cpp); called only by the functions above, as the owner.
CREATE FUNCTION tenancy._move_transport_key(nonce bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_move_transport_key';
COMMENT ON FUNCTION tenancy._move_transport_key(bytea) IS
  'internal: X25519 public key derived from the master key and a nonce (recipient of a move''s data keys)';
CREATE FUNCTION tenancy._move_seal_key(tenant uuid, version integer, wrapped bytea, recipient bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_move_seal_key';
COMMENT ON FUNCTION tenancy._move_seal_key(uuid, integer, bytea, bytea) IS
  'internal: unwraps a data key with the master key and seals it to a recipient key';
CREATE FUNCTION tenancy._move_open_key(tenant uuid, version integer, sealed bytea, nonce bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_move_open_key';
COMMENT ON FUNCTION tenancy._move_open_key(uuid, integer, bytea, bytea) IS
  'internal: opens a sealed data key and wraps it under the master key';
CREATE FUNCTION tenancy._move_master_fingerprint() RETURNS bytea
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_move_master_fingerprint';
COMMENT ON FUNCTION tenancy._move_master_fingerprint() IS 'internal: fingerprint of the current master key';

REVOKE ALL ON tenancy.tenant_moves, tenancy.move_markers, tenancy.move_replica_identities FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy._move_name(uuid), tenancy._move_tables(), tenancy._move_apply_hazards(),
  tenancy._move_guarded_tables(),
  tenancy._move_check(uuid[]), tenancy._move_guard(), tenancy.move_guard(uuid), tenancy._move_ddl(text[]),
  tenancy._move_set_guards(boolean),
  tenancy._move_unguard_last(uuid, text), tenancy._move_widen_identities(), tenancy._move_restore_identities(),
  tenancy._move_table_list(uuid), tenancy._move_lock_holders(uuid, boolean), tenancy._move_lock_try(uuid),
  tenancy._move_lock_release(uuid), tenancy.move_orphans(), tenancy.move_adopt(uuid),
  tenancy._move_record(uuid, text), tenancy.move_source_prepare(uuid, text), tenancy.move_source_create_slot(uuid),
  tenancy.move_source_progress(uuid), tenancy.move_source_freeze(uuid), tenancy.move_source_handover(uuid, bytea),
  tenancy.move_source_finish(uuid, text, oid), tenancy.move_target_prepare(jsonb, jsonb, text),
  tenancy.move_target_subscribe(uuid), tenancy.move_target_subscribe(uuid, text), tenancy.move_target_progress(uuid),
  tenancy.move_target_caught_up(uuid, bigint), tenancy.move_target_transport_key(uuid),
  tenancy._move_drop_subscription(name),
  tenancy.move_target_switch(uuid, bigint, jsonb, text), tenancy.move_target_finish(uuid),
  tenancy.move_target_abort(uuid), tenancy._move_transport_key(bytea), tenancy._move_seal_key(uuid, integer, bytea, bytea),
  tenancy._move_open_key(uuid, integer, bytea, bytea), tenancy._move_master_fingerprint() FROM PUBLIC;
GRANT SELECT ON tenancy.tenant_moves TO tenancy_admin;
-- Applications call move_guard before writes that bypass the guarded tables (consume); the rest is admin only.
GRANT EXECUTE ON FUNCTION tenancy.move_guard(uuid) TO tenancy_admin, tenancy_app;
GRANT EXECUTE ON FUNCTION tenancy.move_source_prepare(uuid, text), tenancy.move_source_create_slot(uuid),
  tenancy.move_source_progress(uuid), tenancy.move_source_freeze(uuid), tenancy.move_source_handover(uuid, bytea),
  tenancy.move_source_finish(uuid, text, oid), tenancy.move_target_prepare(jsonb, jsonb, text),
  tenancy.move_target_subscribe(uuid), tenancy.move_target_subscribe(uuid, text), tenancy.move_target_progress(uuid),
  tenancy.move_target_caught_up(uuid, bigint), tenancy.move_target_transport_key(uuid),
  tenancy.move_target_switch(uuid, bigint, jsonb, text), tenancy.move_target_finish(uuid),
  tenancy.move_target_abort(uuid), tenancy.move_orphans(), tenancy.move_adopt(uuid) TO tenancy_admin;
