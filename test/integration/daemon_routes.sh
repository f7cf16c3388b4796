#!/usr/bin/env bash
# test/integration/daemon_routes.sh
# tenancyd end to end: the brief's Acme walk-through (its curl commands), every route's success and error paths,
# the tenant-token role matrix, and a token of tenant A on every route of tenant B (403).
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"
setup_daemon

# --- The brief's walk-through, its curl commands as written (our host and port, the /v1 alias).
HOST="$URL"
out=$(curl -sS -X POST "$HOST/v1/admin/tenants" \
  -H "Authorization: Bearer $ADMIN_TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "organization_name": "Acme Corporation",
    "display_name": "Acme Corp",
    "slug": "acme-corp",
    "admin_email": "admin@acme-corp.com",
    "plan": "enterprise",
    "data_residency": "us",
    "parent_tenant_id": null
  }' -w '\n%{http_code}')
split_reply "$out"
expect 201 "brief: create Acme"
ACME=$(jqb .id)
[ "$(jqb '.organization_name + "|" + .slug + "|" + .status + "|" + .plan + "|" + .data_residency')" = "Acme Corporation|acme-corp|trial|enterprise|us" ] \
  && pass "brief: tenant fields" || fail "brief: tenant fields: $BODY"
[ "$(jqb '.quotas | [.max_users, .max_projects, .max_api_calls_per_month, .max_storage_mb, .max_ai_requests_per_day, .max_concurrent_sessions] | map(tostring) | join(",")')" = "999999,999999,999999999,1048576,10000,100" ] \
  && pass "brief: enterprise quotas" || fail "brief: quotas: $BODY"
created=$(jqb .created_at); trial=$(jqb .trial_ends_at)
[[ "$created" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] && pass "brief: RFC 3339 UTC created_at" || fail "created_at format: $created"
[ $(( $(date -d "$trial" +%s) - $(date -d "$created" +%s) )) = 2592000 ] && pass "brief: trial ends 30 days after creation" || fail "trial_ends_at $trial vs $created"

# A tenant admin token for the brief's "tenant-admin-token".
api POST "/api/v1/tenants/$ACME/tokens" '{"role": "admin", "name": "acme admin", "expires_in": "90d"}'
expect 201 "issue a tenant admin token"
TENANT_ADMIN=$(jqb .token)
[ "$(jqb '.role + "|" + .tenant_id + "|" + (.expires_at != null | tostring)')" = "admin|$ACME|true" ] && pass "token document" || fail "token document: $BODY"
if cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.tenant_tokens WHERE token_sha256 = sha256(convert_to('$TENANT_ADMIN', 'UTF8'))" | grep -qx 1 \
   && ! cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.tenant_tokens t WHERE position(convert_to('$TENANT_ADMIN', 'UTF8') in t.token_sha256) > 0" | grep -qx 1; then
  pass "the token is stored only as its SHA-256"
else
  fail "token storage"
fi

out=$(curl -sS -X POST "$HOST/v1/tenants/$ACME/users" \
  -H "Authorization: Bearer $TENANT_ADMIN" \
  -H "Content-Type: application/json" \
  -d '{
    "email": "developer@acme-corp.com",
    "first_name": "John",
    "last_name": "Developer",
    "role": "developer",
    "send_invitation": true
  }' -w '\n%{http_code}')
split_reply "$out"
expect 201 "brief: add developer"
[ "$(jqb '.email + "|" + .role + "|" + .status + "|" + .tenant_id')" = "developer@acme-corp.com|developer|invited|$ACME" ] && pass "brief: user document" || fail "user document: $BODY"
DEV_USER=$(jqb .id)

out=$(curl -sS -X GET "$HOST/v1/tenants/$ACME" \
  -H "Authorization: Bearer $TENANT_ADMIN" -w '\n%{http_code}')
split_reply "$out"
expect 200 "brief: get tenant"
[ "$(jqb .slug)" = "acme-corp" ] && pass "brief: got Acme" || fail "get tenant: $BODY"

out=$(curl -sS -X PATCH "$HOST/v1/tenants/$ACME" \
  -H "Authorization: Bearer $TENANT_ADMIN" \
  -H "Content-Type: application/json" \
  -d '{
    "display_name": "Updated Acme Corp",
    "data_residency": "eu",
    "configuration": {
      "branding": {
        "primary_color": "#007ACC",
        "logo_url": "https://acme-corp.com/logo.png"
      },
      "features": {
        "ai_code_completion": true,
        "real_time_collaboration": true,
        "advanced_analytics": true
      }
    }
  }' -w '\n%{http_code}')
split_reply "$out"
# Issue #16: data_residency is the operator's (admin token) in every mode, and one cluster cannot move the data: the
# brief's tenant-admin PATCH is refused whole (403 42501), nothing of it applied; without data_residency it passes.
expect 403 "brief: patch tenant with data_residency (a tenant token may not change it)"
[ "$(jqb .error.sqlstate)" = 42501 ] && pass "brief: data_residency refused with 42501" || fail "patch residency: $BODY"
out=$(curl -sS -X PATCH "$HOST/v1/tenants/$ACME" \
  -H "Authorization: Bearer $TENANT_ADMIN" \
  -H "Content-Type: application/json" \
  -d '{
    "display_name": "Updated Acme Corp",
    "configuration": {
      "branding": {
        "primary_color": "#007ACC",
        "logo_url": "https://acme-corp.com/logo.png"
      },
      "features": {
        "ai_code_completion": true,
        "real_time_collaboration": true,
        "advanced_analytics": true
      }
    }
  }' -w '\n%{http_code}')
split_reply "$out"
expect 200 "brief: patch tenant"
[ "$(jqb '.display_name + "|" + .data_residency + "|" + .configuration.branding.primary_color + "|" + (.configuration.features.advanced_analytics | tostring)')" = "Updated Acme Corp|us|#007ACC|true" ] \
  && pass "brief: patched fields" || fail "patch: $BODY"

out=$(curl -sS -X GET "$HOST/v1/tenants/$ACME/users" \
  -H "Authorization: Bearer $TENANT_ADMIN" \
  -G -d "include_roles=true" -d "status=active" -w '\n%{http_code}')
split_reply "$out"
expect 200 "brief: list users with roles"
echo "$BODY" | jq -e '(.items | type == "array") and has("next_cursor") and all(.items[]; .status == "active")' >/dev/null \
  && pass "brief: active users page" || fail "list users: $BODY"

out=$(curl -sS -X GET "$HOST/v1/tenants/$ACME/usage" \
  -H "Authorization: Bearer $TENANT_ADMIN" -w '\n%{http_code}')
split_reply "$out"
expect 200 "brief: usage"
echo "$BODY" | jq -e '.tenant_id and .current_usage.users_count != null and .quotas.max_users == 999999 and .utilization_percentages and .last_calculated_at' >/dev/null \
  && pass "brief: usage document" || fail "usage: $BODY"

out=$(curl -sS -X GET "$HOST/v1/tenants/$ACME/usage/trends" \
  -H "Authorization: Bearer $TENANT_ADMIN" \
  -G -d "period=30d" -d "metrics=api_calls,storage,ai_requests" -w '\n%{http_code}')
split_reply "$out"
expect 200 "brief: usage trends"
[ "$(jqb '.period + "|" + (.metrics | keys | sort | join(","))')" = "30d|ai_requests,api_calls,storage" ] && pass "brief: trends keys" || fail "trends: $BODY"
echo "$BODY" | jq -e '.metrics.api_calls | length > 0 and all(.[]; (.date | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}$")) and (.value | type == "number"))' >/dev/null \
  && pass "trends: api_calls were metered by the tenant token" || fail "trends api_calls: $BODY"

# --- Admin routes: list with filters and cursor pagination.
for i in 1 2 3; do
  api POST /api/v1/admin/tenants "{\"organization_name\": \"Page $i\", \"slug\": \"page-$i\", \"plan\": \"team\"}"
  expect 201 "create page-$i"
done
api GET "/api/v1/admin/tenants?plan=team&limit=2"
expect 200 "list page 1"
[ "$(jqb '.items | length')" = 2 ] && [ "$(jqb .next_cursor)" != null ] && pass "page 1 has 2 items and a cursor" || fail "page 1: $BODY"
cursor=$(jqb .next_cursor); first=$(jqb '[.items[].id] | join(",")')
api GET "/api/v1/admin/tenants?plan=team&limit=2&cursor=$cursor"
expect 200 "list page 2"
[ "$(jqb '.items | length')" = 1 ] && [ "$(jqb .next_cursor)" = null ] && pass "page 2 ends the list" || fail "page 2: $BODY"
[[ "$first" != *"$(jqb '.items[0].id')"* ]] && pass "pages do not overlap" || fail "pages overlap"
api GET "/api/v1/admin/tenants?status=trial&plan=enterprise"
expect 200 "list filtered"
[ "$(jqb '[.items[].slug] | join(",")')" = "acme-corp" ] && pass "filters apply" || fail "filters: $BODY"
api GET "/api/v1/admin/tenants?parent=$ACME"
expect 200 "list by parent"
[ "$(jqb '.items | length')" = 0 ] && pass "no children" || fail "parent filter: $BODY"
api GET "/api/v1/admin/tenants?limit=0";             expect 400 "limit 0"
api GET "/api/v1/admin/tenants?limit=1001";          expect 400 "limit 1001"
api GET "/api/v1/admin/tenants?status=frozen";       expect 400 "unknown status"
api GET "/api/v1/admin/tenants?cursor=bogus";        expect 400 "bad cursor"
api GET "/api/v1/admin/tenants" "" -;                expect 401 "list without token"
api GET "/api/v1/admin/tenants" "" "wrong";          expect 401 "list with a wrong token"
api GET "/api/v1/admin/tenants" "" "$TENANT_ADMIN";  expect 403 "tenant token on an admin route"
api POST /api/v1/admin/tenants '{"organization_name": "Dup", "slug": "acme-corp"}'; expect 409 "duplicate slug"
[ "$(jqb .error.sqlstate)" = 23505 ] && pass "duplicate carries 23505" || fail "dup sqlstate: $BODY"
api POST /api/v1/admin/tenants '{"organization_name": "Bad", "slug": "Bad Slug"}'; expect 400 "bad slug"
[ "$(jqb .error.sqlstate)" = TN005 ] && pass "bad slug carries TN005" || fail "slug sqlstate: $BODY"
api POST /api/v1/admin/tenants '{"organization_name": "Orphan", "slug": "orphan", "parent_tenant_id": "00000000-0000-0000-0000-000000000001"}'
expect 409 "missing parent is TN007"
api POST /api/v1/admin/tenants "{\"organization_name\": \"Child\", \"slug\": \"acme-child\", \"parent_tenant_id\": \"$ACME\"}"
expect 201 "child tenant"
CHILD=$(jqb .id)
api PATCH "/api/v1/tenants/$ACME" "{\"parent_tenant_id\": \"$CHILD\"}"; expect 409 "cycle is TN007"

# --- Tenant routes with the admin token, and their errors.
MISSING=00000000-0000-0000-0000-0000000000ff
api GET "/api/v1/tenants/$MISSING";                  expect 404 "unknown tenant"
[ "$(jqb .error.sqlstate)" = TN001 ] && pass "404 carries TN001" || fail "404 sqlstate: $BODY"
api GET "/api/v1/tenants/not-a-uuid";                expect 400 "invalid uuid"
api PATCH "/api/v1/tenants/$ACME" '{"slug": "new"}'; expect 400 "read-only key"
api PATCH "/api/v1/tenants/$ACME" '{"nope": 1}';     expect 400 "unknown key"
api PATCH "/api/v1/tenants/$ACME" '{"status": "active"}'; expect 200 "activate"
api GET "/api/v1/tenants/$ACME/users?include_roles=true"
expect 200 "users with permissions"
echo "$BODY" | jq -e '.items | length == 2 and all(.[]; .permissions.users and .permissions.billing)' >/dev/null \
  && pass "permissions per user" || fail "permissions: $BODY"
[ "$(echo "$BODY" | jq -r '.items[] | select(.role == "owner") | .permissions.billing')" = full ] && pass "owner billing full" || fail "owner perms: $BODY"
api GET "/api/v1/tenants/$ACME/users?include_roles=maybe"; expect 400 "include_roles not a boolean"
api GET "/api/v1/tenants/$ACME/users?status=sleeping";     expect 400 "unknown user status"
api GET "/api/v1/tenants/$ACME/users?limit=1"
expect 200 "users page 1"
api GET "/api/v1/tenants/$ACME/users?limit=1&cursor=$(jqb .next_cursor)"
expect 200 "users page 2"
[ "$(jqb '.items | length')" = 1 ] && pass "users paginate" || fail "users page 2: $BODY"
api POST "/api/v1/tenants/$ACME/users" '{"email": "developer@acme-corp.com"}'; expect 409 "duplicate email"
api POST "/api/v1/tenants/$ACME/users" '{"email": "not-an-email"}';           expect 400 "invalid email"
api POST "/api/v1/tenants/$ACME/users" '{"email": "x@acme-corp.com", "role": "emperor"}'; expect 400 "unknown role"
api POST "/api/v1/tenants/$MISSING/users" '{"email": "x@y.com"}';             expect 404 "users of unknown tenant"
api GET "/api/v1/tenants/$ACME/usage/trends?period=500d";   expect 400 "period over 400d"
api GET "/api/v1/tenants/$ACME/usage/trends?period=12h&metrics=users,projects,concurrent_sessions,storage_mb"
expect 200 "trends in hours"
[ "$(jqb '.metrics | keys | sort | join(",")')" = "concurrent_sessions,projects,storage_mb,users" ] && pass "only asked metrics" || fail "trends: $BODY"
api GET "/api/v1/tenants/$ACME/usage/trends?metrics=api_calls,bogus"; expect 400 "unknown metric"
api GET "/api/v1/tenants/$MISSING/usage";                   expect 404 "usage of unknown tenant"
api POST "/api/v1/tenants/$ACME/keys/rotate"
if [ "$STATUS" = 200 ]; then
  pass "key rotation"
  [ "$(jqb .key_version)" -ge 1 ] && pass "key version" || fail "key version: $BODY"
else
  expect 501 "key rotation (crypto not installed yet)"
fi
api POST "/api/v1/tenants/$ACME/keys/rotate" '{"force": true}'; expect 400 "rotation takes no fields"
api GET "/api/v1/tenants/$ACME/sla"
expect 200 "SLA report"
echo "$BODY" | jq -e '.targets.uptime_percent == 99.95 and .targets.response_time_ms == 200 and .targets.support_response_hours == 1 and .measured.requests > 0 and (.measured.mean_response_ms | type == "number") and .window.hours == 720' >/dev/null \
  && pass "SLA targets and measurements" || fail "sla: $BODY"
api GET "/api/v1/tenants/$MISSING/sla";                     expect 404 "SLA of unknown tenant"
api GET "/api/v1/tenants/$ACME/export"
if [ "$STATUS" = 200 ]; then pass "export"; else expect 501 "export (export_tenant not installed)"; fi
api DELETE "/api/v1/tenants/$ACME/tokens/$MISSING";         expect 404 "revoke unknown token"

# --- Role matrix of tenant tokens (SPEC.md "What a tenant token may do").
declare -A TOK
for role in owner admin manager developer viewer guest; do
  api POST "/api/v1/tenants/$ACME/tokens" "{\"role\": \"$role\"}"; expect 201 "issue $role token"
  TOK[$role]=$(jqb .token)
done
check_role() { # check_role ROLE METHOD PATH BODY EXPECTED
  api "$2" "$3" "$4" "${TOK[$1]}"
  if [ "$5" = allow ]; then
    [ "$STATUS" -lt 400 ] || [ "$STATUS" = 501 ] && pass "$1 may $2 $3 ($STATUS)" || fail "$1 $2 $3: $STATUS $BODY"
  else
    [ "$STATUS" = 403 ] && [ "$(jqb .error.sqlstate)" = 42501 ] && pass "$1 may not $2 $3" || fail "$1 $2 $3 should be 403/42501: $STATUS $BODY"
  fi
}
for role in owner admin manager developer viewer guest; do
  read_ok=allow; [ $role = guest ] && read_ok=deny
  users_ok=deny; [[ $role =~ ^(owner|admin|manager)$ ]] && users_ok=allow
  admin_ok=deny; [[ $role =~ ^(owner|admin)$ ]] && admin_ok=allow
  check_role $role GET "/api/v1/tenants/$ACME" "" $read_ok
  check_role $role GET "/api/v1/tenants/$ACME/usage" "" $read_ok
  check_role $role GET "/api/v1/tenants/$ACME/usage/trends" "" $read_ok
  check_role $role GET "/api/v1/tenants/$ACME/sla" "" $read_ok
  check_role $role GET "/api/v1/tenants/$ACME/users" "" $users_ok
  check_role $role POST "/api/v1/tenants/$ACME/users" "{\"email\": \"$role-user@acme-corp.com\", \"role\": \"viewer\"}" $users_ok
  check_role $role PATCH "/api/v1/tenants/$ACME" '{"display_name": "Acme"}' $admin_ok
  check_role $role POST "/api/v1/tenants/$ACME/tokens" '{"role": "guest"}' $admin_ok
  check_role $role POST "/api/v1/tenants/$ACME/keys/rotate" "" $admin_ok
  check_role $role GET "/api/v1/tenants/$ACME/export" "" $admin_ok
done
# No escalation through a tenant token.
api POST "/api/v1/tenants/$ACME/tokens" '{"role": "owner"}' "${TOK[admin]}";             expect 403 "admin token cannot mint an owner token"
api POST "/api/v1/tenants/$ACME/users" '{"email": "boss@acme-corp.com", "role": "owner"}' "${TOK[manager]}"; expect 403 "manager cannot add an owner"
api PATCH "/api/v1/tenants/$ACME" '{"plan": "developer"}' "${TOK[admin]}";                expect 403 "admin token cannot change the plan"
api PATCH "/api/v1/tenants/$ACME" '{"status": "cancelled"}' "${TOK[owner]}";              expect 403 "tenant token cannot change status"
api PATCH "/api/v1/tenants/$ACME" "{\"parent_tenant_id\": \"$CHILD\"}" "${TOK[owner]}";  expect 403 "tenant token cannot re-parent"

# Revocation and expiry.
api POST "/api/v1/tenants/$ACME/tokens" '{"role": "viewer", "expires_in": "1h"}'; expect 201 "short-lived token"
SHORT=$(jqb .token); SHORT_ID=$(jqb .id)
api GET "/api/v1/tenants/$ACME" "" "$SHORT";                 expect 200 "live token works"
api DELETE "/api/v1/tenants/$ACME/tokens/$SHORT_ID";         expect 204 "revoke"
api GET "/api/v1/tenants/$ACME" "" "$SHORT";                 expect 401 "revoked token is 401"
api DELETE "/api/v1/tenants/$ACME/tokens/$SHORT_ID";         expect 404 "revoke twice"
api POST "/api/v1/tenants/$ACME/tokens" '{"role": "viewer", "expires_in": "1h"}'; EXPIRING=$(jqb .token)
cluster_psql -d app -c "UPDATE tenancy.tenant_tokens SET expires_at = now() - interval '1 second' WHERE token_sha256 = sha256(convert_to('$EXPIRING', 'UTF8'))" >/dev/null
api GET "/api/v1/tenants/$ACME" "" "$EXPIRING";              expect 401 "expired token is 401"
api POST "/api/v1/tenants/$ACME/tokens" '{"role": "viewer", "expires_in": "0d"}'; expect 400 "zero lifetime"
api POST "/api/v1/tenants/$ACME/tokens" '{"role": "sultan"}';                     expect 400 "unknown token role"
api POST "/api/v1/tenants/$ACME/tokens" '{}';                                     expect 400 "token role required"

# --- A token of tenant B on every route of tenant A: 403, and nothing of A in the answer.
api POST /api/v1/admin/tenants '{"organization_name": "Beta", "slug": "beta-inc", "plan": "team"}'; expect 201 "create Beta"
BETA=$(jqb .id)
api POST "/api/v1/tenants/$BETA/tokens" '{"role": "owner"}'; expect 201 "Beta owner token"
BETA_TOKEN=$(jqb .token)
ACME_TOKEN_ID=$(cluster_psql -d app -tAc "SELECT id FROM tenancy.tenant_tokens WHERE tenant_id = '$ACME' AND revoked_at IS NULL LIMIT 1")
for route in "GET /api/v1/tenants/$ACME" "PATCH /api/v1/tenants/$ACME" "POST /api/v1/tenants/$ACME/users" \
             "GET /api/v1/tenants/$ACME/users" "GET /api/v1/tenants/$ACME/usage" "GET /api/v1/tenants/$ACME/usage/trends" \
             "POST /api/v1/tenants/$ACME/tokens" "DELETE /api/v1/tenants/$ACME/tokens/$ACME_TOKEN_ID" \
             "POST /api/v1/tenants/$ACME/keys/rotate" "GET /api/v1/tenants/$ACME/sla" "GET /api/v1/tenants/$ACME/export" \
             "GET /v1/tenants/$ACME" "GET /api/v1/tenants/$MISSING"; do
  set -- $route
  body=""; [ "$1" = POST ] || [ "$1" = PATCH ] && body='{"email": "spy@beta.com", "role": "viewer", "display_name": "pwned"}'
  api "$1" "$2" "$body" "$BETA_TOKEN"
  if [ "$STATUS" = 403 ] && ! grep -q "acme" <<<"$BODY"; then pass "Beta token on $1 $2 is 403"; else fail "Beta token on $1 $2: $STATUS $BODY"; fi
done
api GET "/api/v1/tenants/$ACME" "" "$TENANT_ADMIN"
[ "$(jqb .display_name)" != pwned ] && pass "Acme untouched" || fail "Acme was changed by Beta"
[ "$(cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.tenant_tokens WHERE id = '$ACME_TOKEN_ID' AND revoked_at IS NULL")" = 1 ] \
  && pass "Acme token not revoked by Beta" || fail "Beta revoked Acme's token"

# --- Public and operational routes.
api GET /healthz "" -;                 expect 200 "healthz"
api GET /readyz "" -;                  expect 200 "readyz"
api GET /api/v1/openapi.json "" -;     expect 200 "openapi"
jqb .openapi | grep -q '^3\.' && pass "openapi 3" || fail "openapi: ${BODY:0:100}"
api GET /v1/openapi.json "" -;         expect 200 "openapi alias"
api GET /nope "" -;                    expect 404 "unknown route"
api GET /metrics "" -;                 expect 401 "metrics need a token"
api GET /metrics;                      expect 200 "metrics"
grep -q "^tenancy_tenant_requests_total{tenant_id=\"$ACME\",endpoint=\"/api/v1/tenants/{id}\",method=\"GET\",status=\"200\"} " <<<"$BODY" \
  && pass "per-tenant request counter" || fail "metrics counter missing"
grep -q '^# TYPE tenancy_tenant_response_seconds histogram' <<<"$BODY" && pass "histogram type" || fail "histogram"
grep -q "^tenancy_tenant_active_users{tenant_id=\"$ACME\",plan=\"enterprise\"} " <<<"$BODY" && pass "active users gauge" || fail "active users gauge"
grep -q "^tenancy_tenant_quota_utilization_percent{tenant_id=\"$ACME\",quota_type=\"users\"} " <<<"$BODY" && pass "utilization gauge" || fail "utilization gauge"

# Logs: one JSON line per request, never a token.
if grep -q "$TENANT_ADMIN\|$ADMIN_TOKEN\|$BETA_TOKEN" "$TENANCY_TMP/tenancyd.log"; then fail "a token reached the log"; else pass "no token in the log"; fi
grep '"msg":"request"' "$TENANCY_TMP/tenancyd.log" | head -200 | jq -e . >/dev/null && pass "request log lines are JSON" || fail "log lines"
# grep without -q at the end of the pipe: -q exits at the first match and the writer would die of SIGPIPE (pipefail).
grep '"msg":"request"' "$TENANCY_TMP/tenancyd.log" | grep "\"tenant_id\":\"$ACME\"" >/dev/null && pass "log names the tenant" || fail "log tenant"

# The daemon role is no superuser and holds tenancy_admin.
[ "$(cluster_psql -d app -tAc "SELECT rolsuper FROM pg_roles WHERE rolname = 'tenancyd'")" = f ] && pass "daemon role is not a superuser" || fail "superuser"
finish
