#!/usr/bin/env bash
# bench/residency/move.sh
# Live move of a ROWS-row tenant between two region clusters (write freeze and total time), side by side with the
# stop-the-world export/import move of an identical tenant (its write stop is the whole export + import).
#   usage: TENANCY_PGBIN=<bin dir of a server with tenancy installed> bench/residency/move.sh [runs=3] [rows=100000]
# make check leaves such an install in /tmp/tenancy-check.*/inst with TENANCY_KEEP=1. Starts its own clusters.
set -uo pipefail
RUNS=${1:-3}
ROWS=${2:-100000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export TENANCY_ROOT=$ROOT
: "${TENANCY_PGBIN:?set TENANCY_PGBIN to the bin directory of a server with tenancy installed}"
source "$ROOT/bench/lib/private_server.sh"
bench_scratch tenancy-bench-move
source "$ROOT/test/integration/residency_move_lib.bash"
trap 'stop_all_clusters; rm -rf "$TENANCY_TMP"' EXIT
start_regions >/dev/null || exit 1

median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# A tenant of ROWS rows: 90 % items (identity keys), 10 % events (hash-partitioned), 20 projects with secrets.
make_tenant() { # make_tenant SLUG -> prints its id
  eu_psql -At -v rows="$ROWS" -v slug="$1" <<'SQL' | tail -1
SELECT (tenancy.create_tenant('Bench ' || :'slug', :'slug', 'enterprise', 'eu')).id AS id \gset t_
INSERT INTO items (tenant_id, n, payload) SELECT :'t_id', g, repeat('x', 40) FROM generate_series(1, (:rows * 0.9)::int) g;
INSERT INTO events SELECT :'t_id', g, 'event ' || g FROM generate_series(1, (:rows * 0.1)::int) g;
INSERT INTO projects (tenant_id, name, secret) SELECT :'t_id', 'p' || g, tenancy.encrypt(:'t_id', 's' || g)
  FROM generate_series(1, 20) g;
SELECT :'t_id';
SQL
}

: > "$TENANCY_TMP/freeze"; : > "$TENANCY_TMP/total"; : > "$TENANCY_TMP/stop"
for run in $(seq 1 "$RUNS"); do
  # Live move.
  t=$(make_tenant "live-$run")
  echo eu > "$TENANCY_TMP/directory.$t"
  move_tenant "$t" > "$TENANCY_TMP/move.out" || { cat "$TENANCY_TMP/move.out"; echo "live move failed"; exit 1; }
  grep "^move of" "$TENANCY_TMP/move.out"
  echo "$MOVE_FREEZE_MS" >> "$TENANCY_TMP/freeze"
  echo "$MOVE_TOTAL_MS" >> "$TENANCY_TMP/total"
  # Stop-the-world baseline (docs/residency.md 4.3): suspend, export, import on the target, erase on the source.
  b=$(make_tenant "stop-$run")
  t0=$(now_ms)
  eu_psql -c "SELECT tenancy.update_tenant('$b', '{\"status\": \"suspended\"}')" >/dev/null
  eu_psql -At -c "SELECT tenancy.export_tenant('$b')" > "$TENANCY_TMP/doc.json"
  us_psql >/dev/null <<SQL || { echo "baseline import failed"; exit 1; }
CREATE TEMP TABLE import_doc (doc jsonb);
\copy import_doc FROM '$TENANCY_TMP/doc.json' WITH (FORMAT csv, QUOTE E'\x01', DELIMITER E'\x02')
BEGIN;
SET LOCAL tenancy.region = '';
SELECT tenancy.import_tenant(doc) FROM import_doc;
SELECT tenancy.update_tenant('$b', '{"data_residency": "us", "status": "active"}');
COMMIT;
SQL
  echo $(( $(now_ms) - t0 )) >> "$TENANCY_TMP/stop"
  eu_psql -c "SELECT tenancy.delete_tenant('$b', erase => true)" >/dev/null
  echo "run $run: live freeze $(tail -1 "$TENANCY_TMP/freeze") ms, live total $(tail -1 "$TENANCY_TMP/total") ms," \
       "export/import write stop $(tail -1 "$TENANCY_TMP/stop") ms"
done
F=$(median < "$TENANCY_TMP/freeze"); T=$(median < "$TENANCY_TMP/total"); S=$(median < "$TENANCY_TMP/stop")
echo "median over $RUNS runs, $ROWS rows: live move write freeze $F ms (goal < 1000), live move total $T ms;" \
     "export/import write stop $S ms; freeze / stop = $(awk -v f="$F" -v s="$S" 'BEGIN {printf "%.3f", f / s}')"
