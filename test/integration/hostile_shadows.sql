-- test/integration/hostile_shadows.sql
-- Shadow generator of hostile_environment.sh, run with psql \i by the attacker in its own session BEFORE it moves
-- its search_path (so this file may use unqualified names: nothing it creates is visible yet). Emits and \gexec's
-- CREATE statements, in this order: function shadows, aggregate shadows, operator shadows, then type shadows (last:
-- a pg_temp type is visible at once, before pg_catalog, so no unqualified type name may follow it).
-- psql variables:
--   schema  'attacker' or 'pg_temp': where the shadows go
--   fnames  space-separated function/aggregate names to shadow (every pg_catalog overload of each)
--   tnames  space-separated pg_catalog type names: operator argument types, and the type shadows
--   funcs   'on' or 'off': functions, aggregates and operators
--   types   'composite' (a composite type plus IMMUTABLE implicit casts into it from every type that casts to the
--           real one, and from text/varchar/bpchar/name), 'domain' (a domain over the real type whose CHECK runs a
--           shadow), or 'none'
-- Every shadow calls hostile_canary.report('<what>') (a WARNING "SHADOW RAN", plus escalation attempts), then
-- behaves like the real object where it can, so the extension's code goes on to its next name. A CREATE that
-- PostgreSQL refuses (a signature plpgsql cannot take) is skipped: the caller counts what exists afterwards.
SET client_min_messages = error;

-- Concrete types substituted for "any" (count("any"), format(text, VARIADIC "any"), jsonb_build_object(VARIADIC
-- "any"), ...): plpgsql cannot take "any", so each such function gets one overload per core type (an exact match
-- beats "any" in function resolution).
WITH core(t) AS (
  SELECT unnest(ARRAY['pg_catalog.text', 'pg_catalog.name', 'pg_catalog.uuid', 'pg_catalog.int4', 'pg_catalog.int8',
                      'pg_catalog.oid', 'pg_catalog.jsonb', 'pg_catalog.numeric', 'pg_catalog.bool',
                      'pg_catalog.timestamptz', 'pg_catalog.regclass', 'pg_catalog.bytea'])
), bad(oid) AS (
  SELECT t.oid FROM pg_type t
   WHERE t.typnamespace = 'pg_catalog'::regnamespace
     AND t.typname IN ('internal', 'cstring', 'trigger', 'event_trigger', 'language_handler', 'fdw_handler',
                       'table_am_handler', 'index_am_handler', 'tsm_handler', 'unknown', 'pg_ddl_command')
), fn AS (
  SELECT p.oid, p.proname, p.provolatile, p.proretset, p.prorettype, p.pronargs, p.provariadic, p.prokind,
         p.proargnames, p.proargmodes, pg_get_function_arguments(p.oid) AS args,
         pg_get_function_identity_arguments(p.oid) AS iargs, pg_get_function_result(p.oid) AS res,
         (SELECT format('%I.%I', n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE t.oid = p.prorettype) AS rtype
    FROM pg_proc p
   WHERE :'funcs' = 'on' AND p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind IN ('f', 'a')
     AND p.proname = ANY (string_to_array(:'fnames', ' ')::name[])
     AND NOT EXISTS (SELECT FROM unnest(coalesce(p.proallargtypes, p.proargtypes::oid[]) || p.prorettype) u(o)
                      WHERE u.o IN (SELECT oid FROM bad))
     AND (p.prokind = 'f' OR EXISTS (SELECT FROM pg_aggregate a WHERE a.aggfnoid = p.oid AND a.aggkind = 'n'))
), subst AS (
  SELECT f.*, s.ord,
         replace(replace(f.args, 'VARIADIC "any"', 'VARIADIC pg_catalog.text[]'), '"any"', coalesce(s.t, '')) AS sargs,
         replace(replace(f.iargs, 'VARIADIC "any"', 'VARIADIC pg_catalog.text[]'), '"any"', coalesce(s.t, '')) AS siargs
    FROM fn f
   CROSS JOIN LATERAL (SELECT NULL::text AS t, 0 AS ord WHERE f.args NOT LIKE '%"any"%'
                       UNION ALL
                       SELECT c.t, row_number() OVER () FROM core c WHERE f.args LIKE '%"any"%') s
), plain AS (
  SELECT DISTINCT ON (proname, sargs) *,
         (SELECT string_agg(CASE WHEN i = pronargs AND provariadic <> 0 THEN 'VARIADIC ' ELSE '' END || '$' || i, ', ')
            FROM generate_series(1, pronargs) i) AS call,
         (SELECT string_agg(quote_ident(proargnames[i]), ', ')
            FROM generate_subscripts(proargmodes, 1) i WHERE proargmodes[i] IN ('o', 'b')) AS outs
    FROM subst WHERE prokind = 'f'
   ORDER BY proname, sargs, ord
), agg AS (
  SELECT DISTINCT ON (proname, siargs) *, row_number() OVER () AS k FROM subst WHERE prokind = 'a'
   ORDER BY proname, siargs, ord
), optypes(oid) AS (
  SELECT t.oid FROM pg_type t
   WHERE t.typnamespace = 'pg_catalog'::regnamespace
     AND (t.typname = ANY (string_to_array(:'tnames', ' ')::name[])
          OR t.typname IN ('anyarray', 'anyelement', 'anynonarray', 'anyenum', 'anycompatible', 'anycompatiblearray',
                           'anyrange', 'anymultirange', 'anycompatiblerange'))
), op AS (
  SELECT o.oid, o.oprname, o.oprleft, o.oprright, pr.proname AS fname,
         (SELECT format('%I.%I', n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE t.oid = o.oprleft) AS l,
         (SELECT format('%I.%I', n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE t.oid = o.oprright) AS r,
         (SELECT format('%I.%I', n.nspname, t.typname) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
           WHERE t.oid = o.oprresult) AS res
    FROM pg_operator o JOIN pg_proc pr ON pr.oid = o.oprcode
   WHERE :'funcs' = 'on' AND o.oprnamespace = 'pg_catalog'::regnamespace AND o.oprcode <> 0
     AND (o.oprleft = 0 OR o.oprleft IN (SELECT oid FROM optypes)) AND o.oprright IN (SELECT oid FROM optypes)
     AND o.oprresult NOT IN (SELECT oid FROM bad)
), ty AS (
  SELECT t.oid, t.typname, format('pg_catalog.%I', t.typname) AS real
    FROM pg_type t
   WHERE :'types' <> 'none' AND t.typnamespace = 'pg_catalog'::regnamespace AND t.typtype IN ('b', 'r', 'm', 'e')
     AND t.typname = ANY (string_to_array(:'tnames', ' ')::name[]) AND t.typname NOT LIKE '\_%'
), casts AS (
  SELECT DISTINCT ty.oid, ty.typname, format('%I.%I', n.nspname, s.typname) AS src, s.oid AS src_oid
    FROM ty
    JOIN pg_type s ON s.oid IN (SELECT c.castsource FROM pg_cast c WHERE c.casttarget = ty.oid)
                   OR s.oid IN (ty.oid, 'text'::regtype, 'varchar'::regtype, 'bpchar'::regtype, 'name'::regtype)
    JOIN pg_namespace n ON n.oid = s.typnamespace
   WHERE s.typtype IN ('b', 'r', 'm', 'e', 'd') AND s.typname NOT IN ('unknown', 'cstring', 'internal')
), stmts(grp, sub, key, stmt) AS (
  -- 1. functions: same signature (and volatility: an IMMUTABLE one is folded at plan time), non-strict
  SELECT 1, 0, proname || '(' || sargs || ')',
         format('CREATE OR REPLACE FUNCTION %s.%I(%s) RETURNS %s LANGUAGE plpgsql %s SET search_path = pg_catalog, pg_temp AS %L',
                :'schema', proname, sargs, res,
                CASE provolatile WHEN 'i' THEN 'IMMUTABLE' WHEN 's' THEN 'STABLE' ELSE 'VOLATILE' END,
                format('BEGIN PERFORM hostile_canary.report(%L); ', format('%s.%s(%s)', :'schema', proname, sargs)) ||
                CASE WHEN proretset THEN format('RETURN QUERY SELECT * FROM pg_catalog.%I(%s);', proname, call)
                     WHEN prorettype = 'void'::regtype THEN format('PERFORM pg_catalog.%I(%s);', proname, call)
                     WHEN outs IS NOT NULL THEN format('SELECT * INTO %s FROM pg_catalog.%I(%s);', outs, proname, call)
                     ELSE format('RETURN pg_catalog.%I(%s);', proname, coalesce(call, ''))
                END || ' END')
    FROM plain
  UNION ALL
  -- 2. aggregates: a transition and a final function that report (the final one runs even over no rows)
  SELECT 2, 0, proname || '(' || siargs || ')',
         format('CREATE OR REPLACE FUNCTION %s.hostile_agg_s%s(hostile_state %s%s) RETURNS %s LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS %L',
                :'schema', k, rtype, CASE WHEN siargs = '' THEN '' ELSE ', ' || siargs END, rtype,
                format('BEGIN PERFORM hostile_canary.report(%L); RETURN %s; END',
                       format('%s.%s(%s) [aggregate]', :'schema', proname, siargs),
                       CASE WHEN proname = 'count' AND siargs = '' THEN 'pg_catalog.int8inc($1)' ELSE '$1' END))
    FROM agg
  UNION ALL
  SELECT 2, 1, proname || '(' || siargs || ')',
         format('CREATE OR REPLACE FUNCTION %s.hostile_agg_f%s(hostile_state %s) RETURNS %s LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS %L',
                :'schema', k, rtype, rtype,
                format('BEGIN PERFORM hostile_canary.report(%L); RETURN $1; END',
                       format('%s.%s(%s) [aggregate final]', :'schema', proname, siargs)))
    FROM agg
  UNION ALL
  SELECT 2, 2, proname || '(' || siargs || ')',
         format('CREATE AGGREGATE %s.%I(%s) (SFUNC = %s.hostile_agg_s%s, STYPE = %s, FINALFUNC = %s.hostile_agg_f%s%s)',
                :'schema', proname, CASE WHEN siargs = '' THEN '*' ELSE siargs END, :'schema', k, rtype, :'schema', k,
                CASE WHEN proname = 'count' AND siargs = '' THEN ', INITCOND = ''0''' ELSE '' END)
    FROM agg
  UNION ALL
  -- 3. operators: same name and argument types, the real operator's function called qualified
  SELECT 3, 0, oprname || coalesce(l, '') || r,
         format('CREATE OR REPLACE FUNCTION %s.hostile_op%s(%s) RETURNS %s LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS %L',
                :'schema', oid, CASE WHEN l IS NULL THEN r ELSE l || ', ' || r END, res,
                format('BEGIN PERFORM hostile_canary.report(%L); RETURN pg_catalog.%I(%s); END',
                       format('%s.%s(%s)', :'schema', oprname, CASE WHEN l IS NULL THEN 'NONE, ' || r ELSE l || ', ' || r END),
                       fname, CASE WHEN l IS NULL THEN '$1' ELSE '$1, $2' END))
    FROM op
  UNION ALL
  SELECT 3, 1, oprname || coalesce(l, '') || r,
         format('CREATE OPERATOR %s.%s (%sRIGHTARG = %s, FUNCTION = %s.hostile_op%s)',
                :'schema', oprname, CASE WHEN l IS NULL THEN '' ELSE 'LEFTARG = ' || l || ', ' END, r, :'schema', oid)
    FROM op
  UNION ALL
  -- 4. types named like catalog types
  SELECT 4, 0, typname, format('CREATE TYPE %s.%I AS (hostile pg_catalog.int4)', :'schema', typname)
    FROM ty WHERE :'types' = 'composite'
  UNION ALL
  SELECT 4, 1, typname || src,
         format('CREATE OR REPLACE FUNCTION %s.hostile_cast%s_%s(v %s) RETURNS %s.%I LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS %L',
                :'schema', oid, src_oid, src, :'schema', typname,
                format('BEGIN PERFORM hostile_canary.report(%L); RETURN NULL; END',
                       format('cast %s -> %s.%s', src, :'schema', typname)))
    FROM casts WHERE :'types' = 'composite'
  UNION ALL
  SELECT 4, 2, typname || src,
         format('CREATE CAST (%s AS %s.%I) WITH FUNCTION %s.hostile_cast%s_%s(%s) AS IMPLICIT',
                src, :'schema', typname, :'schema', oid, src_oid, src)
    FROM casts WHERE :'types' = 'composite'
  UNION ALL
  SELECT 4, 0, typname,
         format('CREATE OR REPLACE FUNCTION %s.hostile_check%s(v %s) RETURNS pg_catalog.bool LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS %L',
                :'schema', oid, real,
                format('BEGIN PERFORM hostile_canary.report(%L); RETURN true; END',
                       format('domain %s.%s', :'schema', typname)))
    FROM ty WHERE :'types' = 'domain'
  UNION ALL
  SELECT 4, 1, typname,
         format('CREATE DOMAIN %s.%I AS %s CHECK (%s.hostile_check%s(VALUE))', :'schema', typname, real, :'schema', oid)
    FROM ty WHERE :'types' = 'domain'
)
SELECT stmt FROM stmts ORDER BY grp, key, sub \gexec

RESET client_min_messages;
