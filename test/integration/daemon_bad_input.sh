#!/usr/bin/env bash
# test/integration/daemon_bad_input.sh
# A matrix of malformed and hostile requests: every one must get a 4xx JSON error, never a 5xx, crash or hang.
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"
setup_daemon "limits: {max_body_bytes: 1048576}"

api POST /api/v1/admin/tenants '{"organization_name": "Target", "slug": "target", "plan": "team"}'
expect 201 "target tenant" || exit 1
T=$(jqb .id)
CASES=0
# bad EXPECTED METHOD PATH BODY_FILE_OR_STRING [curl args...]
bad() {
  local want=$1 method=$2 path=$3 body=$4; shift 4
  CASES=$((CASES + 1))
  local args=(-sS -X "$method" -o "$TENANCY_TMP/body" -w '%{http_code}' --max-time 20 -H "Content-Type: application/json")
  [[ "$*" == *Authorization:* ]] || args+=(-H "Authorization: Bearer $ADMIN_TOKEN")
  if [ -n "$body" ]; then
    if [ -f "$body" ]; then args+=(--data-binary "@$body"); else args+=(--data-binary "$body"); fi
  fi
  STATUS=$(curl "${args[@]}" "$@" "$URL$path")
  BODY=$(cat "$TENANCY_TMP/body")
  if [ "$STATUS" -ge 500 ] || [ "$STATUS" = 000 ]; then fail "case $CASES ($method $path): $STATUS ${BODY:0:200}"; return; fi
  expect "$want" "case $CASES: $method $path ${body:0:60}"
}
C=/api/v1/admin/tenants
bad 400 POST $C '{'
bad 400 POST $C '{"organization_name": "A"'
bad 400 POST $C '{"organization_name": "A", "slug": "abc",}'
bad 400 POST $C '{"organization_name": 5, "slug": "abc"}'
bad 400 POST $C '{"organization_name": "A", "slug": []}'
bad 400 POST $C '{"organization_name": "A", "slug": "abc", "color": "red"}'
bad 400 POST $C '{"organization_name": "A", "slug": "abc", "plan": "platinum"}'
bad 400 POST $C '{"organization_name": "A", "slug": "abc", "data_residency": "mars"}'
bad 400 POST $C '{"organization_name": "A", "slug": "abc", "parent_tenant_id": "nope"}'
bad 400 POST $C '{"organization_name": "A", "slug": "abc", "slug": "abd"}'
printf '{"organization_name": "A", "slug": "abc", "x": %s%s}' "$(printf '[%.0s' $(seq 65))" "$(printf ']%.0s' $(seq 65))" > "$TENANCY_TMP/deep.json"
bad 400 POST $C "$TENANCY_TMP/deep.json"
bad 400 POST $C '{"organization_name": "A\u0000B", "slug": "abc"}'
printf '{"organization_name": "A\0B", "slug": "abc"}' > "$TENANCY_TMP/nul.json"
bad 400 POST $C "$TENANCY_TMP/nul.json"
printf '{"organization_name": "A\xffB", "slug": "abc"}' > "$TENANCY_TMP/utf8.json"
bad 400 POST $C "$TENANCY_TMP/utf8.json"
printf '{"organization_name": "A\xc0\xafB", "slug": "abc"}' > "$TENANCY_TMP/overlong.json"
bad 400 POST $C "$TENANCY_TMP/overlong.json"
bad 400 POST $C '{"organization_name": "A\ud800", "slug": "abc"}'
head -c 1100000 /dev/zero | tr '\0' 'a' | sed 's/^/{"organization_name": "/; s/$/", "slug": "abc"}/' > "$TENANCY_TMP/big.json"
bad 413 POST $C "$TENANCY_TMP/big.json"
bad 411 POST $C "$TENANCY_TMP/big.json" -H "Transfer-Encoding: chunked"
bad 400 POST $C '[]'
bad 400 POST $C '"tenant"'
bad 400 POST $C 'null'
bad 400 POST $C '{}'
bad 400 POST $C '{"organization_name": "A", "slug": "abc", "display_name": 7}'
bad 400 POST $C '{"organization_name": "A", "slug": "abc", "admin_email": "not an email"}'
bad 400 POST $C "{\"organization_name\": \"A\", \"slug\": \"$(printf 'a%.0s' $(seq 64))\"}"
bad 400 POST $C '{"organization_name": "A", "slug": "ab"}'
bad 400 POST $C '{"organization_name": "", "slug": "abc"}'
bad 400 POST $C "{\"organization_name\": \"$(printf 'o%.0s' $(seq 300))\", \"slug\": \"abc\"}"
bad 400 POST $C '{"organization_name": "A", "slug": "abc"} {"more": 1}'
bad 400 POST $C '{"organization_name": "A", "slug": "-abc-"}'
P=/api/v1/tenants/$T
bad 400 PATCH $P '{"configuration": 5}'
bad 400 PATCH $P '{"status": "zombie"}'
bad 400 PATCH $P '{"id": "00000000-0000-0000-0000-000000000001"}'
bad 400 PATCH $P '{"quotas": {"max_users": 1000000}}'
bad 400 PATCH $P '{"plan": 7}'
printf '{"configuration": {"x": %s%s}}' "$(printf '{"a":%.0s' $(seq 70))" "$(printf '}%.0s' $(seq 70))" > "$TENANCY_TMP/deepcfg.json"
bad 400 PATCH $P "$TENANCY_TMP/deepcfg.json"
bad 400 PATCH $P '[]'
bad 400 PATCH $P '{"display_name": "a", "display_name": "b"}'
U=/api/v1/tenants/$T/users
bad 400 POST $U '{"email": 42}'
bad 400 POST $U '{"email": "a@b.com", "send_invitation": "yes"}'
bad 400 POST $U '{"email": "a@b.com", "role": 5}'
bad 400 POST $U '{"email": "a@b.com", "admin": true}'
bad 400 POST $U '{"email": "a@b.com", "first_name": {"x": 1}}'
bad 400 POST $U '{"email": "a@b.com\u0000"}'
bad 400 GET "$U?limit=abc" ''
bad 400 GET "$U?limit=-1" ''
bad 400 GET "$U?cursor=%27%3B%20DROP%20TABLE%20x" ''
bad 400 GET "/api/v1/tenants/$T/usage/trends?period=0d" ''
bad 400 GET "/api/v1/tenants/$T/usage/trends?period=10x" ''
bad 400 GET "/api/v1/tenants/$T/usage/trends?metrics=" ''
bad 400 GET "/api/v1/tenants/$T/usage/trends?metrics=api_calls%00" ''
bad 400 GET "/api/v1/tenants/%27%3B%20DROP%20TABLE%20tenancy.tenants%3B--" ''
bad 400 DELETE "/api/v1/tenants/$T/tokens/not-a-uuid" ''
bad 400 GET "/api/v1/admin/tenants?status=%ff" ''
bad 400 GET "/api/v1/admin/tenants?plan=%00" ''
bad 400 POST "/api/v1/tenants/$T/tokens" '{"role": "viewer", "expires_in": "forever"}'
bad 400 POST "/api/v1/tenants/$T/tokens" '{"role": "viewer", "expires_in": 90}'
bad 400 POST "/api/v1/tenants/$T/tokens" "{\"role\": \"viewer\", \"name\": \"$(printf 'n%.0s' $(seq 201))\"}"
bad 401 GET "$P" '' -H "Authorization: Bearer"
bad 401 GET "$P" '' -H "Authorization: Basic YWRtaW46YWRtaW4="
bad 401 GET "$P" '' -H "Authorization: Bearer tnt_$(printf 'A%.0s' $(seq 43))"
bad 404 GET "/api/v1/tenants/$T/unknown" ''

# Issue #16: hostile bodies on every route. A route that takes a body answers 400 with the error format (1e400 and
# -1e999 once escaped as nlohmann's out_of_range, a 500 counted against the tenant's SLA; a raw NUL once ended the
# input, so the bytes after it were ignored); a route that takes none ignores the body; none answers 5xx.
printf '{"display_name": "n"}\0{"plan": "enterprise"}' > "$TENANCY_TMP/nul_tail.json"
printf '{}\0' > "$TENANCY_TMP/nul_end.json"
printf '\0{}' > "$TENANCY_TMP/nul_start.json"
HOSTILE=('{"x": 1e400}' '{"x": -1e999}' '{"configuration": {"a": [1e400, -1e999]}, "x": 1}' '{"x": 1e400} trailing'
         '{"x": 1e400' "$TENANCY_TMP/nul_tail.json" "$TENANCY_TMP/nul_end.json" "$TENANCY_TMP/nul_start.json"
         '{"x": 1}{"y": 2}' '{"x": 1} ,' ' ')
TOK0=00000000-0000-0000-0000-000000000001
ROUTES=("POST $C" "GET $C" "GET $P" "PATCH $P" "POST $U" "GET $U" "GET $P/usage" "GET $P/usage/trends"
        "POST $P/tokens" "DELETE $P/tokens/$TOK0" "POST $P/keys/rotate" "GET $P/sla" "GET $P/export"
        "POST $P/move" "GET $P/move" "GET /api/v1/openapi.json" "GET /metrics" "GET /healthz" "GET /readyz")
hostile_failures=$FAILURES
for route in "${ROUTES[@]}"; do
  method=${route%% *} path=${route#* }
  for body in "${HOSTILE[@]}"; do
    CASES=$((CASES + 1))
    args=(-sS -X "$method" -o "$TENANCY_TMP/body" -w '%{http_code}' --max-time 20 -H "Content-Type: application/json"
          -H "Authorization: Bearer $ADMIN_TOKEN")
    if [ -f "$body" ]; then args+=(--data-binary "@$body"); else args+=(--data-binary "$body"); fi
    STATUS=$(curl "${args[@]}" "$URL$path"); BODY=$(cat "$TENANCY_TMP/body")
    if [ "$STATUS" = 000 ] || [ "$STATUS" -ge 500 ]; then
      fail "$method $path with ${body:0:40}: $STATUS ${BODY:0:200}"
    elif [ "$method" = POST ] || [ "$method" = PATCH ]; then
      [ "$STATUS" = 400 ] && echo "$BODY" | jq -e '.error.code and .error.message' >/dev/null ||
        fail "$method $path with ${body:0:40}: expected 400 with the error format, got $STATUS ${BODY:0:200}"
    fi
  done
done
[ "$FAILURES" = "$hostile_failures" ] && pass "${#ROUTES[@]} routes x ${#HOSTILE[@]} hostile bodies: 400 or ignored, never 5xx"
api GET "$P"; [ "$(jqb .display_name)" != n ] && [ "$(jqb .plan)" = team ] && pass "nothing after a NUL was applied" ||
  fail "a body with a NUL changed the tenant: $BODY"

# An empty PATCH is refused (it once answered 200 as if {} had been sent); {} itself is a valid no-op.
bad 400 PATCH $P ''
bad 400 PATCH $P '   '
api PATCH "$P" '{}'; expect 200 "PATCH {} is a no-op"

# Numbers reach jsonb as sent (they were re-rounded through doubles: 18446744073709551616 -> ...552000,
# 1e-400 -> 0.0, 1e400 -> 500). numeric comparisons in SQL prove the stored values exact.
api PATCH "$P" '{"configuration": {"n": {"big": 18446744073709551616, "tiny": 1e-400, "huge": 1e400, "neg": -1e999, "dec": 0.1000000000000000055511151231257827021181583404541015625, "long": 123456789012345678901234567890.123456789}}}'
expect 200 "PATCH with numbers beyond a double"
exact=$(cluster_psql -d app -tAc "SELECT (c->>'big')::numeric = 18446744073709551616 AND (c->>'tiny')::numeric = 1e-400
  AND (c->>'huge')::numeric = 1e400 AND (c->>'neg')::numeric = -1e999
  AND (c->>'dec')::numeric = 0.1000000000000000055511151231257827021181583404541015625
  AND (c->>'long')::numeric = 123456789012345678901234567890.123456789
  FROM (SELECT configuration->'n' c FROM tenancy.tenants WHERE id = '$T') s")
[ "$exact" = t ] && pass "configuration numbers stored exactly" || fail "numbers not kept exactly: $exact"
echo "$BODY" | grep -q '"big": 18446744073709551616' && pass "the answer shows the number as sent" ||
  fail "answer re-rounded a number: ${BODY:0:300}"
api PATCH "$P" '{"configuration": {"n": null}}'; expect 200 "remove the numbers again"
bad 400 PATCH $P '{"configuration": {"n": 1e999999999}}'

# Bodies of another type than JSON are 415 before they are read (cpp-httplib capped form bodies at 8 KiB, 413, and
# parsed them into query parameters: a form body `status=active` filtered the tenant list).
head -c 10000 /dev/zero | tr '\0' 'a' | sed 's/^/x=/' > "$TENANCY_TMP/form.txt"
for ct in application/x-www-form-urlencoded "multipart/form-data; boundary=x" text/plain application/xml; do
  bad 415 POST $C "$TENANCY_TMP/form.txt" -H "Content-Type: $ct"
  bad 415 PATCH $P '{"display_name": "via form"}' -H "Content-Type: $ct"
done
bad 400 GET "$C" 'status=suspended' -H "Content-Type: application/x-www-form-urlencoded"  # the transport refuses a GET with a body
api GET "/api/v1/tenants/$T"; [ "$(jqb .display_name)" != "via form" ] && pass "a 415 body changed nothing" || fail "form body applied"
bad 200 GET "$C" '' -H "Content-Type: text/plain"   # no body: the type does not matter
api PATCH "$P" '{"display_name": "Target JSON"}'; expect 200 "application/json still accepted"
out=$(curl -sS -o /dev/null -w '%{http_code}' -X PATCH -H "Authorization: Bearer $ADMIN_TOKEN" \
  -H "Content-Type: Application/JSON; charset=utf-8" --data-binary '{"display_name": "Target"}' "$URL$P")
[ "$out" = 200 ] && pass "application/json with parameters and any case" || fail "application/json; charset: $out"

# Requests refused before routing (bad request line, URI too long) were logged with a time since boot as "ms" and
# an empty "remote_addr". The transport logs its refusals ("request refused") with both; a line cpp-httplib writes
# for a request it refused itself (the TLS server) has null for what it does not know, never a bogus value.
printf 'GARBAGE\r\n\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$DAEMON_PORT; cat >&3; cat <&3" >/dev/null 2>&1
curl -s -o /dev/null "$URL/$(head -c 20000 /dev/zero | tr '\0' 'a')"
sleep 0.3
refused=$(grep '"msg":"request refused"\|"refused":"before_routing"' "$TENANCY_TMP/tenancyd.log" | tail -2)
[ "$(wc -l <<<"$refused")" = 2 ] && jq -e -s 'all(.[]; (.remote_addr == "127.0.0.1" or .remote_addr == null)
    and ((.ms | type) == "null" or (.ms >= 0 and .ms < 60000)))' <<<"$refused" >/dev/null &&
  pass "refused-before-routing lines: real address and duration (or null)" || fail "refused lines: $refused"
routed=$(grep '"msg":"request"' "$TENANCY_TMP/tenancyd.log" | jq -c 'select(.route != "unmatched")' | tail -50)
jq -e -s 'all(.[]; .remote_addr == "127.0.0.1" and (.ms | type) == "number" and .ms >= 0 and .ms < 60000)' <<<"$routed" >/dev/null &&
  pass "routed requests log their address and duration" || fail "routed log lines: $(tail -2 <<<"$routed")"

# Admin requests for tenant ids that do not exist create no SLA or metrics entry (20,000 filled both tables for the
# life of the process); the tenant created afterwards is measured and has its series.
for i in $(seq 1 300); do
  printf 'url = "%s/api/v1/tenants/%s/sla"\noutput = "/dev/null"\n' "$URL" "$(cat /proc/sys/kernel/random/uuid)"
done > "$TENANCY_TMP/ghosts.curl"
curl -s -K "$TENANCY_TMP/ghosts.curl" -H "Authorization: Bearer $ADMIN_TOKEN" -w '%{http_code}\n' > "$TENANCY_TMP/ghosts.st"
[ "$(sort -u "$TENANCY_TMP/ghosts.st")" = 404 ] && pass "300 made-up tenant ids: 404" || fail "made-up ids: $(sort "$TENANCY_TMP/ghosts.st" | uniq -c)"
api GET /metrics
ghosts=$(grep -c '^tenancy_tenant_requests_total{' <<<"$BODY" || true)
grep -q "tenant_id=\"$(grep -m1 url "$TENANCY_TMP/ghosts.curl" | sed 's|.*/tenants/||; s|/sla"||')\"" <<<"$BODY" &&
  fail "a made-up tenant id got its own series" || pass "made-up tenant ids get no series ($ghosts series in all)"
api POST /api/v1/admin/tenants '{"organization_name": "Late", "slug": "late-comer"}'; expect 201 "tenant created after the flood"
LATE=$(jqb .id)
api GET "/api/v1/tenants/$LATE"; expect 200 "late tenant read"
api GET "/api/v1/tenants/$LATE/sla"; expect 200 "late tenant sla"
[ "$(jqb .measured.requests)" -ge 1 ] && pass "the late tenant is measured" || fail "late tenant: $BODY"
api GET /metrics
grep -q "tenant_id=\"$LATE\"" <<<"$BODY" && pass "the late tenant has its series" || fail "no series for the late tenant"

# configuration is capped (64 KiB as JSON text after the merge): 413 with the error format, by accumulation too.
printf '{"configuration": {"blob": "%s"}}' "$(head -c 70000 /dev/zero | tr '\0' 'b')" > "$TENANCY_TMP/bigcfg.json"
bad 413 PATCH $P "$TENANCY_TMP/bigcfg.json"
[ "$(jqb .error.code)" = configuration_too_large ] && pass "413 configuration_too_large" || fail "over-size configuration: $BODY"
for i in 1 2; do
  printf '{"configuration": {"part%s": "%s"}}' "$i" "$(head -c 40000 /dev/zero | tr '\0' 'p')" > "$TENANCY_TMP/partcfg.json"
  api PATCH "$P" "@$TENANCY_TMP/partcfg.json"
  st[$i]=$STATUS
done
[ "${st[1]}" = 200 ] && [ "${st[2]}" = 413 ] && pass "the cap holds across PATCHes (200 then 413)" || fail "accumulated configuration: ${st[*]}"
api PATCH "$P" '{"configuration": {"part1": null}}'; expect 200 "configuration back under the cap"
echo "$CASES bad-input cases"
[ "$CASES" -ge 40 ] && pass "at least 40 cases" || fail "only $CASES cases"

# Nothing was created by the bad requests, and the daemon is still healthy.
[ "$(cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.tenants WHERE slug <> 'late-comer'")" = 1 ] && pass "no partial state" || fail "bad input created tenants"
api GET /healthz "" -; expect 200 "still alive"
api GET "$P"; expect 200 "still serving"
finish
