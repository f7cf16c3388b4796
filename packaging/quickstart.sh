#!/usr/bin/env bash
# packaging/quickstart.sh
# The README's first command: on a fresh Debian 12 machine, as root, installs what is needed, builds, installs,
# starts a local PostgreSQL 15 with tenancy created in database "app", starts tenancyd on loopback and nginx in front
# of it (packaging/nginx/tenancyd.conf, the site the Debian package ships), prints the nginx URL and the admin token.
# Safe to re-run: it reuses the cluster, key and token it made before and restarts tenancyd and nginx.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=${TENANCY_STATE_DIR:-/var/lib/tenancy-dev}
PGPORT=${TENANCY_PGPORT:-5433}
HTTP_PORT=${TENANCY_HTTP_PORT:-8080}          # nginx: the URL users are given
DAEMON_PORT=${TENANCY_DAEMON_PORT:-8081}      # tenancyd, on 127.0.0.1 only
# The private nginx's directory: outside $STATE (mode 0750, postgres), which its worker processes cannot enter.
NGINX_DIR=${TENANCY_NGINX_DIR:-$STATE-nginx}
PG_BIN=/usr/lib/postgresql/15/bin

if [ "$(id -u)" != 0 ]; then
  echo "run as root (it installs packages and runs PostgreSQL as the postgres user)" >&2
  exit 1
fi

echo "== installing packages"
bash packaging/install-deps.sh
echo "== building"
make -j"$(nproc)" >/tmp/tenancy-quickstart-build.log 2>&1 || { tail -40 /tmp/tenancy-quickstart-build.log; exit 1; }
make install >>/tmp/tenancy-quickstart-build.log 2>&1 || { tail -40 /tmp/tenancy-quickstart-build.log; exit 1; }

mkdir -p "$STATE"
chown postgres: "$STATE"
chmod 750 "$STATE"
as_pg() { runuser -u postgres -- "$@"; }

# Master key: 64 hex characters, readable only by the server's OS user (the extension refuses anything looser).
if [ ! -f "$STATE/master.key" ]; then
  openssl rand -hex 32 > "$STATE/master.key"
fi
chown postgres: "$STATE/master.key"
chmod 600 "$STATE/master.key"

if [ ! -f "$STATE/pgdata/PG_VERSION" ]; then
  echo "== creating the cluster in $STATE/pgdata (port $PGPORT)"
  as_pg "$PG_BIN/initdb" -D "$STATE/pgdata" -U postgres --auth-local=peer --auth-host=scram-sha-256 -E UTF8 \
    >/dev/null
  cat >> "$STATE/pgdata/postgresql.conf" <<CONF
port = $PGPORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '/var/run/postgresql'
shared_preload_libraries = 'tenancy'
tenancy.master_key_file = '$STATE/master.key'
timezone = 'UTC'
CONF
fi
mkdir -p /var/run/postgresql && chown postgres: /var/run/postgresql
if ! as_pg "$PG_BIN/pg_ctl" -D "$STATE/pgdata" status >/dev/null 2>&1; then
  as_pg "$PG_BIN/pg_ctl" -D "$STATE/pgdata" -l "$STATE/postgresql.log" -w start >/dev/null
fi
psql_pg() { as_pg psql -X -q -v ON_ERROR_STOP=1 -h /var/run/postgresql -p "$PGPORT" "$@"; }

# The daemon's database role: a member of tenancy_admin, never a superuser.
[ -f "$STATE/db-password" ] || openssl rand -hex 16 > "$STATE/db-password"
chmod 600 "$STATE/db-password"
DB_PASSWORD=$(cat "$STATE/db-password")
psql_pg -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'app'" | grep -q 1 \
  || psql_pg -d postgres -c "CREATE DATABASE app"
psql_pg -d app -c "CREATE EXTENSION IF NOT EXISTS tenancy"
psql_pg -d app -v pw="$DB_PASSWORD" <<'SQL'
SELECT NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tenancy') AS need_role \gset
\if :need_role
  CREATE ROLE tenancy LOGIN;
\endif
ALTER ROLE tenancy PASSWORD :'pw';
GRANT tenancy_admin TO tenancy;
SQL

# Admin token: shown here; only its SHA-256 goes into the config.
[ -f "$STATE/admin-token" ] || openssl rand -hex 24 > "$STATE/admin-token"
chmod 600 "$STATE/admin-token"
ADMIN_TOKEN=$(cat "$STATE/admin-token")
TOKEN_SHA=$(printf '%s' "$ADMIN_TOKEN" | openssl dgst -sha256 -r | cut -d' ' -f1)
cat > "$STATE/tenancyd.yaml" <<YAML
listen: {host: 127.0.0.1, port: $DAEMON_PORT}
database: {conninfo: "host=127.0.0.1 port=$PGPORT dbname=app user=tenancy password=$DB_PASSWORD", pool_size: 8}
auth: {admin_token_sha256: "$TOKEN_SHA"}
log: {level: info}
YAML
chmod 600 "$STATE/tenancyd.yaml"
/usr/local/bin/tenancyd --check-config "$STATE/tenancyd.yaml" >/dev/null

if [ -f "$STATE/tenancyd.pid" ] && kill -0 "$(cat "$STATE/tenancyd.pid")" 2>/dev/null; then
  kill "$(cat "$STATE/tenancyd.pid")"
  for _ in $(seq 1 50); do kill -0 "$(cat "$STATE/tenancyd.pid")" 2>/dev/null || break; sleep 0.1; done
fi
nohup /usr/local/bin/tenancyd --config "$STATE/tenancyd.yaml" >>"$STATE/tenancyd.log" 2>&1 &
echo $! > "$STATE/tenancyd.pid"
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$DAEMON_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$DAEMON_PORT/readyz" >/dev/null || { tail -20 "$STATE/tenancyd.log"; exit 1; }

# nginx in front, as the package's site does it: a private instance (the machine's own nginx, if any, is left alone).
echo "== nginx on 127.0.0.1:$HTTP_PORT -> tenancyd on 127.0.0.1:$DAEMON_PORT"
bash packaging/nginx/standalone.sh "$NGINX_DIR" "127.0.0.1:$HTTP_PORT" "127.0.0.1:$DAEMON_PORT" www-data
nginx_cmd=(nginx -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR")
"${nginx_cmd[@]}" -t -q
if [ -f "$NGINX_DIR/nginx.pid" ] && kill -0 "$(cat "$NGINX_DIR/nginx.pid")" 2>/dev/null; then
  "${nginx_cmd[@]}" -s reload
  sleep 0.5
else
  "${nginx_cmd[@]}"
fi
for _ in $(seq 1 50); do
  curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$HTTP_PORT/readyz" >/dev/null || { tail -20 "$NGINX_DIR/logs/error.log"; exit 1; }

cat <<INFO

tenancy is running.
  PostgreSQL:  sudo -u postgres psql -h /var/run/postgresql -p $PGPORT app     (extension tenancy created)
  API URL:     http://127.0.0.1:$HTTP_PORT/api/v1   (nginx; logs: $NGINX_DIR/logs)
  tenancyd:    127.0.0.1:$DAEMON_PORT, loopback only, behind nginx   (log: $STATE/tenancyd.log)
  admin token: $ADMIN_TOKEN

Try:
  curl -X POST "http://127.0.0.1:$HTTP_PORT/api/v1/admin/tenants" \\
    -H "Authorization: Bearer $ADMIN_TOKEN" -H "Content-Type: application/json" \\
    -d '{"organization_name": "Acme Corporation", "slug": "acme-corp", "plan": "enterprise", "data_residency": "us"}'
INFO
