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

-- The raising helpers are VOLATILE: an IMMUTABLE one would be folded (and raise) at plan time when called with
-- constant arguments inside a CASE branch that never runs.
CREATE FUNCTION tenancy._invalid_input(message text, detail text DEFAULT NULL, hint text DEFAULT NULL)
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
COMMENT ON FUNCTION tenancy._invalid_input(text, text, text) IS 'internal: raises TN005 (invalid input)';

CREATE FUNCTION tenancy._tenant_not_found(id uuid) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
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
                                   format('Create the tenant on the cluster of region "%s" (tenancy.region = ''%s'').',
                                          value, value));
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

-- The JSON merge patch (RFC 7396) that turns from_doc into to_doc, smallest form: keys added or changed with their
-- new value (objects compared key by key), keys removed as null. update_tenant audits a change as two of these
-- (before: the old values of what changed; after: the new ones), never two whole rows (issue #16: a 12 MB
-- configuration wrote ~1.7 MB per PATCH into the append-only log).
CREATE FUNCTION tenancy._jsonb_diff(from_doc jsonb, to_doc jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  result jsonb := '{}'::pg_catalog.jsonb;
  k pg_catalog.text;
  v pg_catalog.jsonb;
  old_v pg_catalog.jsonb;
BEGIN
  IF pg_catalog.jsonb_typeof(from_doc) OPERATOR(pg_catalog.<>) 'object'
     OR pg_catalog.jsonb_typeof(to_doc) OPERATOR(pg_catalog.<>) 'object' THEN
    RETURN to_doc;
  END IF;
  FOR k, v IN SELECT e.key, e.value FROM pg_catalog.jsonb_each(to_doc) e LOOP
    old_v := from_doc OPERATOR(pg_catalog.->) k;
    IF old_v IS NULL THEN
      result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(k, v);
    ELSIF old_v OPERATOR(pg_catalog.<>) v THEN
      IF pg_catalog.jsonb_typeof(old_v) OPERATOR(pg_catalog.=) 'object'
         AND pg_catalog.jsonb_typeof(v) OPERATOR(pg_catalog.=) 'object' THEN
        v := tenancy._jsonb_diff(old_v, v);
      END IF;
      result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(k, v);
    END IF;
  END LOOP;
  FOR k IN SELECT e.key FROM pg_catalog.jsonb_each(from_doc) e
            WHERE NOT (to_doc OPERATOR(pg_catalog.?) e.key) LOOP
    result := result OPERATOR(pg_catalog.||) pg_catalog.jsonb_build_object(k, NULL::pg_catalog.jsonb);
  END LOOP;
  RETURN result;
END
$$;
COMMENT ON FUNCTION tenancy._jsonb_diff(jsonb, jsonb) IS
  'internal: the smallest merge patch from one document to another (what an audit event of a change records)';
REVOKE ALL ON FUNCTION tenancy._jsonb_diff(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy._jsonb_diff(jsonb, jsonb) TO tenancy_admin;

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
    -- A size cap (issue #16: the deep merge let one tenant grow its configuration without bound, 12 MB after 12
    -- PATCHes, and its exports then held every pooled connection of tenancyd). 54000 answers 413 over HTTP.
    IF pg_catalog.octet_length(t.configuration::pg_catalog.text) OPERATOR(pg_catalog.>) 65536 THEN
      RAISE EXCEPTION USING ERRCODE = '54000', MESSAGE = 'tenant configuration is too large',
        DETAIL = pg_catalog.format('The configuration would take %s bytes as JSON text; at most 65536 are allowed.',
                                   pg_catalog.octet_length(t.configuration::pg_catalog.text)),
        HINT = 'Remove keys by setting them to null, or keep large documents outside the tenant registry.';
    END IF;
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
  -- What changed, not two whole rows: the slug (which tenant, for a reader) and the old and the new values of the
  -- changed columns, configuration key by key.
  PERFORM tenancy._audit('tenant_updated', t.id,
    pg_catalog.jsonb_build_object('slug', t.slug) OPERATOR(pg_catalog.||)
      tenancy._jsonb_diff(pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.-) 'updated_at'::pg_catalog.text,
                          pg_catalog.to_jsonb(old_row) OPERATOR(pg_catalog.-) 'updated_at'::pg_catalog.text),
    pg_catalog.jsonb_build_object('slug', t.slug) OPERATOR(pg_catalog.||)
      tenancy._jsonb_diff(pg_catalog.to_jsonb(old_row) OPERATOR(pg_catalog.-) 'updated_at'::pg_catalog.text,
                          pg_catalog.to_jsonb(t) OPERATOR(pg_catalog.-) 'updated_at'::pg_catalog.text));
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
  PERFORM tenancy._destroy_tenant_keys(id);
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
