#!/usr/bin/env bash
# test/integration/daemon_token_scope.sh
# Token scope through tenancyd: a minted token's expiry is capped at its issuer's and it dies with it (cascade), an
# admin-role token cannot revoke the owner's, residency is the admin token's and never a relabel on one cluster, caps
# on live tokens and key versions (429 TN003), a suspended or cancelled tenant's token gets 403 TN002 on every tenant
# route of the router (enumerated from the served OpenAPI document, which a unit test keeps equal to the route
# table), and the audit row of a PATCH names the token (id, role, tenant), the remote address and the request id.
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"
setup_daemon
# Small caps for this test (superuser settings, read by the daemon's sessions).
stop_daemon
cluster_psql -d app -c "ALTER ROLE tenancyd SET tenancy.max_tokens_per_tenant = 8" >/dev/null || exit 1
cluster_psql -d app -c "ALTER ROLE tenancyd SET tenancy.max_key_versions_per_tenant = 3" >/dev/null || exit 1
DAEMON_PORT=$(free_port) # a fresh port: the old one may linger
sed -i "s/port: [0-9]*, threads/port: $DAEMON_PORT, threads/" "$CONF"
start_daemon

sql() { cluster_psql -d app -tAc "$1"; }
new_tenant() { # new_tenant SLUG -> id (active)
  api POST /api/v1/admin/tenants "{\"organization_name\": \"$1\", \"slug\": \"$1\", \"plan\": \"team\"}"
  local id; id=$(jqb .id)
  api PATCH "/api/v1/tenants/$id" '{"status": "active"}'
  echo "$id"
}
issue() { # issue TENANT BODY TOKEN -> sets TOK, TOK_ID, TOK_EXP
  api POST "/api/v1/tenants/$1/tokens" "$2" "${3-$ADMIN_TOKEN}"
  TOK=$(jqb .token); TOK_ID=$(jqb .id); TOK_EXP=$(jqb .expires_at)
}
sqlstate() { jqb '.error.sqlstate // "null"'; }

A=$(new_tenant scope-a)
issue "$A" '{"role": "owner", "name": "owner"}'; expect 201 "admin token issues the owner's token"
OWNER=$TOK; OWNER_ID=$TOK_ID

# --- expiry capped at the issuer's
issue "$A" '{"role": "admin", "name": "hour", "expires_in": "1h"}' "$OWNER"; expect 201 "owner issues a 1-hour admin token"
HOUR=$TOK; HOUR_ID=$TOK_ID; HOUR_EXP=$TOK_EXP
issue "$A" '{"role": "viewer", "name": "never"}' "$HOUR"; expect 201 "the 1-hour token mints a token without expires_in"
NEVER=$TOK
[ "$TOK_EXP" = "$HOUR_EXP" ] && pass "a 1-hour token cannot mint a never-expiring one (expires_at $TOK_EXP)" \
  || fail "minted token expires at $TOK_EXP, issuer at $HOUR_EXP"
issue "$A" '{"role": "viewer", "name": "d90", "expires_in": "90d"}' "$HOUR"; expect 201 "the 1-hour token mints a 90-day token"
D90=$TOK
[ "$TOK_EXP" = "$HOUR_EXP" ] && pass "90 days capped at the issuer's expiry" || fail "90-day token expires at $TOK_EXP"
issue "$A" '{"role": "owner", "name": "up"}' "$HOUR"; expect 403 "an admin-role token cannot mint an owner token"
issue "$A" '{"role": "admin", "name": "adm2"}' "$HOUR"; expect 201 "the 1-hour token mints an admin token"
ADM2=$TOK
issue "$A" '{"role": "admin", "name": "adm3"}' "$ADM2"; expect 201 "which mints another (grandchild of the 1-hour token)"
ADM3=$TOK
[ "$TOK_EXP" = "$HOUR_EXP" ] && pass "the grandchild is capped too" || fail "grandchild expires at $TOK_EXP"
[ "$(sql "SELECT count(*) FROM tenancy.tenant_tokens WHERE issuer_token_id = '$HOUR_ID'")" = 3 ] \
  && pass "each minted token records its issuer" || fail "issuer_token_id not recorded"

# --- an admin-role token cannot revoke the owner's token; it can revoke an equal or weaker one
api DELETE "/api/v1/tenants/$A/tokens/$OWNER_ID" "" "$HOUR"
expect 403 "an admin-role token revoking the owner's token" && [ "$(sqlstate)" = 42501 ] && pass "sqlstate 42501" || fail "sqlstate $(sqlstate)"
api GET "/api/v1/tenants/$A" "" "$OWNER"; expect 200 "the owner's token still works"

# --- revocation cascades: revoking the 1-hour token kills everything it minted, down the chain
api DELETE "/api/v1/tenants/$A/tokens/$HOUR_ID" "" "$OWNER"; expect 204 "the owner revokes the 1-hour token"
for t in HOUR NEVER D90 ADM2 ADM3; do
  api GET "/api/v1/tenants/$A" "" "${!t}"; expect 401 "after the cascade: $t"
done
api GET "/api/v1/tenants/$A" "" "$OWNER"; expect 200 "the owner's token survives"

# --- residency: the admin token's, and never a relabel with one cluster
issue "$A" '{"role": "admin", "name": "resident"}' "$OWNER"; ADMIN_ROLE=$TOK
for t in ADMIN_ROLE OWNER; do
  api PATCH "/api/v1/tenants/$A" '{"data_residency": "eu"}' "${!t}"
  expect 403 "$t token changing data_residency" && [ "$(sqlstate)" = 42501 ] && pass "sqlstate 42501" || fail "sqlstate $(sqlstate)"
done
api PATCH "/api/v1/tenants/$A" '{"data_residency": "eu"}'
expect 409 "admin token changing data_residency on one cluster" \
  && [ "$(jqb .error.code)" = region_move_unsupported ] && pass "code region_move_unsupported: $(jqb .error.message)" || fail "code $(jqb .error.code)"
api PATCH "/api/v1/tenants/$A" '{"data_residency": "us", "display_name": "Scope A"}'; expect 200 "an unchanged data_residency passes"
[ "$(sql "SELECT data_residency FROM tenancy.tenants WHERE id = '$A'")" = us ] && pass "residency unchanged" || fail "residency changed"

# --- caps (8 live tokens, 3 key versions for this test's role)
C=$(new_tenant scope-caps)
for i in $(seq 1 8); do issue "$C" "{\"role\": \"guest\", \"name\": \"cap$i\"}"; done
expect 201 "the 8th live token"
issue "$C" '{"role": "guest", "name": "cap9"}'
expect 429 "the 9th live token" && [ "$(sqlstate)" = TN003 ] && pass "sqlstate TN003: $(jqb .error.message)" || fail "sqlstate $(sqlstate)"
CAP8=$(sql "SELECT id FROM tenancy.tenant_tokens WHERE tenant_id = '$C' AND name = 'cap8'")
api DELETE "/api/v1/tenants/$C/tokens/$CAP8"; expect 204 "revoke one"
issue "$C" '{"role": "guest", "name": "cap10"}'; expect 201 "a revoked token frees its place"
api POST "/api/v1/tenants/$C/keys/rotate" '{}'; expect 200 "key version 2"
api POST "/api/v1/tenants/$C/keys/rotate" '{}'; expect 200 "key version 3"
api POST "/api/v1/tenants/$C/keys/rotate" '{}'
expect 429 "a 4th key version" && [ "$(sqlstate)" = TN003 ] && pass "sqlstate TN003: $(jqb .error.message)" || fail "sqlstate $(sqlstate)"

# --- suspended and cancelled tenants: their tokens are refused on every tenant route of the router
S=$(new_tenant scope-suspended); issue "$S" '{"role": "owner"}'; S_TOK=$TOK; S_TOK_ID=$TOK_ID
X=$(new_tenant scope-cancelled); issue "$X" '{"role": "owner"}'; X_TOK=$TOK; X_TOK_ID=$TOK_ID
L=$(new_tenant scope-live); issue "$L" '{"role": "owner"}'; L_TOK=$TOK; L_TOK_ID=$TOK_ID
api PATCH "/api/v1/tenants/$S" '{"status": "suspended"}'; expect 200 "suspend"
api PATCH "/api/v1/tenants/$X" '{"status": "cancelled"}'; expect 200 "cancel"
api GET /api/v1/openapi.json "" -
routes=$(jqb '.paths | to_entries[] | select(.key | contains("{id}")) | .key as $p | .value | keys[] | ascii_upcase + " " + $p')
[ "$(echo "$routes" | wc -l)" -ge 12 ] && pass "$(echo "$routes" | wc -l) tenant routes in the router" || fail "routes: $routes"
calls_before=$(sql "SELECT (tenancy.usage('$S') -> 'current_usage' ->> 'api_calls_this_month')")
while read -r method path; do
  for prefix in /api/v1 /v1; do
    p=${path#/api/v1}
    body='{}'; [ "$method" = GET ] && body=''
    # An admin-only route refuses every tenant token (42501) whatever the tenant's status: told apart by the live
    # tenant's owner token.
    api "$method" "$prefix${p//\{id\}/$L}" "$body" "$L_TOK"
    admin_only=0
    [ "$STATUS" = 403 ] && [ "$(sqlstate)" = 42501 ] && echo "$BODY" | grep -q "needs the admin token" && admin_only=1
    for who in S X; do
      tenant=${!who}; tok_var=${who}_TOK; tok_id_var=${who}_TOK_ID
      url="$prefix${p//\{id\}/$tenant}"; url=${url//\{token_id\}/${!tok_id_var}}
      api "$method" "$url" "$body" "${!tok_var}"
      want=TN002; [ $admin_only = 1 ] && want=42501
      if [ "$STATUS" = 403 ] && [ "$(sqlstate)" = "$want" ]; then
        pass "$who token: $method $url -> 403 $want"
      else
        fail "$who token: $method $url -> $STATUS $(sqlstate): ${BODY:0:200}"
      fi
    done
  done
done <<< "$routes"
[ "$(sql "SELECT (tenancy.usage('$S') -> 'current_usage' ->> 'api_calls_this_month')")" = "$calls_before" ] \
  && pass "nothing metered for the suspended tenant" || fail "the suspended tenant was metered"
[ "$(sql "SELECT count(*) FROM tenancy.tenant_tokens WHERE id IN ('$S_TOK_ID', '$X_TOK_ID') AND revoked_at IS NULL")" = 2 ] \
  && pass "the refused DELETEs revoked nothing" || fail "a refused DELETE revoked a token"
api GET "/api/v1/tenants/$S"; expect 200 "the admin token still reads the suspended tenant"
start=$(sql "SELECT coalesce(max(id), 0) FROM tenancy.audit_log")
api GET "/api/v1/tenants/$X/export"; expect 200 "the admin token still exports the cancelled tenant"
rid=$(echo "$HEADERS" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }')
[ "$(sql "SELECT count(*) FROM tenancy.audit_log WHERE id > $start AND tenant_id = '$X'
            AND after -> '_caller' ->> 'actor' = 'admin token' AND after -> '_caller' ->> 'request_id' = '$rid'")" -ge 1 ] \
  && pass "the export's audit event names the admin token and its request" \
  || fail "export audit: $(sql "SELECT action, after FROM tenancy.audit_log WHERE id > $start")"
api PATCH "/api/v1/tenants/$S" '{"status": "active"}'; expect 200 "reactivated"
api GET "/api/v1/tenants/$S" "" "$S_TOK"; expect 200 "its token works again"

# --- audit names the caller: token id, role, tenant, remote address, request id
start=$(sql "SELECT coalesce(max(id), 0) FROM tenancy.audit_log")
curl -sS -o /dev/null -D "$TENANCY_TMP/h" -X PATCH "$URL/api/v1/tenants/$A" -H "Authorization: Bearer $OWNER" \
  -H "X-Request-Id: scope-req-42" -H "Content-Type: application/json" -d '{"display_name": "Audited"}'
grep -qi '^x-request-id: scope-req-42' "$TENANCY_TMP/h" && pass "X-Request-Id answered" || fail "no X-Request-Id: $(cat "$TENANCY_TMP/h")"
row=$(sql "SELECT after -> '_caller' FROM tenancy.audit_log WHERE id > $start AND action = 'tenant_updated' AND tenant_id = '$A' ORDER BY id DESC LIMIT 1")
echo "  audit _caller: $row"
[ "$(echo "$row" | jq -r '[.actor, .token_id, .role, .tenant_id, .remote_addr, .request_id, .set_by] | join("|")')" \
  = "tenant token|$OWNER_ID|owner|$A|127.0.0.1|scope-req-42|tenancyd" ] \
  && pass "the PATCH's audit row names the token, role, tenant, remote address and request id" || fail "audit caller: $row"
# A long X-Forwarded-For (4 kB of quotes, which JSON escapes) is recorded bounded and never fails the request.
start=$(sql "SELECT coalesce(max(id), 0) FROM tenancy.audit_log")
xff="$(head -c 4000 /dev/zero | tr '\0' '"')"
st=$(curl -sS -o /dev/null -w '%{http_code}' -X PATCH "$URL/api/v1/tenants/$A" -H "Authorization: Bearer $OWNER" \
  -H "X-Forwarded-For: 203.0.113.9, $xff" -H "Content-Type: application/json" -d '{"display_name": "Forwarded"}')
fwd=$(sql "SELECT after -> '_caller' ->> 'forwarded_for' FROM tenancy.audit_log WHERE id > $start AND tenant_id = '$A' ORDER BY id DESC LIMIT 1")
[ "$st" = 200 ] && [ "${fwd:0:13}" = "203.0.113.9, " ] && [ "${#fwd}" -le 200 ] \
  && pass "X-Forwarded-For recorded as sent, bounded (${#fwd} characters)" || fail "X-Forwarded-For: $st, ${fwd:0:80}"
# The admin token next (same pool): named as such, with the id the daemon made up and answered.
start=$(sql "SELECT coalesce(max(id), 0) FROM tenancy.audit_log")
api PATCH "/api/v1/tenants/$A" '{"display_name": "Audited by the operator"}'
rid=$(echo "$HEADERS" | tr -d '\r' | awk -F': ' 'tolower($1) == "x-request-id" { print $2 }')
row=$(sql "SELECT after -> '_caller' FROM tenancy.audit_log WHERE id > $start AND action = 'tenant_updated' AND tenant_id = '$A' ORDER BY id DESC LIMIT 1")
[ "$(echo "$row" | jq -r '[.actor, (.token_id // "none"), .remote_addr, .request_id] | join("|")')" = "admin token|none|127.0.0.1|$rid" ] \
  && [ -n "$rid" ] && pass "the admin token's PATCH is named \"admin token\" with request id $rid" || fail "admin caller: $row (rid $rid)"
# Every change through the API names its caller, and only ever the one that made it.
start=$(sql "SELECT coalesce(max(id), 0) FROM tenancy.audit_log")
for i in 1 2 3 4; do
  api PATCH "/api/v1/tenants/$A" "{\"display_name\": \"t$i\"}" "$OWNER"
  api PATCH "/api/v1/tenants/$A" "{\"display_name\": \"a$i\"}"
  issue "$A" '{"role": "guest"}' "$OWNER"; api DELETE "/api/v1/tenants/$A/tokens/$TOK_ID" "" "$OWNER"
done
bad=$(sql "SELECT count(*) FROM tenancy.audit_log WHERE id > $start AND tenant_id = '$A' AND NOT (
             (after -> '_caller' ->> 'actor' = 'admin token' AND after ->> 'display_name' LIKE 'a%')
          OR (after -> '_caller' ->> 'token_id' = '$OWNER_ID' AND coalesce(after ->> 'display_name', 't') LIKE 't%'))")
total=$(sql "SELECT count(*) FROM tenancy.audit_log WHERE id > $start AND tenant_id = '$A'")
[ "$bad" = 0 ] && [ "$total" -ge 16 ] && pass "$total audit events, each naming the caller that made it" || fail "$bad of $total events name another caller"
[ "$(sql "SELECT count(*) FROM tenancy.verify_audit_log()")" = 0 ] && pass "audit chain intact" || fail "audit chain"
finish
