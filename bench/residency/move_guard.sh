#!/usr/bin/env bash
# bench/residency/move_guard.sh
# Cost of the live move's guard trigger (tenancy._move_guard, on every guarded table while any move runs): ROWS-row
# INSERT, UPDATE and DELETE of a tenant that is not moving, without guards and with them, side by side.
#   usage: TENANCY_PGBIN=<bin dir of a server with tenancy installed> bench/residency/move_guard.sh [runs=3] [rows=20000]
set -uo pipefail
RUNS=${1:-3}
ROWS=${2:-20000}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export TENANCY_ROOT=$ROOT
: "${TENANCY_PGBIN:?set TENANCY_PGBIN to the bin directory of a server with tenancy installed}"
source "$ROOT/bench/lib/private_server.sh"
bench_scratch tenancy-bench-guard
trap 'stop_all_clusters; rm -rf "$TENANCY_TMP"' EXIT
start_cluster guard >/dev/null || exit 1
# A move row of another tenant is enough to install the guards (what a running move does to every table).
cluster_psql -d postgres >/dev/null <<'SQL' || exit 1
CREATE EXTENSION tenancy;
CREATE TABLE b (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, payload text);
SELECT tenancy.enable_isolation('b');
SELECT tenancy.create_tenant('Bench', 'bench', 'enterprise', 'us');
INSERT INTO tenancy.tenant_moves (tenant_id, side, target_region, phase)
VALUES ('00000000-0000-0000-0000-0000000000aa', 'source', 'us', 'copying');
SQL
round() { # round -> "insert update delete" in ms
  cluster_psql -d postgres -v rows="$ROWS" <<'SQL' | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | xargs
\timing on
INSERT INTO b (tenant_id, payload) SELECT t.id, repeat('x', 40) FROM tenancy.tenants t, generate_series(1, :rows) g;
UPDATE b SET payload = 'y';
DELETE FROM b;
SQL
}
median() { sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
for run in $(seq 1 "$RUNS"); do
  for guards in false true; do
    cluster_psql -d postgres -c "SELECT tenancy._move_set_guards($guards)" >/dev/null || exit 1
    echo "$guards $(round)" | tee -a "$TENANCY_TMP/times"
  done
done
for guards in false true; do
  for col in 2 3 4; do
    awk -v g="$guards" -v c="$col" '$1 == g {print $c}' "$TENANCY_TMP/times" | median > "$TENANCY_TMP/m.$guards.$col"
  done
done
for col in 2 3 4; do
  name=$(sed -n "$((col - 1))p" <<<$'insert\nupdate\ndelete')
  echo "$name of $ROWS rows: no guard $(cat "$TENANCY_TMP/m.false.$col") ms, guard $(cat "$TENANCY_TMP/m.true.$col") ms," \
       "ratio $(awk -v a="$(cat "$TENANCY_TMP/m.true.$col")" -v b="$(cat "$TENANCY_TMP/m.false.$col")" 'BEGIN {printf "%.2f", a / b}')"
done
