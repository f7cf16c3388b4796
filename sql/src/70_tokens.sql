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
