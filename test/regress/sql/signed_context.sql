-- signed_context: tenancy.context_mode = 'signed'; tokens signed with tenancy.context_secret_file (HMAC-SHA-256)
\set VERBOSITY sqlstate
INSERT INTO tenancy.tenants (id, organization_name, slug, status) VALUES
  ('a0000000-0000-0000-0000-00000000000a', 'Acme', 'sig-acme', 'active'),
  ('b0000000-0000-0000-0000-00000000000b', 'Beta', 'sig-beta', 'active'),
  ('c0000000-0000-0000-0000-00000000000c', 'Gamma', 'sig-gamma', 'suspended');
CREATE ROLE regress_sig_app;
CREATE ROLE regress_sig_admin;
GRANT tenancy_app TO regress_sig_app;
GRANT tenancy_admin TO regress_sig_admin;
CREATE TABLE sig_notes (id int, tenant_id uuid NOT NULL, body text);
SELECT tenancy.enable_isolation('sig_notes');
INSERT INTO sig_notes VALUES (1, 'a0000000-0000-0000-0000-00000000000a', 'a'), (2, 'b0000000-0000-0000-0000-00000000000b', 'b');
GRANT SELECT ON sig_notes TO regress_sig_app;

-- the secrets: files in the data directory (the server's working directory), mode 0600, written by the server
COPY (SELECT 'regress-secret-' || repeat('k', 40)) TO PROGRAM 'umask 077 && cat > tenancy_regress_context.secret';
COPY (SELECT 'regress-other-secret-' || repeat('z', 40)) TO PROGRAM 'umask 077 && cat > tenancy_regress_context2.secret';
COPY (SELECT 'regress-world-readable-' || repeat('w', 40)) TO PROGRAM 'umask 022 && cat > tenancy_regress_context3.secret';
COPY (SELECT 'short') TO PROGRAM 'umask 077 && cat > tenancy_regress_context4.secret';
-- no secret, a missing, a world-readable or a short one: 55000, and no token
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a');
SET tenancy.context_secret_file = 'no_such_file.secret';
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a');
SET tenancy.context_secret_file = 'tenancy_regress_context3.secret';
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a');
SET tenancy.context_secret_file = 'tenancy_regress_context4.secret';
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a');
SET tenancy.context_secret_file = 'tenancy_regress_context.secret';
SET tenancy.context_mode = 'signed';

-- only admins sign; the application role can neither sign nor change the settings
SET ROLE regress_sig_app;
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a');
SET tenancy.context_mode = 'plain';
SET tenancy.context_secret_file = '/tmp/my-own-secret';
SELECT pg_read_file('tenancy_regress_context.secret');
RESET ROLE;
SET ROLE regress_sig_admin;
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a', '1 hour') AS token_a \gset
SELECT tenancy.sign_tenant_token('b0000000-0000-0000-0000-00000000000b', '10 minutes') AS token_b \gset
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a', '1 second') AS token_short \gset
SELECT tenancy.sign_tenant_token('c0000000-0000-0000-0000-00000000000c') AS token_suspended \gset
-- invalid input:
SELECT tenancy.sign_tenant_token('f0000000-0000-0000-0000-00000000000f');
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a', '0 seconds');
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a', '-1 hour');
SELECT tenancy.sign_tenant_token('a0000000-0000-0000-0000-00000000000a', '8 days');
RESET ROLE;
-- the format: v1.<tenant>.<expiry>.<43 characters of base64url>
SELECT split_part(:'token_a', '.', 1) AS version, split_part(:'token_a', '.', 2) AS tenant,
       split_part(:'token_a', '.', 3)::bigint - extract(epoch FROM now())::bigint BETWEEN 3590 AND 3600 AS expires_in_1h,
       split_part(:'token_a', '.', 4) ~ '^[A-Za-z0-9_-]{43}$' AS mac_is_base64url;

SET ROLE regress_sig_app;
-- a valid token sets the context for the transaction, like set_tenant
BEGIN;
SELECT tenancy.set_tenant_token(:'token_a');
SELECT id, body FROM sig_notes ORDER BY id;
COMMIT;
SELECT count(*) FROM sig_notes;
BEGIN;
SELECT tenancy.set_tenant_token(:'token_b');
SELECT id, body FROM sig_notes ORDER BY id;
ROLLBACK;

-- in signed mode, plain set_tenant and app.tenant_id are refused or ignored for the application role
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
BEGIN;
SET LOCAL app.tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT tenancy.current_tenant_id() IS NULL AS app_tenant_id_ignored;
SELECT count(*) FROM sig_notes;
ROLLBACK;
-- an injected statement after the application's token cannot switch to another tenant
BEGIN;
SELECT tenancy.set_tenant_token(:'token_a');
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant_token(:'token_a');
SET LOCAL app.tenant_id = 'b0000000-0000-0000-0000-00000000000b';
SELECT id, body FROM sig_notes ORDER BY id;
ROLLBACK;

-- forged, altered, truncated and expired tokens: 42501; a token of a suspended tenant: TN002
SELECT tenancy.set_tenant_token(replace(:'token_a', 'a0000000-0000-0000-0000-00000000000a',
                                                     'b0000000-0000-0000-0000-00000000000b'));
SELECT tenancy.set_tenant_token(regexp_replace(:'token_a', '\.[0-9]+\.', '.9999999999.'));
SELECT tenancy.set_tenant_token(left(:'token_a', -1));
SELECT tenancy.set_tenant_token(:'token_a' || 'A');
SELECT tenancy.set_tenant_token(split_part(:'token_a', '.', 1) || '.' || split_part(:'token_a', '.', 2) || '.' ||
                                split_part(:'token_a', '.', 3) || '.' || split_part(:'token_b', '.', 4));
SELECT tenancy.set_tenant_token('');
SELECT tenancy.set_tenant_token('v1.a0000000-0000-0000-0000-00000000000a.99999999999.AAAA');
SELECT tenancy.set_tenant_token(:'token_suspended');
SELECT pg_sleep(1.1);
SELECT tenancy.set_tenant_token(:'token_short');
\set VERBOSITY default
SELECT tenancy.set_tenant_token(:'token_short');
\set VERBOSITY sqlstate
RESET ROLE;

-- an admin may still use set_tenant in signed mode
SET ROLE regress_sig_admin;
BEGIN;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
SELECT tenancy.current_tenant_id();
COMMIT;
RESET ROLE;

-- another secret: every token signed before is invalid
SET tenancy.context_secret_file = 'tenancy_regress_context2.secret';
SET ROLE regress_sig_app;
SELECT tenancy.set_tenant_token(:'token_a');
RESET ROLE;
SET tenancy.context_secret_file = 'no_such_file.secret';
SELECT tenancy.set_tenant_token(:'token_a');

-- plain mode again: set_tenant works for the application role
RESET tenancy.context_mode;
RESET tenancy.context_secret_file;
SET ROLE regress_sig_app;
BEGIN;
SELECT tenancy.set_tenant('b0000000-0000-0000-0000-00000000000b');
SELECT id, body FROM sig_notes ORDER BY id;
COMMIT;
RESET ROLE;

COPY (SELECT 1) TO PROGRAM 'cat > /dev/null && rm -f tenancy_regress_context*.secret';
DROP TABLE sig_notes;
DROP ROLE regress_sig_app, regress_sig_admin;
DELETE FROM tenancy.tenants WHERE slug LIKE 'sig-%';
