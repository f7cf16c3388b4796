#!/usr/bin/env bash
# bench/daemon/statement_cost.sh
# Server-side cost of the statements tenancyd sends for GET /tenants/{id}/usage, one client at a time (pgbench -M
# prepared -c1), next to the bare SELECT tenancy.usage(:id) of run.sh's baseline. Usage: statement_cost.sh [seconds, 5] [rounds, 3]
# Each round runs every statement back to back; the summary quotes the median mean latency per statement.
# Run `make` first. Installs tenancy into a private copy of the server, like run.sh.
set -uo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${2:-3}
source bench/lib/private_server.sh
source bench/lib/stats.sh
private_server tenancy-stmt
trap 'stop_all_clusters; rm -rf "$TENANCY_TMP"' EXIT

start_cluster stmt "shared_buffers = 128MB" || exit 1
cluster_psql -d postgres -c "CREATE DATABASE app" >/dev/null
cluster_psql -d app -c "CREATE EXTENSION tenancy" >/dev/null
cluster_psql -d app -c "CREATE ROLE tenancyd LOGIN PASSWORD 'pw' IN ROLE tenancy_admin" >/dev/null
T=$(cluster_psql -d app -tAc "SELECT id FROM tenancy.create_tenant('Bench', 'bench', 'enterprise')")
cluster_psql -d app -c "SELECT tenancy.update_tenant('$T', '{\"status\": \"active\"}')" >/dev/null
DIGEST=$(openssl rand -hex 32)
cluster_psql -d app -c "SELECT 1 FROM tenancy.issue_token('$T', 'viewer', '\\x$DIGEST')" >/dev/null

# name|statement: a round trip that does nothing, the baseline, then what tenancyd sends (daemon/handlers/usage.cpp, daemon/auth/authorizer.cpp).
STATEMENTS=(
  "select_1|SELECT 1;"
  "bare_usage|SELECT tenancy.usage(:id);"
  "admin_usage|SELECT tenancy.usage(:id::uuid);"
  "authorize_only|SELECT a.* FROM tenancy.authorize_token(:digest::bytea, :id::uuid, 'usage.read'::text) a;"
  "tenant_usage_no_caller|SELECT a.token_id, a.tenant_id, a.role, a.token_sha256, a.permitted, a.plan, a.within_quota, CASE WHEN a.within_quota THEN tenancy.usage(:id::uuid) END, a.tenant_active FROM tenancy.authorize_token(:digest::bytea, :id::uuid, 'usage.read'::text) a;"
  "tenant_usage|SELECT a.token_id, a.tenant_id, a.role, a.token_sha256, a.permitted, a.plan, a.within_quota, CASE WHEN a.within_quota THEN tenancy.usage(:id::uuid) END, a.tenant_active FROM tenancy.authorize_token(:digest::bytea, :id::uuid, 'usage.read'::text, '{\"remote_addr\": \"127.0.0.1\", \"request_id\": \"0123456789abcdef\"}'::jsonb) a;"
)
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg) (shared with other engineers' builds and tests)"
declare -A lat
for round in $(seq "$ROUNDS"); do
  line="round $round (load $(cut -d' ' -f1 /proc/loadavg)):"
  for s in "${STATEMENTS[@]}"; do
    name=${s%%|*}
    echo "${s#*|}" > "$TENANCY_TMP/$name.sql"
    PGPASSWORD=pw "$TENANCY_PGBIN/pgbench" -n -M prepared -c 1 -T "$SECS" -D "id=$T" -D "digest=\\x$DIGEST" \
      -f "$TENANCY_TMP/$name.sql" -h 127.0.0.1 -p "$CLUSTER_PORT" -U tenancyd app > "$TENANCY_TMP/$name.out" 2>&1
    ms=$(sed -n 's/^latency average = \([0-9.]*\) ms/\1/p' "$TENANCY_TMP/$name.out")
    [ -n "$ms" ] || { cat "$TENANCY_TMP/$name.out"; exit 1; }
    us=$(awk "BEGIN { printf \"%.0f\", $ms * 1000 }")
    lat[$name]="${lat[$name]:-} $us"
    line="$line $name ${us} us"
  done
  echo "$line"
done
summary="== median latency per statement, 1 client, $ROUNDS rounds of ${SECS}s:"
for s in "${STATEMENTS[@]}"; do
  name=${s%%|*}
  summary="$summary $name $(median ${lat[$name]}) us (${lat[$name]# });"
done
echo "$summary"
