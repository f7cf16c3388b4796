#!/usr/bin/env bash
# test/integration/residency_move_adopt.sh
# A move whose orchestrator stopped mid-way is taken over by tenancyd (tenancy.move_orphans / move_adopt, the
# orchestrator lock): rolled back when the target had not switched (frozen at the time: the tenant works again),
# finished when it had (directory, tokens, source erased); never while its orchestrator's session lives; and a move
# tenancyd itself ran survives a kill -9 of that tenancyd.
source "$TENANCY_ROOT/test/integration/daemon_lib.bash"
source "$TENANCY_ROOT/test/integration/residency_move_lib.bash"

DAEMON_PID=
cleanup() { [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null; stop_all_clusters; }
trap cleanup EXIT

start_regions || exit 1
grant_daemon_role || exit 1
DAEMON_PORT=$(free_port)
CONF="$TENANCY_TMP/tenancyd.yaml"
{
  echo "listen: {host: 127.0.0.1, port: $DAEMON_PORT, threads: 8}"
  # health_check_interval_s: how often orphaned moves are looked for; the drain is acquire + statement timeout.
  echo "database: {pool_size: 4, acquire_timeout_ms: 1000, statement_timeout_ms: 2000, connect_timeout_s: 2, health_check_interval_s: 1}"
  echo "auth: {admin_token_sha256: \"$ADMIN_HASH\"}"
  echo "log: {level: info}"
  echo "regions: {us: \"$(daemon_conninfo "$US_PORT")\", eu: \"$(daemon_conninfo "$EU_PORT")\"}"
} >"$CONF"
URL="http://127.0.0.1:$DAEMON_PORT"
start_daemon() {
  "$TENANCY_DAEMON" --config "$CONF" >>"$TENANCY_TMP/tenancyd.log" 2>&1 &
  DAEMON_PID=$!
  for _ in $(seq 1 100); do curl -fsS "$URL/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}
start_daemon

create() { # create SLUG -> id
  api POST /api/v1/admin/tenants "{\"organization_name\": \"$1\", \"slug\": \"$1\", \"plan\": \"enterprise\", \"data_residency\": \"eu\", \"admin_email\": \"owner@$1.io\"}"
  [ "$STATUS" = 201 ] || { fail "create $1: $STATUS $BODY"; exit 1; }
  jqb .id
}
ALPHA=$(create alpha); BRAVO=$(create bravo); CHARLIE=$(create charlie)
eu_psql >/dev/null <<SQL || exit 1
UPDATE tenancy.tenants SET status = 'active';
INSERT INTO items (tenant_id, n, payload) SELECT t, g, repeat('x', 40)
  FROM unnest(ARRAY['$ALPHA', '$BRAVO', '$CHARLIE']::uuid[]) t, generate_series(1, 2000) g;
SQL
token_of() { api POST "/api/v1/tenants/$1/tokens" '{"role": "owner"}'; jqb .token; }
ALPHA_TOKEN=$(token_of "$ALPHA"); BRAVO_TOKEN=$(token_of "$BRAVO")
region_of() { us_psql -At -c "SELECT region FROM tenancy.tenant_directory WHERE tenant_id = '$1'"; }
wait_move() { # wait_move TENANT: polls GET .../move until the move ended (or 60 s)
  for _ in $(seq 1 300); do
    api GET "/api/v1/tenants/$1/move"
    case "$(jqb .phase)" in done | rolled_back | failed) [ "$(jqb .target_cleaned)" = true ] && return 0 ;; esac
    sleep 0.2
  done
  return 1
}
leftovers() { # leftovers TENANT: move rows, slots, publications on the source; move rows, subscriptions on the target
  echo "$(eu_psql -At -c "SELECT concat_ws(' ', (SELECT count(*) FROM tenancy.tenant_moves),
      (SELECT count(*) FROM pg_replication_slots), (SELECT count(*) FROM pg_publication))")" \
       "$(us_psql -At -c "SELECT concat_ws(' ', (SELECT count(*) FROM tenancy.tenant_moves),
      (SELECT count(*) FROM pg_subscription))")"
}

# --- alpha: its orchestrator (a psql session) froze the tenant, then went away before the switch.
open_session src "$EU_PORT"; open_session dst "$US_PORT"
MOVE_STOP_AFTER=freeze move_steps "$ALPHA" "" "" >/dev/null || fail "alpha: the move up to the freeze"
expect_eq "alpha is frozen in the EU cluster" t \
  "$(eu_psql -At -c "SELECT frozen FROM tenancy.tenant_moves WHERE tenant_id = '$ALPHA'")"
expect_eq "tenancy.move_orphans() is empty while the orchestrator's session lives" 0 \
  "$(eu_psql -At -c "SELECT count(*) FROM tenancy.move_orphans()")"
sleep 3 # three looks for orphans
api GET "/api/v1/tenants/$ALPHA/move"
[ "$(jqb .orchestrated_elsewhere) $(jqb .phase)" = "true freezing" ] \
  && pass "tenancyd leaves a move alone while its orchestrator lives" || fail "alpha while its session lives: $BODY"
api GET "/api/v1/tenants/$ALPHA/usage" "" "$ALPHA_TOKEN"
expect 503 "alpha's token while it is frozen"
close_session src; close_session dst
wait_move "$ALPHA" || fail "alpha's orphaned move did not end: $BODY"
[ "$(jqb .adopted) $(jqb .phase)" = "true rolled_back" ] && pass "tenancyd took alpha's move over and rolled it back" \
  || fail "alpha's move: $BODY"
api GET "/api/v1/tenants/$ALPHA/usage" "" "$ALPHA_TOKEN"
expect 200 "alpha's token works again"
expect_eq "alpha's writes are allowed again in the EU cluster" 1 "$(eu_psql -At -c "
  INSERT INTO items (tenant_id, n) VALUES ('$ALPHA', -1) RETURNING 1")"
expect_eq "alpha's rows all in the EU cluster" 2001 "$(eu_psql -At -c "SELECT count(*) FROM items WHERE tenant_id = '$ALPHA'")"
expect_eq "nothing of alpha in the US cluster" "0 0" "$(us_psql -At -c "SELECT concat_ws(' ',
  (SELECT count(*) FROM tenancy.tenants WHERE id = '$ALPHA'), (SELECT count(*) FROM items WHERE tenant_id = '$ALPHA'))")"
expect_eq "the directory still names the EU region for alpha" eu "$(region_of "$ALPHA")"
expect_eq "no move rows, slots, publications or subscriptions left" "0 0 0 0 0" "$(leftovers)"

# --- bravo: its orchestrator switched the target, then went away before the directory, tokens and cleanup.
open_session src "$EU_PORT"; open_session dst "$US_PORT"
MOVE_STOP_AFTER=switch move_steps "$BRAVO" "" "" >/dev/null || fail "bravo: the move up to the switch"
close_session src; close_session dst
wait_move "$BRAVO" || fail "bravo's orphaned move did not end: $BODY"
[ "$(jqb .adopted) $(jqb .phase) $(jqb .tokens_moved)" = "true done 1" ] \
  && pass "tenancyd took bravo's move over and finished it (1 token moved)" || fail "bravo's move: $BODY"
expect_eq "the directory names the US region for bravo" us "$(region_of "$BRAVO")"
api GET "/api/v1/tenants/$BRAVO/usage" "" "$BRAVO_TOKEN"
expect 200 "bravo's token works in the US region"
expect_eq "bravo's rows all in the US cluster" 2000 "$(us_psql -At -c "SELECT count(*) FROM items WHERE tenant_id = '$BRAVO'")"
expect_eq "nothing of bravo left in the EU cluster" "0 0" "$(eu_psql -At -c "SELECT concat_ws(' ',
  (SELECT count(*) FROM tenancy.tenants WHERE id = '$BRAVO'), (SELECT count(*) FROM items WHERE tenant_id = '$BRAVO'))")"
expect_eq "no move rows, slots, publications or subscriptions left" "0 0 0 0 0" "$(leftovers)"

# --- charlie: tenancyd runs the move and gets SIGTERM while the slot creation waits for an open transaction: it
# exits at once (a move that is not in its freeze is left, not waited for), and its successor takes the move over.
open_session hold "$EU_PORT"
sq hold "BEGIN; SELECT pg_catalog.pg_current_xact_id()" >/dev/null
api POST "/api/v1/tenants/$CHARLIE/move" '{"data_residency": "us"}'
expect 202 "charlie's move through tenancyd"
sleep 1
t0=$(now_ms)
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID"; code=$?
expect_eq "SIGTERM with a move running: exit status" 0 "$code"
[ $(( $(now_ms) - t0 )) -lt 5000 ] && pass "it stopped in $(( $(now_ms) - t0 )) ms, leaving the move" \
  || fail "SIGTERM took $(( $(now_ms) - t0 )) ms"
grep -q "tenant moves left running to be taken over" "$TENANCY_TMP/tenancyd.log" && pass "it logged the move it left" \
  || fail "no log line for the move left running"
start_daemon
sleep 2
api GET "/api/v1/tenants/$CHARLIE/move"
[ "$(jqb .orchestrated_elsewhere) $(jqb .phase)" = "true prepare" ] \
  && pass "the stopped tenancyd's backend still waits for the slot: not adopted yet" || fail "charlie after stop: $BODY"
sq hold "COMMIT" >/dev/null; close_session hold
wait_move "$CHARLIE" || fail "charlie's orphaned move did not end: $BODY"
[ "$(jqb .adopted) $(jqb .phase)" = "true rolled_back" ] \
  && pass "the restarted tenancyd took charlie's move over and rolled it back" || fail "charlie's move: $BODY"
expect_eq "charlie's writes are allowed in the EU cluster" 1 "$(eu_psql -At -c "
  INSERT INTO items (tenant_id, n) VALUES ('$CHARLIE', -1) RETURNING 1")"
expect_eq "nothing of charlie in the US cluster" 0 \
  "$(us_psql -At -c "SELECT count(*) FROM tenancy.tenants WHERE id = '$CHARLIE'")"
expect_eq "no move rows, slots, publications or subscriptions left" "0 0 0 0 0" "$(leftovers)"
api POST "/api/v1/tenants/$CHARLIE/move" '{"data_residency": "us"}'
expect 202 "charlie's move again"
wait_move "$CHARLIE" || fail "charlie's second move did not end: $BODY"
[ "$(jqb .adopted) $(jqb .phase)" = "false done" ] && pass "charlie's second move is done" || fail "second move: $BODY"
expect_eq "charlie's rows all in the US cluster" 2001 "$(us_psql -At -c "SELECT count(*) FROM items WHERE tenant_id = '$CHARLIE'")"
# --- delta: tenancyd is killed (-9) right after it started a move, wherever the move is then. Restarted, the move
# ends one way or the other: the tenant lives in exactly one region with all its rows, nothing left behind.
DELTA=$(create delta)
eu_psql -c "UPDATE tenancy.tenants SET status = 'active' WHERE id = '$DELTA';
            INSERT INTO items (tenant_id, n) SELECT '$DELTA', g FROM generate_series(1, 2000) g" >/dev/null
api POST "/api/v1/tenants/$DELTA/move" '{"data_residency": "us"}'
expect 202 "delta's move through tenancyd"
sleep "0.$((RANDOM % 10))"
kill -9 "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null
start_daemon
wait_move "$DELTA" || fail "delta's move did not end after the restart: $BODY"
case "$(jqb .phase)" in
  done) want="us 0 2000" ;;
  rolled_back) want="eu 2000 0" ;;
  *) want="?" ;;
esac
echo "delta's move ended $(jqb .phase) (adopted: $(jqb .adopted))"
expect_eq "delta in exactly one region with all its rows (directory, EU rows, US rows)" "$want" \
  "$(region_of "$DELTA") $(eu_psql -At -c "SELECT count(*) FROM items WHERE tenant_id = '$DELTA'") $(us_psql -At -c "SELECT count(*) FROM items WHERE tenant_id = '$DELTA'")"
expect_eq "no move rows, slots, publications or subscriptions left" "0 0 0 0 0" "$(leftovers)"
grep -c "taking over a move whose orchestrator is gone" "$TENANCY_TMP/tenancyd.log" | xargs echo "take-overs logged:"
finish
