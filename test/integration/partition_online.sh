#!/usr/bin/env bash
# test/integration/partition_online.sh
# pgbench clients insert and update through an isolated table, as the app role with a tenant context, while
# partition_table, repartition (16 -> 32 -> 64 -> 16), isolate_tenant and unisolate_tenant run one after the other.
# Passes when no client sees an error (they only wait), no row is lost or duplicated and every update counted once.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

start_cluster online "deadlock_timeout = '100ms'"
cluster_psql -d postgres <<'SQL'
CREATE EXTENSION tenancy;
CREATE ROLE online_app LOGIN;
GRANT tenancy_app TO online_app;
INSERT INTO tenancy.tenants (id, organization_name, slug, status, plan)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'Online ' || g, 'online-' || g, 'active',
       'enterprise'
  FROM generate_series(1, 50) g;
CREATE TABLE ledger (tenant_id uuid NOT NULL, id bigint NOT NULL, qty bigint NOT NULL DEFAULT 0,
                     PRIMARY KEY (tenant_id, id));
CREATE SEQUENCE ledger_id_seq;
-- 50 tenants x 200 rows; ids 1..10000 are the rows the clients update
INSERT INTO ledger SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(1 + (g - 1) / 200), 12, '0'))::uuid, g, 0
  FROM generate_series(1, 10000) g;
SELECT setval('ledger_id_seq', 10000);
GRANT SELECT, INSERT, UPDATE ON ledger TO online_app;
GRANT USAGE ON SEQUENCE ledger_id_seq TO online_app;
SELECT tenancy.enable_isolation('ledger');
SQL

# each transaction: the context of tenant t, one new row and one update of an existing row of that tenant
cat > "$TENANCY_TMP/app.sql" <<'SQL'
\set t random(1, 50)
\set r random(0, 199)
BEGIN;
SELECT tenancy.set_tenant(('00000000-0000-4000-8000-' || lpad(to_hex((:t)::int), 12, '0'))::uuid);
INSERT INTO ledger (id, qty) VALUES (nextval('ledger_id_seq'), 0);
UPDATE ledger SET qty = qty + 1 WHERE id = ((:t)::int - 1) * 200 + 1 + (:r)::int;
COMMIT;
SQL
chmod 644 "$TENANCY_TMP/app.sql"

as_pg pgbench -n -M prepared -c 6 -j 2 -T 40 -f "$TENANCY_TMP/app.sql" -h 127.0.0.1 -p "$CLUSTER_PORT" -U online_app \
  postgres > "$TENANCY_TMP/pgbench.log" 2>&1 &
bench=$!
sleep 3
# the DBA's operations, back to back, while the application runs
for op in "partition_table('ledger', 16)" "repartition('ledger', 32)" "repartition('ledger', 64)" \
          "isolate_tenant('ledger', '00000000-0000-4000-8000-000000000007')" "repartition('ledger', 16)" \
          "unisolate_tenant('ledger', '00000000-0000-4000-8000-000000000007')"; do
  s=$(date +%s.%N)
  cluster_psql -d postgres -At -c "SELECT tenancy.$op" >/dev/null
  echo "$op: $(echo "$(date +%s.%N) - $s" | bc) s"
  problems=$(cluster_psql -d postgres -At -c "SELECT count(*) FROM tenancy.verify_isolation()")
  [ "$problems" = 0 ] || { echo "verify_isolation reports $problems problems after $op"; exit 1; }
  sleep 2
done
wait "$bench" || { echo "pgbench failed:"; cat "$TENANCY_TMP/pgbench.log"; exit 1; }
cat "$TENANCY_TMP/pgbench.log" | grep -E "^(number of|tps|latency)"
grep -qiE "error|abort" "$TENANCY_TMP/pgbench.log" && { echo "a client saw an error"; exit 1; }
done_tx=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$TENANCY_TMP/pgbench.log")
failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$TENANCY_TMP/pgbench.log")
[ "${failed:-0}" = 0 ] || { echo "$failed failed transactions"; exit 1; }

read -r rows keys qty seqval < <(cluster_psql -d postgres -At -F ' ' -c \
  "SELECT count(*), count(DISTINCT (tenant_id, id)), sum(qty), (SELECT last_value FROM ledger_id_seq) FROM ledger")
echo "transactions $done_tx, rows $rows (distinct $keys), sum(qty) $qty, last id $seqval"
[ "$rows" = $((10000 + done_tx)) ] || { echo "rows lost or duplicated"; exit 1; }
[ "$keys" = "$rows" ] || { echo "duplicate keys"; exit 1; }
[ "$qty" = "$done_tx" ] || { echo "an update was lost or applied twice"; exit 1; }
[ "$(cluster_psql -d postgres -At -c "SELECT relkind FROM pg_class WHERE oid = 'ledger'::regclass")" = p ]
[ "$(cluster_psql -d postgres -At -c "SELECT count(*) FROM tenancy.partitions('ledger')")" = 16 ]
echo "ok: no error reached the application, no row lost or duplicated"
