#!/usr/bin/env bash
# test/integration/transport_attacks.sh
# The transport attacks of issue #16, sent to the endpoint users are told to use (nginx with the shipped
# packaging/nginx/tenancyd.conf in front of tenancyd, as packaging/quickstart.sh runs it) and, for the bounds the
# daemon applies itself, straight to tenancyd: starvation by slowloris, idle and keep-alive sockets; a 200 MiB header
# flood (refused early, tenancyd's RSS flat); a multi-range request (no expansion); chunked, duplicate
# Content-Length, two Transfer-Encoding headers and a GET body carrying a smuggled request (never executed); %2f in a
# path; a pipelined pair; SIGTERM with slow clients (tenancyd exits within listen.drain_timeout_s).
# Loopback only; a private nginx on a free port (the system nginx is never touched).
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"

command -v nginx >/dev/null || { echo "skipped: nginx is not installed (packaging/install-deps.sh installs it)"; exit 77; }
command -v python3 >/dev/null || { echo "skipped: python3 is not installed"; exit 77; }
ATTACK=(python3 "$TENANCY_ROOT/test/lib/http_attacks.py")

NGINX_PREFIX="$TENANCY_TMP/nginx"
stop_nginx() {
  [ -f "$NGINX_PREFIX/nginx.pid" ] || return 0
  local pid; pid=$(cat "$NGINX_PREFIX/nginx.pid")
  kill -QUIT "$pid" 2>/dev/null
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
  rm -f "$NGINX_PREFIX/nginx.pid"
}
trap 'stop_nginx; stop_daemon; stop_all_clusters' EXIT

# listen.threads as the package ships it (16); the rest of the transport limits at their defaults.
setup_daemon "limits: {max_body_bytes: 1048576}"
sed -i 's/threads: 24/threads: 16/' "$CONF"
stop_daemon
start_daemon
DIRECT_PORT=$DAEMON_PORT

NGINX_PORT=$(free_port)
bash "$TENANCY_ROOT/packaging/nginx/standalone.sh" "$NGINX_PREFIX" "127.0.0.1:$NGINX_PORT" "127.0.0.1:$DIRECT_PORT" \
  || exit 1
nginx -t -q -c "$NGINX_PREFIX/nginx.conf" -p "$NGINX_PREFIX" || { fail "the shipped nginx configuration does not load"; exit 1; }
nginx -c "$NGINX_PREFIX/nginx.conf" -p "$NGINX_PREFIX" || { cat "$NGINX_PREFIX/logs/error.log"; exit 1; }
for _ in $(seq 1 50); do curl -fs "http://127.0.0.1:$NGINX_PORT/healthz" >/dev/null && break; sleep 0.1; done
[ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$NGINX_PORT/healthz")" = 200 ] \
  || { cat "$NGINX_PREFIX/logs/error.log"; fail "nginx does not answer /healthz"; exit 1; }

api POST /api/v1/admin/tenants '{"organization_name": "Transport Co", "slug": "transport-co", "plan": "team", "data_residency": "us"}'
expect 201 "tenant created" || exit 1
T=$(jqb .id)
API_PATH="/api/v1/tenants/$T/usage"
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$DAEMON_PID/status"; } # KiB

# endpoint NAME PORT: every attack against one endpoint.
endpoint() {
  local name=$1 port=$2 out
  echo "== $name (127.0.0.1:$port)"

  # --- starvation: 16 slowloris + 200 idle + 16 keep-alive sockets; a probe client times /healthz and the API ------
  out=$("${ATTACK[@]}" starve 127.0.0.1 "$port" 8 "$ADMIN_TOKEN" "$API_PATH")
  echo "$out" | jq -c '{idle_sockets_opened, keepalive_requests, keepalive_errors, slowloris_closed_by_server,
    slowest_healthz: ([.probes[].healthz_s] | max), slowest_api: ([.probes[].api_s] | max), probes: (.probes | length)}'
  if echo "$out" | jq -e '(.probes | length) >= 8 and all(.probes[]; .healthz == 200 and .api == 200
       and .healthz_s < 1.0 and .api_s < 1.0) and .idle_sockets_opened == 200 and .keepalive_requests >= 16' >/dev/null; then
    pass "$name: /healthz and GET usage answer 200 within 1 s under 16 slowloris + 200 idle + 16 keep-alive sockets"
  else
    fail "$name: starved: $(echo "$out" | jq -c '[.probes[] | select(.healthz != 200 or .api != 200 or .healthz_s >= 1 or .api_s >= 1)] | .[:5]')"
  fi

  # --- 200 MiB of headers (each line under 8 KiB): refused after a bounded read; tenancyd's RSS stays flat ------
  local before after
  before=$(rss)
  out=$("${ATTACK[@]}" flood 127.0.0.1 "$port" 200)
  after=$(rss)
  echo "flood: $out; tenancyd VmRSS ${before} -> ${after} KiB"
  # Refused early: the answer (431 or 400) came before 16 MiB were sent (nginx then reads and drops the rest for
  # lingering_time before it closes; tenancyd for at most 1 MiB or 1 s).
  if echo "$out" | jq -e '.sent_at_answer != null and .sent_at_answer < 16 * 1048576 and (.status == 431 or .status == 400)' >/dev/null \
     && [ $((after - before)) -lt 16384 ]; then
    pass "$name: 200 MiB header flood answered $(echo "$out" | jq .status) after $(echo "$out" | jq .sent_at_answer) bytes, RSS +$(( (after - before) / 1024 )) MiB"
  else
    fail "$name: header flood: $out, RSS ${before} -> ${after} KiB"
  fi

  # --- Range: bytes=0-,0-,... : the whole answer once, never a multipart expansion ---------------------------------
  local ranges plain ranged
  ranges="bytes=0-$(printf ',0-%.0s' $(seq 1 1500))"
  plain=$(curl -s -o /dev/null -w '%{size_download}' "http://127.0.0.1:$port/api/v1/openapi.json")
  ranged=$(curl -s -o /dev/null -w '%{http_code} %{size_download}' -H "Range: $ranges" "http://127.0.0.1:$port/api/v1/openapi.json")
  if [ "${ranged% *}" = 200 ] && [ "${ranged#* }" -le "$plain" ]; then
    pass "$name: ${#ranges}-byte Range header ignored (200, ${ranged#* } bytes, as without it)"
  else
    fail "$name: Range answered ${ranged% *} with ${ranged#* } bytes (plain answer: $plain bytes)"
  fi

  # --- framing: each carries a smuggled request whose path must never reach a handler ------------------------------
  local marker smuggled body
  framing() { # framing DESCRIPTION RAW_REQUEST ALLOWED_STATUSES(regex)
    marker="smuggled-$(openssl rand -hex 6)" # as long as the placeholder the lengths were computed with
    out=$("${ATTACK[@]}" raw 127.0.0.1 "$port" "${2//MARKER/$marker}" 2)
    local first; first=$(echo "$out" | jq -r '.answers[0] // 0')
    sleep 1.2 # nginx's access log is flushed every second
    if grep -q "$marker" "$TENANCY_TMP/tenancyd.log" "$NGINX_PREFIX/logs/access.log" 2>/dev/null; then
      fail "$name: $1: the smuggled request ran: $(grep -h "$marker" "$TENANCY_TMP/tenancyd.log" "$NGINX_PREFIX/logs/access.log" | head -2)"
    elif ! [[ "$first" =~ ^($3)$ ]]; then
      fail "$name: $1: answered $first, expected $3: $(echo "$out" | jq -r .text | head -c 300)"
    else
      pass "$name: $1: $first, smuggled request not executed"
    fi
  }
  smuggled='GET /MARKER HTTP/1.1\r\nHost: x\r\n\r\n'
  body=$(printf "${smuggled//MARKER/smuggled-xxxxxxxxxxxx}" | wc -c) # the bytes, not the escaped text
  local chunk_hex; chunk_hex=$(printf '%x' "$body")
  framing "chunked body" "POST /api/v1/admin/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n$chunk_hex\r\n$smuggled\r\n0\r\n\r\n" "400|401|411"
  framing "duplicate Content-Length" "POST /api/v1/admin/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: $body\r\n\r\n$smuggled" "400"
  framing "two Transfer-Encoding headers" "POST /api/v1/admin/tenants HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n$chunk_hex\r\n$smuggled\r\n0\r\n\r\n" "400|501"
  framing "Content-Length with Transfer-Encoding" "POST /api/v1/admin/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n$smuggled" "400"
  framing "GET with a body" "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: $body\r\n\r\n$smuggled" "400"

  # --- %2f in a path: refused, never decoded into a route ---------------------------------------------------------
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' --path-as-is -H "Authorization: Bearer $ADMIN_TOKEN" \
    "http://127.0.0.1:$port/api/v1%2fadmin%2ftenants")
  [ "$code" = 400 ] && pass "$name: /api/v1%2fadmin%2ftenants refused (400)" \
    || fail "$name: /api/v1%2fadmin%2ftenants answered $code"
  code=$(curl -s -o /dev/null -w '%{http_code}' --path-as-is -H "Authorization: Bearer $ADMIN_TOKEN" \
    "http://127.0.0.1:$port/api/v1/tenants/$T%2Fusage")
  [ "$code" = 400 ] && pass "$name: %2F inside a path parameter refused (400)" || fail "$name: %2F in a parameter answered $code"

  # --- a pipelined pair: both answered, in order ------------------------------------------------------------------
  out=$("${ATTACK[@]}" raw 127.0.0.1 "$port" \
    "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET $API_PATH HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer $ADMIN_TOKEN\r\nConnection: close\r\n\r\n" 3)
  if echo "$out" | jq -e '.answers == [200, 200]' >/dev/null; then
    pass "$name: pipelined pair answered 200, 200"
  else
    fail "$name: pipelined pair answered $(echo "$out" | jq -c .answers)"
  fi
}

endpoint nginx "$NGINX_PORT"
endpoint tenancyd "$DIRECT_PORT"

# --- the daemon's own refusals close the connection (no second request is read after a framing error) ------------
out=$("${ATTACK[@]}" raw 127.0.0.1 "$DIRECT_PORT" "POST /api/v1/admin/tenants HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" 3)
echo "$out" | jq -e '.answers == [411] and .closed' >/dev/null \
  && pass "tenancyd: chunked request answered 411 and the connection closed" \
  || fail "tenancyd: chunked request: $(echo "$out" | jq -c '{answers, closed}')"
out=$("${ATTACK[@]}" raw 127.0.0.1 "$DIRECT_PORT" "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: 1\r\n" 8)
echo "$out" | jq -e '.answers == [408] and .closed' >/dev/null \
  && pass "tenancyd: an unfinished head is answered 408 and closed after limits.header_timeout_ms" \
  || fail "tenancyd: unfinished head: $(echo "$out" | jq -c '{answers, closed}')"

# --- SIGTERM with slow clients: tenancyd exits within listen.drain_timeout_s (default 5) --------------------------
"${ATTACK[@]}" hold 127.0.0.1 "$DIRECT_PORT" 30 >"$TENANCY_TMP/hold.out" 2>&1 &
HOLD_PID=$!
for _ in $(seq 1 50); do grep -q held "$TENANCY_TMP/hold.out" && break; sleep 0.1; done
sleep 1
start=$(date +%s%N)
kill -TERM "$DAEMON_PID"
status=0
wait "$DAEMON_PID" || status=$?
ms=$(( ($(date +%s%N) - start) / 1000000 ))
DAEMON_PID=
kill "$HOLD_PID" 2>/dev/null; wait "$HOLD_PID" 2>/dev/null
if [ "$status" = 0 ] && [ "$ms" -lt 6500 ]; then
  pass "SIGTERM with 70 slow or idle clients and 4 that do not read: exited 0 after $ms ms (deadline 5 s)"
else
  fail "SIGTERM: exit status $status after $ms ms"
fi

finish
