#!/usr/bin/env bash
# test/integration/move_lock_order.sh
# Starting a live move while an application transaction writes: the writer already holds its table's lock and then
# writes a row of the moving tenant (its foreign key locks the tenant's row). move_source_prepare installs guard
# triggers on that table; it must not deadlock with the writer (one cluster, wal_level = logical).
set -uo pipefail
source "$TENANCY_ROOT/test/integration/residency_move_lib.bash"

start_cluster eu "wal_level = logical" "max_replication_slots = 4" "max_wal_senders = 4" "tenancy.region = 'eu'" \
  || exit 1
EU_PORT=$CLUSTER_PORT
PGPORT_OVERRIDE=$EU_PORT cluster_psql -d postgres -c "CREATE DATABASE app" || exit 1
eu_psql >/dev/null <<'SQL' || exit 1
CREATE EXTENSION tenancy;
CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                     tenant_id uuid NOT NULL REFERENCES tenancy.tenants (id), n integer);
SELECT tenancy.enable_isolation('orders');
INSERT INTO tenancy.tenants (id, organization_name, slug, data_residency)
VALUES ('f0000000-0000-0000-0000-00000000000a', 'Mover', 'mover', 'eu'),
       ('f0000000-0000-0000-0000-00000000000b', 'Stayer', 'stayer', 'eu');
SQL
MOVER=f0000000-0000-0000-0000-00000000000a
STAYER=f0000000-0000-0000-0000-00000000000b

# blocked_pids: how many backends wait for a lock held by another
blocked() { eu_psql -At -c "SELECT count(*) FROM pg_stat_activity WHERE cardinality(pg_blocking_pids(pid)) > 0"; }

open_session writer "$EU_PORT"
sq writer "BEGIN" >/dev/null
sq writer "INSERT INTO orders (tenant_id, n) VALUES ('$STAYER', 1)" >/dev/null || fail "writer's first insert"
# The prepare waits for the writer's lock on orders to install the guard trigger.
eu_psql -At -c "SELECT tenancy.move_source_prepare('$MOVER', 'us') IS NOT NULL" >"$TENANCY_TMP/prepare.out" 2>&1 &
PREPARE=$!
# (The wait is in turns: each attempt of the DDL gives its locks back after 200 ms; tenancy._move_ddl.)
for _ in $(seq 1 100); do n=$(blocked); [ "$n" -ge 1 ] && break; sleep 0.05; done
expect_eq "prepare waits for the writer's table lock" 1 "$n"
# The writer's next row belongs to the moving tenant: its foreign key check must not wait for the prepare.
if out=$(sq writer "INSERT INTO orders (tenant_id, n) VALUES ('$MOVER', 2) RETURNING n" 2>&1); then
  expect_eq "writer's row of the moving tenant" 2 "$out"
else
  fail "writer's row of the moving tenant: $out"
fi
sq writer "COMMIT" >/dev/null || fail "writer's commit"
close_session writer
wait "$PREPARE"; status=$?
expect_eq "prepare completed" "0 t" "$status $(cat "$TENANCY_TMP/prepare.out")"
expect_eq "both rows committed, guard installed" "2 1" \
  "$(eu_psql -At -F' ' -c "SELECT (SELECT count(*) FROM orders),
                                  (SELECT count(*) FROM pg_trigger WHERE tgname = 'tenancy_move_guard'
                                      AND tgrelid = 'orders'::regclass)")"

# Ending the move while a writer holds tenancy.tenants (set_tenant reads it) and then writes orders: the guards are
# dropped table by table (orders before tenancy.tenants), each drop holding its table until commit; the finish must
# give orders back instead of deadlocking with the writer (before, one of the two failed with 40P01 after 1 s).
open_session writer "$EU_PORT"
sq writer "BEGIN" >/dev/null
sq writer "SELECT count(*) FROM tenancy.tenants" >/dev/null || fail "writer's read of tenancy.tenants"
eu_psql -At -c "SELECT 'finished' FROM tenancy.move_source_finish('$MOVER', 'rolled_back')" >"$TENANCY_TMP/finish.out" 2>&1 &
FINISH=$!
for _ in $(seq 1 100); do n=$(blocked); [ "$n" -ge 1 ] && break; sleep 0.05; done
expect_eq "finish waits for the writer's lock on tenancy.tenants" 1 "$n"
if out=$(sq writer "INSERT INTO orders (tenant_id, n) VALUES ('$STAYER', 3) RETURNING n" 2>&1); then
  expect_eq "writer's row while the guards are dropped" 3 "$out"
else
  fail "writer's row while the guards are dropped: $out"
fi
sq writer "COMMIT" >/dev/null || fail "writer's commit after the finish began"
close_session writer
wait "$FINISH"; status=$?
expect_eq "finish completed" "0 finished" "$status $(cat "$TENANCY_TMP/finish.out")"
expect_eq "rows committed, guards and move gone" "3 0 0" \
  "$(eu_psql -At -F' ' -c "SELECT (SELECT count(*) FROM orders), (SELECT count(*) FROM pg_trigger
                                  WHERE tgname = 'tenancy_move_guard'), (SELECT count(*) FROM tenancy.tenant_moves)")"

echo "summary: $FAILURES failure(s)"
[ "$FAILURES" = 0 ]
