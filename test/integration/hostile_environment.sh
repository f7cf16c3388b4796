#!/usr/bin/env bash
# test/integration/hostile_environment.sh
# The extension in a hostile environment (issue #15): real login roles over TCP (an ordinary role with no tenancy
# role, a tenancy_app member, a tenancy_admin member) put an attacker schema and pg_temp first in their search_path,
# both full of SHADOWS of every function, aggregate, operator and type name the extension's SQL uses (names taken
# from the catalog, from sql/ and from the string literals of extension/pg/*.cpp), then
#   - run every function of schema tenancy that the role may execute (enumerated from the catalog with
#     has_function_privilege, arguments generated from the argument types and names: a function added later is
#     covered without editing this test; a type nobody can generate fails the test),
#   - fire every event trigger of the database with the DDL that triggers it (CREATE TABLE, CREATE TEMP TABLE,
#     PARTITION OF an isolated table, ATTACH, CREATE TABLE AS, SELECT INTO, ALTER TABLE, DROP TABLE, ...),
#   - write to isolated tables (row triggers, TRUNCATE),
# in three passes (search_path = pg_temp, attacker, "$user", public, pg_catalog with pg_temp composite types and
# implicit casts; attacker, pg_catalog with attacker domains; pg_temp, pg_catalog with pg_temp domains).
# A shadow that runs raises WARNING "SHADOW RAN: <shadow> as <current_user> (session ..., phase <what ran it>)" and
# tries to escalate (ALTER ROLE SUPERUSER, GRANT, write a superuser-only table). The test fails if any shadow ran
# outside the control phase (where the driver calls shadows on purpose, to prove they work), if a role gained an
# attribute or a membership, if an event trigger was not exercised, or if an argument cannot be generated.
# Plus: hierarchy functions of a tenancy_app member whose tenant has a parent and a child, context not surviving
# COMMIT (set_tenant, SET LOCAL app.tenant_id, session-level app.tenant_id), direct reads of an isolated table's
# partitions. Only SQL of the extension is exercised (not tenancyd).
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

T0=$(date +%s)
W="$TENANCY_TMP/hostile"
mkdir -p "$W"
head -c 48 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$W/context.secret"
chmod 600 "$W/context.secret"
[ "$(id -u)" = 0 ] && chown -R postgres: "$W"

start_cluster hostile "track_functions = 'all'" "wal_level = logical" \
  "tenancy.context_secret_file = '$W/context.secret'" "log_min_messages = warning"
SERVER_LOG="$CLUSTER_DIR.log"
su_psql() { cluster_psql -d app "$@"; }
# A real login over TCP; errors do not stop the script (they are recorded), stderr joins stdout.
role_psql() { # role_psql ROLE FILE
  as_pg psql -X -h 127.0.0.1 -p "$CLUSTER_PORT" -U "$1" -d app -v ON_ERROR_STOP=0 -f "$2" 2>&1
}
fail_msgs=()
fail() { fail_msgs+=("$*"); echo "FAIL: $*"; }
notes=()
note() { notes+=("$*"); echo "NOTE: $*"; }

PLAIN=hostile_plain
APP=hostile_app
ADMIN=hostile_admin
ROLES="$PLAIN $APP $ADMIN"

cluster_psql -d postgres -c "CREATE DATABASE app"
su_psql <<SQL >/dev/null
CREATE EXTENSION tenancy;
CREATE ROLE $PLAIN LOGIN;
CREATE ROLE $APP LOGIN IN ROLE tenancy_app;
CREATE ROLE $ADMIN LOGIN IN ROLE tenancy_admin;

-- What a shadow calls when it runs: a WARNING naming it, who it runs as and what ran it (hostile.phase, set by the
-- driver before each step), then attempts that only succeed with more rights than the attacker's.
CREATE SCHEMA hostile_canary;
GRANT USAGE ON SCHEMA hostile_canary TO PUBLIC;
CREATE TABLE hostile_canary.pwned (shadow text, ran_as text, session_role text, phase text);
CREATE FUNCTION hostile_canary.report(shadow pg_catalog.text) RETURNS pg_catalog.bool
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS \$\$
DECLARE
  phase text := pg_catalog.current_setting('hostile.phase', true);
BEGIN
  RAISE WARNING 'SHADOW RAN: % as % (session %, phase %)', shadow, current_user, session_user, phase;
  BEGIN
    INSERT INTO hostile_canary.pwned VALUES (shadow, current_user, session_user, phase);
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  BEGIN
    EXECUTE pg_catalog.format('ALTER ROLE %I SUPERUSER BYPASSRLS CREATEROLE', session_user);
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  BEGIN
    EXECUTE pg_catalog.format('GRANT tenancy_admin, pg_execute_server_program TO %I', session_user);
  EXCEPTION WHEN OTHERS THEN NULL;
  END;
  RETURN true;
END
\$\$;
GRANT EXECUTE ON FUNCTION hostile_canary.report(pg_catalog.text) TO PUBLIC;

-- The attacker's own schema (the ordinary role owns it; everyone may use what it holds).
CREATE SCHEMA attacker AUTHORIZATION $PLAIN;
-- Where the roles create tables (CREATE TABLE fires the event triggers).
CREATE SCHEMA playground;
GRANT USAGE, CREATE ON SCHEMA playground TO $PLAIN, $APP, $ADMIN;

-- The application: a plain isolated table, a hash-partitioned isolated table.
CREATE TABLE public.projects (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL,
                              name text NOT NULL, secret text);
CREATE TABLE public.events (tenant_id uuid NOT NULL, seq bigint NOT NULL, body bytea, PRIMARY KEY (tenant_id, seq))
  PARTITION BY HASH (tenant_id);
SELECT format('CREATE TABLE public.events_p%s PARTITION OF public.events FOR VALUES WITH (MODULUS 4, REMAINDER %s)', i, i)
  FROM generate_series(0, 3) i \gexec
SELECT tenancy.enable_isolation('public.projects'), tenancy.enable_isolation('public.events');
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON public.projects, public.events, public.events_p0, public.events_p1,
  public.events_p2, public.events_p3 TO tenancy_app, tenancy_admin;
-- Each role owns a partitioned table (PARTITION OF and ATTACH PARTITION need the parent's owner), isolated except
-- the ordinary role's: an isolated table's owner must be a member of tenancy_app or tenancy_admin (its policies call
-- tenancy functions; import and erasure write as the owner), so the extension cannot isolate what that role owns.
SELECT format('CREATE TABLE playground.ev_%s (tenant_id uuid NOT NULL, v text) PARTITION BY HASH (tenant_id)', s),
       CASE WHEN r <> '$PLAIN' THEN format('SELECT tenancy.enable_isolation(%L)', 'playground.ev_' || s) END,
       format('ALTER TABLE playground.ev_%s OWNER TO %I', s, r)
  FROM unnest(string_to_array('$ROLES', ' ')) r, replace(r, 'hostile_', '') s \gexec
-- New tables with a tenant_id column are isolated by the ddl_command_end trigger as the extension owner.
ALTER DATABASE app SET tenancy.auto_isolate = 'tenant_id';

CREATE TABLE hostile_canary.baseline AS
  SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication,
         ARRAY(SELECT m.roleid::regrole::text FROM pg_auth_members m WHERE m.member = r.oid ORDER BY 1) AS member_of
    FROM pg_roles r WHERE r.rolname IN ('$PLAIN', '$APP', '$ADMIN');

-- Driver generation (superuser only): fixtures per role and pass, and the argument generator.
CREATE SCHEMA hostile_gen;
CREATE TABLE hostile_gen.fixture (role text, pass text, k text, v text, PRIMARY KEY (role, pass, k));
SQL

# ---------------------------------------------------------------------------------------------------------------
# Names to shadow. Functions: every identifier followed by "(" in the SQL sources (install parts, upgrade steps,
# released scripts) and in the string literals of the C++ sources, that names a pg_catalog function or aggregate,
# plus a generous fixed list. Types: every word of the same sources that names a pg_catalog type, plus a fixed list.
ROOT=$TENANCY_ROOT
src_words() {
  { cat "$ROOT"/sql/src/*.sql "$ROOT"/sql/upgrade/*.sql "$ROOT"/sql/tenancy--*.sql 2>/dev/null
    cat "$ROOT"/extension/pg/*.cpp | grep -oE '"([^"\\]|\\.)*"'
  } | tr 'A-Z' 'a-z'
}
FN_WORDS=$(src_words | grep -oE '[a-z_][a-z0-9_]*[[:space:]]*\(' | tr -d '( \t' | sort -u | tr '\n' ' ')
ALL_WORDS=$(src_words | grep -oE '[a-z_][a-z0-9_]*' | sort -u | tr '\n' ' ')
FN_FIXED="now count length lower upper btrim ltrim rtrim concat concat_ws jsonb_build_object jsonb_build_array
 json_build_object format gen_random_uuid encode decode digest sha256 sha224 sha384 sha512 md5 sum max min avg
 array_agg string_agg jsonb_agg jsonb_object_agg json_agg bool_and bool_or every replace substr left right strpos
 split_part regexp_replace regexp_match regexp_matches quote_ident quote_literal quote_nullable format_type to_jsonb
 to_json jsonb_typeof jsonb_set jsonb_insert jsonb_strip_nulls jsonb_each jsonb_each_text jsonb_array_elements
 jsonb_array_elements_text jsonb_object_keys jsonb_array_length jsonb_extract_path jsonb_extract_path_text
 jsonb_populate_record jsonb_to_record row_to_json array_length array_append array_prepend array_cat
 array_position array_positions array_remove array_to_string string_to_array cardinality unnest generate_series
 generate_subscripts current_setting set_config pg_advisory_xact_lock pg_advisory_lock pg_try_advisory_xact_lock
 pg_try_advisory_lock pg_advisory_unlock hashtext hashtextextended random clock_timestamp statement_timestamp
 transaction_timestamp date_trunc date_part to_char to_timestamp make_interval age justify_interval abs floor ceil
 round trunc mod power greatest least nullif nextval currval setval pg_get_expr pg_get_indexdef pg_get_constraintdef
 pg_relation_size pg_total_relation_size pg_table_size has_table_privilege has_function_privilege
 has_schema_privilege has_column_privilege pg_has_role pg_partition_tree pg_partition_root pg_partition_ancestors
 pg_event_trigger_ddl_commands pg_event_trigger_dropped_objects convert_to convert_from octet_length char_length
 bit_length starts_with pg_typeof num_nonnulls num_nulls text name oid uuid int4 int8 int2 numeric bool jsonb
 json bytea timestamptz regclass to_regclass to_regtype to_regproc to_regrole to_regnamespace pg_backend_pid
 txid_current pg_current_xact_id current_database current_schema current_schemas version pg_sleep pg_notify
 pg_get_userbyid obj_description col_description pg_column_size row_number rank lag lead"
TY_FIXED="name text oid uuid jsonb json regclass regproc regprocedure regtype regrole regnamespace int2 int4 int8
 float4 float8 numeric bool bytea timestamptz timestamp date interval char varchar bpchar inet pg_lsn xid tid"
printf '%s\n' "$FN_WORDS $FN_FIXED" | tr ' ' '\n' | grep -v '^$' | sort -u | tr '\n' ' ' > "$W/fn_candidates"
printf '%s\n' "$ALL_WORDS $TY_FIXED" | tr ' ' '\n' | grep -v '^$' | sort -u | tr '\n' ' ' > "$W/ty_candidates"
# Keep the names that exist in pg_catalog.
FNAMES=$(su_psql -At <<SQL
SELECT string_agg(DISTINCT proname, ' ' ORDER BY proname) FROM pg_proc
 WHERE pronamespace = 'pg_catalog'::regnamespace AND prokind IN ('f', 'a')
   AND proname = ANY (string_to_array('$(cat "$W/fn_candidates")', ' ')::name[])
SQL
)
TNAMES=$(su_psql -At <<SQL
SELECT string_agg(DISTINCT typname, ' ' ORDER BY typname) FROM pg_type
 WHERE typnamespace = 'pg_catalog'::regnamespace AND typtype IN ('b', 'r', 'm', 'e') AND typname NOT LIKE '\_%'
   AND typname = ANY (string_to_array('$(cat "$W/ty_candidates")', ' ')::name[])
SQL
)
echo "shadowed function names: $(wc -w <<<"$FNAMES"); type names: $(wc -w <<<"$TNAMES")"
echo "types: $TNAMES"

cp "$ROOT/test/integration/hostile_shadows.sql" "$W/shadows.sql"
[ "$(id -u)" = 0 ] && chown -R postgres: "$W"

# The attacker schema: created by the ordinary role itself (functions, aggregates, operators, domains).
cat > "$W/attacker_setup.sql" <<SQL
SET hostile.phase = 'attacker setup';
\set schema attacker
\set fnames '$FNAMES'
\set tnames '$TNAMES'
\set funcs on
\set types domain
\i $W/shadows.sql
GRANT USAGE ON SCHEMA attacker TO PUBLIC;
SQL
t=$(date +%s)
role_psql "$PLAIN" "$W/attacker_setup.sql" > "$W/attacker_setup.log"
ATTACKER_COUNTS=$(su_psql -At <<'SQL'
SELECT format('%s functions, %s aggregates, %s operators, %s domains',
  (SELECT count(*) FROM pg_proc WHERE pronamespace = 'attacker'::regnamespace AND prokind = 'f'
      AND proname NOT LIKE 'hostile\_%'),
  (SELECT count(*) FROM pg_proc WHERE pronamespace = 'attacker'::regnamespace AND prokind = 'a'),
  (SELECT count(*) FROM pg_operator WHERE oprnamespace = 'attacker'::regnamespace),
  (SELECT count(*) FROM pg_type WHERE typnamespace = 'attacker'::regnamespace AND typtype = 'd'))
SQL
)
echo "attacker schema shadows: $ATTACKER_COUNTS ($(( $(date +%s) - t )) s)"

# ---------------------------------------------------------------------------------------------------------------
# Argument generation (superuser side, ordinary search_path). Generic by type, refined by argument name; the override
# table is for (function, argument) pairs that need one specific valid value. A type with no rule -> NOGEN (fails).
su_psql <<'SQL' >/dev/null
CREATE TABLE hostile_gen.override (fn name, arg text, fixture text, literal text, PRIMARY KEY (fn, arg));
INSERT INTO hostile_gen.override VALUES
  ('import_tenant', 'doc', 'export_doc', NULL),
  ('import_tenant', 'new_id', 'exported', NULL),
  ('import_tenant_copied', 'manifest', 'export_manifest', NULL),
  ('import_tenant_copied', 'new_id', 'exported', NULL),
  ('import_tables', 'manifest', 'export_manifest', NULL),
  ('_check_ancestry', 'forbidden', 'child', NULL),
  ('move_source_finish', 'subscription_oid', NULL, '0'),
  ('move_source_finish', 'outcome', NULL, 'rolled_back'),
  ('get_tenant_by_slug', 'slug', 'tenant_slug', NULL),
  ('token_permits', 'action', NULL, 'tenant.read'),
  ('authorize_token', 'action', NULL, 'tenant.read');

-- Whole statements for functions no generic call can run: export_table returns SETOF record without OUT
-- parameters (a column definition list is needed): run the COPY statements export_tables hands out for it, as they
-- are (their column types are qualified, so the attacker's own "text" in this session does not apply).
CREATE TABLE hostile_gen.stmt_override (fn regprocedure PRIMARY KEY, stmt text);
INSERT INTO hostile_gen.stmt_override VALUES
  ('tenancy.export_table(uuid, regclass)',
   'SELECT e.copy_sql FROM tenancy.export_tables(''{tenant}''::pg_catalog.uuid) e \gexec');

CREATE FUNCTION hostile_gen.fx(r text, p text, key text) RETURNS text LANGUAGE sql STABLE AS
  $$ SELECT v FROM hostile_gen.fixture WHERE role = r AND pass = p AND k = key $$;

CREATE FUNCTION hostile_gen.arg(fname name, argname text, typ oid, r text, p text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t pg_type;
  tq text;
  n text := lower(coalesce(argname, ''));
  v text;
  o hostile_gen.override;
BEGIN
  SELECT * INTO t FROM pg_type WHERE oid = typ;
  tq := format('%I.%I', (SELECT nspname FROM pg_namespace WHERE oid = t.typnamespace), t.typname);
  SELECT * INTO o FROM hostile_gen.override WHERE fn = fname AND arg = n;
  IF FOUND THEN
    RETURN format('%L::%s', coalesce(hostile_gen.fx(r, p, o.fixture), o.literal), tq);
  END IF;
  IF t.typtype = 'd' THEN
    v := hostile_gen.arg(fname, argname, t.typbasetype, r, p);
    RETURN CASE WHEN v LIKE 'NOGEN%' THEN v ELSE format('(%s)::%s', v, tq) END;
  ELSIF t.typtype = 'e' THEN
    RETURN format('%L::%s', (SELECT enumlabel FROM pg_enum WHERE enumtypid = typ ORDER BY enumsortorder LIMIT 1), tq);
  ELSIF t.typelem <> 0 AND t.typsubscript = 'array_subscript_handler'::regproc AND t.typlen = -1 THEN
    v := hostile_gen.arg(fname, argname, t.typelem, r, p);
    RETURN CASE WHEN v LIKE 'NOGEN%' THEN v ELSE format('ARRAY[%s]::%s', v, tq) END;
  ELSIF t.typtype = 'c' AND t.typrelid <> 0 THEN
    RETURN (SELECT format('(SELECT hostile_row FROM %I.%I hostile_row LIMIT 1)', n2.nspname, c.relname)
              FROM pg_class c JOIN pg_namespace n2 ON n2.oid = c.relnamespace WHERE c.oid = t.typrelid);
  ELSIF t.typnamespace <> 'pg_catalog'::regnamespace THEN
    RETURN 'NOGEN:' || typ::regtype::text;
  END IF;
  IF t.typname IN ('any', 'anyelement', 'anynonarray', 'anycompatible', 'anycompatiblenonarray') THEN
    RETURN '''hostile''::pg_catalog.text';
  ELSIF t.typname IN ('anyarray', 'anycompatiblearray') THEN
    RETURN 'ARRAY[''hostile''::pg_catalog.text]';
  END IF;
  v := CASE t.typname
    WHEN 'uuid' THEN CASE WHEN n LIKE '%user%' THEN hostile_gen.fx(r, p, 'user_id')
                          WHEN n LIKE '%token%' THEN hostile_gen.fx(r, p, 'token_id')
                          WHEN n LIKE 'new%' THEN gen_random_uuid()::text
                          -- a live move of a tenant without parent or children
                          WHEN fname LIKE 'move\_source\_%' OR fname LIKE 'move\_target\_%' THEN hostile_gen.fx(r, p, 'other')
                          ELSE hostile_gen.fx(r, p, 'tenant') END
    WHEN 'text' THEN CASE
      WHEN n LIKE '%slug%' THEN 'hx' || left(md5(random()::text), 12)
      WHEN n LIKE '%email%' THEN 'hostile.' || left(md5(random()::text), 8) || '@example.com'
      WHEN n LIKE '%conninfo%' THEN 'host=127.0.0.1 port=1 dbname=app connect_timeout=1'
      WHEN n LIKE '%ciphertext%' THEN hostile_gen.fx(r, p, 'ciphertext')
      WHEN n = 'token' THEN hostile_gen.fx(r, p, 'signed_token')
      WHEN n LIKE '%plaintext%' THEN 'hostile secret'
      WHEN n LIKE '%region%' THEN 'eu'
      WHEN n LIKE '%residency%' THEN 'us'
      WHEN n LIKE '%plan%' THEN 'team'
      WHEN n LIKE '%role%' THEN 'viewer'
      -- a gauge (consume, release and set_usage take it), a metric counted by rows for tracking
      WHEN n LIKE '%metric%' THEN CASE WHEN fname ~ '(track|reconcile)' THEN 'projects' ELSE 'storage_mb' END
      WHEN n LIKE '%status%' THEN 'active'
      WHEN n LIKE '%resource%' THEN 'projects'
      WHEN n LIKE '%action%' THEN 'read'
      WHEN n LIKE '%reason%' THEN 'hostile environment test'
      WHEN n LIKE '%outcome%' THEN 'aborted'
      WHEN n LIKE '%key%' THEN 'hostile-key'
      WHEN n LIKE '%name%' THEN 'Hostile'
      WHEN n = 'value' THEN 'team'
      ELSE 'hostile' END
    WHEN 'varchar' THEN 'hostile'
    WHEN 'bpchar' THEN 'hostile'
    WHEN 'json' THEN '{}'
    WHEN 'jsonb' THEN CASE WHEN n = 'changes' THEN '{"display_name": "Hostile"}'
                           WHEN n IN ('doc', 'document') THEN hostile_gen.fx(r, p, 'export_doc')
                           WHEN n LIKE '%manifest%' THEN hostile_gen.fx(r, p, 'export_manifest')
                           ELSE '{}' END
    WHEN 'bytea' THEN '\x' || CASE WHEN n LIKE '%ciphertext%' THEN hostile_gen.fx(r, p, 'ciphertext_bytea')
                                   WHEN n LIKE '%sha256%' OR n LIKE '%hash%' THEN encode(sha256(gen_random_uuid()::text::bytea), 'hex')
                                   WHEN n LIKE '%digest%' THEN hostile_gen.fx(r, p, 'token_digest')
                                   WHEN n LIKE '%plaintext%' THEN encode(convert_to('hostile secret', 'UTF8'), 'hex')
                                   WHEN n LIKE '%key%' THEN encode(gen_random_uuid()::text::bytea, 'hex')
                                   ELSE hostile_gen.fx(r, p, 'ciphertext_bytea') END
    WHEN 'name' THEN CASE WHEN n LIKE '%column%' AND n NOT LIKE '%tenant%' THEN 'secret' ELSE 'tenant_id' END
    WHEN 'regclass' THEN CASE WHEN (fname LIKE '%partition%' OR fname LIKE '%isolate\_tenant')
                                   AND fname <> 'partition_table' THEN hostile_gen.fx(r, p, 'ptable')
                              ELSE hostile_gen.fx(r, p, 'table') END
    WHEN 'oid' THEN hostile_gen.fx(r, p, 'table_oid')
    WHEN 'int2' THEN '1'
    WHEN 'int4' THEN CASE WHEN n LIKE '%partition%' THEN '4' WHEN n LIKE '%batch%' THEN '10'
                          WHEN n LIKE '%burst%' THEN '5' WHEN n LIKE '%ttl%' OR n LIKE '%second%' THEN '60'
                          ELSE '1' END
    WHEN 'int8' THEN CASE WHEN n LIKE '%max%' OR n LIKE '%limit%' THEN '1000' ELSE '1' END
    WHEN 'float4' THEN '1'
    WHEN 'float8' THEN '1'
    WHEN 'numeric' THEN '1'
    WHEN 'bool' THEN 'true'
    WHEN 'interval' THEN '1 hour'
    WHEN 'timestamptz' THEN '2026-01-01 00:00:00+00'
    WHEN 'timestamp' THEN '2026-01-01 00:00:00'
    WHEN 'date' THEN '2026-01-01'
    WHEN 'time' THEN '12:00'
    WHEN 'pg_lsn' THEN '0/0'
    WHEN 'inet' THEN '127.0.0.1'
    WHEN 'regrole' THEN r
    WHEN 'regnamespace' THEN 'public'
    WHEN 'regtype' THEN 'pg_catalog.text'
    WHEN 'regproc' THEN 'tenancy.current_tenant_id'
    WHEN 'regprocedure' THEN 'tenancy.current_tenant_id()'
    WHEN 'xid' THEN '1'
    WHEN 'xid8' THEN '1'
    WHEN 'char' THEN 'r'
    WHEN 'tid' THEN '(0,1)'
  END;
  IF v IS NULL THEN
    RETURN 'NOGEN:' || typ::regtype::text;
  END IF;
  RETURN format('%L::%s', v, tq);
END
$$;

-- The statement that calls function f, 'SKIP:<why>' (not callable from SQL) or 'NOGEN:<type>'.
CREATE FUNCTION hostile_gen.call(f oid, r text, p text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  pr pg_proc;
  innames text[];
  args text[] := '{}';
  a text;
  fq text;
BEGIN
  SELECT * INTO pr FROM pg_proc WHERE oid = f;
  IF EXISTS (SELECT FROM hostile_gen.stmt_override o WHERE o.fn = f) THEN
    RETURN (SELECT replace(o.stmt, '{tenant}', hostile_gen.fx(r, p, 'tenant')) FROM hostile_gen.stmt_override o
             WHERE o.fn = f);
  END IF;
  IF pr.prorettype IN ('trigger'::regtype, 'event_trigger'::regtype) THEN
    RETURN 'SKIP:trigger function (run by its triggers)';
  ELSIF 'internal'::regtype = ANY (pr.proargtypes::oid[]) THEN
    RETURN 'SKIP:takes internal (not callable from SQL)';
  ELSIF pr.prokind = 'w' THEN
    RETURN 'SKIP:window function';
  END IF;
  innames := CASE WHEN pr.proargmodes IS NULL THEN pr.proargnames
                  ELSE ARRAY(SELECT pr.proargnames[i] FROM generate_subscripts(pr.proargmodes, 1) i
                              WHERE pr.proargmodes[i] IN ('i', 'b', 'v') ORDER BY i) END;
  FOR i IN 0 .. pr.pronargs - 1 LOOP
    a := hostile_gen.arg(pr.proname, innames[i + 1], pr.proargtypes[i], r, p);
    IF a LIKE 'NOGEN%' THEN
      RETURN a;
    END IF;
    IF i = pr.pronargs - 1 AND pr.provariadic <> 0 THEN
      a := 'VARIADIC ' || a;
    END IF;
    args := args || a;
  END LOOP;
  fq := format('%I.%I(%s)', (SELECT nspname FROM pg_namespace WHERE oid = pr.pronamespace), pr.proname,
               array_to_string(args, ', '));
  RETURN CASE WHEN pr.prokind = 'p' THEN 'CALL ' || fq
              WHEN pr.prokind = 'a' OR (pr.prorettype = 'record'::regtype AND pr.proallargtypes IS NULL)
                THEN 'SELECT ' || fq
              ELSE 'SELECT * FROM ' || fq END;
END
$$;
SQL

fixture() { su_psql -At -c "SELECT hostile_gen.fx('$1', '$2', '$3')"; }
# make_fixtures ROLE PASS: a tenant with a parent and a child, another tenant, an exported-then-deleted tenant (its
# document re-imports), a user, a token, ciphertexts, a signed context token, rows in the isolated tables.
make_fixtures() {
  su_psql -v r="$1" -v p="$2" -v s="${1#hostile_}-$2" -v tbl="playground.t_${1#hostile_}_$2" \
    -v ptbl="playground.pt_${1#hostile_}_$2" -v plain="$PLAIN" <<'SQL' >/dev/null
SET tenancy.auto_isolate = '';
-- The table the generated regclass arguments name: one per role and pass, so that disable_isolation,
-- partition_table and the like change nothing the other steps use.
-- Owned by the role (as an application's own role would own its tables; not the ordinary role: an isolated table's
-- owner must be a member of tenancy_app or tenancy_admin), the tenant column in the primary key.
CREATE TABLE :tbl (id uuid NOT NULL DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL, name text, secret text,
                   PRIMARY KEY (tenant_id, id));
SELECT tenancy.enable_isolation(:'tbl');
SELECT format('ALTER TABLE %s OWNER TO %I', :'tbl', :'r') WHERE :'r' <> :'plain' \gexec
GRANT SELECT, INSERT, UPDATE, DELETE ON :tbl TO tenancy_app, tenancy_admin;
-- The partitioned one, for the partition functions.
CREATE TABLE :ptbl (id uuid NOT NULL DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL, name text,
                    PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id);
SELECT format('CREATE TABLE %s_%s PARTITION OF %s FOR VALUES WITH (MODULUS 4, REMAINDER %s)', :'ptbl', i, :'ptbl', i)
  FROM generate_series(0, 3) i \gexec
SELECT tenancy.enable_isolation(:'ptbl');
SELECT format('ALTER TABLE %s OWNER TO %I', t, :'r') FROM unnest(ARRAY[:'ptbl', :'ptbl' || '_0', :'ptbl' || '_1',
  :'ptbl' || '_2', :'ptbl' || '_3']) t WHERE :'r' <> :'plain' \gexec
GRANT SELECT, INSERT, UPDATE, DELETE ON :ptbl TO tenancy_app, tenancy_admin;
SELECT (tenancy.create_tenant('Hostile parent', :'s' || '-parent', 'enterprise', 'us')).id AS parent \gset
SELECT (tenancy.create_tenant('Hostile tenant', :'s' || '-tenant', 'enterprise', 'us', :'parent')).id AS tenant \gset
SELECT (tenancy.create_tenant('Hostile child', :'s' || '-child', 'enterprise', 'us', :'tenant')).id AS child \gset
SELECT (tenancy.create_tenant('Hostile sibling', :'s' || '-sibling', 'enterprise', 'us', :'parent')).id AS sibling \gset
SELECT (tenancy.create_tenant('Hostile other', :'s' || '-other', 'enterprise', 'us')).id AS other \gset
SELECT (tenancy.create_tenant('Hostile export', :'s' || '-export', 'team', 'us')).id AS exported \gset
SELECT (tenancy.add_user(:'tenant', 'user@' || :'s' || '.example.com', 'Hostile', 'User', 'developer')).id AS user_id \gset
SELECT id AS token_id FROM tenancy.issue_token(:'tenant', 'developer', sha256(convert_to('hostile token ' || :'s', 'UTF8')), 'hostile', '1 day') \gset
INSERT INTO public.projects (tenant_id, name, secret)
SELECT t, 'project ' || g, tenancy.encrypt(t, 'secret ' || g)
  FROM unnest(ARRAY[:'tenant', :'child', :'other', :'exported']::uuid[]) t, generate_series(1, 3) g;
INSERT INTO :tbl (tenant_id, name, secret)
SELECT t, 'row ' || g, tenancy.encrypt(t, 'secret ' || g)
  FROM unnest(ARRAY[:'tenant', :'child', :'other', :'exported']::uuid[]) t, generate_series(1, 3) g;
INSERT INTO :ptbl (tenant_id, name)
SELECT t, 'row ' || g FROM unnest(ARRAY[:'tenant', :'child', :'other']::uuid[]) t, generate_series(1, 3) g;
INSERT INTO public.events SELECT t, g, 'x'
  FROM unnest(ARRAY[:'tenant', :'child', :'other', :'exported']::uuid[]) t, generate_series(1, 8) g;
INSERT INTO hostile_gen.fixture
SELECT :'r', :'p', k, v FROM (VALUES
  ('tenant', :'tenant'), ('parent', :'parent'), ('child', :'child'), ('sibling', :'sibling'),
  ('tenant_slug', :'s' || '-tenant'), ('ptable', :'ptbl'), ('other', :'other'), ('exported', :'exported'),
  ('user_id', :'user_id'), ('token_id', :'token_id'),
  ('ciphertext', tenancy.encrypt(:'tenant', 'hostile secret')),
  ('ciphertext_bytea', encode(tenancy.encrypt_bytea(:'tenant', convert_to('hostile secret', 'UTF8')), 'hex')),
  ('token_digest', encode(sha256(convert_to('hostile token ' || :'s', 'UTF8')), 'hex')),
  ('signed_token', tenancy.sign_tenant_token(:'tenant', '1 hour')),
  ('export_doc', tenancy.export_tenant(:'exported')::text),
  ('export_manifest', (tenancy.export_manifest(:'exported') -> 'manifest')::text),
  ('table', :'tbl'), ('table_oid', (:'tbl')::regclass::oid::text)) f(k, v);
SQL
  # Deleted so that its document imports again (import_tenant); a failure here is reported, not fatal.
  su_psql -At -c "SELECT tenancy.delete_tenant('$(fixture "$1" "$2" exported)', true)" > "$W/fixture_delete_$1_$2.log" 2>&1 ||
    note "fixture: delete_tenant(erase => true) failed as superuser before pass $2, $1: $(grep -m1 -A1 ERROR "$W/fixture_delete_$1_$2.log" | tr '\n' ' ')"
}

# ---------------------------------------------------------------------------------------------------------------
# Driver pieces. Every statement the driver itself runs after moving its search_path names everything qualified
# (pg_catalog.uuid, OPERATOR(pg_catalog.=), pg_catalog.count): a shadow that runs was reached by extension code,
# except in the control phase, where the driver calls a shadow of each kind on purpose.
# step KIND NAME SQL: one statement (or a short transaction whose last statement is the one judged), its outcome.
step() {
  local kind=$1 name=$2 sql=$3
  printf "SET hostile.phase = '%s %s';\n%s\n" "$kind" "$name" "$sql"
  printf "\\\\if :ERROR\n\\\\echo 'RESULT|%s|%s|error|' :LAST_ERROR_SQLSTATE :'LAST_ERROR_MESSAGE'\n\\\\else\n" "$kind" "$name"
  printf "\\\\echo 'RESULT|%s|%s|ok'\n\\\\endif\n" "$kind" "$name"
}
# DDL tags the DDL section runs (for the event trigger check), besides the CREATE FUNCTION/TYPE/DOMAIN/CAST/OPERATOR/
# AGGREGATE of the pg_temp setup.
DDL_TAGS="CREATE TABLE|CREATE TABLE AS|SELECT INTO|ALTER TABLE|DROP TABLE|CREATE INDEX|DROP INDEX|CREATE VIEW|DROP VIEW|COMMENT|CREATE FUNCTION|CREATE TYPE|CREATE DOMAIN|CREATE CAST|CREATE OPERATOR|CREATE AGGREGATE"
NIL=00000000-0000-0000-0000-000000000000
ddl_section() { # ddl_section ROLE PASS
  local r=${1#hostile_} p=$2 x="playground.h_${1#hostile_}_$2"
  step ddl "CREATE TABLE" "CREATE TABLE ${x}_plain (tenant_id pg_catalog.uuid NOT NULL, v pg_catalog.text);"
  step ddl "CREATE TABLE (no tenant column)" "CREATE TABLE ${x}_free (v pg_catalog.text);"
  step ddl "CREATE TABLE LIKE" "CREATE TABLE ${x}_like (LIKE playground.ev_$r);"
  step ddl "CREATE TABLE INHERITS" "CREATE TABLE ${x}_inh (w pg_catalog.int4) INHERITS (${x}_plain);"
  step ddl "CREATE TEMP TABLE" "CREATE TEMP TABLE h_tmp (tenant_id pg_catalog.uuid NOT NULL, v pg_catalog.text);"
  step ddl "CREATE TEMP TABLE AS" "CREATE TEMP TABLE h_tmp_as AS SELECT '$NIL'::pg_catalog.uuid AS tenant_id;"
  step ddl "CREATE TABLE PARTITION OF" \
    "CREATE TABLE ${x}_p0 PARTITION OF playground.ev_$r FOR VALUES WITH (MODULUS 4, REMAINDER 0);"
  step ddl "CREATE TABLE (to attach)" "CREATE TABLE ${x}_p1 (tenant_id pg_catalog.uuid NOT NULL, v pg_catalog.text);"
  step ddl "ALTER TABLE ATTACH PARTITION" \
    "ALTER TABLE playground.ev_$r ATTACH PARTITION ${x}_p1 FOR VALUES WITH (MODULUS 4, REMAINDER 1);"
  step ddl "CREATE TABLE PARTITION OF (partitioned)" \
    "CREATE TABLE ${x}_p2 PARTITION OF playground.ev_$r FOR VALUES WITH (MODULUS 4, REMAINDER 2) PARTITION BY HASH (tenant_id);"
  step ddl "CREATE TABLE PARTITION OF (sub)" \
    "CREATE TABLE ${x}_p2a PARTITION OF ${x}_p2 FOR VALUES WITH (MODULUS 2, REMAINDER 0);"
  step ddl "CREATE TABLE AS" "CREATE TABLE ${x}_ctas AS SELECT '$NIL'::pg_catalog.uuid AS tenant_id, 'x'::pg_catalog.text AS v;"
  step ddl "SELECT INTO" "SELECT '$NIL'::pg_catalog.uuid AS tenant_id INTO ${x}_into;"
  step ddl "ALTER TABLE ADD COLUMN" "ALTER TABLE ${x}_free ADD COLUMN tenant_id pg_catalog.uuid;"
  step ddl "ALTER TABLE ALTER TYPE (rewrite)" "ALTER TABLE ${x}_free ALTER COLUMN v TYPE pg_catalog.varchar(20);"
  step ddl "ALTER TABLE DROP COLUMN" "ALTER TABLE ${x}_free DROP COLUMN v;"
  step ddl "ALTER TABLE RENAME" "ALTER TABLE ${x}_free RENAME TO h_${r}_${p}_renamed;"
  step ddl "CREATE INDEX" "CREATE INDEX ON ${x}_plain (v);"
  step ddl "CREATE VIEW" "CREATE VIEW ${x}_view AS SELECT 1 AS one;"
  step ddl "COMMENT" "COMMENT ON TABLE ${x}_plain IS 'hostile';"
  step ddl "ALTER TABLE DETACH PARTITION" "ALTER TABLE playground.ev_$r DETACH PARTITION ${x}_p1;"
  step ddl "DROP VIEW" "DROP VIEW ${x}_view;"
  step ddl "DROP TABLE (temp)" "DROP TABLE IF EXISTS h_tmp, h_tmp_as;"
  step ddl "DROP TABLE (partition)" "DROP TABLE IF EXISTS ${x}_p0;"
  step ddl "DROP TABLE" "DROP TABLE IF EXISTS ${x}_p1, ${x}_p2, ${x}_inh, ${x}_plain, ${x}_like, ${x}_ctas, ${x}_into, playground.h_${r}_${p}_renamed;"
}
dml_section() { # dml_section ROLE PASS: the isolated tables, with the role's way into a tenant
  local begin t
  t=$(fixture "$1" "$2" tenant)
  case $1 in
    "$APP") begin="BEGIN; SELECT tenancy.set_tenant('$t'::pg_catalog.uuid);" ;;
    "$ADMIN") begin="BEGIN; SELECT tenancy.begin_cross_tenant('hostile environment test'::pg_catalog.text);" ;;
    *) begin="BEGIN;" ;;
  esac
  step dml "INSERT" "$begin INSERT INTO public.projects (tenant_id, name) VALUES ('$t'::pg_catalog.uuid, 'hostile'::pg_catalog.text); COMMIT;"
  step dml "INSERT partitioned" "$begin INSERT INTO public.events (tenant_id, seq) VALUES ('$t'::pg_catalog.uuid, 1000::pg_catalog.int8); COMMIT;"
  step dml "UPDATE" "$begin UPDATE public.projects SET name = 'hostile 2'::pg_catalog.text; COMMIT;"
  step dml "SELECT" "$begin SELECT * FROM public.projects; SELECT * FROM public.events; COMMIT;"
  step dml "COPY" "$begin COPY public.projects TO STDOUT; COMMIT;"
  step dml "INSERT own partitioned" "$begin INSERT INTO playground.ev_${1#hostile_} (tenant_id, v) VALUES ('$t'::pg_catalog.uuid, 'x'::pg_catalog.text); COMMIT;"
  step dml "DELETE" "$begin DELETE FROM public.events; COMMIT;"
  step dml "TRUNCATE" "$begin TRUNCATE public.projects; COMMIT;"
}
# Control: the driver calls one shadow of each kind on purpose; each pass must see the kinds it installed.
control_section() {
  step control "function" "SELECT lower('X'::pg_catalog.text);"
  step control "operator" "SELECT 1::pg_catalog.int4 = 1::pg_catalog.int4;"
  step control "aggregate" "SELECT count(*) FROM (VALUES (1)) v(x);"
  step control "type" "SELECT ('x'::pg_catalog.text)::name IS NULL;"
}

# The three passes: name, search_path, what pg_temp holds ("types" of hostile_shadows.sql), the control kinds.
PASSES="a b c"
pass_path() { case $1 in a) echo 'pg_temp, attacker, "$user", public, pg_catalog' ;; b) echo 'attacker, pg_catalog' ;;
                         c) echo 'pg_temp, pg_catalog' ;; esac; }
pass_types() { case $1 in a) echo composite ;; b) echo none ;; c) echo domain ;; esac; }
# (words of the shadows' labels; ~ stands for a space)
pass_controls() { case $1 in a) echo "attacker.lower( attacker.=( [aggregate cast~pg_catalog.text~->~pg_temp.name" ;;
                             b) echo "attacker.lower( attacker.=( [aggregate domain~attacker.name" ;;
                             c) echo "domain~pg_temp.name" ;; esac; }

write_driver() { # write_driver ROLE PASS FILE
  local r=$1 p=$2 f=$3 t ctx=off
  t=$(fixture "$r" "$p" tenant)
  [ "$r" = "$APP" ] && ctx=on
  {
    cat <<SQL
SET statement_timeout = '30s';
SET lock_timeout = '10s';
SET hostile.phase = 'setup $p';
\\set schema pg_temp
\\set fnames '$FNAMES'
\\set tnames '$TNAMES'
\\set funcs on
\\set types $(pass_types "$p")
\\i $W/shadows.sql
SELECT (SELECT count(*) FROM pg_proc WHERE pronamespace = pg_my_temp_schema()) AS f,
       (SELECT count(*) FROM pg_operator WHERE oprnamespace = pg_my_temp_schema()) AS o,
       (SELECT count(*) FROM pg_type WHERE typnamespace = pg_my_temp_schema() AND typtype IN ('c', 'd')) AS t,
       (SELECT count(*) FROM pg_cast c JOIN pg_type y ON y.oid = c.casttarget
         WHERE y.typnamespace = pg_my_temp_schema()) AS c \\gset
\\echo 'SHADOWS|pg_temp|' :f :o :t :c
\\o /dev/null
SET search_path = $(pass_path "$p");
SQL
    control_section
    su_psql -At -v login="$r" -v pass="$p" -v ctx="$ctx" -v t="$t" <<'SQL'
WITH f AS (
  SELECT p.oid::regprocedure::text AS sig, hostile_gen.call(p.oid, :'login', :'pass') AS stmt,
         -- destructive ones last, so that the others find the fixtures; a live move's source steps in their order
         CASE p.proname WHEN 'move_source_prepare' THEN 11 WHEN 'move_source_create_slot' THEN 12
                        WHEN 'move_source_progress' THEN 13 WHEN 'move_source_freeze' THEN 14
                        WHEN 'move_source_handover' THEN 15 WHEN 'move_source_finish' THEN 16
           ELSE CASE WHEN p.proname ~ '^_?(move_|delete_|remove_|revoke_|disable_|unisolate_|destroy_|erase_|drop_|rotate_|repartition|partition_table|reencrypt_column)'
                     THEN 10 ELSE 0 END END AS late
    FROM pg_proc p
   WHERE p.pronamespace = 'tenancy'::regnamespace AND has_function_privilege(:'login', p.oid, 'EXECUTE')
)
SELECT line FROM f, LATERAL unnest(CASE
  WHEN stmt LIKE 'SKIP:%' OR stmt LIKE 'NOGEN:%' THEN
    ARRAY[format('\echo %s', quote_literal(format('RESULT|function|%s|%s', sig, replace(stmt, ':', '|'))))]
  ELSE ARRAY[
    format('SET hostile.phase = %L;', 'function ' || sig),
    'BEGIN;',
    CASE WHEN :'ctx' = 'on' THEN format('SELECT tenancy.set_tenant(%L::pg_catalog.uuid);', :'t') ELSE '' END,
    CASE WHEN right(stmt, 6) = '\gexec' THEN stmt ELSE stmt || ';' END,
    '\if :ERROR',
    format('\echo %s :LAST_ERROR_SQLSTATE :''LAST_ERROR_MESSAGE''', quote_literal(format('RESULT|function|%s|error|', sig))),
    '\else',
    format('\echo %s', quote_literal(format('RESULT|function|%s|ok', sig))),
    '\endif',
    'COMMIT;'] END) WITH ORDINALITY u(line, i)
ORDER BY late, sig, i;
SQL
    ddl_section "$r" "$p"
    [ "$r" = "$PLAIN" ] || dml_section "$r" "$p"
  } > "$f"
}

# ---------------------------------------------------------------------------------------------------------------
# The specific cases, as the tenancy_app login in the hostile search_path of pass a (after its pg_temp setup).
cases_driver() { # cases_driver FILE
  local t c par o
  t=$(fixture "$APP" a tenant); c=$(fixture "$APP" a child); par=$(fixture "$APP" a parent); o=$(fixture "$APP" a other)
  cat <<SQL
SET hostile.phase = 'setup cases';
\\set schema pg_temp
\\set fnames '$FNAMES'
\\set tnames '$TNAMES'
\\set funcs on
\\set types composite
\\i $W/shadows.sql
\\o /dev/null
SET search_path = $(pass_path a);
-- hierarchy: the context tenant has a parent and a child
SET hostile.phase = 'case hierarchy';
BEGIN;
SELECT tenancy.set_tenant('$t'::pg_catalog.uuid);
SELECT pg_catalog.string_agg(x::pg_catalog.text, ',') AS d FROM tenancy.tenant_descendants('$t'::pg_catalog.uuid) x \\gset
SELECT pg_catalog.string_agg(x::pg_catalog.text, ',') AS a FROM tenancy.tenant_ancestors('$t'::pg_catalog.uuid) x \\gset
SELECT tenancy.consume_pooled('$t'::pg_catalog.uuid, 'storage_mb'::pg_catalog.text, 1::pg_catalog.int8) AS cp \\gset
SELECT tenancy.release_pooled('$t'::pg_catalog.uuid, 'storage_mb'::pg_catalog.text, 1::pg_catalog.int8);
SELECT (tenancy.usage('$t'::pg_catalog.uuid, true)) IS NOT NULL AS u \\gset
COMMIT;
\\echo 'CHECK|descendants|' :'d'
\\echo 'CHECK|ancestors|' :'a'
\\echo 'CHECK|consume_pooled|' :'cp'
\\echo 'CHECK|usage|' :'u'
BEGIN;
SELECT tenancy.set_tenant('$t'::pg_catalog.uuid);
\\set d refused
SELECT pg_catalog.string_agg(x::pg_catalog.text, ',') AS d FROM tenancy.tenant_descendants('$par'::pg_catalog.uuid) x \\gset
\\echo 'CHECK|descendants of the parent (sibling tenants)|' :'d'
ROLLBACK;
-- context surviving COMMIT: set_tenant, SET LOCAL app.tenant_id, session-level app.tenant_id
SET hostile.phase = 'case context after commit';
BEGIN;
SELECT tenancy.set_tenant('$t'::pg_catalog.uuid);
COMMIT;
SELECT tenancy.current_tenant_id() IS NULL AS cleared \\gset
\\echo 'CHECK|context cleared by COMMIT|' :'cleared'
\\set n none
SELECT pg_catalog.count(*) AS n FROM public.projects \\gset
\\echo 'CHECK|rows after set_tenant + COMMIT|' :'n'
BEGIN;
SET LOCAL app.tenant_id = '$t';
COMMIT;
\\set n none
SELECT pg_catalog.count(*) AS n FROM public.projects \\gset
\\echo 'CHECK|rows after SET LOCAL app.tenant_id + COMMIT|' :'n'
SET app.tenant_id = '$t';
\\set n none
SELECT pg_catalog.count(*) AS n FROM public.projects \\gset
\\echo 'CHECK|rows with a session-level app.tenant_id|' :'n'
RESET app.tenant_id;
-- direct partition access: each leaf of the isolated partitioned table, with and without a context
SET hostile.phase = 'case partitions';
SQL
  for i in 0 1 2 3; do
    cat <<SQL
BEGIN;
SELECT tenancy.set_tenant('$t'::pg_catalog.uuid);
\\set n none
SELECT pg_catalog.count(*) FILTER (WHERE tenant_id OPERATOR(pg_catalog.<>) '$t'::pg_catalog.uuid) AS n
  FROM public.events_p$i \\gset
COMMIT;
\\echo 'CHECK|other tenants'' rows in events_p$i under a context|' :'n'
\\set n none
SELECT pg_catalog.count(*) AS n FROM public.events_p$i \\gset
\\echo 'CHECK|rows in events_p$i without a context|' :'n'
SQL
  done
}

# check_roles WHEN: a login role that gained an attribute or a membership fails the test; it is put back so that
# the next steps still run with the rights they should have.
check_roles() {
  local diff
  diff=$(su_psql -At <<'SQL'
SELECT format('%s: super %s->%s createrole %s->%s createdb %s->%s bypassrls %s->%s replication %s->%s member of %s -> %s',
              b.rolname, b.rolsuper, r.rolsuper, b.rolcreaterole, r.rolcreaterole, b.rolcreatedb, r.rolcreatedb,
              b.rolbypassrls, r.rolbypassrls, b.rolreplication, r.rolreplication, b.member_of, m.member_of)
  FROM hostile_canary.baseline b JOIN pg_roles r USING (rolname)
 CROSS JOIN LATERAL (SELECT ARRAY(SELECT x.roleid::regrole::text FROM pg_auth_members x WHERE x.member = r.oid
                                   ORDER BY 1) AS member_of) m
 WHERE (b.rolsuper, b.rolcreaterole, b.rolcreatedb, b.rolbypassrls, b.rolreplication, b.member_of)
       IS DISTINCT FROM (r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolbypassrls, r.rolreplication, m.member_of)
SQL
)
  [ -z "$diff" ] && return 0
  while read -r line; do fail "ESCALATION after $1: $line"; done <<<"$diff"
  restore_roles
}
restore_roles() {
  su_psql -At <<'SQL' >/dev/null
SELECT format('ALTER ROLE %I NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS NOREPLICATION', rolname)
  FROM hostile_canary.baseline \gexec
SELECT format('REVOKE %I FROM %I', x.roleid::regrole::text, b.rolname)
  FROM hostile_canary.baseline b JOIN pg_roles r USING (rolname) JOIN pg_auth_members x ON x.member = r.oid
 WHERE NOT x.roleid::regrole::text = ANY (b.member_of) \gexec
SQL
}

# ---------------------------------------------------------------------------------------------------------------
for p in $PASSES; do
  for r in $ROLES; do
    make_fixtures "$r" "$p"
    write_driver "$r" "$p" "$W/driver_${r}_$p.sql"
    t=$(date +%s)
    role_psql "$r" "$W/driver_${r}_$p.sql" > "$W/out_${r}_$p.log"
    echo "pass $p ($(pass_path "$p")), $r: $(grep -c '^RESULT|function|' "$W/out_${r}_$p.log") functions, \
$(grep -c '^RESULT|ddl|' "$W/out_${r}_$p.log") DDL, $(grep -c '^RESULT|dml|' "$W/out_${r}_$p.log") DML steps \
($(( $(date +%s) - t )) s; pg_temp shadows f/o/t/c: $(grep '^SHADOWS|' "$W/out_${r}_$p.log" | cut -d'|' -f3))"
    check_roles "pass $p, $r"
  done
done
cases_driver > "$W/driver_cases.sql"
role_psql "$APP" "$W/driver_cases.sql" > "$W/out_cases.log"
check_roles "the specific cases"

# Self-test of the detector, end to end: a SECURITY DEFINER function of the superuser that resolves lower() through
# its caller's search_path (what the extension must never do). Called by the ordinary role from the attacker's path,
# its shadow must be reported as run by the superuser, write the superuser-only table and make the role a superuser
# (expected here, then undone); otherwise the detector is broken and the test fails.
SUPERUSER=$(su_psql -At -c "SELECT current_user")
su_psql <<'SQL' >/dev/null
CREATE FUNCTION hostile_canary.vulnerable() RETURNS text LANGUAGE plpgsql SECURITY DEFINER AS
  $$ BEGIN RETURN lower('X'); END $$;
GRANT EXECUTE ON FUNCTION hostile_canary.vulnerable() TO PUBLIC;
SQL
cat > "$W/driver_selftest.sql" <<'SQL'
SET hostile.phase = 'selftest';
SET search_path = attacker, pg_catalog;
SELECT hostile_canary.vulnerable();
SQL
role_psql "$PLAIN" "$W/driver_selftest.sql" > "$W/out_selftest.log"
selftest_ok=yes
grep -qF "SHADOW RAN: attacker.lower(text) as $SUPERUSER (session $PLAIN, phase selftest)" "$SERVER_LOG" || selftest_ok=no
[ "$(su_psql -At -c "SELECT count(*) > 0 FROM hostile_canary.pwned WHERE phase = 'selftest'")" = t ] || selftest_ok=no
[ "$(su_psql -At -c "SELECT rolsuper FROM pg_roles WHERE rolname = '$PLAIN'")" = t ] || selftest_ok=no
restore_roles
[ "$(su_psql -At -c "SELECT rolsuper FROM pg_roles WHERE rolname = '$PLAIN'")" = f ] || selftest_ok=no
su_psql -c "DROP FUNCTION hostile_canary.vulnerable()" >/dev/null
[ "$selftest_ok" = yes ] || fail "self-test: a shadow run by a vulnerable SECURITY DEFINER function was not detected end to end"
echo "self-test: a vulnerable SECURITY DEFINER function's shadow run and escalation detected: $selftest_ok"

# ---------------------------------------------------------------------------------------------------------------
# Verdict.
echo
echo "== specific cases (tenancy_app login, search_path of pass a)"
check_case() { # check_case NAME ALLOWED_REGEX
  local v
  v=$(grep -F "CHECK|$1|" "$W/out_cases.log" | sed -n 1p | cut -d'|' -f3- | tr -d " '")
  if [ -z "$v" ]; then fail "case '$1': no answer"; elif [[ $v =~ ^($2)$ ]]; then echo "ok   $1: $v"; else
    fail "case '$1': $v"; fi
}
check_case descendants "$(fixture "$APP" a child)"
check_case ancestors "$(fixture "$APP" a parent)"
check_case consume_pooled "t|f"
check_case usage "t"
check_case "descendants of the parent (sibling tenants)" "refused|$(fixture "$APP" a tenant),$(fixture "$APP" a child)|$(fixture "$APP" a child),$(fixture "$APP" a tenant)"
check_case "context cleared by COMMIT" "t"
check_case "rows after set_tenant + COMMIT" "0|none"
check_case "rows after SET LOCAL app.tenant_id + COMMIT" "0|none"
check_case "rows with a session-level app.tenant_id" "0|none"
for i in 0 1 2 3; do
  check_case "other tenants' rows in events_p$i under a context" "0|none"
  check_case "rows in events_p$i without a context" "0|none"
done

echo
echo "== coverage"
su_psql -At <<SQL
SELECT format('functions of schema tenancy: %s; executable by PUBLIC: %s, tenancy_app: %s, tenancy_admin: %s, %s: %s, %s: %s, %s: %s',
  count(*), count(*) FILTER (WHERE has_function_privilege('public', p.oid, 'EXECUTE')),
  count(*) FILTER (WHERE has_function_privilege('tenancy_app', p.oid, 'EXECUTE')),
  count(*) FILTER (WHERE has_function_privilege('tenancy_admin', p.oid, 'EXECUTE')),
  '$PLAIN', count(*) FILTER (WHERE has_function_privilege('$PLAIN', p.oid, 'EXECUTE')),
  '$APP', count(*) FILTER (WHERE has_function_privilege('$APP', p.oid, 'EXECUTE')),
  '$ADMIN', count(*) FILTER (WHERE has_function_privilege('$ADMIN', p.oid, 'EXECUTE')))
  FROM pg_proc p WHERE p.pronamespace = 'tenancy'::regnamespace;
SQL
for f in "$W"/out_hostile_*_?.log; do
  s=$(basename "$f" .log); s=${s#out_}
  printf '%-18s functions: %3d ok, %3d error, %2d skipped; DDL %2d ok, %2d error; DML %d ok, %d error\n' "$s" \
    "$(grep -c '^RESULT|function|.*|ok$' "$f")" "$(grep -c '^RESULT|function|.*|error|' "$f")" \
    "$(grep -c '^RESULT|function|.*|SKIP|' "$f")" \
    "$(grep -c '^RESULT|ddl|.*|ok$' "$f")" "$(grep -c '^RESULT|ddl|.*|error|' "$f")" \
    "$(grep -c '^RESULT|dml|.*|ok$' "$f")" "$(grep -c '^RESULT|dml|.*|error|' "$f")"
  grep -q '^RESULT|' "$f" || fail "$s: the session ran nothing (login failed?): $(sed -n 1,3p "$f" | tr '\n' ' ')"
  while IFS= read -r line; do fail "$s: no argument generator: $line"; done < <(grep '^RESULT|function|.*|NOGEN|' "$f")
done
cat "$W"/out_hostile_*_?.log | grep -E '^RESULT\|function\|.*\|error\|' | cut -d'|' -f5 | tr -s ' ' | cut -d' ' -f2 |
  sort | uniq -c | sort -rn | tr '\n' ' ' | sed 's/^/function errors by SQLSTATE (acceptable, recorded): /'; echo
su_psql -At <<'SQL'
SELECT pg_stat_clear_snapshot();
SELECT format('functions that completed at least once (pg_stat_user_functions): %s of %s executable by tenancy_app or tenancy_admin',
  count(*) FILTER (WHERE s.calls > 0), count(*))
  FROM pg_proc p LEFT JOIN pg_stat_user_functions s ON s.funcid = p.oid
 WHERE p.pronamespace = 'tenancy'::regnamespace
   AND (has_function_privilege('tenancy_app', p.oid, 'EXECUTE') OR has_function_privilege('tenancy_admin', p.oid, 'EXECUTE'));
SQL

# Every event trigger of the database: exercised by a DDL tag we ran, and completed at least once.
ran_tags=$(cat "$W"/driver_hostile_*_?.sql | grep -oE "^SET hostile.phase = 'ddl [A-Z ]+" | sed "s/^SET hostile.phase = 'ddl //; s/ *$//" | sort -u)
ran_tags=$(printf '%s\n%s\n' "$ran_tags" "CREATE FUNCTION
CREATE TYPE
CREATE DOMAIN
CREATE CAST
CREATE OPERATOR
CREATE AGGREGATE" | sed -E 's/ (PARTITION OF|ATTACH PARTITION|DETACH PARTITION|ADD COLUMN|ALTER TYPE|DROP COLUMN|RENAME|LIKE|INHERITS)$//; s/^CREATE TEMP TABLE AS$/CREATE TABLE AS/; s/^CREATE TEMP TABLE$/CREATE TABLE/' | sort -u | paste -sd'|')
while IFS='|' read -r name event tags enabled fn calls; do
  [ -n "$name" ] || continue
  exercised=no
  case $event in
    ddl_command_start|ddl_command_end) tagset=$ran_tags ;;
    sql_drop) tagset="DROP TABLE|DROP VIEW|ALTER TABLE" ;;
    table_rewrite) tagset="ALTER TABLE" ;;
    *) tagset="" ;;
  esac
  if [ -z "$tags" ]; then [ -n "$tagset" ] && exercised=yes; else
    IFS=',' read -ra tl <<<"$tags"
    for tg in "${tl[@]}"; do [[ "|$tagset|" == *"|$tg|"* ]] && exercised=yes; done
  fi
  echo "event trigger $name ON $event (${tags:-all tags}, $enabled) -> $fn: exercised $exercised, completed $calls times"
  [ "$exercised" = yes ] || fail "event trigger $name ($event, tags ${tags:-all}) is not fired by any DDL of this test"
  [ "$enabled" = D ] || [ "${calls:-0}" -gt 0 ] || fail "event trigger $name never completed (function $fn)"
done < <(su_psql -At -F'|' <<'SQL'
SELECT e.evtname, e.evtevent, array_to_string(e.evttags, ','), e.evtenabled, e.evtfoid::regproc,
       coalesce((SELECT s.calls FROM pg_stat_user_functions s WHERE s.funcid = e.evtfoid), 0)
  FROM pg_event_trigger e ORDER BY 1;
SQL
)

echo
echo "== shadows"
echo "created: attacker schema: $ATTACKER_COUNTS; pg_temp of each session (functions/operators/types/casts):"
for p in $PASSES; do echo "  pass $p: $(grep -h '^SHADOWS|' "$W"/out_hostile_*_"$p".log | sed -n 1p | cut -d'|' -f3)"; done
# The control phase must have run the kinds of shadow each pass installed (else the shadows prove nothing).
for p in $PASSES; do
  for r in $ROLES; do
    for label in $(pass_controls "$p"); do
      grep -F "SHADOW RAN: " "$W/out_${r}_$p.log" | grep -F "phase control" | grep -qF "${label//\~/ }" ||
        fail "control: pass $p, $r: the shadow '${label//\~/ }' did not run when called directly"
    done
  done
done
grep -h 'SHADOW RAN: ' "$SERVER_LOG" | sed 's/.*SHADOW RAN: //' > "$W/shadow_runs.txt" || true
n_control=$(grep -c 'phase control ' "$W/shadow_runs.txt" || true)

# Grouped by what ran them (the phase): which shadows, as whom, in which sessions.
grep -v -e 'phase control ' -e 'phase selftest)' "$W/shadow_runs.txt" |
  sed -E 's/^(.*) as ([^ ]+) \(session ([^,]+), phase (.*)\)$/\4\t\1 as \2\t\3/' > "$W/shadow_escapes.txt" || true
n_escapes=$(wc -l < "$W/shadow_escapes.txt")
echo "ran: $n_control in the control phase (expected), $n_escapes inside extension code"
if [ "$n_escapes" -gt 0 ]; then
  awk -F'\t' '{ if (!($1 in seen)) { order[++n] = $1; seen[$1] = 1 }
               if (!(($1 "\t" $2) in sh)) { sh[$1 "\t" $2] = 1; shadows[$1] = shadows[$1] "; " $2 }
               if (!(($1 "\t" $3) in ss)) { ss[$1 "\t" $3] = 1; sessions[$1] = sessions[$1] " " $3 } }
             END { for (i = 1; i <= n; i++) { k = order[i]; printf "%s [%s ]: %s\n", k, sessions[k], substr(shadows[k], 3) } }' \
    "$W/shadow_escapes.txt" | sort > "$W/shadow_escapes_by_phase.txt"
  fail "$n_escapes shadow runs inside extension code, from $(wc -l < "$W/shadow_escapes_by_phase.txt") steps (what ran them [sessions]: shadows as whom):"
  awk 'NR <= 60 { print "    " substr($0, 1, 400) }' "$W/shadow_escapes_by_phase.txt"
  [ "$(wc -l < "$W/shadow_escapes_by_phase.txt")" -le 60 ] || echo "    ... (all in $W/shadow_escapes_by_phase.txt)"
fi
pwned=$(su_psql -At -c "SELECT count(*) FROM hostile_canary.pwned WHERE phase IS DISTINCT FROM 'selftest'")
[ "$pwned" = 0 ] || fail "$pwned writes into a superuser-only table by shadows: $(su_psql -At -c \
  "SELECT string_agg(DISTINCT format('%s as %s (%s)', shadow, ran_as, phase), '; ') FROM hostile_canary.pwned
   WHERE phase IS DISTINCT FROM 'selftest'" | cut -c1-600)"

echo
echo "total time $(( $(date +%s) - T0 )) s"
for n in "${notes[@]}"; do echo "note: $n"; done
if [ ${#fail_msgs[@]} -gt 0 ]; then
  echo "FAILED: ${#fail_msgs[@]} problem(s)"
  exit 1
fi
echo "hostile environment: no shadow ran, no role gained anything"
