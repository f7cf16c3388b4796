-- quota_track: track_quota row counting (inserts refused past the limit, deletes counted at commit, rollbacks
-- and savepoints given back), tenancy.users counting, reconcile_quota, and app-role access to the quota functions
\set VERBOSITY terse
SELECT id AS dev FROM tenancy.create_tenant('Track Dev', 'track-dev') \gset
SELECT id AS other FROM tenancy.create_tenant('Track Other', 'track-other') \gset
CREATE TABLE projects (id serial PRIMARY KEY, tenant_id uuid, name text);
INSERT INTO projects (tenant_id, name) VALUES (:'dev', 'existing');
SELECT tenancy.track_quota('projects', 'projects');
SELECT tgname FROM pg_trigger WHERE tgrelid = 'projects'::regclass ORDER BY 1;
-- existing rows were counted when tracking started
SELECT used, max FROM tenancy._quota_state(:'dev', 'projects');
-- up to the developer plan's 5 projects, then TN003
INSERT INTO projects (tenant_id, name) SELECT :'dev', 'p' || g FROM generate_series(2, 5) g;
\set VERBOSITY default
INSERT INTO projects (tenant_id, name) VALUES (:'dev', 'one too many');
\set VERBOSITY terse
-- a multi-row insert crossing the limit is refused whole and counts nothing
INSERT INTO projects (tenant_id, name) SELECT :'other', 'o' || g FROM generate_series(1, 6) g;
SELECT count(*) FROM projects WHERE tenant_id = :'other';
SELECT used FROM tenancy._quota_state(:'other', 'projects');
-- a rolled-back insert gives its unit back
BEGIN;
INSERT INTO projects (tenant_id, name) VALUES (:'other', 'rolled back');
SELECT used FROM tenancy._quota_state(:'other', 'projects');
ROLLBACK;
SELECT used FROM tenancy._quota_state(:'other', 'projects');
-- so does one under a savepoint rolled back, while the rest of the transaction commits
BEGIN;
INSERT INTO projects (tenant_id, name) VALUES (:'other', 'kept');
SAVEPOINT s;
INSERT INTO projects (tenant_id, name) VALUES (:'other', 'undone');
ROLLBACK TO SAVEPOINT s;
SAVEPOINT s2;
INSERT INTO projects (tenant_id, name) VALUES (:'other', 'kept too');
RELEASE SAVEPOINT s2;
COMMIT;
SELECT count(*) AS rows, (SELECT used FROM tenancy._quota_state(:'other', 'projects')) AS counted
  FROM projects WHERE tenant_id = :'other';
-- a delete frees its unit when it commits (not before: the row still exists for others until then)
BEGIN;
DELETE FROM projects WHERE tenant_id = :'dev' AND name = 'p5';
SELECT used FROM tenancy._quota_state(:'dev', 'projects');
COMMIT;
SELECT used FROM tenancy._quota_state(:'dev', 'projects');
BEGIN;
DELETE FROM projects WHERE tenant_id = :'dev' AND name = 'p4';
ROLLBACK;
SELECT used FROM tenancy._quota_state(:'dev', 'projects');
-- a delete then an insert in one transaction: the new row takes the deleted row's place, even at the limit
SELECT used FROM tenancy._quota_state(:'dev', 'projects');
INSERT INTO projects (tenant_id, name) VALUES (:'dev', 'p5 again');
BEGIN;
DELETE FROM projects WHERE tenant_id = :'dev' AND name = 'p5 again';
SAVEPOINT s;
INSERT INTO projects (tenant_id, name) VALUES (:'dev', 'undone replacement');
ROLLBACK TO SAVEPOINT s;
INSERT INTO projects (tenant_id, name) VALUES (:'dev', 'replacement');
INSERT INTO projects (tenant_id, name) VALUES (:'dev', 'one too many');
ROLLBACK;
BEGIN;
DELETE FROM projects WHERE tenant_id = :'dev' AND name = 'p5 again';
INSERT INTO projects (tenant_id, name) VALUES (:'dev', 'replacement');
COMMIT;
SELECT count(*) AS rows, (SELECT used FROM tenancy._quota_state(:'dev', 'projects')) AS counted
  FROM projects WHERE tenant_id = :'dev';
DELETE FROM projects WHERE tenant_id = :'dev' AND name = 'replacement';
-- moving a row to another tenant moves its unit
UPDATE projects SET tenant_id = :'dev' WHERE name = 'kept too';
SELECT (SELECT used FROM tenancy._quota_state(:'dev', 'projects')) AS dev, (SELECT used FROM tenancy._quota_state(:'other', 'projects')) AS other;
-- rows without a tenant are not counted
INSERT INTO projects (tenant_id, name) VALUES (NULL, 'orphan');

-- tenancy.users counts invited and active users; a disabled user frees its place
SELECT (tenancy.add_user(:'other', 'solo@example.com')).status;
SELECT used, max FROM tenancy._quota_state(:'other', 'users');
\set VERBOSITY sqlstate
SELECT tenancy.add_user(:'other', 'second@example.com');
\set VERBOSITY terse
UPDATE tenancy.users SET status = 'disabled' WHERE email = 'solo@example.com';
SELECT used FROM tenancy._quota_state(:'other', 'users');
UPDATE tenancy.users SET status = 'active' WHERE email = 'solo@example.com';
SELECT used FROM tenancy._quota_state(:'other', 'users');

-- reconcile_quota recounts and corrects a drifted counter, reporting the change
SELECT tenancy._quota_set_count(:'dev', 'projects', 42);
SELECT tenant_id = :'dev' AS dev, metric_name, previous, counted FROM tenancy.reconcile_quota('projects');
SELECT tenant_id = :'dev' AS dev, metric_name, previous, counted FROM tenancy.reconcile_quota();
SELECT used FROM tenancy._quota_state(:'dev', 'projects');

-- an application role: only its context tenant, only the app functions
CREATE ROLE regress_quota_app LOGIN IN ROLE tenancy_app;
GRANT SELECT, INSERT, DELETE ON projects TO regress_quota_app;
GRANT USAGE ON SEQUENCE projects_id_seq TO regress_quota_app;
SET ROLE regress_quota_app;
\set VERBOSITY sqlstate
SELECT tenancy.consume(:'other', 'api_calls');
BEGIN;
SELECT tenancy.set_tenant(:'other');
SELECT tenancy.consume(:'other', 'api_calls');
SELECT tenancy.consume_or_raise(:'other', 'api_calls', 2);
SELECT tenancy.release(:'other', 'concurrent_sessions');
SELECT tenancy.set_usage(:'other', 'storage_mb', 7);
SELECT tenancy.usage(:'other') -> 'current_usage' ->> 'api_calls_this_month' AS api_calls;
-- the trigger counts the app's inserts although the role has no privilege on the counter tables
INSERT INTO projects (tenant_id, name) VALUES (:'other', 'app project');
COMMIT;
BEGIN;
SELECT tenancy.set_tenant(:'other');
SELECT tenancy.consume(:'dev', 'api_calls');
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'other');
SELECT tenancy.release(:'dev', 'api_calls');
ROLLBACK;
-- the application cannot give its own tenant's monthly calls back (release moves gauges only)
BEGIN;
SELECT tenancy.set_tenant(:'other');
SELECT tenancy.release(:'other', 'api_calls', 3);
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'other');
SELECT tenancy.set_usage(:'dev', 'storage_mb', 0);
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'other');
SELECT tenancy.usage(:'dev');
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'other');
SELECT tenancy.usage(:'dev', true);
ROLLBACK;
-- internal and admin functions are not the app's
SELECT tenancy._consume_at(:'other', 'api_calls', 1, now());
SELECT * FROM tenancy._quota_state(:'other', 'api_calls');
SELECT tenancy._quota_set_count(:'other', 'projects', 0);
SELECT tenancy.set_quota_override(:'other', 'api_calls', 1000000);
SELECT tenancy.usage_trends(:'other');
SELECT tenancy.reconcile_quota();
SELECT tenancy.track_quota('projects', 'projects');
SELECT * FROM tenancy.quota_counters;
UPDATE tenancy.quota_counters SET reserved = 0;
SELECT * FROM tenancy.usage_history;
-- a session-level app.tenant_id is never a context
SET app.tenant_id = :'other';
SELECT tenancy.consume(:'other', 'api_calls');
RESET app.tenant_id;
RESET ROLE;
\set VERBOSITY terse
SELECT used FROM tenancy._quota_state(:'other', 'api_calls');
SELECT used FROM tenancy._quota_state(:'other', 'storage_mb');

-- invalid input:
\set VERBOSITY sqlstate
SELECT tenancy.track_quota('projects', 'api_calls');
SELECT tenancy.track_quota('projects', 'nope');
SELECT tenancy.track_quota('projects', 'projects', 'name');
SELECT tenancy.track_quota('projects', 'projects', 'missing');
SELECT tenancy.track_quota(NULL, 'projects');
SELECT tenancy.reconcile_quota('api_calls');
\set VERBOSITY terse
-- the tenant column renamed after track_quota: inserts fail naming it, nothing is counted
BEGIN;
ALTER TABLE projects RENAME COLUMN tenant_id TO owner_tenant;
INSERT INTO projects (owner_tenant, name) VALUES (:'dev', 'renamed');
ROLLBACK;
SELECT used FROM tenancy._quota_state(:'dev', 'projects');
-- a dropped tracked table is forgotten by the next reconciliation
DROP TABLE projects;
SELECT count(*) FROM tenancy.reconcile_quota();
SELECT table_name, metric FROM tenancy.quota_tracked_tables ORDER BY 1;
DROP ROLE regress_quota_app;
