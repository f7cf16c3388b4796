#!/usr/bin/env bash
# bench/registry/add_user_cost.sh
# The cost of tenancy.add_user as a tenant grows, side by side with the same function counting the tenant's users on
# every call (the 0.1.0 check, kept here as the baseline public.add_user_counting). pgbench -M prepared -c1 runs
# each for SECS seconds per round, alternating, at 1,000 and then at USERS users in one enterprise tenant.
# Usage: bash bench/registry/add_user_cost.sh [seconds per run, 5] [rounds, 3] [users, 100000]. Run `make` first.
set -uo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-5}
ROUNDS=${2:-3}
USERS=${3:-100000}
source bench/lib/private_server.sh
source bench/lib/stats.sh
private_server tenancy-bench
trap 'stop_all_clusters; rm -rf "$TENANCY_TMP"' EXIT
start_cluster bench "shared_buffers = 256MB" || exit 1
cluster_psql -d postgres -c "CREATE DATABASE app" >/dev/null
cluster_psql -d app >/dev/null <<'SQL' || exit 1
CREATE EXTENSION tenancy;
CREATE SEQUENCE bench_email;
-- The baseline: add_user as 0.1.0 shipped it, counting the tenant's users under the tenant lock on every call.
CREATE FUNCTION public.add_user_counting(p_tenant uuid, p_email text) RETURNS tenancy.users
LANGUAGE plpgsql AS $$
DECLARE
  t tenancy.tenants;
  u tenancy.users;
  used bigint;
  max_users bigint;
BEGIN
  t := tenancy._lock_tenant_for_users(p_tenant);
  PERFORM tenancy._require_usable_tenant(t.id);
  IF EXISTS (SELECT 1 FROM tenancy.users x WHERE x.tenant_id = t.id AND lower(x.email) = lower(p_email)) THEN
    RAISE EXCEPTION USING ERRCODE = 'unique_violation', MESSAGE = 'duplicate';
  END IF;
  SELECT count(*) INTO used FROM tenancy.users x WHERE x.tenant_id = t.id AND x.status <> 'disabled';
  max_users := tenancy._effective_limit(t.id, 'users');
  IF used + 1 > max_users THEN
    RAISE EXCEPTION USING ERRCODE = 'TN003', MESSAGE = 'user quota exceeded';
  END IF;
  INSERT INTO tenancy.users (tenant_id, email, role, status) VALUES (t.id, lower(p_email), 'developer', 'active')
  RETURNING * INTO u;
  PERFORM tenancy._audit('user_added', u.tenant_id, NULL, to_jsonb(u));
  RETURN u;
END
$$;
SQL
T=$(cluster_psql -d app -tAc "SELECT id FROM tenancy.create_tenant('Big', 'big', 'enterprise')")
cluster_psql -d app -c "SELECT tenancy.update_tenant('$T', '{\"status\": \"active\"}')" >/dev/null
echo "SELECT tenancy.add_user(:t::uuid, 'n' || nextval('bench_email') || '@big.io', send_invitation => false);" \
  > "$TENANCY_TMP/ours.sql"
echo "SELECT public.add_user_counting(:t::uuid, 'c' || nextval('bench_email') || '@big.io');" > "$TENANCY_TMP/counting.sql"
run() { # run FILE -> mean latency in us
  as_pg pgbench -n -M prepared -c 1 -T "$SECS" -D "t=$T" -f "$1" -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres app \
    2>&1 | awk '/^latency average/ { printf "%.0f", $4 * 1000 }'
}
echo "== machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for target in 1000 "$USERS"; do
  have=$(cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.users WHERE tenant_id = '$T'")
  cluster_psql -d app -c "INSERT INTO tenancy.users (tenant_id, email, role, status)
    SELECT '$T', 'seed' || g || '@big.io', 'developer', 'active' FROM generate_series($have + 1, $target) g" >/dev/null
  cluster_psql -d app -c "VACUUM ANALYZE tenancy.users" >/dev/null
  ours=(); counting=()
  for round in $(seq "$ROUNDS"); do
    n=$(cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.users WHERE tenant_id = '$T'")
    ours+=("$(run "$TENANCY_TMP/ours.sql")"); counting+=("$(run "$TENANCY_TMP/counting.sql")")
    echo "round $round from $n users: add_user ${ours[-1]} us, counting baseline ${counting[-1]} us per call" \
      "(the tenant grows by each call: $(cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.users WHERE tenant_id = '$T'") after the round)"
  done
  echo "== from $target users: add_user $(median "${ours[@]}") us, counting $(median "${counting[@]}") us (medians of" \
    "$ROUNDS); baseline / ours = $(awk "BEGIN { printf \"%.1f\", $(median "${counting[@]}") / $(median "${ours[@]}") }")x"
done
echo "users in the tenant at the end: $(cluster_psql -d app -tAc "SELECT count(*) FROM tenancy.users WHERE tenant_id = '$T'")," \
  "users counter: $(cluster_psql -d app -tAc "SELECT used FROM tenancy._quota_state('$T', 'users')")"
