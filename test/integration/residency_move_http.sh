#!/usr/bin/env bash
# test/integration/residency_move_http.sh
# The live move through tenancyd (POST/GET /api/v1/tenants/{id}/move, PATCH data_residency) across two regions while
# writers keep going: every acknowledged write arrives, api_calls stays exact, the directory and every route follow
# the tenant, its tokens keep working, the source keeps nothing; refusals (404, 400, 403, 409) and a rolled-back move.
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"
source "$TENANCY_ROOT/test/integration/residency_move_lib.bash"

DAEMON_PIDS=()
cleanup() { for p in "${DAEMON_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; stop_all_clusters; }
trap cleanup EXIT

start_regions || exit 1
grant_daemon_role || exit 1
# The writers' role of the application, on both clusters.
WRITER="CREATE ROLE app_writer LOGIN IN ROLE tenancy_app;
        GRANT SELECT, INSERT, UPDATE, DELETE ON projects, items, events TO app_writer;"
eu_psql -c "$WRITER" >/dev/null && us_psql -c "$WRITER" >/dev/null || exit 1

DAEMON_PORT=$(free_port)
CONF="$TENANCY_TMP/tenancyd.yaml"
{
  echo "listen: {host: 127.0.0.1, port: $DAEMON_PORT, threads: 16}"
  echo "database: {pool_size: 4, acquire_timeout_ms: 3000, connect_timeout_s: 2, health_check_interval_s: 1}"
  echo "auth: {admin_token_sha256: \"$ADMIN_HASH\"}"
  echo "log: {level: info}"
  echo "regions: {us: \"$(daemon_conninfo "$US_PORT")\", eu: \"$(daemon_conninfo "$EU_PORT")\"}"
} >"$CONF"
"$TENANCY_DAEMON" --check-config "$CONF" >/dev/null || exit 1
"$TENANCY_DAEMON" --config "$CONF" >>"$TENANCY_TMP/tenancyd.log" 2>&1 &
DAEMON_PIDS+=($!)
URL="http://127.0.0.1:$DAEMON_PORT"
for _ in $(seq 1 100); do curl -fsS "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
# A second instance on the same configuration (as behind a load balancer): it does not run the move, but sees it.
PORT_B=$(free_port)
sed "s/port: $DAEMON_PORT/port: $PORT_B/" "$CONF" > "$TENANCY_TMP/b.yaml"
"$TENANCY_DAEMON" --config "$TENANCY_TMP/b.yaml" >>"$TENANCY_TMP/tenancyd.log" 2>&1 &
DAEMON_PIDS+=($!)
URL_B="http://127.0.0.1:$PORT_B"
for _ in $(seq 1 100); do curl -fsS "$URL_B/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
on_b() { local saved=$URL; URL=$URL_B; api "$@"; URL=$saved; }
header_of() { sed -n "s/^$1: *\([^\r]*\).*/\1/Ip" <<<"$HEADERS" | head -1; }

# --- Tenants: acme (moved with writers running), beta (a move that rolls back), gamma (never moved).
create() { # create SLUG -> id
  api POST /api/v1/admin/tenants "{\"organization_name\": \"$1\", \"slug\": \"$1\", \"plan\": \"enterprise\", \"data_residency\": \"eu\", \"admin_email\": \"owner@$1.io\"}"
  [ "$STATUS" = 201 ] || { fail "create $1: $STATUS $BODY"; exit 1; }
  jqb .id
}
ACME=$(create acme); BETA=$(create beta); GAMMA=$(create gamma)
ROWS=100000 # rows of items each of acme (moved) and beta (rolled back) holds, as issue #8 asks
eu_psql >/dev/null <<SQL || exit 1
UPDATE tenancy.tenants SET status = 'active';
INSERT INTO items (tenant_id, n, payload) SELECT t, g, repeat('x', 40)
  FROM unnest(ARRAY['$ACME', '$BETA']::uuid[]) t, generate_series(1, $ROWS) g;
INSERT INTO projects (tenant_id, name, secret)
SELECT '$ACME', 'project ' || g, tenancy.encrypt('$ACME', 'secret ' || g) FROM generate_series(1, 20) g;
SQL
api POST "/api/v1/tenants/$ACME/tokens" '{"role": "owner", "name": "kept"}'
expect 201 "owner token of acme"; TOKEN=$(jqb .token)
api POST "/api/v1/tenants/$ACME/tokens" '{"role": "admin", "name": "revoked"}'
expect 201 "second token of acme"; REVOKED=$(jqb .token); REVOKED_ID=$(jqb .id)
api DELETE "/api/v1/tenants/$ACME/tokens/$REVOKED_ID"
expect 204 "revoke the second token"
api POST "/api/v1/tenants/$GAMMA/tokens" '{"role": "owner"}'
expect 201 "owner token of gamma"; GAMMA_TOKEN=$(jqb .token)

# Every tenant-token request to acme's routes goes through tapi, which records its status: each 2xx is one metered
# api_calls unit, nothing else is (a 503 of the freeze is refused before metering).
touch "$TENANCY_TMP/tapi.status"
tapi() { api "$1" "$2" "${3-}" "$TOKEN"; echo "$STATUS" >> "$TENANCY_TMP/tapi.status"; }
tapi GET "/api/v1/tenants/$ACME/usage"
expect 200 "the token works before the move"

# --- Refusals, before any move.
api POST "/api/v1/tenants/00000000-0000-4000-8000-000000000000/move" '{"data_residency": "us"}'
expect 404 "move of an unknown tenant"
[ "$(jqb .error.sqlstate)" = TN001 ] && pass "unknown tenant is TN001" || fail "unknown tenant: $BODY"
api POST "/api/v1/tenants/$ACME/move" '{"data_residency": "mars"}'
expect 400 "move to an unknown region"
api POST "/api/v1/tenants/$ACME/move" '{"data_residency": "uk"}'
expect 400 "move to a region without a configured cluster"
api POST "/api/v1/tenants/$ACME/move" '{"data_residency": "eu"}'
expect 400 "move to the tenant's own region"
api POST "/api/v1/tenants/$ACME/move" '{"data_residency": "us", "plan": "team"}'
expect 400 "move body with another field"
api POST "/api/v1/tenants/$ACME/move" '{}'
expect 400 "move body without data_residency"
tapi POST "/api/v1/tenants/$ACME/move" '{"data_residency": "us"}'
expect 403 "move by the tenant's own owner token"
tapi PATCH "/api/v1/tenants/$ACME" '{"data_residency": "us"}'
expect 403 "PATCH data_residency across regions by a tenant token"
echo "2 (the 403 above: the owner may PATCH, so the call was metered before the handler refused the move)" \
  >> "$TENANCY_TMP/tapi.status"
api PATCH "/api/v1/tenants/$ACME" '{"data_residency": "us", "display_name": "Acme"}'
expect 409 "PATCH data_residency across regions combined with another key"
grep -q "/move" <<<"$(jqb .error.detail)" && pass "its hint names POST .../move" || fail "409 hint: $BODY"
api GET "/api/v1/tenants/$GAMMA/move"
expect 404 "GET move of a tenant never moved"
NOWHERE=00000000-0000-4000-8000-0000000000aa
us_psql -c "INSERT INTO tenancy.tenant_directory (tenant_id, slug, region, state) VALUES ('$NOWHERE', 'nowhere', 'uk', 'active')" >/dev/null
api POST "/api/v1/tenants/$NOWHERE/move" '{"data_residency": "us"}'
expect 503 "move of a tenant the directory places in a region without a cluster"
[ "$(jqb .error.code)" = region_unavailable ] && pass "named region_unavailable" || fail "no-cluster source: $BODY"
us_psql -c "DELETE FROM tenancy.tenant_directory WHERE tenant_id = '$NOWHERE'" >/dev/null
[ "$(eu_psql -At -c "SELECT count(*) FROM tenancy.tenant_moves") $(us_psql -At -c "SELECT count(*) FROM tenancy.tenants WHERE id = '$ACME'")" = "0 0" ] \
  && pass "refused moves left nothing" || fail "refused moves left state behind"

# --- Writers: rows through SQL in the region the directory names, users through tenancyd (admin token), metered
# reads through tenancyd (tenant token), and gamma, which is not moving.
STOP="$TENANCY_TMP/stop"
region_of() { us_psql -At -c "SELECT region FROM tenancy.tenant_directory WHERE tenant_id = '$1'"; }
writer_rows() {
  local k=0 port
  while [ ! -e "$STOP" ]; do
    k=$((k + 1))
    [ "$(region_of "$ACME")" = us ] && port=$US_PORT || port=$EU_PORT
    PGPORT_OVERRIDE=$port cluster_psql -d app -At -c "SET ROLE app_writer; BEGIN; SELECT tenancy.set_tenant('$ACME');
        INSERT INTO items (tenant_id, n, payload) VALUES ('$ACME', -$k, 'w'); COMMIT;" >/dev/null 2>&1 \
      && echo "$k" >> "$TENANCY_TMP/rows.acked"
  done
}
http_writer() { # http_writer NAME TOKEN METHOD PATH BODY_PREFIX: records "k status retry-after" per request
  local name=$1 token=$2 method=$3 path=$4 prefix=$5 k=0 code ra
  while [ ! -e "$STOP" ]; do
    k=$((k + 1))
    local args=(-sS -X "$method" -o "$TENANCY_TMP/$name.body" -D "$TENANCY_TMP/$name.hdr" -w '%{http_code}'
                --max-time 30 -H "Authorization: Bearer $token")
    [ -n "$prefix" ] && args+=(-H "Content-Type: application/json" --data-binary "${prefix//@K@/$k}")
    code=$(curl "${args[@]}" "$URL$path")
    ra=$(sed -n 's/^retry-after: *\([0-9]*\).*/\1/Ip' "$TENANCY_TMP/$name.hdr" | head -1)
    echo "$k $code ${ra:--}" >> "$TENANCY_TMP/$name.log"
  done
}
touch "$TENANCY_TMP"/{rows.acked,users.log,reads.log,gamma.log}
writer_rows & W1=$!
http_writer users "$ADMIN_TOKEN" POST "/api/v1/tenants/$ACME/users" \
  '{"email": "w@K@@acme.io", "role": "developer", "send_invitation": false}' & W2=$!
http_writer reads "$TOKEN" GET "/api/v1/tenants/$ACME/usage" "" & W3=$!
http_writer gamma "$GAMMA_TOKEN" GET "/api/v1/tenants/$GAMMA/usage" "" & W4=$!
sleep 1

# --- The move, through PATCH data_residency (admin token): 202 and the move's Location. A transaction held open on
# the source keeps the move at its slot creation (which waits for running transactions), so the checks of a running
# move below see one.
open_session hold "$EU_PORT"
sq hold "BEGIN; SELECT pg_catalog.pg_current_xact_id()" >/dev/null
api PATCH "/api/v1/tenants/$ACME" '{"data_residency": "us"}'
expect 202 "PATCH data_residency to another region starts the move"
[ "$(header_of Location)" = "/api/v1/tenants/$ACME/move" ] && pass "Location names the move" \
  || fail "Location: $(header_of Location)"
[ "$(jqb '.from + ">" + .to')" = "eu>us" ] && pass "the move goes eu > us" || fail "move document: $BODY"
api POST "/api/v1/tenants/$ACME/move" '{"data_residency": "us"}'
expect 409 "a second move while one runs"
[ "$(jqb .error.code)" = move_in_progress ] && pass "second move is move_in_progress" || fail "second move: $BODY"
api GET "/api/v1/tenants/$ACME/move"
expect 200 "GET the running move"
[ "$(jqb .phase)" = prepare ] && pass "it waits in phase prepare for the open transaction" || fail "running move: $BODY"
on_b POST "/api/v1/tenants/$ACME/move" '{"data_residency": "us"}'
expect 409 "a second move through another instance (the source's move record refuses it)"
[ "$(jqb .error.code) $(jqb .error.sqlstate)" = "move_in_progress 55006" ] && pass "named move_in_progress" \
  || fail "second move on B: $BODY"
on_b GET "/api/v1/tenants/$ACME/move"
expect 200 "GET the move on the instance that does not run it"
[ "$(jqb '.orchestrated_elsewhere|tostring') $(jqb .phase) $(jqb .to)" = "true prepare us" ] \
  && pass "it reports the source's move record" || fail "move on B: $BODY"
sq hold "COMMIT" >/dev/null; close_session hold
PHASES=""
for _ in $(seq 1 600); do
  api GET "/api/v1/tenants/$ACME/move"
  phase=$(jqb .phase)
  [[ " $PHASES " == *" $phase "* ]] || PHASES="$PHASES $phase"
  case "$phase" in done | rolled_back | failed) break ;; esac
  sleep 0.2
done
echo "phases seen:$PHASES"
expect 200 "GET the move"
[ "$(jqb .phase)" = done ] && pass "the move is done" || fail "move did not finish: $BODY"
[ "$(jqb '.freeze_ms | type')" = number ] && [ "$(jqb .tokens_moved)" = 2 ] && [ "$(jqb .rows_total)" -ge "$ROWS" ] \
  && pass "move reports freeze $(jqb .freeze_ms) ms, total $(jqb .total_ms) ms, $(jqb .rows_total) rows, 2 tokens" \
  || fail "move report: $BODY"
[ "$(header_of Cache-Control)" = no-store ] && pass "move status is not cached" || fail "Cache-Control: $HEADERS"
sleep 1
touch "$STOP"
wait "$W1" "$W2" "$W3" "$W4"

# --- Nothing acknowledged is lost; the old region accepted nothing after the switch.
acked_rows=$(wc -l < "$TENANCY_TMP/rows.acked")
expect_eq "acme's rows in the US cluster ($ROWS + $acked_rows acknowledged)" "$((ROWS + acked_rows))" \
  "$(us_psql -At -c "SELECT count(*) FROM items WHERE tenant_id = '$ACME'")"
acked_users=$(awk '$2 == 201' "$TENANCY_TMP/users.log" | wc -l)
[ "$acked_users" -gt 0 ] && pass "users added through tenancyd: $acked_users" || fail "no user was added"
expect_eq "acme's users in the US cluster (owner + acknowledged)" "$((1 + acked_users))" \
  "$(us_psql -At -c "SELECT count(*) FROM tenancy.users WHERE tenant_id = '$ACME'")"
expect_eq "every acknowledged user is there" 0 "$(us_psql -At -c "SELECT count(*) FROM unnest(string_to_array('$(awk '$2 == 201 {printf "w%s@acme.io,", $1}' "$TENANCY_TMP/users.log")', ',')) e
   WHERE e <> '' AND NOT EXISTS (SELECT 1 FROM tenancy.users u WHERE u.tenant_id = '$ACME' AND u.email = e)")"
for w in users reads; do
  echo "$w answers: $(cut -d' ' -f2 "$TENANCY_TMP/$w.log" | sort | uniq -c | xargs)"
  expect_eq "$w: only 2xx or 503 answers" 0 "$(awk '$2 !~ /^2/ && $2 != 503' "$TENANCY_TMP/$w.log" | wc -l)"
  expect_eq "$w: every 503 carries Retry-After" 0 "$(awk '$2 == 503 && $3 == "-"' "$TENANCY_TMP/$w.log" | wc -l)"
done
expect_eq "gamma (not moving): every request answered 200" 0 "$(awk '$2 != 200' "$TENANCY_TMP/gamma.log" | wc -l)"
# api_calls exact: one unit per 2xx tenant-token request, before, during and after the move, none lost or doubled.
tapi GET "/api/v1/tenants/$ACME/usage"
expect 200 "the token keeps working after the move"
metered=$(( $(grep -c '^2' "$TENANCY_TMP/tapi.status") + $(awk '$2 ~ /^2/' "$TENANCY_TMP/reads.log" | wc -l) ))
expect_eq "api_calls exact across the move" "$metered" \
  "$(us_psql -At -c "SELECT used FROM tenancy._quota_state('$ACME', 'api_calls')")"

# --- The directory and every route follow the tenant; the old region keeps nothing of it.
expect_eq "the directory names the US region" us "$(region_of "$ACME")"
api GET "/api/v1/tenants/$ACME"
expect 200 "GET the moved tenant"
[ "$(jqb .data_residency)" = us ] && pass "it resides in us" || fail "tenant after the move: $BODY"
api PATCH "/api/v1/tenants/$ACME" '{"display_name": "Acme US"}'
expect 200 "PATCH the moved tenant"
expect_eq "the PATCH landed in the US cluster" "Acme US" \
  "$(us_psql -At -c "SELECT display_name FROM tenancy.tenants WHERE id = '$ACME'")"
tapi POST "/api/v1/tenants/$ACME/users" '{"email": "after@acme.io", "role": "developer", "send_invitation": false}'
expect 201 "add a user with the tenant token after the move"
expect_eq "the user landed in the US cluster" 1 \
  "$(us_psql -At -c "SELECT count(*) FROM tenancy.users WHERE email = 'after@acme.io'")"
tapi GET "/api/v1/tenants/$ACME/users"
expect 200 "list users with the tenant token"
api GET "/api/v1/tenants/$ACME/users" "" "$REVOKED"
expect 401 "the token revoked before the move stays revoked"
tapi GET "/api/v1/tenants/$GAMMA"
expect 403 "acme's token on gamma after the move"
expect_eq "secrets decrypt in the US cluster" 20 \
  "$(us_psql -At -c "SELECT count(*) FROM projects WHERE tenant_id = '$ACME' AND tenancy.decrypt('$ACME', secret) LIKE 'secret %'")"
expect_eq "nothing of acme left in the EU cluster" "0 0 0 0 0 0 0" "$(eu_psql -At -c "SELECT concat_ws(' ',
    (SELECT count(*) FROM tenancy.tenants WHERE id = '$ACME'), (SELECT count(*) FROM tenancy.users WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM items WHERE tenant_id = '$ACME'), (SELECT count(*) FROM projects WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM tenancy.tenant_tokens WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM tenancy.tenant_keys WHERE tenant_id = '$ACME'), (SELECT count(*) FROM tenancy.tenant_moves))")"
expect_eq "no publication, slot or subscription left" "0 0 0" \
  "$(eu_psql -At -c "SELECT count(*) FROM pg_publication") $(eu_psql -At -c "SELECT count(*) FROM pg_replication_slots") $(us_psql -At -c "SELECT count(*) FROM pg_subscription")"
expect_eq "the old region no longer knows the tenant" 1 \
  "$(eu_psql -At -c "SET ROLE app_writer; SELECT tenancy.set_tenant('$ACME')" 2>&1 | grep -c 'does not exist')"

# --- A move that fails on the target rolls back: the target lacks a table the source isolates.
eu_psql -c "CREATE TABLE extra (tenant_id uuid NOT NULL, v int); SELECT tenancy.enable_isolation('extra');
            GRANT SELECT ON extra TO tenancyd" >/dev/null || fail "extra table"
api POST "/api/v1/tenants/$BETA/move" '{"data_residency": "us"}'
expect 202 "POST move of beta"
for _ in $(seq 1 300); do
  api GET "/api/v1/tenants/$BETA/move"
  [ "$(jqb .phase)" = rolled_back ] && [ "$(jqb .target_cleaned)" = true ] && break
  sleep 0.2
done
[ "$(jqb .phase) $(jqb .target_cleaned)" = "rolled_back true" ] && pass "beta's move rolled back: $(jqb .error)" \
  || fail "beta's move: $BODY"
expect_eq "beta stays in the EU region" eu "$(region_of "$BETA")"
api POST "/api/v1/tenants/$BETA/users" '{"email": "after@beta.io", "role": "developer", "send_invitation": false}'
expect 201 "beta takes writes again"
expect_eq "beta whole in the EU cluster, nothing in the US cluster, no move records" "$ROWS 1 0 0 0" \
  "$(eu_psql -At -c "SELECT (SELECT count(*) FROM items WHERE tenant_id = '$BETA') || ' ' || (SELECT count(*) FROM tenancy.users WHERE email = 'after@beta.io') || ' ' || (SELECT count(*) FROM tenancy.tenant_moves)") $(us_psql -At -c "SELECT (SELECT count(*) FROM tenancy.tenants WHERE id = '$BETA') || ' ' || (SELECT count(*) FROM tenancy.tenant_moves)")"

expect_eq "no 500 answered by tenancyd" 0 "$(grep -c '"status":500' "$TENANCY_TMP/tenancyd.log")"
finish
