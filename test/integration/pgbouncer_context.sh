#!/usr/bin/env bash
# test/integration/pgbouncer_context.sh
# Several clients share two server connections through pgbouncer in transaction pooling mode, repeatedly: no
# client ever starts with another's tenant context (set_tenant, or a session-level app.tenant_id), nor sees rows,
# nor finds a temporary table made under another client's context.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

CLIENTS=${CLIENTS:-6}
ROUNDS=${ROUNDS:-40}

start_cluster bouncer_pg
PG_PORT=$CLUSTER_PORT
cluster_psql -d postgres -c "CREATE DATABASE app"
cluster_psql -d app <<'SQL'
CREATE EXTENSION tenancy;
CREATE ROLE regress_pool_app LOGIN;
GRANT tenancy_app TO regress_pool_app;
CREATE TABLE notes (id bigserial PRIMARY KEY, tenant_id uuid NOT NULL, body text);
SELECT tenancy.enable_isolation('notes');
GRANT SELECT, INSERT ON notes TO regress_pool_app;
GRANT USAGE ON SEQUENCE notes_id_seq TO regress_pool_app;
-- tenant i (1..9) has i rows
INSERT INTO tenancy.tenants (id, organization_name, slug, status)
SELECT ('00000000-0000-0000-0000-00000000000' || i)::uuid, 'Tenant ' || i, 'pool-' || i, 'active'
  FROM generate_series(1, 9) i;
INSERT INTO notes (tenant_id, body)
SELECT ('00000000-0000-0000-0000-00000000000' || i)::uuid, 'row ' || n
  FROM generate_series(1, 9) i, generate_series(1, i) n;
SQL

# pgbouncer: transaction pooling, two server connections for all clients, no reset query (as in production
# transaction pooling: DISCARD ALL is not run between transactions).
BOUNCER_DIR="$TENANCY_TMP/pgbouncer"
mkdir -p "$BOUNCER_DIR"
BOUNCER_PORT=$(free_port)
cat > "$BOUNCER_DIR/pgbouncer.ini" <<INI
[databases]
app = host=127.0.0.1 port=$PG_PORT dbname=app
[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $BOUNCER_PORT
unix_socket_dir =
auth_type = trust
auth_file = $BOUNCER_DIR/userlist.txt
pool_mode = transaction
default_pool_size = 2
max_client_conn = 100
server_reset_query =
logfile = $BOUNCER_DIR/pgbouncer.log
pidfile = $BOUNCER_DIR/pgbouncer.pid
INI
echo '"regress_pool_app" ""' > "$BOUNCER_DIR/userlist.txt"
[ "$(id -u)" = 0 ] && chown -R postgres: "$BOUNCER_DIR"
as_pg pgbouncer -d "$BOUNCER_DIR/pgbouncer.ini"
stop_bouncer() { [ -f "$BOUNCER_DIR/pgbouncer.pid" ] && kill "$(cat "$BOUNCER_DIR/pgbouncer.pid")" 2>/dev/null || true; stop_all_clusters; }
trap stop_bouncer EXIT
for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$BOUNCER_PORT") 2>/dev/null && break; sleep 0.1; done

# Client i works for tenant i. Each round: the context at the start of a transaction must be empty; a transaction
# with set_tenant sees exactly its tenant's i rows; a query without context is refused (TN004); then the client
# leaves behind everything a careless client could: a session-level app.tenant_id, plain SET, and a context set
# outside a transaction block.
client_script() {
  local i=$1 t="00000000-0000-0000-0000-00000000000$1"
  for r in $(seq 1 "$ROUNDS"); do
    cat <<SQL
SELECT 'ctx ' || coalesce(tenancy.current_tenant_id()::text, 'none');
BEGIN;
SELECT 'ctx-in-tx ' || coalesce(tenancy.current_tenant_id()::text, 'none');
SELECT tenancy.set_tenant('$t');
SELECT 'rows ' || count(*) FILTER (WHERE tenant_id <> '$t') || ' ' || count(*) FROM notes;
COMMIT;
SELECT count(*) FROM notes;
SELECT set_config('app.tenant_id', '$t', false);
SET app.tenant_id = '$t';
SELECT tenancy.set_tenant('$t');
BEGIN;
SELECT tenancy.set_tenant('$t');
SELECT pg_sleep(0.002);
COMMIT;
SQL
  done
}

pids=()
for i in $(seq 1 "$CLIENTS"); do
  client_script "$i" > "$BOUNCER_DIR/client$i.sql"
  ( as_pg psql -X -q -At -h 127.0.0.1 -p "$BOUNCER_PORT" -U regress_pool_app -d app -f "$BOUNCER_DIR/client$i.sql" \
      > "$BOUNCER_DIR/client$i.out" 2>&1 ) &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

failures=0
for i in $(seq 1 "$CLIENTS"); do
  out="$BOUNCER_DIR/client$i.out"
  ctx_ok=$(grep -c '^ctx none$' "$out" || true)
  ctx_tx_ok=$(grep -c '^ctx-in-tx none$' "$out" || true)
  rows_ok=$(grep -c "^rows 0 $i\$" "$out" || true)
  refused=$(grep -c 'no tenant context' "$out" || true)
  echo "client $i: ctx none $ctx_ok/$ROUNDS, in tx $ctx_tx_ok/$ROUNDS, own rows only $rows_ok/$ROUNDS, refused $refused/$ROUNDS"
  if [ "$ctx_ok" != "$ROUNDS" ] || [ "$ctx_tx_ok" != "$ROUNDS" ] || [ "$rows_ok" != "$ROUNDS" ] || [ "$refused" != "$ROUNDS" ]; then
    failures=$((failures + 1))
    grep -vE '^(ctx none|ctx-in-tx none|rows 0 '"$i"')$' "$out" | sort | uniq -c | head -20
  fi
done

# A temporary table made under a context stays in the server session, for the next client of the pool: refused
# unless ON COMMIT DROP. Afterwards no server session holds either table (pg_class lists every session's).
cat > "$BOUNCER_DIR/temp.sql" <<'SQL'
BEGIN;
SELECT tenancy.set_tenant('00000000-0000-0000-0000-000000000001');
CREATE TEMP TABLE leak AS SELECT * FROM notes;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant('00000000-0000-0000-0000-000000000001');
SELECT * INTO TEMP leak FROM notes;
COMMIT;
BEGIN;
SELECT tenancy.set_tenant('00000000-0000-0000-0000-000000000001');
CREATE TEMP TABLE dropped ON COMMIT DROP AS SELECT * FROM notes;
SELECT 'kept ' || count(*) FROM dropped;
COMMIT;
SQL
as_pg psql -X -q -At -h 127.0.0.1 -p "$BOUNCER_PORT" -U regress_pool_app -d app -f "$BOUNCER_DIR/temp.sql" \
  > "$BOUNCER_DIR/temp.out" 2>&1 || true
refused_temp=$(grep -c 'unless it is ON COMMIT DROP' "$BOUNCER_DIR/temp.out" || true)
kept=$(grep -c '^kept 1$' "$BOUNCER_DIR/temp.out" || true)
left=$(cluster_psql -d app -At -c "SELECT count(*) FROM pg_class WHERE relpersistence = 't' AND relname IN ('leak', 'dropped')")
echo "temporary tables under a context: refused $refused_temp/2, ON COMMIT DROP works $kept/1, left in sessions $left"
if [ "$refused_temp" != 2 ] || [ "$kept" != 1 ] || [ "$left" != 0 ]; then
  cat "$BOUNCER_DIR/temp.out"; failures=$((failures + 1))
fi

# The server connections really were shared: pgbouncer opened at most two for all clients.
servers=$(cluster_psql -d app -At -c "SELECT count(*) FROM pg_stat_activity WHERE usename = 'regress_pool_app'")
echo "server connections of the pool: $servers"
[ "$servers" -le 2 ] || { echo "expected at most 2 pooled server connections"; failures=$((failures + 1)); }

[ "$failures" = 0 ] && echo "no context crossed clients" || { echo "context leaked between clients"; exit 1; }
