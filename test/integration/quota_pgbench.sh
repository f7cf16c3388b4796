#!/usr/bin/env bash
# test/integration/quota_pgbench.sh
# 16 pgbench clients race 40,000 consumes at a limit of 20,000: exactly 20,000 are granted, with the counters in
# shared memory; pooled consumes of two children sharing a root's limit are as exact; then the table-only path
# (library not preloaded) is just as exact, and says so once per backend in the log.
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

# Pooled: 16 clients consume from two children sharing their root's 5,000 (each child may use 4,000 on its own):
# exactly 5,000 are granted, and the root's counter equals the sum of the children's.
pool=$(cluster_psql -d postgres -At <<'SQL'
SELECT set_config('client_min_messages', 'warning', false);
CREATE TABLE pooled_results (granted boolean NOT NULL);
WITH root AS (SELECT id FROM tenancy.create_tenant('Pool', 'pool-root', 'enterprise')),
     a AS (SELECT t.id FROM root, tenancy.create_tenant('Pool A', 'pool-a', 'enterprise', parent_tenant_id => root.id) t),
     b AS (SELECT t.id FROM root, tenancy.create_tenant('Pool B', 'pool-b', 'enterprise', parent_tenant_id => root.id) t)
SELECT root.id || ' ' || a.id || ' ' || b.id FROM root, a, b;
SQL
)
read -r pool_root pool_a pool_b <<<"$(echo "$pool" | tail -1)"
cluster_psql -d postgres >/dev/null <<SQL
SELECT tenancy.set_quota_override('$pool_root', 'ai_requests', 5000);
SELECT tenancy.set_quota_override('$pool_a', 'ai_requests', 4000);
SELECT tenancy.set_quota_override('$pool_b', 'ai_requests', 4000);
SQL
printf '%s\n' "\\set pick random(0, 1)" \
  "INSERT INTO pooled_results SELECT tenancy.consume_pooled(CASE WHEN :pick = 0 THEN :a::uuid ELSE :b::uuid END, 'ai_requests');" \
  > "$TENANCY_TMP/pooled.sql"
chmod 644 "$TENANCY_TMP/pooled.sql"
as_pg pgbench -n -M prepared -c 16 -j 2 -t 500 -D a="$pool_a" -D b="$pool_b" -f "$TENANCY_TMP/pooled.sql" \
  -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres postgres > "$TENANCY_TMP/pgbench-pooled.log" 2>&1 \
  || { cat "$TENANCY_TMP/pgbench-pooled.log"; exit 1; }
check "pooled: 8,000 consumes from two children at a shared 5,000" \
  "$(cluster_psql -d postgres -At -F ' ' -c "SELECT count(*) FILTER (WHERE granted),
      (SELECT used FROM tenancy._quota_state('$pool_root', 'ai_requests')),
      (SELECT used FROM tenancy._quota_state('$pool_a', 'ai_requests')) + (SELECT used FROM tenancy._quota_state('$pool_b', 'ai_requests'))
      FROM pooled_results")" "5000 5000 5000"
as_pg pg_ctl -D "$CLUSTER_DIR/data" -m fast stop >/dev/null

# The same race without the preload: the table-only path, one locked in-place write per call.
start_cluster quota_table "shared_preload_libraries = ''"
cluster_psql -d postgres -c "CREATE EXTENSION tenancy"
check "table path: 4,000 consumes at a limit of 2,000" "$(race table 2000 16 250)" "2000 2000 2000"
check "table path logged at most once per backend (16 clients, a few psql), not per call" \
  "$(( $(grep -c 'quota counters use the table-only path' "$CLUSTER_DIR.log") <= 24 ))" 1
check "table path: not in shared memory" \
  "$(cluster_psql -d postgres -At -c "SELECT shared FROM tenancy._quota_state((SELECT id FROM tenancy.tenants WHERE slug = 'race-table'), 'api_calls')")" f
