# test/lib/common.sh
# Shared shell helpers for make check and the integration tests: throw-away clusters run as the postgres OS user.
# Sourced, not executed. Expects TENANCY_TMP (a scratch dir owned by postgres) and TENANCY_PGBIN (server binaries
# of the temporary install, with tenancy installed) to be set by test/run-tests.sh.

PG_OS_USER=${PG_OS_USER:-postgres}

# Runs a command as the postgres OS user (PostgreSQL refuses to run as root); as-is when we are not root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    runuser -u "$PG_OS_USER" -- env PATH="$TENANCY_PGBIN:$PATH" "$@"
  else
    env PATH="$TENANCY_PGBIN:$PATH" "$@"
  fi
}

# Prints a TCP port on 127.0.0.1 that nothing listens on.
free_port() {
  local p
  for _ in $(seq 1 200); do
    # below Linux's ephemeral range (32768-60999): a port there can be the local end of any outgoing connection,
    # which the probe below does not see and which makes the server's listen fail with "Address already in use"
    p=$(( 20000 + RANDOM % 12700 ))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      echo "$p"
      return 0
    fi
  done
  echo "no free port found" >&2
  return 1
}

# start_cluster NAME [extra postgresql.conf lines...]: initdb + start a cluster under $TENANCY_TMP/NAME.
# Sets CLUSTER_PORT and CLUSTER_DIR; registers the data dir so stop_all_clusters stops it.
start_cluster() {
  local name=$1; shift
  CLUSTER_DIR="$TENANCY_TMP/$name"
  CLUSTER_PORT=$(free_port)
  as_pg initdb -D "$CLUSTER_DIR/data" -U postgres -A trust --no-sync -E UTF8 --locale=C >"$CLUSTER_DIR.initdb.log" 2>&1 \
    || { cat "$CLUSTER_DIR.initdb.log" >&2; return 1; }
  {
    echo "port = $CLUSTER_PORT"
    echo "listen_addresses = '127.0.0.1'"
    echo "unix_socket_directories = '$CLUSTER_DIR'"
    echo "fsync = off"
    echo "max_connections = 120"
    cat "$TENANCY_TMP/tenancy-test.conf"
    for line in "$@"; do echo "$line"; done
  } | as_pg tee -a "$CLUSTER_DIR/data/postgresql.conf" >/dev/null
  echo "$CLUSTER_DIR/data" >> "$TENANCY_TMP/clusters.list"
  # The port was free when picked; another suite (or daemon) may take it before the server binds: pick again.
  local attempt
  for attempt in 1 2 3 4 5; do
    as_pg pg_ctl -D "$CLUSTER_DIR/data" -l "$CLUSTER_DIR.log" -w -t 60 start >/dev/null && return 0
    grep -q "Address already in use" "$CLUSTER_DIR.log" || break
    CLUSTER_PORT=$(free_port)
    echo "port = $CLUSTER_PORT" | as_pg tee -a "$CLUSTER_DIR/data/postgresql.conf" >/dev/null
  done
  cat "$CLUSTER_DIR.log" >&2
  return 1
}

# psql against the most recently started cluster (or PGPORT/PGHOST if set by the caller).
cluster_psql() {
  as_pg psql -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${PGPORT_OVERRIDE:-$CLUSTER_PORT}" -U postgres "$@"
}

# start_src_dst_clusters: the two clusters of a dump/restore test, src and dst (SRC_PORT, DST_PORT); src_psql and
# dst_psql run cluster_psql against each.
start_src_dst_clusters() {
  start_cluster src
  SRC_PORT=$CLUSTER_PORT
  start_cluster dst
  DST_PORT=$CLUSTER_PORT
}
src_psql() { PGPORT_OVERRIDE=$SRC_PORT cluster_psql "$@"; }
dst_psql() { PGPORT_OVERRIDE=$DST_PORT cluster_psql "$@"; }

# dump_restore_db DB FILE: pg_dump -Fc of database DB on src into FILE, restored into a new database DB on dst;
# fails at the first error of either.
dump_restore_db() {
  as_pg pg_dump -h 127.0.0.1 -p "$SRC_PORT" -U postgres -Fc -f "$2" "$1"
  dst_psql -d postgres -c "CREATE DATABASE \"$1\""
  as_pg pg_restore -h 127.0.0.1 -p "$DST_PORT" -U postgres -d "$1" --exit-on-error "$2"
}

stop_all_clusters() {
  [ -f "$TENANCY_TMP/clusters.list" ] || return 0
  while read -r d; do
    [ -f "$d/postmaster.pid" ] && as_pg pg_ctl -D "$d" -m immediate stop >/dev/null 2>&1
  done < "$TENANCY_TMP/clusters.list"
  rm -f "$TENANCY_TMP/clusters.list"
}
