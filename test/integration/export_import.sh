#!/usr/bin/env bash
# test/integration/export_import.sh
# Two clusters: a tenant exported from one (document and COPY form) and imported into an empty database on the other
# has identical per-table checksums, decrypts, and its identity keys do not collide with new rows; each COPY file's
# sha256sum is its manifest checksum; a tampered document or COPY file (changed row, dropped row, changed manifest
# count) is refused leaving nothing; tenancy.region = 'eu' refuses a US tenant however it arrives.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

start_cluster src
SRC_PORT=$CLUSTER_PORT
start_cluster eu "tenancy.region = 'eu'"
EU_PORT=$CLUSTER_PORT
src_psql() { PGPORT_OVERRIDE=$SRC_PORT cluster_psql -d app "$@"; }
eu_psql() { PGPORT_OVERRIDE=$EU_PORT cluster_psql -d app "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

# The same application schema on both sides (what a deployment creates before importing a tenant).
SCHEMA="
CREATE EXTENSION tenancy;
CREATE TABLE projects (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL, name text NOT NULL,
                       secret text, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE tasks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL,
                    project_id uuid NOT NULL REFERENCES projects (id) ON DELETE CASCADE, title text, payload jsonb);
CREATE TABLE events (tenant_id uuid NOT NULL, seq bigint NOT NULL, body bytea, PRIMARY KEY (tenant_id, seq))
  PARTITION BY HASH (tenant_id);
CREATE TABLE events_p0 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1);
SELECT tenancy.enable_isolation(t) FROM unnest(ARRAY['projects', 'tasks', 'events']::regclass[]) t;
"
PGPORT_OVERRIDE=$SRC_PORT cluster_psql -d postgres -c "CREATE DATABASE app"
PGPORT_OVERRIDE=$EU_PORT cluster_psql -d postgres -c "CREATE DATABASE app"
src_psql -c "$SCHEMA" >/dev/null
eu_psql -c "$SCHEMA" >/dev/null

# Source (single-cluster mode): two EU tenants and one US tenant, rows in every table, awkward values included.
src_psql <<'SQL' >/dev/null
SELECT tenancy.create_tenant('EU One', 'eu-one', 'team', 'eu', admin_email => 'owner@eu-one.io');
SELECT tenancy.create_tenant('EU Two', 'eu-two', 'enterprise', 'eu');
SELECT tenancy.create_tenant('US One', 'us-one', 'developer', 'us');
SELECT tenancy.set_quota_override(id, 'projects', 500) FROM tenancy.tenants WHERE slug = 'eu-one';
INSERT INTO projects (tenant_id, name, secret)
SELECT t.id, t.slug || ' project ' || g, tenancy.encrypt(t.id, 'secret ' || g)
  FROM tenancy.tenants t, generate_series(1, 50) g;
INSERT INTO tasks (tenant_id, project_id, title, payload)
SELECT p.tenant_id, p.id, E'task \\ "' || g || E'"\n\ttab', jsonb_build_object('g', g, 'u', 'ü€')
  FROM projects p, generate_series(1, 20) g;
INSERT INTO events SELECT t.id, g, decode(md5(g::text), 'hex') FROM tenancy.tenants t, generate_series(1, 300) g;
SQL
id_of() { src_psql -At -c "SELECT id FROM tenancy.tenants WHERE slug = '$1'"; }
EU_ONE=$(id_of eu-one); EU_TWO=$(id_of eu-two); US_ONE=$(id_of us-one)

# Per-table checksums of a manifest (data tables only: the audit log of each cluster has its own history).
CHECKSUMS="SELECT string_agg(e.value ->> 'table' || '=' || (e.value ->> 'rows') || ':' || (e.value ->> 'sha256'), E'\n'
                             ORDER BY e.value ->> 'table')
             FROM jsonb_array_elements(tenancy.export_manifest(\$1) -> 'manifest' -> 'tables') e
            WHERE e.value ->> 'kind' <> 'audit'"
checksums() { # checksums PSQL_FN TENANT
  "$1" -At -v t="$2" <<SQL
PREPARE c(uuid) AS $CHECKSUMS;
EXECUTE c(:'t');
SQL
}
# jsonb documents are loaded with COPY in CSV mode with quote/delimiter bytes that JSON text never contains, so
# nothing in them is unescaped on the way.
load_doc() { # load_doc PSQL_FN FILE -> runs in a temp table "doc"
  "$1" -c "SET client_min_messages = warning; CREATE TABLE IF NOT EXISTS import_doc (doc jsonb); TRUNCATE import_doc" \
       -c "\\copy import_doc FROM '$2' WITH (FORMAT csv, QUOTE E'\\x01', DELIMITER E'\\x02')"
}

# 1. The document form: eu-one.
src_psql -At -c "SELECT tenancy.export_tenant('$EU_ONE')" > "$TENANCY_TMP/eu-one.json"
[ -s "$TENANCY_TMP/eu-one.json" ] || fail "empty export"
before=$(checksums src_psql "$EU_ONE")
load_doc eu_psql "$TENANCY_TMP/eu-one.json"
eu_psql -At -c "SELECT tenancy.import_tenant(doc) FROM import_doc" | grep -qx "$EU_ONE" || fail "import returned another id"
after=$(checksums eu_psql "$EU_ONE")
echo "eu-one source:"; echo "$before"
[ "$before" = "$after" ] || { echo "eu-one target:"; echo "$after"; fail "checksums differ after import"; }
grep -q '^public.tasks=1000:' <<<"$before" || fail "tasks rows missing from the export"
grep -q '^tenancy.tenant_keys=1:' <<<"$before" || fail "wrapped key missing from the export"

# The tenant works on the target: the app reads its rows under its context, the secrets decrypt (same master key).
works=$(eu_psql -At <<SQL | sed '/^$/d' | tr '\n' ' '

BEGIN;
SELECT tenancy.set_tenant('$EU_ONE');
SELECT count(*) FROM projects;
SELECT count(*) FROM tasks;
SELECT count(*) FROM events;
SELECT tenancy.decrypt(secret) FROM projects WHERE name = 'eu-one project 7';
COMMIT;
SQL
)
[ "$works" = "50 1000 300 secret 7 " ] || fail "imported tenant does not work on the target: $works"
# Identity keys came along as they were; the target's sequence moved past them, so the application's next rows fit.
next_task=$(eu_psql -At <<SQL | sed '/^$/d' | tail -1
BEGIN;
SELECT tenancy.set_tenant('$EU_ONE');
INSERT INTO tasks (tenant_id, project_id, title) SELECT tenant_id, id, 'after import' FROM projects LIMIT 1 RETURNING id;
ROLLBACK;
SQL
)
[ "$next_task" -gt 1000 ] 2>/dev/null || fail "a new task after the import got id $next_task"
# Nothing of any other tenant came along.
others=$(eu_psql -At -c "SELECT (SELECT count(*) FROM tenancy.tenants WHERE id <> '$EU_ONE')
                              + (SELECT count(*) FROM tenancy.users WHERE tenant_id <> '$EU_ONE')")
[ "$others" = 0 ] || fail "rows of other tenants on the target"
[ "$(eu_psql -At -c "SELECT count(*) FROM tenancy.verify_audit_log()")" = 0 ] || fail "target audit chain broken"

# 2. The COPY form: eu-two, every table's COPY into its own file and then the manifest, in one snapshot. Each file
# is plain COPY text whose sha256sum is the manifest's checksum for that table.
src_psql -At -c "SELECT ord || ' ' || copy_sql FROM tenancy.export_tables('$EU_TWO') ORDER BY ord" > "$TENANCY_TMP/eu-two.plan"
{
  echo "BEGIN ISOLATION LEVEL REPEATABLE READ;"
  while read -r ord sql; do q=${sql#COPY }; echo "\\copy ${q% TO STDOUT} TO '$TENANCY_TMP/eu-two.$ord.copy'"; done \
    < "$TENANCY_TMP/eu-two.plan"
  echo "\\o $TENANCY_TMP/eu-two.manifest.json"
  echo "SELECT tenancy.export_manifest('$EU_TWO');"
  echo "\\o"
  echo "COMMIT;"
} > "$TENANCY_TMP/eu-two.export.sql"
src_psql -q -At -v ON_ERROR_STOP=1 -f "$TENANCY_TMP/eu-two.export.sql" >/dev/null || fail "COPY-form export failed"
while read -r ord _; do
  want=$(jq -r ".manifest.tables[$((ord - 1))].sha256" "$TENANCY_TMP/eu-two.manifest.json")
  got=$(sha256sum "$TENANCY_TMP/eu-two.$ord.copy" | cut -d' ' -f1)
  [ "$want" = "$got" ] || fail "COPY file $ord: sha256sum $got, manifest $want"
done < "$TENANCY_TMP/eu-two.plan"
TASKS_ORD=$(jq -r '.manifest.tables | map(.table) | index("public.tasks") + 1' "$TENANCY_TMP/eu-two.manifest.json")
[ "$(wc -l < "$TENANCY_TMP/eu-two.$TASKS_ORD.copy")" = 1000 ] || fail "tasks COPY file does not hold 1000 rows"
# import_copied DIR MANIFEST [NEW_ID]: import_tables, each file through its COPY, import_tenant_copied, one transaction
import_copied() {
  load_doc eu_psql "$2"
  eu_psql -At -c "SELECT ord || ' ' || copy_sql FROM tenancy.import_tables((SELECT doc -> 'manifest' FROM import_doc))" \
    > "$TENANCY_TMP/import.plan"
  {
    echo "BEGIN;"
    echo "SELECT count(*) > 0 FROM tenancy.import_tables((SELECT doc -> 'manifest' FROM import_doc));"
    while read -r ord sql; do q=${sql#COPY }; echo "\\copy ${q% FROM STDIN} FROM '$1.$ord.copy'"; done \
      < "$TENANCY_TMP/import.plan"
    echo "\\set VERBOSITY sqlstate"
    echo "SELECT tenancy.import_tenant_copied((SELECT doc -> 'manifest' FROM import_doc)${3:+, '$3'});"
    echo "COMMIT;"
  } > "$TENANCY_TMP/import.sql"
  eu_psql -At -v ON_ERROR_STOP=1 -f "$TENANCY_TMP/import.sql" 2>&1 || true
}
out=$(import_copied "$TENANCY_TMP/eu-two" "$TENANCY_TMP/eu-two.manifest.json")
grep -qx "$EU_TWO" <<<"$out" || fail "COPY-form import failed: $out"
[ "$(checksums src_psql "$EU_TWO")" = "$(checksums eu_psql "$EU_TWO")" ] || fail "COPY-form import checksums differ"

# A tampered COPY form is refused (TN005) and leaves nothing: a changed row, a dropped row, a changed manifest count.
eu_psql -c "SELECT tenancy.delete_tenant('$EU_TWO', erase => true)" >/dev/null
mkdir -p "$TENANCY_TMP/tampered"
tamper_copy() { # tamper_copy NAME SED_EXPRESSION [JQ_FILTER]
  for f in "$TENANCY_TMP"/eu-two.*.copy; do cp "$f" "$TENANCY_TMP/tampered/${f##*/}"; done
  [ -z "$2" ] || sed -i "$2" "$TENANCY_TMP/tampered/eu-two.$TASKS_ORD.copy"
  jq -c "${3:-.}" "$TENANCY_TMP/eu-two.manifest.json" > "$TENANCY_TMP/tampered/manifest.json"
  out=$(import_copied "$TENANCY_TMP/tampered/eu-two" "$TENANCY_TMP/tampered/manifest.json")
  echo "tampered COPY form ($1): $out"
  grep -q "TN005" <<<"$out" || fail "tampered COPY form ($1) not refused with TN005"
  [ "$(eu_psql -At -c "SELECT count(*) FROM tenancy.tenants WHERE id = '$EU_TWO'")" = 0 ] \
    || fail "a refused COPY-form import ($1) left the tenant behind"
}
tamper_copy "changed row" '1s/task/tusk/'
tamper_copy "dropped row" '$d'
tamper_copy "changed count" '' ".manifest.tables[$((TASKS_ORD - 1))].rows += 1"
# ... and the untouched files still import afterwards.
out=$(import_copied "$TENANCY_TMP/eu-two" "$TENANCY_TMP/eu-two.manifest.json")
grep -qx "$EU_TWO" <<<"$out" || fail "COPY-form import after the refused ones failed: $out"

# 3. A tampered document is refused with TN005 and leaves nothing behind.
eu_psql -c "SELECT tenancy.delete_tenant('$EU_ONE', erase => true)" >/dev/null
load_doc eu_psql "$TENANCY_TMP/eu-one.json"
out=$(eu_psql -At -v ON_ERROR_STOP=0 -v VERBOSITY=sqlstate 2>&1 <<'SQL'
\set VERBOSITY sqlstate
SELECT tenancy.import_tenant(jsonb_set(doc, '{data,public.projects,3}',
                                      to_jsonb(replace(doc #>> '{data,public.projects,3}', 'project', 'changed'))))
  FROM import_doc;
SELECT tenancy.import_tenant(jsonb_set(doc, '{data,public.tasks}', (doc -> 'data' -> 'public.tasks') - 0)) FROM import_doc;
SELECT tenancy.import_tenant(jsonb_set(doc, ARRAY['manifest', 'tables', (
         SELECT (e.i - 1)::text FROM jsonb_array_elements(doc -> 'manifest' -> 'tables') WITH ORDINALITY e(v, i)
          WHERE e.v ->> 'table' = 'public.events'), 'rows'], '301'))
  FROM import_doc;
SQL
)
echo "tampered: $out"
[ "$(echo "$out" | grep -c "TN005")" = 3 ] || fail "tampered document (changed row, dropped row, changed count) not refused with TN005"
[ "$(eu_psql -At -c "SELECT count(*) FROM tenancy.tenants WHERE id = '$EU_ONE'") $(eu_psql -At -c "SELECT count(*) FROM projects")" = "0 50" ] \
  || fail "a refused import left rows behind"

# 4. Residency: the EU cluster refuses a US tenant, created there or imported.
src_psql -At -c "SELECT tenancy.export_tenant('$US_ONE')" > "$TENANCY_TMP/us-one.json"
load_doc eu_psql "$TENANCY_TMP/us-one.json"
out=$(eu_psql -At -v ON_ERROR_STOP=0 2>&1 <<'SQL'
\set VERBOSITY verbose
SELECT tenancy.import_tenant(doc) FROM import_doc;
SELECT tenancy.create_tenant('US Two', 'us-two', 'team', 'us');
SQL
)
echo "$out"
[ "$(echo "$out" | grep -c 'ERROR:  TN005: data residency "us" is not served by this cluster')" = 2 ] || fail "US tenant not refused"
grep -q 'HINT:  Create the tenant on the cluster of region "us"' <<<"$out" || fail "hint does not name the region"
[ "$(eu_psql -At -c "SELECT count(*) FROM tenancy.tenants WHERE data_residency <> 'eu'")" = 0 ] || fail "US tenant stored"
# ... and an EU tenant is welcome.
eu_psql -At -c "SELECT data_residency FROM tenancy.create_tenant('EU Three', 'eu-three', 'team', 'eu')" | grep -qx eu \
  || fail "EU tenant refused"
# 5. A move (docs/residency.md section 4): the US tenant lands on the EU cluster with its residency changed in the
# same transaction, the check lifted for that transaction only.
moved=$(eu_psql -At <<SQL | sed '/^$/d' | tr '\n' ' '
BEGIN;
SET LOCAL tenancy.region = '';
SELECT tenancy.import_tenant(doc) FROM import_doc;
SELECT data_residency FROM tenancy.update_tenant('$US_ONE', '{"data_residency": "eu"}');
COMMIT;
SHOW tenancy.region;
SELECT count(*) FROM projects WHERE tenant_id = '$US_ONE';
SQL
)
[ "$moved" = "$US_ONE eu eu 50 " ] || fail "move to the EU cluster: $moved"
echo "export_import: ok"
