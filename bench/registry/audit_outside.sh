#!/usr/bin/env bash
# bench/registry/audit_outside.sh
# Cost of the audit events written outside the caller's transaction (the audit writer, extension/pg/audit_queue.cpp)
# next to an ordinary in-transaction event and SELECT 1, side by side:
#   select1   SELECT 1
#   ordinary  BEGIN; tenancy._audit(...); COMMIT            (appended at the caller's commit)
#   xread     BEGIN; begin_cross_tenant(...); ROLLBACK      (waits until the writer committed the event)
#   refusal   consume_or_raise refused, caught in a DO block (queued, not waited for)
# then waits for the queue to drain and checks the chain.
#   usage: PGHOST=... PGPORT=... PGUSER=<superuser> bench/registry/audit_outside.sh [seconds=5] [clients="1 4"]
# Needs a server with shared_preload_libraries = 'tenancy' (it creates and drops "tenancy_bench_audit_outside").
set -euo pipefail
SECONDS_PER_RUN=${1:-5}
CLIENTS=${2:-"1 4"}
DB=tenancy_bench_audit_outside
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tenancy-bench-audit-outside.XXXXXX")
trap 'rm -rf "$WORK"; dropdb --if-exists --force "$DB" >/dev/null 2>&1 || true' EXIT

dropdb --if-exists --force "$DB" >/dev/null 2>&1 || true
createdb "$DB"
psql -X -q -d "$DB" -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION tenancy;
SELECT count(*) FROM (SELECT tenancy.create_tenant('Bench', 'bench-outside', 'enterprise')) s;
SQL
tenant=$(psql -X -At -d "$DB" -c "SELECT id FROM tenancy.tenants WHERE slug = 'bench-outside'")
echo "SELECT 1;" > "$WORK/select1.sql"
echo "BEGIN; SELECT tenancy._audit('bench_event', NULL, NULL, '{\"n\": 1}'); COMMIT;" > "$WORK/ordinary.sql"
echo "BEGIN; SELECT tenancy.begin_cross_tenant('bench read'); ROLLBACK;" > "$WORK/xread.sql"
echo "DO \$\$ BEGIN PERFORM tenancy.consume_or_raise('$tenant', 'users', 1000000);
      EXCEPTION WHEN SQLSTATE 'TN003' THEN NULL; END \$\$;" > "$WORK/refusal.sql"

run() { # run SCRIPT CLIENTS -> "tps latency_ms"
  pgbench -n -d "$DB" -f "$1" -c "$2" -j "$2" -T "$SECONDS_PER_RUN" 2>/dev/null |
    awk '/^latency average/ {l=$4} /^tps/ {t=$3} END {printf "%.0f %.3f", t, l}'
}
# every refusal is audited (no rate limit) for the refusal rows
export PGOPTIONS="-c tenancy.quota_audit_interval=0"
printf '%-9s %-8s %10s %12s\n' script clients tps latency_ms
for script in select1 ordinary xread refusal; do
  for c in $CLIENTS; do
    read -r t l <<< "$(run "$WORK/$script.sql" "$c")"
    printf '%-9s %-8s %10s %12s\n' "$script" "$c" "$t" "$l"
  done
done
for _ in $(seq 1 100); do
  [ "$(psql -X -At -d "$DB" -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'tenancy audit writer' AND state = 'active'")" = 0 ] && break
  sleep 0.1
done
psql -X -At -d "$DB" -F ' ' -c "SELECT action, count(*) FROM tenancy.audit_log GROUP BY 1 ORDER BY 1"
echo "verify_audit_log problems: $(psql -X -At -d "$DB" -c "SELECT count(*) FROM tenancy.verify_audit_log()")"
