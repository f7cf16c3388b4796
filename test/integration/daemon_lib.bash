# test/integration/daemon_lib.bash
# Shared setup for the daemon_*.sh integration scripts: a cluster with tenancy, a tenancy_admin login role, a
# running tenancyd, and `api` to call it. Sourced (not a test itself: the runner only picks up *.sh).
source "$TENANCY_ROOT/test/lib/common.sh"
source "$TENANCY_ROOT/test/lib/checks.sh"
set -uo pipefail

ADMIN_TOKEN="admin-$(openssl rand -hex 16)"
ADMIN_HASH=$(printf '%s' "$ADMIN_TOKEN" | sha256sum | cut -d' ' -f1)

# setup_daemon [extra yaml lines...]: cluster + extension + role + tenancyd on a free port (sets URL, DAEMON_PID).
setup_daemon() {
  start_cluster daemon || exit 1
  cluster_psql -d postgres -c "CREATE DATABASE app" || exit 1
  cluster_psql -d app -c "CREATE EXTENSION tenancy" || exit 1
  cluster_psql -d app -c "CREATE ROLE tenancyd LOGIN PASSWORD 'tenancyd-pw' IN ROLE tenancy_admin" || exit 1
  DAEMON_PORT=$(free_port)
  CONF="$TENANCY_TMP/tenancyd.yaml"
  {
    echo "listen: {host: 127.0.0.1, port: $DAEMON_PORT, threads: 24}"
    echo "database: {conninfo: \"host=127.0.0.1 port=$CLUSTER_PORT dbname=app user=tenancyd password=tenancyd-pw\", pool_size: 8, acquire_timeout_ms: 2000, connect_timeout_s: 2, health_check_interval_s: 1}"
    echo "auth: {admin_token_sha256: \"$ADMIN_HASH\"}"
    echo "log: {level: info}"
    for line in "$@"; do echo "$line"; done
  } > "$CONF"
  "$TENANCY_DAEMON" --check-config "$CONF" || exit 1
  start_daemon
}

start_daemon() {
  "$TENANCY_DAEMON" --config "$CONF" >>"$TENANCY_TMP/tenancyd.log" 2>&1 &
  DAEMON_PID=$!
  URL="http://127.0.0.1:$DAEMON_PORT"
  for _ in $(seq 1 100); do
    curl -fsS "$URL/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "tenancyd did not start"; cat "$TENANCY_TMP/tenancyd.log"; exit 1
}

stop_daemon() {
  [ -n "${DAEMON_PID:-}" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  DAEMON_PID=
}
trap 'stop_daemon; stop_all_clusters' EXIT

# api METHOD PATH [BODY] [TOKEN]: sets STATUS, BODY (response) and HEADERS; TOKEN defaults to the admin token,
# "-" sends none.
api() {
  local method=$1 path=$2 body=${3-} token=${4-$ADMIN_TOKEN}
  local args=(-sS -X "$method" -o "$TENANCY_TMP/body" -D "$TENANCY_TMP/headers" -w '%{http_code}' --max-time 30)
  [ "$token" != "-" ] && args+=(-H "Authorization: Bearer $token")
  [ -n "$body" ] && args+=(-H "Content-Type: application/json" --data-binary "$body")
  STATUS=$(curl "${args[@]}" "$URL$path")
  BODY=$(cat "$TENANCY_TMP/body")
  HEADERS=$(cat "$TENANCY_TMP/headers")
}

# expect STATUS DESCRIPTION: checks the last api call's status; non-2xx answers must carry the JSON error shape.
expect() {
  if [ "$STATUS" != "$1" ]; then
    fail "$2: expected $1, got $STATUS: ${BODY:0:300}"
    return 1
  fi
  if [ "$STATUS" -ge 400 ] && ! echo "$BODY" | jq -e '.error.code and .error.message and (.error | has("sqlstate"))' >/dev/null 2>&1; then
    fail "$2: error body is not the JSON error shape: ${BODY:0:300}"
    return 1
  fi
  pass "$2 ($STATUS)"
}

jqb() { echo "$BODY" | jq -r "$@"; }

# split_reply OUTPUT: STATUS and BODY of a raw `curl ... -w '\n%{http_code}'` (the brief's own commands).
split_reply() { STATUS=$(echo "$1" | tail -1); BODY=$(echo "$1" | sed '$d'); }

finish() {
  if grep -q '"level":"error".*AddressSanitizer\|runtime error' "$TENANCY_TMP/tenancyd.log" 2>/dev/null; then
    fail "sanitizer reports in tenancyd.log"
  fi
  if [ "$FAILURES" -gt 0 ]; then
    echo "$FAILURES failure(s)"; echo "--- tenancyd.log (tail)"; tail -20 "$TENANCY_TMP/tenancyd.log"; exit 1
  fi
  echo "all passed"
}
