# bench/lib/private_server.sh
# Scratch space for a benchmark's clusters (a master key and the config start_cluster reads) and, for the scripts
# that build their own, a private copy of the server with this checkout's tenancy installed (as test/run-tests.sh
# does, never the system one). Sourced by benchmarks.

BENCH_LIB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# bench_scratch PREFIX: sets and exports TENANCY_TMP (/tmp/PREFIX.XXXXXX, owned by postgres when run as root) with
# master.key and tenancy-test.conf, and sources test/lib/common.sh (start_cluster, cluster_psql, stop_all_clusters).
# The server comes from TENANCY_PGBIN.
bench_scratch() {
  export TENANCY_TMP
  TENANCY_TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$TENANCY_TMP"; [ "$(id -u)" = 0 ] && chown postgres: "$TENANCY_TMP"
  openssl rand -hex 32 > "$TENANCY_TMP/master.key"; chmod 600 "$TENANCY_TMP/master.key"
  [ "$(id -u)" = 0 ] && chown postgres: "$TENANCY_TMP/master.key"
  printf "shared_preload_libraries = 'tenancy'\ntenancy.master_key_file = '%s'\ntimezone = 'UTC'\n" \
    "$TENANCY_TMP/master.key" > "$TENANCY_TMP/tenancy-test.conf"
  source "$BENCH_LIB_ROOT/test/lib/common.sh"
}

# private_server PREFIX: bench_scratch, then `make install` of this checkout into a copy of the system server under
# TENANCY_TMP; sets and exports TENANCY_PGBIN. Run from the repository root after `make`. Exits when the install fails.
private_server() {
  bench_scratch "$1"
  local bindir sharedir inst="$TENANCY_TMP/inst"
  bindir=$(pg_config --bindir); sharedir=$(pg_config --sharedir)
  mkdir -p "$inst$(dirname "$bindir")" "$inst$(dirname "$sharedir")"
  cp -a "$(dirname "$bindir")/." "$inst$(dirname "$bindir")/"
  cp -a "$sharedir" "$inst$(dirname "$sharedir")/"
  make install DESTDIR="$inst" >"$TENANCY_TMP/install.log" 2>&1 || { tail "$TENANCY_TMP/install.log"; exit 1; }
  export TENANCY_PGBIN="$inst$bindir"
}
