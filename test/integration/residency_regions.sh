#!/usr/bin/env bash
# test/integration/residency_regions.sh
# tenancyd regions mode: two clusters (us, eu) with tenancy.region set, two tenancyd instances on one config. Each
# tenant's rows land only in its region's cluster (checked with psql on each), either instance serves every tenant,
# tokens stay in their region and never cross tenants, the admin list pages over both, creation heals after a crash.
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"

DAEMON_PIDS=()
cleanup() { for p in "${DAEMON_PIDS[@]}"; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; stop_all_clusters; }
trap cleanup EXIT

# --- Two regions, each cluster says which region it serves; the directory lives in the US cluster (default).
setup_region() { # setup_region REGION -> sets <REGION>_PORT
  start_cluster "$1" "tenancy.region = '$1'" || exit 1
  cluster_psql -d postgres -c "CREATE DATABASE app" || exit 1
  cluster_psql -d app -c "CREATE EXTENSION tenancy" || exit 1
  cluster_psql -d app -c "CREATE ROLE tenancyd LOGIN PASSWORD 'tenancyd-pw' IN ROLE tenancy_admin" || exit 1
  printf -v "${1^^}_PORT" '%s' "$CLUSTER_PORT"
}
setup_region us
setup_region eu
us_sql() { PGPORT_OVERRIDE=$US_PORT cluster_psql -d app -At "$@"; }
eu_sql() { PGPORT_OVERRIDE=$EU_PORT cluster_psql -d app -At "$@"; }
conninfo() { echo "host=127.0.0.1 port=$1 dbname=app user=tenancyd password=tenancyd-pw"; }

write_config() { # write_config FILE PORT [extra yaml lines...]
  local file=$1 port=$2; shift 2
  {
    echo "listen: {host: 127.0.0.1, port: $port, threads: 8}"
    echo "database: {pool_size: 4, acquire_timeout_ms: 2000, connect_timeout_s: 2, health_check_interval_s: 1}"
    echo "auth: {admin_token_sha256: \"$ADMIN_HASH\"}"
    echo "log: {level: info}"
    for line in "$@"; do echo "$line"; done
  } >"$file"
}
REGIONS="regions: {us: \"$(conninfo "$US_PORT")\", eu: \"$(conninfo "$EU_PORT")\"}"

# --- Configuration errors name the key, in --check-config too.
write_config "$TENANCY_TMP/bad.yaml" 1 "regions: {us: \"$(conninfo "$US_PORT")\", mars: \"host=x\"}"
out=$("$TENANCY_DAEMON" --check-config "$TENANCY_TMP/bad.yaml" 2>&1) && fail "check-config accepted regions.mars" \
  || { echo "$out" | grep -q "regions.mars: unknown region" && pass "check-config names regions.mars" || fail "check-config: $out"; }
write_config "$TENANCY_TMP/bad.yaml" 1 "$REGIONS" "directory: {region: uk}"
out=$("$TENANCY_DAEMON" --check-config "$TENANCY_TMP/bad.yaml" 2>&1) && fail "check-config accepted directory.region uk" \
  || { echo "$out" | grep -q "directory.region: no cluster is configured for region \"uk\"" && pass "check-config names directory.region" || fail "check-config: $out"; }
# Swapped connection strings: the daemon refuses to start (a tenant would land in the wrong country).
write_config "$TENANCY_TMP/swapped.yaml" "$(free_port)" "regions: {us: \"$(conninfo "$EU_PORT")\", eu: \"$(conninfo "$US_PORT")\"}"
if timeout 20 "$TENANCY_DAEMON" --config "$TENANCY_TMP/swapped.yaml" >"$TENANCY_TMP/swapped.log" 2>&1; then
  fail "tenancyd started with swapped regions"
elif grep -q 'regions.us: the cluster serves region \\"eu\\"' "$TENANCY_TMP/swapped.log"; then
  pass "swapped regions refused at start"
else
  fail "swapped regions: $(tail -3 "$TENANCY_TMP/swapped.log")"
fi

# --- Two instances on the same configuration (as behind a load balancer).
PORT_A=$(free_port); PORT_B=$(free_port)
write_config "$TENANCY_TMP/a.yaml" "$PORT_A" "$REGIONS"
write_config "$TENANCY_TMP/b.yaml" "$PORT_B" "$REGIONS"
"$TENANCY_DAEMON" --check-config "$TENANCY_TMP/a.yaml" >/dev/null || exit 1
start_instance() { # start_instance CONFIG PORT
  "$TENANCY_DAEMON" --config "$1" >>"$TENANCY_TMP/tenancyd.log" 2>&1 &
  DAEMON_PIDS+=($!)
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "tenancyd did not start"; cat "$TENANCY_TMP/tenancyd.log"; exit 1
}
start_instance "$TENANCY_TMP/a.yaml" "$PORT_A"
start_instance "$TENANCY_TMP/b.yaml" "$PORT_B"
A="http://127.0.0.1:$PORT_A"; B="http://127.0.0.1:$PORT_B"
on() { URL=$1; shift; api "$@"; } # on INSTANCE METHOD PATH [BODY] [TOKEN]

on "$A" GET /readyz "" -
expect 200 "readyz with both regions"
[ "$(jqb '.regions.us + "|" + .regions.eu')" = "ready|ready" ] && pass "readyz lists regions" || fail "readyz: $BODY"

# --- Creation lands each tenant in its residency's cluster only.
on "$A" POST /api/v1/admin/tenants '{"organization_name": "Euro One", "slug": "euro-one", "plan": "team", "data_residency": "eu", "admin_email": "owner@euro.one"}'
expect 201 "create an EU tenant through instance A"
EU1=$(jqb .id)
on "$B" POST /api/v1/admin/tenants '{"organization_name": "Euro Two", "slug": "euro-two", "data_residency": "eu"}'
expect 201 "create a second EU tenant through instance B"
EU2=$(jqb .id)
on "$B" POST /api/v1/admin/tenants '{"organization_name": "Yankee", "slug": "yankee", "plan": "enterprise"}'
expect 201 "create a US tenant (default residency) through instance B"
US1=$(jqb .id)
[ "$(jqb .data_residency)" = us ] && pass "default residency us" || fail "residency: $BODY"

rows_in() { # rows_in SQLFN TENANT: the tenant's rows in the registry, users and audit log of that cluster
  "$1" -c "SELECT (SELECT count(*) FROM tenancy.tenants WHERE id = '$2') || '/' ||
                  (SELECT count(*) FROM tenancy.users WHERE tenant_id = '$2') || '/' ||
                  (SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = '$2')"
}
eu_rows=$(rows_in eu_sql "$EU1"); us_rows=$(rows_in us_sql "$EU1")
[[ "$eu_rows" =~ ^1/1/[1-9] ]] && [ "$us_rows" = "0/0/0" ] && pass "EU tenant's rows only in the EU cluster ($eu_rows vs $us_rows)" \
  || fail "EU tenant rows: eu=$eu_rows us=$us_rows"
[ "$(rows_in eu_sql "$US1")" = "0/0/0" ] && [[ "$(rows_in us_sql "$US1")" =~ ^1/ ]] && pass "US tenant's rows only in the US cluster" \
  || fail "US tenant rows: eu=$(rows_in eu_sql "$US1") us=$(rows_in us_sql "$US1")"
dir=$(us_sql -c "SELECT string_agg(slug || ':' || region || ':' || state, ',' ORDER BY slug) FROM tenancy.tenant_directory")
[ "$dir" = "euro-one:eu:active,euro-two:eu:active,yankee:us:active" ] && pass "directory: $dir" || fail "directory: $dir"
[ "$(eu_sql -c "SELECT count(*) FROM tenancy.tenant_directory")" = 0 ] && pass "the directory lives in one database" \
  || fail "directory rows in the EU cluster"

# Slugs are unique across regions; a residency without a cluster is refused.
on "$A" POST /api/v1/admin/tenants '{"organization_name": "Clash", "slug": "euro-one", "data_residency": "us"}'
expect 409 "a slug taken in another region"
[ "$(us_sql -c "SELECT count(*) FROM tenancy.tenants WHERE slug = 'euro-one'")" = 0 ] && pass "refused creation left nothing in the US cluster" \
  || fail "the refused tenant stayed in the US cluster"
on "$A" POST /api/v1/admin/tenants '{"organization_name": "Brit", "slug": "brit", "data_residency": "uk"}'
expect 400 "a residency without a configured cluster"
on "$A" POST /api/v1/admin/tenants '{"organization_name": "Bad", "slug": "bad-residency", "data_residency": "mars"}'
expect 400 "an unknown residency"

# --- Either instance serves every tenant; each request answers from the tenant's region.
for inst in "$A" "$B"; do
  on "$inst" GET "/api/v1/tenants/$EU1"
  expect 200 "GET the EU tenant on $inst"
  [ "$(jqb .data_residency)" = eu ] || fail "EU tenant document: $BODY"
done
on "$B" POST "/api/v1/tenants/$EU1/users" '{"email": "dev@euro.one", "role": "developer", "send_invitation": false}'
expect 201 "add a user to the EU tenant on B"
[ "$(eu_sql -c "SELECT count(*) FROM tenancy.users WHERE email = 'dev@euro.one'")" = 1 ] \
  && [ "$(us_sql -c "SELECT count(*) FROM tenancy.users WHERE email = 'dev@euro.one'")" = 0 ] \
  && pass "the user row is only in the EU cluster" || fail "user row placement"
on "$A" GET "/api/v1/tenants/$EU1/users?include_roles=true"
expect 200 "list the EU tenant's users on A"
[ "$(jqb '.items | length')" = 2 ] && pass "two users (owner + developer)" || fail "users: $BODY"
on "$A" PATCH "/api/v1/tenants/$EU1" '{"display_name": "Euro One GmbH"}'
expect 200 "PATCH the EU tenant"
[ "$(eu_sql -c "SELECT display_name FROM tenancy.tenants WHERE id = '$EU1'")" = "Euro One GmbH" ] && pass "PATCH written in the EU cluster" \
  || fail "PATCH not in the EU cluster"
on "$B" PATCH "/api/v1/tenants/$EU1" '{"data_residency": "us", "display_name": "X"}'
expect 409 "PATCH data_residency across regions with other keys (the move is a PATCH of its own)"
# Alone it is the live move (residency_move_http.sh); these clusters lack wal_level = logical, so it is refused.
on "$B" PATCH "/api/v1/tenants/$EU1" '{"data_residency": "us"}'
expect 503 "PATCH data_residency across regions without wal_level = logical"
[ "$(jqb .error.sqlstate)" = 55000 ] && [ "$(eu_sql -c "SELECT count(*) FROM tenancy.tenant_moves")" = 0 ] \
  && pass "the refused move changed nothing" || fail "refused move: $BODY"
on "$B" PATCH "/api/v1/tenants/$EU1" '{"data_residency": "eu"}'
expect 200 "PATCH data_residency to the same region"
on "$A" GET "/api/v1/tenants/$EU1/export"
expect 200 "export the EU tenant"
[ "$(jqb .manifest.source_region)" = eu ] && pass "export made by the EU cluster" || fail "export: ${BODY:0:200}"
on "$B" POST "/api/v1/tenants/$US1/keys/rotate" '{}'
expect 200 "rotate the US tenant's key"
on "$A" GET "/api/v1/tenants/$US1/sla"
expect 200 "SLA of the US tenant"
on "$A" GET "/api/v1/tenants/00000000-0000-4000-8000-000000000001"
expect 404 "unknown tenant"

# --- Tokens: stored in the tenant's region, valid on every instance, refused on other tenants (403, not 401).
on "$A" POST "/api/v1/tenants/$EU1/tokens" '{"role": "owner", "name": "eu owner"}'
expect 201 "issue a token for the EU tenant"
EU_TOKEN=$(jqb .token); EU_TOKEN_ID=$(jqb .id)
on "$B" POST "/api/v1/tenants/$US1/tokens" '{"role": "owner"}'
expect 201 "issue a token for the US tenant"
US_TOKEN=$(jqb .token)
[ "$(eu_sql -c "SELECT count(*) FROM tenancy.tenant_tokens WHERE id = '$EU_TOKEN_ID'")" = 1 ] \
  && [ "$(us_sql -c "SELECT count(*) FROM tenancy.tenant_tokens WHERE id = '$EU_TOKEN_ID'")" = 0 ] \
  && pass "the EU token is stored only in the EU cluster" || fail "token placement"
for inst in "$A" "$B"; do
  on "$inst" GET "/api/v1/tenants/$EU1/usage" "" "$EU_TOKEN"
  expect 200 "EU token on its tenant's usage ($inst)"
  [ "$(jqb .tenant_id)" = "$EU1" ] || fail "usage document: $BODY"
  on "$inst" GET "/api/v1/tenants/$US1/usage" "" "$US_TOKEN"
  expect 200 "US token on its tenant's usage ($inst)"
  on "$inst" GET "/api/v1/tenants/$US1" "" "$EU_TOKEN"
  expect 403 "EU tenant's token on the US tenant ($inst)"
  on "$inst" GET "/api/v1/tenants/$EU1/users" "" "$US_TOKEN"
  expect 403 "US tenant's token on the EU tenant ($inst)"
  on "$inst" GET "/api/v1/tenants/$EU2" "" "$EU_TOKEN"
  expect 403 "EU tenant's token on another EU tenant ($inst)"
  on "$inst" GET /api/v1/admin/tenants "" "$EU_TOKEN"
  expect 403 "a tenant token on the admin list ($inst)"
done
on "$A" GET "/api/v1/tenants/$EU1" "" "tnt_not-a-real-token"
expect 401 "an unknown tenant token"
on "$B" GET "/api/v1/tenants/00000000-0000-4000-8000-000000000001/users" "" "$EU_TOKEN"
expect 403 "EU tenant's token on a tenant no region knows (looked up in every region)"
on "$B" GET "/api/v1/tenants/00000000-0000-4000-8000-000000000001" "" "tnt_not-a-real-token"
expect 401 "an unknown tenant token on a tenant no region knows"
on "$A" GET "/api/v1/tenants/$EU1/usage/trends?metrics=api_calls" "" "$EU_TOKEN"
expect 200 "EU trends with the EU token"
calls=$(eu_sql -c "SELECT (tenancy.usage('$EU1') -> 'current_usage' ->> 'api_calls_this_month')")
[ "${calls:-0}" -ge 3 ] && [ "$(us_sql -c "SELECT count(*) FROM tenancy.tenants WHERE id = '$EU1'")" = 0 ] \
  && pass "the EU tenant's api_calls are metered in the EU cluster ($calls)" || fail "EU metering: $calls"
on "$B" DELETE "/api/v1/tenants/$EU1/tokens/$EU_TOKEN_ID"
expect 204 "revoke the EU token on B"
on "$A" GET "/api/v1/tenants/$EU1" "" "$EU_TOKEN"
expect 401 "the revoked token on A"

# --- The admin list covers every region, and its cursor pages through them in id order without repeats.
on "$A" GET "/api/v1/admin/tenants?limit=1000"
expect 200 "admin list"
all=$(jqb '[.items[].id] | sort | join(",")')
[ "$all" = "$(printf '%s\n' "$EU1" "$EU2" "$US1" | sort | paste -sd,)" ] && pass "admin list has every region's tenants" || fail "list: $all"
seen=(); cursor=""
for _ in 1 2 3 4 5; do
  on "$B" GET "/api/v1/admin/tenants?limit=1${cursor:+&cursor=$cursor}"
  [ "$STATUS" = 200 ] || { fail "page: $STATUS $BODY"; break; }
  seen+=($(jqb '.items[].id'))
  cursor=$(jqb '.next_cursor // empty')
  [ -z "$cursor" ] && break
done
[ "$(printf '%s\n' "${seen[@]}" | paste -sd,)" = "$(printf '%s\n' "$EU1" "$EU2" "$US1" | sort | paste -sd,)" ] \
  && pass "cursor pagination over regions, in id order" || fail "pages: ${seen[*]}"
on "$A" GET "/api/v1/admin/tenants?plan=enterprise"
[ "$(jqb '[.items[].id] | join(",")')" = "$US1" ] && pass "filters apply in every region" || fail "filter: $BODY"

# --- The same slug created at once in two regions through two instances: exactly one wins, one row in total.
race_ok=0
for i in 1 2 3 4 5; do
  curl -sS -o /dev/null -w '%{http_code}\n' -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" \
    --data-binary "{\"organization_name\": \"Race\", \"slug\": \"race-$i\", \"data_residency\": \"us\"}" "$A/api/v1/admin/tenants" >"$TENANCY_TMP/race-a" &
  pa=$!
  curl -sS -o /dev/null -w '%{http_code}\n' -X POST -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" \
    --data-binary "{\"organization_name\": \"Race\", \"slug\": \"race-$i\", \"data_residency\": \"eu\"}" "$B/api/v1/admin/tenants" >"$TENANCY_TMP/race-b"
  wait "$pa"
  codes=$(sort "$TENANCY_TMP/race-a" "$TENANCY_TMP/race-b" | paste -sd,)
  rows=$(( $(us_sql -c "SELECT count(*) FROM tenancy.tenants WHERE slug = 'race-$i'") + $(eu_sql -c "SELECT count(*) FROM tenancy.tenants WHERE slug = 'race-$i'") ))
  dir=$(us_sql -c "SELECT count(*) FROM tenancy.tenant_directory WHERE slug = 'race-$i' AND state = 'active'")
  if [ "$codes" = "201,409" ] && [ "$rows" = 1 ] && [ "$dir" = 1 ]; then race_ok=$((race_ok + 1)); else echo "race $i: codes $codes rows $rows directory $dir"; fi
done
[ "$race_ok" = 5 ] && pass "concurrent creations of one slug in two regions: one 201, one 409, one tenant (5 rounds)" \
  || fail "slug race: $race_ok of 5 rounds clean"

# --- A crash between the two creation steps heals: a committed creation is activated, an aborted one forgotten.
# crash_creation NAME SLUG COMMIT|ROLLBACK: creates an EU tenant in a transaction ended as told, then writes the
# pending directory entry a crash between the two creation steps leaves; sets CRASH_ID and CRASH_XID.
crash_creation() {
  local out
  out=$(eu_sql <<SQL | tail -1
BEGIN;
SELECT id || ' ' || pg_current_xact_id() FROM tenancy.create_tenant('$1', '$2', data_residency => 'eu');
$3;
SQL
)
  read -r CRASH_ID CRASH_XID <<<"$out"
  us_sql -c "INSERT INTO tenancy.tenant_directory (tenant_id, slug, region, region_xid) VALUES ('$CRASH_ID', '$2', 'eu', '$CRASH_XID')" >/dev/null
}
crash_creation 'Crash One' crash-one COMMIT
C1=$CRASH_ID
on "$B" GET "/api/v1/tenants/$C1"
expect 200 "a pending entry whose creation committed serves the tenant"
[ "$(us_sql -c "SELECT state FROM tenancy.tenant_directory WHERE tenant_id = '$C1'")" = active ] && pass "the entry was activated" \
  || fail "entry not activated"
crash_creation 'Crash Two' crash-two ROLLBACK
C2=$CRASH_ID C2_XID=$CRASH_XID
on "$A" GET "/api/v1/tenants/$C2"
expect 404 "a pending entry whose creation rolled back is no tenant"
[ "$(us_sql -c "SELECT count(*) FROM tenancy.tenant_directory WHERE tenant_id = '$C2'")" = 0 ] && pass "the entry was forgotten" \
  || fail "aborted entry kept"
us_sql -c "INSERT INTO tenancy.tenant_directory (tenant_id, slug, region, region_xid) VALUES (gen_random_uuid(), 'crash-three', 'eu', '$C2_XID')" >/dev/null
on "$A" POST /api/v1/admin/tenants '{"organization_name": "Crash Three", "slug": "crash-three", "data_residency": "us"}'
expect 201 "a slug held by an aborted creation is free again (retry-safe)"

# --- A directory entry naming a region this deployment has no cluster for: 503, not a guess at another cluster.
NOWHERE=00000000-0000-4000-8000-0000000000aa
us_sql -c "INSERT INTO tenancy.tenant_directory (tenant_id, slug, region, state) VALUES ('$NOWHERE', 'nowhere', 'uk', 'active')" >/dev/null
on "$A" GET "/api/v1/tenants/$NOWHERE"
expect 503 "a tenant the directory places in a region without a cluster"
[ "$(jqb .error.code)" = region_unavailable ] && pass "named region_unavailable" || fail "no-cluster region: $BODY"

# --- A tenant created in SQL, not through tenancyd, is registered in the directory at its first request; not when
# its slug is another tenant's in the directory, nor when it exists in two clusters.
SQLT=$(eu_sql -c "SELECT id FROM tenancy.create_tenant('Sql Co', 'sql-co', data_residency => 'eu')")
expect_eq "a tenant created in SQL has no directory entry yet" 0 \
  "$(us_sql -c "SELECT count(*) FROM tenancy.tenant_directory WHERE tenant_id = '$SQLT'")"
on "$A" GET "/api/v1/tenants/$SQLT"
expect 200 "a tenant created in SQL is served at its first request"
[ "$(jqb .data_residency)" = eu ] && pass "from its region" || fail "SQL-created tenant: $BODY"
expect_eq "its directory entry: region, state, slug" "eu active sql-co" \
  "$(us_sql -c "SELECT region || ' ' || state || ' ' || slug FROM tenancy.tenant_directory WHERE tenant_id = '$SQLT'")"
on "$B" GET "/api/v1/tenants/$SQLT/usage"
expect 200 "the other instance finds it in the directory"
DUP=$(us_sql -c "SELECT id FROM tenancy.create_tenant('Dup Co', 'sql-co', data_residency => 'us')")
on "$B" GET "/api/v1/tenants/$DUP"
expect 404 "a tenant created in SQL with a slug the directory gives to another tenant"
grep -q "not registered: its slug is another tenant's" "$TENANCY_TMP/tenancyd.log" && pass "the refusal is logged" \
  || fail "no log line for the slug conflict"
TWIN=00000000-0000-4000-8000-0000000000bb
for sql in eu_sql us_sql; do
  $sql -c "SET tenancy.region = ''; INSERT INTO tenancy.tenants (id, organization_name, slug) VALUES ('$TWIN', 'Twin', 'twin')" >/dev/null
done
on "$A" GET "/api/v1/tenants/$TWIN"
expect 404 "a tenant in two clusters is not registered"
grep -q "tenant found in two regions' clusters" "$TENANCY_TMP/tenancyd.log" && pass "the twin is logged" \
  || fail "no log line for the tenant in two clusters"
expect_eq "no directory entry for it" 0 "$(us_sql -c "SELECT count(*) FROM tenancy.tenant_directory WHERE tenant_id = '$TWIN'")"

# --- A region down: its tenants answer 503, the others keep working, readiness stays up.
LATE=$(eu_sql -c "SELECT id FROM tenancy.create_tenant('Late Co', 'late-co', data_residency => 'eu')")
as_pg pg_ctl -D "$TENANCY_TMP/eu/data" -m fast -w stop >/dev/null
on "$A" GET "/api/v1/tenants/$LATE"
expect 404 "a tenant created in SQL in a region that is down is not found (skipped, not a 500)"
expect_eq "and not registered" 0 "$(us_sql -c "SELECT count(*) FROM tenancy.tenant_directory WHERE tenant_id = '$LATE'")"
on "$A" GET "/api/v1/tenants/$EU1"
expect 503 "EU tenant while the EU cluster is down"
on "$A" GET "/api/v1/tenants/$US1"
expect 200 "US tenant while the EU cluster is down"
on "$B" GET /readyz "" -
expect 200 "readyz with one region down"
[ "$(jqb .regions.eu)" = unreachable ] && pass "readyz names the unreachable region" || fail "readyz: $BODY"
on "$A" GET /api/v1/admin/tenants
expect 503 "the admin list cannot be complete without the EU cluster"

finish
