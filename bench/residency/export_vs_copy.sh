#!/usr/bin/env bash
# bench/residency/export_vs_copy.sh
# Export of one 100,000-row tenant (the export_tenant document, and the COPY form: export_tables' COPY statements
# plus export_manifest) against plain COPY (SELECT * FROM t WHERE tenant_id = ...) TO STDOUT of the same tables,
# same run, ratios printed.
#   usage: PGHOST=... PGPORT=... PGUSER=<superuser> bench/residency/export_vs_copy.sh [runs=5] [rows=100000]
# Needs a database where CREATE EXTENSION tenancy works (it creates and drops "tenancy_bench_export").
set -euo pipefail
RUNS=${1:-5}
ROWS=${2:-100000}
DB=tenancy_bench_export
trap 'dropdb --if-exists "$DB" >/dev/null 2>&1 || true' EXIT
q() { psql -X -q -v ON_ERROR_STOP=1 -d "$DB" "$@"; }

dropdb --if-exists "$DB" >/dev/null 2>&1 || true
createdb "$DB"
# A tenant with ROWS rows over three tables (50 % tasks, 30 % events in a hash-partitioned table, 20 % projects),
# and a second tenant of the same size that every query must skip.
q -v rows="$ROWS" <<'SQL' >/dev/null
CREATE EXTENSION tenancy;
CREATE TABLE projects (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL, name text NOT NULL,
                       budget numeric, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE tasks (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL,
                    project_id uuid NOT NULL REFERENCES projects (id), title text, done boolean DEFAULT false,
                    payload jsonb);
CREATE TABLE events (tenant_id uuid NOT NULL, seq bigint NOT NULL, body text, PRIMARY KEY (tenant_id, seq))
  PARTITION BY HASH (tenant_id);
CREATE TABLE events_p0 PARTITION OF events FOR VALUES WITH (MODULUS 4, REMAINDER 0);
CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 4, REMAINDER 1);
CREATE TABLE events_p2 PARTITION OF events FOR VALUES WITH (MODULUS 4, REMAINDER 2);
CREATE TABLE events_p3 PARTITION OF events FOR VALUES WITH (MODULUS 4, REMAINDER 3);
SELECT tenancy.enable_isolation(t) FROM unnest(ARRAY['projects', 'tasks', 'events']::regclass[]) t;
SELECT tenancy.create_tenant('Bench ' || s, 'bench-' || s, 'enterprise', 'us') FROM unnest(ARRAY['a', 'b']) s;
INSERT INTO projects (tenant_id, name, budget)
SELECT t.id, 'project ' || g, g * 10.5 FROM tenancy.tenants t, generate_series(1, (:rows * 0.2)::int) g;
INSERT INTO tasks (tenant_id, project_id, title, payload)
SELECT x.tenant_id, x.id, 'task ' || x.g || ' of ' || x.name, jsonb_build_object('estimate', x.g, 'labels', '["a","b"]'::jsonb)
  FROM (SELECT p.*, g, row_number() OVER (PARTITION BY p.tenant_id) AS n FROM projects p, generate_series(1, 3) g) x
 WHERE x.n <= (:rows * 0.5)::int;
INSERT INTO events SELECT t.id, g, repeat(md5(g::text), 2) FROM tenancy.tenants t, generate_series(1, (:rows * 0.3)::int) g;
VACUUM ANALYZE;
SQL
T=$(q -At -c "SELECT id FROM tenancy.tenants WHERE slug = 'bench-a'")
counts=$(q -At -c "SELECT (SELECT count(*) FROM projects WHERE tenant_id = '$T') || ' projects, '
                          || (SELECT count(*) FROM tasks WHERE tenant_id = '$T') || ' tasks, '
                          || (SELECT count(*) FROM events WHERE tenant_id = '$T') || ' events'")
echo "tenant rows: $counts (a second tenant of the same size in the same tables)"

now() { date +%s.%N; }
baseline() { # the same tables' rows of the tenant with plain COPY, as a DBA would dump them
  for t in projects tasks events; do
    q -c "COPY (SELECT * FROM $t WHERE tenant_id = '$T') TO STDOUT" >/dev/null
  done
}
document() { q -At -c "SELECT tenancy.export_tenant('$T')" >/dev/null; }
streamed() { # the COPY form as docs/residency.md runs it: every table's COPY, then the manifest, one snapshot
  q <<SQL >/dev/null
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT copy_sql FROM tenancy.export_tables('$T') \\gexec
SELECT tenancy.export_manifest('$T');
COMMIT;
SQL
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
timed() { local s; s=$(now); "$1"; echo "$(now) - $s" | bc; }
# One warm-up of each, then RUNS rounds with the three methods interleaved, so a burst of load on the (shared)
# machine hits all of them alike; medians per method.
baseline; document; streamed
: > /tmp/tenancy-bench-export.$$
for _ in $(seq 1 "$RUNS"); do
  echo "base $(timed baseline)" >> /tmp/tenancy-bench-export.$$
  echo "doc $(timed document)" >> /tmp/tenancy-bench-export.$$
  echo "stream $(timed streamed)" >> /tmp/tenancy-bench-export.$$
done
pick() { awk -v k="$1" '$1 == k {print $2}' /tmp/tenancy-bench-export.$$ | median; }
base=$(pick base); doc=$(pick doc); stream=$(pick stream)
rm -f /tmp/tenancy-bench-export.$$
size=$(q -At -c "SELECT pg_size_pretty(octet_length(tenancy.export_tenant('$T')::text)::bigint)")
printf '%-34s %10s %8s\n' method median_s speed_vs_copy
printf '%-34s %10.3f %8s\n' "COPY ... WHERE tenant_id (3 tables)" "$base" "1.00"
printf '%-34s %10.3f %8.2f\n' "export_tenant (one jsonb, $size)" "$doc" "$(echo "scale=4; $base / $doc" | bc)"
printf '%-34s %10.3f %8.2f\n' "COPY form (export_tables+manifest)" "$stream" "$(echo "scale=4; $base / $stream" | bc)"
