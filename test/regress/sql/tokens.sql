-- test/regress/sql/tokens.sql
-- Tenant tokens for tenancyd: issue by digest, authenticate, permissions by role, revoke, expiry, privileges.
\set VERBOSITY sqlstate
SELECT id AS a FROM tenancy.create_tenant('Token A', 'token-a', 'team') \gset
SELECT id AS b FROM tenancy.create_tenant('Token B', 'token-b') \gset
SELECT status FROM tenancy.update_tenant(:'b', '{"status": "suspended"}');
SELECT coalesce(max(id), 0) AS start_id FROM tenancy.audit_log \gset

-- issue: the row keeps only the digest
SELECT role, name, expires_at IS NULL AS never_expires, pg_catalog.length(token_sha256) AS digest_bytes
  FROM tenancy.issue_token(:'a', 'admin', sha256('tnt_one'), 'ci');
SELECT role, expires_at > now() + interval '89 days' AS expires_in_90d
  FROM tenancy.issue_token(:'a', 'viewer', sha256('tnt_two'),
                           expires_in => interval '90 days');

-- authenticate: found by digest, with the permission of the action asked for (another tenant's target: no metering)
SELECT tenant_id = :'a' AS own_tenant, role, permitted, plan FROM tenancy.authorize_token(sha256('tnt_one'), '00000000-0000-0000-0000-000000000000', 'tokens.write');
SELECT role, permitted FROM tenancy.authorize_token(sha256('tnt_two'), '00000000-0000-0000-0000-000000000000', 'tokens.write');
SELECT role, permitted FROM tenancy.authorize_token(sha256('tnt_two'), '00000000-0000-0000-0000-000000000000', 'usage.read');
SELECT count(*) AS unknown_token FROM tenancy.authorize_token(sha256('tnt_nope'), '00000000-0000-0000-0000-000000000000', 'usage.read');

-- authorize (tenancyd's one call per request): meters one api_calls unit only for a permitted call to its own tenant
SELECT (tenancy.usage(:'a') -> 'current_usage' ->> 'api_calls_this_month')::bigint AS calls_before \gset
SELECT tenant_id = :'a' AS own_tenant, role, permitted, within_quota
  FROM tenancy.authorize_token(sha256('tnt_two'), :'a', 'usage.read');
SELECT permitted, within_quota AS other_tenant_not_metered
  FROM tenancy.authorize_token(sha256('tnt_two'), :'b', 'usage.read');
SELECT permitted, within_quota AS refused_not_metered
  FROM tenancy.authorize_token(sha256('tnt_two'), :'a', 'tokens.write');
SELECT count(*) AS unknown_token FROM tenancy.authorize_token(sha256('tnt_nope'), :'a', 'usage.read');
SELECT (tenancy.usage(:'a') -> 'current_usage' ->> 'api_calls_this_month')::bigint - :calls_before AS metered_calls;

-- the quota is never passed: at the limit a permitted call answers within_quota false and meters nothing more
SELECT tenancy.set_quota_override(:'a', 'api_calls', :calls_before + 2);
SELECT within_quota AS last_unit FROM tenancy.authorize_token(sha256('tnt_two'), :'a', 'usage.read');
SELECT permitted, within_quota AS over_limit FROM tenancy.authorize_token(sha256('tnt_two'), :'a', 'usage.read');
SELECT permitted, within_quota AS still_over FROM tenancy.authorize_token(sha256('tnt_two'), :'a', 'usage.read');
SELECT (tenancy.usage(:'a') -> 'current_usage' ->> 'api_calls_this_month')::bigint - :calls_before AS used_at_limit;

-- a live token with an action tenancyd does not know is an error, not a silent allow or deny
SELECT * FROM tenancy.authorize_token(sha256('tnt_two'), :'a', 'usage.raed');

-- a hostile search_path cannot redirect the lookup: a temporary table shadowing tenant_tokens is never read
CREATE TEMP TABLE tenant_tokens (LIKE tenancy.tenant_tokens);
INSERT INTO pg_temp.tenant_tokens SELECT * FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('tnt_two');
UPDATE pg_temp.tenant_tokens SET role = 'owner', tenant_id = :'b';
SET search_path = pg_temp, public;
SELECT tenant_id = :'a' AS own_tenant, role, permitted FROM tenancy.authorize_token(sha256('tnt_two'), :'b', 'tokens.write');
RESET search_path;
DROP TABLE pg_temp.tenant_tokens;

-- a revocation earlier in the same transaction is seen by the next check at once
BEGIN;
UPDATE tenancy.tenant_tokens SET revoked_at = now() WHERE token_sha256 = sha256('tnt_two');
SELECT count(*) AS revoked_in_transaction FROM tenancy.authorize_token(sha256('tnt_two'), :'a', 'usage.read');
ROLLBACK;

-- the role matrix of SPEC.md "What a tenant token may do"
SELECT r AS role,
       tenancy.token_permits(r, 'tenant.read') AS get_tenant,
       tenancy.token_permits(r, 'users.write') AS users,
       tenancy.token_permits(r, 'tenant.write') AS patch,
       tenancy.token_permits(r, 'export.read') AS export,
       tenancy.token_permits(r, 'tenant.patch.plan') AS plan,
       tenancy.token_permits(r, 'tenant.patch.status') AS status
  FROM unnest(enum_range(NULL::tenancy.user_role)) r ORDER BY r;
SELECT tenancy.token_may_grant('admin', 'owner') AS admin_to_owner, tenancy.token_may_grant('admin', 'viewer') AS admin_to_viewer;

-- expired and revoked tokens no longer authenticate
UPDATE tenancy.tenant_tokens SET expires_at = now() - interval '1 second' WHERE token_sha256 = sha256('tnt_two');
SELECT count(*) AS expired FROM tenancy.authorize_token(sha256('tnt_two'), :'a', 'usage.read');
SELECT tenancy.revoke_token(:'a', id)
  FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('tnt_one');
SELECT count(*) AS revoked FROM tenancy.authorize_token(sha256('tnt_one'), :'a', 'usage.read');

-- invalid input:
SELECT tenancy.revoke_token(:'a', id)
  FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('tnt_one');
SELECT tenancy.revoke_token(:'b', id)
  FROM tenancy.tenant_tokens WHERE token_sha256 = sha256('tnt_two');
SELECT * FROM tenancy.issue_token(:'a', 'admin', '\x00'::bytea);
SELECT * FROM tenancy.issue_token(:'a', 'admin', sha256('x'), repeat('n', 201));
SELECT * FROM tenancy.issue_token(:'a', 'admin', sha256('x'), expires_in => '-1 day');
SELECT * FROM tenancy.issue_token(:'a', 'owner', sha256('x'), issuer_role => 'admin');
SELECT * FROM tenancy.issue_token('00000000-0000-0000-0000-0000000000ff', 'admin', sha256('x'));
SELECT * FROM tenancy.issue_token(:'b', 'admin', sha256('x'));
SELECT * FROM tenancy.issue_token(:'a', 'admin', sha256('tnt_one'));
SELECT tenancy.token_permits('owner', 'drop.everything');

-- issue and revoke are audited
SELECT action, tenant_id = :'a' AS tenant_a FROM tenancy.audit_log WHERE id > :start_id ORDER BY id;

-- SLA targets by plan
SELECT tenancy.sla_targets(:'a');
SELECT tenancy.sla_targets('00000000-0000-0000-0000-0000000000ff');

-- privileges: tenancy_app and PUBLIC get nothing here
SELECT has_table_privilege('tenancy_app', 'tenancy.tenant_tokens', 'SELECT') AS app_reads_tokens,
       has_function_privilege('tenancy_app', 'tenancy.authorize_token(bytea, uuid, text, jsonb)', 'EXECUTE') AS app_auth,
       has_function_privilege('tenancy_admin', 'tenancy.issue_token(uuid, tenancy.user_role, bytea, text, interval, tenancy.user_role, uuid)', 'EXECUTE') AS admin_issue;

SELECT tenancy.delete_tenant(:'a', erase => true);
SELECT tenancy.delete_tenant(:'b', erase => true);
SELECT count(*) AS tokens_left FROM tenancy.tenant_tokens;
