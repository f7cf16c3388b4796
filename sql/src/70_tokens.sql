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
  issuer_token_id uuid REFERENCES tenancy.tenant_tokens (id),
  CONSTRAINT tenant_tokens_sha256_key UNIQUE (token_sha256)
);
CREATE INDEX tenant_tokens_tenant_idx ON tenancy.tenant_tokens (tenant_id);
CREATE INDEX tenant_tokens_issuer_idx ON tenancy.tenant_tokens (issuer_token_id) WHERE issuer_token_id IS NOT NULL;
COMMENT ON COLUMN tenancy.tenant_tokens.issuer_token_id IS
  'the token that issued this one (NULL: issued with the admin token or in SQL); revoking it revokes this one';
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

-- Scope of a token issued by a token (tenancyd passes the calling token as issuer_token_id): it never outranks its
-- issuer (its role at most the issuer's, 42501 otherwise), never outlives it (expires_at is capped at the issuer's:
-- an expiring token cannot mint a never-expiring one) and is revoked with it (revoke_token follows issuer_token_id
-- down, so authorize_token checks one row per request and never walks the chain). A tenant has at most
-- tenancy.max_tokens_per_tenant live (neither revoked nor expired) tokens: TN003 beyond.
CREATE FUNCTION tenancy.issue_token(tenant_id uuid, role tenancy.user_role, token_sha256 bytea, name text DEFAULT NULL,
                                    expires_in interval DEFAULT NULL, issuer_role tenancy.user_role DEFAULT NULL,
                                    issuer_token_id uuid DEFAULT NULL)
RETURNS SETOF tenancy.tenant_tokens
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t record;
  issuer record;
  tok tenancy.tenant_tokens;
  expires timestamptz;
  live bigint;
  cap integer := COALESCE(
    pg_catalog.current_setting('tenancy.max_tokens_per_tenant', true)::pg_catalog.int4, 100);
BEGIN
  IF tenant_id IS NULL OR role IS NULL OR token_sha256 IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'tenant_id, role and token_sha256 must not be null';
  END IF;
  IF pg_catalog.length(token_sha256) OPERATOR(pg_catalog.<>) 32 THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'token_sha256 must be 32 bytes',
      DETAIL = 'Pass the SHA-256 digest of the token, never the token itself.';
  END IF;
  IF name IS NOT NULL AND pg_catalog.length(name) OPERATOR(pg_catalog.>) 200 THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'token name must be at most 200 characters';
  END IF;
  IF expires_in IS NOT NULL AND expires_in OPERATOR(pg_catalog.<=) '0'::pg_catalog.interval THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'expires_in must be positive';
  END IF;
  IF issuer_role IS NOT NULL AND NOT tenancy.token_may_grant(issuer_role, role) THEN
    RAISE EXCEPTION USING ERRCODE = '42501',
      MESSAGE = pg_catalog.format('a token with role "%s" cannot issue a token with role "%s"', issuer_role, role);
  END IF;
  -- The tenant row lock serialises the issues of one tenant: two cannot both take the last place under the cap.
  SELECT tn.status, tn.trial_ends_at INTO t
    FROM tenancy.tenants tn WHERE tn.id OPERATOR(pg_catalog.=) issue_token.tenant_id FOR NO KEY UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = 'TN001', MESSAGE = pg_catalog.format('tenant "%s" does not exist', tenant_id);
  END IF;
  IF NOT (t.status OPERATOR(pg_catalog.=) 'active'::tenancy.tenant_status
          OR (t.status OPERATOR(pg_catalog.=) 'trial'::tenancy.tenant_status
              AND (t.trial_ends_at IS NULL OR t.trial_ends_at OPERATOR(pg_catalog.>=) pg_catalog.now()))) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN002', MESSAGE = pg_catalog.format('tenant "%s" is not active', tenant_id),
      DETAIL = pg_catalog.format('Its status is %s.', t.status);
  END IF;
  expires := pg_catalog.now() OPERATOR(pg_catalog.+) issue_token.expires_in;
  IF issuer_token_id IS NOT NULL THEN
    -- FOR SHARE waits for a revocation of the issuer under way and then finds it revoked: no token is ever issued
    -- by a token whose revocation (and its cascade) committed before this one.
    SELECT k.role, k.expires_at INTO issuer
      FROM tenancy.tenant_tokens k
     WHERE k.id OPERATOR(pg_catalog.=) issue_token.issuer_token_id
       AND k.tenant_id OPERATOR(pg_catalog.=) issue_token.tenant_id
       AND k.revoked_at IS NULL
       AND (k.expires_at IS NULL OR k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now())
       FOR SHARE;
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('issuing token "%s" is not a live token of tenant "%s"', issuer_token_id,
                                    tenant_id);
    END IF;
    IF NOT tenancy.token_may_grant(issuer.role, issue_token.role) THEN
      RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('a token with role "%s" cannot issue a token with role "%s"', issuer.role,
                                    issue_token.role);
    END IF;
    IF issuer.expires_at IS NOT NULL
       AND (expires IS NULL OR expires OPERATOR(pg_catalog.>) issuer.expires_at) THEN
      expires := issuer.expires_at;
    END IF;
  END IF;
  SELECT pg_catalog.count(*) INTO live
    FROM tenancy.tenant_tokens k
   WHERE k.tenant_id OPERATOR(pg_catalog.=) issue_token.tenant_id
     AND k.revoked_at IS NULL
     AND (k.expires_at IS NULL OR k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now());
  IF live OPERATOR(pg_catalog.>=) cap THEN
    RAISE EXCEPTION USING ERRCODE = 'TN003',
      MESSAGE = pg_catalog.format('tenant "%s" already has %s live tokens, the most allowed', tenant_id, live),
      HINT = 'Revoke the tokens it no longer uses, or raise tenancy.max_tokens_per_tenant.';
  END IF;
  INSERT INTO tenancy.tenant_tokens AS k (tenant_id, role, name, token_sha256, expires_at, issuer_token_id)
  VALUES (issue_token.tenant_id, issue_token.role, issue_token.name, issue_token.token_sha256, expires,
          issue_token.issuer_token_id)
  RETURNING k.* INTO tok;
  PERFORM tenancy._audit('token_issued', tok.tenant_id, NULL,
                         pg_catalog.jsonb_build_object('token_id', tok.id, 'role', tok.role, 'name', tok.name,
                                                       'expires_at', tok.expires_at,
                                                       'issuer_token_id', tok.issuer_token_id));
  RETURN NEXT tok;
END
$$;
COMMENT ON FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role, uuid) IS
  'records a tenant token by its SHA-256 digest; issuer_role or issuer_token_id (when a token issues one) caps its '
  'role, and issuer_token_id also its expiry and its life (revoked with the issuer)';

-- tenancyd's whole authorization of a tenant-token request in one call (one round trip): the live token with this
-- digest (one row while it is neither revoked nor expired, none otherwise), whether its tenant is active
-- (tenant_active: trial within its trial, or active; a suspended, cancelled or expired-trial tenant's token is
-- permitted nothing and metered nothing, and tenancyd answers 403 TN002), whether its role permits action, and,
-- for a permitted call to its own tenant, the metering of one api_calls unit (within_quota; NULL when nothing was
-- metered; 55006 instead while a live move freezes the tenant, see tenancy.move_guard). The only token check there
-- is: a target that is not the token's tenant meters nothing. With request (tenancyd's {"remote_addr", "request_id"}
-- claims, an object of at most 1 kB) the session's audit events name the token found (id, role, tenant), the
-- database role that called and the request, until the next call (extension/pg/request_caller.cpp); without it, or
-- when no live token has the digest, they name no API caller. In C
-- (extension/pg/token_authorize.cpp): as plpgsql it cost ~50 us more per tenancyd request (bench/daemon/RESULTS.md).
CREATE FUNCTION tenancy.authorize_token(digest bytea, target_tenant_id uuid, action text, request jsonb DEFAULT NULL)
RETURNS TABLE (token_id uuid, tenant_id uuid, role tenancy.user_role, token_sha256 bytea, permitted boolean,
               plan tenancy.tenant_plan, within_quota boolean, tenant_active boolean)
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_authorize_token';
COMMENT ON FUNCTION tenancy.authorize_token(bytea, uuid, text, jsonb) IS
  'the live token with this SHA-256 digest, its tenant and role, and whether the role permits action while the '
  'tenant is active; for one tenancyd request to target_tenant_id, meters one api_calls unit when permitted; with '
  'request, the session''s audit events name this token and the request until the next call';

-- tenancyd's caller for the audit log of the requests that authorize_token does not check (the admin token): the
-- session's audit events name "admin token", the database role that said so, and the request's remote address and
-- id (request, a JSON object of at most 1 kB) until the next call; NULL clears it. tenancy_admin only, so an
-- application role can never claim to be an API caller.
CREATE FUNCTION tenancy.set_request_caller(request jsonb) RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_set_request_caller';
COMMENT ON FUNCTION tenancy.set_request_caller(jsonb) IS
  'the session''s audit events name the admin token and this request (NULL: no API caller); for tenancyd';

-- Revokes a live token of the tenant and, with it, every token it issued (issuer_token_id, down the whole chain).
-- With revoker_token_id (tenancyd passes the calling token) only a token the revoker could have issued: a role at
-- most its own (an admin-role token cannot revoke an owner's token), 42501 otherwise.
CREATE FUNCTION tenancy.revoke_token(tenant_id uuid, token_id uuid, revoker_token_id uuid DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r tenancy.user_role;
  revoker_role tenancy.user_role;
  c record;
BEGIN
  IF tenant_id IS NULL OR token_id IS NULL THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'tenant_id and token_id must not be null';
  END IF;
  IF revoker_token_id IS NOT NULL THEN
    SELECT k.role INTO revoker_role
      FROM tenancy.tenant_tokens k
     WHERE k.id OPERATOR(pg_catalog.=) revoke_token.revoker_token_id
       AND k.tenant_id OPERATOR(pg_catalog.=) revoke_token.tenant_id
       AND k.revoked_at IS NULL
       AND (k.expires_at IS NULL OR k.expires_at OPERATOR(pg_catalog.>) pg_catalog.now());
    IF NOT FOUND THEN
      RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('revoking token "%s" is not a live token of tenant "%s"', revoker_token_id,
                                    tenant_id);
    END IF;
    SELECT k.role INTO r
      FROM tenancy.tenant_tokens k
     WHERE k.id OPERATOR(pg_catalog.=) revoke_token.token_id
       AND k.tenant_id OPERATOR(pg_catalog.=) revoke_token.tenant_id;
    IF FOUND AND NOT tenancy.token_may_grant(revoker_role, r) THEN
      RAISE EXCEPTION USING ERRCODE = '42501',
        MESSAGE = pg_catalog.format('a token with role "%s" cannot revoke a token with role "%s"', revoker_role, r),
        DETAIL = 'A token may revoke only the tokens it could have issued: those of its own role or a weaker one.';
    END IF;
  END IF;
  UPDATE tenancy.tenant_tokens k SET revoked_at = pg_catalog.now()
   WHERE k.id OPERATOR(pg_catalog.=) revoke_token.token_id
     AND k.tenant_id OPERATOR(pg_catalog.=) revoke_token.tenant_id
     AND k.revoked_at IS NULL
  RETURNING k.role INTO r;
  IF NOT FOUND THEN
    RAISE EXCEPTION USING ERRCODE = '42704',
      MESSAGE = pg_catalog.format('token "%s" of tenant "%s" does not exist or is already revoked', token_id,
                                  tenant_id);
  END IF;
  PERFORM tenancy._audit('token_revoked', tenant_id, pg_catalog.jsonb_build_object('token_id', token_id, 'role', r),
                         NULL);
  -- Every token issued by this one, by those, and so on, still live: revoked now, each with its own event.
  FOR c IN
    WITH RECURSIVE issued (id) AS (
      SELECT k.id FROM tenancy.tenant_tokens k WHERE k.issuer_token_id OPERATOR(pg_catalog.=) revoke_token.token_id
      UNION
      SELECT k.id FROM tenancy.tenant_tokens k JOIN issued i ON k.issuer_token_id OPERATOR(pg_catalog.=) i.id
    )
    UPDATE tenancy.tenant_tokens k SET revoked_at = pg_catalog.now()
      FROM issued i
     WHERE k.id OPERATOR(pg_catalog.=) i.id AND k.revoked_at IS NULL
    RETURNING k.id, k.role, k.issuer_token_id
  LOOP
    PERFORM tenancy._audit('token_revoked', tenant_id,
                           pg_catalog.jsonb_build_object('token_id', c.id, 'role', c.role,
                                                         'revoked_with', revoke_token.token_id,
                                                         'issuer_token_id', c.issuer_token_id),
                           NULL);
  END LOOP;
END
$$;
COMMENT ON FUNCTION tenancy.revoke_token(uuid, uuid, uuid) IS
  'revokes a live token of the tenant and every token it issued (42704 when none); with revoker_token_id, only a '
  'token of the revoker''s role or a weaker one (42501)';

-- Tokens are an administrative surface: tenancy_admin only (the daemon's role), never tenancy_app.
REVOKE ALL ON tenancy.tenant_tokens FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE ON tenancy.tenant_tokens TO tenancy_admin;
REVOKE ALL ON FUNCTION tenancy.token_permits(tenancy.user_role, text) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.token_may_grant(tenancy.user_role, tenancy.user_role) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.authorize_token(bytea, uuid, text, jsonb) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.revoke_token(uuid, uuid, uuid) FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.set_request_caller(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.token_permits(tenancy.user_role, text) TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.token_may_grant(tenancy.user_role, tenancy.user_role) TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role, uuid)
  TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.authorize_token(bytea, uuid, text, jsonb) TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.revoke_token(uuid, uuid, uuid) TO tenancy_admin;
GRANT EXECUTE ON FUNCTION tenancy.set_request_caller(jsonb) TO tenancy_admin;
