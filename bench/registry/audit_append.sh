#!/usr/bin/env bash
# bench/registry/audit_append.sh
# Cost of a hash-chained audit event (tenancy._audit) against a plain INSERT of the same row, side by side.
#   usage: PGHOST=... PGPORT=... PGUSER=... bench/registry/audit_append.sh [seconds=10] [clients="1 4"]
# Needs a database where CREATE EXTENSION tenancy works (it creates and drops "tenancy_bench_audit").
set -euo pipefail
SECONDS_PER_RUN=${1:-10}
CLIENTS=${2:-"1 4"}
DB=tenancy_bench_audit
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tenancy-bench-audit.XXXXXX")
trap 'rm -rf "$WORK"; dropdb --if-exists "$DB" >/dev/null 2>&1 || true' EXIT

dropdb --if-exists "$DB" >/dev/null 2>&1 || true
createdb "$DB"
psql -X -q -d "$DB" -v ON_ERROR_STOP=1 <<'SQL'
CREATE EXTENSION tenancy;
-- The baseline: the same columns, no chain, no lock, no owner switch.
CREATE TABLE bench_plain_log (LIKE tenancy.audit_log INCLUDING DEFAULTS);
ALTER TABLE bench_plain_log ALTER COLUMN id SET DEFAULT 0;
CREATE INDEX ON bench_plain_log (tenant_id, id);
SQL
echo "INSERT INTO bench_plain_log (occurred_at, session_user_name, current_user_name, action, after, prev_hash, hash)
      VALUES (clock_timestamp(), session_user, current_user, 'bench', '{\"n\": 1}', '\\x00', sha256('x'));" > "$WORK/plain.sql"
echo "SELECT tenancy._audit('bench', NULL, NULL, '{\"n\": 1}');" > "$WORK/audit.sql"

tps() { # tps SCRIPT CLIENTS
  pgbench -n -d "$DB" -f "$1" -c "$2" -j "$2" -T "$SECONDS_PER_RUN" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'
}
printf '%-8s %14s %14s %8s\n' clients plain_tps audit_tps ratio
for c in $CLIENTS; do
  p=$(tps "$WORK/plain.sql" "$c")
  a=$(tps "$WORK/audit.sql" "$c")
  printf '%-8s %14s %14s %8s\n' "$c" "$p" "$a" "$(echo "scale=2; $a / $p" | bc)"
done
problems=$(psql -X -At -d "$DB" -c "SELECT count(*) FROM tenancy.verify_audit_log()")
events=$(psql -X -At -d "$DB" -c "SELECT count(*) FROM tenancy.audit_log")
echo "audit events written: $events, verify_audit_log problems: $problems"
start=$(date +%s.%N)
psql -X -At -d "$DB" -c "SELECT count(*) FROM tenancy.verify_audit_log()" >/dev/null
echo "verify_audit_log over $events events: $(echo "$(date +%s.%N) - $start" | bc) s"
