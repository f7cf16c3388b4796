# bench/lib/private_server.sh
# A private copy of the server with this checkout's tenancy installed (as test/run-tests.sh does, never the system
# one), a master key and the cluster config start_cluster reads. Sourced by benchmarks, from the repository root.

# private_server PREFIX: sets and exports TENANCY_TMP (/tmp/PREFIX.XXXXXX) and TENANCY_PGBIN, sources
# test/lib/common.sh (start_cluster, cluster_psql, stop_all_clusters). Exits when `make install` fails.
private_server() {
  export TENANCY_TMP
  TENANCY_TMP=$(mktemp -d "/tmp/$1.XXXXXX")
  chmod 755 "$TENANCY_TMP"; [ "$(id -u)" = 0 ] && chown postgres: "$TENANCY_TMP"
  local bindir sharedir inst="$TENANCY_TMP/inst"
  bindir=$(pg_config --bindir); sharedir=$(pg_config --sharedir)
  mkdir -p "$inst$(dirname "$bindir")" "$inst$(dirname "$sharedir")"
  cp -a "$(dirname "$bindir")/." "$inst$(dirname "$bindir")/"
  cp -a "$sharedir" "$inst$(dirname "$sharedir")/"
  make install DESTDIR="$inst" >"$TENANCY_TMP/install.log" 2>&1 || { tail "$TENANCY_TMP/install.log"; exit 1; }
  export TENANCY_PGBIN="$inst$bindir"
  openssl rand -hex 32 > "$TENANCY_TMP/master.key"; chmod 600 "$TENANCY_TMP/master.key"
  [ "$(id -u)" = 0 ] && chown postgres: "$TENANCY_TMP/master.key"
  printf "shared_preload_libraries = 'tenancy'\ntenancy.master_key_file = '%s'\ntimezone = 'UTC'\n" \
    "$TENANCY_TMP/master.key" > "$TENANCY_TMP/tenancy-test.conf"
  source test/lib/common.sh
}
