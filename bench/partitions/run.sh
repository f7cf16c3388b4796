#!/usr/bin/env bash
# bench/partitions/run.sh
# tenancy's partition functions against the hand-made baseline, side by side in one run, with the ratios.
#   usage: PGHOST=... PGPORT=... PGUSER=<superuser> bench/partitions/run.sh [rows=2000000] [tenants=1000] [seconds=10]
# Needs a cluster with shared_preload_libraries = 'tenancy'; creates and drops database "tenancy_bench_partitions".
#  1. partition_table(t, 16) vs: CREATE TABLE (LIKE ... INCLUDING ALL) PARTITION BY HASH, 16 partitions,
#     INSERT ... SELECT, DROP the old table, RENAME the copy (one transaction).
#  2. repartition(t, 32) of that table vs: a 32-partition copy, INSERT ... SELECT, DROP, RENAME.
#  3. "latest 20 rows" of the context tenant through the isolation policy, as the app role, context set in the same
#     transaction: pgbench tps on 16, 64 and 256 partitions against the unpartitioned table, prepared and simple
#     protocol; partitions scanned (EXPLAIN ANALYZE); planning time at 256 partitions against a literal WHERE.
set -euo pipefail
ROWS=${1:-2000000}
TENANTS=${2:-1000}
SECS=${3:-10}
DB=tenancy_bench_partitions
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tenancy-bench-partitions.XXXXXX")
chmod 755 "$WORK"
trap 'rm -rf "$WORK"; dropdb --if-exists "$DB" >/dev/null 2>&1 || true' EXIT
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
# timed: seconds that the SQL on stdin takes (client wall clock, one run)
timed() { local s e; s=$(date +%s.%N); q >/dev/null; e=$(date +%s.%N); echo "$e - $s" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }
checksum() { q -c "SELECT count(*) || ':' || sum(hashtext(t::text)::bigint) FROM $1 t"; }

dropdb --if-exists "$DB" >/dev/null 2>&1 || true
createdb "$DB"
q <<SQL
SET client_min_messages = warning;
CREATE EXTENSION tenancy;
DROP ROLE IF EXISTS bench_part_app;
CREATE ROLE bench_part_app LOGIN;
GRANT tenancy_app TO bench_part_app;
INSERT INTO tenancy.tenants (id, organization_name, slug, status, plan)
SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g), 12, '0'))::uuid, 'Bench ' || g, 'bench-' || g, 'active',
       'enterprise'
  FROM generate_series(1, $TENANTS) g;
SQL
# build NAME [PARTITIONS]: the brief's table (key leading with the tenant, an index for "latest rows"), filled
build() {
  local name=$1 parts=${2:-0}
  {
    if [ "$parts" -gt 0 ]; then
      echo "CREATE TABLE $name (tenant_id uuid NOT NULL, id bigint NOT NULL, created_at timestamptz NOT NULL,
              data jsonb, PRIMARY KEY (tenant_id, id)) PARTITION BY HASH (tenant_id);
            SELECT tenancy.create_partitions('$name', $parts);"
    else
      echo "CREATE TABLE $name (tenant_id uuid NOT NULL, id bigint NOT NULL, created_at timestamptz NOT NULL,
              data jsonb, PRIMARY KEY (tenant_id, id));"
    fi
    echo "INSERT INTO $name SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(1 + g % $TENANTS), 12, '0'))::uuid, g,
            timestamptz '2026-01-01' + g * interval '1 second', jsonb_build_object('n', g)
          FROM generate_series(1, $ROWS) g;
          CREATE INDEX ${name}_latest_idx ON $name (tenant_id, created_at DESC);
          VACUUM ANALYZE $name;"
  } | q >/dev/null
}
# baseline NAME PARTITIONS: the hand-made conversion (or re-partitioning) of NAME, one transaction
baseline() {
  cat <<SQL
BEGIN;
CREATE TABLE $1_new (LIKE $1 INCLUDING ALL) PARTITION BY HASH (tenant_id);
DO \$\$ BEGIN FOR r IN 0..$2 - 1 LOOP
  EXECUTE format('CREATE TABLE %I PARTITION OF $1_new FOR VALUES WITH (MODULUS $2, REMAINDER %s)', '$1_b' || $2 || '_' || r, r);
END LOOP; END \$\$;
INSERT INTO $1_new SELECT * FROM $1;
DROP TABLE $1;
ALTER TABLE $1_new RENAME TO $1;
COMMIT;
SQL
}

echo "== $ROWS rows, $TENANTS tenants; $(nproc) cores shared with other work; one run per figure"
build conv_ours
build conv_base
sum=$(checksum conv_ours)
t_ours=$(echo "SELECT tenancy.partition_table('conv_ours', 16);" | timed)
t_base=$(baseline conv_base 16 | timed)
[ "$(checksum conv_ours)" = "$sum" ] || { echo "partition_table changed the rows"; exit 1; }
echo "partition_table -> 16: tenancy ${t_ours} s, baseline ${t_base} s, ratio $(ratio "$t_ours" "$t_base") (goal <= 1.5)"

t_ours=$(echo "SELECT tenancy.repartition('conv_ours', 32);" | timed)
t_base=$(baseline conv_base 32 | timed)
[ "$(checksum conv_ours)" = "$sum" ] || { echo "repartition changed the rows"; exit 1; }
echo "repartition 16 -> 32: tenancy ${t_ours} s, baseline ${t_base} s, ratio $(ratio "$t_ours" "$t_base") (goal <= 2)"
q -c "DROP TABLE conv_ours, conv_base"

# ---- 3. the tenant-scoped "latest 20 rows" through the isolation policy
build flat
for p in 16 64 256; do build "p$p" "$p"; done
for t in flat p16 p64 p256; do
  q -c "SELECT tenancy.enable_isolation('$t'); GRANT SELECT ON $t TO bench_part_app;" >/dev/null
done
tenant_expr="('00000000-0000-4000-8000-' || lpad(to_hex((:t)::int), 12, '0'))::uuid"
for t in flat p16 p64 p256; do
  cat > "$WORK/$t.sql" <<SQL
\set t random(1, $TENANTS)
BEGIN;
SELECT tenancy.set_tenant($tenant_expr);
SELECT id, created_at FROM $t ORDER BY created_at DESC LIMIT 20;
COMMIT;
SQL
done
tps() { # tps TABLE MODE
  PGUSER=bench_part_app pgbench -n -d "$DB" -f "$WORK/$1.sql" -M "$2" -c 2 -j 2 -T "$SECS" >"$WORK/pgbench.out" 2>&1 \
    || { grep -m3 -i error "$WORK/pgbench.out" >&2; exit 1; }
  sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$WORK/pgbench.out"
}
scanned() { # partitions (leaf scans) that executed for one tenant, prepared and generic as after 5 executions
  PGUSER=bench_part_app psql -X -q -At -d "$DB" <<SQL | grep -E ' on [a-z0-9_]+_p[0-9]{3}( |$)' | grep -vc 'never executed' || true
BEGIN;
SELECT tenancy.set_tenant('00000000-0000-4000-8000-000000000007') \\g /dev/null
SET LOCAL plan_cache_mode = force_generic_plan;
PREPARE latest AS SELECT id, created_at FROM $1 ORDER BY created_at DESC LIMIT 20;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) EXECUTE latest;
COMMIT;
SQL
}
for mode in prepared simple; do
  base=$(tps flat "$mode")
  echo "latest 20 rows, $mode protocol, 2 clients, ${SECS} s each: unpartitioned ${base} tps"
  for t in p16 p64 p256; do
    r=$(tps "$t" "$mode")
    echo "  ${t#p} partitions: ${r} tps, ratio $(ratio "$r" "$base"), partitions scanned $( [ "$mode" = prepared ] && scanned "$t" || echo -)"
  done
done
# planning time of the policy-only query (simple protocol, a fresh plan each time) against a literal WHERE
plan_ms() { # plan_ms TABLE WHERE
  PGUSER=bench_part_app psql -X -q -At -d "$DB" <<SQL | sed -n 's/^Planning Time: \([0-9.]*\) ms/\1/p' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'
BEGIN;
SELECT tenancy.set_tenant('00000000-0000-4000-8000-000000000007') \\g /dev/null
$(for i in $(seq 1 25); do echo "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT id, created_at FROM $1 $2 ORDER BY created_at DESC LIMIT 20;"; done)
COMMIT;
SQL
}
pol=$(plan_ms p256 "")
lit=$(plan_ms p256 "WHERE tenant_id = '00000000-0000-4000-8000-000000000007'")
flat_pol=$(plan_ms flat "")
echo "planning time (median of 25), 256 partitions: policy only ${pol} ms, literal WHERE ${lit} ms; unpartitioned ${flat_pol} ms"
