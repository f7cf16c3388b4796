-- sql/src/50_quota.sql
-- Quota metering: durable counters, usage history, consume/release/set_usage, track_quota, reports, overrides.

-- One row per (tenant, metric): the durable upper bound ("reserved") of the usage of the current window. The
-- metering code overwrites it in place (like a sequence: non-transactional, WAL-logged and flushed) and never
-- updates it through MVCC, so it must never be edited by hand. With the library preloaded, usage itself lives in
-- shared memory and reserved runs up to one block ahead of it; without, reserved is the usage.
CREATE TABLE tenancy.quota_counters (
  tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
  metric text NOT NULL CHECK (metric IN ('users', 'projects', 'api_calls', 'storage_mb', 'ai_requests',
                                         'concurrent_sessions')),
  window_start date NOT NULL DEFAULT '1970-01-01',
  reserved bigint NOT NULL DEFAULT 0 CHECK (reserved >= 0),
  active_day date NOT NULL DEFAULT '1970-01-01',
  CONSTRAINT quota_counters_pkey PRIMARY KEY (tenant_id, metric)
);
COMMENT ON TABLE tenancy.quota_counters IS
  'durable quota reservations, written in place by the metering code only (see docs/quotas.md)';
COMMENT ON COLUMN tenancy.quota_counters.window_start IS 'first day (UTC) of the window the row counts';
COMMENT ON COLUMN tenancy.quota_counters.reserved IS 'upper bound of the usage of that window (the usage itself without shared memory)';
COMMENT ON COLUMN tenancy.quota_counters.active_day IS 'last UTC day with metering activity';
-- The users rows are left out: restoring tenancy.users counts its rows again through the trigger below.
SELECT pg_catalog.pg_extension_config_dump('tenancy.quota_counters', 'WHERE metric OPERATOR(pg_catalog.<>) ''users''');

-- pg_restore inserts the tenants first (whose trigger creates fresh counter rows), then this table's rows: each
-- restored row replaces the fresh one instead of colliding with it.
CREATE FUNCTION tenancy._quota_counters_merge_restored_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE tenancy.quota_counters SET window_start = NEW.window_start, reserved = NEW.reserved,
         active_day = NEW.active_day
   WHERE tenant_id OPERATOR(pg_catalog.=) NEW.tenant_id AND metric OPERATOR(pg_catalog.=) NEW.metric;
  IF FOUND THEN
    RETURN NULL;
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION tenancy._quota_counters_merge_restored_row() IS
  'internal: a restored quota_counters row replaces the one created with its tenant';
CREATE TRIGGER quota_counters_merge_restored_row BEFORE INSERT ON tenancy.quota_counters
  FOR EACH ROW EXECUTE FUNCTION tenancy._quota_counters_merge_restored_row();

-- Daily readings of every metric, written as metering happens (the closing reading of a day is recorded on the
-- first activity of a later day), kept 400 days.
CREATE TABLE tenancy.usage_history (
  tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
  metric text NOT NULL,
  day date NOT NULL,
  value bigint NOT NULL,
  PRIMARY KEY (tenant_id, metric, day)
);
COMMENT ON TABLE tenancy.usage_history IS
  'reading of each metric at the end of each active UTC day (window usage for api_calls/ai_requests), 400 days';
SELECT pg_catalog.pg_extension_config_dump('tenancy.usage_history', '');

-- Tables whose rows track_quota counts.
CREATE TABLE tenancy.quota_tracked_tables (
  table_name regclass PRIMARY KEY,
  metric text NOT NULL CHECK (metric IN ('users', 'projects')),
  tenant_column name NOT NULL,
  status_column name
);
COMMENT ON TABLE tenancy.quota_tracked_tables IS 'tables whose rows count against a metric (track_quota)';

-- Counter rows of a tenant; idempotent.
CREATE FUNCTION tenancy._quota_create_counters(tenant uuid) RETURNS void
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  -- only missing rows reach the INSERT (and its restore-merge trigger): an existing row is never rewritten
  INSERT INTO tenancy.quota_counters (tenant_id, metric)
  SELECT tenant, m FROM pg_catalog.unnest(ARRAY['users', 'projects', 'api_calls', 'storage_mb', 'ai_requests',
                                                'concurrent_sessions']) AS m
   WHERE NOT EXISTS (SELECT 1 FROM tenancy.quota_counters c
                      WHERE c.tenant_id OPERATOR(pg_catalog.=) tenant AND c.metric OPERATOR(pg_catalog.=) m)
  ON CONFLICT (tenant_id, metric) DO NOTHING;
$$;
COMMENT ON FUNCTION tenancy._quota_create_counters(uuid) IS 'internal: creates the six counter rows of a tenant';

-- SECURITY DEFINER: tenant creation runs as tenancy_admin, which has no privilege on the counter table.
CREATE FUNCTION tenancy._quota_tenant_created() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM tenancy._quota_create_counters(NEW.id);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION tenancy._quota_tenant_created() IS 'internal: creates the counter rows of a new tenant';
CREATE TRIGGER tenants_quota_counters AFTER INSERT ON tenancy.tenants
  FOR EACH ROW EXECUTE FUNCTION tenancy._quota_tenant_created();

-- A plan change, an override or a tenant's deletion applies at once: cached limits reload before their next use.
CREATE FUNCTION tenancy._quota_limits_changed() RETURNS trigger
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_quota_limits_changed';
COMMENT ON FUNCTION tenancy._quota_limits_changed() IS 'internal: invalidates every cached quota limit';
CREATE TRIGGER plans_quota_limits_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.plans
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._quota_limits_changed();
CREATE TRIGGER overrides_quota_limits_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.quota_overrides
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._quota_limits_changed();
-- only a plan change touches limits (other tenant updates must not make every counter reload); a deleted tenant's
-- counters find out on their next reload
CREATE TRIGGER tenants_quota_plan_changed AFTER UPDATE OF plan ON tenancy.tenants
  FOR EACH ROW WHEN (OLD.plan IS DISTINCT FROM NEW.plan) EXECUTE FUNCTION tenancy._quota_limits_changed();
CREATE TRIGGER tenants_quota_limits_changed AFTER DELETE OR TRUNCATE ON tenancy.tenants
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._quota_limits_changed();

-- Metering.
CREATE FUNCTION tenancy.consume(tenant_id uuid, metric text, amount bigint DEFAULT 1) RETURNS boolean
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_consume';
COMMENT ON FUNCTION tenancy.consume(uuid, text, bigint) IS
  'counts amount against the metric''s limit and returns true, or returns false (audited) when it would exceed it; not rolled back with the transaction';

CREATE FUNCTION tenancy.consume_or_raise(tenant_id uuid, metric text, amount bigint DEFAULT 1) RETURNS boolean
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_consume_or_raise';
COMMENT ON FUNCTION tenancy.consume_or_raise(uuid, text, bigint) IS
  'like consume, but raises TN003 (quota exceeded) instead of returning false';

CREATE FUNCTION tenancy.release(tenant_id uuid, metric text, amount bigint DEFAULT 1) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_release';
COMMENT ON FUNCTION tenancy.release(uuid, text, bigint) IS
  'gives back amount of a gauge''s usage (storage_mb, concurrent_sessions; never below zero)';

CREATE FUNCTION tenancy.set_usage(tenant_id uuid, metric text, value bigint) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_set_usage';
COMMENT ON FUNCTION tenancy.set_usage(uuid, text, bigint) IS
  'sets a gauge (storage_mb, concurrent_sessions) to its measured value';

CREATE FUNCTION tenancy._consume_at(tenant_id uuid, metric text, amount bigint, at timestamptz) RETURNS boolean
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_consume_at';
COMMENT ON FUNCTION tenancy._consume_at(uuid, text, bigint, timestamptz) IS
  'internal: consume as if the clock read "at" (tests of window boundaries)';

CREATE FUNCTION tenancy._quota_state(tenant_id uuid, metric text, at timestamptz DEFAULT pg_catalog.now(),
  OUT window_start date, OUT used bigint, OUT reserved bigint, OUT max bigint, OUT active_day date,
  OUT shared boolean)
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_quota_state';
COMMENT ON FUNCTION tenancy._quota_state(uuid, text, timestamptz) IS
  'internal: a quota counter as the metering code sees it at a time';

CREATE FUNCTION tenancy._quota_set_count(tenant_id uuid, metric text, value bigint) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_quota_set_count';
COMMENT ON FUNCTION tenancy._quota_set_count(uuid, text, bigint) IS 'internal: sets any counter (reconciliation)';

-- Reports.
CREATE FUNCTION tenancy.usage(tenant_id uuid, include_descendants boolean DEFAULT false) RETURNS jsonb
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_usage';
COMMENT ON FUNCTION tenancy.usage(uuid, boolean) IS
  'current usage, quotas and utilization of a tenant (summed over its descendants on request)';

CREATE FUNCTION tenancy._quota_metric_list(metrics text[]) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  all_metrics CONSTANT text[] := ARRAY['users', 'projects', 'api_calls', 'storage_mb', 'ai_requests',
                                       'concurrent_sessions'];
  result text[] := ARRAY[]::text[];
  m text;
BEGIN
  IF metrics IS NULL THEN
    RETURN all_metrics;
  END IF;
  FOREACH m IN ARRAY metrics LOOP
    IF m OPERATOR(pg_catalog.=) 'storage' THEN
      m := 'storage_mb';
    END IF;
    IF m IS NULL OR NOT m OPERATOR(pg_catalog.=) ANY (all_metrics) THEN
      PERFORM tenancy._invalid_input(format('unknown quota metric "%s"', m), NULL,
        'The metrics are users, projects, api_calls, storage_mb (alias storage), ai_requests and concurrent_sessions.');
    END IF;
    IF NOT m OPERATOR(pg_catalog.=) ANY (result) THEN
      result := result OPERATOR(pg_catalog.||) m;
    END IF;
  END LOOP;
  RETURN result;
END
$$;
COMMENT ON FUNCTION tenancy._quota_metric_list(text[]) IS 'internal: validated metric names (all when NULL), TN005 otherwise';

-- SECURITY DEFINER: reads usage_history and the live counters, which tenancy_admin cannot read directly.
CREATE FUNCTION tenancy.usage_trends(tenant_id uuid, period interval DEFAULT '30 days', metrics text[] DEFAULT NULL)
RETURNS TABLE (day date, metric text, value bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  wanted text[] := tenancy._quota_metric_list(metrics);
  today date := (pg_catalog.now() AT TIME ZONE 'UTC')::date;
  first_day date;
BEGIN
  IF tenant_id IS NULL THEN
    PERFORM tenancy._invalid_input('tenant_id must not be null');
  END IF;
  IF period IS NULL OR period OPERATOR(pg_catalog.<=) interval '0' OR period OPERATOR(pg_catalog.>) interval '400 days' THEN
    PERFORM tenancy._invalid_input(format('invalid period "%s"', period), 'The period must be positive and at most 400 days.');
  END IF;
  IF NOT EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) usage_trends.tenant_id) THEN
    PERFORM tenancy._tenant_not_found(tenant_id);
  END IF;
  -- the days whose start lies within the period before now, today included
  first_day := ((pg_catalog.now() OPERATOR(pg_catalog.-) period) AT TIME ZONE 'UTC')::date;
  RETURN QUERY
    WITH live AS (
      SELECT s.active_day AS day, m AS metric, s.used AS value
        FROM pg_catalog.unnest(wanted) AS m,
             LATERAL tenancy._quota_state(usage_trends.tenant_id, m) AS s
       WHERE s.active_day IS NOT NULL)
    SELECT l.day, l.metric, l.value FROM live l
     WHERE l.day OPERATOR(pg_catalog.>=) first_day AND l.day OPERATOR(pg_catalog.<=) today
    UNION ALL
    SELECT h.day, h.metric, h.value FROM tenancy.usage_history h
     WHERE h.tenant_id OPERATOR(pg_catalog.=) usage_trends.tenant_id
       AND h.metric OPERATOR(pg_catalog.=) ANY (wanted)
       AND h.day OPERATOR(pg_catalog.>=) first_day AND h.day OPERATOR(pg_catalog.<=) today
       AND NOT EXISTS (SELECT 1 FROM live l WHERE l.day OPERATOR(pg_catalog.=) h.day
                                              AND l.metric OPERATOR(pg_catalog.=) h.metric)
    ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION tenancy.usage_trends(uuid, interval, text[]) IS
  'daily readings of a tenant''s metrics over a period (at most 400 days), the current day live';

-- Overrides (SECURITY INVOKER: tenancy_admin writes quota_overrides with its own privileges, and the audit event
-- names the real caller).
CREATE FUNCTION tenancy.set_quota_override(tenant_id uuid, metric text, max bigint) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  previous bigint;
BEGIN
  IF tenant_id IS NULL THEN
    PERFORM tenancy._invalid_input('tenant_id must not be null');
  END IF;
  IF metric IS NULL OR NOT metric OPERATOR(pg_catalog.=) ANY (ARRAY['users', 'projects', 'api_calls', 'storage_mb',
                                                                   'ai_requests', 'concurrent_sessions']) THEN
    PERFORM tenancy._invalid_input(format('unknown quota metric "%s"', metric), NULL,
      'The metrics are users, projects, api_calls, storage_mb, ai_requests and concurrent_sessions.');
  END IF;
  IF max OPERATOR(pg_catalog.<) 0 THEN
    PERFORM tenancy._invalid_input('quota limit must not be negative', format('The limit given was %s.', max));
  END IF;
  PERFORM 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) set_quota_override.tenant_id FOR KEY SHARE;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(tenant_id);
  END IF;
  SELECT o.max_value INTO previous FROM tenancy.quota_overrides o
   WHERE o.tenant_id OPERATOR(pg_catalog.=) set_quota_override.tenant_id
     AND o.metric OPERATOR(pg_catalog.=) set_quota_override.metric;
  IF max IS NULL THEN
    DELETE FROM tenancy.quota_overrides o
     WHERE o.tenant_id OPERATOR(pg_catalog.=) set_quota_override.tenant_id
       AND o.metric OPERATOR(pg_catalog.=) set_quota_override.metric;
  ELSE
    INSERT INTO tenancy.quota_overrides AS o (tenant_id, metric, max_value) VALUES (tenant_id, metric, max)
      ON CONFLICT ON CONSTRAINT quota_overrides_pkey DO UPDATE SET max_value = EXCLUDED.max_value;
  END IF;
  PERFORM tenancy._audit('quota_override_set', tenant_id,
    pg_catalog.jsonb_build_object('metric', metric, 'max', previous),
    pg_catalog.jsonb_build_object('metric', metric, 'max', max));
END
$$;
COMMENT ON FUNCTION tenancy.set_quota_override(uuid, text, bigint) IS
  'sets a tenant''s own limit for a metric, replacing the plan figure; NULL removes the override';

-- Row counting.
CREATE FUNCTION tenancy._quota_track() RETURNS trigger
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_quota_track';
COMMENT ON FUNCTION tenancy._quota_track() IS
  'internal: row trigger of track_quota; counts rows per tenant and refuses inserts past the limit (TN003)';

-- The rows of one tenant in the tables tracked for a metric (counters of users and projects load from this).
-- Runs as the superuser (the owner role has no right on application tables), so it reads only what runs no code
-- of the table owner's: a plain or partitioned table (not one turned into a view) whose tenant column is still
-- exactly uuid (a type of the owner's could bring an implicit cast function into the comparison).
CREATE FUNCTION tenancy._quota_count_rows(tenant uuid, metric text) RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  tracked record;
  total pg_catalog.int8 := 0;
  n pg_catalog.int8;
BEGIN
  FOR tracked IN SELECT q.*, c.relkind, a.atttypid
                   FROM tenancy.quota_tracked_tables q
                   JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) q.table_name
                   LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) c.oid
                        AND a.attname OPERATOR(pg_catalog.=) q.tenant_column AND NOT a.attisdropped
                  WHERE q.metric OPERATOR(pg_catalog.=) _quota_count_rows.metric
                  ORDER BY q.table_name::pg_catalog.oid LOOP
    IF NOT (tracked.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[]))
       OR tracked.atttypid IS DISTINCT FROM 'pg_catalog.uuid'::pg_catalog.regtype THEN
      RAISE EXCEPTION 'tracked table % no longer has a uuid column "%"', tracked.table_name, tracked.tenant_column
        USING ERRCODE = '42804',
              HINT = 'Restore the table and its tenant column, or run tenancy.track_quota() on a table that has one.';
    END IF;
    -- Read with superuser rights: planning the count must run no code of the table's owner. On the write path
    -- (a counter's first load), so without holding off a VACUUM or CREATE INDEX of the table.
    PERFORM tenancy._require_plain_read(tracked.table_name, false);
    EXECUTE pg_catalog.format('SELECT pg_catalog.count(*) FROM %s WHERE %I OPERATOR(pg_catalog.=) $1%s',
                   tracked.table_name, tracked.tenant_column,
                   CASE WHEN tracked.status_column IS NULL THEN ''
                        ELSE pg_catalog.format(' AND %I::pg_catalog.text OPERATOR(pg_catalog.<>) ''disabled''',
                                               tracked.status_column) END)
      INTO n USING tenant;
    total := total OPERATOR(pg_catalog.+) n;
  END LOOP;
  RETURN total;
END
$$;
COMMENT ON FUNCTION tenancy._quota_count_rows(uuid, text) IS
  'internal: rows of a tenant in the tables tracked for users or projects';

-- Recounts the rows of every tracked table of a metric (all metrics when NULL) and sets the counters to the
-- counts. SHARE locks keep inserts and deletes out while counting, so the result is exact. Returns the counters
-- that changed.
CREATE FUNCTION tenancy.reconcile_quota(metric text DEFAULT NULL)
RETURNS TABLE (tenant_id uuid, metric_name text, previous bigint, counted bigint)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m text;
  tracked record;
  counts jsonb;
  r record;
BEGIN
  IF metric IS NOT NULL AND NOT metric OPERATOR(pg_catalog.=) ANY (ARRAY['users', 'projects']) THEN
    PERFORM tenancy._invalid_input(format('cannot reconcile metric "%s"', metric),
      'Only the row counts users and projects are recounted.');
  END IF;
  -- tables dropped since they were tracked are forgotten
  DELETE FROM tenancy.quota_tracked_tables q
   WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) q.table_name);
  FOREACH m IN ARRAY coalesce(ARRAY[metric], ARRAY['users', 'projects']) LOOP
    counts := '{}';
    FOR tracked IN SELECT * FROM tenancy.quota_tracked_tables q WHERE q.metric OPERATOR(pg_catalog.=) m
                    ORDER BY q.table_name::oid LOOP
      -- Read and grouped with superuser rights: only a table whose tenant column is exactly uuid (a type of the
      -- owner's could bring a cast function into r.t::text), as _quota_count_rows requires.
      IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a
                         ON a.attrelid OPERATOR(pg_catalog.=) c.oid
                      WHERE c.oid OPERATOR(pg_catalog.=) tracked.table_name
                        AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
                        AND a.attname OPERATOR(pg_catalog.=) tracked.tenant_column AND NOT a.attisdropped
                        AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype) THEN
        RAISE EXCEPTION 'tracked table % no longer has a uuid column "%"', tracked.table_name, tracked.tenant_column
          USING ERRCODE = '42804',
                HINT = 'Restore the table and its tenant column, or run tenancy.track_quota() on a table that has one.';
      END IF;
      EXECUTE format('LOCK TABLE %s IN SHARE MODE', tracked.table_name);
      -- Read with superuser rights: planning the count must run no code of the table's owner.
      PERFORM tenancy._require_plain_read(tracked.table_name);
      FOR r IN EXECUTE format('SELECT %I AS t, pg_catalog.count(*) AS n FROM %s WHERE %I IS NOT NULL%s GROUP BY 1',
                              tracked.tenant_column, tracked.table_name, tracked.tenant_column,
                              CASE WHEN tracked.status_column IS NULL THEN ''
                                   ELSE format(' AND %I::text OPERATOR(pg_catalog.<>) ''disabled''',
                                               tracked.status_column) END) LOOP
        counts := counts OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(r.t::text,
                    coalesce((counts ->> r.t::text)::bigint, 0) OPERATOR(pg_catalog.+) r.n);
      END LOOP;
    END LOOP;
    FOR r IN SELECT t.id, coalesce((counts ->> t.id::text)::bigint, 0) AS n FROM tenancy.tenants t ORDER BY t.id LOOP
      tenant_id := r.id;
      metric_name := m;
      previous := (tenancy._quota_state(r.id, m)).used;
      counted := r.n;
      IF previous OPERATOR(pg_catalog.<>) counted THEN
        PERFORM tenancy._quota_set_count(r.id, m, r.n);
        RETURN NEXT;
      END IF;
    END LOOP;
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy.reconcile_quota(text) IS
  'recounts the rows of the tables tracked for users/projects and corrects the counters; returns the changes';

-- Admin only: creates the counting triggers on an application table and counts its current rows.
CREATE FUNCTION tenancy.track_quota(tbl regclass, metric text, tenant_column name DEFAULT 'tenant_id')
RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  coltype oid;
BEGIN
  IF tbl IS NULL OR tenant_column IS NULL THEN
    PERFORM tenancy._invalid_input('table and tenant column must not be null');
  END IF;
  IF metric IS NULL OR NOT metric OPERATOR(pg_catalog.=) ANY (ARRAY['users', 'projects']) THEN
    PERFORM tenancy._invalid_input(format('cannot track metric "%s" by rows', metric),
      'Row counts are kept for the metrics users and projects.',
      'Meter the other metrics with tenancy.consume() and tenancy.set_usage().');
  END IF;
  SELECT a.atttypid INTO coltype FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attname OPERATOR(pg_catalog.=) tenant_column
     AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
  IF NOT FOUND THEN
    PERFORM tenancy._invalid_input(format('column "%s" of relation %s does not exist', tenant_column, tbl));
  END IF;
  IF coltype OPERATOR(pg_catalog.<>) 'uuid'::regtype THEN
    PERFORM tenancy._invalid_input(format('column "%s" of relation %s must be of type uuid', tenant_column, tbl));
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) tbl
                  AND c.relkind IN ('r', 'p')) THEN
    PERFORM tenancy._invalid_input(format('%s is not a table', tbl));
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) tbl
              AND g.tgname OPERATOR(pg_catalog.=) 'tenancy_quota_count') THEN
    EXECUTE format('DROP TRIGGER tenancy_quota_count ON %s', tbl);
  END IF;
  IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) tbl
              AND g.tgname OPERATOR(pg_catalog.=) 'tenancy_quota_uncount') THEN
    EXECUTE format('DROP TRIGGER tenancy_quota_uncount ON %s', tbl);
  END IF;
  EXECUTE format('CREATE TRIGGER tenancy_quota_count BEFORE INSERT OR UPDATE OF %I ON %s FOR EACH ROW '
                 'EXECUTE FUNCTION tenancy._quota_track(%L, %L)', tenant_column, tbl, metric, tenant_column);
  EXECUTE format('CREATE TRIGGER tenancy_quota_uncount AFTER DELETE ON %s FOR EACH ROW '
                 'EXECUTE FUNCTION tenancy._quota_track(%L, %L)', tbl, metric, tenant_column);
  PERFORM tenancy._quota_register_tracked(tbl, metric, tenant_column);
END
$$;
COMMENT ON FUNCTION tenancy.track_quota(regclass, text, name) IS
  'counts the rows of a table per tenant against a metric (users or projects) and refuses inserts past the limit';

CREATE FUNCTION tenancy._quota_register_tracked(tbl regclass, metric text, tenant_column name) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Callable by tenancy_admin directly, and it runs as the superuser: only what track_quota has just prepared is
  -- recorded (a table or partitioned table with a uuid tenant column and the counting trigger, which only the
  -- table's owner could create), never a view or a column of the caller's own type (whose cast to text the recount
  -- would run with superuser rights).
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a
                     ON a.attrelid OPERATOR(pg_catalog.=) c.oid
                  WHERE c.oid OPERATOR(pg_catalog.=) tbl
                    AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
                    AND a.attname OPERATOR(pg_catalog.=) tenant_column AND a.attnum OPERATOR(pg_catalog.>) 0
                    AND NOT a.attisdropped AND a.atttypid OPERATOR(pg_catalog.=) 'pg_catalog.uuid'::pg_catalog.regtype)
     OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g
                     WHERE g.tgrelid OPERATOR(pg_catalog.=) tbl
                       AND g.tgname OPERATOR(pg_catalog.=) 'tenancy_quota_count'
                       AND g.tgfoid OPERATOR(pg_catalog.=) 'tenancy._quota_track()'::pg_catalog.regprocedure) THEN
    RAISE EXCEPTION 'table % is not prepared for row counting on column "%"', tbl, tenant_column
      USING ERRCODE = '42501', HINT = 'Use tenancy.track_quota().';
  END IF;
  INSERT INTO tenancy.quota_tracked_tables AS q (table_name, metric, tenant_column)
  VALUES (tbl, metric, tenant_column)
  ON CONFLICT (table_name) DO UPDATE SET metric = EXCLUDED.metric, tenant_column = EXCLUDED.tenant_column;
  PERFORM tenancy.reconcile_quota(metric);
END
$$;
COMMENT ON FUNCTION tenancy._quota_register_tracked(regclass, text, name) IS
  'internal: records a tracked table and recounts its metric';

-- tenancy.users counts against max_users while invited or active (disabled users do not count).
INSERT INTO tenancy.quota_tracked_tables (table_name, metric, tenant_column, status_column)
VALUES ('tenancy.users', 'users', 'tenant_id', 'status');
CREATE TRIGGER tenancy_quota_count BEFORE INSERT OR UPDATE OF tenant_id, status ON tenancy.users
  FOR EACH ROW EXECUTE FUNCTION tenancy._quota_track('users', 'tenant_id', 'status');
CREATE TRIGGER tenancy_quota_uncount AFTER DELETE ON tenancy.users
  FOR EACH ROW EXECUTE FUNCTION tenancy._quota_track('users', 'tenant_id', 'status');

-- Pooled quotas of a hierarchy: a child's use counts against its own limit and each ancestor's, atomically.
CREATE FUNCTION tenancy.consume_pooled(tenant_id uuid, metric text, amount bigint DEFAULT 1) RETURNS boolean
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_consume_pooled';
COMMENT ON FUNCTION tenancy.consume_pooled(uuid, text, bigint) IS
  'like consume, counting against the tenant''s limit and every ancestor''s at once (all or none)';
CREATE FUNCTION tenancy.release_pooled(tenant_id uuid, metric text, amount bigint DEFAULT 1) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_release_pooled';
COMMENT ON FUNCTION tenancy.release_pooled(uuid, text, bigint) IS
  'gives back a gauge''s consume_pooled amount to the tenant and every ancestor, at most what the tenant itself drew';

-- Per-tenant token buckets in shared memory (not durable: a restart refills them).
CREATE FUNCTION tenancy.rate_limit(tenant_id uuid, key text, per_second double precision, burst integer)
RETURNS boolean
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_rate_limit';
COMMENT ON FUNCTION tenancy.rate_limit(uuid, text, double precision, integer) IS
  'takes a token from the tenant''s bucket for key (burst tokens, refilled at per_second) or returns false';

-- Grants (SPEC.md "Roles and grants").
REVOKE ALL ON tenancy.quota_counters, tenancy.usage_history, tenancy.quota_tracked_tables FROM PUBLIC;
REVOKE ALL ON FUNCTION
  tenancy._quota_counters_merge_restored_row(), tenancy._quota_create_counters(uuid),
  tenancy._quota_tenant_created(), tenancy._quota_limits_changed(),
  tenancy.consume(uuid, text, bigint), tenancy.consume_or_raise(uuid, text, bigint),
  tenancy.release(uuid, text, bigint), tenancy.set_usage(uuid, text, bigint),
  tenancy._consume_at(uuid, text, bigint, timestamptz), tenancy._quota_state(uuid, text, timestamptz),
  tenancy._quota_set_count(uuid, text, bigint), tenancy.usage(uuid, boolean), tenancy._quota_metric_list(text[]),
  tenancy.usage_trends(uuid, interval, text[]), tenancy.set_quota_override(uuid, text, bigint),
  tenancy._quota_track(), tenancy.reconcile_quota(text), tenancy.track_quota(regclass, text, name),
  tenancy._quota_register_tracked(regclass, text, name), tenancy._quota_count_rows(uuid, text),
  tenancy.rate_limit(uuid, text, double precision, integer),
  tenancy.consume_pooled(uuid, text, bigint), tenancy.release_pooled(uuid, text, bigint)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  tenancy.consume(uuid, text, bigint), tenancy.consume_or_raise(uuid, text, bigint),
  tenancy.release(uuid, text, bigint), tenancy.set_usage(uuid, text, bigint), tenancy.usage(uuid, boolean),
  tenancy.rate_limit(uuid, text, double precision, integer), tenancy.consume_pooled(uuid, text, bigint),
  tenancy.release_pooled(uuid, text, bigint)
TO tenancy_admin, tenancy_app;
GRANT EXECUTE ON FUNCTION
  tenancy._consume_at(uuid, text, bigint, timestamptz), tenancy._quota_state(uuid, text, timestamptz),
  tenancy._quota_set_count(uuid, text, bigint), tenancy._quota_metric_list(text[]),
  tenancy.usage_trends(uuid, interval, text[]), tenancy.set_quota_override(uuid, text, bigint),
  tenancy.reconcile_quota(text), tenancy.track_quota(regclass, text, name),
  tenancy._quota_register_tracked(regclass, text, name),
  -- CREATE TRIGGER (track_quota, run with the caller's rights) needs EXECUTE on the trigger function
  tenancy._quota_track()
TO tenancy_admin;
-- track_quota attaches the counting trigger as its caller (the table's owner), and CREATE TRIGGER needs EXECUTE on
-- the function; a trigger function cannot be called directly.
GRANT EXECUTE ON FUNCTION tenancy._quota_track() TO tenancy_admin;
