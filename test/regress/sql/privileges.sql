-- privileges: a non-superuser tenancy_admin member does all registry work; a tenancy_app member uses its context
-- and reads its own tenant only, and gets 42501 from every admin function; PUBLIC gets nothing
\set VERBOSITY terse
CREATE ROLE regress_priv_admin NOLOGIN NOSUPERUSER NOBYPASSRLS IN ROLE tenancy_admin;
CREATE ROLE regress_priv_app NOLOGIN NOSUPERUSER NOBYPASSRLS IN ROLE tenancy_app;
CREATE ROLE regress_priv_nobody NOLOGIN;
GRANT USAGE ON SCHEMA tenancy TO regress_priv_nobody;  -- so that only the function and table ACLs are tested

-- the admin: the whole registry and user lifecycle
SET ROLE regress_priv_admin;
SELECT id AS parent_id FROM tenancy.create_tenant('Priv Parent', 'priv-parent', 'team', admin_email => 'boss@priv.io') \gset
SELECT id AS child_id FROM tenancy.create_tenant('Priv Child', 'priv-child', parent_tenant_id => :'parent_id') \gset
SELECT id AS other_id FROM tenancy.create_tenant('Priv Other', 'priv-other', 'enterprise', 'eu') \gset
SELECT (tenancy.get_tenant(:'parent_id')).slug, (tenancy.get_tenant_by_slug('priv-child')).slug;
SELECT status FROM tenancy.update_tenant(:'parent_id', '{"status": "active", "configuration": {"theme": "dark"}}');
SELECT tenancy.tenant_json(:'parent_id') -> 'quotas' ->> 'max_users' AS max_users;
SELECT count(*) FROM tenancy.tenant_descendants(:'parent_id');
SELECT count(*) FROM tenancy.tenant_ancestors(:'child_id');
SELECT id AS dev_id FROM tenancy.add_user(:'parent_id', 'dev@priv.io', send_invitation => false) \gset
SELECT role FROM tenancy.set_user_role(:'dev_id', 'manager');
SELECT count(*) FROM tenancy.list_users(:'parent_id');
SELECT tenancy.remove_user(:'dev_id');
SELECT tenancy.permission('admin', 'billing'), tenancy.allowed('admin', 'billing', 'write');
UPDATE tenancy.plans SET max_projects = max_projects WHERE plan = 'team';
INSERT INTO tenancy.quota_overrides VALUES (:'other_id', 'projects', 5);
SELECT tenancy._effective_limit(:'other_id', 'projects');
SELECT count(*) > 0 AS reads_audit FROM tenancy.audit_log;
SELECT count(*) FROM tenancy.verify_audit_log();
SELECT id AS gone_id FROM tenancy.create_tenant('Priv Gone', 'priv-gone') \gset
SELECT tenancy.delete_tenant(:'gone_id');
SELECT tenancy.delete_tenant(:'gone_id', erase => true);
SELECT count(*) FROM tenancy.tenants WHERE id = :'gone_id';
RESET ROLE;

-- the app: context, its own tenant's row, its own tree, the matrix
SET ROLE regress_priv_app;
SELECT count(*) AS rows_without_context FROM tenancy.tenants;
BEGIN;
SELECT tenancy.set_tenant(:'parent_id');
SELECT tenancy.current_tenant_id() = :'parent_id' AS in_context;
SELECT slug, status FROM tenancy.tenants;
SELECT max_users FROM tenancy.plans WHERE plan = 'team';
SELECT count(*) AS descendants FROM tenancy.tenant_descendants(:'parent_id');
SELECT count(*) AS ancestors FROM tenancy.tenant_ancestors(:'parent_id');
SELECT tenancy.permission('viewer', 'projects'), tenancy.allowed('viewer', 'projects', 'read');
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'child_id');
SELECT count(*) AS ancestors FROM tenancy.tenant_ancestors(:'child_id');
SELECT slug FROM tenancy.tenants;
COMMIT;
SELECT count(*) AS rows_after_commit FROM tenancy.tenants;

\set VERBOSITY sqlstate
-- another tenant's tree, or any tree without a context (42501)
BEGIN;
SELECT tenancy.set_tenant(:'child_id');
SELECT tenancy.tenant_descendants(:'parent_id');
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'child_id');
SELECT tenancy.tenant_ancestors(:'other_id');
ROLLBACK;
SELECT tenancy.tenant_descendants(:'parent_id');
-- writes to the registry and reads of other tables
BEGIN;
SELECT tenancy.set_tenant(:'parent_id');
UPDATE tenancy.tenants SET status = 'active';
ROLLBACK;
INSERT INTO tenancy.tenants (organization_name, slug) VALUES ('Sneaky', 'sneaky');
DELETE FROM tenancy.tenants;
SELECT count(*) FROM tenancy.users;
SELECT count(*) FROM tenancy.quota_overrides;
UPDATE tenancy.plans SET max_users = 1000000;
SELECT count(*) FROM tenancy.audit_chain_head;
RESET ROLE;
\set VERBOSITY terse

-- every admin function refuses the app role (42501), before looking at its arguments
SET ROLE regress_priv_app;
DO $$
DECLARE
  calls text[] := ARRAY[
    $c$SELECT tenancy.create_tenant('X', 'app-made')$c$,
    $c$SELECT tenancy.get_tenant(tenancy.current_tenant_id())$c$,
    $c$SELECT tenancy.get_tenant_by_slug('priv-parent')$c$,
    $c$SELECT tenancy.update_tenant(NULL, '{}')$c$,
    $c$SELECT tenancy.delete_tenant(NULL)$c$,
    $c$SELECT tenancy.tenant_json(NULL)$c$,
    $c$SELECT tenancy.add_user(NULL, 'a@b.io')$c$,
    $c$SELECT tenancy.list_users(NULL)$c$,
    $c$SELECT tenancy.set_user_role(NULL, 'owner')$c$,
    $c$SELECT tenancy.remove_user(NULL)$c$,
    $c$SELECT tenancy.verify_audit_log()$c$,
    $c$SELECT tenancy._effective_limit(NULL, 'users')$c$,
    $c$SELECT tenancy._effective_quotas(NULL)$c$,
    $c$SELECT tenancy._check_ancestry(NULL, NULL)$c$,
    $c$SELECT tenancy._lock_tenant_for_users(NULL)$c$,
    $c$SELECT tenancy._lock_user(NULL)$c$,
    $c$SELECT tenancy._is_last_owner(NULL)$c$,
    $c$SELECT tenancy._validate_slug('abc')$c$];
  c text;
BEGIN
  FOREACH c IN ARRAY calls LOOP
    BEGIN
      EXECUTE c;
      RAISE NOTICE '% -> allowed', c;
    EXCEPTION WHEN OTHERS THEN
      RAISE NOTICE '% -> %', c, SQLSTATE;
    END;
  END LOOP;
END
$$;
RESET ROLE;

-- PUBLIC: no function of the registry, users, permissions or audit parts, no table
SELECT p.oid::regprocedure AS executable_by_public
  FROM pg_proc p
 WHERE p.pronamespace = 'tenancy'::regnamespace AND has_function_privilege('regress_priv_nobody', p.oid, 'EXECUTE')
 ORDER BY 1;
SELECT c.relname AS readable_by_public
  FROM pg_class c
 WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind IN ('r', 'p', 'S', 'v')
   AND (has_table_privilege('regress_priv_nobody', c.oid, 'SELECT') OR
        (c.relkind <> 'S' AND has_table_privilege('regress_priv_nobody', c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')))
 ORDER BY 1;
SET ROLE regress_priv_nobody;
\set VERBOSITY sqlstate
SELECT tenancy.permission('owner', 'users');
SELECT tenancy.tenant_descendants(:'parent_id');
SELECT tenancy._audit('x', NULL, NULL, NULL);
SELECT count(*) FROM tenancy.tenants;
SELECT count(*) FROM tenancy.plans;
\set VERBOSITY terse
RESET ROLE;
-- what the app role may touch of these parts: exactly SPEC.md's list
SELECT p.proname AS app_functions
  FROM pg_proc p
 WHERE p.pronamespace = 'tenancy'::regnamespace AND has_function_privilege('tenancy_app', p.oid, 'EXECUTE')
   AND p.proname IN ('create_tenant', 'get_tenant', 'get_tenant_by_slug', 'update_tenant', 'delete_tenant', 'tenant_json',
                     'tenant_descendants', 'tenant_ancestors', 'add_user', 'list_users', 'set_user_role', 'remove_user',
                     'permission', 'allowed', 'verify_audit_log', '_audit', 'set_tenant', 'current_tenant_id')
 GROUP BY 1 ORDER BY 1;
SELECT c.relname AS app_tables, has_table_privilege('tenancy_app', c.oid, 'INSERT, UPDATE, DELETE') AS writable
  FROM pg_class c
 WHERE c.relnamespace = 'tenancy'::regnamespace AND c.relkind = 'r'
   AND c.relname IN ('tenants', 'plans', 'users', 'quota_overrides', 'audit_log', 'audit_chain_head')
   AND has_table_privilege('tenancy_app', c.oid, 'SELECT, INSERT, UPDATE, DELETE')
 ORDER BY 1;

DROP OWNED BY regress_priv_admin, regress_priv_app, regress_priv_nobody;
DROP ROLE regress_priv_admin, regress_priv_app, regress_priv_nobody;
