#!/usr/bin/env bash
# bench/crypto/decrypt_cpu.sh
# Text decrypt against raw pgcrypto decrypt(..., 'aes') and decrypt_bytea: the backend's CPU time per row, short.
#   usage: PGHOST=... PGPORT=... PGUSER=<superuser> bench/crypto/decrypt_cpu.sh [rows=100000] [rounds=15]
# The same 1 KB tables as crypto_bench.sh, in the database "tenancy_bench_decrypt", kept between runs (drop it by
# hand) so that builds can be compared one after another: restart the server with the other tenancy.so and rerun.
# One backend, no parallel workers (their CPU time is not the backend's own); each round times the three
# statements back to back. Prints the medians of CPU and wall time per row and the median of the per-round ratios
# raw/tenancy (rows/s of ours over raw AES's), the figure the issue's ">= 1.0x" is about.
set -euo pipefail
ROWS=${1:-100000}
ROUNDS=${2:-15}
DB=tenancy_bench_decrypt
T="'b0000000-0000-0000-0000-00000000000b'"
q() { psql -X -q -At -d "$DB" -v ON_ERROR_STOP=1 "$@"; }

if ! psql -X -At -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$DB'" | grep -q 1; then
  createdb "$DB"
  q <<SQL
CREATE EXTENSION tenancy;
CREATE EXTENSION pgcrypto;
CREATE EXTENSION pg_prewarm;
INSERT INTO tenancy.tenants (id, organization_name, slug) VALUES ($T, 'Bench', 'bench-decrypt');
CREATE TABLE plain_text AS
  SELECT i, (SELECT string_agg(md5(random()::text || g), '') FROM generate_series(1, 32) g WHERE i > 0) AS v
    FROM generate_series(1, $ROWS) i;
CREATE TABLE plain_bytea AS SELECT i, convert_to(v, 'UTF8') AS v FROM plain_text;
CREATE TABLE bench_key AS SELECT gen_random_bytes(32) AS k;
CREATE TABLE ct_tenancy AS SELECT i, tenancy.encrypt($T, v) AS c FROM plain_text;
CREATE TABLE ct_tenancy_bytea AS SELECT i, tenancy.encrypt_bytea($T, v) AS c FROM plain_bytea;
CREATE TABLE ct_raw AS SELECT i, encrypt(v, (SELECT k FROM bench_key), 'aes') AS c FROM plain_bytea;
VACUUM ANALYZE;
CREATE FUNCTION cpu_now() RETURNS float8 LANGUAGE sql AS
  \$\$ SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::float8 / 1e9 \$\$;
CREATE FUNCTION timed(sql text) RETURNS float8[] LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); c0 float8 := cpu_now();
BEGIN
  EXECUTE sql;
  RETURN ARRAY[extract(epoch FROM clock_timestamp() - t0), cpu_now() - c0];
END \$\$;
SQL
fi
N=$(q -c "SELECT count(*) FROM ct_tenancy")
q <<SQL
SET max_parallel_workers_per_gather = 0;
SELECT count(*) FROM (SELECT pg_prewarm(c::regclass) FROM unnest(ARRAY['ct_tenancy', 'ct_tenancy_bytea', 'ct_raw']) c) s \g /dev/null
CREATE TEMP TABLE t AS SELECT r,
  timed(\$q\$SELECT count(tenancy.decrypt($T, c)) FROM ct_tenancy\$q\$) AS text_decrypt,
  timed(\$q\$SELECT count(decrypt(c, k, 'aes')) FROM ct_raw, bench_key\$q\$) AS raw_decrypt,
  timed(\$q\$SELECT count(tenancy.decrypt_bytea($T, c)) FROM ct_tenancy_bytea\$q\$) AS bytea_decrypt
  FROM generate_series(0, $ROUNDS) r;  -- round 0 warms caches and keys
SELECT format('%s rows, %s rounds, load %s: CPU us/row text %s raw %s bytea %s; wall us/row text %s raw %s; '
              'per-round ratios tenancy/raw rows/s: text CPU %s wall %s, bytea CPU %s',
  $N, $ROUNDS, split_part(pg_read_file('/proc/loadavg'), ' ', 1),
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY text_decrypt[2]) * 1e6 / $N)::numeric, 3),
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY raw_decrypt[2]) * 1e6 / $N)::numeric, 3),
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY bytea_decrypt[2]) * 1e6 / $N)::numeric, 3),
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY text_decrypt[1]) * 1e6 / $N)::numeric, 3),
  round((percentile_cont(0.5) WITHIN GROUP (ORDER BY raw_decrypt[1]) * 1e6 / $N)::numeric, 3),
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY raw_decrypt[2] / text_decrypt[2])::numeric, 3),
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY raw_decrypt[1] / text_decrypt[1])::numeric, 3),
  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY raw_decrypt[2] / bytea_decrypt[2])::numeric, 3))
FROM t WHERE r > 0;
SQL
