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
LANGUAGE plpgsql VOLATILE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM tenancy._invalid_input(format('user "%s" does not exist', user_id));
END
$$;
COMMENT ON FUNCTION tenancy._user_not_found(uuid) IS 'internal: raises TN005 for an unknown user id';

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
COMMENT ON FUNCTION tenancy.set_user_role(uuid, text) IS 'changes a user''s role; a tenant keeps at least one owner';

CREATE FUNCTION tenancy.remove_user(user_id uuid) RETURNS void
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
    'tenancy._user_not_found(uuid)', 'tenancy._lock_user(uuid)', 'tenancy._is_last_owner(tenancy.users)'] LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO tenancy_admin', f);
  END LOOP;
  REVOKE ALL ON FUNCTION tenancy._parse_role(text) FROM PUBLIC;
  GRANT EXECUTE ON FUNCTION tenancy._parse_role(text) TO tenancy_admin, tenancy_app;
END
$grants$;
