#!/usr/bin/env bash
# test/integration/daemon_concurrency.sh
# 16 concurrent clients add users to a team tenant (max_users 10): exactly 10 succeed (201), the rest get 429,
# none gets a 5xx, and the database holds exactly 10 users.
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"
setup_daemon

api POST /api/v1/admin/tenants '{"organization_name": "Team Co", "slug": "team-co", "plan": "team"}'
expect 201 "team tenant" || exit 1
T=$(jqb .id)
api PATCH "/api/v1/tenants/$T" '{"status": "active"}'; expect 200 "activate"

mkdir -p "$TENANCY_TMP/results"
CLIENTS=()
for c in $(seq 1 16); do
  (
    for i in 1 2 3; do
      curl -sS -o /dev/null -w '%{http_code}\n' --max-time 30 -X POST "$URL/api/v1/tenants/$T/users" \
        -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" \
        -d "{\"email\": \"user$c-$i@team-co.com\", \"send_invitation\": false}"
    done > "$TENANCY_TMP/results/$c"
  ) &
  CLIENTS+=($!)
done
wait "${CLIENTS[@]}"  # not a bare wait: tenancyd is a background child too
created=$(cat "$TENANCY_TMP/results"/* | grep -c '^201$')
refused=$(cat "$TENANCY_TMP/results"/* | grep -c '^429$')
other=$(cat "$TENANCY_TMP/results"/* | grep -vc '^201$\|^429$')
echo "201: $created, 429: $refused, other: $other"
[ "$created" = 10 ] && pass "exactly 10 created" || fail "$created created"
[ "$refused" = 38 ] && pass "38 refused with 429" || fail "$refused refused"
[ "$other" = 0 ] && pass "no other status" || fail "$other unexpected statuses: $(cat "$TENANCY_TMP/results"/* | sort | uniq -c)"
[ "$(cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.users WHERE tenant_id = '$T'")" = 10 ] && pass "10 users in the database" || fail "user count"
api GET "/api/v1/tenants/$T/users?limit=1000"
[ "$(jqb '.items | length')" = 10 ] && pass "the API lists 10 users" || fail "listed: $BODY"
api POST "/api/v1/tenants/$T/users" '{"email": "late@team-co.com"}'
expect 429 "the 11th user is refused"
[ "$(jqb .error.sqlstate)" = TN003 ] && pass "429 carries TN003" || fail "sqlstate: $BODY"
finish
