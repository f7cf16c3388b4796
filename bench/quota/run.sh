#!/usr/bin/env bash
# bench/quota/run.sh
# tenancy.consume beside its baselines in one run, interleaved: SELECT 1, the exact hot-row UPDATE (one tenant and
# 1,000 tenants) and Redis 7's INCR and Lua check-and-increment (the brief's design); 1-client latency vs SELECT 1.
#   DURATION=10 ROUNDS=2 bash bench/quota/run.sh      (as root, or as a user that can run PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/../.."
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CLIENTS=16
REDIS_REQUESTS=${REDIS_REQUESTS:-200000}

# A private server copy with tenancy installed (as test/run-tests.sh does), never the system one.
export TENANCY_TMP=$(mktemp -d /tmp/tenancy-bench.XXXXXX)
chmod 755 "$TENANCY_TMP"
[ "$(id -u)" = 0 ] && chown postgres: "$TENANCY_TMP"
PG_BINDIR=$(pg_config --bindir)
PG_SHAREDIR=$(pg_config --sharedir)
INST="$TENANCY_TMP/inst"
mkdir -p "$INST$(dirname "$PG_BINDIR")" "$INST$(dirname "$PG_SHAREDIR")"
cp -a "$(dirname "$PG_BINDIR")/." "$INST$(dirname "$PG_BINDIR")/"
cp -a "$PG_SHAREDIR" "$INST$(dirname "$PG_SHAREDIR")/"
make -j"$(nproc)" >"$TENANCY_TMP/build.log" 2>&1
make install DESTDIR="$INST" >"$TENANCY_TMP/install.log" 2>&1
export TENANCY_PGBIN="$INST$PG_BINDIR"
echo "shared_preload_libraries = 'tenancy'" > "$TENANCY_TMP/tenancy-test.conf"
source test/lib/common.sh
REDIS_PORT=$(free_port)
cleanup() {
  stop_all_clusters
  redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$TENANCY_TMP"
}
trap cleanup EXIT

# Durable commits, as in the issue's reference figures (start_cluster's fsync = off is overridden).
start_cluster bench "fsync = on" "synchronous_commit = on" "shared_buffers = 256MB"
cluster_psql -d postgres >/dev/null <<'SQL'
SET client_min_messages = warning;
CREATE EXTENSION tenancy;
-- the hot tenant (number 0) and 1,000 tenants whose ids derive from a number, so pgbench can pick one at random
INSERT INTO tenancy.tenants (id, organization_name, slug, plan)
SELECT pg_catalog.lpad(pg_catalog.to_hex(n), 32, '0')::uuid, 'Tenant ' || n, 'bench-' || n, 'enterprise'
  FROM generate_series(0, 1000) n;
-- limits far away: every call is granted, so each side does its full work every time
INSERT INTO tenancy.quota_overrides SELECT id, 'api_calls', 1000000000000000 FROM tenancy.tenants;
CREATE TABLE hot_quota (tenant_id uuid PRIMARY KEY, used bigint NOT NULL, max bigint NOT NULL);
INSERT INTO hot_quota SELECT id, 0, 1000000000000000 FROM tenancy.tenants;
VACUUM ANALYZE;
-- warm counters, as in a running system: the first call of each counter loads it and writes its first block
SELECT count(*) FROM tenancy.tenants t WHERE tenancy.consume(t.id, 'api_calls');
SQL
HOT=00000000-0000-0000-0000-000000000000
W="$TENANCY_TMP/scripts"
mkdir -p "$W"
echo "SELECT 1;" > "$W/select1.sql"
echo "UPDATE hot_quota SET used = used + 1 WHERE tenant_id = :t::uuid AND used + 1 <= max;" > "$W/update_hot.sql"
printf '%s\n' "\\set n random(1, 1000)" \
  "UPDATE hot_quota SET used = used + 1 WHERE tenant_id = lpad(to_hex(:n::int), 32, '0')::uuid AND used + 1 <= max;" \
  > "$W/update_1000.sql"
echo "SELECT tenancy.consume(:t::uuid, 'api_calls');" > "$W/consume_hot.sql"
printf '%s\n' "\\set n random(1, 1000)" \
  "SELECT tenancy.consume(lpad(to_hex(:n::int), 32, '0')::uuid, 'api_calls');" > "$W/consume_1000.sql"
chmod -R a+rX "$W"

pgb() { # pgb SCRIPT CLIENTS -> "tps latency_ms"
  local out
  out=$(as_pg pgbench -n -M prepared -c "$2" -j 2 -T "$DURATION" -D t=$HOT -f "$W/$1.sql" \
        -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres postgres 2>&1) || { echo "$out" >&2; return 1; }
  echo "$(echo "$out" | sed -n 's/^tps = \([0-9.]*\).*/\1/p') $(echo "$out" | sed -n 's/^latency average = \([0-9.]*\) ms/\1/p')"
}

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --logfile "$TENANCY_TMP/redis.log" >/dev/null
sleep 1
# The brief's check-and-increment made atomic (a GET then INCR from the client would race past the limit).
LUA="local v = tonumber(redis.call('GET', KEYS[1]) or '0') if v + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return 0 end redis.call('INCRBY', KEYS[1], ARGV[1]) return 1"
redis_ops() { # redis_ops incr|lua -> ops/s
  local out
  if [ "$1" = incr ]; then
    out=$(redis-benchmark -p "$REDIS_PORT" -c $CLIENTS -n "$REDIS_REQUESTS" -q incr "tenant_usage:$HOT:api_calls" 2>&1)
  else
    out=$(redis-benchmark -p "$REDIS_PORT" -c $CLIENTS -n "$REDIS_REQUESTS" -q \
          eval "$LUA" 1 "tenant_usage:$HOT:api_calls" 1 1000000000000000 2>&1)
  fi
  echo "$out" | tr '\r' '\n' | sed -n 's/.*: \([0-9.]*\) requests per second.*/\1/p' | tail -1
}

declare -A R
for round in $(seq 1 "$ROUNDS"); do
  for t in select1 update_hot consume_hot update_1000 consume_1000; do
    set -- $(pgb "$t" $CLIENTS)
    R[$t]+="$1 "
    echo "round $round $t: $1 tps" >&2
  done
  R[redis_incr]+="$(redis_ops incr) "
  R[redis_lua]+="$(redis_ops lua) "
  echo "round $round redis (ops/s): incr ${R[redis_incr]} lua ${R[redis_lua]}" >&2
  # 1 client, both scripts in one run (pgbench alternates them at random): the same moments of a shared machine
  out=$(as_pg pgbench -n -M prepared -c 1 -T "$DURATION" -D t=$HOT -f "$W/select1.sql" -f "$W/consume_hot.sql" \
        -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres postgres 2>&1)
  lat=($(echo "$out" | sed -n 's/^ - latency average = \([0-9.]*\) ms/\1/p'))
  R[lat_select1]+="${lat[0]} "
  R[lat_consume]+="${lat[1]} "
  echo "round $round 1-client latency (ms): select1 ${R[lat_select1]} consume ${R[lat_consume]}" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
m() { echo "${R[$1]}" | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

echo
echo "medians of $ROUNDS interleaved rounds, ${DURATION}s each, $CLIENTS clients, pgbench -M prepared, durable commits"
printf '%-44s %12s\n' "SELECT 1 (tps)" "$(m select1)"
printf '%-44s %12s\n' "hot-row UPDATE, one tenant (tps)" "$(m update_hot)"
printf '%-44s %12s\n' "hot-row UPDATE, 1,000 tenants (tps)" "$(m update_1000)"
printf '%-44s %12s\n' "consume, one hot tenant (tps)" "$(m consume_hot)"
printf '%-44s %12s\n' "consume, 1,000 random tenants (tps)" "$(m consume_1000)"
printf '%-44s %12s\n' "redis INCR (ops/s, redis-benchmark -c 16)" "$(m redis_incr)"
printf '%-44s %12s\n' "redis Lua check-and-increment (ops/s)" "$(m redis_lua)"
printf '%-44s %12s\n' "1 client: SELECT 1 latency (ms)" "$(m lat_select1)"
printf '%-44s %12s\n' "1 client: consume latency (ms)" "$(m lat_consume)"
echo
echo "ratios (goal in brackets)"
echo "consume hot / SELECT 1:            $(ratio "$(m consume_hot)" "$(m select1)")  [>= 0.8]"
echo "consume hot / hot-row UPDATE:      $(ratio "$(m consume_hot)" "$(m update_hot)")  [>= 5]"
echo "consume 1,000 / SELECT 1:          $(ratio "$(m consume_1000)" "$(m select1)")  [>= 0.8]"
echo "consume 1,000 / UPDATE 1,000:      $(ratio "$(m consume_1000)" "$(m update_1000)")"
echo "consume hot / redis Lua:           $(ratio "$(m consume_hot)" "$(m redis_lua)")  [>= 0.75]"
echo "1-client latency consume/SELECT 1: $(ratio "$(m lat_consume)" "$(m lat_select1)")  [<= 1.10]"
