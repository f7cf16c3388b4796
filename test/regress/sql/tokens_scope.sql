-- test/regress/sql/tokens_scope.sql
-- A token never outgrows its issuer: role and expiry capped, revoked with it; a token revokes only what it could
-- have issued; live-token and key-version caps; an inactive tenant's tokens are permitted nothing; the API caller
-- (token or admin token, remote address, request id) named in the audit log, and never claimable by an app role.
\set VERBOSITY sqlstate
CREATE FUNCTION pg_temp.outcome(stmt text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE stmt;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END
$$;
SELECT id AS a FROM tenancy.create_tenant('Scope A', 'scope-a', 'team') \gset
SELECT id AS o FROM tenancy.create_tenant('Scope Other', 'scope-other', 'team') \gset
SELECT status FROM tenancy.update_tenant(:'a', '{"status": "active"}');

-- one issuing token per role (issued with the admin token: no issuer)
SELECT count(*) AS issuers FROM unnest(enum_range(NULL::tenancy.user_role)) r,
       LATERAL tenancy.issue_token(:'a', r, sha256(convert_to('iss_' || r, 'UTF8')), 'issuer ' || r) t;

-- issue matrix (issuer role x new role): a token hands out its own role or a weaker one, never a stronger one
SELECT i AS issuer,
       string_agg(n || '=' || pg_temp.outcome(format(
         'SELECT tenancy.issue_token(%L, %L, sha256(%L), issuer_token_id => %L)', :'a', n, 'm_' || i || '_' || n,
         (SELECT id FROM tenancy.tenant_tokens WHERE token_sha256 = sha256(convert_to('iss_' || i, 'UTF8'))))), ' ' ORDER BY n) AS may_issue
  FROM unnest(enum_range(NULL::tenancy.user_role)) i, unnest(enum_range(NULL::tenancy.user_role)) n
 GROUP BY i ORDER BY i;
-- each minted token records its issuer
SELECT count(*) AS minted, count(*) FILTER (WHERE k.issuer_token_id = (SELECT id FROM tenancy.tenant_tokens
                                                                      WHERE token_sha256 = sha256(convert_to('iss_' || i, 'UTF8')))) AS issuer_recorded
  FROM unnest(enum_range(NULL::tenancy.user_role)) i CROSS JOIN unnest(enum_range(NULL::tenancy.user_role)) n
  JOIN tenancy.tenant_tokens k ON k.token_sha256 = sha256(convert_to('m_' || i || '_' || n, 'UTF8'));

-- revoke matrix (revoker role x target role): a token revokes only tokens it could have issued; targets are fresh
-- tokens issued with the admin token (so nothing cascades here)
SELECT count(*) AS targets FROM unnest(enum_range(NULL::tenancy.user_role)) i, unnest(enum_range(NULL::tenancy.user_role)) n,
       LATERAL tenancy.issue_token(:'a', n, sha256(convert_to('t_' || i || '_' || n, 'UTF8'))) t;
SELECT i AS revoker,
       string_agg(n || '=' || pg_temp.outcome(format(
         'SELECT tenancy.revoke_token(%L, %L, %L)', :'a',
         (SELECT id FROM tenancy.tenant_tokens WHERE token_sha256 = sha256(convert_to('t_' || i || '_' || n, 'UTF8'))),
         (SELECT id FROM tenancy.tenant_tokens WHERE token_sha256 = sha256(convert_to('iss_' || i, 'UTF8'))))), ' ' ORDER BY n) AS may_revoke
  FROM unnest(enum_range(NULL::tenancy.user_role)) i, unnest(enum_range(NULL::tenancy.user_role)) n
 GROUP BY i ORDER BY i;
-- the refused ones are still live; the admin token (no revoker) revokes any of them
SELECT count(*) AS refused_still_live FROM tenancy.tenant_tokens
 WHERE name IS NULL AND issuer_token_id IS NULL AND revoked_at IS NULL AND tenant_id = :'a';
SELECT count(*) AS admin_revokes FROM tenancy.tenant_tokens k, LATERAL tenancy.revoke_token(:'a', k.id) r
 WHERE k.name IS NULL AND k.issuer_token_id IS NULL AND k.revoked_at IS NULL AND k.tenant_id = :'a';

-- a revoker must be a live token of the same tenant; a token may revoke itself
SELECT id AS self FROM tenancy.issue_token(:'a', 'admin', sha256('self')) \gset
SELECT id AS victim FROM tenancy.issue_token(:'a', 'viewer', sha256('victim')) \gset
SELECT id AS stranger FROM tenancy.issue_token(:'o', 'owner', sha256('stranger')) \gset
SELECT pg_temp.outcome(format('SELECT tenancy.revoke_token(%L, %L, %L)', :'a', :'victim', :'stranger')) AS other_tenant_revoker;
SELECT pg_temp.outcome(format('SELECT tenancy.revoke_token(%L, %L, %L)', :'a', :'self', :'self')) AS revokes_itself;
SELECT pg_temp.outcome(format('SELECT tenancy.revoke_token(%L, %L, %L)', :'a', :'victim', :'self')) AS revoked_revoker;
SELECT pg_temp.outcome(format('SELECT tenancy.revoke_token(%L, %L, %L)', :'a', '00000000-0000-0000-0000-0000000000ff',
                              (SELECT id FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('iss_owner')))) AS unknown_target;
SELECT pg_temp.outcome(format('SELECT tenancy.revoke_token(%L, NULL)', :'a')) AS null_target;

-- expiry: never past the issuer's; a one-hour token cannot mint a never-expiring or a 90-day one
SELECT id AS hour, expires_at AS hour_ends FROM tenancy.issue_token(:'a', 'admin', sha256('hour'), expires_in => '1 hour') \gset
SELECT expires_at = :'hour_ends' AS never_capped_to_issuer
  FROM tenancy.issue_token(:'a', 'viewer', sha256('hour_never'), issuer_token_id => :'hour');
SELECT expires_at = :'hour_ends' AS days90_capped_to_issuer
  FROM tenancy.issue_token(:'a', 'viewer', sha256('hour_90d'), expires_in => '90 days', issuer_token_id => :'hour');
SELECT expires_at < :'hour_ends' AS shorter_kept
  FROM tenancy.issue_token(:'a', 'viewer', sha256('hour_10m'), expires_in => '10 minutes', issuer_token_id => :'hour');
SELECT expires_at = :'hour_ends' AS grandchild_capped
  FROM tenancy.issue_token(:'a', 'viewer', sha256('hour_grand'),
                           issuer_token_id => (SELECT id FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('hour_never')));
SELECT expires_at IS NULL AS unexpiring_issuer_mints_unexpiring
  FROM tenancy.issue_token(:'a', 'viewer', sha256('owner_never'),
                           issuer_token_id => (SELECT id FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('iss_owner')));

-- an issuer that is expired, revoked or of another tenant issues nothing
UPDATE tenancy.tenant_tokens SET expires_at = now() - interval '1 second' WHERE token_sha256 = sha256('hour_10m');
SELECT pg_temp.outcome(format('SELECT tenancy.issue_token(%L, %L, sha256(%L), issuer_token_id => %L)', :'a', 'guest', 'x1',
                              (SELECT id FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('hour_10m')))) AS expired_issuer,
       pg_temp.outcome(format('SELECT tenancy.issue_token(%L, %L, sha256(%L), issuer_token_id => %L)', :'a', 'guest', 'x2',
                              :'self')) AS revoked_issuer,
       pg_temp.outcome(format('SELECT tenancy.issue_token(%L, %L, sha256(%L), issuer_token_id => %L)', :'a', 'guest', 'x3',
                              :'stranger')) AS other_tenant_issuer;

-- revocation cascades down the whole chain (hour -> hour_never -> hour_grand, hour -> hour_90d) and nowhere else
SELECT coalesce(max(id), 0) AS cascade_start FROM tenancy.audit_log \gset
SELECT tenancy.revoke_token(:'a', :'hour');
SELECT count(*) AS chain, count(revoked_at) AS revoked
  FROM tenancy.tenant_tokens WHERE token_sha256 IN (sha256('hour'), sha256('hour_never'), sha256('hour_90d'), sha256('hour_grand'));
SELECT count(*) AS chain_still_authorizes FROM unnest(ARRAY['hour', 'hour_never', 'hour_90d', 'hour_grand']) s,
       LATERAL tenancy.authorize_token(sha256(convert_to(s, 'UTF8')), :'a', 'usage.read') z;
SELECT count(*) AS sibling_live FROM tenancy.authorize_token(sha256('owner_never'), :'a', 'usage.read');
SELECT action, (before ? 'revoked_with') AS cascaded, (before ->> 'revoked_with') = :'hour' AS with_hour
  FROM tenancy.audit_log WHERE id > :cascade_start ORDER BY id;

-- the live-token cap: revoked and expired tokens do not count; TN003 at the cap
SELECT count(*) AS live FROM tenancy.tenant_tokens
 WHERE tenant_id = :'a' AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) \gset
SELECT set_config('tenancy.max_tokens_per_tenant', (:live + 1)::text, false) IS NOT NULL AS cap_set;
SELECT count(*) AS last_place FROM tenancy.issue_token(:'a', 'guest', sha256('cap_1'));
SELECT * FROM tenancy.issue_token(:'a', 'guest', sha256('cap_2'));
SELECT tenancy.revoke_token(:'a', id) FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('cap_1');
SELECT count(*) AS freed_place FROM tenancy.issue_token(:'a', 'guest', sha256('cap_3'));
SELECT count(*) AS other_tenant_unaffected FROM tenancy.issue_token(:'o', 'guest', sha256('cap_other'));
RESET tenancy.max_tokens_per_tenant;

-- the key-version cap: TN003 once the tenant has that many versions
SELECT tenancy.current_key_version(:'a') AS v \gset
SELECT set_config('tenancy.max_key_versions_per_tenant', (:v + 1)::text, false) IS NOT NULL AS cap_set;
SELECT tenancy.rotate_tenant_key(:'a') = :v + 1 AS rotated;
SELECT tenancy.rotate_tenant_key(:'a');
SELECT tenancy.current_key_version(:'a') = :v + 1 AS unchanged;
RESET tenancy.max_key_versions_per_tenant;

-- residency is the operator's: no token role may change it
SELECT string_agg(r || '=' || tenancy.token_permits(r, 'tenant.patch.data_residency'), ' ' ORDER BY r) AS residency
  FROM unnest(enum_range(NULL::tenancy.user_role)) r;

-- an inactive tenant's tokens (suspended, cancelled, trial over) are permitted no action and metered nothing;
-- an active or in-trial tenant's are, by role
SELECT id AS s FROM tenancy.create_tenant('Scope Suspended', 'scope-suspended', 'team') \gset
SELECT id AS c FROM tenancy.create_tenant('Scope Cancelled', 'scope-cancelled', 'team') \gset
SELECT id AS x FROM tenancy.create_tenant('Scope Expired', 'scope-expired', 'team') \gset
SELECT id AS t FROM tenancy.create_tenant('Scope Trial', 'scope-trial', 'team') \gset
SELECT count(*) AS owners FROM (VALUES (:'s'), (:'c'), (:'x'), (:'t')) v(id),
       LATERAL tenancy.issue_token(v.id::uuid, 'owner', sha256(convert_to('own_' || v.id, 'UTF8'))) k;
SELECT status FROM tenancy.update_tenant(:'s', '{"status": "suspended"}');
SELECT status FROM tenancy.update_tenant(:'c', '{"status": "cancelled"}');
UPDATE tenancy.tenants SET trial_ends_at = now() - interval '1 second' WHERE id = :'x';
SELECT v.label, bool_or(z.tenant_active) AS active,
       string_agg(act || '=' || z.permitted, ' ' ORDER BY act) AS permitted,
       count(z.within_quota) AS metered
  FROM (VALUES ('suspended', :'s'), ('cancelled', :'c'), ('trial over', :'x'), ('trial', :'t')) v(label, id),
       unnest(ARRAY['tenant.read', 'tenant.write', 'users.read', 'users.write', 'usage.read', 'tokens.write',
                    'keys.write', 'sla.read', 'export.read']) act,
       LATERAL tenancy.authorize_token(sha256(convert_to('own_' || v.id, 'UTF8')), v.id::uuid, act) z
 GROUP BY v.label ORDER BY v.label;
SELECT (tenancy.usage(:'s') -> 'current_usage' ->> 'api_calls_this_month')::bigint AS suspended_calls,
       (tenancy.usage(:'t') -> 'current_usage' ->> 'api_calls_this_month')::bigint AS trial_calls;
-- and issuing a token for them is TN002
SELECT pg_temp.outcome(format('SELECT tenancy.issue_token(%L, %L, sha256(%L))', :'s', 'guest', 'late')) AS suspended_issue;

-- audit names the API caller: authorize_token's request sets it for the session until the next call
SELECT id AS owner_tok FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('iss_owner') \gset
SELECT coalesce(max(id), 0) AS caller_start FROM tenancy.audit_log \gset
SELECT permitted FROM tenancy.authorize_token(sha256('iss_owner'), :'a', 'tenant.write',
                                              '{"remote_addr": "192.0.2.7", "request_id": "req-1"}');
SELECT status FROM tenancy.update_tenant(:'a', '{"display_name": "Scope A2"}');
-- claims cannot rename the token or the role that made them
SELECT count(*) FROM tenancy.authorize_token(sha256('iss_admin'), :'a', 'tenant.write',
  '{"remote_addr": "192.0.2.8", "request_id": "req-2", "token_id": "forged", "actor": "admin token", "set_by": "postgres2"}');
SELECT status FROM tenancy.update_tenant(:'a', '{"display_name": "Scope A3"}');
-- the admin token's requests (set_request_caller), then none
SELECT tenancy.set_request_caller('{"remote_addr": "192.0.2.9", "request_id": "req-3"}');
SELECT status FROM tenancy.update_tenant(:'a', '{"display_name": "Scope A4"}');
SELECT tenancy.set_request_caller(NULL);
SELECT status FROM tenancy.update_tenant(:'a', '{"display_name": "Scope A5"}');
-- authorize_token without a request (or for an unknown token) leaves no caller either
SELECT tenancy.set_request_caller('{"request_id": "req-4"}');
SELECT count(*) FROM tenancy.authorize_token(sha256('iss_owner'), :'a', 'tenant.read');
SELECT status FROM tenancy.update_tenant(:'a', '{"display_name": "Scope A6"}');
SELECT tenancy.set_request_caller('{"request_id": "req-5"}');
SELECT count(*) FROM tenancy.authorize_token(sha256('nobody'), :'a', 'tenant.read', '{"request_id": "req-5b"}');
SELECT status FROM tenancy.update_tenant(:'a', '{"display_name": "Scope A7"}');
SELECT action, after -> '_caller' ->> 'actor' AS actor,
       (after -> '_caller' ->> 'token_id') = :'owner_tok' AS owner_token,
       after -> '_caller' ->> 'token_id' = (SELECT id::text FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('iss_admin')) AS admin_role_token,
       after -> '_caller' ->> 'role' AS role, (after -> '_caller' ->> 'tenant_id') = :'a' AS tenant_a,
       after -> '_caller' ->> 'remote_addr' AS remote_addr, after -> '_caller' ->> 'request_id' AS request_id,
       (after -> '_caller' ->> 'set_by') = current_user AS set_by_caller, after ->> 'display_name' AS display_name
  FROM tenancy.audit_log WHERE id > :caller_start ORDER BY id;
-- a bad request is TN005 and leaves no caller
SELECT tenancy.set_request_caller('{"request_id": "req-6"}');
SELECT * FROM tenancy.authorize_token(sha256('iss_owner'), :'a', 'tenant.read', '[1, 2]');
SELECT * FROM tenancy.authorize_token(sha256('iss_owner'), :'a', 'tenant.read',
                                      jsonb_build_object('request_id', repeat('r', 2000)));
SELECT tenancy.set_request_caller('"scalar"');
SELECT coalesce(max(id), 0) AS bad_start FROM tenancy.audit_log \gset
SELECT status FROM tenancy.update_tenant(:'a', '{"display_name": "Scope A8"}');
SELECT count(*) AS events, count(*) FILTER (WHERE after ? '_caller') AS with_caller
  FROM tenancy.audit_log WHERE id > :bad_start;
SELECT count(*) AS chain_problems FROM tenancy.verify_audit_log();

-- an application role can claim no caller: neither function is executable, and set_request_caller checks anyway
CREATE ROLE regress_scope_app NOLOGIN IN ROLE tenancy_app;
SET ROLE regress_scope_app;
SELECT tenancy.set_request_caller('{"request_id": "forged"}');
SELECT * FROM tenancy.authorize_token(sha256('iss_owner'), :'a', 'tenant.read', '{"request_id": "forged"}');
RESET ROLE;
GRANT EXECUTE ON FUNCTION tenancy.set_request_caller(jsonb) TO regress_scope_app;
SET ROLE regress_scope_app;
SELECT tenancy.set_request_caller('{"request_id": "forged"}');
RESET ROLE;
REVOKE EXECUTE ON FUNCTION tenancy.set_request_caller(jsonb) FROM regress_scope_app;
DROP ROLE regress_scope_app;
SELECT has_function_privilege('tenancy_app', 'tenancy.set_request_caller(jsonb)', 'EXECUTE') AS app_sets_caller,
       has_function_privilege('tenancy_admin', 'tenancy.set_request_caller(jsonb)', 'EXECUTE') AS admin_sets_caller,
       has_function_privilege('tenancy_app', 'tenancy.revoke_token(uuid, uuid, uuid)', 'EXECUTE') AS app_revokes;

SELECT tenancy.delete_tenant(id, erase => true) FROM tenancy.tenants
 WHERE slug IN ('scope-a', 'scope-other', 'scope-suspended', 'scope-cancelled', 'scope-expired', 'scope-trial')
 ORDER BY slug;
