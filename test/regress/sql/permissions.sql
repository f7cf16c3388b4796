-- permissions: the role x resource matrix as permission() and allowed(), and their error paths
\set VERBOSITY terse
-- the whole matrix, one row per role
SELECT r AS role,
       tenancy.permission(r, 'users') AS users, tenancy.permission(r, 'projects') AS projects,
       tenancy.permission(r, 'admin') AS admin, tenancy.permission(r, 'billing') AS billing,
       tenancy.permission(r, 'ai_services') AS ai_services
  FROM unnest(enum_range(NULL::tenancy.user_role)::text[]) WITH ORDINALITY AS x(r, n) ORDER BY n;
-- read and write per level: full/team/self/assigned allow both, read/limited read only, none neither
SELECT r AS role, res AS resource, tenancy.permission(r, res) AS level,
       tenancy.allowed(r, res, 'read') AS can_read, tenancy.allowed(r, res, 'write') AS can_write
  FROM unnest(enum_range(NULL::tenancy.user_role)::text[]) WITH ORDINALITY AS x(r, n),
       unnest(ARRAY['users', 'projects', 'admin', 'billing', 'ai_services']) WITH ORDINALITY AS y(res, m)
 ORDER BY n, m;
-- the enum overloads answer the same
SELECT tenancy.permission('manager'::tenancy.user_role, 'admin'), tenancy.allowed('viewer'::tenancy.user_role, 'projects', 'write');
-- IMMUTABLE: folded at plan time
SELECT provolatile, proparallel FROM pg_proc WHERE oid = 'tenancy.permission(text, text)'::regprocedure;
SELECT provolatile, proparallel FROM pg_proc WHERE oid = 'tenancy.allowed(text, text, text)'::regprocedure;

-- invalid input:
\set VERBOSITY sqlstate
SELECT tenancy.permission('owner', 'kitchen');
SELECT tenancy.permission('owner', NULL);
SELECT tenancy.permission('emperor', 'users');
SELECT tenancy.permission(NULL::text, 'users');
SELECT tenancy.permission('Owner', 'users');
SELECT tenancy.allowed('owner', 'users', 'delete');
SELECT tenancy.allowed('owner', 'users', NULL);
SELECT tenancy.allowed('owner', 'garden', 'read');
SELECT tenancy.allowed('nobody', 'users', 'read');
