-- ==== sql/src/00_schema.sql
-- sql/src/00_schema.sql
-- Schema, roles, domain enums, the plans config table and the tenant registry table.
\echo Use "CREATE EXTENSION tenancy" to load this file. \quit

-- The extension owns the schema (no IF NOT EXISTS): nobody can pre-create it with objects of their own.
CREATE SCHEMA tenancy;
COMMENT ON SCHEMA tenancy IS 'enterprise multi-tenancy: registry, isolation, quotas, encryption, audit';

-- Cluster-wide roles, created once; the extension never drops them (other databases may use them).
DO $roles$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenancy_admin') THEN
    CREATE ROLE tenancy_admin NOLOGIN;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'tenancy_app') THEN
    CREATE ROLE tenancy_app NOLOGIN;
  END IF;
END
$roles$;

REVOKE ALL ON SCHEMA tenancy FROM PUBLIC;
GRANT USAGE ON SCHEMA tenancy TO tenancy_admin, tenancy_app;

CREATE TYPE tenancy.tenant_status AS ENUM ('trial', 'active', 'suspended', 'cancelled');
CREATE TYPE tenancy.tenant_plan AS ENUM ('developer', 'team', 'enterprise');
CREATE TYPE tenancy.data_residency AS ENUM ('us', 'eu', 'uk', 'canada', 'australia');
CREATE TYPE tenancy.user_role AS ENUM ('owner', 'admin', 'manager', 'developer', 'viewer', 'guest');
CREATE TYPE tenancy.user_status AS ENUM ('invited', 'active', 'disabled');
COMMENT ON TYPE tenancy.tenant_status IS 'lifecycle of a tenant: trial -> active -> suspended/cancelled';
COMMENT ON TYPE tenancy.tenant_plan IS 'billing plan; its quotas live in tenancy.plans';
COMMENT ON TYPE tenancy.data_residency IS 'region whose cluster holds the tenant''s data';
COMMENT ON TYPE tenancy.user_role IS 'role of a user inside its tenant (see tenancy.permission)';
COMMENT ON TYPE tenancy.user_status IS 'invited and active users count against max_users';

-- Plan figures (SPEC.md). A DBA may edit them; pg_dump keeps the edits (config dump below), and the merge trigger
-- lets pg_restore's rows replace the seeds that CREATE EXTENSION inserted instead of colliding with them.
CREATE TABLE tenancy.plans (
  plan tenancy.tenant_plan PRIMARY KEY,
  price_usd_month numeric(10, 2) NOT NULL CHECK (price_usd_month >= 0),
  max_users bigint NOT NULL CHECK (max_users >= 0),
  max_projects bigint NOT NULL CHECK (max_projects >= 0),
  max_api_calls_per_month bigint NOT NULL CHECK (max_api_calls_per_month >= 0),
  max_storage_mb bigint NOT NULL CHECK (max_storage_mb >= 0),
  max_ai_requests_per_day bigint NOT NULL CHECK (max_ai_requests_per_day >= 0),
  max_concurrent_sessions bigint NOT NULL CHECK (max_concurrent_sessions >= 0)
);
COMMENT ON TABLE tenancy.plans IS 'quota figures and price of each plan; edits survive pg_dump/pg_restore and upgrades';

INSERT INTO tenancy.plans VALUES
  ('developer', 50, 1, 5, 10000, 1024, 100, 2),
  ('team', 200, 10, 50, 100000, 10240, 1000, 10),
  ('enterprise', 800, 999999, 999999, 999999999, 1048576, 10000, 100);

CREATE FUNCTION tenancy._plans_merge_restored_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE tenancy.plans SET price_usd_month = NEW.price_usd_month, max_users = NEW.max_users,
         max_projects = NEW.max_projects, max_api_calls_per_month = NEW.max_api_calls_per_month,
         max_storage_mb = NEW.max_storage_mb, max_ai_requests_per_day = NEW.max_ai_requests_per_day,
         max_concurrent_sessions = NEW.max_concurrent_sessions
   WHERE plan OPERATOR(pg_catalog.=) NEW.plan;
  IF FOUND THEN
    RETURN NULL;  -- the seeded row now holds the restored figures
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION tenancy._plans_merge_restored_row() IS 'internal: a restored plans row updates the seeded one';
CREATE TRIGGER plans_merge_restored_row BEFORE INSERT ON tenancy.plans
  FOR EACH ROW EXECUTE FUNCTION tenancy._plans_merge_restored_row();
SELECT pg_catalog.pg_extension_config_dump('tenancy.plans', '');

-- The tenant registry. Slug rules are checked in C++ (tenancy._validate_slug) with a clear error; the CHECK here is
-- the last line of defence against direct writes.
CREATE TABLE tenancy.tenants (
  id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
  organization_name text NOT NULL CHECK (pg_catalog.length(organization_name) BETWEEN 1 AND 255),
  display_name text CHECK (pg_catalog.length(display_name) <= 255),
  slug text NOT NULL CHECK (slug ~ '^[a-z0-9](?:[a-z0-9-]*[a-z0-9])$' AND pg_catalog.length(slug) BETWEEN 3 AND 63),
  status tenancy.tenant_status NOT NULL DEFAULT 'trial',
  plan tenancy.tenant_plan NOT NULL DEFAULT 'developer' REFERENCES tenancy.plans (plan),
  data_residency tenancy.data_residency NOT NULL DEFAULT 'us',
  encryption_key_id text,
  configuration jsonb NOT NULL DEFAULT '{}' CHECK (pg_catalog.jsonb_typeof(configuration) = 'object'),
  -- Deferred: pg_restore loads the table in physical order, where a child may precede its parent.
  parent_tenant_id uuid REFERENCES tenancy.tenants (id) DEFERRABLE INITIALLY DEFERRED,
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  trial_ends_at timestamptz,
  CONSTRAINT tenants_slug_key UNIQUE (slug),
  CONSTRAINT tenants_not_own_parent CHECK (parent_tenant_id IS DISTINCT FROM id)
);
CREATE INDEX tenants_parent_idx ON tenancy.tenants (parent_tenant_id) WHERE parent_tenant_id IS NOT NULL;
COMMENT ON TABLE tenancy.tenants IS 'tenant registry: one row per tenant organization';
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenants', '');

CREATE FUNCTION tenancy._validate_slug(slug text) RETURNS void
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_validate_slug';
COMMENT ON FUNCTION tenancy._validate_slug(text) IS 'internal: raises TN005 for a slug that breaks the slug rule';

CREATE FUNCTION tenancy._normalize_email(email text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_normalize_email';
COMMENT ON FUNCTION tenancy._normalize_email(text) IS 'internal: lower-cased e-mail address, or TN005';

GRANT SELECT ON tenancy.plans TO tenancy_admin, tenancy_app;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenancy.plans TO tenancy_admin;
GRANT SELECT ON tenancy.tenants TO tenancy_admin;

-- ==== sql/src/05_audit.sql
-- sql/src/05_audit.sql
-- The append-only, SHA-256 hash-chained audit log, its chain head, guard trigger, writer and verifier.

-- One row per event. Role names (not OIDs) and canonical jsonb are hashed, so the chain verifies after
-- pg_dump/pg_restore. Only the extension owner can write (through tenancy._audit / WriteAuditEvent in C).
CREATE TABLE tenancy.audit_log (
  id bigserial PRIMARY KEY,
  occurred_at timestamptz NOT NULL,
  session_user_name text NOT NULL,
  current_user_name text NOT NULL,
  context_tenant_id uuid,
  tenant_id uuid,
  action text NOT NULL,
  before jsonb,
  after jsonb,
  prev_hash bytea NOT NULL,
  hash bytea NOT NULL
);
CREATE INDEX audit_log_tenant_idx ON tenancy.audit_log (tenant_id, id);
COMMENT ON TABLE tenancy.audit_log IS 'append-only, hash-chained audit events; check with tenancy.verify_audit_log()';
COMMENT ON COLUMN tenancy.audit_log.session_user_name IS 'session_user at the call';
COMMENT ON COLUMN tenancy.audit_log.current_user_name IS 'current_user at the call (the calling role)';
COMMENT ON COLUMN tenancy.audit_log.context_tenant_id IS 'tenant context of the transaction, NULL without one';
COMMENT ON COLUMN tenancy.audit_log.tenant_id IS 'tenant the event is about';
COMMENT ON COLUMN tenancy.audit_log.hash IS 'SHA-256 of prev_hash and the canonical event';
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log_id_seq', '');

-- The chain head, kept apart from the log so that removing the log's last events cannot also rewrite it. Empty
-- until the first event (so pg_restore's row never collides with a seeded one).
CREATE TABLE tenancy.audit_chain_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_id bigint NOT NULL,
  last_hash bytea NOT NULL
);
COMMENT ON TABLE tenancy.audit_chain_head IS 'id and hash of the newest audit event; moved only by the extension';
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_chain_head', '');

CREATE FUNCTION tenancy._audit_guard() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_audit_guard';
COMMENT ON FUNCTION tenancy._audit_guard() IS 'internal: refuses UPDATE, DELETE and TRUNCATE of the audit tables';

-- ENABLE ALWAYS: the guard fires under session_replication_role = replica too.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON tenancy.audit_log
  FOR EACH ROW EXECUTE FUNCTION tenancy._audit_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON tenancy.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._audit_guard();
CREATE TRIGGER audit_chain_head_guard BEFORE UPDATE OR DELETE ON tenancy.audit_chain_head
  FOR EACH ROW EXECUTE FUNCTION tenancy._audit_guard();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON tenancy.audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._audit_guard();
ALTER TABLE tenancy.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE tenancy.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;
ALTER TABLE tenancy.audit_chain_head ENABLE ALWAYS TRIGGER audit_chain_head_guard;
ALTER TABLE tenancy.audit_chain_head ENABLE ALWAYS TRIGGER audit_chain_head_no_truncate;

CREATE FUNCTION tenancy._audit(action text, tenant_id uuid, before jsonb, after jsonb) RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_audit';
COMMENT ON FUNCTION tenancy._audit(text, uuid, jsonb, jsonb) IS
  'internal: appends an audit event (callers without tenancy_admin only about their context tenant)';

CREATE FUNCTION tenancy.verify_audit_log(OUT id bigint, OUT problem text) RETURNS SETOF record
LANGUAGE c VOLATILE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'tenancy_verify_audit_log';
COMMENT ON FUNCTION tenancy.verify_audit_log() IS
  'every altered, inserted or removed audit event; empty when the hash chain is intact';

REVOKE ALL ON tenancy.audit_log, tenancy.audit_chain_head FROM PUBLIC;
REVOKE ALL ON SEQUENCE tenancy.audit_log_id_seq FROM PUBLIC;
GRANT SELECT ON tenancy.audit_log, tenancy.audit_chain_head TO tenancy_admin;
REVOKE ALL ON FUNCTION tenancy._audit(text, uuid, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy._audit(text, uuid, jsonb, jsonb) TO tenancy_admin, tenancy_app;
REVOKE ALL ON FUNCTION tenancy.verify_audit_log() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.verify_audit_log() TO tenancy_admin;
REVOKE ALL ON FUNCTION tenancy._audit_guard() FROM PUBLIC;

-- ==== sql/src/10_tenants.sql
-- sql/src/10_tenants.sql
-- The tenant registry API: create/get/update/delete, hierarchy checks, effective quotas and the tenant's JSON form.

-- Hierarchy changes take this advisory lock (classid 'tena', objid 2): re-parenting exclusively, creating a child
-- shared, so two concurrent re-parentings can never close a cycle between them.
CREATE FUNCTION tenancy._hierarchy_lock_key() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT 2 $$;
COMMENT ON FUNCTION tenancy._hierarchy_lock_key() IS 'internal: objid of the tenant hierarchy advisory lock';

-- Maximum depth of a tenant hierarchy (a root is level 1).
CREATE FUNCTION tenancy._max_hierarchy_depth() RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$ SELECT 32 $$;
COMMENT ON FUNCTION tenancy._max_hierarchy_depth() IS 'internal: deepest allowed tenant hierarchy (levels)';

-- Per-tenant quota overrides; the quota area builds set_quota_override and metering on them.
CREATE TABLE tenancy.quota_overrides (
  tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
  metric text NOT NULL CHECK (metric IN ('users', 'projects', 'api_calls', 'storage_mb', 'ai_requests',
                                         'concurrent_sessions')),
  max_value bigint NOT NULL CHECK (max_value >= 0),
  PRIMARY KEY (tenant_id, metric)
);
COMMENT ON TABLE tenancy.quota_overrides IS 'per-tenant quota limits that replace the plan figure of a metric';
SELECT pg_catalog.pg_extension_config_dump('tenancy.quota_overrides', '');

CREATE FUNCTION tenancy._invalid_input(message text, detail text DEFAULT NULL, hint text DEFAULT NULL)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = message, DETAIL = coalesce(detail, ''),
                        HINT = coalesce(hint, '');
END
$$;
COMMENT ON FUNCTION tenancy._invalid_input(text, text, text) IS 'internal: raises TN005 (invalid input)';

CREATE FUNCTION tenancy._tenant_not_found(id uuid) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'TN001', MESSAGE = format('tenant "%s" does not exist', id);
END
$$;
COMMENT ON FUNCTION tenancy._tenant_not_found(uuid) IS 'internal: raises TN001 (tenant not found)';

-- Enum values arrive as text so that a bad value is TN005, not PostgreSQL's 22P02.
CREATE FUNCTION tenancy._parse_plan(value text) RETURNS tenancy.tenant_plan
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF value IS NULL OR NOT value OPERATOR(pg_catalog.=) ANY (pg_catalog.enum_range(NULL::tenancy.tenant_plan)::text[])
  THEN
    PERFORM tenancy._invalid_input(format('invalid plan "%s"', value), NULL,
                                   'Valid plans are developer, team and enterprise.');
  END IF;
  RETURN value::tenancy.tenant_plan;
END
$$;
COMMENT ON FUNCTION tenancy._parse_plan(text) IS 'internal: text to tenant_plan, or TN005';

CREATE FUNCTION tenancy._parse_residency(value text) RETURNS tenancy.data_residency
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
                                   'Create the tenant on the cluster of its region.');
  END IF;
  RETURN value::tenancy.data_residency;
END
$$;
COMMENT ON FUNCTION tenancy._parse_residency(text) IS 'internal: text to data_residency (checked against tenancy.region), or TN005';

CREATE FUNCTION tenancy._parse_status(value text) RETURNS tenancy.tenant_status
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF value IS NULL
     OR NOT value OPERATOR(pg_catalog.=) ANY (pg_catalog.enum_range(NULL::tenancy.tenant_status)::text[]) THEN
    PERFORM tenancy._invalid_input(format('invalid tenant status "%s"', value), NULL,
                                   'Valid statuses are trial, active, suspended and cancelled.');
  END IF;
  RETURN value::tenancy.tenant_status;
END
$$;
COMMENT ON FUNCTION tenancy._parse_status(text) IS 'internal: text to tenant_status, or TN005';

-- A tenant may be used (as a context, for new users, for metering) only while trial (not expired) or active.
CREATE FUNCTION tenancy._tenant_is_usable(status tenancy.tenant_status, trial_ends_at timestamptz) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT status OPERATOR(pg_catalog.=) 'active'
      OR (status OPERATOR(pg_catalog.=) 'trial'
          AND (trial_ends_at IS NULL OR trial_ends_at OPERATOR(pg_catalog.>) pg_catalog.now()))
$$;
COMMENT ON FUNCTION tenancy._tenant_is_usable(tenancy.tenant_status, timestamptz) IS
  'internal: true for active tenants and trials that have not ended';

CREATE FUNCTION tenancy._require_usable_tenant(id uuid) RETURNS void
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants;
BEGIN
  SELECT * INTO t FROM tenancy.tenants WHERE tenants.id OPERATOR(pg_catalog.=) _require_usable_tenant.id;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(id);
  END IF;
  IF NOT tenancy._tenant_is_usable(t.status, t.trial_ends_at) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN002', MESSAGE = format('tenant "%s" is not active', t.slug),
      DETAIL = CASE WHEN t.status OPERATOR(pg_catalog.=) 'trial' THEN 'The trial period has ended.'
                    ELSE format('The tenant is %s.', t.status) END,
      HINT = 'Only trial and active tenants can be used.';
  END IF;
END
$$;
COMMENT ON FUNCTION tenancy._require_usable_tenant(uuid) IS
  'internal: raises TN001 for a missing tenant and TN002 unless it is active or in an unexpired trial';

-- Quota figures: the tenant's plan, replaced metric by metric by tenancy.quota_overrides.
CREATE FUNCTION tenancy._effective_limit(tenant uuid, metric text) RETURNS bigint
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  result bigint;
BEGIN
  IF metric IS NULL OR metric OPERATOR(pg_catalog.<>) ALL (ARRAY['users', 'projects', 'api_calls', 'storage_mb',
                                                                'ai_requests', 'concurrent_sessions']) THEN
    PERFORM tenancy._invalid_input(format('unknown quota metric "%s"', metric), NULL,
      'Metrics are users, projects, api_calls, storage_mb, ai_requests and concurrent_sessions.');
  END IF;
  SELECT coalesce(o.max_value, CASE _effective_limit.metric
           WHEN 'users' THEN p.max_users
           WHEN 'projects' THEN p.max_projects
           WHEN 'api_calls' THEN p.max_api_calls_per_month
           WHEN 'storage_mb' THEN p.max_storage_mb
           WHEN 'ai_requests' THEN p.max_ai_requests_per_day
           WHEN 'concurrent_sessions' THEN p.max_concurrent_sessions END)
    INTO result
    FROM tenancy.tenants t
    JOIN tenancy.plans p ON p.plan OPERATOR(pg_catalog.=) t.plan
    LEFT JOIN tenancy.quota_overrides o
      ON o.tenant_id OPERATOR(pg_catalog.=) t.id AND o.metric OPERATOR(pg_catalog.=) _effective_limit.metric
   WHERE t.id OPERATOR(pg_catalog.=) tenant;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(tenant);
  END IF;
  RETURN result;
END
$$;
COMMENT ON FUNCTION tenancy._effective_limit(uuid, text) IS
  'internal: the limit of one metric for a tenant (plan figure unless overridden)';

CREATE FUNCTION tenancy._effective_quotas(tenant uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  result jsonb;
BEGIN
  SELECT pg_catalog.jsonb_build_object(
           'max_users', coalesce(o.m ->> 'users', p.max_users::text)::bigint,
           'max_projects', coalesce(o.m ->> 'projects', p.max_projects::text)::bigint,
           'max_api_calls_per_month', coalesce(o.m ->> 'api_calls', p.max_api_calls_per_month::text)::bigint,
           'max_storage_mb', coalesce(o.m ->> 'storage_mb', p.max_storage_mb::text)::bigint,
           'max_ai_requests_per_day', coalesce(o.m ->> 'ai_requests', p.max_ai_requests_per_day::text)::bigint,
           'max_concurrent_sessions',
             coalesce(o.m ->> 'concurrent_sessions', p.max_concurrent_sessions::text)::bigint)
    INTO result
    FROM tenancy.tenants t
    JOIN tenancy.plans p ON p.plan OPERATOR(pg_catalog.=) t.plan
    CROSS JOIN LATERAL (SELECT pg_catalog.jsonb_object_agg(q.metric, q.max_value) AS m
                          FROM tenancy.quota_overrides q
                         WHERE q.tenant_id OPERATOR(pg_catalog.=) t.id) o
   WHERE t.id OPERATOR(pg_catalog.=) tenant;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(tenant);
  END IF;
  RETURN result;
END
$$;
COMMENT ON FUNCTION tenancy._effective_quotas(uuid) IS
  'internal: the tenant''s quotas as JSON (max_users ... max_concurrent_sessions), overrides applied';

-- RFC 7396-style deep merge: objects merge key by key, a JSON null removes the key, anything else replaces.
CREATE FUNCTION tenancy._jsonb_merge(target jsonb, patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  result jsonb := CASE WHEN pg_catalog.jsonb_typeof(target) OPERATOR(pg_catalog.=) 'object' THEN target
                       ELSE '{}'::jsonb END;
  k text;
  v jsonb;
BEGIN
  IF pg_catalog.jsonb_typeof(patch) OPERATOR(pg_catalog.<>) 'object' THEN
    RETURN patch;
  END IF;
  FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(patch) e LOOP
    IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.=) 'null' THEN
      result := result OPERATOR(pg_catalog.-) k;
    ELSIF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.=) 'object' THEN
      result := result OPERATOR(pg_catalog.||)
                pg_catalog.jsonb_build_object(k, tenancy._jsonb_merge(result OPERATOR(pg_catalog.->) k, v));
    ELSE
      result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(k, v);
    END IF;
  END LOOP;
  RETURN result;
END
$$;
COMMENT ON FUNCTION tenancy._jsonb_merge(jsonb, jsonb) IS
  'internal: deep merge of a configuration patch (null removes a key)';

CREATE FUNCTION tenancy._rfc3339(ts timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_catalog.to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
$$;
COMMENT ON FUNCTION tenancy._rfc3339(timestamptz) IS 'internal: RFC 3339 UTC text such as 2024-01-01T00:00:00Z';

-- Walks up from start to the root with row locks (FOR SHARE), so a concurrent re-parenting of any row on the path
-- either waits or (under REPEATABLE READ) fails; raises TN007 when the walk meets forbidden or exceeds the depth
-- limit. Returns the number of levels from start to its root, start included.
CREATE FUNCTION tenancy._check_ancestry(start uuid, forbidden uuid) RETURNS integer
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cur uuid := start;
  next_parent uuid;
  levels integer := 0;
BEGIN
  WHILE cur IS NOT NULL LOOP
    IF cur OPERATOR(pg_catalog.=) forbidden THEN
      RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = 'tenant hierarchy would contain a cycle',
        DETAIL = 'The new parent is the tenant itself or one of its descendants.';
    END IF;
    SELECT t.parent_tenant_id INTO next_parent FROM tenancy.tenants t
     WHERE t.id OPERATOR(pg_catalog.=) cur FOR SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = format('parent tenant "%s" does not exist', cur);
    END IF;
    levels := levels + 1;
    IF levels > tenancy._max_hierarchy_depth() THEN
      RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = 'tenant hierarchy is too deep',
        DETAIL = format('A tenant hierarchy has at most %s levels.', tenancy._max_hierarchy_depth());
    END IF;
    cur := next_parent;
  END LOOP;
  RETURN levels;
END
$$;
COMMENT ON FUNCTION tenancy._check_ancestry(uuid, uuid) IS
  'internal: locks the ancestor path of a tenant and raises TN007 on a missing parent, cycle or excess depth';

-- Levels below a tenant (0 for a leaf), bounded by the depth limit.
CREATE FUNCTION tenancy._subtree_height(root uuid) RETURNS integer
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  WITH RECURSIVE d(id, depth) AS (
    SELECT t.id, 1 FROM tenancy.tenants t WHERE t.parent_tenant_id OPERATOR(pg_catalog.=) root
    UNION
    SELECT t.id, d.depth + 1 FROM tenancy.tenants t JOIN d ON t.parent_tenant_id OPERATOR(pg_catalog.=) d.id
     WHERE d.depth <= tenancy._max_hierarchy_depth())
  SELECT coalesce(pg_catalog.max(depth), 0) FROM d
$$;
COMMENT ON FUNCTION tenancy._subtree_height(uuid) IS 'internal: depth of the subtree below a tenant';

CREATE FUNCTION tenancy.create_tenant(organization_name text, slug text, plan text DEFAULT 'developer',
                                      data_residency text DEFAULT 'us', parent_tenant_id uuid DEFAULT NULL,
                                      display_name text DEFAULT NULL, admin_email text DEFAULT NULL)
RETURNS tenancy.tenants
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants;
  v_plan tenancy.tenant_plan := tenancy._parse_plan(plan);
  v_residency tenancy.data_residency := tenancy._parse_residency(data_residency);
BEGIN
  IF organization_name IS NULL OR pg_catalog.btrim(organization_name) OPERATOR(pg_catalog.=) ''
     OR pg_catalog.length(organization_name) > 255 THEN
    PERFORM tenancy._invalid_input('invalid organization name',
                                   'An organization name has between 1 and 255 characters.');
  END IF;
  IF display_name IS NOT NULL AND pg_catalog.length(display_name) > 255 THEN
    PERFORM tenancy._invalid_input('invalid display name', 'A display name has at most 255 characters.');
  END IF;
  IF slug IS NULL THEN
    PERFORM tenancy._invalid_input('invalid slug', 'A slug is required.');
  END IF;
  PERFORM tenancy._validate_slug(slug);
  IF admin_email IS NOT NULL THEN
    PERFORM tenancy._normalize_email(admin_email);
  END IF;
  IF parent_tenant_id IS NOT NULL THEN
    -- Shared: children may be created concurrently, but not while a re-parenting runs.
    PERFORM pg_catalog.pg_advisory_xact_lock_shared(1952804449, tenancy._hierarchy_lock_key());
    IF tenancy._check_ancestry(parent_tenant_id, NULL) >= tenancy._max_hierarchy_depth() THEN
      RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = 'tenant hierarchy is too deep',
        DETAIL = format('A tenant hierarchy has at most %s levels.', tenancy._max_hierarchy_depth());
    END IF;
  END IF;

  INSERT INTO tenancy.tenants (organization_name, display_name, slug, plan, data_residency, parent_tenant_id,
                               trial_ends_at)
  VALUES (organization_name, display_name, slug, v_plan, v_residency, parent_tenant_id,
          pg_catalog.now() OPERATOR(pg_catalog.+) interval '30 days')
  RETURNING * INTO t;
  PERFORM tenancy._audit('tenant_created', t.id, NULL, pg_catalog.to_jsonb(t));

  IF admin_email IS NOT NULL THEN
    PERFORM tenancy.add_user(t.id, admin_email, NULL, NULL, 'owner', true);
  END IF;
  RETURN t;
END
$$;
COMMENT ON FUNCTION tenancy.create_tenant(text, text, text, text, uuid, text, text) IS
  'creates a tenant in trial (30 days); admin_email adds an invited owner';

CREATE FUNCTION tenancy.get_tenant(id uuid) RETURNS tenancy.tenants
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants;
BEGIN
  SELECT * INTO t FROM tenancy.tenants WHERE tenants.id OPERATOR(pg_catalog.=) get_tenant.id;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(id);
  END IF;
  RETURN t;
END
$$;
COMMENT ON FUNCTION tenancy.get_tenant(uuid) IS 'the tenant with this id, or TN001';

CREATE FUNCTION tenancy.get_tenant_by_slug(slug text) RETURNS tenancy.tenants
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants;
BEGIN
  SELECT * INTO t FROM tenancy.tenants WHERE tenants.slug OPERATOR(pg_catalog.=) get_tenant_by_slug.slug;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TN001', MESSAGE = format('tenant with slug "%s" does not exist', slug);
  END IF;
  RETURN t;
END
$$;
COMMENT ON FUNCTION tenancy.get_tenant_by_slug(text) IS 'the tenant with this slug, or TN001';

-- Allowed status changes (SPEC.md): trial -> active; trial/active -> suspended; suspended -> active;
-- any -> cancelled; cancelled is final. Staying in the same status is not a change.
CREATE FUNCTION tenancy._check_status_change(old_status tenancy.tenant_status, new_status tenancy.tenant_status)
RETURNS void LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF old_status OPERATOR(pg_catalog.=) new_status
     OR new_status OPERATOR(pg_catalog.=) 'cancelled'
     OR pg_catalog.concat(old_status, '>', new_status) OPERATOR(pg_catalog.=)
        ANY (ARRAY['trial>active', 'trial>suspended', 'active>suspended', 'suspended>active']) THEN
    RETURN;
  END IF;
  PERFORM tenancy._invalid_input(format('cannot change tenant status from %s to %s', old_status, new_status),
    CASE WHEN old_status OPERATOR(pg_catalog.=) 'cancelled' THEN 'A cancelled tenant stays cancelled.' END,
    'Allowed: trial to active, trial or active to suspended, suspended to active, anything to cancelled.');
END
$$;
COMMENT ON FUNCTION tenancy._check_status_change(tenancy.tenant_status, tenancy.tenant_status) IS
  'internal: raises TN005 for a status change SPEC.md does not allow';

CREATE FUNCTION tenancy.update_tenant(id uuid, changes jsonb) RETURNS tenancy.tenants
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  old_row tenancy.tenants;
  t tenancy.tenants;
  k text;
  v jsonb;
  new_parent uuid;
BEGIN
  IF changes IS NULL OR pg_catalog.jsonb_typeof(changes) OPERATOR(pg_catalog.<>) 'object' THEN
    PERFORM tenancy._invalid_input('tenant changes must be a JSON object');
  END IF;
  -- Validate every key before touching anything: bad input leaves no partial state.
  FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(changes) e LOOP
    IF k OPERATOR(pg_catalog.=) ANY (ARRAY['id', 'slug', 'created_at', 'updated_at', 'trial_ends_at',
                                           'encryption_key_id', 'quotas']) THEN
      PERFORM tenancy._invalid_input(format('tenant field "%s" is read-only', k));
    ELSIF k OPERATOR(pg_catalog.<>) ALL (ARRAY['display_name', 'organization_name', 'plan', 'status',
                                               'data_residency', 'configuration', 'parent_tenant_id']) THEN
      PERFORM tenancy._invalid_input(format('unknown tenant field "%s"', k), NULL,
        'Updatable fields are display_name, organization_name, plan, status, data_residency, configuration and '
        'parent_tenant_id.');
    ELSIF k OPERATOR(pg_catalog.=) 'configuration' THEN
      IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'object' THEN
        PERFORM tenancy._invalid_input('tenant field "configuration" must be a JSON object');
      END IF;
    ELSIF k OPERATOR(pg_catalog.=) ANY (ARRAY['display_name', 'parent_tenant_id']) THEN
      IF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) ALL (ARRAY['string', 'null']) THEN
        PERFORM tenancy._invalid_input(format('tenant field "%s" must be a string or null', k));
      END IF;
    ELSIF pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.<>) 'string' THEN
      PERFORM tenancy._invalid_input(format('tenant field "%s" must be a string', k));
    END IF;
  END LOOP;
  IF changes ? 'parent_tenant_id' AND changes ->> 'parent_tenant_id' IS NOT NULL THEN
    IF (changes ->> 'parent_tenant_id') !~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN
      PERFORM tenancy._invalid_input('tenant field "parent_tenant_id" must be a uuid');
    END IF;
    new_parent := (changes ->> 'parent_tenant_id')::uuid;
  END IF;
  IF changes ? 'organization_name' AND (pg_catalog.btrim(changes ->> 'organization_name') OPERATOR(pg_catalog.=) ''
                                       OR pg_catalog.length(changes ->> 'organization_name') > 255) THEN
    PERFORM tenancy._invalid_input('invalid organization name',
                                   'An organization name has between 1 and 255 characters.');
  END IF;
  IF pg_catalog.length(changes ->> 'display_name') > 255 THEN
    PERFORM tenancy._invalid_input('invalid display name', 'A display name has at most 255 characters.');
  END IF;

  IF changes ? 'parent_tenant_id' THEN
    -- Exclusive: no other re-parenting or child creation runs while this one checks for cycles.
    PERFORM pg_catalog.pg_advisory_xact_lock(1952804449, tenancy._hierarchy_lock_key());
  END IF;
  SELECT * INTO old_row FROM tenancy.tenants WHERE tenants.id OPERATOR(pg_catalog.=) update_tenant.id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(id);
  END IF;
  t := old_row;
  IF changes ? 'display_name' THEN
    t.display_name := changes ->> 'display_name';
  END IF;
  IF changes ? 'organization_name' THEN
    t.organization_name := changes ->> 'organization_name';
  END IF;
  IF changes ? 'plan' THEN
    t.plan := tenancy._parse_plan(changes ->> 'plan');
  END IF;
  IF changes ? 'data_residency' THEN
    t.data_residency := tenancy._parse_residency(changes ->> 'data_residency');
  END IF;
  IF changes ? 'status' THEN
    t.status := tenancy._parse_status(changes ->> 'status');
    PERFORM tenancy._check_status_change(old_row.status, t.status);
  END IF;
  IF changes ? 'configuration' THEN
    t.configuration := tenancy._jsonb_merge(old_row.configuration, changes -> 'configuration');
  END IF;
  IF changes ? 'parent_tenant_id' THEN
    t.parent_tenant_id := new_parent;
    IF new_parent IS NOT NULL AND new_parent IS DISTINCT FROM old_row.parent_tenant_id THEN
      IF tenancy._check_ancestry(new_parent, id) + 1 + tenancy._subtree_height(id)
         > tenancy._max_hierarchy_depth() THEN
        RAISE EXCEPTION USING ERRCODE = 'TN007', MESSAGE = 'tenant hierarchy is too deep',
          DETAIL = format('A tenant hierarchy has at most %s levels.', tenancy._max_hierarchy_depth());
      END IF;
    END IF;
  END IF;

  IF t IS NOT DISTINCT FROM old_row THEN
    RETURN old_row;  -- nothing changed: no write, no audit event
  END IF;
  UPDATE tenancy.tenants
     SET display_name = t.display_name, organization_name = t.organization_name, plan = t.plan,
         data_residency = t.data_residency, status = t.status, configuration = t.configuration,
         parent_tenant_id = t.parent_tenant_id, updated_at = pg_catalog.now()
   WHERE tenants.id OPERATOR(pg_catalog.=) update_tenant.id
  RETURNING * INTO t;
  PERFORM tenancy._audit('tenant_updated', t.id, pg_catalog.to_jsonb(old_row), pg_catalog.to_jsonb(t));
  RETURN t;
END
$$;
COMMENT ON FUNCTION tenancy.update_tenant(uuid, jsonb) IS
  'changes display_name, organization_name, plan, status, data_residency, configuration (merged) or parent_tenant_id';

CREATE FUNCTION tenancy.delete_tenant(id uuid, erase boolean DEFAULT false) RETURNS void
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
  -- TODO(#2): call _destroy_tenant_keys directly once the crypto part (60_crypto.sql) lands.
  IF pg_catalog.to_regprocedure('tenancy._destroy_tenant_keys(uuid)') IS NOT NULL THEN
    EXECUTE 'SELECT tenancy._destroy_tenant_keys($1)' USING id;
  END IF;
  DELETE FROM tenancy.tenants WHERE tenants.id OPERATOR(pg_catalog.=) delete_tenant.id;
  PERFORM tenancy._audit('tenant_erased', old_row.id, pg_catalog.to_jsonb(old_row), NULL);
END
$$;
COMMENT ON FUNCTION tenancy.delete_tenant(uuid, boolean) IS
  'cancels a tenant; with erase, deletes its rows everywhere and destroys its keys';

CREATE FUNCTION tenancy.tenant_json(id uuid) RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants := tenancy.get_tenant(id);
BEGIN
  RETURN pg_catalog.jsonb_build_object(
    'id', t.id,
    'organization_name', t.organization_name,
    'display_name', t.display_name,
    'slug', t.slug,
    'status', t.status,
    'plan', t.plan,
    'data_residency', t.data_residency,
    'encryption_key_id', t.encryption_key_id,
    'configuration', t.configuration,
    'parent_tenant_id', t.parent_tenant_id,
    'quotas', tenancy._effective_quotas(t.id),
    'created_at', tenancy._rfc3339(t.created_at),
    'updated_at', tenancy._rfc3339(t.updated_at),
    'trial_ends_at', tenancy._rfc3339(t.trial_ends_at));
END
$$;
COMMENT ON FUNCTION tenancy.tenant_json(uuid) IS 'the tenant with its effective quotas, as the HTTP API returns it';

-- tenancy_admin runs these SECURITY INVOKER functions with its own table privileges, and the validation helpers of
-- 00_schema.sql with them.
GRANT EXECUTE ON FUNCTION tenancy._validate_slug(text), tenancy._normalize_email(text) TO tenancy_admin;
GRANT SELECT, INSERT, UPDATE, DELETE ON tenancy.tenants, tenancy.quota_overrides TO tenancy_admin;
REVOKE ALL ON tenancy.quota_overrides FROM PUBLIC;
DO $grants$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'tenancy.create_tenant(text, text, text, text, uuid, text, text)', 'tenancy.get_tenant(uuid)',
    'tenancy.get_tenant_by_slug(text)', 'tenancy.update_tenant(uuid, jsonb)', 'tenancy.delete_tenant(uuid, boolean)',
    'tenancy.tenant_json(uuid)', 'tenancy._effective_limit(uuid, text)', 'tenancy._effective_quotas(uuid)',
    'tenancy._check_ancestry(uuid, uuid)', 'tenancy._subtree_height(uuid)'] LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO tenancy_admin', f);
  END LOOP;
  -- Pure helpers other areas' app-callable SQL may use; they read nothing an app role cannot already see.
  FOREACH f IN ARRAY ARRAY[
    'tenancy._require_usable_tenant(uuid)', 'tenancy._tenant_is_usable(tenancy.tenant_status, timestamptz)',
    'tenancy._invalid_input(text, text, text)', 'tenancy._tenant_not_found(uuid)', 'tenancy._parse_plan(text)',
    'tenancy._parse_residency(text)', 'tenancy._parse_status(text)', 'tenancy._jsonb_merge(jsonb, jsonb)',
    'tenancy._rfc3339(timestamptz)', 'tenancy._hierarchy_lock_key()', 'tenancy._max_hierarchy_depth()',
    'tenancy._check_status_change(tenancy.tenant_status, tenancy.tenant_status)'] LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO tenancy_admin, tenancy_app', f);
  END LOOP;
END
$grants$;

-- Written in C: app roles may walk their own context tenant's tree, which their table privileges cannot see.
CREATE FUNCTION tenancy.tenant_descendants(id uuid) RETURNS SETOF uuid
LANGUAGE c STABLE STRICT PARALLEL RESTRICTED ROWS 10 AS 'MODULE_PATHNAME', 'tenancy_tenant_descendants';
COMMENT ON FUNCTION tenancy.tenant_descendants(uuid) IS
  'every tenant below this one (nearest first, at most 32 levels); app roles only for their context tenant';
CREATE FUNCTION tenancy.tenant_ancestors(id uuid) RETURNS SETOF uuid
LANGUAGE c STABLE STRICT PARALLEL RESTRICTED ROWS 5 AS 'MODULE_PATHNAME', 'tenancy_tenant_ancestors';
COMMENT ON FUNCTION tenancy.tenant_ancestors(uuid) IS
  'every tenant above this one (parent first); app roles only for their context tenant';
REVOKE ALL ON FUNCTION tenancy.tenant_descendants(uuid), tenancy.tenant_ancestors(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.tenant_descendants(uuid), tenancy.tenant_ancestors(uuid)
  TO tenancy_admin, tenancy_app;

-- ==== sql/src/20_users.sql
-- sql/src/20_users.sql
-- Users of a tenant and their roles: add (quota-checked, race-free), list, change role, remove; one owner stays.

CREATE TABLE tenancy.users (
  id uuid PRIMARY KEY DEFAULT pg_catalog.gen_random_uuid(),
  tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id) ON DELETE CASCADE,
  email text NOT NULL CHECK (pg_catalog.length(email) BETWEEN 3 AND 254),
  first_name text CHECK (pg_catalog.length(first_name) <= 255),
  last_name text CHECK (pg_catalog.length(last_name) <= 255),
  role tenancy.user_role NOT NULL DEFAULT 'developer',
  status tenancy.user_status NOT NULL DEFAULT 'invited',
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
-- Addresses are stored normalised (lower-case); the index on lower() also stops direct writes from adding a
-- second spelling of the same address.
CREATE UNIQUE INDEX users_tenant_email_key ON tenancy.users (tenant_id, pg_catalog.lower(email));
COMMENT ON TABLE tenancy.users IS 'users of each tenant; invited and active users count against max_users';
SELECT pg_catalog.pg_extension_config_dump('tenancy.users', '');

CREATE FUNCTION tenancy._parse_role(value text) RETURNS tenancy.user_role
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF value IS NULL OR NOT value OPERATOR(pg_catalog.=) ANY (pg_catalog.enum_range(NULL::tenancy.user_role)::text[])
  THEN
    PERFORM tenancy._invalid_input(format('invalid role "%s"', value), NULL,
                                   'Valid roles are owner, admin, manager, developer, viewer and guest.');
  END IF;
  RETURN value::tenancy.user_role;
END
$$;
COMMENT ON FUNCTION tenancy._parse_role(text) IS 'internal: text to user_role, or TN005';

-- Serialises user changes of one tenant on its registry row. Under READ COMMITTED a row lock is enough: the next
-- statement's snapshot sees what the previous holder committed. Under REPEATABLE READ the snapshot is older than
-- the lock, so the row is rewritten (a no-op UPDATE): a caller whose snapshot predates another's change then gets
-- a serialization failure instead of counting stale rows. TN001 when the tenant does not exist.
CREATE FUNCTION tenancy._lock_tenant_for_users(tenant uuid) RETURNS tenancy.tenants
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t tenancy.tenants;
BEGIN
  IF pg_catalog.current_setting('transaction_isolation') OPERATOR(pg_catalog.=) 'read committed' THEN
    SELECT * INTO t FROM tenancy.tenants WHERE tenants.id OPERATOR(pg_catalog.=) tenant FOR NO KEY UPDATE;
  ELSE
    UPDATE tenancy.tenants SET updated_at = tenants.updated_at WHERE tenants.id OPERATOR(pg_catalog.=) tenant
    RETURNING * INTO t;
  END IF;
  IF NOT FOUND THEN
    PERFORM tenancy._tenant_not_found(tenant);
  END IF;
  RETURN t;
END
$$;
COMMENT ON FUNCTION tenancy._lock_tenant_for_users(uuid) IS
  'internal: locks a tenant against concurrent user changes (quota and last-owner checks)';

CREATE FUNCTION tenancy._user_not_found(user_id uuid) RETURNS void
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM tenancy._invalid_input(format('user "%s" does not exist', user_id));
END
$$;
COMMENT ON FUNCTION tenancy._user_not_found(uuid) IS 'internal: raises TN005 for an unknown user id';

CREATE FUNCTION tenancy.add_user(tenant_id uuid, email text, first_name text DEFAULT NULL,
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
  -- Counted after the lock: no concurrent add_user of this tenant can pass the limit with us.
  SELECT pg_catalog.count(*) INTO used FROM tenancy.users x
   WHERE x.tenant_id OPERATOR(pg_catalog.=) t.id AND x.status OPERATOR(pg_catalog.<>) 'disabled';
  max_users := tenancy._effective_limit(t.id, 'users');
  IF used + 1 > max_users THEN
    RAISE EXCEPTION USING ERRCODE = 'TN003', MESSAGE = format('user quota of tenant "%s" exceeded', t.slug),
      DETAIL = format('The tenant has %s of %s users.', used, max_users),
      HINT = 'Remove or disable a user, upgrade the plan, or raise the tenant''s users quota.';
  END IF;

  INSERT INTO tenancy.users (tenant_id, email, first_name, last_name, role, status)
  VALUES (t.id, v_email, first_name, last_name, v_role,
          CASE WHEN send_invitation THEN 'invited'::tenancy.user_status ELSE 'active' END)
  RETURNING * INTO u;
  PERFORM tenancy._audit('user_added', u.tenant_id, NULL, pg_catalog.to_jsonb(u));
  RETURN u;
END
$$;
COMMENT ON FUNCTION tenancy.add_user(uuid, text, text, text, text, boolean) IS
  'adds a user (invited, or active without invitation) to an active or trial tenant within its max_users';

CREATE FUNCTION tenancy.list_users(tenant_id uuid, status text DEFAULT NULL) RETURNS SETOF tenancy.users
LANGUAGE plpgsql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_status tenancy.user_status;
BEGIN
  IF status IS NOT NULL THEN
    IF NOT status OPERATOR(pg_catalog.=) ANY (pg_catalog.enum_range(NULL::tenancy.user_status)::text[]) THEN
      PERFORM tenancy._invalid_input(format('invalid user status "%s"', status), NULL,
                                     'Valid statuses are invited, active and disabled.');
    END IF;
    v_status := status::tenancy.user_status;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) list_users.tenant_id) THEN
    PERFORM tenancy._tenant_not_found(tenant_id);
  END IF;
  RETURN QUERY
    SELECT * FROM tenancy.users u
     WHERE u.tenant_id OPERATOR(pg_catalog.=) list_users.tenant_id
       AND (v_status IS NULL OR u.status OPERATOR(pg_catalog.=) v_status)
     ORDER BY u.created_at, u.email;
END
$$;
COMMENT ON FUNCTION tenancy.list_users(uuid, text) IS 'users of a tenant, optionally only those of one status';

CREATE FUNCTION tenancy.set_user_role(user_id uuid, role text) RETURNS tenancy.users
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_role tenancy.user_role := tenancy._parse_role(role);
  v_tenant uuid;
  old_row tenancy.users;
  u tenancy.users;
BEGIN
  SELECT x.tenant_id INTO v_tenant FROM tenancy.users x WHERE x.id OPERATOR(pg_catalog.=) user_id;
  IF NOT FOUND THEN
    PERFORM tenancy._user_not_found(user_id);
  END IF;
  PERFORM tenancy._lock_tenant_for_users(v_tenant);
  SELECT * INTO old_row FROM tenancy.users x WHERE x.id OPERATOR(pg_catalog.=) user_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM tenancy._user_not_found(user_id);
  END IF;
  IF old_row.role OPERATOR(pg_catalog.=) v_role THEN
    RETURN old_row;
  END IF;
  IF old_row.role OPERATOR(pg_catalog.=) 'owner' AND NOT EXISTS (
       SELECT 1 FROM tenancy.users x
        WHERE x.tenant_id OPERATOR(pg_catalog.=) old_row.tenant_id AND x.role OPERATOR(pg_catalog.=) 'owner'
          AND x.id OPERATOR(pg_catalog.<>) old_row.id) THEN
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
COMMENT ON FUNCTION tenancy.set_user_role(uuid, text) IS 'changes a user''s role; a tenant keeps at least one owner';

CREATE FUNCTION tenancy.remove_user(user_id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v_tenant uuid;
  old_row tenancy.users;
BEGIN
  SELECT x.tenant_id INTO v_tenant FROM tenancy.users x WHERE x.id OPERATOR(pg_catalog.=) user_id;
  IF NOT FOUND THEN
    PERFORM tenancy._user_not_found(user_id);
  END IF;
  PERFORM tenancy._lock_tenant_for_users(v_tenant);
  SELECT * INTO old_row FROM tenancy.users x WHERE x.id OPERATOR(pg_catalog.=) user_id FOR UPDATE;
  IF NOT FOUND THEN
    PERFORM tenancy._user_not_found(user_id);
  END IF;
  IF old_row.role OPERATOR(pg_catalog.=) 'owner' AND NOT EXISTS (
       SELECT 1 FROM tenancy.users x
        WHERE x.tenant_id OPERATOR(pg_catalog.=) old_row.tenant_id AND x.role OPERATOR(pg_catalog.=) 'owner'
          AND x.id OPERATOR(pg_catalog.<>) old_row.id) THEN
    PERFORM tenancy._invalid_input('cannot remove the last owner of a tenant', NULL,
                                   'Make another user owner first.');
  END IF;
  DELETE FROM tenancy.users x WHERE x.id OPERATOR(pg_catalog.=) user_id;
  PERFORM tenancy._audit('user_removed', old_row.tenant_id, pg_catalog.to_jsonb(old_row), NULL);
END
$$;
COMMENT ON FUNCTION tenancy.remove_user(uuid) IS 'deletes a user (the audit log keeps the history); never the last owner';

GRANT SELECT, INSERT, UPDATE, DELETE ON tenancy.users TO tenancy_admin;
REVOKE ALL ON tenancy.users FROM PUBLIC;
DO $grants$
DECLARE
  f text;
BEGIN
  FOREACH f IN ARRAY ARRAY[
    'tenancy.add_user(uuid, text, text, text, text, boolean)', 'tenancy.list_users(uuid, text)',
    'tenancy.set_user_role(uuid, text)', 'tenancy.remove_user(uuid)', 'tenancy._lock_tenant_for_users(uuid)',
    'tenancy._user_not_found(uuid)'] LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO tenancy_admin', f);
  END LOOP;
  REVOKE ALL ON FUNCTION tenancy._parse_role(text) FROM PUBLIC;
  GRANT EXECUTE ON FUNCTION tenancy._parse_role(text) TO tenancy_admin, tenancy_app;
END
$grants$;

-- ==== sql/src/25_permissions.sql
-- sql/src/25_permissions.sql
-- The role permission matrix (SPEC.md "Domain"): permission(role, resource) and allowed(role, resource, action).

CREATE FUNCTION tenancy.permission(role text, resource text) RETURNS text
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  -- role -> resource -> level, exactly the matrix of SPEC.md.
  matrix CONSTANT jsonb := '{
    "owner":     {"users": "full", "projects": "full",     "admin": "full",    "billing": "full", "ai_services": "full"},
    "admin":     {"users": "full", "projects": "full",     "admin": "full",    "billing": "read", "ai_services": "full"},
    "manager":   {"users": "team", "projects": "team",     "admin": "limited", "billing": "none", "ai_services": "team"},
    "developer": {"users": "self", "projects": "assigned", "admin": "none",    "billing": "none", "ai_services": "assigned"},
    "viewer":    {"users": "none", "projects": "read",     "admin": "none",    "billing": "none", "ai_services": "read"},
    "guest":     {"users": "none", "projects": "limited",  "admin": "none",    "billing": "none", "ai_services": "none"}
  }';
BEGIN
  IF role IS NULL OR NOT matrix ? role THEN
    PERFORM tenancy._invalid_input(format('invalid role "%s"', role), NULL,
                                   'Valid roles are owner, admin, manager, developer, viewer and guest.');
  END IF;
  IF resource IS NULL OR NOT (matrix -> 'owner') ? resource THEN
    PERFORM tenancy._invalid_input(format('unknown resource "%s"', resource), NULL,
                                   'Resources are users, projects, admin, billing and ai_services.');
  END IF;
  RETURN matrix -> role ->> resource;
END
$$;
COMMENT ON FUNCTION tenancy.permission(text, text) IS
  'access level (full, team, self, assigned, read, limited, none) of a role on a resource';

CREATE FUNCTION tenancy.permission(role tenancy.user_role, resource text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT tenancy.permission(role::text, resource)
$$;
COMMENT ON FUNCTION tenancy.permission(tenancy.user_role, text) IS 'permission() for a user_role value';

-- full, team, self and assigned allow read and write (within their scope); read and limited allow read only.
CREATE FUNCTION tenancy.allowed(role text, resource text, action text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  level text := tenancy.permission(role, resource);
BEGIN
  IF action IS NULL OR action OPERATOR(pg_catalog.<>) ALL (ARRAY['read', 'write']) THEN
    PERFORM tenancy._invalid_input(format('unknown action "%s"', action), NULL, 'Actions are read and write.');
  END IF;
  IF action OPERATOR(pg_catalog.=) 'read' THEN
    RETURN level OPERATOR(pg_catalog.<>) 'none';
  END IF;
  RETURN level OPERATOR(pg_catalog.=) ANY (ARRAY['full', 'team', 'self', 'assigned']);
END
$$;
COMMENT ON FUNCTION tenancy.allowed(text, text, text) IS 'whether a role may read or write a resource';

CREATE FUNCTION tenancy.allowed(role tenancy.user_role, resource text, action text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
  SELECT tenancy.allowed(role::text, resource, action)
$$;
COMMENT ON FUNCTION tenancy.allowed(tenancy.user_role, text, text) IS 'allowed() for a user_role value';

REVOKE ALL ON FUNCTION tenancy.permission(text, text), tenancy.permission(tenancy.user_role, text),
  tenancy.allowed(text, text, text), tenancy.allowed(tenancy.user_role, text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.permission(text, text), tenancy.permission(tenancy.user_role, text),
  tenancy.allowed(text, text, text), tenancy.allowed(tenancy.user_role, text, text) TO tenancy_admin, tenancy_app;

-- ==== sql/src/30_context.sql
-- sql/src/30_context.sql
-- Tenant context: set_tenant, current_tenant_id, and the invalidation trigger of the per-backend tenant cache.

CREATE FUNCTION tenancy.set_tenant(id uuid) RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_set_tenant';
COMMENT ON FUNCTION tenancy.set_tenant(uuid) IS
  'sets the tenant context for the current transaction only (TN001 unknown, TN002 not trial/active); NULL clears it';

-- STABLE + LEAKPROOF: a policy "tenant_id = current_tenant_id()" is an index condition and drives partition pruning.
CREATE FUNCTION tenancy.current_tenant_id() RETURNS uuid
LANGUAGE c STABLE PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'tenancy_current_tenant_id';
COMMENT ON FUNCTION tenancy.current_tenant_id() IS
  'tenant context of the current transaction (set_tenant, or a transaction-local app.tenant_id), or NULL';

CREATE FUNCTION tenancy._tenants_changed() RETURNS trigger
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_tenants_changed';
COMMENT ON FUNCTION tenancy._tenants_changed() IS
  'internal: invalidates every backend''s tenant status cache after a change to tenancy.tenants';

CREATE TRIGGER tenants_invalidate_context_cache
  AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON tenancy.tenants
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._tenants_changed();

REVOKE ALL ON FUNCTION tenancy.set_tenant(uuid), tenancy.current_tenant_id(), tenancy._tenants_changed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.set_tenant(uuid), tenancy.current_tenant_id() TO tenancy_admin, tenancy_app;

-- ==== sql/src/35_registry_access.sql
-- sql/src/35_registry_access.sql
-- Row-level access to the tenant registry: an application role reads only its context tenant's row.

-- tenancy_admin sees and changes every tenant (its SECURITY INVOKER admin functions rely on it); tenancy_app sees
-- exactly the tenant of its transaction's context and nothing without one. FORCE is not set: the extension owner
-- (which the C code switches to for cross-tenant lookups) keeps its view of every row.
ALTER TABLE tenancy.tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenants_admin_all ON tenancy.tenants FOR ALL TO tenancy_admin USING (true) WITH CHECK (true);
CREATE POLICY tenants_app_own_row ON tenancy.tenants FOR SELECT TO tenancy_app
  USING (id OPERATOR(pg_catalog.=) tenancy.current_tenant_id());
GRANT SELECT ON tenancy.tenants TO tenancy_app;

-- ==== sql/src/40_isolation.sql
-- sql/src/40_isolation.sql
-- Row-level-security isolation: the generated policies' functions, enable/disable_isolation, the record of what
-- was done, the event triggers that protect later partitions, isolated_tables, verify_isolation, erasure.

-- What enable_isolation did to each table (the root it was called on and every partition/child), so that
-- disable_isolation undoes exactly that and verify_isolation can tell a generated policy from an edited one.
CREATE TABLE tenancy.isolation_config (
  relid regclass PRIMARY KEY,
  root regclass NOT NULL,
  tenant_column name NOT NULL,
  include_descendants boolean NOT NULL,
  prior_rls_enabled boolean NOT NULL,
  prior_rls_forced boolean NOT NULL,
  prior_default text,
  prior_not_null boolean NOT NULL,
  created_index regclass,
  policy_qual text NOT NULL,
  policy_check text NOT NULL,
  descendants_qual text,
  cross_tenant_qual text NOT NULL
);
COMMENT ON TABLE tenancy.isolation_config IS
  'internal: tables protected by enable_isolation, their previous state and the deparsed generated policies';
SELECT pg_catalog.pg_extension_config_dump('tenancy.isolation_config', '');

-- The policy's context. Raises TN004 without a context unless tenancy.missing_context = 'empty' (then NULL: no
-- row matches) or a tenancy_admin cross-tenant read is active. STABLE LEAKPROOF, so "col = f()" is an index
-- condition and prunes partitions at executor start.
CREATE FUNCTION tenancy._policy_tenant_id() RETURNS uuid
LANGUAGE c STABLE PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'tenancy_policy_tenant_id';
COMMENT ON FUNCTION tenancy._policy_tenant_id() IS
  'internal: tenant context for isolation policies; TN004 (or NULL with tenancy.missing_context = empty) without one';

CREATE FUNCTION tenancy._policy_tenant_ids() RETURNS uuid[]
LANGUAGE c STABLE PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'tenancy_policy_tenant_ids';
COMMENT ON FUNCTION tenancy._policy_tenant_ids() IS
  'internal: the context tenant and its descendants, for read policies of include_descendants tables';

CREATE FUNCTION tenancy._cross_tenant_active() RETURNS boolean
LANGUAGE c STABLE PARALLEL SAFE LEAKPROOF AS 'MODULE_PATHNAME', 'tenancy_cross_tenant_active';
COMMENT ON FUNCTION tenancy._cross_tenant_active() IS
  'internal: true while an audited cross-tenant read (begin_cross_tenant) is active in this transaction';

CREATE FUNCTION tenancy.begin_cross_tenant(reason text) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_begin_cross_tenant';
COMMENT ON FUNCTION tenancy.begin_cross_tenant(text) IS
  'tenancy_admin only: lets this transaction read every tenant''s rows of isolated tables; audited with the reason';

CREATE FUNCTION tenancy.enable_isolation(tbl regclass, tenant_column name = 'tenant_id',
                                         include_descendants boolean = false) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_enable_isolation';
COMMENT ON FUNCTION tenancy.enable_isolation(regclass, name, boolean) IS
  'protects a table and every partition with generated row-level-security policies on its tenant column; idempotent';

CREATE FUNCTION tenancy.disable_isolation(tbl regclass) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_disable_isolation';
COMMENT ON FUNCTION tenancy.disable_isolation(regclass) IS
  'undoes exactly what enable_isolation did to the table and its partitions';

CREATE FUNCTION tenancy._erase_tenant_rows(tenant uuid) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_erase_tenant_rows';
COMMENT ON FUNCTION tenancy._erase_tenant_rows(uuid) IS
  'internal (delete_tenant with erase): deletes the tenant''s rows from every isolated table; returns the row count';

-- Partitions created or attached later, inheritance children, and tables created while tenancy.auto_isolate names
-- a column, get the same protection at the end of the DDL command; dropped tables leave the record.
CREATE FUNCTION tenancy._isolation_ddl_end() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_isolation_ddl_end';
COMMENT ON FUNCTION tenancy._isolation_ddl_end() IS
  'internal: isolates new partitions/children of isolated tables and tenancy.auto_isolate tables';
CREATE FUNCTION tenancy._isolation_sql_drop() RETURNS event_trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_isolation_sql_drop';
COMMENT ON FUNCTION tenancy._isolation_sql_drop() IS 'internal: forgets dropped isolated tables';

CREATE EVENT TRIGGER tenancy_isolation_ddl_end ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE', 'CREATE TABLE AS', 'SELECT INTO', 'ALTER TABLE')
  EXECUTE FUNCTION tenancy._isolation_ddl_end();
CREATE EVENT TRIGGER tenancy_isolation_sql_drop ON sql_drop
  EXECUTE FUNCTION tenancy._isolation_sql_drop();

CREATE FUNCTION tenancy._refuse_truncate() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_refuse_truncate';
COMMENT ON FUNCTION tenancy._refuse_truncate() IS
  'internal: TRUNCATE of an isolated table would remove every tenant''s rows; only tenancy_admin may';

CREATE VIEW tenancy.isolated_tables WITH (security_barrier) AS
SELECT c.relid AS table_name,
       c.root AS isolated_via,
       c.tenant_column,
       c.include_descendants,
       k.relrowsecurity AS rls_enabled,
       k.relforcerowsecurity AS rls_forced,
       (SELECT pg_catalog.array_agg(p.polname::text ORDER BY p.polname)
          FROM pg_catalog.pg_policy p WHERE p.polrelid OPERATOR(pg_catalog.=) k.oid) AS policies,
       c.created_index
  FROM tenancy.isolation_config c
  JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.relid::pg_catalog.oid;
COMMENT ON VIEW tenancy.isolated_tables IS 'every table protected by enable_isolation, with its RLS state and policies';

REVOKE ALL ON tenancy.isolation_config, tenancy.isolated_tables FROM PUBLIC;
GRANT SELECT ON tenancy.isolation_config, tenancy.isolated_tables TO tenancy_admin;
REVOKE ALL ON FUNCTION tenancy._policy_tenant_id(), tenancy._policy_tenant_ids(), tenancy._cross_tenant_active(),
  tenancy.begin_cross_tenant(text), tenancy.enable_isolation(regclass, name, boolean),
  tenancy.disable_isolation(regclass), tenancy._erase_tenant_rows(uuid), tenancy._isolation_ddl_end(),
  tenancy._isolation_sql_drop(), tenancy._refuse_truncate() FROM PUBLIC;
-- Policies are evaluated with the querying role's privileges: every role that queries an isolated table (the
-- owner too, under FORCE) must be a member of tenancy_app or tenancy_admin; others get 42501 (fail closed).
GRANT EXECUTE ON FUNCTION tenancy._policy_tenant_id(), tenancy._policy_tenant_ids(), tenancy._cross_tenant_active(),
  tenancy._refuse_truncate() TO tenancy_app, tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.begin_cross_tenant(text), tenancy.enable_isolation(regclass, name, boolean),
  tenancy.disable_isolation(regclass), tenancy._erase_tenant_rows(uuid) TO tenancy_admin;

-- ==== sql/src/99_privileges.sql
-- sql/src/99_privileges.sql
-- Last part of the install script: PUBLIC gets nothing; each function is granted explicitly where it is defined.
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA tenancy FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA tenancy FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA tenancy FROM PUBLIC;

