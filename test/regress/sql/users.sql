-- users: add_user (quota, status, e-mail rules), list_users, set_user_role, remove_user and the last-owner rule
\set VERBOSITY terse
CREATE FUNCTION pg_temp.tid(s text) RETURNS uuid LANGUAGE sql AS $$ SELECT id FROM tenancy.tenants WHERE slug = s $$;
CREATE FUNCTION pg_temp.uid(s text, e text) RETURNS uuid LANGUAGE sql AS
  $$ SELECT u.id FROM tenancy.users u WHERE u.tenant_id = pg_temp.tid(s) AND u.email = e $$;
SELECT slug FROM tenancy.create_tenant('Team Co', 'team-co', 'team', admin_email => 'owner@team.co');
SELECT slug FROM tenancy.create_tenant('Solo Dev', 'solo-dev');

-- add: defaults (developer, invited), every argument, send_invitation => false makes the user active
SELECT email, first_name, last_name, role, status, created_at = updated_at AS fresh
  FROM tenancy.add_user(pg_temp.tid('team-co'), 'Dev.One@Team.CO');
SELECT email, first_name, last_name, role, status
  FROM tenancy.add_user(pg_temp.tid('team-co'), 'ann@team.co', 'Ann', 'Lee', 'admin', send_invitation => false);
SELECT email, role, status FROM tenancy.add_user(pg_temp.tid('team-co'), 'vic@team.co', role => 'viewer');
SELECT email, role FROM tenancy.add_user(pg_temp.tid('team-co'), 'gus@team.co', role => 'guest');
SELECT email, role FROM tenancy.add_user(pg_temp.tid('team-co'), 'max@team.co', role => 'manager');
-- the same address in another tenant is fine
SELECT email FROM tenancy.add_user(pg_temp.tid('solo-dev'), 'ann@team.co');
-- the same address again in one tenant, in any case, is a conflict (23505)
\set VERBOSITY sqlstate
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'ANN@team.co');
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'ann@TEAM.co', role => 'owner');
-- also when written around the API
INSERT INTO tenancy.users (tenant_id, email) VALUES (pg_temp.tid('team-co'), 'Ann@Team.Co');
\set VERBOSITY terse

-- list: all, then by status
SELECT email, role, status FROM tenancy.list_users(pg_temp.tid('team-co')) ORDER BY email;
SELECT email FROM tenancy.list_users(pg_temp.tid('team-co'), 'active') ORDER BY email;
SELECT count(*) FROM tenancy.list_users(pg_temp.tid('team-co'), 'invited');
SELECT count(*) FROM tenancy.list_users(pg_temp.tid('team-co'), 'disabled');

-- roles: promote, demote an owner while another remains, no-op change
SELECT email, role FROM tenancy.set_user_role(pg_temp.uid('team-co', 'ann@team.co'), 'owner');
SELECT email, role FROM tenancy.set_user_role(pg_temp.uid('team-co', 'owner@team.co'), 'admin');
SELECT email, role FROM tenancy.set_user_role(pg_temp.uid('team-co', 'ann@team.co'), 'owner');
-- remove: the user goes, the audit log keeps the history
SELECT tenancy.remove_user(pg_temp.uid('team-co', 'gus@team.co'));
SELECT count(*) FROM tenancy.users WHERE email = 'gus@team.co';
SELECT action, before ->> 'email' AS before_email, after ->> 'email' AS after_email, after ->> 'role' AS after_role
  FROM tenancy.audit_log WHERE tenant_id = pg_temp.tid('team-co') AND action LIKE 'user%' ORDER BY id;

-- max_users: team allows 10; invited and active users count, disabled ones do not
SELECT count(*) FROM tenancy.list_users(pg_temp.tid('team-co'));
SELECT count(*) FROM (SELECT tenancy.add_user(pg_temp.tid('team-co'), 'u' || i || '@team.co') FROM generate_series(1, 5) i) s;
\set VERBOSITY sqlstate
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'eleventh@team.co');
\set VERBOSITY terse
UPDATE tenancy.users SET status = 'disabled' WHERE email = 'u5@team.co';
SELECT email FROM tenancy.add_user(pg_temp.tid('team-co'), 'eleventh@team.co');
-- a per-tenant override replaces the plan figure
INSERT INTO tenancy.quota_overrides VALUES (pg_temp.tid('team-co'), 'users', 11);
SELECT email FROM tenancy.add_user(pg_temp.tid('team-co'), 'twelfth@team.co');
-- the developer plan allows one user
\set VERBOSITY default
\set SHOW_CONTEXT never
SELECT tenancy.add_user(pg_temp.tid('solo-dev'), 'second@solo.dev');
\set VERBOSITY terse

-- invalid input:
\set VERBOSITY sqlstate
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'ANN@team.co');
SELECT tenancy.add_user(pg_temp.tid('solo-dev'), 'ann@team.co');
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'not-an-email');
SELECT tenancy.add_user(pg_temp.tid('team-co'), NULL);
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'x@team.co', role => 'superhero');
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'x@team.co', role => NULL);
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'x@team.co', send_invitation => NULL);
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'x@team.co', repeat('a', 256));
SELECT tenancy.add_user('00000000-0000-0000-0000-000000000001', 'x@team.co');
SELECT tenancy.list_users('00000000-0000-0000-0000-000000000001');
SELECT tenancy.list_users(pg_temp.tid('team-co'), 'sleeping');
SELECT tenancy.set_user_role('00000000-0000-0000-0000-000000000001', 'admin');
SELECT tenancy.set_user_role(pg_temp.uid('team-co', 'vic@team.co'), 'root');
SELECT tenancy.remove_user('00000000-0000-0000-0000-000000000001');
-- the last owner can be neither demoted nor removed (TN005)
SELECT tenancy.set_user_role(pg_temp.uid('team-co', 'ann@team.co'), 'admin');
SELECT tenancy.remove_user(pg_temp.uid('team-co', 'ann@team.co'));
SELECT role FROM tenancy.users WHERE email = 'ann@team.co' AND tenant_id = pg_temp.tid('team-co');
-- suspended, cancelled and expired-trial tenants take no new users (TN002)
SELECT status FROM tenancy.update_tenant(pg_temp.tid('team-co'), '{"status": "suspended"}');
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'late@team.co');
SELECT status FROM tenancy.update_tenant(pg_temp.tid('team-co'), '{"status": "cancelled"}');
SELECT tenancy.add_user(pg_temp.tid('team-co'), 'late@team.co');
SELECT slug FROM tenancy.create_tenant('Old Trial', 'old-trial', 'team');
UPDATE tenancy.tenants SET trial_ends_at = now() - interval '1 day' WHERE slug = 'old-trial';
SELECT tenancy.add_user(pg_temp.tid('old-trial'), 'late@old.trial');
-- the same rules under REPEATABLE READ
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT email FROM tenancy.add_user(pg_temp.tid('solo-dev'), 'rr@solo.dev');
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT tenancy.remove_user(pg_temp.uid('solo-dev', 'ann@team.co'));
SELECT email FROM tenancy.add_user(pg_temp.tid('solo-dev'), 'rr@solo.dev');
ROLLBACK;
\set VERBOSITY terse
SELECT count(*) AS audit_problems FROM tenancy.verify_audit_log();
