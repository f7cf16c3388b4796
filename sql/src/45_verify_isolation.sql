-- sql/src/45_verify_isolation.sql
-- verify_isolation(): every way an isolated table can still be reached around its policy, each with a fix hint.

CREATE FUNCTION tenancy.verify_isolation(OUT table_name regclass, OUT problem text, OUT hint text)
RETURNS SETOF record
LANGUAGE sql STABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp AS $$
WITH cfg AS (
  SELECT c.*, c.relid::oid AS rel FROM tenancy.isolation_config c
   WHERE EXISTS (SELECT 1 FROM pg_class k WHERE k.oid = c.relid::oid)
),
tenant_columns AS (
  SELECT 'tenant_id'::name AS col
  UNION SELECT tenant_column FROM tenancy.isolation_config
  UNION SELECT current_setting('tenancy.auto_isolate', true)::name WHERE current_setting('tenancy.auto_isolate', true) <> ''
),
user_tables AS (
  SELECT k.oid, k.relkind FROM pg_class k JOIN pg_namespace n ON n.oid = k.relnamespace
   WHERE k.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'tenancy')
     AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
),
app_members AS (
  WITH RECURSIVE m(roleid) AS (
    SELECT a.member FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid WHERE r.rolname = 'tenancy_app'
    UNION SELECT a.member FROM pg_auth_members a JOIN m ON a.roleid = m.roleid)
  SELECT roleid FROM m
),
generated AS (
  SELECT 'tenancy_isolation'::name AS polname UNION ALL SELECT 'tenancy_descendants_read'
  UNION ALL SELECT 'tenancy_admin_cross_tenant'
)
-- 1. a table with a tenant column and no policy
SELECT t.oid::regclass, format('table has a tenant column %I but no isolation policy', a.attname),
       format('SELECT tenancy.enable_isolation(%L, %L);', t.oid::regclass::text, a.attname)
  FROM user_tables t JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE a.atttypid = 'uuid'::regtype AND a.attname IN (SELECT col FROM tenant_columns)
   AND NOT EXISTS (SELECT 1 FROM cfg WHERE cfg.rel = t.oid)
   AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = t.oid)
UNION ALL
-- 2. row level security off or not forced (the owner would bypass it)
SELECT cfg.relid, CASE WHEN NOT k.relrowsecurity THEN 'row level security is not enabled'
                       ELSE 'row level security is not forced' END,
       format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;', cfg.relid)
  FROM cfg JOIN pg_class k ON k.oid = cfg.rel
 WHERE NOT (k.relrowsecurity AND k.relforcerowsecurity)
UNION ALL
-- 3a. a generated policy missing or edited by hand
SELECT cfg.relid,
       CASE WHEN p.oid IS NULL THEN format('generated policy %I is missing', g.polname)
            ELSE format('generated policy %I was changed by hand', g.polname) END,
       format('SELECT tenancy.enable_isolation(%L, %L, %s);', cfg.relid::text, cfg.tenant_column,
              cfg.include_descendants::text)
  FROM cfg CROSS JOIN generated g
  LEFT JOIN pg_policy p ON p.polrelid = cfg.rel AND p.polname = g.polname
 WHERE (g.polname <> 'tenancy_descendants_read' OR cfg.include_descendants)
   AND (p.oid IS NULL OR NOT p.polpermissive
        OR (g.polname = 'tenancy_isolation' AND (p.polcmd <> '*' OR p.polroles <> '{0}'
            OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM cfg.policy_qual
            OR pg_get_expr(p.polwithcheck, p.polrelid) IS DISTINCT FROM cfg.policy_check))
        OR (g.polname = 'tenancy_descendants_read' AND (p.polcmd <> 'r' OR p.polroles <> '{0}'
            OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM cfg.descendants_qual))
        OR (g.polname = 'tenancy_admin_cross_tenant' AND (p.polcmd <> 'r'
            OR p.polroles <> ARRAY[(SELECT oid FROM pg_roles WHERE rolname = 'tenancy_admin')]
            OR pg_get_expr(p.polqual, p.polrelid) IS DISTINCT FROM cfg.cross_tenant_qual)))
UNION ALL
-- 3b. an extra permissive policy: permissive policies are OR-ed, so it widens what the table shows
SELECT cfg.relid, format('extra permissive policy %I widens access beyond the tenant', p.polname),
       format('DROP POLICY %I ON %s; (or recreate it AS RESTRICTIVE)', p.polname, cfg.relid)
  FROM cfg JOIN pg_policy p ON p.polrelid = cfg.rel
 WHERE p.polpermissive AND p.polname NOT IN (SELECT polname FROM generated)
UNION ALL
-- 3c. a descendants policy left on a table isolated without include_descendants
SELECT cfg.relid, 'policy tenancy_descendants_read exists but the table was isolated without include_descendants',
       format('SELECT tenancy.enable_isolation(%L, %L, false);', cfg.relid::text, cfg.tenant_column)
  FROM cfg JOIN pg_policy p ON p.polrelid = cfg.rel AND p.polname = 'tenancy_descendants_read'
 WHERE NOT cfg.include_descendants
UNION ALL
-- 4. a partition or inheritance child of an isolated table that is reachable directly without the policy
SELECT i.inhrelid::regclass,
       format('%s of isolated table %s has no isolation policy',
              CASE WHEN k.relispartition THEN 'partition' ELSE 'inheritance child' END, i.inhparent::regclass),
       format('SELECT tenancy.enable_isolation(%L, %L, %s);', cfg.root::text, cfg.tenant_column,
              cfg.include_descendants::text)
  FROM cfg JOIN pg_inherits i ON i.inhparent = cfg.rel JOIN pg_class k ON k.oid = i.inhrelid
 WHERE NOT EXISTS (SELECT 1 FROM cfg c2 WHERE c2.rel = i.inhrelid)
UNION ALL
-- 5. a view over an isolated table that runs with its owner's rights and lets quals be pushed into it
SELECT DISTINCT v.oid::regclass,
       CASE v.relkind WHEN 'm'
            THEN format('materialized view over isolated table %s stores its rows outside row level security', cfg.relid)
            ELSE format('view over isolated table %s is neither security_invoker nor security_barrier', cfg.relid) END,
       CASE v.relkind WHEN 'm' THEN format('DROP MATERIALIZED VIEW %s; (its rows are stored outside row level security)', v.oid::regclass)
            ELSE format('ALTER VIEW %s SET (security_invoker = true);', v.oid::regclass) END
  FROM cfg JOIN pg_depend d ON d.refclassid = 'pg_class'::regclass AND d.refobjid = cfg.rel
                            AND d.classid = 'pg_rewrite'::regclass
  JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class v ON v.oid = r.ev_class
 WHERE v.oid <> cfg.rel AND v.relkind IN ('v', 'm')
   AND (v.relkind = 'm' OR NOT EXISTS (
        SELECT 1 FROM pg_options_to_table(v.reloptions) o
         WHERE o.option_name IN ('security_invoker', 'security_barrier')
           AND lower(o.option_value) IN ('true', 'on', 'yes', '1')))
UNION ALL
-- 6. a SECURITY DEFINER function owned by a role that bypasses row level security and callable by the app role
SELECT NULL::regclass,
       format('SECURITY DEFINER function %s is owned by %I, which bypasses row level security, and tenancy_app can execute it',
              p.oid::regprocedure, o.rolname),
       format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC, tenancy_app; or ALTER FUNCTION %s OWNER TO a role without BYPASSRLS;',
              p.oid::regprocedure, p.oid::regprocedure)
  FROM pg_proc p JOIN pg_roles o ON o.oid = p.proowner JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.prosecdef AND (o.rolsuper OR o.rolbypassrls)
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid
                     AND e.deptype = 'e')
   AND has_function_privilege('tenancy_app', p.oid, 'EXECUTE')
UNION ALL
-- 7. an application role that bypasses row level security (or owns an isolated table, so it can switch it off)
SELECT NULL::regclass,
       format('role %I is a member of tenancy_app and has %s', r.rolname,
              CASE WHEN r.rolsuper THEN 'SUPERUSER' ELSE 'BYPASSRLS' END),
       format('ALTER ROLE %I %s;', r.rolname, CASE WHEN r.rolsuper THEN 'NOSUPERUSER' ELSE 'NOBYPASSRLS' END)
  FROM pg_roles r WHERE r.oid IN (SELECT roleid FROM app_members) AND (r.rolsuper OR r.rolbypassrls)
UNION ALL
SELECT cfg.relid, format('table is owned by %I, a member of tenancy_app, which can disable row level security', o.rolname),
       format('ALTER TABLE %s OWNER TO a role that is not an application role;', cfg.relid)
  FROM cfg JOIN pg_class k ON k.oid = cfg.rel JOIN pg_roles o ON o.oid = k.relowner
 WHERE k.relowner IN (SELECT roleid FROM app_members)
UNION ALL
-- 8. a unique key (primary key, unique constraint or index, exclusion constraint) without the tenant column among
-- its key columns: uniqueness is checked across every tenant's rows, so an INSERT (23505) tells whether another
-- tenant has that value. Inherent to row level security; a key that includes the tenant column only conflicts
-- within the tenant. Partition indexes are reported once, on the partitioned table.
SELECT cfg.relid,
       pg_catalog.format('unique key %I does not include the tenant column %I: an insert reveals whether another tenant has the same value',
                         ik.relname, cfg.tenant_column),
       CASE WHEN con.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u']::pg_catalog."char"[])
            THEN pg_catalog.format('ALTER TABLE %s DROP CONSTRAINT %I, ADD CONSTRAINT %I %s (%I, %s);', cfg.relid,
                                   con.conname, con.conname,
                                   CASE con.contype WHEN 'p' THEN 'PRIMARY KEY' ELSE 'UNIQUE' END,
                                   cfg.tenant_column, key_columns.list)
            WHEN con.contype OPERATOR(pg_catalog.=) 'x'
            THEN pg_catalog.format('recreate exclusion constraint %I with (%I WITH =) as its first element',
                                   con.conname, cfg.tenant_column)
            ELSE pg_catalog.format('DROP INDEX %s; CREATE UNIQUE INDEX %I ON %s (%I, %s)%s;', x.indexrelid::pg_catalog.regclass,
                                   ik.relname, cfg.relid, cfg.tenant_column, key_columns.list,
                                   CASE WHEN x.indpred IS NOT NULL
                                        THEN ' WHERE ' OPERATOR(pg_catalog.||) pg_catalog.pg_get_expr(x.indpred, x.indrelid, true)
                                        ELSE '' END) END
  FROM cfg JOIN pg_catalog.pg_index x ON x.indrelid OPERATOR(pg_catalog.=) cfg.rel
  JOIN pg_catalog.pg_class ik ON ik.oid OPERATOR(pg_catalog.=) x.indexrelid
  LEFT JOIN pg_catalog.pg_constraint con ON con.conindid OPERATOR(pg_catalog.=) x.indexrelid
        AND con.conrelid OPERATOR(pg_catalog.=) cfg.rel AND con.contype OPERATOR(pg_catalog.=) ANY (ARRAY['p', 'u', 'x']::pg_catalog."char"[])
  CROSS JOIN LATERAL (
    SELECT pg_catalog.string_agg(pg_catalog.pg_get_indexdef(x.indexrelid, n, true), ', ' ORDER BY n) AS list
      FROM pg_catalog.generate_series(1, x.indnkeyatts::pg_catalog.int4) AS n
     WHERE x.indkey[n OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.=) 0
        OR pg_catalog.pg_get_indexdef(x.indexrelid, n, true) OPERATOR(pg_catalog.<>) pg_catalog.quote_ident(cfg.tenant_column)
  ) AS key_columns
 WHERE (x.indisunique OR x.indisexclusion)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_inherits pi WHERE pi.inhrelid OPERATOR(pg_catalog.=) x.indexrelid)
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.generate_series(0, x.indnkeyatts::pg_catalog.int4 OPERATOR(pg_catalog.-) 1) AS k
                     JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) cfg.rel
                      AND a.attnum OPERATOR(pg_catalog.=) x.indkey[k]
                    WHERE a.attname OPERATOR(pg_catalog.=) cfg.tenant_column)
ORDER BY 1 NULLS LAST, 2
$$;
COMMENT ON FUNCTION tenancy.verify_isolation() IS
  'every problem that lets rows of isolated tables be reached around their policy, with a fix hint; empty when sound';

REVOKE ALL ON FUNCTION tenancy.verify_isolation() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.verify_isolation() TO tenancy_admin;
