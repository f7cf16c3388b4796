#!/usr/bin/env bash
# bench/daemon/run.sh
# tenancyd throughput against the SQL it wraps, in one run: wrk on GET /tenants/{id}/usage vs pgbench -M prepared
# running SELECT tenancy.usage(:id) (16 clients each), p99 latency, POST .../users creation rate, and the RSS of
# tenancyd sampled over a longer run. GET usage is measured twice side by side: through nginx with the shipped
# packaging/nginx/tenancyd.conf (the deployment users are given; goal p99 < 10 ms and >= 0.25x pgbench) and
# straight to the daemon. Usage: bash bench/daemon/run.sh [seconds per phase, 20] [rss seconds, 60] [rounds, 3]
# Each round runs pgbench and both wrk phases back to back and prints its ratios; the summary quotes the medians.
# Run `make` first (make install here only copies). Installs tenancy into a private copy of the server, like make check.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECS=${1:-20}
RSS_SECS=${2:-60}
ROUNDS=${3:-3}
source bench/lib/private_server.sh
source bench/lib/stats.sh
private_server tenancy-bench
DAEMON_PID=
NGINX_PREFIX="$TENANCY_TMP/nginx"
stop_nginx() { [ -f "$NGINX_PREFIX/nginx.pid" ] && kill -QUIT "$(cat "$NGINX_PREFIX/nginx.pid")" && sleep 0.5; }
trap 'stop_nginx; [ -n "$DAEMON_PID" ] && kill $DAEMON_PID; stop_all_clusters; rm -rf "$TENANCY_TMP"' EXIT

start_cluster bench "shared_buffers = 128MB" || exit 1
cluster_psql -d postgres -c "CREATE DATABASE app" >/dev/null
cluster_psql -d app -c "CREATE EXTENSION tenancy" >/dev/null
cluster_psql -d app -c "CREATE ROLE tenancyd LOGIN PASSWORD 'pw' IN ROLE tenancy_admin" >/dev/null
T=$(cluster_psql -d app -tAc "SELECT id FROM tenancy.create_tenant('Bench', 'bench', 'enterprise')")
cluster_psql -d app -c "SELECT tenancy.update_tenant('$T', '{\"status\": \"active\"}')" >/dev/null
ADMIN_TOKEN=$(openssl rand -hex 24)
PORT=$(free_port)
cat > "$TENANCY_TMP/tenancyd.yaml" <<YAML
listen: {host: 127.0.0.1, port: $PORT, threads: 16}
database: {conninfo: "host=127.0.0.1 port=$CLUSTER_PORT dbname=app user=tenancyd password=pw", pool_size: 16}
auth: {admin_token_sha256: "$(printf '%s' "$ADMIN_TOKEN" | sha256sum | cut -d' ' -f1)"}
log: {level: warn}
YAML
"$ROOT/build/tenancyd" --config "$TENANCY_TMP/tenancyd.yaml" 2>"$TENANCY_TMP/tenancyd.log" &
DAEMON_PID=$!
URL="http://127.0.0.1:$PORT"
for _ in $(seq 50); do curl -fs "$URL/readyz" >/dev/null && break; sleep 0.1; done
NGINX_PORT=$(free_port)
bash packaging/nginx/standalone.sh "$NGINX_PREFIX" "127.0.0.1:$NGINX_PORT" "127.0.0.1:$PORT" >/dev/null || exit 1
nginx -c "$NGINX_PREFIX/nginx.conf" -p "$NGINX_PREFIX" || exit 1
NGINX_URL="http://127.0.0.1:$NGINX_PORT"
for _ in $(seq 50); do curl -fs "$NGINX_URL/readyz" >/dev/null && break; sleep 0.1; done
TENANT_TOKEN=$(curl -fsS -X POST "$URL/api/v1/tenants/$T/tokens" -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" -d '{"role": "viewer"}' | jq -r .token)

echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) (shared with other engineers' builds and tests)"
echo 'SELECT tenancy.usage(:id);' > "$TENANCY_TMP/usage.sql"
# CPU time (clock ticks, user + system) of the server (the postmaster with its reaped and live backends) and of
# tenancyd: on a CPU-bound machine the ratio is the SQL path's CPU per request over the daemon path's.
TCK=$(getconf CLK_TCK)
server_ticks() {
  local pm; pm=$(head -1 "$CLUSTER_DIR/data/postmaster.pid")
  { awk '{ print $14 + $15 + $16 + $17 }' "/proc/$pm/stat"
    for c in $(pgrep -P "$pm"); do awk '{ print $14 + $15 }' "/proc/$c/stat" 2>/dev/null; done; } | awk '{ s += $1 } END { print s }'
}
daemon_ticks() { awk '{ print $14 + $15 }' "/proc/$DAEMON_PID/stat"; }
# Context switches of the whole machine (/proc/stat ctxt): the daemon path wakes a tenancyd thread twice per request
# (the HTTP read, then the database's answer), where pgbench and wrk multiplex their connections on two threads.
ctxt() { awk '$1 == "ctxt" { print $2 }' /proc/stat; }
per_req() { awk "BEGIN { printf \"%.1f\", ($1) / ($2 * $SECS) }"; } # per_req COUNT RATE
us_per() { awk "BEGIN { printf \"%.0f\", ($1) * 1000000 / $TCK / ($2 * $SECS) }"; } # us_per TICKS RATE
# CPU of the load generator itself (pgbench or wrk, user + system from /usr/bin/time): the other half of each side.
client_us() { awk -v r="$2" -v s="$SECS" '{ printf "%.0f", ($1 + $2) * 1000000 / (r * s) }' "$1"; } # client_us FILE RATE
pgbench_run() {
  local s0 c0; s0=$(server_ticks); c0=$(ctxt)
  PGPASSWORD=pw /usr/bin/time -f '%U %S' -o "$TENANCY_TMP/pgbench.time" \
    "$TENANCY_PGBIN/pgbench" -n -M prepared -c 16 -j 2 -T "$SECS" -D "id=$T" -f "$TENANCY_TMP/usage.sql" \
    -h 127.0.0.1 -p "$CLUSTER_PORT" -U tenancyd app > "$TENANCY_TMP/pgbench.out" 2>&1
  SQL_TPS=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$TENANCY_TMP/pgbench.out" | head -1)
  echo "pgbench: $SQL_TPS tps, $(sed -n 's/^latency average = //p' "$TENANCY_TMP/pgbench.out") mean;" \
    "server CPU $(us_per "$(server_ticks) - $s0" "$SQL_TPS") us per transaction," \
    "pgbench $(client_us "$TENANCY_TMP/pgbench.time" "$SQL_TPS") us; context switches $(per_req "$(ctxt) - $c0" "$SQL_TPS")"
}
wrk_run() { # wrk_run NAME TOKEN [extra args]: sets NAME_RPS and NAME_P99 (ms)
  local name=$1 token=$2; shift 2
  local s0 d0 c0; s0=$(server_ticks); d0=$(daemon_ticks); c0=$(ctxt)
  /usr/bin/time -f '%U %S' -o "$TENANCY_TMP/$name.time" \
    wrk -t2 -c16 -d"${SECS}s" --latency -H "Authorization: Bearer $token" "$@" > "$TENANCY_TMP/$name.out" 2>&1
  local rps p99 non2xx
  rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' "$TENANCY_TMP/$name.out")
  p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) v = v / 1000; else if (v ~ /ms$/) v = v + 0; else v = v * 1000; print v }' \
    "$TENANCY_TMP/$name.out")
  non2xx=$(sed -n 's/.*Non-2xx or 3xx responses: *\([0-9]*\)/\1/p' "$TENANCY_TMP/$name.out")
  echo "$name: ${rps} req/s, p99 ${p99} ms, non-2xx ${non2xx:-0}; CPU per request:" \
    "server $(us_per "$(server_ticks) - $s0" "$rps") us, tenancyd $(us_per "$(daemon_ticks) - $d0" "$rps") us," \
    "wrk $(client_us "$TENANCY_TMP/$name.time" "$rps") us; context switches $(per_req "$(ctxt) - $c0" "$rps")"
  eval "${name}_RPS=$rps; ${name}_P99=$p99"
}
# pgbench reports tps without its connection time: warm tenancyd's pool (16 connections) the same way first.
wrk -t2 -c16 -d3s -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/api/v1/tenants/$T/usage" >/dev/null 2>&1
wrk -t2 -c16 -d2s -H "Authorization: Bearer $TENANT_TOKEN" "$URL/api/v1/tenants/$T/usage" >/dev/null 2>&1
wrk -t2 -c16 -d2s -H "Authorization: Bearer $ADMIN_TOKEN" "$NGINX_URL/api/v1/tenants/$T/usage" >/dev/null 2>&1
sql=(); admin=(); tenant=(); proxied=(); ra=(); rt=(); rn=(); pa=(); pt=(); pn=()
for round in $(seq "$ROUNDS"); do
  echo "== round $round/$ROUNDS (load $(cut -d' ' -f1-3 /proc/loadavg)): pgbench -M prepared -c16 -j2 -T $SECS" \
    "SELECT tenancy.usage(:id), then wrk -t2 -c16 -d${SECS}s GET /api/v1/tenants/{id}/usage through nginx" \
    "(admin token), then straight to tenancyd (admin, tenant token)"
  pgbench_run
  wrk_run usage_nginx "$ADMIN_TOKEN" "$NGINX_URL/api/v1/tenants/$T/usage"
  wrk_run usage_admin "$ADMIN_TOKEN" "$URL/api/v1/tenants/$T/usage"
  wrk_run usage_tenant "$TENANT_TOKEN" "$URL/api/v1/tenants/$T/usage"
  sql+=("$SQL_TPS"); admin+=("$usage_admin_RPS"); tenant+=("$usage_tenant_RPS"); proxied+=("$usage_nginx_RPS")
  pa+=("$usage_admin_P99"); pt+=("$usage_tenant_P99"); pn+=("$usage_nginx_P99")
  ra+=("$(awk "BEGIN { printf \"%.2f\", $usage_admin_RPS / $SQL_TPS }")")
  rt+=("$(awk "BEGIN { printf \"%.2f\", $usage_tenant_RPS / $SQL_TPS }")")
  rn+=("$(awk "BEGIN { printf \"%.2f\", $usage_nginx_RPS / $SQL_TPS }")")
  echo "ratio to SQL: through nginx ${rn[-1]} (goal >= 0.25, p99 < 10 ms); direct: admin token ${ra[-1]}," \
    "tenant token (metered) ${rt[-1]}"
done
echo "== medians of $ROUNDS rounds: SQL $(median "${sql[@]}") tps;" \
  "through nginx $(median "${proxied[@]}") req/s, p99 $(median "${pn[@]}") ms, ratio $(median "${rn[@]}");" \
  "direct admin token $(median "${admin[@]}") req/s, p99 $(median "${pa[@]}") ms, ratio $(median "${ra[@]}");" \
  "direct tenant token $(median "${tenant[@]}") req/s, p99 $(median "${pt[@]}") ms, ratio $(median "${rt[@]}")"

echo "== wrk POST /api/v1/tenants/{id}/users (unique e-mails, enterprise tenant)"
# Each wrk thread runs its own Lua state with the same math.random sequence: setup() numbers the threads instead,
# and the round number (ROUND) keeps rounds apart, so no two e-mails collide.
cat > "$TENANCY_TMP/users.lua" <<'LUA'
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tag", threads)
end
local n = 0
request = function()
  n = n + 1
  -- wrk.headers keeps the -H Authorization header: a headers table of our own would replace it (every request 401).
  wrk.headers["Content-Type"] = "application/json"
  return wrk.format("POST", nil, nil,
    '{"email": "u' .. os.getenv("ROUND") .. '-' .. tag .. '-' .. n .. '@bench.example", "send_invitation": false}')
end
LUA
posts=()
for round in $(seq "$ROUNDS"); do
  ROUND=$round wrk_run users_post "$ADMIN_TOKEN" -s "$TENANCY_TMP/users.lua" "$URL/api/v1/tenants/$T/users"
  posts+=("$users_post_RPS")
done
echo "== median users created: $(median "${posts[@]}") per s" \
  "($(cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.users WHERE tenant_id = '$T'") users in the tenant)"

echo "== RSS of tenancyd over ${RSS_SECS}s of wrk GET usage (sampled every 5 s after a 5 s warm-up)"
wrk -t2 -c16 -d"${RSS_SECS}s" -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/api/v1/tenants/$T/usage" > "$TENANCY_TMP/rss-wrk.out" 2>&1 &
WRK=$!
sleep 5
samples=()
for _ in $(seq 5 5 $((RSS_SECS - 1))); do
  samples+=("$(awk '/^VmRSS/ { print $2 }' /proc/$DAEMON_PID/status)")
  sleep 5
done
wait $WRK
echo "RSS kB: ${samples[*]}"
printf '%s\n' "${samples[@]}" | awk 'NR == 1 { first = $1; max = $1 } { if ($1 > max) max = $1; last = $1 }
  END { printf "first %d kB, max %d kB, last %d kB: growth %.1f %% (goal within 10 %%)\n", first, max, last, 100 * (max - first) / first }'
