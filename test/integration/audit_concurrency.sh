#!/usr/bin/env bash
# test/integration/audit_concurrency.sh
# pgbench drives 8 clients writing audit events at once (registry changes in multi-statement transactions, direct
# tenancy._audit calls, rollbacks): the chain never forks, verify_audit_log() stays empty, and exactly the events
# of committed transactions are in the log.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

start_cluster audit
cluster_psql -d postgres -c "CREATE DATABASE app"
cluster_psql -d app <<'SQL'
CREATE EXTENSION tenancy;
SELECT count(*) FROM (SELECT tenancy.create_tenant('Bench ' || i, 'bench-' || i, 'enterprise') FROM generate_series(1, 4) i) s;
SQL
start_events=$(cluster_psql -d app -At -c "SELECT count(*) FROM tenancy.audit_log")

# Each committed transaction of commit.sql writes exactly 3 events; rollback.sql writes 2 and rolls them back.
cat > "$TENANCY_TMP/commit.sql" <<'SQL'
\set a random(1, 4)
\set b random(1, 4)
BEGIN;
SELECT tenancy._audit('bench_event', (SELECT id FROM tenancy.tenants WHERE slug = 'bench-' || :b), NULL, '{"k": 1}');
SELECT tenancy.update_tenant((SELECT id FROM tenancy.tenants WHERE slug = 'bench-' || :a),
                             jsonb_build_object('configuration', jsonb_build_object('n', random())));
SELECT tenancy.update_tenant((SELECT id FROM tenancy.tenants WHERE slug = 'bench-' || :a),
                             jsonb_build_object('display_name', 'Bench ' || random()));
COMMIT;
SQL
cat > "$TENANCY_TMP/rollback.sql" <<'SQL'
\set a random(1, 4)
BEGIN;
SELECT tenancy.update_tenant((SELECT id FROM tenancy.tenants WHERE slug = 'bench-' || :a),
                             jsonb_build_object('configuration', jsonb_build_object('gone', random())));
SELECT tenancy._audit('rolled_back', NULL, NULL, NULL);
ROLLBACK;
SQL
chmod 644 "$TENANCY_TMP"/*.sql

# Each transaction writes an event, then locks a tenant row: had the event taken the chain lock at once, a writer
# holding that row and waiting for the chain lock would deadlock with it. Events are appended at commit, so no
# transaction may need a retry (pgbench retries deadlocks with --max-tries; the count must stay 0). A fixed number
# of transactions per client (-t), not a duration: with -T a COMMIT in flight at the deadline may commit without
# pgbench counting it, and the event count below would be off by that transaction's 3 events.
as_pg pgbench -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres -n -c 8 -j 2 -t 600 --max-tries=20 \
  -f "$TENANCY_TMP/commit.sql@3" -f "$TENANCY_TMP/rollback.sql@1" --failures-detailed app \
  > "$TENANCY_TMP/pgbench.out" 2>&1
cat "$TENANCY_TMP/pgbench.out"
committed=$(awk '/SQL script 1:/ {s=1} s && / transactions \(/ {print $2; exit}' "$TENANCY_TMP/pgbench.out")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$TENANCY_TMP/pgbench.out")
retried=$(sed -n 's/^number of transactions retried: \([0-9]*\).*/\1/p' "$TENANCY_TMP/pgbench.out")
[ -n "$committed" ] && [ "$committed" -gt 0 ] || { echo "no committed transactions"; exit 1; }

events=$(cluster_psql -d app -At -c "SELECT count(*) FROM tenancy.audit_log")
rolled=$(cluster_psql -d app -At -c "SELECT count(*) FROM tenancy.audit_log WHERE action = 'rolled_back'")
problems=$(cluster_psql -d app -At -c "SELECT count(*) FROM tenancy.verify_audit_log()")
echo "committed transactions: $committed, failed: ${failed:-0}, events: $start_events + $((events - start_events))," \
     "rolled back events in the log: $rolled, verify problems: $problems"
[ "${failed:-1}" = 0 ] && [ "${retried:-1}" = 0 ] || { echo "transactions failed or deadlocked"; exit 1; }
[ "$problems" = 0 ] || { cluster_psql -d app -c "SELECT * FROM tenancy.verify_audit_log() LIMIT 20"; exit 1; }
[ "$rolled" = 0 ] || { echo "events of rolled-back transactions are in the log"; exit 1; }
[ $((events - start_events)) = $((3 * committed)) ] || { echo "expected $((3 * committed)) new events"; exit 1; }
echo "audit concurrency ok"
