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
echo "$CASES bad-input cases"
[ "$CASES" -ge 40 ] && pass "at least 40 cases" || fail "only $CASES cases"

# Nothing was created by the bad requests, and the daemon is still healthy.
[ "$(cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.tenants")" = 1 ] && pass "no partial state" || fail "bad input created tenants"
api GET /healthz "" -; expect 200 "still alive"
api GET "$P"; expect 200 "still serving"
finish
