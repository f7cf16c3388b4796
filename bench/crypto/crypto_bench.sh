#!/usr/bin/env bash
# bench/crypto/crypto_bench.sh
# tenancy.encrypt/decrypt against pgcrypto (raw AES-256-CBC and pgp_sym_*) and openssl speed, side by side in one run.
#   usage: PGHOST=... PGPORT=... PGUSER=<superuser> bench/crypto/crypto_bench.sh [rows=100000] [pgbench_seconds=5] [rounds=7]
# Needs a server with tenancy (tenancy.master_key_file set) and pgcrypto installable; creates and drops the database
# "tenancy_bench_crypto". Prints medians of interleaved timings for the 1 KB and 16 KB cases, the medians of the
# per-round ratios (wall clock and the backend's CPU time), and the ratios the issue asks for. The 1 KB tables take
# about 450 MB: with a smaller shared_buffers every timing also reads pages from the OS cache (the base64 table is
# the largest), so give the server shared_buffers >= 1GB to compare the functions rather than page reads.
set -euo pipefail
ROWS=${1:-100000}
PGB_SECONDS=${2:-5}
ROUNDS=${3:-7}
PGP_ROWS=2000          # pgp_sym_encrypt is ~1000x slower: a sample, reported as rows/s
BIG_VALUES=20000       # 16 KB values per timing (about 330 MB)
DB=tenancy_bench_crypto
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tenancy-bench-crypto.XXXXXX")
trap 'rm -rf "$WORK"; dropdb --if-exists "$DB" >/dev/null 2>&1 || true' EXIT
q() { psql -X -q -At -d "$DB" -v ON_ERROR_STOP=1 "$@"; }

dropdb --if-exists "$DB" >/dev/null 2>&1 || true
createdb "$DB"
q <<SQL
CREATE EXTENSION tenancy;
CREATE EXTENSION pgcrypto;
INSERT INTO tenancy.tenants (id, organization_name, slug) VALUES ('b0000000-0000-0000-0000-00000000000b', 'Bench', 'bench-crypto');
-- 1 KB values of random hex text, and the same bytes as bytea for pgcrypto's raw encrypt(). One table per input and
-- per ciphertext, so every row stays under the TOAST threshold (no detoasting in any timing).
CREATE TABLE plain_text AS
  SELECT i, (SELECT string_agg(md5(random()::text || g), '') FROM generate_series(1, 32) g WHERE i > 0) AS v
    FROM generate_series(1, $ROWS) i;
CREATE TABLE plain_bytea AS SELECT i, convert_to(v, 'UTF8') AS v FROM plain_text;
CREATE TABLE bench_key AS SELECT gen_random_bytes(32) AS k;  -- one fixed AES-256 key for raw encrypt()
CREATE TABLE ct_tenancy AS SELECT i, tenancy.encrypt('b0000000-0000-0000-0000-00000000000b', v) AS c FROM plain_text;
CREATE TABLE ct_tenancy_bytea AS SELECT i, tenancy.encrypt_bytea('b0000000-0000-0000-0000-00000000000b', v) AS c FROM plain_bytea;
CREATE TABLE ct_raw AS SELECT i, encrypt(v, (SELECT k FROM bench_key), 'aes') AS c FROM plain_bytea;
CREATE TABLE plain_pgp AS SELECT i, v FROM plain_text WHERE i <= $PGP_ROWS;
CREATE TABLE ct_pgp AS SELECT i, pgp_sym_encrypt(v, 'k') AS c FROM plain_pgp;
VACUUM ANALYZE;
CREATE EXTENSION IF NOT EXISTS pg_prewarm;
SELECT pg_prewarm(c::regclass) FROM unnest(ARRAY['plain_text', 'plain_bytea', 'ct_tenancy', 'ct_tenancy_bytea', 'ct_raw']) c;
-- CPU seconds this backend has run so far (Linux /proc/self/schedstat, in ns; the backend reads its own file)
CREATE FUNCTION cpu_now() RETURNS float8 LANGUAGE sql AS
  \$\$ SELECT split_part(pg_read_file('/proc/self/schedstat'), ' ', 1)::float8 / 1e9 \$\$;
-- {wall seconds, CPU seconds of this backend} taken by one statement
CREATE FUNCTION timed(sql text) RETURNS float8[] LANGUAGE plpgsql AS \$\$
DECLARE t0 timestamptz := clock_timestamp(); c0 float8 := cpu_now();
BEGIN
  EXECUTE sql;
  RETURN ARRAY[extract(epoch FROM clock_timestamp() - t0), cpu_now() - c0];
END \$\$;
SQL

T="'b0000000-0000-0000-0000-00000000000b'"
declare -A SQLS=(
  [tenancy_encrypt]="SELECT count(tenancy.encrypt($T, v)) FROM plain_text"
  [bytea_encrypt]="SELECT count(tenancy.encrypt_bytea($T, v)) FROM plain_bytea"
  [bytea_decrypt]="SELECT count(tenancy.decrypt_bytea($T, c)) FROM ct_tenancy_bytea"
  [raw_aes_encrypt]="SELECT count(encrypt(v, k, 'aes')) FROM plain_bytea, bench_key"
  [pgp_encrypt]="SELECT count(pgp_sym_encrypt(v, 'k')) FROM plain_pgp"
  [tenancy_decrypt]="SELECT count(tenancy.decrypt($T, c)) FROM ct_tenancy"
  [raw_aes_decrypt]="SELECT count(decrypt(c, k, 'aes')) FROM ct_raw, bench_key"
  [pgp_decrypt]="SELECT count(pgp_sym_decrypt(c, 'k')) FROM ct_pgp"
  [encrypt_bytea_16k]="WITH b AS MATERIALIZED (SELECT (SELECT string_agg(gen_random_bytes(1024), ''::bytea) FROM generate_series(1, 16)) AS v) SELECT count(tenancy.encrypt_bytea($T, b.v)) FROM generate_series(1, $BIG_VALUES), b"
  [decrypt_bytea_16k]="WITH b AS MATERIALIZED (SELECT tenancy.encrypt_bytea($T, (SELECT string_agg(gen_random_bytes(1024), ''::bytea) FROM generate_series(1, 16))) AS v) SELECT count(tenancy.decrypt_bytea($T, b.v)) FROM generate_series(1, $BIG_VALUES), b"
)
ORDER=(tenancy_encrypt raw_aes_encrypt bytea_encrypt pgp_encrypt tenancy_decrypt raw_aes_decrypt bytea_decrypt pgp_decrypt
       encrypt_bytea_16k decrypt_bytea_16k)
# One backend runs ROUNDS rounds; each round times every statement once (interleaved, so load swings hit all of
# them alike); the median of each statement is kept.
cols=""
for name in "${ORDER[@]}"; do cols="$cols, timed(\$q\$${SQLS[$name]}\$q\$) AS $name"; done
q -c "CREATE TABLE timings AS SELECT r $cols FROM generate_series(0, $ROUNDS) r"   # round 0 warms caches and keys
declare -A MEDIAN
for name in "${ORDER[@]}"; do
  MEDIAN[$name]=$(q -c "SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY $name[1]) FROM timings WHERE r > 0")
done
rate() { echo "scale=0; $1 / ${MEDIAN[$2]}" | bc; }
ratio() { echo "scale=2; $1 / $2" | bc; }

te=$(rate "$ROWS" tenancy_encrypt); re=$(rate "$ROWS" raw_aes_encrypt); pe=$(rate "$PGP_ROWS" pgp_encrypt)
td=$(rate "$ROWS" tenancy_decrypt); rd=$(rate "$ROWS" raw_aes_decrypt); pd=$(rate "$PGP_ROWS" pgp_decrypt)
echo "== 1 KB values, rows/s (median of $ROUNDS; $ROWS rows, pgp on $PGP_ROWS)"
printf '%-10s %14s %18s %16s %12s %12s\n' op tenancy raw_aes_256_cbc pgp_sym tenancy/raw tenancy/pgp
printf '%-10s %14s %18s %16s %12s %12s\n' encrypt "$te" "$re" "$pe" "$(ratio "$te" "$re")" "$(ratio "$te" "$pe")"
printf '%-10s %14s %18s %16s %12s %12s\n' decrypt "$td" "$rd" "$pd" "$(ratio "$td" "$rd")" "$(ratio "$td" "$pd")"
# Each round timed ours and raw AES back to back: the median of the per-round ratios is the least noisy figure on a
# shared machine (a load swing then hits both sides of one ratio alike).
round_ratio() { q -c "SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY $1[$3] / $2[$3])::numeric, 2) FROM timings WHERE r > 0"; }
for what in "1 wall clock" "2 CPU time of the backend"; do
  i=${what%% *}
  echo "== median of the $ROUNDS per-round ratios tenancy/raw (rows/s), ${what#* }: encrypt $(round_ratio raw_aes_encrypt tenancy_encrypt $i)," \
    "decrypt $(round_ratio raw_aes_decrypt tenancy_decrypt $i), encrypt_bytea $(round_ratio raw_aes_encrypt bytea_encrypt $i)," \
    "decrypt_bytea $(round_ratio raw_aes_decrypt bytea_decrypt $i)"
done
# The same without the base64 text form (encrypt_bytea/decrypt_bytea), like raw encrypt() which returns bytea.
be=$(rate "$ROWS" bytea_encrypt); bd=$(rate "$ROWS" bytea_decrypt)
printf '%-10s %14s %18s %16s %12s %12s\n' enc_bytea "$be" "$re" "$pe" "$(ratio "$be" "$re")" "$(ratio "$be" "$pe")"
printf '%-10s %14s %18s %16s %12s %12s\n' dec_bytea "$bd" "$rd" "$pd" "$(ratio "$bd" "$rd")" "$(ratio "$bd" "$pd")"

bytes=$((BIG_VALUES * 16384))
eb=$(echo "scale=0; $bytes / ${MEDIAN[encrypt_bytea_16k]} / 1000000" | bc)
db=$(echo "scale=0; $bytes / ${MEDIAN[decrypt_bytea_16k]} / 1000000" | bc)
# openssl speed prints 1000s of bytes per second per block size (the last column is 16384 bytes); -elapsed makes it
# wall-clock time like our timings, so both see the same machine load.
ossl_k=$(openssl speed -elapsed -evp aes-256-gcm -bytes 16384 -seconds 3 2>/dev/null | awk 'tolower($1) == "aes-256-gcm" { v = $NF } END { sub("k", "", v); print v }')
ossl=$(echo "scale=0; $ossl_k * 1000 / 1000000" | bc)
echo "== 16 KB bytea values, MB/s (median of $ROUNDS; $BIG_VALUES values), one core"
printf '%-18s %10s %22s %8s\n' op tenancy openssl_speed_gcm_16k ratio
printf '%-18s %10s %22s %8s\n' encrypt_bytea "$eb" "$ossl" "$(ratio "$eb" "$ossl")"
printf '%-18s %10s %22s %8s\n' decrypt_bytea "$db" "$ossl" "$(ratio "$db" "$ossl")"

echo "SELECT md5('hello world');" > "$WORK/md5.sql"
echo "SELECT tenancy.encrypt($T, 'hello world');" > "$WORK/encrypt.sql"
tps() { pgbench -n -d "$DB" -f "$1" -c "$2" -j "$2" -T "$PGB_SECONDS" 2>/dev/null | sed -n 's/^tps = \([0-9.]*\).*/\1/p'; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }
echo "== pgbench, median of 3 alternating runs of ${PGB_SECONDS} s each, tps"
printf '%-8s %12s %16s %8s\n' clients md5 tenancy.encrypt ratio
for c in 1 4; do
  m=(); e=()
  for r in 1 2 3; do m+=("$(tps "$WORK/md5.sql" "$c")"); e+=("$(tps "$WORK/encrypt.sql" "$c")"); done
  mm=$(median3 "${m[@]}"); me=$(median3 "${e[@]}")
  printf '%-8s %12s %16s %8s\n' "$c" "$mm" "$me" "$(ratio "$me" "$mm")"
done
