#!/usr/bin/env bash
# test/integration/quota_crash.sh
# pg_ctl stop -m immediate while 16 clients consume: after restart the recorded usage is at least the number of
# successes the clients saw (never under-counts) and at most that plus the documented bound (one reservation block,
# tenancy.quota_max_block, plus the calls in flight at the crash); a limit is never exceeded across a crash either.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

CLIENTS=16
MAX_BLOCK=4096
start_cluster quota_crash "fsync = on" "synchronous_commit = on"
cluster_psql -d postgres -c "CREATE EXTENSION tenancy"
tenant=$(cluster_psql -d postgres -At -c "SELECT id FROM tenancy.create_tenant('Crash', 'crash', 'enterprise')")
capped=$(cluster_psql -d postgres -At -c "SELECT id FROM tenancy.create_tenant('Capped', 'capped', 'enterprise')")
cluster_psql -d postgres -c "SELECT tenancy.set_quota_override('$capped', 'ai_requests', 5000)" >/dev/null
# Row counts: 500 tracked rows, whose counter reserved a block ahead of them before the crash.
cluster_psql -d postgres >/dev/null <<SQL
CREATE TABLE projects (tenant_id uuid, name text);
SELECT tenancy.track_quota('projects', 'projects');
SELECT tenancy.set_quota_override('$tenant', 'projects', 100000);
INSERT INTO projects SELECT '$tenant', 'p' || g FROM generate_series(1, 500) g;
SQL

# Every call is granted (the limit is far away), so each transaction pgbench completes is a success a client saw.
echo "SELECT tenancy.consume(:tenant::uuid, 'api_calls');" > "$TENANCY_TMP/crash.sql"
echo "SELECT tenancy.consume(:capped::uuid, 'ai_requests');" > "$TENANCY_TMP/capped.sql"
chmod 644 "$TENANCY_TMP"/*.sql
as_pg pgbench -n -M prepared -c "$CLIENTS" -j 2 -T 30 -D tenant="$tenant" -f "$TENANCY_TMP/crash.sql" \
  -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres postgres > "$TENANCY_TMP/pgbench.log" 2>&1 &
bench=$!
as_pg pgbench -n -M prepared -c 4 -j 1 -T 30 -D capped="$capped" -f "$TENANCY_TMP/capped.sql" \
  -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres postgres > "$TENANCY_TMP/pgbench-capped.log" 2>&1 &
capped_bench=$!
sleep 4
as_pg pg_ctl -D "$CLUSTER_DIR/data" -m immediate stop >/dev/null
wait "$bench" || true
wait "$capped_bench" || true
seen=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TENANCY_TMP/pgbench.log")
[ -n "$seen" ] || { cat "$TENANCY_TMP/pgbench.log"; echo "FAIL: no pgbench summary"; exit 1; }

as_pg pg_ctl -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR.log" -w -t 60 start >/dev/null
recorded=$(cluster_psql -d postgres -At -c "SELECT used FROM tenancy._quota_state('$tenant', 'api_calls')")
capped_used=$(cluster_psql -d postgres -At -c "SELECT used FROM tenancy._quota_state('$capped', 'ai_requests')")
bound=$((seen + MAX_BLOCK + CLIENTS))
echo "successes seen by clients: $seen; recorded after restart: $recorded; bound: $bound; capped counter: $capped_used"
[ "$seen" -gt 1000 ] || { echo "FAIL: too little load before the crash"; exit 1; }
[ "$recorded" -ge "$seen" ] || { echo "FAIL: under-count after the crash"; exit 1; }
[ "$recorded" -le "$bound" ] || { echo "FAIL: over-count beyond the documented bound"; exit 1; }
[ "$capped_used" -le 5000 ] || { echo "FAIL: the capped counter passed its limit across the crash"; exit 1; }

# A row count is recounted when its counter loads: exact after the crash, not one block high.
projects=$(cluster_psql -d postgres -At -c "SELECT used FROM tenancy._quota_state('$tenant', 'projects')")
echo "projects counted after restart: $projects (rows: 500)"
[ "$projects" = 500 ] || { echo "FAIL: row count not exact after the crash"; exit 1; }

# Metering goes on after the restart, from the recorded figure; the capped counter stops exactly at its limit.
[ "$(cluster_psql -d postgres -At -c "SELECT tenancy.consume('$tenant', 'api_calls', 10)")" = t ]
[ "$(cluster_psql -d postgres -At -c "SELECT used FROM tenancy._quota_state('$tenant', 'api_calls')")" = $((recorded + 10)) ]
left=$((5000 - capped_used))
if [ "$left" -gt 0 ]; then
  [ "$(cluster_psql -d postgres -At -c "SELECT tenancy.consume('$capped', 'ai_requests', $left)")" = t ]
fi
[ "$(cluster_psql -d postgres -At -c "SELECT tenancy.consume('$capped', 'ai_requests')")" = f ]
echo "ok: crash bound holds"
