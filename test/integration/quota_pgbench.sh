#!/usr/bin/env bash
# test/integration/quota_pgbench.sh
# 16 pgbench clients race 40,000 consumes at a limit of 20,000: exactly 20,000 are granted, with the counters in
# shared memory; then the table-only path (library not preloaded) is just as exact, and says so once in the log.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

# race NAME LIMIT CLIENTS PER_CLIENT [AMOUNT]: prints "granted refused recorded"
race() {
  local name=$1 limit=$2 clients=$3 per_client=$4 amount=${5:-1} tenant
  tenant=$(cluster_psql -d postgres -At <<SQL
CREATE TABLE IF NOT EXISTS results (granted boolean NOT NULL);
SELECT id FROM tenancy.create_tenant('Race $name', 'race-$name', 'enterprise');
SQL
)
  tenant=$(echo "$tenant" | tail -1)
  cluster_psql -d postgres -c "SELECT tenancy.set_quota_override('$tenant', 'api_calls', $limit)" >/dev/null
  cat > "$TENANCY_TMP/race.sql" <<'SQL'
INSERT INTO results (granted) VALUES (tenancy.consume(:tenant::uuid, 'api_calls', :amount));
SQL
  chmod 644 "$TENANCY_TMP/race.sql"
  as_pg pgbench -n -M prepared -c "$clients" -j 2 -t "$per_client" -D tenant="$tenant" -D amount="$amount" -f "$TENANCY_TMP/race.sql" \
    -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres postgres > "$TENANCY_TMP/pgbench-$name.log" 2>&1 \
    || { cat "$TENANCY_TMP/pgbench-$name.log"; return 1; }
  grep -E "^(number of transactions actually processed|tps)" "$TENANCY_TMP/pgbench-$name.log" >&2
  cluster_psql -d postgres -At -F ' ' -c "SELECT count(*) FILTER (WHERE granted), count(*) FILTER (WHERE NOT granted),
      (SELECT used FROM tenancy._quota_state('$tenant', 'api_calls')) FROM results; TRUNCATE results"
}

check() { # check LABEL GOT WANT
  if [ "$2" != "$3" ]; then echo "FAIL $1: got '$2', want '$3'"; exit 1; fi
  echo "ok $1: $2"
}

start_cluster quota_shared
cluster_psql -d postgres -c "CREATE EXTENSION tenancy"
check "shared memory in use" "$(cluster_psql -d postgres -At -c "SELECT current_setting('shared_preload_libraries')")" tenancy
check "shared: 40,000 consumes at a limit of 20,000" "$(race shared 20000 16 2500)" "20000 20000 20000"
check "shared: amounts of 3 at a limit of 20,000 (not a multiple)" "$(race shared3 20000 16 500 3)" "6666 1334 19998"
as_pg pg_ctl -D "$CLUSTER_DIR/data" -m fast stop >/dev/null

# The same race without the preload: the table-only path, one locked in-place write per call.
start_cluster quota_table "shared_preload_libraries = ''"
cluster_psql -d postgres -c "CREATE EXTENSION tenancy"
check "table path: 4,000 consumes at a limit of 2,000" "$(race table 2000 16 250)" "2000 2000 2000"
check "table path logged at most once per backend (16 clients, a few psql), not per call" \
  "$(( $(grep -c 'quota counters use the table-only path' "$CLUSTER_DIR.log") <= 24 ))" 1
check "table path: not in shared memory" \
  "$(cluster_psql -d postgres -At -c "SELECT shared FROM tenancy._quota_state((SELECT id FROM tenancy.tenants WHERE slug = 'race-table'), 'api_calls')")" f
