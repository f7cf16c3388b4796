#!/usr/bin/env bash
# test/integration/daemon_fairness.sh
# Issue #16, "one tenant starves all": one tenant's exports and slow requests once held every pooled connection,
# so every other tenant got 503 database_timeout and /readyz said the database was unreachable. Now exports are
# bounded per tenant and in all (429 with Retry-After), a tenant holds at most its share of the pool (429
# tenant_busy beyond it), other tenants keep being served, and /readyz tells a busy pool from a database that is down.
# Loopback only; every wait is bounded.
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"
setup_daemon   # pool_size 8 (share: 4 per tenant), acquire_timeout_ms 2000, statement timeout 5 s

cluster_psql -d app -c "CREATE TABLE public.docs (id serial PRIMARY KEY, tenant_id uuid NOT NULL, body text)" \
  -c "SELECT tenancy.enable_isolation('public.docs')" >/dev/null || exit 1
new_tenant() { api POST /api/v1/admin/tenants "{\"organization_name\": \"$1\", \"slug\": \"$1\", \"plan\": \"team\"}"; expect 201 "tenant $1" >/dev/null; jqb .id; }
A=$(new_tenant hog-a); B=$(new_tenant victim-b); C=$(new_tenant hog-c)
[ -n "$A" ] && [ -n "$B" ] && [ -n "$C" ] || { fail "tenants not created"; finish; }

# hold SQL... : runs SQL in the background for SECS seconds inside one transaction (a lock holder).
hold() { cluster_psql -d app -c "BEGIN" -c "$1" -c "SELECT pg_sleep($2)" -c "COMMIT" >/dev/null 2>&1 & HOLDERS+=($!); }
waiting() { cluster_psql -d app -tAc "SELECT count(*) FROM pg_stat_activity WHERE usename = 'tenancyd' AND wait_event_type = 'Lock'"; }
wait_for_waiters() { for _ in $(seq 1 60); do [ "$(waiting)" -ge "$1" ] && return 0; sleep 0.1; done; return 1; }
# victim_ok: 10 requests of tenant B, each must answer 200 within 1.5 s
victim_ok() {
  local bad=0
  for i in $(seq 1 5); do
    for path in "/api/v1/tenants/$B" "/api/v1/tenants/$B/usage"; do
      out=$(curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 -H "Authorization: Bearer $ADMIN_TOKEN" "$URL$path")
      awk -v o="$out" 'BEGIN { split(o, a, " "); exit !(a[1] == 200 && a[2] < 1.5) }' || { bad=1; echo "  victim: $path -> $out"; }
    done
  done
  return $bad
}
HOLDERS=()

# --- 1. eight exports of one tenant while its export is slow (its table locked): one runs, seven are refused at once.
hold "LOCK TABLE public.docs IN ACCESS EXCLUSIVE MODE" 3
for _ in $(seq 1 40); do
  [ "$(cluster_psql -d app -tAc "SELECT count(*) FROM pg_locks WHERE relation = 'public.docs'::regclass AND mode = 'AccessExclusiveLock' AND granted")" = 1 ] && break
  sleep 0.1
done
PIDS=()
for i in $(seq 1 8); do
  curl -s -o /dev/null -D "$TENANCY_TMP/export.$i.h" -w '%{http_code}\n' --max-time 20 \
    -H "Authorization: Bearer $ADMIN_TOKEN" "$URL/api/v1/tenants/$A/export" > "$TENANCY_TMP/export.$i" &
  PIDS+=($!)
done
sleep 0.5
victim_ok && pass "tenant B served (10 requests, each 200 under 1.5 s) while tenant A exports" || fail "tenant B starved by A's exports"
api GET /readyz "" -; [ "$STATUS" = 200 ] && pass "readyz 200 during A's exports ($(jqb .status))" || fail "readyz during exports: $STATUS $BODY"
wait "${PIDS[@]}"; wait "${HOLDERS[@]}"; HOLDERS=()
statuses=$(cat "$TENANCY_TMP"/export.[0-9] | sort | uniq -c | tr '\n' ' ' | tr -s ' ')
[ "$(grep -c '^200$' "$TENANCY_TMP"/export.[0-9] | awk -F: '{ s += $2 } END { print s }')" = 1 ] &&
  [ "$(cat "$TENANCY_TMP"/export.[0-9] | grep -c '^429$')" = 7 ] && pass "8 concurrent exports: 1 x 200, 7 x 429 ($statuses)" ||
  fail "concurrent exports: $statuses"
grep -qi '^Retry-After: [0-9]' $(grep -l '^429$' "$TENANCY_TMP"/export.[0-9] | head -1 | sed 's/$/.h/') &&
  pass "the 429 carries Retry-After" || fail "no Retry-After on a refused export"

# --- 2. one tenant's slow requests hold at most its share (4 of 8): the rest wait, then 429 tenant_busy; B is served.
hold "SELECT 1 FROM tenancy.tenants WHERE id = '$A' FOR UPDATE" 4
sleep 0.3
PIDS=()
for i in $(seq 1 8); do
  curl -s -o "$TENANCY_TMP/patch.$i.b" -w '%{http_code}\n' --max-time 20 -X PATCH -H "Content-Type: application/json" \
    -H "Authorization: Bearer $ADMIN_TOKEN" --data-binary "{\"display_name\": \"A $i\"}" "$URL/api/v1/tenants/$A" > "$TENANCY_TMP/patch.$i" &
  PIDS+=($!)
done
wait_for_waiters 4 && pass "four of A's requests wait on its row, holding connections" || fail "waiters: $(waiting)"
victim_ok && pass "tenant B served while A holds its whole share of the pool" || fail "tenant B starved by A's slow requests"
[ "$(waiting)" -le 4 ] && pass "A never holds more than 4 connections" || fail "A holds $(waiting) connections"
wait "${PIDS[@]}"; wait "${HOLDERS[@]}"; HOLDERS=()
n200=$(cat "$TENANCY_TMP"/patch.[0-9] | grep -c '^200$'); n429=$(cat "$TENANCY_TMP"/patch.[0-9] | grep -c '^429$')
[ "$n200" = 4 ] && [ "$n429" = 4 ] && pass "8 slow requests of A: 4 x 200, 4 x 429" || fail "A's requests: $n200 x 200, $n429 x 429: $(cat "$TENANCY_TMP"/patch.[0-9] | tr '\n' ' ')"
grep -h '"code"' "$TENANCY_TMP"/patch.[0-9].b | head -1 | jq -e '.error.code == "tenant_busy"' >/dev/null &&
  pass "429 tenant_busy with the error format" || fail "refused body: $(cat "$TENANCY_TMP"/patch.1.b)"

# --- 3. every connection busy (two tenants at their share): /readyz says pool_busy, not "database unreachable".
hold "SELECT 1 FROM tenancy.tenants WHERE id IN ('$A', '$C') FOR UPDATE" 4
sleep 0.3
PIDS=()
for t in "$A" "$C"; do
  for i in 1 2 3 4; do
    curl -s -o /dev/null --max-time 20 -X PATCH -H "Content-Type: application/json" -H "Authorization: Bearer $ADMIN_TOKEN" \
      --data-binary "{\"display_name\": \"busy $i\"}" "$URL/api/v1/tenants/$t" &
    PIDS+=($!)
  done
done
wait_for_waiters 8 && pass "all 8 pooled connections busy" || fail "busy connections: $(waiting)"
api GET /readyz "" -
[ "$STATUS" = 200 ] && [ "$(jqb .status)" = degraded ] && [ "$(jqb .detail)" = pool_busy ] &&
  pass "readyz: 200 degraded pool_busy while the database answers" || fail "readyz with a busy pool: $STATUS $BODY"
wait "${PIDS[@]}"; wait "${HOLDERS[@]}"; HOLDERS=()
api GET /readyz "" -; [ "$STATUS" = 200 ] && [ "$(jqb .status)" = ready ] && pass "readyz ready again" || fail "readyz after: $STATUS $BODY"
kill -0 "$DAEMON_PID" && pass "tenancyd alive" || fail "tenancyd died"
finish
