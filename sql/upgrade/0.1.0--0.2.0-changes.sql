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
