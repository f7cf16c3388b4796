#!/usr/bin/env bash
# test/integration/superuser_reads.sh
# Red-team reproducers (issue #15) over TCP with real logins: the roles that own application tables, or hold
# tenancy_admin, try to have their own code run by the superuser-run parts of tenancy, and must not become superuser:
#   1. export: an isolated table's index expression calls the owner's IMMUTABLE-declared function with constant
#      arguments (the planner folds it, in the planning role's identity); an honest admin exports a tenant;
#   2. import: a kept unique key of the owner's domain type, whose CHECK calls the owner's function; the admin
#      copies a tenant (the import's values must be converted to the column types only as the table's owner);
#   3. quota recount: tenancy_admin calls the SECURITY DEFINER tenancy._quota_register_tracked directly on a column
#      of its own enum type with a cast to text of its own (reconcile_quota used to cast it as the superuser).
# Each function escalates (ALTER ROLE ... SUPERUSER) when it finds itself running as a superuser.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

start_cluster superuser_reads
cluster_psql -d postgres -c "CREATE DATABASE app"
cluster_psql -d app <<'SQL'
CREATE EXTENSION tenancy;
CREATE ROLE owner_login LOGIN;          -- owns application tables, a tenancy_admin member while it sets them up
CREATE ROLE admin_login LOGIN;          -- an honest admin (tenancyd)
GRANT tenancy_admin TO owner_login, admin_login;
CREATE SCHEMA app AUTHORIZATION owner_login;
SQL
login() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$CLUSTER_PORT" -U "$1" -d app "${@:2}"; }
is_super() { cluster_psql -d app -Atc "SELECT rolsuper FROM pg_roles WHERE rolname = '$1'"; }
failed=0
check() { # check WHAT
  if [ "$(is_super owner_login)" != f ]; then
    echo "FAIL: $1: owner_login became superuser"; failed=1
    cluster_psql -d app -c "ALTER ROLE owner_login NOSUPERUSER"
  else
    echo "ok: $1"
  fi
}

login owner_login <<'SQL'
CREATE FUNCTION app.escalate() RETURNS void LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
    EXECUTE 'ALTER ROLE owner_login SUPERUSER';
  END IF;
END $$;
CREATE FUNCTION app.folded(i int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM app.escalate(); RETURN i; END $$;
CREATE FUNCTION app.valid(v text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN PERFORM app.escalate(); RETURN true; END $$;
CREATE DOMAIN app.code AS text CHECK (app.valid(VALUE));
CREATE TABLE app.codes (tenant_id uuid NOT NULL, code app.code PRIMARY KEY);
CREATE TABLE app.notes (tenant_id uuid NOT NULL, id int PRIMARY KEY, body text);
SELECT tenancy.enable_isolation('app.codes');
SELECT tenancy.enable_isolation('app.notes');
GRANT USAGE ON SCHEMA app TO admin_login;
GRANT ALL ON ALL TABLES IN SCHEMA app TO admin_login;
SELECT (tenancy.create_tenant('One', 'one')).id AS t1 \gset
SELECT (tenancy.create_tenant('Two', 'two')).id AS t2 \gset
BEGIN; SELECT tenancy.set_tenant(:'t1'); INSERT INTO app.codes (code) VALUES ('c1'); COMMIT;
BEGIN; SELECT tenancy.set_tenant(:'t2'); INSERT INTO app.codes (code) VALUES ('c2'); COMMIT;
SQL

# 2. import: the admin copies tenant one after its codes were removed (the copy keeps the key "c1")
login admin_login <<'SQL'
SELECT id AS t1 FROM tenancy.tenants WHERE slug = 'one' \gset
SELECT tenancy.export_tenant(:'t1') AS doc \gset
BEGIN; SELECT tenancy.set_tenant(:'t1'); DELETE FROM app.codes; COMMIT;
SELECT tenancy.import_tenant(:'doc', gen_random_uuid()) IS NOT NULL AS imported;
SQL
check "import: the owner's domain check of a kept key"

# 1. export: an index expression folding the owner's function
login owner_login -c "CREATE INDEX notes_folded ON app.notes ((body || app.folded(0)::text))"
out=$(login admin_login -c "SELECT tenancy.export_tenant(id) IS NOT NULL FROM tenancy.tenants WHERE slug = 'two'" 2>&1 || true)
echo "$out" | grep -q "index expression that runs code of a role that is not a superuser" \
  || { echo "FAIL: export did not refuse the index expression: $out"; failed=1; }
check "export: an index expression of the owner's"
login owner_login -c "DROP INDEX app.notes_folded"

# 3. quota recount: the admin's own enum with a cast to text of its own
out=$(login owner_login 2>&1 <<'SQL' || true
CREATE TYPE app.kind AS ENUM ('a');
CREATE FUNCTION app.kind_text(v app.kind) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
BEGIN PERFORM app.escalate(); RETURN 'a'; END $$;
CREATE CAST (app.kind AS text) WITH FUNCTION app.kind_text(app.kind);
CREATE TABLE app.kinds (k app.kind);
INSERT INTO app.kinds VALUES ('a');
SELECT tenancy._quota_register_tracked('app.kinds', 'projects', 'k');
SQL
)
echo "$out" | grep -q "is not prepared for row counting" \
  || { echo "FAIL: _quota_register_tracked accepted a non-uuid column: $out"; failed=1; }
check "reconcile_quota: a cast function of the caller's type"

exit $failed
