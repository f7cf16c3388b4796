#!/usr/bin/env bash
# test/integration/audit_outside.sh
# Audit events that outlive the caller's transaction, and the outside anchor, against a live server with real
# login roles over TCP:
# - a read across tenants, an export and a consume_or_raise refusal, each rolled back, are in the log afterwards;
# - a backend killed (SIGKILL, so the server restarts) right after begin_cross_tenant returned: its event survives;
# - pgbench: ordinary in-transaction events and queued ones appended concurrently keep the chain valid, with exactly
#   one event per cross-tenant read and per refusal (minus the counted drops);
# - a stalled writer (the chain head locked): a flood of refusals fills their share of the small queue, the drops
#   are counted (WARNING, audit_events_dropped) and every refusal is either written or counted; a read across
#   tenants still finds room in the queue, fails after tenancy.audit_write_timeout and reads nothing (the
#   queue-full error of reads, 53400, is in the regress test audit_outside);
# - the writer writes anchors to the server log; cutting the tail and rewinding the head as superuser passes
#   verify_audit_log() but not verify_audit_log(anchor).
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

start_cluster auditq "tenancy.audit_queue_size = 64" "tenancy.audit_anchor_interval = 1" \
  "tenancy.quota_audit_interval = 0"
LOG="$CLUSTER_DIR.log"
cluster_psql -d postgres -c "CREATE DATABASE app"
cluster_psql -d app <<'SQL'
CREATE EXTENSION tenancy;
CREATE ROLE auditq_admin LOGIN IN ROLE tenancy_admin;
CREATE ROLE auditq_app LOGIN IN ROLE tenancy_app;
SELECT count(*) FROM (SELECT tenancy.create_tenant('Outside ' || i, 'outside-' || i, 'enterprise')
                        FROM generate_series(1, 3) i) s;
CREATE TABLE items (id serial PRIMARY KEY, tenant_id uuid NOT NULL, v text);
SELECT tenancy.enable_isolation('items');
GRANT SELECT ON items TO auditq_admin;
INSERT INTO items (tenant_id, v) SELECT id, slug FROM tenancy.tenants;
SQL
T1=$(cluster_psql -d app -At -c "SELECT id FROM tenancy.tenants WHERE slug = 'outside-1'")
as_login() { local role=$1; shift; as_pg psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$CLUSTER_PORT" -U "$role" -d app "$@"; }
count() { cluster_psql -d app -At -c "SELECT count(*) FROM tenancy.audit_log WHERE $1"; }
# wait_for CONDITION [seconds]: polls a SQL boolean, fails after the bound
wait_for() {
  local tries=$(( ${2:-20} * 10 ))
  for _ in $(seq 1 "$tries"); do
    [ "$(cluster_psql -d app -At -c "SELECT ($1)")" = t ] && return 0
    sleep 0.1
  done
  echo "FAIL: timed out waiting for: $1"; return 1
}
fail() { echo "FAIL: $*"; exit 1; }

echo "== rolled back: a read across tenants, an export, a refusal"
as_login auditq_admin <<SQL
BEGIN;
SELECT tenancy.begin_cross_tenant('integration rolled back read');
SELECT count(*) FROM items;
ROLLBACK;
BEGIN;
SELECT tenancy.export_tenant('$T1') IS NOT NULL;
ROLLBACK;
SQL
# no wait needed: both calls returned only once the writer had committed their event
[ "$(count "action = 'cross_tenant_read' AND after ->> 'reason' = 'integration rolled back read' AND current_user_name = 'auditq_admin'")" = 1 ] \
  || fail "the rolled-back read across tenants left no event"
[ "$(count "action = 'tenant_exported' AND tenant_id = '$T1' AND current_user_name = 'auditq_admin'")" = 1 ] \
  || fail "the rolled-back export left no event"
as_login auditq_app -v ON_ERROR_STOP=0 <<SQL 2>&1 | grep -q 'quota exceeded' || fail "consume_or_raise did not refuse"
BEGIN;
SELECT tenancy.set_tenant('$T1');
SELECT tenancy.consume_or_raise('$T1', 'users', 1000000);
ROLLBACK;
SQL
wait_for "EXISTS (SELECT FROM tenancy.audit_log WHERE action = 'quota_exceeded' AND current_user_name = 'auditq_app'
                  AND after ->> 'requested' = '1000000')"

echo "== a backend killed right after begin_cross_tenant returned"
as_login auditq_admin -At > "$TENANCY_TMP/killed.out" 2>&1 <<'SQL' &
BEGIN;
SELECT tenancy.begin_cross_tenant('read then killed');
SELECT 'returned';
SELECT pg_sleep(60);
SQL
killed_client=$!
for _ in $(seq 1 100); do grep -q returned "$TENANCY_TMP/killed.out" && break; sleep 0.1; done
grep -q returned "$TENANCY_TMP/killed.out" || fail "begin_cross_tenant did not return"
pid=
for _ in $(seq 1 100); do
  pid=$(cluster_psql -d app -At -c "SELECT pid FROM pg_stat_activity WHERE usename = 'auditq_admin' AND query LIKE '%pg_sleep%'")
  [ -n "$pid" ] && break; sleep 0.1
done
[ -n "$pid" ] || fail "no backend to kill"
kill -9 "$pid"
wait "$killed_client" || true
for _ in $(seq 1 100); do cluster_psql -d app -At -c "SELECT 1" >/dev/null 2>&1 && break; sleep 0.2; done
[ "$(count "action = 'cross_tenant_read' AND after ->> 'reason' = 'read then killed'")" = 1 ] \
  || fail "the event of a read whose backend was killed is missing"
grep -q "terminated by signal 9" "$LOG" || fail "the server did not see the kill"

echo "== pgbench: ordinary and queued events appended concurrently"
start_id=$(cluster_psql -d app -At -c "SELECT coalesce(max(id), 0) FROM tenancy.audit_log")
cat > "$TENANCY_TMP/ordinary.sql" <<'SQL'
\set a random(1, 3)
BEGIN;
SELECT tenancy._audit('bench_event', NULL, NULL, '{"k": 1}');
SELECT tenancy.update_tenant((SELECT id FROM tenancy.tenants WHERE slug = 'outside-' || :a),
                             jsonb_build_object('configuration', jsonb_build_object('n', random())));
COMMIT;
SQL
cat > "$TENANCY_TMP/xread.sql" <<'SQL'
BEGIN;
SELECT tenancy.begin_cross_tenant('bench read');
SELECT count(*) FROM items;
ROLLBACK;
SQL
cat > "$TENANCY_TMP/refuse.sql" <<'SQL'
DO $$ BEGIN
  PERFORM tenancy.consume_or_raise((SELECT id FROM tenancy.tenants WHERE slug = 'outside-2'), 'users', 1000000);
EXCEPTION WHEN SQLSTATE 'TN003' THEN NULL;
END $$;
SQL
chmod 644 "$TENANCY_TMP"/*.sql
as_pg pgbench -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres -n -c 4 -j 2 -t 150 \
  -f "$TENANCY_TMP/ordinary.sql" -f "$TENANCY_TMP/xread.sql" -f "$TENANCY_TMP/refuse.sql" app \
  > "$TENANCY_TMP/pgbench.out" 2>&1 || { cat "$TENANCY_TMP/pgbench.out"; fail "pgbench failed"; }
script_count() { awk -v n="SQL script $1:" 'index($0, n) {s=1} s && / transactions \(/ {print $2; exit}' "$TENANCY_TMP/pgbench.out"; }
ordinary=$(script_count 1); xreads=$(script_count 2); refusals=$(script_count 3)
echo "transactions: ordinary $ordinary, reads across tenants $xreads, refusals $refusals"
wait_for "(SELECT count(*) FROM tenancy.audit_log WHERE id > $start_id AND action = 'quota_exceeded')
          + coalesce((SELECT sum((after ->> 'dropped')::bigint) FROM tenancy.audit_log
                       WHERE id > $start_id AND action = 'audit_events_dropped'), 0) = $refusals"
[ "$(count "id > $start_id AND action = 'cross_tenant_read'")" = "$xreads" ] || fail "not one event per read across tenants"
[ "$(count "id > $start_id AND action = 'bench_event'")" = "$ordinary" ] || fail "ordinary events lost"
[ "$(count "id > $start_id AND action = 'tenant_updated'")" = "$ordinary" ] || fail "ordinary events lost"
problems=$(cluster_psql -d app -At -c "SELECT count(*) FROM tenancy.verify_audit_log()")
[ "$problems" = 0 ] || { cluster_psql -d app -c "SELECT * FROM tenancy.verify_audit_log() LIMIT 10"; fail "chain broken"; }
# the writer's events are interleaved with the ordinary ones in one chain (not appended in one block at the end)
interleaved=$(cluster_psql -d app -At -c "
  SELECT count(*) FROM (SELECT action, lag(action) OVER (ORDER BY id) AS prev FROM tenancy.audit_log
                         WHERE id > $start_id) s
   WHERE action = 'cross_tenant_read' AND prev IN ('bench_event', 'tenant_updated')")
[ "$interleaved" -gt 0 ] || fail "no queued event between ordinary ones"

echo "== a stalled writer: dropped refusals, a read keeps its room in the queue and times out"
start_id=$(cluster_psql -d app -At -c "SELECT coalesce(max(id), 0) FROM tenancy.audit_log")
cluster_psql -d app -c "BEGIN; LOCK tenancy.audit_chain_head IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(8); COMMIT;" \
  > /dev/null &
locker=$!
wait_for "EXISTS (SELECT FROM pg_locks WHERE relation = 'tenancy.audit_chain_head'::regclass AND mode = 'AccessExclusiveLock' AND granted)"
flood=400
out=$(cluster_psql -d app -c "
  DO \$\$ BEGIN FOR i IN 1 .. $flood LOOP
    BEGIN PERFORM tenancy.consume_or_raise((SELECT id FROM tenancy.tenants WHERE slug = 'outside-3'), 'users', 1000000);
    EXCEPTION WHEN SQLSTATE 'TN003' THEN NULL; END;
  END LOOP; END \$\$" 2>&1)
echo "$out" | grep -q 'dropped: the audit queue is full' || { echo "$out"; fail "no WARNING for dropped refusals"; }
# the flood filled the share of the queue refusals may use; a read still finds room (no 53400), then times out
# waiting for the stalled writer (55000) and reads nothing
cluster_psql -d app -c "ALTER ROLE auditq_admin SET tenancy.audit_write_timeout = 500"
out=$(as_login auditq_admin -v ON_ERROR_STOP=0 -v VERBOSITY=verbose -c "SELECT tenancy.begin_cross_tenant('stalled writer')" \
        -c "SELECT count(*) FROM items" 2>&1 || true)
cluster_psql -d app -c "ALTER ROLE auditq_admin RESET tenancy.audit_write_timeout"
echo "$out" | grep -q 'audit writer did not write event "cross_tenant_read" in time' || { echo "$out"; fail "no timeout"; }
echo "$out" | grep -q 'TN004' || { echo "$out"; fail "rows were read although the event was not written"; }
wait "$locker"
wait_for "(SELECT count(*) FROM tenancy.audit_log WHERE id > $start_id AND action = 'quota_exceeded')
          + coalesce((SELECT sum((after ->> 'dropped')::bigint) FROM tenancy.audit_log
                       WHERE id > $start_id AND action = 'audit_events_dropped'), 0) = $flood" 30
written=$(count "id > $start_id AND action = 'quota_exceeded'")
dropped=$(cluster_psql -d app -At -c "SELECT sum((after ->> 'dropped')::bigint) FROM tenancy.audit_log
                                       WHERE id > $start_id AND action = 'audit_events_dropped'")
echo "refusals: $flood, written: $written, dropped and counted: $dropped"
[ "$dropped" -gt 0 ] && [ "$written" -gt 0 ] || fail "expected both written and dropped refusals"
grep -q 'dropped: the audit queue is full' "$LOG" || fail "no WARNING in the server log"
[ "$(cluster_psql -d app -At -c "SELECT count(*) FROM tenancy.verify_audit_log()")" = 0 ] || fail "chain broken"

echo "== the outside anchor"
as_login auditq_admin -c "SELECT tenancy.begin_cross_tenant('last read before the cut')" > /dev/null
head=$(cluster_psql -d app -At -c "SELECT last_id FROM tenancy.audit_chain_head")
# the writer anchors within tenancy.audit_anchor_interval (1 s here) or when it goes idle
for _ in $(seq 1 100); do grep -q "tenancy audit anchor: db=app seq=$head " "$LOG" && break; sleep 0.1; done
line=$(grep -o "tenancy audit anchor: db=app seq=$head hash=[0-9a-f]*" "$LOG" | tail -1)
[ -n "$line" ] || { grep 'tenancy audit anchor' "$LOG" | tail -3; fail "no anchor of the head $head in the server log"; }
hash=${line##*hash=}
[ "$(cluster_psql -d app -At -c "SELECT encode(last_hash, 'hex') FROM tenancy.audit_chain_head")" = "$hash" ] \
  || fail "the anchor's hash is not the head's"
[ "$(cluster_psql -d app -At -c "SELECT count(*) FROM tenancy.verify_audit_log($head, '\\x$hash')")" = 0 ] \
  || fail "an intact chain fails its anchor"
# the superuser cuts the last three events and rewinds the head to the event before them
cluster_psql -d app <<SQL
BEGIN;
ALTER TABLE tenancy.audit_log DISABLE TRIGGER audit_log_append_only;
ALTER TABLE tenancy.audit_chain_head DISABLE TRIGGER audit_chain_head_guard;
DELETE FROM tenancy.audit_log WHERE id > $head - 3;
UPDATE tenancy.audit_chain_head h SET last_id = l.id, last_hash = l.hash
  FROM (SELECT id, hash FROM tenancy.audit_log ORDER BY id DESC LIMIT 1) l;
ALTER TABLE tenancy.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE tenancy.audit_chain_head ENABLE ALWAYS TRIGGER audit_chain_head_guard;
COMMIT;
SQL
[ "$(cluster_psql -d app -At -c "SELECT count(*) FROM tenancy.verify_audit_log()")" = 0 ] \
  || fail "expected the cut to pass the chain-only check (it has no outside reference)"
cut=$(cluster_psql -d app -At -c "SELECT problem FROM tenancy.verify_audit_log($head, '\\x$hash')")
echo "with the anchor: $cut"
echo "$cut" | grep -q 'the anchored event is missing' || fail "verify_audit_log(anchor) did not report the cut"
echo "audit_outside: ok"
