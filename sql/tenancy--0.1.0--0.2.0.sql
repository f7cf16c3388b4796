-- ==== sql/upgrade/0.1.0--0.2.0-changes.sql
-- sql/upgrade/0.1.0--0.2.0-changes.sql
-- Hand-written part of the 0.1.0 -> 0.2.0 step: objects of 0.1.0 that changed. The Makefile appends the parts that
-- did not exist in 0.1.0 (quota, crypto, partitions, tokens, residency, export) and 99_privileges.sql.
\echo Use "ALTER EXTENSION tenancy UPDATE TO '0.2.0'" to load this file. \quit

-- The raising helpers are VOLATILE: an IMMUTABLE one would be folded (and raise) at plan time when called with
-- constant arguments inside a CASE branch that never runs.
ALTER FUNCTION tenancy._invalid_input(text, text, text) VOLATILE;
-- ... and send no empty DETAIL or HINT.
CREATE OR REPLACE FUNCTION tenancy._invalid_input(message text, detail text DEFAULT NULL, hint text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- RAISE refuses a NULL option and sends an empty one (an empty "DETAIL:" line): only the parts that are given.
  IF detail IS NULL AND hint IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = message;
  ELSIF hint IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = message, DETAIL = detail;
  ELSIF detail IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = message, HINT = hint;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = message, DETAIL = detail, HINT = hint;
END
$$;
ALTER FUNCTION tenancy._tenant_not_found(uuid) VOLATILE;
ALTER FUNCTION tenancy._user_not_found(uuid) VOLATILE;

-- The region refusal names the cluster of the tenant's region.
CREATE OR REPLACE FUNCTION tenancy._parse_residency(value text) RETURNS tenancy.data_residency
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  region text := pg_catalog.current_setting('tenancy.region', true);
BEGIN
  IF value IS NULL
     OR NOT value OPERATOR(pg_catalog.=) ANY (pg_catalog.enum_range(NULL::tenancy.data_residency)::text[]) THEN
    PERFORM tenancy._invalid_input(format('invalid data residency "%s"', value), NULL,
                                   'Valid residencies are us, eu, uk, canada and australia.');
  END IF;
  -- Residency is enforced per cluster: a cluster that serves one region refuses tenants of another.
  IF region IS NOT NULL AND region OPERATOR(pg_catalog.<>) '' AND region OPERATOR(pg_catalog.<>) value THEN
    PERFORM tenancy._invalid_input(format('data residency "%s" is not served by this cluster', value),
                                   format('This cluster serves region "%s" (tenancy.region).', region),
                                   format('Create the tenant on the cluster of region "%s" (tenancy.region = ''%s'').',
                                          value, value));
  END IF;
  RETURN value::tenancy.data_residency;
END
$$;

-- delete_tenant(erase) destroys the tenant's keys (crypto-shredding) now that encryption exists.
CREATE OR REPLACE FUNCTION tenancy.delete_tenant(id uuid, erase boolean DEFAULT false) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  old_row tenancy.tenants;
  t tenancy.tenants;
BEGIN
  IF erase IS NULL THEN
    PERFORM tenancy._invalid_input('erase must not be null');
  END IF;
  IF erase THEN
    PERFORM pg_catalog.pg_advisory_xact_lock(1952804449, tenancy._hierarchy_lock_key());
  END IF;
  SELECT * INTO old_row FROM tenancy.tenants WHERE tenants.id OPERATOR(pg_catalog.=) delete_tenant.id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(id);
  END IF;

  IF NOT erase THEN
    IF old_row.status OPERATOR(pg_catalog.=) 'cancelled' THEN
      RETURN;
    END IF;
    UPDATE tenancy.tenants SET status = 'cancelled', updated_at = pg_catalog.now()
     WHERE tenants.id OPERATOR(pg_catalog.=) delete_tenant.id
    RETURNING * INTO t;
    PERFORM tenancy._audit('tenant_cancelled', t.id, pg_catalog.to_jsonb(old_row), pg_catalog.to_jsonb(t));
    RETURN;
  END IF;

  IF EXISTS (SELECT 1 FROM tenancy.tenants c WHERE c.parent_tenant_id OPERATOR(pg_catalog.=) delete_tenant.id) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = format('tenant "%s" has child tenants', old_row.slug),
      HINT = 'Erase or re-parent the child tenants first.';
  END IF;
  -- Rows in isolated tables, then the keys (crypto-shredding), then the registry rows (users and quota overrides
  -- go with the tenant by ON DELETE CASCADE). The audit log keeps the history.
  PERFORM tenancy._erase_tenant_rows(id);
  PERFORM tenancy._destroy_tenant_keys(id);
  DELETE FROM tenancy.tenants WHERE tenants.id OPERATOR(pg_catalog.=) delete_tenant.id;
  PERFORM tenancy._audit('tenant_erased', old_row.id, pg_catalog.to_jsonb(old_row), NULL);
END
$$;

-- set_user_role and remove_user share the user lock and the last-owner check.
-- A user row locked for a change: its tenant first (as every user change of that tenant), then the row, read again
-- after the tenant lock. TN005 for an unknown user.
CREATE FUNCTION tenancy._lock_user(user_id uuid) RETURNS tenancy.users
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tenant uuid;
  u tenancy.users;
BEGIN
  SELECT x.tenant_id INTO v_tenant FROM tenancy.users x WHERE x.id OPERATOR(pg_catalog.=) user_id;
  IF NOT FOUND THEN
    PERFORM tenancy._user_not_found(user_id);
  END IF;
  PERFORM tenancy._lock_tenant_for_users(v_tenant);
  SELECT * INTO u FROM tenancy.users x WHERE x.id OPERATOR(pg_catalog.=) user_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM tenancy._user_not_found(user_id);
  END IF;
  RETURN u;
END
$$;
COMMENT ON FUNCTION tenancy._lock_user(uuid) IS
  'internal: locks a user (after its tenant) for a role change or removal, or TN005';

CREATE FUNCTION tenancy._is_last_owner(u tenancy.users) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT u.role OPERATOR(pg_catalog.=) 'owner' AND NOT EXISTS (
           SELECT 1 FROM tenancy.users x
            WHERE x.tenant_id OPERATOR(pg_catalog.=) u.tenant_id AND x.role OPERATOR(pg_catalog.=) 'owner'
              AND x.id OPERATOR(pg_catalog.<>) u.id)
$$;
COMMENT ON FUNCTION tenancy._is_last_owner(tenancy.users) IS 'internal: true for the only owner of its tenant';
REVOKE ALL ON FUNCTION tenancy._lock_user(uuid), tenancy._is_last_owner(tenancy.users) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy._lock_user(uuid), tenancy._is_last_owner(tenancy.users) TO tenancy_admin;

CREATE OR REPLACE FUNCTION tenancy.set_user_role(user_id uuid, role text) RETURNS tenancy.users
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role tenancy.user_role := tenancy._parse_role(role);
  old_row tenancy.users := tenancy._lock_user(user_id);
  u tenancy.users;
BEGIN
  IF old_row.role OPERATOR(pg_catalog.=) v_role THEN
    RETURN old_row;
  END IF;
  IF tenancy._is_last_owner(old_row) THEN
    PERFORM tenancy._invalid_input('cannot demote the last owner of a tenant', NULL,
                                   'Make another user owner first.');
  END IF;
  UPDATE tenancy.users x SET role = v_role, updated_at = pg_catalog.now()
   WHERE x.id OPERATOR(pg_catalog.=) user_id
  RETURNING * INTO u;
  PERFORM tenancy._audit('user_role_changed', u.tenant_id, pg_catalog.to_jsonb(old_row), pg_catalog.to_jsonb(u));
  RETURN u;
END
$$;

CREATE OR REPLACE FUNCTION tenancy.remove_user(user_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  old_row tenancy.users := tenancy._lock_user(user_id);
BEGIN
  IF tenancy._is_last_owner(old_row) THEN
    PERFORM tenancy._invalid_input('cannot remove the last owner of a tenant', NULL,
                                   'Make another user owner first.');
  END IF;
  DELETE FROM tenancy.users x WHERE x.id OPERATOR(pg_catalog.=) user_id;
  PERFORM tenancy._audit('user_removed', old_row.tenant_id, pg_catalog.to_jsonb(old_row), NULL);
END
$$;

-- Signed context mode (tenancy.context_mode = 'signed'): a context that SQL injection cannot switch.
CREATE FUNCTION tenancy.set_tenant_token(token text) RETURNS uuid
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_set_tenant_token';
COMMENT ON FUNCTION tenancy.set_tenant_token(text) IS
  'verifies an HMAC-signed tenant token and sets its tenant as the context of the current transaction';
CREATE FUNCTION tenancy.sign_tenant_token(tenant uuid, ttl interval = '1 hour') RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_sign_tenant_token';
COMMENT ON FUNCTION tenancy.sign_tenant_token(uuid, interval) IS
  'tenancy_admin only: a token for set_tenant_token, signed with tenancy.context_secret_file, valid for ttl';
REVOKE ALL ON FUNCTION tenancy.set_tenant_token(text), tenancy.sign_tenant_token(uuid, interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.set_tenant_token(text) TO tenancy_app, tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.sign_tenant_token(uuid, interval) TO tenancy_admin;

-- add_user reads the users counter of track_quota (0.2.0) below the limit instead of counting the tenant's users.
CREATE OR REPLACE FUNCTION tenancy.add_user(tenant_id uuid, email text, first_name text DEFAULT NULL,
                                 last_name text DEFAULT NULL, role text DEFAULT 'developer',
                                 send_invitation boolean DEFAULT true)
RETURNS tenancy.users
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role tenancy.user_role := tenancy._parse_role(role);
  v_email text;
  t tenancy.tenants;
  u tenancy.users;
  used bigint;
  max_users bigint;
BEGIN
  IF email IS NULL THEN
    PERFORM tenancy._invalid_input('invalid email address', 'An email address is required.');
  END IF;
  v_email := tenancy._normalize_email(email);
  IF send_invitation IS NULL THEN
    PERFORM tenancy._invalid_input('send_invitation must not be null');
  END IF;
  IF pg_catalog.length(first_name) > 255 OR pg_catalog.length(last_name) > 255 THEN
    PERFORM tenancy._invalid_input('invalid user name', 'First and last names have at most 255 characters.');
  END IF;

  t := tenancy._lock_tenant_for_users(tenant_id);
  PERFORM tenancy._require_usable_tenant(t.id);
  -- A duplicate address is a conflict (23505) even when the quota is full; the unique index stays the backstop.
  IF EXISTS (SELECT 1 FROM tenancy.users x WHERE x.tenant_id OPERATOR(pg_catalog.=) t.id
                AND pg_catalog.lower(x.email) OPERATOR(pg_catalog.=) v_email) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation',
      MESSAGE = format('user "%s" already exists in tenant "%s"', v_email, t.slug),
      CONSTRAINT = 'users_tenant_email_key';
  END IF;
  -- The users counter of track_quota's trigger never runs below the rows that count (an insert counts before it
  -- commits, a delete only after), so below the limit it settles the check in constant time; near the limit the
  -- rows are counted, after the lock, so no concurrent add_user of this tenant can pass the limit with us. The
  -- counter's limit is the effective one (plan or override) that the trigger enforces.
  SELECT q.used, q.max INTO used, max_users FROM tenancy._quota_state(t.id, 'users') q;
  IF used + 1 > max_users THEN
    SELECT pg_catalog.count(*) INTO used FROM tenancy.users x
     WHERE x.tenant_id OPERATOR(pg_catalog.=) t.id AND x.status OPERATOR(pg_catalog.<>) 'disabled';
    IF used + 1 > max_users THEN
      RAISE EXCEPTION USING ERRCODE = 'TN003', MESSAGE = format('user quota of tenant "%s" exceeded', t.slug),
        DETAIL = format('The tenant has %s of %s users.', used, max_users),
        HINT = 'Remove or disable a user, upgrade the plan, or raise the tenant''s users quota.';
    END IF;
  END IF;

  INSERT INTO tenancy.users (tenant_id, email, first_name, last_name, role, status)
  VALUES (t.id, v_email, first_name, last_name, v_role,
          CASE WHEN send_invitation THEN 'invited'::tenancy.user_status ELSE 'active' END)
  RETURNING * INTO u;
  PERFORM tenancy._audit('user_added', u.tenant_id, NULL, pg_catalog.to_jsonb(u));
  RETURN u;
END
$$;

-- ==== sql/src/45_partitions.sql
-- sql/src/45_partitions.sql
-- Hash partitioning by tenant: create, convert, repartition, isolate a tenant, and report (docs/partitioning.md).

-- Every function below is an admin function run by the table's owner (checked in C). They run as the caller
-- (SECURITY INVOKER): the DDL they issue needs nothing the owner does not already have. search_path is pinned so
-- every name they print into generated DDL is schema-qualified.

CREATE FUNCTION tenancy.create_partitions(tbl regclass, partitions integer = 16) RETURNS integer
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_create_partitions';
COMMENT ON FUNCTION tenancy.create_partitions(regclass, integer) IS
  'creates the hash partitions <table>_p000.. of a table declared PARTITION BY HASH (tenant_id); returns their number';

CREATE FUNCTION tenancy.partition_table(tbl regclass, partitions integer = 16) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_partition_table';
COMMENT ON FUNCTION tenancy.partition_table(regclass, integer) IS
  'turns a plain table into a hash-partitioned one under the same name, keeping rows, keys, indexes, foreign keys, '
  'triggers, policies, grants, owner and comments; returns the rows moved';

CREATE FUNCTION tenancy.repartition(tbl regclass, partitions integer) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_repartition';
COMMENT ON FUNCTION tenancy.repartition(regclass, integer) IS
  'changes the number of hash partitions to a multiple or divisor of the current one, one partition at a time; '
  'returns the rows moved';

CREATE FUNCTION tenancy.isolate_tenant(tbl regclass, tenant_id uuid) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_isolate_tenant';
COMMENT ON FUNCTION tenancy.isolate_tenant(regclass, uuid) IS
  'gives a tenant a leaf of its own: its hash partition becomes LIST sub-partitioned by tenant; returns the rows moved';

CREATE FUNCTION tenancy.unisolate_tenant(tbl regclass, tenant_id uuid) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_unisolate_tenant';
COMMENT ON FUNCTION tenancy.unisolate_tenant(regclass, uuid) IS
  'undoes isolate_tenant: the tenant''s rows return to the shared hash partition; returns the rows moved';

CREATE FUNCTION tenancy.partitions(tbl regclass)
RETURNS TABLE (name regclass, rows bigint, bytes bigint, tenants bigint, isolated_tenant uuid)
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_partitions';
COMMENT ON FUNCTION tenancy.partitions(regclass) IS
  'every leaf partition of a table with its exact row count, total bytes, distinct tenants and isolated tenant';

CREATE FUNCTION tenancy.tenant_partition(tbl regclass, tenant_id uuid) RETURNS regclass
LANGUAGE c STABLE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_tenant_partition';
COMMENT ON FUNCTION tenancy.tenant_partition(regclass, uuid) IS
  'the leaf partition that holds a tenant''s rows';

REVOKE ALL ON FUNCTION tenancy.create_partitions(regclass, integer), tenancy.partition_table(regclass, integer),
  tenancy.repartition(regclass, integer), tenancy.isolate_tenant(regclass, uuid),
  tenancy.unisolate_tenant(regclass, uuid), tenancy.partitions(regclass), tenancy.tenant_partition(regclass, uuid)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.create_partitions(regclass, integer), tenancy.partition_table(regclass, integer),
  tenancy.repartition(regclass, integer), tenancy.isolate_tenant(regclass, uuid),
  tenancy.unisolate_tenant(regclass, uuid), tenancy.partitions(regclass), tenancy.tenant_partition(regclass, uuid)
  TO tenancy_admin;

CREATE FUNCTION tenancy.tenant_advice()
RETURNS TABLE (tenant_id uuid, metric text, value bigint, threshold bigint, action text, reason text)
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_tenant_advice';
COMMENT ON FUNCTION tenancy.tenant_advice() IS
  'tenants over the large-tenant thresholds (1,000 projects, 10,000 API calls an hour, 100 GB) with the action to take';
REVOKE ALL ON FUNCTION tenancy.tenant_advice() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.tenant_advice() TO tenancy_admin;

-- ==== sql/src/45_verify_isolation.sql
-- sql/src/45_verify_isolation.sql
-- verify_isolation(): every way an isolated table can still be reached around its policy, each with a fix hint.

CREATE FUNCTION tenancy.verify_isolation(OUT table_name regclass, OUT problem text, OUT hint text)
RETURNS SETOF record
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
WITH cfg AS (
  SELECT c.*, c.relid::oid AS rel FROM tenancy.isolation_config c
   WHERE EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = c.relid::oid)
),
tenant_columns AS (
  SELECT 'tenant_id'::name AS col
  UNION SELECT tenant_column FROM tenancy.isolation_config
  UNION SELECT current_setting('tenancy.auto_isolate', true)::name WHERE current_setting('tenancy.auto_isolate', true) <> ''
),
user_tables AS (
  SELECT k.oid, k.relkind FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace
   WHERE k.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenancy')
     AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
),
app_members AS (
  WITH RECURSIVE m(roleid) AS (
    SELECT a.member FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid WHERE r.rolname = 'tenancy_app'
    UNION SELECT a.member FROM pg_auth_members a JOIN m ON a.roleid = m.roleid)
  SELECT roleid FROM m
),
generated AS (
  SELECT 'tenancy_isolation'::name AS polname UNION ALL SELECT 'tenancy_descendants_read'
  UNION ALL SELECT 'tenancy_admin_cross_tenant'
)
-- 1. a table with a tenant column and no policy
SELECT t.oid::regclass, format('table has a tenant column %I but no isolation policy', a.attname),
       format('SELECT tenancy.enable_isolation(%L, %L);', t.oid::regclass::text, a.attname)
  FROM user_tables t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE a.atttypid = 'uuid'::regtype AND a.attname IN (SELECT col FROM tenant_columns)
   AND NOT EXISTS (SELECT 1 FROM cfg WHERE cfg.rel = t.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = t.oid)
UNION ALL
-- 2. row level security off or not forced (the owner would bypass it)
SELECT cfg.relid, CASE WHEN NOT k.relrowsecurity THEN 'row level security is not enabled'
                       ELSE 'row level security is not forced' END,
       format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;', cfg.relid)
  FROM cfg JOIN pg_class k ON k.oid = cfg.rel
 WHERE NOT (k.relrowsecurity AND k.relforcerowsecurity)
UNION ALL
-- 3a. a generated policy missing or edited by hand
SELECT cfg.relid,
       CASE WHEN p.oid IS NULL THEN format('generated policy %I is missing', g.polname)
            ELSE format('generated policy %I was changed by hand', g.polname) END,
       format('SELECT tenancy.enable_isolation(%L, %L, %s);', cfg.relid::text, cfg.tenant_column,
              cfg.include_descendants::text)
  FROM cfg CROSS JOIN generated g
  LEFT JOIN pg_policy p ON p.polrelid = cfg.rel AND p.polname = g.polname
 WHERE (g.polname <> 'tenancy_descendants_read' OR cfg.include_descendants)
   AND (p.oid IS NULL OR NOT p.polpermissive
        OR (g.polname = 'tenancy_isolation' AND (p.polcmd <> '*' OR p.polroles <> '{0}'
            OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM cfg.policy_qual
            OR pg_get_expr(p.polwithcheck, p.polrelid) IS DISTINCT FROM cfg.policy_check))
        OR (g.polname = 'tenancy_descendants_read' AND (p.polcmd <> 'r' OR p.polroles <> '{0}'
            OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM cfg.descendants_qual))
        OR (g.polname = 'tenancy_admin_cross_tenant' AND (p.polcmd <> 'r'
            OR p.polroles <> ARRAY[(SELECT oid FROM pg_roles WHERE rolname = 'tenancy_admin')]
            OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM cfg.cross_tenant_qual)))
UNION ALL
-- 3b. an extra permissive policy: permissive policies are OR-ed, so it widens what the table shows
SELECT cfg.relid, format('extra permissive policy %I widens access beyond the tenant', p.polname),
       format('DROP POLICY %I ON %s; (or recreate it AS RESTRICTIVE)', p.polname, cfg.relid)
  FROM cfg JOIN pg_policy p ON p.polrelid = cfg.rel
 WHERE p.polpermissive AND p.polname NOT IN (SELECT polname FROM generated)
UNION ALL
-- 3c. a descendants policy left on a table isolated without include_descendants
SELECT cfg.relid, 'policy tenancy_descendants_read exists but the table was isolated without include_descendants',
       format('SELECT tenancy.enable_isolation(%L, %L, false);', cfg.relid::text, cfg.tenant_column)
  FROM cfg JOIN pg_policy p ON p.polrelid = cfg.rel AND p.polname = 'tenancy_descendants_read'
 WHERE NOT cfg.include_descendants
UNION ALL
-- 4. a partition or inheritance child of an isolated table that is reachable directly without the policy
SELECT i.inhrelid::regclass,
       format('%s of isolated table %s has no isolation policy',
              CASE WHEN k.relispartition THEN 'partition' ELSE 'inheritance child' END, i.inhparent::regclass),
       format('SELECT tenancy.enable_isolation(%L, %L, %s);', cfg.root::text, cfg.tenant_column,
              cfg.include_descendants::text)
  FROM cfg JOIN pg_inherits i ON i.inhparent = cfg.rel JOIN pg_class k ON k.oid = i.inhrelid
 WHERE NOT EXISTS (SELECT 1 FROM cfg c2 WHERE c2.rel = i.inhrelid)
UNION ALL
-- 5. a view over an isolated table that runs with its owner's rights and lets quals be pushed into it
SELECT DISTINCT v.oid::regclass,
       CASE v.relkind WHEN 'm'
            THEN format('materialized view over isolated table %s stores its rows outside row level security', cfg.relid)
            ELSE format('view over isolated table %s is neither security_invoker nor security_barrier', cfg.relid) END,
       CASE v.relkind WHEN 'm' THEN format('DROP MATERIALIZED VIEW %s; (its rows are stored outside row level security)', v.oid::regclass)
            ELSE format('ALTER VIEW %s SET (security_invoker = true);', v.oid::regclass) END
  FROM cfg JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = cfg.rel
                            AND d.classid = 'pg_rewrite'::regclass
  JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
 WHERE v.oid <> cfg.rel AND v.relkind IN ('v', 'm')
   AND (v.relkind = 'm' OR NOT EXISTS (
        SELECT 1 FROM pg_options_to_table(v.reloptions) o
         WHERE o.option_name IN ('security_invoker', 'security_barrier')
           AND lower(o.option_value) IN ('true', 'on', 'yes', '1')))
UNION ALL
-- 6. a SECURITY DEFINER function owned by a role that bypasses row level security and callable by the app role
SELECT NULL::regclass,
       format('SECURITY DEFINER function %s is owned by %I, which bypasses row level security, and tenancy_app can execute it',
              p.oid::regprocedure, o.rolname),
       format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, tenancy_app; or ALTER FUNCTION %s OWNER TO a role without BYPASSRLS;',
              p.oid::regprocedure, p.oid::regprocedure)
  FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.prosecdef AND (o.rolsuper OR o.rolbypassrls)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid
                     AND e.deptype = 'e')
   AND has_function_privilege('tenancy_app', p.oid, 'EXECUTE')
UNION ALL
-- 7. an application role that bypasses row level security (or owns an isolated table, so it can switch it off)
SELECT NULL::regclass,
       format('role %I is a member of tenancy_app and has %s', r.rolname,
              CASE WHEN r.rolsuper THEN 'SUPERUSER' ELSE 'BYPASSRLS' END),
       format('ALTER ROLE %I %s;', r.rolname, CASE WHEN r.rolsuper THEN 'NOSUPERUSER' ELSE 'NOBYPASSRLS' END)
  FROM pg_roles r WHERE r.oid IN (SELECT roleid FROM app_members) AND (r.rolsuper OR r.rolbypassrls)
UNION ALL
SELECT cfg.relid, format('table is owned by %I, a member of tenancy_app, which can disable row level security', o.rolname),
       format('ALTER TABLE %s OWNER TO a role that is not an application role;', cfg.relid)
  FROM cfg JOIN pg_class k ON k.oid = cfg.rel JOIN pg_roles o ON o.oid = k.relowner
 WHERE k.relowner IN (SELECT roleid FROM app_members)
ORDER BY 1 NULLS LAST, 2
$$;
COMMENT ON FUNCTION tenancy.verify_isolation() IS
  'every problem that lets rows of isolated tables be reached around their policy, with a fix hint; empty when sound';

REVOKE ALL ON FUNCTION tenancy.verify_isolation() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.verify_isolation() TO tenancy_admin;

-- ==== sql/src/50_quota.sql
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
COMMENT ON FUNCTION tenancy.release(uuid, text, bigint) IS 'gives back amount of a metric''s usage (never below zero)';

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
CREATE FUNCTION tenancy._quota_count_rows(tenant uuid, metric text) RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  tracked record;
  total bigint := 0;
  n bigint;
BEGIN
  FOR tracked IN SELECT * FROM tenancy.quota_tracked_tables q
                  WHERE q.metric OPERATOR(pg_catalog.=) _quota_count_rows.metric
                    AND EXISTS (SELECT 1 FROM pg_catalog.pg_class c WHERE c.oid OPERATOR(pg_catalog.=) q.table_name)
                  ORDER BY q.table_name::oid LOOP
    EXECUTE format('SELECT pg_catalog.count(*) FROM %s WHERE %I OPERATOR(pg_catalog.=) $1%s',
                   tracked.table_name, tracked.tenant_column,
                   CASE WHEN tracked.status_column IS NULL THEN ''
                        ELSE format(' AND %I::text OPERATOR(pg_catalog.<>) ''disabled''', tracked.status_column) END)
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
      EXECUTE format('LOCK TABLE %s IN SHARE MODE', tracked.table_name);
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
  'gives back a consume_pooled amount to the tenant and every ancestor';

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
  tenancy._quota_register_tracked(regclass, text, name)
TO tenancy_admin;

-- ==== sql/src/60_crypto.sql
-- sql/src/60_crypto.sql
-- Tenant-key encryption: wrapped data keys, master key fingerprint, encrypt/decrypt, rotation, rewrap, shredding.

-- One row per data key version of a tenant, stored only wrapped (AES-256-GCM) by the master key, which never enters
-- the database. A destroyed version keeps its row with wrapped_key NULL (crypto-shredding): versions are never
-- reused and decrypt can say why it fails. No app role can read this table.
CREATE TABLE tenancy.tenant_keys (
  tenant_id uuid NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  wrapped_key bytea CHECK (pg_catalog.octet_length(wrapped_key) = 61),
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  destroyed_at timestamptz,
  PRIMARY KEY (tenant_id, version),
  CONSTRAINT tenant_keys_destroyed_has_no_key CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);
COMMENT ON TABLE tenancy.tenant_keys IS
  'wrapped per-tenant data keys by version; a destroyed version keeps its row without the key';
-- pg_dump must keep the keys, or a restore could never decrypt anything.
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenant_keys', '');

-- HMAC-SHA-256 of a fixed label under the master key, stored with the first data key: a wrong master key is then
-- refused before it wraps anything. It reveals nothing about the key.
CREATE TABLE tenancy.master_key_fingerprint (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  fingerprint bytea NOT NULL CHECK (pg_catalog.octet_length(fingerprint) = 32),
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE tenancy.master_key_fingerprint IS 'fingerprint of the master key that wraps tenancy.tenant_keys';
SELECT pg_catalog.pg_extension_config_dump('tenancy.master_key_fingerprint', '');

-- Every change to the keys table invalidates its relcache entry, which flushes the unwrapped-key cache of every
-- backend when the change commits (rotation, destruction, rewrap, even a superuser's direct DML).
CREATE FUNCTION tenancy._tenant_keys_changed() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_tenant_keys_changed';
COMMENT ON FUNCTION tenancy._tenant_keys_changed() IS 'internal: flushes every backend''s tenant key cache';
CREATE TRIGGER tenant_keys_changed AFTER INSERT OR UPDATE OR DELETE ON tenancy.tenant_keys
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._tenant_keys_changed();
CREATE TRIGGER tenant_keys_truncated AFTER TRUNCATE ON tenancy.tenant_keys
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._tenant_keys_changed();

-- An app role may use the keys of its context tenant's descendants while some table is isolated with
-- include_descendants (SPEC.md "Encryption"). Each backend caches whether one is; every change to
-- tenancy.isolation_config invalidates its relcache entry, which makes every backend read it again.
CREATE FUNCTION tenancy._crypto_scope_changed() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_crypto_scope_changed';
COMMENT ON FUNCTION tenancy._crypto_scope_changed() IS
  'internal: makes every backend re-read whether descendants'' keys are usable (include_descendants tables)';
CREATE TRIGGER crypto_scope_changed AFTER INSERT OR UPDATE OR DELETE ON tenancy.isolation_config
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._crypto_scope_changed();
CREATE TRIGGER crypto_scope_truncated AFTER TRUNCATE ON tenancy.isolation_config
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._crypto_scope_changed();

-- A new tenant gets key version 1 and tenants.encryption_key_id = '<tenant uuid>:v1' when the master key is
-- available; otherwise its first encrypt creates it. Rows that already name a key (pg_restore) are left alone.
CREATE FUNCTION tenancy._tenant_key_on_insert() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_tenant_key_on_insert';
COMMENT ON FUNCTION tenancy._tenant_key_on_insert() IS 'internal: creates the first data key of a new tenant';
CREATE TRIGGER tenants_create_key BEFORE INSERT ON tenancy.tenants
  FOR EACH ROW EXECUTE FUNCTION tenancy._tenant_key_on_insert();

-- Deleting a tenant row destroys its keys, however the row was deleted.
CREATE FUNCTION tenancy._tenant_keys_on_delete() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_tenant_keys_on_delete';
COMMENT ON FUNCTION tenancy._tenant_keys_on_delete() IS 'internal: crypto-shreds the keys of a deleted tenant';
CREATE TRIGGER tenants_destroy_keys AFTER DELETE ON tenancy.tenants
  FOR EACH ROW EXECUTE FUNCTION tenancy._tenant_keys_on_delete();

-- encrypt/decrypt: volatile (a fresh random nonce each call), parallel safe (keys are read, not written, once the
-- tenant has one). The one-argument forms use the tenant context.
CREATE FUNCTION tenancy.encrypt(tenant_id uuid, plaintext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_encrypt';
CREATE FUNCTION tenancy.encrypt(plaintext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_encrypt';
CREATE FUNCTION tenancy.decrypt(tenant_id uuid, ciphertext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_decrypt';
CREATE FUNCTION tenancy.decrypt(ciphertext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_decrypt';
CREATE FUNCTION tenancy.encrypt_bytea(tenant_id uuid, plaintext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_encrypt_bytea';
CREATE FUNCTION tenancy.encrypt_bytea(plaintext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_encrypt_bytea';
CREATE FUNCTION tenancy.decrypt_bytea(tenant_id uuid, ciphertext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_decrypt_bytea';
CREATE FUNCTION tenancy.decrypt_bytea(ciphertext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_decrypt_bytea';
COMMENT ON FUNCTION tenancy.encrypt(uuid, text) IS
  'AES-256-GCM under the tenant''s current data key; base64 of version byte, key version, nonce, ciphertext, tag';
COMMENT ON FUNCTION tenancy.encrypt(text) IS 'encrypt for the tenant of the current context (TN004 without one)';
COMMENT ON FUNCTION tenancy.decrypt(uuid, text) IS
  'decrypts a tenancy.encrypt value of that tenant; TN006 when altered, of another tenant, or its key is unknown';
COMMENT ON FUNCTION tenancy.decrypt(text) IS 'decrypt for the tenant of the current context (TN004 without one)';
COMMENT ON FUNCTION tenancy.encrypt_bytea(uuid, bytea) IS 'encrypt for bytea: the binary envelope, no base64';
COMMENT ON FUNCTION tenancy.encrypt_bytea(bytea) IS 'encrypt_bytea for the tenant of the current context';
COMMENT ON FUNCTION tenancy.decrypt_bytea(uuid, bytea) IS 'decrypts an encrypt_bytea value of that tenant';
COMMENT ON FUNCTION tenancy.decrypt_bytea(bytea) IS 'decrypt_bytea for the tenant of the current context';

CREATE FUNCTION tenancy.reencrypt(tenant_id uuid, ciphertext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_reencrypt';
COMMENT ON FUNCTION tenancy.reencrypt(uuid, text) IS 'the value re-encrypted under the tenant''s current key version';
CREATE FUNCTION tenancy.reencrypt_bytea(tenant_id uuid, ciphertext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_reencrypt_bytea';
COMMENT ON FUNCTION tenancy.reencrypt_bytea(uuid, bytea) IS 'reencrypt for encrypt_bytea values';

CREATE FUNCTION tenancy.ciphertext_key_version(ciphertext text) RETURNS integer
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_ciphertext_key_version';
COMMENT ON FUNCTION tenancy.ciphertext_key_version(text) IS 'key version named by a tenancy.encrypt value';
CREATE FUNCTION tenancy.ciphertext_key_version(ciphertext bytea) RETURNS integer
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_ciphertext_key_version_bytea';
COMMENT ON FUNCTION tenancy.ciphertext_key_version(bytea) IS 'key version named by a tenancy.encrypt_bytea value';
CREATE FUNCTION tenancy.current_key_version(tenant_id uuid) RETURNS integer
LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_current_key_version';
COMMENT ON FUNCTION tenancy.current_key_version(uuid) IS 'the tenant''s current key version; NULL when it has none';

CREATE FUNCTION tenancy.rotate_tenant_key(tenant_id uuid) RETURNS integer
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_rotate_tenant_key';
COMMENT ON FUNCTION tenancy.rotate_tenant_key(uuid) IS
  'creates the next data key version of a tenant for new values; older versions still decrypt';
CREATE FUNCTION tenancy.rewrap_keys() RETURNS integer
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_rewrap_keys';
COMMENT ON FUNCTION tenancy.rewrap_keys() IS
  'rewraps every data key from tenancy.previous_master_key_file''s key to the current master key';
CREATE FUNCTION tenancy._destroy_tenant_keys(tenant_id uuid) RETURNS integer
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_destroy_tenant_keys';
COMMENT ON FUNCTION tenancy._destroy_tenant_keys(uuid) IS
  'internal: crypto-shredding; destroys every key version of a tenant (delete_tenant(id, erase => true))';

-- Re-encrypts up to batch_size values of a text or bytea column that are not under their tenant's current key,
-- and returns how many it did: call it until it returns 0, each call in its own transaction so locks stay short.
-- Runs with the caller's rights (it must be able to see and update the rows).
CREATE FUNCTION tenancy.reencrypt_column(tbl regclass, column_name name, tenant_column name DEFAULT 'tenant_id',
                                         batch_size integer DEFAULT 1000) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  col_type regtype;
  tenant_type regtype;
  fn text;
  done bigint;
BEGIN
  IF batch_size < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'batch_size must be at least 1';
  END IF;
  SELECT a.atttypid::regtype INTO col_type FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attname OPERATOR(pg_catalog.=) column_name
     AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
  SELECT a.atttypid::regtype INTO tenant_type FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attname OPERATOR(pg_catalog.=) tenant_column
     AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
  IF col_type IS NULL OR col_type NOT IN ('text'::regtype, 'bytea'::regtype) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005',
      MESSAGE = format('column "%s" of %s must exist and be of type text or bytea', column_name, tbl);
  END IF;
  IF tenant_type IS DISTINCT FROM 'uuid'::regtype THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005',
      MESSAGE = format('column "%s" of %s must exist and be of type uuid', tenant_column, tbl);
  END IF;
  fn := CASE WHEN col_type OPERATOR(pg_catalog.=) 'text'::regtype THEN 'tenancy.reencrypt' ELSE 'tenancy.reencrypt_bytea' END;
  -- tableoid with ctid: ctid alone is not unique across the partitions of a partitioned table.
  EXECUTE format(
    'UPDATE %1$s AS t SET %2$I = %4$s(t.%3$I, t.%2$I) '
    'WHERE (t.tableoid, t.ctid) IN (SELECT s.tableoid, s.ctid FROM %1$s AS s '
    'WHERE s.%2$I IS NOT NULL AND tenancy.ciphertext_key_version(s.%2$I) OPERATOR(pg_catalog.<) '
    'tenancy.current_key_version(s.%3$I) LIMIT %5$s FOR UPDATE SKIP LOCKED)',
    tbl, column_name, tenant_column, fn, batch_size);
  GET DIAGNOSTICS done = ROW_COUNT;
  RETURN done;
END
$$;
COMMENT ON FUNCTION tenancy.reencrypt_column(regclass, name, name, integer) IS
  're-encrypts one batch of a column under current key versions; call until it returns 0';

CREATE FUNCTION tenancy.fernet_decrypt(token text, key text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_fernet_decrypt';
COMMENT ON FUNCTION tenancy.fernet_decrypt(text, text) IS
  'migration helper: plaintext of a Fernet token (or of base64 of one, as the brief stored it)';
CREATE FUNCTION tenancy.fernet_decrypt(token text, key text, ttl_seconds integer) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_fernet_decrypt';
COMMENT ON FUNCTION tenancy.fernet_decrypt(text, text, integer) IS
  'fernet_decrypt refusing tokens older than ttl_seconds (or over 60 seconds in the future)';

REVOKE ALL ON tenancy.tenant_keys, tenancy.master_key_fingerprint FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy._tenant_keys_changed(), tenancy._tenant_key_on_insert(),
  tenancy._tenant_keys_on_delete(), tenancy._crypto_scope_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.encrypt(uuid, text), tenancy.encrypt(text), tenancy.decrypt(uuid, text),
  tenancy.decrypt(text), tenancy.encrypt_bytea(uuid, bytea), tenancy.encrypt_bytea(bytea),
  tenancy.decrypt_bytea(uuid, bytea), tenancy.decrypt_bytea(bytea), tenancy.reencrypt(uuid, text),
  tenancy.reencrypt_bytea(uuid, bytea), tenancy.ciphertext_key_version(text), tenancy.ciphertext_key_version(bytea),
  tenancy.current_key_version(uuid), tenancy.rotate_tenant_key(uuid), tenancy.rewrap_keys(),
  tenancy._destroy_tenant_keys(uuid), tenancy.reencrypt_column(regclass, name, name, integer),
  tenancy.fernet_decrypt(text, text), tenancy.fernet_decrypt(text, text, integer) FROM PUBLIC;
-- SPEC.md "Roles and grants": apps encrypt and decrypt for their context tenant (checked inside); the rest is admin.
GRANT EXECUTE ON FUNCTION tenancy.encrypt(uuid, text), tenancy.encrypt(text), tenancy.decrypt(uuid, text),
  tenancy.decrypt(text), tenancy.encrypt_bytea(uuid, bytea), tenancy.encrypt_bytea(bytea),
  tenancy.decrypt_bytea(uuid, bytea), tenancy.decrypt_bytea(bytea) TO tenancy_admin, tenancy_app;
GRANT EXECUTE ON FUNCTION tenancy.reencrypt(uuid, text), tenancy.reencrypt_bytea(uuid, bytea),
  tenancy.ciphertext_key_version(text), tenancy.ciphertext_key_version(bytea), tenancy.current_key_version(uuid),
  tenancy.rotate_tenant_key(uuid), tenancy.rewrap_keys(), tenancy._destroy_tenant_keys(uuid),
  tenancy.reencrypt_column(regclass, name, name, integer), tenancy.fernet_decrypt(text, text),
  tenancy.fernet_decrypt(text, text, integer) TO tenancy_admin;

-- ==== sql/src/70_tokens.sql
-- sql/src/70_tokens.sql
-- Tenant API tokens for tenancyd: issued, looked up by SHA-256 digest, revoked; the token value is never stored.

-- The daemon generates the token (OpenSSL CSPRNG) and sends only its SHA-256 here, so the value never reaches
-- the database, its logs or pg_stat_activity.
CREATE TABLE tenancy.tenant_tokens (
  id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
  role tenancy.user_role NOT NULL,
  name text CHECK (pg_catalog.length(name) <= 200),
  token_sha256 bytea NOT NULL CHECK (pg_catalog.length(token_sha256) = 32),
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  expires_at timestamptz,
  revoked_at timestamptz,
  CONSTRAINT tenant_tokens_sha256_key UNIQUE (token_sha256)
);
CREATE INDEX tenant_tokens_tenant_idx ON tenancy.tenant_tokens (tenant_id);
COMMENT ON TABLE tenancy.tenant_tokens IS 'tenancyd bearer tokens of tenants: SHA-256 digests only, scoped to a tenant and a role';
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenant_tokens', '');

-- What a tenant token may do, by role (SPEC.md "What a tenant token may do"). Actions are tenancyd's route
-- actions; 'tenant.patch.<key>' refines PATCH per changed key; an unknown action raises TN005. The matrix is
-- extension/core/token_permission.cpp: in C, a call inside authorize_token costs no plpgsql setup per transaction.
CREATE FUNCTION tenancy.token_permits(role tenancy.user_role, action text) RETURNS boolean
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_token_permits';
COMMENT ON FUNCTION tenancy.token_permits(tenancy.user_role, text) IS
  'whether a tenant token of this role may perform a tenancyd action (tenant.read, users.write, ...)';

-- Roles are declared from most to least privileged, so a smaller enum value is a stronger role.
CREATE FUNCTION tenancy.token_may_grant(holder tenancy.user_role, target tenancy.user_role) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT holder OPERATOR(pg_catalog.<=) target
$$;
COMMENT ON FUNCTION tenancy.token_may_grant(tenancy.user_role, tenancy.user_role) IS
  'whether a token of role holder may hand out role target (never more than its own)';

CREATE FUNCTION tenancy.issue_token(tenant_id uuid, role tenancy.user_role, token_sha256 bytea, name text DEFAULT NULL,
                                    expires_in interval DEFAULT NULL, issuer_role tenancy.user_role DEFAULT NULL)
RETURNS SETOF tenancy.tenant_tokens
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t record;
  tok tenancy.tenant_tokens;
BEGIN
  IF tenant_id IS NULL OR role IS NULL OR token_sha256 IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'tenant_id, role and token_sha256 must not be null';
  END IF;
  IF pg_catalog.length(token_sha256) <> 32 THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'token_sha256 must be 32 bytes',
      DETAIL = 'Pass the SHA-256 digest of the token, never the token itself.';
  END IF;
  IF name IS NOT NULL AND pg_catalog.length(name) > 200 THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'token name must be at most 200 characters';
  END IF;
  IF expires_in IS NOT NULL AND expires_in <= interval '0' THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'expires_in must be positive';
  END IF;
  IF issuer_role IS NOT NULL AND NOT tenancy.token_may_grant(issuer_role, role) THEN
    RAISE EXCEPTION USING ERRCODE = '42501',
      MESSAGE = format('a token with role "%s" cannot issue a token with role "%s"', issuer_role, role);
  END IF;
  SELECT tn.status, tn.trial_ends_at INTO t
    FROM tenancy.tenants tn WHERE tn.id OPERATOR(pg_catalog.=) issue_token.tenant_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TN001', MESSAGE = format('tenant "%s" does not exist', tenant_id);
  END IF;
  IF t.status NOT IN ('trial', 'active')
     OR (t.status = 'trial' AND t.trial_ends_at IS NOT NULL AND t.trial_ends_at < pg_catalog.now()) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN002', MESSAGE = format('tenant "%s" is not active', tenant_id),
      DETAIL = format('Its status is %s.', t.status);
  END IF;
  INSERT INTO tenancy.tenant_tokens AS k (tenant_id, role, name, token_sha256, expires_at)
  VALUES (issue_token.tenant_id, issue_token.role, issue_token.name, issue_token.token_sha256,
          pg_catalog.now() + issue_token.expires_in)
  RETURNING k.* INTO tok;
  PERFORM tenancy._audit('token_issued', tok.tenant_id, NULL,
                         pg_catalog.jsonb_build_object('token_id', tok.id, 'role', tok.role, 'name', tok.name,
                                                       'expires_at', tok.expires_at));
  RETURN NEXT tok;
END
$$;
COMMENT ON FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role) IS
  'records a tenant token by its SHA-256 digest; issuer_role (when a token issues one) caps the role';

-- tenancyd's whole authorization of a tenant-token request in one call (one round trip): the live token with this
-- digest (one row while it is neither revoked nor expired, none otherwise), whether its role permits action, and,
-- for a permitted call to its own tenant, the metering of one api_calls unit (within_quota; NULL when nothing was
-- metered; 55006 instead while a live move freezes the tenant, see tenancy.move_guard). The only token check there
-- is: a target that is not the token's tenant meters nothing. In C
-- (extension/pg/token_authorize.cpp): as plpgsql it cost ~50 us more per tenancyd request (bench/daemon/RESULTS.md).
CREATE FUNCTION tenancy.authorize_token(digest bytea, target_tenant_id uuid, action text)
RETURNS TABLE (token_id uuid, tenant_id uuid, role tenancy.user_role, token_sha256 bytea, permitted boolean,
               plan tenancy.tenant_plan, within_quota boolean)
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_authorize_token';
COMMENT ON FUNCTION tenancy.authorize_token(bytea, uuid, text) IS
  'the live token with this SHA-256 digest, its tenant and role, and whether the role permits action; for one '
  'tenancyd request to target_tenant_id, meters one api_calls unit when permitted';

CREATE FUNCTION tenancy.revoke_token(tenant_id uuid, token_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r tenancy.user_role;
BEGIN
  UPDATE tenancy.tenant_tokens k SET revoked_at = pg_catalog.now()
   WHERE k.id OPERATOR(pg_catalog.=) revoke_token.token_id
     AND k.tenant_id OPERATOR(pg_catalog.=) revoke_token.tenant_id
     AND k.revoked_at IS NULL
  RETURNING k.role INTO r;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '42704',
      MESSAGE = format('token "%s" of tenant "%s" does not exist or is already revoked', token_id, tenant_id);
  END IF;
  PERFORM tenancy._audit('token_revoked', tenant_id, pg_catalog.jsonb_build_object('token_id', token_id, 'role', r),
                         NULL);
END
$$;
COMMENT ON FUNCTION tenancy.revoke_token(uuid, uuid) IS 'revokes a live token of the tenant (42704 when none)';

-- Tokens are an administrative surface: tenancy_admin only (the daemon's role), never tenancy_app.
REVOKE ALL ON tenancy.tenant_tokens FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON tenancy.tenant_tokens TO tenancy_admin;
REVOKE ALL ON FUNCTION tenancy.token_permits(tenancy.user_role, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.token_may_grant(tenancy.user_role, tenancy.user_role) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.authorize_token(bytea, uuid, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.revoke_token(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.token_permits(tenancy.user_role, text) TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.token_may_grant(tenancy.user_role, tenancy.user_role) TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role)
  TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.authorize_token(bytea, uuid, text) TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.revoke_token(uuid, uuid) TO tenancy_admin;

-- ==== sql/src/71_sla.sql
-- sql/src/71_sla.sql
-- SLA targets by plan (SPEC.md): what tenancyd's SLA report compares its measurements with.

CREATE FUNCTION tenancy.sla_targets(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p tenancy.tenant_plan;
BEGIN
  SELECT t.plan INTO p FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) sla_targets.tenant_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TN001', MESSAGE = format('tenant "%s" does not exist', tenant_id);
  END IF;
  RETURN CASE p
    WHEN 'enterprise' THEN '{"uptime_percent": 99.95, "response_time_ms": 200, "support_response_hours": 1}'::jsonb
    WHEN 'team' THEN '{"uptime_percent": 99.9, "response_time_ms": 500, "support_response_hours": 4}'::jsonb
    ELSE '{"uptime_percent": 99.5, "response_time_ms": 1000, "support_response_hours": 24}'::jsonb
  END || jsonb_build_object('plan', p);
END
$$;
COMMENT ON FUNCTION tenancy.sla_targets(uuid) IS 'uptime, response-time and support targets of the tenant''s plan';
REVOKE ALL ON FUNCTION tenancy.sla_targets(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.sla_targets(uuid) TO tenancy_admin;

-- ==== sql/src/80_residency.sql
-- sql/src/80_residency.sql
-- Data residency: the cluster's region (tenancy.region) enforced on the registry, and each tenant's backup policy.

-- The single enforcement point: every way a tenant row arrives (create_tenant, update_tenant, import_tenant, a
-- direct INSERT) passes this trigger. create_tenant/update_tenant already refuse early in _parse_residency with the
-- same message; this catches what does not go through them. Existing rows of another residency (a cluster that set
-- tenancy.region later, or a tenant being moved out) may still be updated as long as the residency stays.
CREATE FUNCTION tenancy._enforce_region() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  region text := pg_catalog.current_setting('tenancy.region', true);
BEGIN
  IF region IS NULL OR region OPERATOR(pg_catalog.=) ''
     OR NEW.data_residency::text OPERATOR(pg_catalog.=) region
     OR (TG_OP OPERATOR(pg_catalog.=) 'UPDATE' AND NEW.data_residency OPERATOR(pg_catalog.=) OLD.data_residency) THEN
    RETURN NEW;
  END IF;
  RAISE EXCEPTION USING ERRCODE = 'TN005',
    MESSAGE = format('data residency "%s" is not served by this cluster', NEW.data_residency),
    DETAIL = format('This cluster serves region "%s" (tenancy.region).', region),
    HINT = format('Create the tenant on the cluster of region "%s" (tenancy.region = ''%s'').', NEW.data_residency,
                  NEW.data_residency);
END
$$;
COMMENT ON FUNCTION tenancy._enforce_region() IS
  'internal: refuses a tenant whose data residency is not the region this cluster serves (tenancy.region)';

CREATE TRIGGER tenants_enforce_region BEFORE INSERT OR UPDATE OF data_residency ON tenancy.tenants
  FOR EACH ROW EXECUTE FUNCTION tenancy._enforce_region();
-- ALWAYS: rows arriving by logical replication (apply workers run in replica mode) are checked too.
ALTER TABLE tenancy.tenants ENABLE ALWAYS TRIGGER tenants_enforce_region;

-- Backup regions by residency and retention by plan (SPEC.md "Domain"), with the region this cluster serves.
CREATE FUNCTION tenancy.backup_policy(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants := tenancy.get_tenant(tenant_id);
  regions text[];
  region text := NULLIF(pg_catalog.current_setting('tenancy.region', true), '');
BEGIN
  regions := CASE t.data_residency
    WHEN 'eu' THEN ARRAY['eu-central-1', 'eu-west-1', 'eu-north-1']
    WHEN 'us' THEN ARRAY['us-east-1', 'us-west-2', 'us-central-1']
    ELSE ARRAY[t.data_residency::text OPERATOR(pg_catalog.||) '-primary',
                t.data_residency::text OPERATOR(pg_catalog.||) '-secondary'] END;
  RETURN pg_catalog.jsonb_build_object(
    'tenant_id', t.id,
    'data_residency', t.data_residency,
    'plan', t.plan,
    'backup_regions', pg_catalog.to_jsonb(regions),
    'regions', pg_catalog.to_jsonb(regions),  -- SPEC.md's short name for backup_regions
    'retention_days', CASE t.plan WHEN 'developer' THEN 7 WHEN 'team' THEN 30 WHEN 'enterprise' THEN 365 END,
    'cluster_region', region,
    'served_here', region IS NULL OR region OPERATOR(pg_catalog.=) t.data_residency::text);
END
$$;
COMMENT ON FUNCTION tenancy.backup_policy(uuid) IS
  'backup regions (by data residency) and retention days (by plan) of a tenant, and the region this cluster serves';

REVOKE ALL ON FUNCTION tenancy._enforce_region(), tenancy.backup_policy(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.backup_policy(uuid) TO tenancy_admin;

-- ==== sql/src/85_export.sql
-- sql/src/85_export.sql
-- Tenant export/import: one self-describing document (manifest with per-table SHA-256), or per-table COPY streams.

-- SHA-256 (hex) of values in aggregation order, each followed by a newline; the checksum of an export table is
-- this aggregate over its rows' COPY text lines (format 2; format 1: each row's jsonb text) in document order.
CREATE FUNCTION tenancy._sha256_agg_transfn(internal, text) RETURNS internal
LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_sha256_agg_transfn';
CREATE FUNCTION tenancy._sha256_agg_finalfn(internal) RETURNS text
LANGUAGE c PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_sha256_agg_finalfn';
CREATE AGGREGATE tenancy._sha256_agg(text) (
  SFUNC = tenancy._sha256_agg_transfn, STYPE = internal, FINALFUNC = tenancy._sha256_agg_finalfn,
  FINALFUNC_EXTRA = false, FINALFUNC_MODIFY = READ_ONLY
);
COMMENT ON FUNCTION tenancy._sha256_agg_transfn(internal, text) IS 'internal: transition of tenancy._sha256_agg';
COMMENT ON FUNCTION tenancy._sha256_agg_finalfn(internal) IS 'internal: final function of tenancy._sha256_agg';
COMMENT ON AGGREGATE tenancy._sha256_agg(text) IS
  'internal: hex SHA-256 of the values in order, each followed by a newline (export checksums)';

-- The values of a COPY text line as export_tenant writes it (the inverse of _copy_line; other escapes refused).
CREATE FUNCTION tenancy._copy_fields(text) RETURNS text[]
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_copy_fields';
COMMENT ON FUNCTION tenancy._copy_fields(text) IS 'internal: the values of one row of a format-2 export document';

-- A row's COPY text line (values escaped as COPY's text format, tab-separated, NULL as \N; without the newline).
CREATE FUNCTION tenancy._copy_line(text[]) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_copy_line';
COMMENT ON FUNCTION tenancy._copy_line(text[]) IS
  'internal: the values as one COPY text-format line, the unit of format-2 export checksums';

-- Columns an import writes: not dropped, not generated, in column order.
CREATE FUNCTION tenancy._export_columns(tbl oid) RETURNS text[]
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.array_agg(a.attname::text ORDER BY a.attnum) FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum > 0 AND NOT a.attisdropped
     AND a.attgenerated OPERATOR(pg_catalog.=) ''
$$;
COMMENT ON FUNCTION tenancy._export_columns(oid) IS 'internal: the stored, non-generated columns of a table';

-- The query reading one table's exported columns of the tenant's ($1) rows, in primary-key order (whole-row order
-- without one). Identifiers are quoted.
CREATE FUNCTION tenancy._export_select(tbl oid, tenant_column name) RETURNS text
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  order_by text;
  only_kw text := CASE WHEN (SELECT k.relkind FROM pg_catalog.pg_class k WHERE k.oid OPERATOR(pg_catalog.=) tbl)
                            OPERATOR(pg_catalog.=) 'p' THEN '' ELSE 'ONLY ' END;
BEGIN
  SELECT pg_catalog.string_agg(format('t.%I', a.attname), ', ' ORDER BY k.n) INTO order_by
    FROM pg_catalog.pg_constraint c, pg_catalog.unnest(c.conkey) WITH ORDINALITY k(attnum, n),
         pg_catalog.pg_attribute a
   WHERE c.conrelid OPERATOR(pg_catalog.=) tbl AND c.contype OPERATOR(pg_catalog.=) 'p'
     AND a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attnum OPERATOR(pg_catalog.=) k.attnum;
  RETURN format('SELECT %s FROM %s%s t WHERE t.%I OPERATOR(pg_catalog.=) $1 ORDER BY %s',
                (SELECT pg_catalog.string_agg(format('t.%I', c.name), ', ' ORDER BY c.i)
                   FROM pg_catalog.unnest(tenancy._export_columns(tbl)) WITH ORDINALITY c(name, i)),
                only_kw, tbl::regclass, tenant_column, coalesce(order_by, 't::text'));
END
$$;
COMMENT ON FUNCTION tenancy._export_select(oid, name) IS 'internal: the query reading a table''s rows of one tenant';

-- What an export holds, in the order an import restores it (parents before children):
--   registry: the tenant row, users, quota overrides, usage history and wrapped data keys (the last two when the
--             quota and crypto parts are installed);
--   isolated: every isolated table that is not a partition (a partitioned root covers its partitions; an
--             inheritance parent is read with ONLY and each child on its own), ordered by their foreign keys;
--   audit:    the audit events about the tenant (re-appended to the target's own chain on import).
-- Rows come in primary-key order (whole-row order without one), so exporting the same data twice gives the same
-- checksums. select_sql takes the tenant id as $1 and yields the exported columns of each row.
CREATE FUNCTION tenancy._export_plan()
RETURNS TABLE (ord integer, table_name regclass, qualified_name text, kind text, tenant_column name, columns text[], select_sql text)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE registry AS (
    SELECT pg_catalog.to_regclass(v.name)::oid AS relid, v.col::name AS col, v.sortkey
      FROM (VALUES ('tenancy.tenants', 'id', 1), ('tenancy.users', 'tenant_id', 2),
                   ('tenancy.quota_overrides', 'tenant_id', 3), ('tenancy.usage_history', 'tenant_id', 4),
                   ('tenancy.tenant_keys', 'tenant_id', 5)) v(name, col, sortkey)
     WHERE pg_catalog.to_regclass(v.name) IS NOT NULL),
  isolated AS (
    SELECT c.relid::oid AS relid, c.tenant_column AS col,
           ARRAY(SELECT f.confrelid FROM pg_catalog.pg_constraint f
                  WHERE f.conrelid OPERATOR(pg_catalog.=) c.relid::oid AND f.contype OPERATOR(pg_catalog.=) 'f'
                    AND f.confrelid OPERATOR(pg_catalog.<>) c.relid::oid) AS refs
      FROM tenancy.isolation_config c
      JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.relid::oid
     WHERE NOT k.relispartition AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])),
  -- Depth of each isolated table = its longest chain of references to other isolated tables; restoring by depth
  -- puts every referenced table first. The path check stops at a foreign-key cycle (its import then fails).
  chain (relid, depth, path) AS (
    SELECT i.relid, 0, ARRAY[i.relid] FROM isolated i
    UNION ALL
    SELECT i.relid, ch.depth + 1, ch.path || i.relid
      FROM chain ch JOIN isolated i ON ch.relid OPERATOR(pg_catalog.=) ANY (i.refs)
     WHERE NOT i.relid OPERATOR(pg_catalog.=) ANY (ch.path)),
  ordered AS (
    SELECT r.relid, 'registry' AS kind, r.col, 0 AS grp, r.sortkey AS depth FROM registry r
    UNION ALL
    SELECT i.relid, 'isolated', i.col, 1, (SELECT pg_catalog.max(ch.depth) FROM chain ch
                                            WHERE ch.relid OPERATOR(pg_catalog.=) i.relid)
      FROM isolated i)
  SELECT (pg_catalog.row_number() OVER (ORDER BY o.grp, o.depth, o.relid::regclass::text))::integer,
         o.relid::regclass, pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(k.relname), o.kind,
         o.col, tenancy._export_columns(o.relid), tenancy._export_select(o.relid, o.col)
    FROM ordered o
    JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) o.relid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
  UNION ALL
  SELECT (SELECT pg_catalog.count(*) FROM ordered)::integer + 1, 'tenancy.audit_log'::regclass, 'tenancy.audit_log',
         'audit',
         'tenant_id'::name, tenancy._export_columns('tenancy.audit_log'::regclass),
         -- Not the events of the exporting transaction itself (export_manifest's own event, say), so the
         -- manifest and the COPYs of one COPY-form export agree.
         (SELECT 'SELECT ' || pg_catalog.string_agg(format('t.%I', c.name), ', ' ORDER BY c.i)
            FROM pg_catalog.unnest(tenancy._export_columns('tenancy.audit_log'::regclass)) WITH ORDINALITY c(name, i))
         || ' FROM tenancy.audit_log t WHERE t.tenant_id OPERATOR(pg_catalog.=) $1'
         ' AND (pg_catalog.pg_current_xact_id_if_assigned() IS NULL OR t.xmin OPERATOR(pg_catalog.<>)'
         ' pg_catalog.xid(pg_catalog.pg_current_xact_id_if_assigned())) ORDER BY t.id'
  ORDER BY 1
$$;
COMMENT ON FUNCTION tenancy._export_plan() IS
  'internal: the tables of a tenant export in restore order, with the query that reads each one''s rows';

-- The manifest's fields other than its tables (extension/pg/export_document.cpp adds those); TN001 for an unknown
-- tenant. Format 2: each row is its COPY text line (values rendered under fixed settings, so the bytes do not
-- depend on the session), and a table's checksum covers exactly those lines, each with its newline: what COPY ...
-- TO STDOUT of the table's export_table sends.
CREATE FUNCTION tenancy._export_head(tenant uuid) RETURNS jsonb
LANGUAGE sql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.jsonb_build_object(
    'format_version', 2, 'tenant_id', t.id, 'slug', t.slug, 'data_residency', t.data_residency,
    'source_region', NULLIF(pg_catalog.current_setting('tenancy.region', true), ''),
    'extension_version', (SELECT e.extversion FROM pg_catalog.pg_extension e
                           WHERE e.extname OPERATOR(pg_catalog.=) 'tenancy'),
    'exported_at', tenancy._rfc3339(pg_catalog.statement_timestamp()),
    'encoding', pg_catalog.getdatabaseencoding(),
    'text_settings', '{"DateStyle": "ISO, YMD", "IntervalStyle": "postgres", "TimeZone": "UTC",
                       "extra_float_digits": 1, "bytea_output": "hex", "lc_monetary": "C"}'::jsonb,
    'checksum_algorithm', 'sha256 of each row''s COPY text line (values escaped as COPY text format, tab-separated,'
                          ' newline-terminated), in document order')
    FROM tenancy.get_tenant(tenant) t
$$;
COMMENT ON FUNCTION tenancy._export_head(uuid) IS 'internal: the manifest fields of a tenant export besides its tables';

CREATE FUNCTION tenancy._export_summary(manifest jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.jsonb_build_object(
    'source_tenant_id', manifest -> 'tenant_id', 'slug', manifest -> 'slug',
    'extension_version', manifest -> 'extension_version',
    'rows', (SELECT coalesce(pg_catalog.jsonb_object_agg(e ->> 'table', e -> 'rows'), '{}')
               FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') e))
$$;
COMMENT ON FUNCTION tenancy._export_summary(jsonb) IS 'internal: what the audit event of an export or import records';

-- The shape of an export manifest (format 1 or 2), checked before anything else is read.
CREATE FUNCTION tenancy._import_check_manifest(manifest jsonb, version integer) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e jsonb;
BEGIN
  IF pg_catalog.jsonb_typeof(manifest) IS DISTINCT FROM 'object'
     OR pg_catalog.jsonb_typeof(manifest -> 'tables') IS DISTINCT FROM 'array'
     OR coalesce(manifest ->> 'tenant_id', '') !~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$' THEN
    PERFORM tenancy._invalid_input('invalid export manifest',
      'A manifest is an object with the tenant_id and the tables of the export.',
      'Import a document written by tenancy.export_tenant() or tenancy.export_manifest().');
  END IF;
  -- Format 1 manifests carry no version of their own (the document does); a format 2 manifest says so.
  IF coalesce(manifest ->> 'format_version', '1') OPERATOR(pg_catalog.<>) version::text THEN
    PERFORM tenancy._invalid_input(format('export manifest of format version %s does not match format version %s',
                                          coalesce(manifest ->> 'format_version', '1'), version));
  END IF;
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x LOOP
    IF pg_catalog.jsonb_typeof(e) IS DISTINCT FROM 'object'
       OR pg_catalog.jsonb_typeof(e -> 'table') IS DISTINCT FROM 'string'
       OR NOT coalesce(e ->> 'kind', '') OPERATOR(pg_catalog.=) ANY (ARRAY['registry', 'isolated', 'audit'])
       OR pg_catalog.jsonb_typeof(e -> 'tenant_column') IS DISTINCT FROM 'string'
       OR pg_catalog.jsonb_typeof(e -> 'columns') IS DISTINCT FROM 'array'
       OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(e -> 'columns') c
                   WHERE pg_catalog.jsonb_typeof(c) OPERATOR(pg_catalog.<>) 'string')
       OR pg_catalog.jsonb_typeof(e -> 'rows') IS DISTINCT FROM 'number'
       OR pg_catalog.jsonb_typeof(e -> 'sha256') IS DISTINCT FROM 'string'
       OR NOT (e ->> 'tenant_column') OPERATOR(pg_catalog.=) ANY (ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e -> 'columns'))) THEN
      PERFORM tenancy._invalid_input('invalid export manifest',
        format('Table entry %s lacks table, kind, tenant_column, columns, rows or sha256.', e));
    END IF;
  END LOOP;
  IF (SELECT pg_catalog.count(*) FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x
       WHERE x.value ->> 'table' OPERATOR(pg_catalog.=) 'tenancy.tenants') OPERATOR(pg_catalog.<>) 1 THEN
    PERFORM tenancy._invalid_input('invalid export manifest', 'The manifest must list tenancy.tenants once.');
  END IF;
  IF (SELECT pg_catalog.count(DISTINCT x.value ->> 'table') FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x)
     OPERATOR(pg_catalog.<>) pg_catalog.jsonb_array_length(manifest -> 'tables') THEN
    PERFORM tenancy._invalid_input('invalid export manifest', 'The manifest lists a table twice.');
  END IF;
  -- The kind and tenant column of each table are ours to decide, not the document's: a forged manifest naming
  -- another column as the tenant column (users' email holding the tenant id, say) would otherwise pass the owner
  -- check with rows of another tenant.
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x LOOP
    IF (e ->> 'kind' OPERATOR(pg_catalog.=) 'registry' AND NOT (e ->> 'table', e ->> 'tenant_column') IN (
          ('tenancy.tenants', 'id'), ('tenancy.users', 'tenant_id'), ('tenancy.quota_overrides', 'tenant_id'),
          ('tenancy.usage_history', 'tenant_id'), ('tenancy.tenant_keys', 'tenant_id')))
       OR (e ->> 'kind' OPERATOR(pg_catalog.=) 'audit'
           AND (e ->> 'table', e ->> 'tenant_column') IS DISTINCT FROM ('tenancy.audit_log', 'tenant_id'))
       OR (e ->> 'kind' OPERATOR(pg_catalog.=) 'isolated' AND pg_catalog.to_regclass(e ->> 'table') IS NOT NULL
           AND (SELECT n.nspname FROM pg_catalog.pg_class k JOIN pg_catalog.pg_namespace n
                    ON n.oid OPERATOR(pg_catalog.=) k.relnamespace
                 WHERE k.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(e ->> 'table')) OPERATOR(pg_catalog.=) 'tenancy')
    THEN
      PERFORM tenancy._invalid_input(format('table "%s" cannot be imported as %s data keyed by "%s"', e ->> 'table',
                                            e ->> 'kind', e ->> 'tenant_column'),
        'The manifest does not match what tenancy exports.');
    END IF;
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._import_check_manifest(jsonb, integer) IS 'internal: refuses a malformed export manifest';

-- The import, all or nothing, of rows staged either in one jsonb table (format 1: staging (table_name text, row
-- jsonb, ord bigint), each row an object) or in one text table per manifest entry (format 2: staging NULL, tables
-- pg_temp.<prefix><n> (ord bigint, c1 text, c2 text, ...) for the n-th entry, each column the text of the export).
-- Everything is checked before the first row is written: the manifest's shape; each table's row count and SHA-256
-- over the staged rows in order; that every row belongs to the exported tenant (a forged document cannot write into
-- another tenant); that neither the tenant nor its slug exists here (23505); that each table exists here, is
-- isolated on the same column and has every exported column; and that no unique key the import keeps is held here
-- already (23505 with a hint). With new_id (a copy), the tenant id, every single-column uuid primary key and every
-- single-column unique key drawn from a sequence (serial, identity) get fresh values; uuid columns holding an old
-- id, and foreign keys referencing a renumbered key, follow; a taken slug gets the new id's first 8 characters.
-- Afterwards every sequence behind an imported integer key is moved past the largest value.
-- Values are read back under the settings they were written with (text_settings of the manifest), whatever the
-- session says.
CREATE FUNCTION tenancy._import_staged(manifest jsonb, staging regclass, new_id uuid, prefix text) RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp SET DateStyle = 'ISO, YMD'
  SET IntervalStyle = 'postgres' SET lc_monetary = 'C' AS $$
DECLARE
  version constant integer := CASE WHEN staging IS NULL THEN 2 ELSE 1 END;
  src uuid;
  target uuid;
  remap boolean;
  e jsonb;
  i bigint;
  tbl regclass;
  tc text;
  cols text[];
  c text;
  j integer;
  n bigint;
  checksum text;
  foreign_rows bigint;
  v_slug text;
  new_slug text;
  from_sql text;
  exprs text[];
  con record;
  ref record;
  seq text;
BEGIN
  PERFORM tenancy._import_check_manifest(manifest, version);
  src := (manifest ->> 'tenant_id')::uuid;
  target := coalesce(new_id, src);
  remap := target OPERATOR(pg_catalog.<>) src;

  -- Where each entry's rows are: "x" in from_sql, with x.ord; _import_text gives a column's text, _import_typed
  -- its value as the target column's type.
  CREATE TEMP TABLE IF NOT EXISTS tenancy_import_entries (i bigint PRIMARY KEY, name text, kind text, tc text,
    cols text[], rows bigint, sha256 text, tbl regclass, from_sql text) ON COMMIT DROP;
  TRUNCATE pg_temp.tenancy_import_entries;
  INSERT INTO pg_temp.tenancy_import_entries
  SELECT x.i, x.v ->> 'table', x.v ->> 'kind', x.v ->> 'tenant_column',
         ARRAY(SELECT pg_catalog.jsonb_array_elements_text(x.v -> 'columns')), (x.v ->> 'rows')::bigint,
         x.v ->> 'sha256', pg_catalog.to_regclass(x.v ->> 'table'), NULL
    FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') WITH ORDINALITY x(v, i);
  IF version OPERATOR(pg_catalog.=) 1 THEN
    EXECUTE format('SELECT s.table_name FROM %s s WHERE NOT s.table_name OPERATOR(pg_catalog.=) ANY ($1) LIMIT 1',
                   staging)
      INTO c USING ARRAY(SELECT x.name FROM pg_temp.tenancy_import_entries x);
    IF c IS NOT NULL THEN
      PERFORM tenancy._invalid_input(format('rows of table "%s" are not listed in the export manifest', c));
    END IF;
    UPDATE pg_temp.tenancy_import_entries x SET from_sql =
      format('(SELECT s.ord, s.row FROM %s s WHERE s.table_name OPERATOR(pg_catalog.=) %L) x', staging, x.name);
  ELSE
    FOR i IN SELECT x.i FROM pg_temp.tenancy_import_entries x LOOP
      IF pg_catalog.to_regclass(format('pg_temp.%I', prefix || i)) IS NULL THEN
        PERFORM tenancy._invalid_input(format('staging table "%s" does not exist', prefix || i), NULL,
          'Run tenancy.import_tables(manifest) and load each table''s COPY file in the same transaction first.');
      END IF;
    END LOOP;
    UPDATE pg_temp.tenancy_import_entries x SET from_sql = format('pg_temp.%I x', prefix || x.i);
  END IF;

  -- Integrity: counts and checksums over the rows in order, and the owner of every row.
  FOR e IN SELECT pg_catalog.to_jsonb(x) FROM pg_temp.tenancy_import_entries x ORDER BY x.i LOOP
    cols := ARRAY(SELECT pg_catalog.jsonb_array_elements_text(e -> 'cols'));
    IF version OPERATOR(pg_catalog.=) 1 THEN
      EXECUTE format('SELECT pg_catalog.count(*), tenancy._sha256_agg(x.row::text ORDER BY x.ord),'
                     ' pg_catalog.count(*) FILTER (WHERE x.row ->> %L IS DISTINCT FROM %L) FROM %s',
                     e ->> 'tc', src, e ->> 'from_sql')
        INTO n, checksum, foreign_rows;
    ELSE
      EXECUTE format('SELECT pg_catalog.count(*), tenancy._sha256_agg(tenancy._copy_line(ARRAY[%s]) ORDER BY x.ord),'
                     ' pg_catalog.count(*) FILTER (WHERE x.%I IS DISTINCT FROM %L) FROM %s',
                     (SELECT pg_catalog.string_agg(format('x.%I', 'c' || k), ', ' ORDER BY k)
                        FROM pg_catalog.generate_series(1, pg_catalog.cardinality(cols)) k),
                     'c' || pg_catalog.array_position(cols, e ->> 'tc'), src, e ->> 'from_sql')
        INTO n, checksum, foreign_rows;
    END IF;
    IF n OPERATOR(pg_catalog.<>) (e ->> 'rows')::bigint OR checksum OPERATOR(pg_catalog.<>) (e ->> 'sha256') THEN
      PERFORM tenancy._invalid_input(format('checksum of table "%s" does not match the export manifest', e ->> 'name'),
        format('The manifest promises %s rows with SHA-256 %s; the export holds %s rows with SHA-256 %s.',
               e ->> 'rows', e ->> 'sha256', n, checksum),
        'The export was altered or truncated after it was written; export the tenant again.');
    END IF;
    IF foreign_rows > 0 THEN
      PERFORM tenancy._invalid_input(format('table "%s" of the export holds rows of another tenant', e ->> 'name'),
        format('%s rows do not belong to tenant %s.', foreign_rows, src));
    END IF;
  END LOOP;
  SELECT x.* INTO con FROM pg_temp.tenancy_import_entries x WHERE x.name OPERATOR(pg_catalog.=) 'tenancy.tenants';
  EXECUTE format('SELECT %s FROM %s LIMIT 1', CASE version WHEN 1 THEN 'x.row ->> ''slug'''
                   ELSE format('x.%I', 'c' || pg_catalog.array_position(con.cols, 'slug')) END, con.from_sql)
    INTO v_slug;
  IF v_slug IS NULL THEN
    PERFORM tenancy._invalid_input('the export holds no tenant row');
  END IF;

  -- Conflicts: the same tenant or slug here already.
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) target) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = format('tenant "%s" already exists', target),
      HINT = 'Import with new_id => gen_random_uuid() for a copy, or erase the tenant first.';
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.slug OPERATOR(pg_catalog.=) v_slug) THEN
    -- A copy beside its original gets a slug of its own: the old one followed by the start of its new id.
    new_slug := pg_catalog.left(v_slug, 54) || '-' || pg_catalog.left(target::text, 8);
    IF NOT remap OR EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.slug OPERATOR(pg_catalog.=) new_slug) THEN
      RAISE EXCEPTION USING ERRCODE = 'unique_violation',
        MESSAGE = format('tenant with slug "%s" already exists', CASE WHEN remap THEN new_slug ELSE v_slug END),
        CONSTRAINT = 'tenants_slug_key',
        HINT = 'Erase the tenant with this slug first, or import a copy under a new id (new_id).';
    END IF;
  END IF;

  -- The tables here: present, isolated alike, with every exported column.
  FOR con IN SELECT x.* FROM pg_temp.tenancy_import_entries x WHERE x.kind OPERATOR(pg_catalog.<>) 'audit' ORDER BY x.i LOOP
    IF con.tbl IS NULL THEN
      IF con.rows > 0 THEN
        PERFORM tenancy._invalid_input(format('table "%s" of the export does not exist in this database', con.name),
          NULL, 'Create the application''s tables (and isolate them) before importing a tenant.');
      END IF;
      CONTINUE;
    END IF;
    IF con.kind OPERATOR(pg_catalog.=) 'isolated' AND NOT EXISTS (
         SELECT 1 FROM tenancy.isolation_config ic
          WHERE ic.relid OPERATOR(pg_catalog.=) con.tbl AND ic.tenant_column::text OPERATOR(pg_catalog.=) con.tc) THEN
      PERFORM tenancy._invalid_input(format('table "%s" is not isolated on column "%s" in this database', con.tbl,
                                            con.tc),
        'Imported rows are only written into tables that keep them apart from other tenants.',
        format('Run SELECT tenancy.enable_isolation(%L, %L) first.', con.tbl::text, con.tc));
    END IF;
    SELECT c2 INTO c FROM pg_catalog.unnest(con.cols) c2 WHERE NOT c2 OPERATOR(pg_catalog.=) ANY (tenancy._export_columns(con.tbl)) LIMIT 1;
    IF c IS NOT NULL THEN
      PERFORM tenancy._invalid_input(format('column "%s" of table "%s" does not exist in this database', c, con.tbl),
        'Every exported column must have a stored column of the same name here.');
    END IF;
  END LOOP;
  -- Wrapped data keys are bound to their tenant id (and ciphertexts to it): a copy under a new id cannot use them and
  -- gets a fresh key from the crypto part's insert trigger instead (encryption_key_id left NULL).
  IF remap THEN
    DELETE FROM pg_temp.tenancy_import_entries x WHERE x.tbl OPERATOR(pg_catalog.=) pg_catalog.to_regclass('tenancy.tenant_keys');
  END IF;
  DELETE FROM pg_temp.tenancy_import_entries x WHERE x.tbl IS NULL AND x.kind OPERATOR(pg_catalog.<>) 'audit';

  -- Each imported column: its text and typed value expressions, and what it becomes in this import.
  CREATE TEMP TABLE IF NOT EXISTS tenancy_import_columns (i bigint, tbl regclass, name text, pos integer,
    type regtype, text_expr text, typed_expr text, renumber text, ref_tbl regclass, ref_name text,
    PRIMARY KEY (i, name)) ON COMMIT DROP;
  TRUNCATE pg_temp.tenancy_import_columns;
  INSERT INTO pg_temp.tenancy_import_columns
  SELECT x.i, x.tbl, c2.name, c2.pos::integer, a.atttypid::regtype,
         CASE version WHEN 1 THEN format('(x.row ->> %L)', c2.name) ELSE format('x.%I', 'c' || c2.pos) END,
         CASE version WHEN 1 THEN format('r.%I', c2.name)
                      ELSE format('(x.%I)::%s', 'c' || c2.pos, a.atttypid::regtype) END,
         NULL, NULL, NULL
    FROM pg_temp.tenancy_import_entries x, pg_catalog.unnest(x.cols) WITH ORDINALITY c2(name, pos),
         pg_catalog.pg_attribute a
   WHERE x.kind OPERATOR(pg_catalog.<>) 'audit' AND a.attrelid OPERATOR(pg_catalog.=) x.tbl
     AND a.attname::text OPERATOR(pg_catalog.=) c2.name;
  IF remap THEN
    -- Renumbered keys: single-column primary (uuid, or drawn from a sequence) and unique (drawn from a sequence)
    -- keys other than the tenant column.
    UPDATE pg_temp.tenancy_import_columns m SET renumber = CASE
             WHEN m.type OPERATOR(pg_catalog.=) 'uuid'::regtype AND k.contype OPERATOR(pg_catalog.=) 'p' THEN 'uuid'
             ELSE 'sequence' END
      FROM pg_temp.tenancy_import_entries x, pg_catalog.pg_constraint k, pg_catalog.pg_attribute a
     WHERE x.i OPERATOR(pg_catalog.=) m.i AND m.name OPERATOR(pg_catalog.<>) x.tc
       AND k.conrelid OPERATOR(pg_catalog.=) m.tbl AND k.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u']::"char"[])
       AND pg_catalog.cardinality(k.conkey) OPERATOR(pg_catalog.=) 1
       AND a.attrelid OPERATOR(pg_catalog.=) m.tbl AND a.attnum OPERATOR(pg_catalog.=) k.conkey[1]
       AND a.attname::text OPERATOR(pg_catalog.=) m.name
       AND ((m.type OPERATOR(pg_catalog.=) 'uuid'::regtype AND k.contype OPERATOR(pg_catalog.=) 'p')
            OR (m.type OPERATOR(pg_catalog.=) ANY (ARRAY['smallint', 'integer', 'bigint']::regtype[])
                AND pg_catalog.pg_get_serial_sequence(m.tbl::text, m.name) IS NOT NULL));
    -- Foreign keys referencing a renumbered key follow it (single- or multi-column, by position).
    UPDATE pg_temp.tenancy_import_columns m SET ref_tbl = r.tbl, ref_name = r.name
      FROM pg_catalog.pg_constraint f,
           ROWS FROM (pg_catalog.unnest(f.conkey), pg_catalog.unnest(f.confkey)) u(k, fk),
           pg_catalog.pg_attribute a, pg_catalog.pg_attribute ra, pg_temp.tenancy_import_columns r
     WHERE f.conrelid OPERATOR(pg_catalog.=) m.tbl AND f.contype OPERATOR(pg_catalog.=) 'f'
       AND a.attrelid OPERATOR(pg_catalog.=) m.tbl AND a.attnum OPERATOR(pg_catalog.=) u.k
       AND a.attname::text OPERATOR(pg_catalog.=) m.name
       AND ra.attrelid OPERATOR(pg_catalog.=) f.confrelid AND ra.attnum OPERATOR(pg_catalog.=) u.fk
       AND r.tbl OPERATOR(pg_catalog.=) f.confrelid AND r.name OPERATOR(pg_catalog.=) ra.attname::text
       AND r.renumber OPERATOR(pg_catalog.=) 'sequence';

    -- New ids: the tenant, every uuid primary key (any uuid column holding one follows), and fresh values from
    -- each renumbered key's own sequence.
    CREATE TEMP TABLE IF NOT EXISTS tenancy_import_id_map (old uuid PRIMARY KEY, new uuid NOT NULL) ON COMMIT DROP;
    CREATE TEMP TABLE IF NOT EXISTS tenancy_import_key_map (tbl regclass, name text, old text, new text,
      PRIMARY KEY (tbl, name, old)) ON COMMIT DROP;
    TRUNCATE pg_temp.tenancy_import_id_map, pg_temp.tenancy_import_key_map;
    INSERT INTO pg_temp.tenancy_import_id_map VALUES (src, target);
    FOR con IN SELECT m.*, x.from_sql FROM pg_temp.tenancy_import_columns m
                 JOIN pg_temp.tenancy_import_entries x ON x.i OPERATOR(pg_catalog.=) m.i
                WHERE m.renumber IS NOT NULL ORDER BY m.i, m.pos LOOP
      IF con.renumber OPERATOR(pg_catalog.=) 'uuid' THEN
        EXECUTE format('INSERT INTO pg_temp.tenancy_import_id_map SELECT DISTINCT (%s)::uuid,'
                       ' pg_catalog.gen_random_uuid() FROM %s WHERE %s IS NOT NULL ON CONFLICT DO NOTHING',
                       con.text_expr, con.from_sql, con.text_expr);
      ELSE
        EXECUTE format('INSERT INTO pg_temp.tenancy_import_key_map SELECT %L, %L, d.v,'
                       ' pg_catalog.nextval(%L::pg_catalog.regclass)::text'
                       ' FROM (SELECT %s AS v, pg_catalog.min(x.ord) AS first FROM %s WHERE %s IS NOT NULL'
                       ' GROUP BY 1 ORDER BY 2) d',
                       con.tbl, con.name, pg_catalog.pg_get_serial_sequence(con.tbl::text, con.name),
                       con.text_expr, con.from_sql, con.text_expr);
      END IF;
    END LOOP;
  END IF;

  -- What each column becomes: the tenant id; a renumbered key or a reference to one through the key map; any
  -- other uuid of a copy through the id map; else its value.
  UPDATE pg_temp.tenancy_import_columns m SET typed_expr = CASE
      WHEN m.name OPERATOR(pg_catalog.=) x.tc THEN format('%L::%s', target, m.type)
      WHEN m.tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::regclass AND m.name OPERATOR(pg_catalog.=) 'parent_tenant_id'
        -- A parent that is not here (another cluster) is dropped: the tenant becomes a root.
        THEN format('(SELECT p.id FROM tenancy.tenants p WHERE p.id OPERATOR(pg_catalog.=) %s)', m.typed_expr)
      WHEN remap AND m.tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::regclass
           AND m.name OPERATOR(pg_catalog.=) 'encryption_key_id' THEN 'NULL::text'
      WHEN new_slug IS NOT NULL AND m.tbl OPERATOR(pg_catalog.=) 'tenancy.tenants'::regclass
           AND m.name OPERATOR(pg_catalog.=) 'slug' THEN format('%L::%s', new_slug, m.type)
      WHEN remap AND (m.renumber OPERATOR(pg_catalog.=) 'sequence' OR m.ref_tbl IS NOT NULL)
        THEN format('coalesce((SELECT k.new FROM pg_temp.tenancy_import_key_map k WHERE k.tbl OPERATOR(pg_catalog.=) %L::pg_catalog.regclass'
                    ' AND k.name OPERATOR(pg_catalog.=) %L AND k.old OPERATOR(pg_catalog.=) %s)::%s, %s)',
                    coalesce(m.ref_tbl, m.tbl), coalesce(m.ref_name, m.name), m.text_expr, m.type, m.typed_expr)
      WHEN remap AND m.type OPERATOR(pg_catalog.=) 'uuid'::regtype
        THEN format('coalesce((SELECT d.new FROM pg_temp.tenancy_import_id_map d'
                    ' WHERE d.old OPERATOR(pg_catalog.=) %s), %s)', m.typed_expr, m.typed_expr)
      ELSE m.typed_expr END
    FROM pg_temp.tenancy_import_entries x WHERE x.i OPERATOR(pg_catalog.=) m.i;
  IF version OPERATOR(pg_catalog.=) 1 THEN
    UPDATE pg_temp.tenancy_import_entries x
       SET from_sql = x.from_sql || format(', LATERAL pg_catalog.jsonb_populate_record(NULL::%s, x.row) r', x.tbl)
     WHERE x.kind OPERATOR(pg_catalog.<>) 'audit';
  END IF;

  -- Unique keys the import keeps (not renumbered, no tenant column, no reference that follows a renumbered key)
  -- must be free here, or the insert would fail half way: refused up front, naming the key.
  FOR con IN
    SELECT x.from_sql, x.tbl, k.conname,
           pg_catalog.string_agg(format('t.%I OPERATOR(pg_catalog.=) %s', m.name, m.typed_expr), ' AND ') AS cond
      FROM pg_temp.tenancy_import_entries x
      JOIN pg_catalog.pg_constraint k ON k.conrelid OPERATOR(pg_catalog.=) x.tbl
                                     AND k.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u']::"char"[])
      JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) x.tbl
                                    AND a.attnum OPERATOR(pg_catalog.=) ANY (k.conkey)
      LEFT JOIN pg_temp.tenancy_import_columns m ON m.i OPERATOR(pg_catalog.=) x.i
                                               AND m.name OPERATOR(pg_catalog.=) a.attname::text
     WHERE x.kind OPERATOR(pg_catalog.<>) 'audit'
     GROUP BY x.i, x.from_sql, x.tbl, x.tc, k.conname
    HAVING pg_catalog.bool_and(m.name IS NOT NULL AND m.name OPERATOR(pg_catalog.<>) x.tc
                               AND m.renumber IS NULL AND m.ref_tbl IS NULL
                               AND NOT (remap AND m.type OPERATOR(pg_catalog.=) 'uuid'::regtype))
  LOOP
    EXECUTE format('SELECT pg_catalog.count(*) FROM %s WHERE EXISTS (SELECT 1 FROM %s t WHERE %s)',
                   con.from_sql, con.tbl, con.cond) INTO n;
    IF n > 0 THEN
      RAISE EXCEPTION USING ERRCODE = 'unique_violation', CONSTRAINT = con.conname,
        MESSAGE = format('%s rows of table "%s" have keys that rows here hold already', n, con.tbl),
        DETAIL = format('Key "%s" of the imported rows is kept as it is, and it is not free in this database.',
                        con.conname),
        HINT = CASE WHEN remap
          THEN 'Import into another database, or make the key start with the tenant column (only uuid primary keys '
               'and keys drawn from a sequence get new values in a copy).'
          ELSE 'Import into a database where these keys are free, or import a copy under a new id (new_id), which '
               'gives uuid primary keys and keys drawn from a sequence new values.' END;
    END IF;
  END LOOP;

  -- The rows, table by table in manifest order (parents first), each in export order.
  FOR con IN SELECT x.* FROM pg_temp.tenancy_import_entries x ORDER BY x.i LOOP
    IF con.kind OPERATOR(pg_catalog.=) 'audit' THEN
      -- History is re-appended to this cluster's own chain (its links cannot be copied): one event per exported
      -- event, carrying the original with its hashes as provenance.
      FOR e IN EXECUTE format('SELECT %s FROM %s ORDER BY x.ord', CASE version WHEN 1 THEN 'x.row' ELSE format(
                 'pg_catalog.jsonb_build_object(%s)', (SELECT pg_catalog.string_agg(format('%L, (x.%I)::%s',
                   c2.name, 'c' || c2.pos, a.atttypid::regtype), ', ' ORDER BY c2.pos)
                   FROM pg_catalog.unnest(con.cols) WITH ORDINALITY c2(name, pos), pg_catalog.pg_attribute a
                  WHERE a.attrelid OPERATOR(pg_catalog.=) 'tenancy.audit_log'::regclass
                    AND a.attname::text OPERATOR(pg_catalog.=) c2.name)) END, con.from_sql) LOOP
        PERFORM tenancy._audit('audit_event_imported', target, NULL, e);
      END LOOP;
      CONTINUE;
    END IF;
    EXECUTE format('INSERT INTO %s (%s) OVERRIDING SYSTEM VALUE SELECT %s FROM %s ORDER BY x.ord', con.tbl,
                   (SELECT pg_catalog.string_agg(format('%I', m.name), ', ' ORDER BY m.pos)
                      FROM pg_temp.tenancy_import_columns m WHERE m.i OPERATOR(pg_catalog.=) con.i),
                   (SELECT pg_catalog.string_agg(m.typed_expr, ', ' ORDER BY m.pos)
                      FROM pg_temp.tenancy_import_columns m WHERE m.i OPERATOR(pg_catalog.=) con.i),
                   con.from_sql);
  END LOOP;

  -- Sequences catch up with the values kept (same-id import into another database): the application's next
  -- insert must not draw a value an imported row holds.
  FOR con IN SELECT m.tbl, m.name FROM pg_temp.tenancy_import_columns m
              WHERE m.type OPERATOR(pg_catalog.=) ANY (ARRAY['smallint', 'integer', 'bigint']::regtype[])
                AND pg_catalog.pg_get_serial_sequence(m.tbl::text, m.name) IS NOT NULL LOOP
    seq := pg_catalog.pg_get_serial_sequence(con.tbl::text, con.name);
    EXECUTE format('SELECT pg_catalog.setval(%L::pg_catalog.regclass, m.v) FROM (SELECT pg_catalog.max(t.%I) AS v'
                   ' FROM %s t) m, %s s WHERE m.v >= CASE WHEN s.is_called THEN s.last_value + 1 ELSE s.last_value END',
                   seq, con.name, con.tbl, seq::regclass);
  END LOOP;
  DROP TABLE pg_temp.tenancy_import_entries, pg_temp.tenancy_import_columns;
  RETURN target;
END
$$;
COMMENT ON FUNCTION tenancy._import_staged(jsonb, regclass, uuid, text) IS
  'internal (import_tenant, import_tenant_copied as the extension owner): verifies and restores staged export rows';

-- True when a row has as many values as its table has exported columns; raises TN005 otherwise.
CREATE FUNCTION tenancy._import_field_count(fields text[], ncols integer, table_name text) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF pg_catalog.cardinality(fields) OPERATOR(pg_catalog.<>) ncols THEN
    PERFORM tenancy._invalid_input('invalid export document',
      format('A row of table "%s" has %s values; the table has %s exported columns.', table_name,
             pg_catalog.cardinality(fields), ncols));
  END IF;
  RETURN true;
END
$$;
COMMENT ON FUNCTION tenancy._import_field_count(text[], integer, text) IS
  'internal: refuses a row of an export document with the wrong number of values';

-- The document form: its rows are staged in temporary tables (format 1: one jsonb table; format 2: one text table
-- per manifest entry), then imported like COPY-loaded ones.
CREATE FUNCTION tenancy._import_tenant(doc jsonb, new_id uuid) RETURNS uuid
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  id uuid;
  version integer;
  e record;
  stray text;
BEGIN
  IF pg_catalog.jsonb_typeof(doc) IS DISTINCT FROM 'object'
     OR doc ->> 'format' IS DISTINCT FROM 'tenancy-tenant-export'
     OR pg_catalog.jsonb_typeof(doc -> 'data') IS DISTINCT FROM 'object'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_each(doc -> 'data') d
                 WHERE pg_catalog.jsonb_typeof(d.value) OPERATOR(pg_catalog.<>) 'array') THEN
    PERFORM tenancy._invalid_input('invalid export document',
      'An export document is an object with format "tenancy-tenant-export", a manifest and the data of each table.',
      'Import a document written by tenancy.export_tenant().');
  END IF;
  IF NOT coalesce(doc ->> 'format_version', '') OPERATOR(pg_catalog.=) ANY (ARRAY['1', '2']) THEN
    PERFORM tenancy._invalid_input(format('unsupported export format version %s', doc -> 'format_version'),
      'This version of tenancy reads format versions 1 and 2.');
  END IF;
  version := (doc ->> 'format_version')::integer;
  IF version OPERATOR(pg_catalog.=) 1 THEN
    CREATE TEMP TABLE IF NOT EXISTS tenancy_import_doc_rows (table_name text, row jsonb, ord bigint) ON COMMIT DROP;
    TRUNCATE pg_temp.tenancy_import_doc_rows;
    INSERT INTO pg_temp.tenancy_import_doc_rows
    SELECT d.key, r.value, r.ord
      FROM pg_catalog.jsonb_each(doc -> 'data') d, pg_catalog.jsonb_array_elements(d.value) WITH ORDINALITY r(value, ord);
    id := tenancy._import_staged(doc -> 'manifest', 'pg_temp.tenancy_import_doc_rows'::regclass, new_id, NULL);
    DROP TABLE pg_temp.tenancy_import_doc_rows;
    RETURN id;
  END IF;
  PERFORM tenancy._import_check_manifest(doc -> 'manifest', 2);
  SELECT d.key INTO stray FROM pg_catalog.jsonb_each(doc -> 'data') d
   WHERE NOT d.key OPERATOR(pg_catalog.=) ANY (ARRAY(
           SELECT x.value ->> 'table' FROM pg_catalog.jsonb_array_elements(doc -> 'manifest' -> 'tables') x))
   LIMIT 1;
  IF stray IS NOT NULL THEN
    PERFORM tenancy._invalid_input(format('rows of table "%s" are not listed in the export manifest', stray));
  END IF;
  -- Format 2: each table's rows are COPY text lines; their values go into one text staging table per entry.
  FOR e IN SELECT x.i, x.v ->> 'table' AS name, pg_catalog.jsonb_array_length(x.v -> 'columns') AS ncols,
                  coalesce(doc -> 'data' -> (x.v ->> 'table'), '[]') AS rows
             FROM pg_catalog.jsonb_array_elements(doc -> 'manifest' -> 'tables') WITH ORDINALITY x(v, i) LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(e.rows) r
                WHERE pg_catalog.jsonb_typeof(r) OPERATOR(pg_catalog.<>) 'string') THEN
      PERFORM tenancy._invalid_input('invalid export document',
        format('Each row of table "%s" must be a string (its COPY text line).', e.name));
    END IF;
    IF pg_catalog.to_regclass(format('pg_temp.%I', 'tenancy_import_doc_' || e.i)) IS NOT NULL THEN
      EXECUTE format('DROP TABLE pg_temp.%I', 'tenancy_import_doc_' || e.i);
    END IF;
    EXECUTE format('CREATE TEMP TABLE %I (ord bigint, %s) ON COMMIT DROP', 'tenancy_import_doc_' || e.i,
                   (SELECT pg_catalog.string_agg(format('%I text', 'c' || k), ', ' ORDER BY k)
                      FROM pg_catalog.generate_series(1, e.ncols) k));
    EXECUTE format('INSERT INTO pg_temp.%I SELECT r.i, %s FROM pg_catalog.jsonb_array_elements_text($1)'
                   ' WITH ORDINALITY r(line, i), LATERAL tenancy._copy_fields(r.line) f(v)'
                   ' WHERE tenancy._import_field_count(f.v, $2, $3)',
                   'tenancy_import_doc_' || e.i,
                   (SELECT pg_catalog.string_agg(format('f.v[%s]', k), ', ' ORDER BY k)
                      FROM pg_catalog.generate_series(1, e.ncols) k))
      USING e.rows, e.ncols, e.name;
  END LOOP;
  id := tenancy._import_staged(doc -> 'manifest', NULL, new_id, 'tenancy_import_doc_');
  FOR e IN SELECT x.i FROM pg_catalog.jsonb_array_elements(doc -> 'manifest' -> 'tables') WITH ORDINALITY x(v, i) LOOP
    EXECUTE format('DROP TABLE pg_temp.%I', 'tenancy_import_doc_' || e.i);
  END LOOP;
  RETURN id;
END
$$;
COMMENT ON FUNCTION tenancy._import_tenant(jsonb, uuid) IS
  'internal (import_tenant as the extension owner): stages a document''s rows and imports them';

-- The COPY form's staging: one temporary table per manifest entry (the caller's own, dropped at commit), and the
-- COPY ... FROM STDIN that loads that entry's file into it. Run it, the COPYs and import_tenant_copied in one
-- transaction. Invoker's rights: it only creates the caller's own temporary tables.
CREATE FUNCTION tenancy.import_tables(manifest jsonb)
RETURNS TABLE (ord integer, table_name text, copy_sql text)
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e record;
  staging text;
BEGIN
  IF pg_catalog.jsonb_typeof(manifest -> 'tables') IS DISTINCT FROM 'array'
     OR EXISTS (SELECT 1 FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') x
                 WHERE pg_catalog.jsonb_typeof(x.value -> 'table') IS DISTINCT FROM 'string'
                    OR pg_catalog.jsonb_typeof(x.value -> 'columns') IS DISTINCT FROM 'array'
                    OR pg_catalog.jsonb_array_length(x.value -> 'columns') OPERATOR(pg_catalog.=) 0) THEN
    -- Raised here, not through tenancy._invalid_input: this function runs with the caller's rights.
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'invalid export manifest',
      DETAIL = 'A manifest has the tables of the export, each with its columns.',
      HINT = 'Use the manifest of tenancy.export_manifest().';
  END IF;
  FOR e IN SELECT x.i::integer AS i, x.v ->> 'table' AS name, pg_catalog.jsonb_array_length(x.v -> 'columns') AS ncols
             FROM pg_catalog.jsonb_array_elements(manifest -> 'tables') WITH ORDINALITY x(v, i) LOOP
    staging := 'tenancy_import_' || e.i;
    IF pg_catalog.to_regclass(format('pg_temp.%I', staging)) IS NOT NULL THEN
      EXECUTE format('DROP TABLE pg_temp.%I', staging);
    END IF;
    EXECUTE format('CREATE TEMP TABLE %I (ord bigint GENERATED ALWAYS AS IDENTITY, %s) ON COMMIT DROP', staging,
                   (SELECT pg_catalog.string_agg(format('%I text', 'c' || k), ', ' ORDER BY k)
                      FROM pg_catalog.generate_series(1, e.ncols) k));
    ord := e.i;
    table_name := e.name;
    copy_sql := format('COPY pg_temp.%I (%s) FROM STDIN', staging,
                       (SELECT pg_catalog.string_agg(format('%I', 'c' || k), ', ' ORDER BY k)
                          FROM pg_catalog.generate_series(1, e.ncols) k));
    RETURN NEXT;
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy.import_tables(jsonb) IS
  'the staging tables of a COPY-form import, with the COPY ... FROM STDIN that loads each table''s file';

-- The public functions: C entry points that check the caller is an admin, run the work above as the extension
-- owner and write the audit event in the caller's name (extension/pg/export_gate.cpp).
CREATE FUNCTION tenancy.export_tenant(tenant_id uuid) RETURNS jsonb
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_export_tenant';
COMMENT ON FUNCTION tenancy.export_tenant(uuid) IS
  'the tenant as one document: registry row, users, quota overrides, usage history, keys, every isolated table''s '
  'rows and its audit events, with a manifest of row counts and SHA-256 checksums';

CREATE FUNCTION tenancy.export_manifest(tenant_id uuid) RETURNS jsonb
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_export_manifest';
COMMENT ON FUNCTION tenancy.export_manifest(uuid) IS
  'the export document without rows (counts and checksums); after the COPYs of export_tables in the same '
  'transaction, the checksums of exactly what they sent';

CREATE FUNCTION tenancy.export_tables(tenant_id uuid) RETURNS TABLE (ord integer, table_name text, copy_sql text)
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE ROWS 10 AS 'MODULE_PATHNAME', 'tenancy_export_tables';
COMMENT ON FUNCTION tenancy.export_tables(uuid) IS
  'the COPY ... TO STDOUT statement of each table of a tenant export, in restore order (the COPY form)';

CREATE FUNCTION tenancy.export_table(tenant_id uuid, tbl regclass) RETURNS SETOF record
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE ROWS 1000 AS 'MODULE_PATHNAME', 'tenancy_export_table';
COMMENT ON FUNCTION tenancy.export_table(uuid, regclass) IS
  'one table''s rows of a tenant export as text columns, for the COPY statements of export_tables';

CREATE FUNCTION tenancy.import_tenant(doc jsonb, new_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_import_tenant';
COMMENT ON FUNCTION tenancy.import_tenant(jsonb, uuid) IS
  'restores an export document (format 1 or 2), into the same tenant id or new_id (keys renumbered); all or nothing';

CREATE FUNCTION tenancy.import_tenant_copied(manifest jsonb, new_id uuid DEFAULT NULL) RETURNS uuid
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_import_tenant_copied';
COMMENT ON FUNCTION tenancy.import_tenant_copied(jsonb, uuid) IS
  'restores a COPY-form export: the manifest plus each table''s file loaded with the COPY of import_tables';

REVOKE ALL ON FUNCTION tenancy._sha256_agg_transfn(internal, text), tenancy._sha256_agg_finalfn(internal),
  tenancy._sha256_agg(text), tenancy._copy_line(text[]), tenancy._copy_fields(text), tenancy._export_columns(oid),
  tenancy._export_select(oid, name), tenancy._export_plan(), tenancy._export_head(uuid),
  tenancy._export_summary(jsonb), tenancy._import_check_manifest(jsonb, integer),
  tenancy._import_staged(jsonb, regclass, uuid, text), tenancy._import_field_count(text[], integer, text),
  tenancy._import_tenant(jsonb, uuid),
  tenancy.export_tenant(uuid), tenancy.export_manifest(uuid), tenancy.export_tables(uuid),
  tenancy.export_table(uuid, regclass), tenancy.import_tenant(jsonb, uuid), tenancy.import_tables(jsonb),
  tenancy.import_tenant_copied(jsonb, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.export_tenant(uuid), tenancy.export_manifest(uuid), tenancy.export_tables(uuid),
  tenancy.export_table(uuid, regclass), tenancy.import_tenant(jsonb, uuid), tenancy.import_tables(jsonb),
  tenancy.import_tenant_copied(jsonb, uuid) TO tenancy_admin;

-- ==== sql/src/87_directory.sql
-- sql/src/87_directory.sql
-- The tenant directory of tenancyd's regions mode: which region's cluster holds each tenant (id, slug, region only).

-- It lives in one database that every tenancyd instance reads (directory.conninfo), so it holds no tenant data:
-- only where the data is. A row is 'pending' while the tenant is being created in its region (region_xid names
-- that cluster's transaction, so any instance can later tell with pg_xact_status whether the tenant exists);
-- only 'active' rows route requests. The slug is unique here too, so slugs stay unique across regions.
CREATE TABLE tenancy.tenant_directory (
  tenant_id uuid PRIMARY KEY,
  slug text NOT NULL,
  region tenancy.data_residency NOT NULL,
  state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'active')),
  region_xid xid8,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  CONSTRAINT tenant_directory_slug_key UNIQUE (slug),
  CONSTRAINT tenant_directory_pending_xid CHECK (state OPERATOR(pg_catalog.=) 'active' OR region_xid IS NOT NULL)
);
COMMENT ON TABLE tenancy.tenant_directory IS
  'tenancyd regions mode: the region whose cluster holds each tenant (id, slug, region; never tenant data)';
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenant_directory', '');

-- Every change is announced on channel tenancy_directory (payload: the tenant id), so a daemon instance that
-- caches entries drops its copy when another instance activates, moves or forgets a tenant.
CREATE FUNCTION tenancy._directory_notify() RETURNS trigger
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM pg_catalog.pg_notify('tenancy_directory', OLD.tenant_id::text);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION tenancy._directory_notify() IS
  'internal: notifies channel tenancy_directory with the tenant id of a changed or removed directory entry';

CREATE TRIGGER tenant_directory_notify AFTER UPDATE OR DELETE ON tenancy.tenant_directory
  FOR EACH ROW EXECUTE FUNCTION tenancy._directory_notify();

REVOKE ALL ON tenancy.tenant_directory FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy._directory_notify() FROM PUBLIC;
-- The daemon (a tenancy_admin member) reads and maintains the directory itself.
GRANT SELECT, INSERT, UPDATE, DELETE ON tenancy.tenant_directory TO tenancy_admin;

-- ==== sql/src/88_move.sql
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
  SELECT ('tenancy_move_' OPERATOR(pg_catalog.||) pg_catalog.replace(tenant::text, '-', ''))::name
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
    FROM tenancy.isolation_config c JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.relid::oid
   WHERE NOT k.relispartition AND k.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
  UNION ALL
  SELECT v.t::regclass, 'tenant_id'::name, 'registry'
    FROM (VALUES ('tenancy.users'), ('tenancy.quota_overrides'), ('tenancy.usage_history'),
                 ('tenancy.move_markers')) v(t)
   WHERE pg_catalog.to_regclass(v.t) IS NOT NULL
$$;
COMMENT ON FUNCTION tenancy._move_tables() IS 'internal: the tables a live move replicates, with their tenant column';

-- The tables the guard trigger protects: the replicated ones plus the registry row, the keys and the tokens.
CREATE FUNCTION tenancy._move_guarded_tables()
RETURNS TABLE (relid regclass, tenant_column name)
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT t.relid, t.tenant_column FROM tenancy._move_tables() t
   WHERE t.relid OPERATOR(pg_catalog.<>) 'tenancy.move_markers'::regclass
  UNION ALL SELECT 'tenancy.tenants'::regclass, 'id'::name
  UNION ALL SELECT 'tenancy.tenant_keys'::regclass, 'tenant_id'::name
  -- Tokens are not replicated (tenancyd copies them after the switch): none may be issued or revoked meanwhile.
  UNION ALL SELECT 'tenancy.tenant_tokens'::regclass, 'tenant_id'::name
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
        MESSAGE = format('tenant "%s" is being moved to region "%s"', m.tenant_id, m.target_region),
        DETAIL = 'Writes are paused for the final switch of a live move.',
        HINT = 'Retry in a moment: the tenant is then served by its new region.';
    END IF;
    RAISE EXCEPTION USING ERRCODE = 'object_in_use',
      MESSAGE = format('tenant "%s" is being moved into this region', m.tenant_id),
      DETAIL = format('Its data is still being copied; region "%s" serves it until the switch.', m.source_region),
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
  ids uuid[] := ARRAY[(pg_catalog.to_jsonb(NEW) ->> TG_ARGV[0])::uuid, (pg_catalog.to_jsonb(OLD) ->> TG_ARGV[0])::uuid];
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
CREATE FUNCTION tenancy.move_guard(tenant_id uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM tenancy._move_check(ARRAY[tenant_id]);
  RETURN true;
END
$$;
COMMENT ON FUNCTION tenancy.move_guard(uuid) IS
  'true, or 55006 while a live move freezes the tenant''s writes; holds them off the freeze until commit';

-- Guards on or off: installed with the first move of the cluster, removed with the last one.
CREATE FUNCTION tenancy._move_set_guards(enable boolean) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  g record;
BEGIN
  FOR g IN SELECT * FROM tenancy._move_guarded_tables() ORDER BY relid::text LOOP
    IF enable AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger tg
                               WHERE tg.tgrelid OPERATOR(pg_catalog.=) g.relid::oid
                                 AND tg.tgname OPERATOR(pg_catalog.=) 'tenancy_move_guard') THEN
      EXECUTE format('CREATE TRIGGER tenancy_move_guard BEFORE INSERT OR UPDATE OR DELETE ON %s'
                     ' FOR EACH ROW EXECUTE FUNCTION tenancy._move_guard(%L)', g.relid, g.tenant_column);
    ELSIF NOT enable THEN
      EXECUTE format('DROP TRIGGER IF EXISTS tenancy_move_guard ON %s', g.relid);
    END IF;
  END LOOP;
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
BEGIN
  FOR r IN
    SELECT p.rel, t.tenant_column, k.relreplident,
           (SELECT ic.relname FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid OPERATOR(pg_catalog.=) i.indexrelid
             WHERE i.indrelid OPERATOR(pg_catalog.=) p.rel::oid AND i.indisreplident) AS ident_index,
           (SELECT a.attnum FROM pg_catalog.pg_attribute a
             WHERE a.attrelid OPERATOR(pg_catalog.=) p.rel::oid AND a.attname OPERATOR(pg_catalog.=) t.tenant_column) AS col
      FROM tenancy._move_tables() t,
           -- pg_partition_tree lists nothing for a table that is not partitioned: the table itself, then its tree.
           LATERAL (SELECT t.relid AS rel UNION SELECT pt.relid FROM pg_catalog.pg_partition_tree(t.relid) pt) p
      JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) p.rel::oid
     WHERE k.relkind OPERATOR(pg_catalog.=) 'r'
  LOOP
    CONTINUE WHEN r.relreplident OPERATOR(pg_catalog.=) 'f';
    CONTINUE WHEN r.relreplident OPERATOR(pg_catalog.=) 'd' AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) r.rel::oid AND i.indisprimary
        AND r.col OPERATOR(pg_catalog.=) ANY (i.indkey::int2[]));
    CONTINUE WHEN r.relreplident OPERATOR(pg_catalog.=) 'i' AND EXISTS (
      SELECT 1 FROM pg_catalog.pg_index i WHERE i.indrelid OPERATOR(pg_catalog.=) r.rel::oid AND i.indisreplident
        AND r.col OPERATOR(pg_catalog.=) ANY (i.indkey::int2[]));
    INSERT INTO tenancy.move_replica_identities VALUES (r.rel, r.relreplident, r.ident_index)
      ON CONFLICT (relid) DO NOTHING;
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY FULL', r.rel);
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._move_widen_identities() IS
  'internal: REPLICA IDENTITY FULL where a move''s row filter column is outside the replica identity';

CREATE FUNCTION tenancy._move_restore_identities() RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r tenancy.move_replica_identities;
BEGIN
  FOR r IN DELETE FROM tenancy.move_replica_identities RETURNING * LOOP
    CONTINUE WHEN pg_catalog.to_regclass(r.relid::text) IS NULL;
    EXECUTE format('ALTER TABLE %s REPLICA IDENTITY %s', r.relid,
                   CASE r.identity WHEN 'd' THEN 'DEFAULT' WHEN 'n' THEN 'NOTHING'
                                   ELSE format('USING INDEX %I', r.index_name) END);
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy._move_restore_identities() IS 'internal: restores the replica identities moves widened';

-- What the target needs to know about a replicated table: name, kind, tenant column, source row count.
CREATE FUNCTION tenancy._move_table_list(tenant uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t record;
  n bigint;
  out jsonb := '[]';
BEGIN
  FOR t IN SELECT * FROM tenancy._move_tables() ORDER BY kind DESC, relid::text LOOP
    EXECUTE format('SELECT pg_catalog.count(*) FROM %s x WHERE x.%I OPERATOR(pg_catalog.=) $1', t.relid,
                   t.tenant_column) INTO n USING tenant;
    out := out || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'table', t.relid::text, 'kind', t.kind, 'tenant_column', t.tenant_column, 'rows', n));
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
      MESSAGE = format('tenant "%s" is not being moved %s this cluster', tenant,
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
     AND l.classid OPERATOR(pg_catalog.=) 1953459574::oid
     AND l.objid OPERATOR(pg_catalog.=)
         ((pg_catalog.hashtext(tenant::text)::bigint OPERATOR(pg_catalog.&) 4294967295)::oid)
     AND (NOT only_mine OR l.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid())
$$;
COMMENT ON FUNCTION tenancy._move_lock_holders(uuid, boolean) IS
  'internal: holds of the orchestrator lock of a tenant''s move (all sessions, or this one)';

CREATE FUNCTION tenancy._move_lock_try(tenant uuid) RETURNS boolean
LANGUAGE sql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.pg_try_advisory_lock(1953459574, pg_catalog.hashtext(tenant::text))
$$;
COMMENT ON FUNCTION tenancy._move_lock_try(uuid) IS 'internal: takes the orchestrator lock of a tenant''s move';

CREATE FUNCTION tenancy._move_lock_release(tenant uuid) RETURNS void
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- Every hold of this session (a session that adopted and prepared holds it twice); none of another session.
  FOR i IN 1 .. tenancy._move_lock_holders(tenant, true) LOOP
    PERFORM pg_catalog.pg_advisory_unlock(1953459574, pg_catalog.hashtext(tenant::text));
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
  PERFORM pg_catalog.pg_advisory_unlock(1953459574, pg_catalog.hashtext(tenant_id::text));
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
  pub name := tenancy._move_name(tenant_id);
  tables text;
  list jsonb;
BEGIN
  -- NO KEY UPDATE, not UPDATE: an application transaction may hold a lock on a table this function alters next while
  -- its foreign key check waits for a KEY SHARE lock on this row; that must not wait for us (deadlock).
  SELECT * INTO t FROM tenancy.tenants x WHERE x.id OPERATOR(pg_catalog.=) tenant_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(tenant_id);
  END IF;
  IF NOT target_region OPERATOR(pg_catalog.=) ANY (pg_catalog.enum_range(NULL::tenancy.data_residency)::text[]) THEN
    PERFORM tenancy._invalid_input(format('invalid data residency "%s"', target_region), NULL,
                                   'Valid residencies are us, eu, uk, canada and australia.');
  END IF;
  target := target_region::tenancy.data_residency;
  IF target OPERATOR(pg_catalog.=) t.data_residency THEN
    PERFORM tenancy._invalid_input(format('tenant "%s" already resides in region "%s"', t.slug, target_region));
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants c WHERE c.parent_tenant_id OPERATOR(pg_catalog.=) tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = format('tenant "%s" has child tenants', t.slug),
      HINT = 'Move or re-parent the child tenants first.';
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) move_source_prepare.tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use', MESSAGE = format('tenant "%s" is already being moved', t.slug),
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
      MESSAGE = format('another session holds the move lock of tenant "%s"', t.slug),
      HINT = 'A session that took over an earlier move of this tenant (tenancy.move_adopt) is still open.';
  END IF;

  INSERT INTO tenancy.tenant_moves (tenant_id, side, source_region, target_region, phase, publication_name, slot_name)
  VALUES (tenant_id, 'source', t.data_residency::text, target_region, 'prepare', pub, pub);
  INSERT INTO tenancy.move_markers (tenant_id) VALUES (tenant_id)
    ON CONFLICT ON CONSTRAINT move_markers_pkey DO UPDATE SET epoch = 0;

  -- A quoted literal of the id in every row filter (PG15 filters take no parameters).
  SELECT pg_catalog.string_agg(format('%s WHERE (%I OPERATOR(pg_catalog.=) %L::uuid)', m.relid, m.tenant_column,
                                      tenant_id), ', ' ORDER BY m.relid::text)
    INTO tables FROM tenancy._move_tables() m;
  -- No TRUNCATE: truncating a shared table on the source must never empty it on the target.
  EXECUTE format('CREATE PUBLICATION %I FOR TABLE %s WITH (publish = %L, publish_via_partition_root = true)',
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
  slot name;
  lsn pg_lsn;
BEGIN
  SELECT m.slot_name INTO slot FROM tenancy.tenant_moves m
   WHERE m.tenant_id OPERATOR(pg_catalog.=) move_source_create_slot.tenant_id
     AND m.side OPERATOR(pg_catalog.=) 'source' AND m.phase OPERATOR(pg_catalog.=) 'prepare';
  IF slot IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('tenant "%s" has no move being prepared on this cluster', tenant_id);
  END IF;
  SELECT s.lsn INTO lsn FROM pg_catalog.pg_create_logical_replication_slot(slot, 'pgoutput') s;
  UPDATE tenancy.tenant_moves SET phase = 'copying'
   WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_source_create_slot.tenant_id;
  PERFORM tenancy._audit('tenant_move_slot_created', tenant_id, NULL,
                         pg_catalog.jsonb_build_object('slot', slot, 'lsn', lsn::text));
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
  SELECT r.active, pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_lsn(), r.confirmed_flush_lsn)::bigint AS lag
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
  e bigint;
BEGIN
  IF m.phase OPERATOR(pg_catalog.<>) ALL (ARRAY['copying', 'catching_up', 'freezing']) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('the move of tenant "%s" cannot freeze in phase %s', tenant_id, m.phase);
  END IF;
  UPDATE tenancy.tenant_moves SET frozen = true, phase = 'freezing', frozen_at = pg_catalog.clock_timestamp()
   WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_source_freeze.tenant_id;
  UPDATE tenancy.move_markers SET epoch = move_markers.epoch + 1
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
  quota jsonb := '{}';
  seqs jsonb := '{}';
  keys jsonb;
  audit jsonb;
  metric text;
  s record;
BEGIN
  IF NOT m.frozen THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('the move of tenant "%s" is not frozen', tenant_id),
      HINT = 'Call tenancy.move_source_freeze() first.';
  END IF;
  IF to_regprocedure('tenancy._quota_state(uuid,text,timestamptz)') IS NOT NULL THEN
    FOREACH metric IN ARRAY ARRAY['users', 'projects', 'api_calls', 'storage_mb', 'ai_requests', 'concurrent_sessions']
    LOOP
      quota := quota || pg_catalog.jsonb_build_object(metric, (SELECT q.used FROM tenancy._quota_state(tenant_id, metric) q));
    END LOOP;
  END IF;
  FOR s IN SELECT DISTINCT d.objid::regclass AS seq FROM tenancy._move_tables() t
             JOIN pg_catalog.pg_depend d ON d.refobjid OPERATOR(pg_catalog.=) t.relid::oid
              AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
              AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::regclass
              AND d.deptype OPERATOR(pg_catalog.=) ANY (ARRAY['a', 'i']::"char"[])
             JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) d.objid AND k.relkind OPERATOR(pg_catalog.=) 'S'
  LOOP
    seqs := seqs || pg_catalog.jsonb_build_object(s.seq::text, pg_catalog.pg_sequence_last_value(s.seq));
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
  waited integer := 0;
BEGIN
  IF tenant_id IS NULL OR outcome IS NULL OR outcome OPERATOR(pg_catalog.<>) ALL (ARRAY['switched', 'rolled_back']) THEN
    PERFORM tenancy._invalid_input('outcome must be ''switched'' or ''rolled_back''');
  END IF;
  PERFORM tenancy._move_unguard_last(tenant_id, 'source');
  m := tenancy._move_record(tenant_id, 'source');
  IF outcome OPERATOR(pg_catalog.=) 'switched' AND NOT m.frozen THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('the move of tenant "%s" was never frozen; it cannot have switched', tenant_id);
  END IF;
  EXECUTE format('DROP PUBLICATION IF EXISTS %I', m.publication_name);
  -- The slot (and tablesync slots of the target's subscription) once their walsenders are gone: the target drops
  -- its subscription first; a target that died leaves them inactive.
  FOR slot IN SELECT r.slot_name, r.active_pid FROM pg_catalog.pg_replication_slots r
               WHERE r.database OPERATOR(pg_catalog.=) pg_catalog.current_database()
                 AND (r.slot_name OPERATOR(pg_catalog.=) m.slot_name
                      OR (subscription_oid IS NOT NULL
                          AND r.slot_name::text LIKE format('pg\_%s\_sync\_%%', subscription_oid)))
  LOOP
    WHILE EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots r WHERE r.slot_name OPERATOR(pg_catalog.=) slot.slot_name
                     AND r.active) AND waited < 100 LOOP
      PERFORM pg_catalog.pg_sleep(0.05);
      waited := waited + 1;
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
  e jsonb;
  tbl regclass;
  region text := NULLIF(pg_catalog.current_setting('tenancy.region', true), '');
BEGIN
  r := pg_catalog.jsonb_populate_record(NULL::tenancy.tenants, tenant);
  IF r.id IS NULL OR r.slug IS NULL THEN
    PERFORM tenancy._invalid_input('invalid tenant row for a move', 'The row must carry at least id and slug.');
  END IF;
  IF region IS NOT NULL AND region OPERATOR(pg_catalog.<>) target_region THEN
    PERFORM tenancy._invalid_input(format('this cluster serves region "%s", not "%s"', region, target_region));
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) r.id) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = format('tenant "%s" already exists', r.id);
  END IF;
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) r.id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_in_use', MESSAGE = format('tenant "%s" is already being moved', r.id),
      HINT = 'Remove the leftovers of the earlier attempt with tenancy.move_target_abort().';
  END IF;
  FOR e IN SELECT x.value FROM pg_catalog.jsonb_array_elements(tables) x LOOP
    tbl := pg_catalog.to_regclass(e ->> 'table');
    IF tbl IS NULL THEN
      PERFORM tenancy._invalid_input(format('table "%s" of the tenant does not exist in this database', e ->> 'table'),
        NULL, 'Create the application''s tables (and isolate them) on the target before moving a tenant.');
    END IF;
    IF e ->> 'kind' OPERATOR(pg_catalog.=) 'isolated' AND NOT EXISTS (
         SELECT 1 FROM tenancy.isolation_config ic WHERE ic.relid OPERATOR(pg_catalog.=) tbl
            AND ic.tenant_column::text OPERATOR(pg_catalog.=) (e ->> 'tenant_column')) THEN
      PERFORM tenancy._invalid_input(format('table "%s" is not isolated on column "%s" in this database', tbl,
                                            e ->> 'tenant_column'), NULL,
        format('Run SELECT tenancy.enable_isolation(%L, %L) first.', tbl::text, e ->> 'tenant_column'));
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
  VALUES (r.id, 'target', r.data_residency::text, target_region, 'copying', true, tenancy._move_name(r.id));
  PERFORM tenancy._move_set_guards(true);
  PERFORM tenancy._audit('tenant_move_started', r.id, NULL, pg_catalog.jsonb_build_object(
    'side', 'target', 'source_region', r.data_residency, 'target_region', target_region, 'by', session_user));
END
$$;
COMMENT ON FUNCTION tenancy.move_target_prepare(jsonb, jsonb, text) IS
  'live move, target: checks the tables, creates the tenant row (this region) frozen until the switch';

-- The subscription on the source's publication and slot: initial copy of the tenant's rows (row filters apply to
-- it), then streaming. SECURITY DEFINER because CREATE SUBSCRIPTION needs a superuser in PostgreSQL 15; the
-- connection string is quoted as a literal and every name is derived from the tenant id. disable_on_error: a
-- conflict stops the subscription instead of retrying forever, and the orchestrator rolls back. Returns its oid.
CREATE FUNCTION tenancy.move_target_subscribe(tenant_id uuid, source_conninfo text) RETURNS oid
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves := tenancy._move_record(tenant_id, 'target');
  sub name := tenancy._move_name(tenant_id);
  subid oid;
BEGIN
  IF m.phase OPERATOR(pg_catalog.<>) 'copying' THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('the move of tenant "%s" cannot subscribe in phase %s', tenant_id, m.phase);
  END IF;
  EXECUTE format('CREATE SUBSCRIPTION %I CONNECTION %L PUBLICATION %I WITH (create_slot = false, slot_name = %L,'
                 ' copy_data = true, enabled = true, disable_on_error = true)', sub, source_conninfo, sub, sub);
  SELECT s.oid INTO subid FROM pg_catalog.pg_subscription s WHERE s.subname OPERATOR(pg_catalog.=) sub
     AND s.subdbid OPERATOR(pg_catalog.=) (SELECT d.oid FROM pg_catalog.pg_database d
                                            WHERE d.datname OPERATOR(pg_catalog.=) pg_catalog.current_database());
  PERFORM tenancy._audit('tenant_move_subscribed', tenant_id, NULL, pg_catalog.jsonb_build_object(
    'subscription', sub, 'by', session_user));
  RETURN subid;
END
$$;
COMMENT ON FUNCTION tenancy.move_target_subscribe(uuid, text) IS
  'live move, target: subscribes to the source''s publication (initial copy, then streaming); returns its oid';

-- Progress on the target: per table its sync state (pg_subscription_rel: i init, d copying, f copied, s synced,
-- r ready) and the tenant's rows here, the marker epoch applied so far, and the subscription's health.
CREATE FUNCTION tenancy.move_target_progress(tenant_id uuid) RETURNS jsonb
LANGUAGE plpgsql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  m tenancy.tenant_moves;
  sub record;
  t record;
  n bigint;
  tables jsonb := '[]';
  copied bigint := 0;
  ready boolean := true;
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
                    WHERE r.srsubid OPERATOR(pg_catalog.=) sub.oid AND r.srrelid OPERATOR(pg_catalog.=) x.relid::oid) AS state
             FROM tenancy._move_tables() x ORDER BY x.relid::text LOOP
    EXECUTE format('SELECT pg_catalog.count(*) FROM %s x WHERE x.%I OPERATOR(pg_catalog.=) $1', t.relid,
                   t.tenant_column) INTO n USING tenant_id;
    tables := tables || pg_catalog.jsonb_build_array(pg_catalog.jsonb_build_object(
      'table', t.relid::text, 'state', t.state, 'rows', n));
    copied := copied + n;
    ready := ready AND coalesce(t.state OPERATOR(pg_catalog.=) 'r', false);
  END LOOP;
  RETURN pg_catalog.jsonb_build_object(
    'phase', m.phase, 'subscribed', sub.oid IS NOT NULL, 'subscription_oid', sub.oid,
    'subscription_enabled', coalesce(sub.subenabled, false), 'all_ready', ready AND sub.oid IS NOT NULL,
    'rows_copied', copied, 'tables', tables,
    'marker_epoch', (SELECT k.epoch FROM tenancy.move_markers k WHERE k.tenant_id OPERATOR(pg_catalog.=) move_target_progress.tenant_id),
    'received_lsn', (SELECT st.latest_end_lsn::text FROM pg_catalog.pg_stat_subscription st
                      WHERE st.subid OPERATOR(pg_catalog.=) sub.oid AND st.relid IS NULL));
END
$$;
COMMENT ON FUNCTION tenancy.move_target_progress(uuid) IS
  'live move, target: per-table sync state and rows copied, marker epoch, subscription health';

-- Cheap check for the freeze's wait (no row counts): the marker epoch of the freeze has been applied here and every
-- table is ready, so everything the source committed before its freeze is here.
CREATE FUNCTION tenancy.move_target_caught_up(tenant_id uuid, epoch bigint) RETURNS boolean
LANGUAGE sql VOLATILE STRICT SECURITY DEFINER PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce((SELECT k.epoch >= move_target_caught_up.epoch FROM tenancy.move_markers k
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
  nonce bytea := pg_catalog.uuid_send(pg_catalog.gen_random_uuid());
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
  EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', sub);
  EXECUTE format('ALTER SUBSCRIPTION %I SET (slot_name = NONE)', sub);
  EXECUTE format('DROP SUBSCRIPTION %I', sub);
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
  k jsonb;
  src tenancy.tenants;
  fp bytea;
  stored bytea;
  q record;
  s record;
  ev jsonb;
  nkeys integer := 0;
  nevents integer := 0;
BEGIN
  IF NOT tenancy.move_target_caught_up(tenant_id, epoch) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('the move of tenant "%s" has not caught up with the freeze', tenant_id),
      DETAIL = format('Marker epoch %s has not been applied here, or a table is not ready yet.', epoch),
      HINT = 'Wait until tenancy.move_target_caught_up() is true.';
  END IF;
  -- Stopped, not dropped: DROP SUBSCRIPTION waits for its workers, and the freeze lasts until this commits.
  -- Disabled it applies nothing more, and the source drops its slot before it deletes the tenant's rows.
  EXECUTE format('ALTER SUBSCRIPTION %I DISABLE', m.subscription_name);
  DELETE FROM tenancy.tenant_moves WHERE tenant_moves.tenant_id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;
  DELETE FROM tenancy.move_markers WHERE move_markers.tenant_id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;

  -- Keys: wrapped by the source's master key there, sealed to our recipient key in transit, wrapped by ours here.
  IF pg_catalog.jsonb_array_length(handover -> 'keys') > 0 THEN
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
  FOR k IN SELECT x.value FROM pg_catalog.jsonb_array_elements(handover -> 'keys') x LOOP
    INSERT INTO tenancy.tenant_keys (tenant_id, version, wrapped_key, created_at, destroyed_at)
    VALUES (tenant_id, (k ->> 'version')::integer,
            CASE WHEN k ->> 'sealed' IS NOT NULL THEN
              tenancy._move_open_key(tenant_id, (k ->> 'version')::integer, pg_catalog.decode(k ->> 'sealed', 'base64'),
                                     pg_catalog.decode(nonce, 'hex')) END,
            (k ->> 'created_at')::timestamptz, (k ->> 'destroyed_at')::timestamptz);
    nkeys := nkeys + 1;
  END LOOP;

  src := pg_catalog.jsonb_populate_record(NULL::tenancy.tenants, handover -> 'tenant');
  UPDATE tenancy.tenants t SET organization_name = src.organization_name, display_name = src.display_name,
         slug = src.slug, status = src.status, plan = src.plan, encryption_key_id = src.encryption_key_id,
         configuration = src.configuration, updated_at = src.updated_at, trial_ends_at = src.trial_ends_at
   WHERE t.id OPERATOR(pg_catalog.=) move_target_switch.tenant_id;

  IF to_regprocedure('tenancy._quota_set_count(uuid,text,bigint)') IS NOT NULL THEN
    FOR q IN SELECT x.key, x.value FROM pg_catalog.jsonb_each(handover -> 'quota') x
              WHERE pg_catalog.jsonb_typeof(x.value) OPERATOR(pg_catalog.=) 'number' LOOP
      PERFORM tenancy._quota_set_count(tenant_id, q.key, (q.value #>> '{}')::bigint);
    END LOOP;
  END IF;
  -- Sequences are shared by every tenant of a table: never moved backwards.
  FOR s IN SELECT pg_catalog.to_regclass(x.key) AS seq, (x.value #>> '{}')::bigint AS v
             FROM pg_catalog.jsonb_each(handover -> 'sequences') x
            WHERE pg_catalog.jsonb_typeof(x.value) OPERATOR(pg_catalog.=) 'number' LOOP
    CONTINUE WHEN s.seq IS NULL;
    IF s.v > coalesce(pg_catalog.pg_sequence_last_value(s.seq), 0) THEN
      PERFORM pg_catalog.setval(s.seq, s.v);
    END IF;
  END LOOP;
  -- History is re-appended to this cluster's own chain, each event carrying the original with its hashes.
  FOR ev IN SELECT x.value FROM pg_catalog.jsonb_array_elements(handover -> 'audit') WITH ORDINALITY x(value, i)
             ORDER BY x.i LOOP
    PERFORM tenancy._audit('audit_event_imported', tenant_id, NULL, ev);
    nevents := nevents + 1;
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
  dropped boolean;
BEGIN
  IF EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) move_target_finish.tenant_id) THEN
    RAISE EXCEPTION USING ERRCODE = 'object_not_in_prerequisite_state',
      MESSAGE = format('the move of tenant "%s" has not switched yet', tenant_id),
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
REVOKE ALL ON FUNCTION tenancy._move_name(uuid), tenancy._move_tables(), tenancy._move_guarded_tables(),
  tenancy._move_check(uuid[]), tenancy._move_guard(), tenancy.move_guard(uuid), tenancy._move_set_guards(boolean),
  tenancy._move_unguard_last(uuid, text), tenancy._move_widen_identities(), tenancy._move_restore_identities(),
  tenancy._move_table_list(uuid), tenancy._move_lock_holders(uuid, boolean), tenancy._move_lock_try(uuid),
  tenancy._move_lock_release(uuid), tenancy.move_orphans(), tenancy.move_adopt(uuid),
  tenancy._move_record(uuid, text), tenancy.move_source_prepare(uuid, text), tenancy.move_source_create_slot(uuid),
  tenancy.move_source_progress(uuid), tenancy.move_source_freeze(uuid), tenancy.move_source_handover(uuid, bytea),
  tenancy.move_source_finish(uuid, text, oid), tenancy.move_target_prepare(jsonb, jsonb, text),
  tenancy.move_target_subscribe(uuid, text), tenancy.move_target_progress(uuid),
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
  tenancy.move_target_subscribe(uuid, text), tenancy.move_target_progress(uuid),
  tenancy.move_target_caught_up(uuid, bigint), tenancy.move_target_transport_key(uuid),
  tenancy.move_target_switch(uuid, bigint, jsonb, text), tenancy.move_target_finish(uuid),
  tenancy.move_target_abort(uuid), tenancy.move_orphans(), tenancy.move_adopt(uuid) TO tenancy_admin;

-- ==== sql/src/99_privileges.sql
-- sql/src/99_privileges.sql
-- Last part of the install script: PUBLIC gets nothing; each function is granted explicitly where it is defined.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenancy FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tenancy FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tenancy FROM PUBLIC;

