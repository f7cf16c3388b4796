#!/usr/bin/env bash
# bench/rls/run.sh
# Row-level-security cost: the generated policy against a hand-written WHERE, and the context's round trips, with
# pgbench -M prepared at 1 and 16 clients, interleaved in one run; prints tps, medians, ratios and the plans.
#   ROWS=2000000 TENANTS=1000 DURATION=10 ROUNDS=3 CLIENTS_LIST="1 16" bash bench/rls/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
ROWS=${ROWS:-2000000}
TENANTS=${TENANTS:-1000}
DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-3}
CLIENTS_LIST=${CLIENTS_LIST:-"1 16"}
PG_CONFIG=${PG_CONFIG:-pg_config}

# A private copy of the server with tenancy installed (as test/run-tests.sh does), and a throw-away cluster.
export TENANCY_TMP=$(mktemp -d /tmp/tenancy-bench.XXXXXX)
chmod 755 "$TENANCY_TMP"
PG_BINDIR=$($PG_CONFIG --bindir)
PG_SHAREDIR=$($PG_CONFIG --sharedir)
INST="$TENANCY_TMP/inst"
mkdir -p "$INST$(dirname "$PG_BINDIR")" "$INST$(dirname "$PG_SHAREDIR")"
cp -a "$(dirname "$PG_BINDIR")/." "$INST$(dirname "$PG_BINDIR")/"
cp -a "$PG_SHAREDIR" "$INST$(dirname "$PG_SHAREDIR")/"
make -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >/dev/null
make -s install DESTDIR="$INST" PG_CONFIG="$PG_CONFIG" >/dev/null
export TENANCY_PGBIN="$INST$PG_BINDIR"
openssl rand -hex 32 > "$TENANCY_TMP/master.key"
chmod 600 "$TENANCY_TMP/master.key"
cat > "$TENANCY_TMP/tenancy-test.conf" <<CONF
shared_preload_libraries = 'tenancy'
tenancy.master_key_file = '$TENANCY_TMP/master.key'
CONF
[ "$(id -u)" = 0 ] && chown -R postgres: "$TENANCY_TMP"
source test/lib/common.sh
trap 'stop_all_clusters; rm -rf "$TENANCY_TMP"' EXIT
start_cluster bench "shared_buffers = '256MB'" "synchronous_commit = off" "max_connections = 60" "jit = off"
psql_db() { cluster_psql -d bench "$@"; }
cluster_psql -d postgres -c "CREATE DATABASE bench" >/dev/null

echo "== load: $ROWS rows over $TENANTS tenants, index on (tenant_id, id)"
psql_db <<SQL
CREATE EXTENSION tenancy;
CREATE ROLE bench_app LOGIN;
GRANT tenancy_app TO bench_app;
CREATE FUNCTION bench_tenant(int) RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE
  AS \$\$ SELECT ('00000000-0000-0000-0000-' || lpad(\$1::text, 12, '0'))::uuid \$\$;
INSERT INTO tenancy.tenants (id, organization_name, slug, status)
SELECT bench_tenant(t), 'Tenant ' || t, 'bench-' || t, 'active' FROM generate_series(1, $TENANTS) t;
CREATE TABLE items (tenant_id uuid NOT NULL, id bigint NOT NULL, created_at timestamptz NOT NULL, payload text);
INSERT INTO items
SELECT bench_tenant(1 + (n % $TENANTS)::int), n, now() - n * interval '1 second', md5(n::text)
  FROM generate_series(1, $ROWS) n;
ALTER TABLE items ADD PRIMARY KEY (tenant_id, id);
SELECT tenancy.enable_isolation('items');
GRANT SELECT ON items TO bench_app;
GRANT EXECUTE ON FUNCTION bench_tenant(int) TO bench_app;
VACUUM ANALYZE items;
-- Server-side cost of one unit of work, without network or client scheduling (the shared machine's noise):
-- the owner's no-op + WHERE query against the app role's set_tenant + policy query, n times in one backend.
CREATE FUNCTION bench_owner_loop(n int, q text) RETURNS double precision LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); r record; c bigint;
BEGIN
  FOR i IN 1..n LOOP
    PERFORM bench_tenant(1 + i % $TENANTS);
    IF q = 'latest20' THEN
      FOR r IN SELECT id, created_at, payload FROM items WHERE tenant_id = bench_tenant(1 + i % $TENANTS)
               ORDER BY id DESC LIMIT 20 LOOP END LOOP;
    ELSE
      SELECT count(*) INTO c FROM items WHERE tenant_id = bench_tenant(1 + i % $TENANTS);
    END IF;
  END LOOP;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END \$\$;
CREATE FUNCTION bench_app_loop(n int, q text) RETURNS double precision LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); r record; c bigint;
BEGIN
  FOR i IN 1..n LOOP
    PERFORM tenancy.set_tenant(bench_tenant(1 + i % $TENANTS));
    IF q = 'latest20' THEN
      FOR r IN SELECT id, created_at, payload FROM items ORDER BY id DESC LIMIT 20 LOOP END LOOP;
    ELSE
      SELECT count(*) INTO c FROM items;
    END IF;
  END LOOP;
  RETURN extract(epoch FROM clock_timestamp() - t0) * 1e6 / n;
END \$\$;
GRANT EXECUTE ON FUNCTION bench_app_loop(int, text) TO bench_app;
SQL

echo "== plans (owner: superuser, no row level security, hand-written WHERE; app: generated policy)"
psql_db -c "EXPLAIN (COSTS OFF) SELECT id, created_at, payload FROM items WHERE tenant_id = bench_tenant(7) ORDER BY id DESC LIMIT 20"
psql_db -c "EXPLAIN (COSTS OFF) SELECT count(*) FROM items WHERE tenant_id = bench_tenant(7)"
PGPORT_OVERRIDE=$CLUSTER_PORT as_pg psql -X -q -h 127.0.0.1 -p "$CLUSTER_PORT" -U bench_app -d bench <<'SQL'
BEGIN;
SELECT tenancy.set_tenant(bench_tenant(7)) \g /dev/null
EXPLAIN (COSTS OFF) SELECT id, created_at, payload FROM items ORDER BY id DESC LIMIT 20;
EXPLAIN (COSTS OFF) SELECT count(*) FROM items;
COMMIT;
SQL

# The four shapes, each for the "latest 20 rows" and the per-tenant count query.
SCRIPTS="$TENANCY_TMP/scripts"
mkdir -p "$SCRIPTS"
write_scripts() { # write_scripts NAME OWNER_QUERY APP_QUERY
  local name=$1 owner_q=$2 app_q=$3
  # (a) owner, transaction shape: BEGIN, an equivalent no-op for the context, the query with WHERE, COMMIT
  printf '\\set t random(1, %s)\nBEGIN;\nSELECT bench_tenant(:t);\n%s;\nCOMMIT;\n' "$TENANTS" "$owner_q" > "$SCRIPTS/$name-a.sql"
  # (b) app role, same shape: set_tenant, the query through the policy
  printf '\\set t random(1, %s)\nBEGIN;\nSELECT tenancy.set_tenant(bench_tenant(:t));\n%s;\nCOMMIT;\n' "$TENANTS" "$app_q" > "$SCRIPTS/$name-b.sql"
  # (c) app role, one round trip: set_tenant and the query in one pipeline (one implicit transaction until Sync)
  printf '\\set t random(1, %s)\n\\startpipeline\nSELECT tenancy.set_tenant(bench_tenant(:t));\n%s;\n\\endpipeline\n' "$TENANTS" "$app_q" > "$SCRIPTS/$name-c.sql"
  # (d) owner, one statement
  printf '\\set t random(1, %s)\n%s;\n' "$TENANTS" "$owner_q" > "$SCRIPTS/$name-d.sql"
}
write_scripts latest20 "SELECT id, created_at, payload FROM items WHERE tenant_id = bench_tenant(:t) ORDER BY id DESC LIMIT 20" \
                       "SELECT id, created_at, payload FROM items ORDER BY id DESC LIMIT 20"
write_scripts count "SELECT count(*) FROM items WHERE tenant_id = bench_tenant(:t)" "SELECT count(*) FROM items"
[ "$(id -u)" = 0 ] && chown -R postgres: "$SCRIPTS"

run_pgbench() { # run_pgbench SCRIPT USER CLIENTS -> tps
  as_pg pgbench -n -M prepared -h 127.0.0.1 -p "$CLUSTER_PORT" -U "$2" -c "$3" -j "$(( $3 < 2 ? 1 : 2 ))" \
    -T "$DURATION" -f "$1" bench 2>&1 | tee -a "$TENANCY_TMP/pgbench.log" \
    | sed -n 's/^tps = \([0-9.]*\) .*/\1/p'
}
median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

declare -A TPS
echo "== runs: ${DURATION}s each, $ROUNDS rounds, shapes interleaved (a b c d, then d c b a) for every query and client count"
for round in $(seq 1 "$ROUNDS"); do
  order="a b c d"; [ $((round % 2)) = 0 ] && order="d c b a"  # ABBA: drift of the shared machine cancels out
  for clients in $CLIENTS_LIST; do
    for q in latest20 count; do
      for shape in $order; do
        user=postgres; [ "$shape" = b ] || [ "$shape" = c ] && user=bench_app
        tps=$(run_pgbench "$SCRIPTS/$q-$shape.sql" "$user" "$clients")
        TPS[$q,$clients,$shape]="${TPS[$q,$clients,$shape]:-} $tps"
        printf 'round %s  %-8s clients %-2s shape %s  tps %s\n' "$round" "$q" "$clients" "$shape" "$tps"
      done
    done
  done
done

echo
echo "== medians and ratios"
echo "(a) owner BEGIN/no-op/WHERE/COMMIT  (b) app BEGIN/set_tenant/policy/COMMIT  (c) app set_tenant+query pipelined  (d) owner one statement"
printf '%-9s %-7s %10s %10s %10s %10s %10s %10s\n' query clients a b c d "b/a" "c/d"
for clients in $CLIENTS_LIST; do
  for q in latest20 count; do
    a=$(echo "${TPS[$q,$clients,a]}" | median); b=$(echo "${TPS[$q,$clients,b]}" | median)
    c=$(echo "${TPS[$q,$clients,c]}" | median); d=$(echo "${TPS[$q,$clients,d]}" | median)
    printf '%-9s %-7s %10.0f %10.0f %10.0f %10.0f %10.3f %10.3f\n' "$q" "$clients" "$a" "$b" "$c" "$d" \
      "$(echo "$b / $a" | bc -l)" "$(echo "$c / $d" | bc -l)"
  done
done
echo "goals: b/a >= 0.97 (policy overhead), c/d >= 0.75 (context cost)"

echo
echo "== server-side cost per unit of work (microseconds, plpgsql loop in one backend, no network), ABBA x $ROUNDS"
declare -A US
for round in $(seq 1 "$ROUNDS"); do
  for q in latest20 count; do
    n=20000; [ "$q" = count ] && n=2000
    for who in owner app app owner; do
      if [ "$who" = owner ]; then
        us=$(psql_db -At -c "SELECT bench_owner_loop($n, '$q')")
      else
        us=$(as_pg psql -X -At -h 127.0.0.1 -p "$CLUSTER_PORT" -U bench_app -d bench -c "SELECT bench_app_loop($n, '$q')")
      fi
      US[$q,$who]="${US[$q,$who]:-} $us"
    done
  done
done
printf '%-9s %12s %12s %14s\n' query owner_us app_us owner/app
for q in latest20 count; do
  o=$(echo "${US[$q,owner]}" | median); p=$(echo "${US[$q,app]}" | median)
  printf '%-9s %12.2f %12.2f %14.3f\n' "$q" "$o" "$p" "$(echo "$o / $p" | bc -l)"
done
echo "owner/app is the throughput ratio (b)/(a) the server alone would allow: goal >= 0.97"
