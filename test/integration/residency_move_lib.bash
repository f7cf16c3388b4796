# test/integration/residency_move_lib.bash
# Two region clusters ready for live moves, and the move protocol of sql/src/88_move.sql driven through psql
# (sourced by residency_move.sh and bench/residency/move.sh; the runner only picks up *.sh).
source "$TENANCY_ROOT/test/lib/common.sh"
source "$TENANCY_ROOT/test/lib/checks.sh"

# start_regions: an EU cluster (source) and a US cluster (target, its own master key), wal_level = logical, the same
# application schema on both. Sets EU_PORT, US_PORT, EU_DIR, US_DIR.
start_regions() {
  local logical=("wal_level = logical" "max_replication_slots = 10" "max_wal_senders = 10"
                 "max_logical_replication_workers = 6" "max_sync_workers_per_subscription = 3")
  start_cluster eu "${logical[@]}" "tenancy.region = 'eu'" || return 1
  EU_PORT=$CLUSTER_PORT; EU_DIR=$CLUSTER_DIR
  openssl rand -hex 32 > "$TENANCY_TMP/us-master.key"
  chmod 600 "$TENANCY_TMP/us-master.key"
  [ "$(id -u)" = 0 ] && chown postgres: "$TENANCY_TMP/us-master.key"
  start_cluster us "${logical[@]}" "tenancy.region = 'us'" "tenancy.master_key_file = '$TENANCY_TMP/us-master.key'" \
    || return 1
  US_PORT=$CLUSTER_PORT; US_DIR=$CLUSTER_DIR
  local schema="
CREATE EXTENSION tenancy;
CREATE TABLE projects (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), tenant_id uuid NOT NULL, name text NOT NULL,
                       secret text);
CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, tenant_id uuid NOT NULL, n bigint NOT NULL,
                    payload text);
CREATE INDEX ON items (tenant_id);
CREATE TABLE events (tenant_id uuid NOT NULL, seq bigint NOT NULL, body text, PRIMARY KEY (tenant_id, seq))
  PARTITION BY HASH (tenant_id);
CREATE TABLE events_p0 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE events_p1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1);
SELECT tenancy.enable_isolation(t) FROM unnest(ARRAY['projects', 'items', 'events']::regclass[]) t;
"
  for port in "$EU_PORT" "$US_PORT"; do
    PGPORT_OVERRIDE=$port cluster_psql -d postgres -c "CREATE DATABASE app" || return 1
    PGPORT_OVERRIDE=$port cluster_psql -d app -c "$schema" >/dev/null || return 1
  done
  # The region registry of each cluster (superuser-only): the connection a move into it subscribes with.
  register_region "$US_PORT" eu "host=127.0.0.1 port=$EU_PORT dbname=app user=postgres application_name=move" || return 1
  register_region "$EU_PORT" us "host=127.0.0.1 port=$US_PORT dbname=app user=postgres application_name=move"
}

# register_region PORT REGION CONNINFO: as the superuser of the cluster at PORT, the connection string a move from
# REGION into it subscribes with (tenancy.region_connections; docs/residency.md 4.1, "What the DBA configures").
register_region() {
  PGPORT_OVERRIDE=$1 cluster_psql -d app -v region="$2" -v conninfo="$3" >/dev/null <<'SQL'
INSERT INTO tenancy.region_connections (region, conninfo) VALUES (:'region', :'conninfo')
ON CONFLICT (region) DO UPDATE SET conninfo = EXCLUDED.conninfo, updated_at = now();
SQL
}

# grant_daemon_role: tenancyd's role on both clusters. tenancy_admin everywhere; on a source the subscription of a
# move connects with it too, so it also needs REPLICATION, BYPASSRLS and SELECT on the replicated tables
# (docs/residency.md 4.1, "What the DBA configures"). The US cluster's item ids start far above the EU's (regions
# need disjoint integer key ranges). daemon_conninfo PORT: its connection string to a cluster.
grant_daemon_role() {
  local role="CREATE ROLE tenancyd LOGIN PASSWORD 'tenancyd-pw' IN ROLE tenancy_admin REPLICATION BYPASSRLS;
              GRANT SELECT ON projects, items, events, tenancy.usage_history, tenancy.move_markers TO tenancyd;"
  eu_psql -c "$role" >/dev/null || return 1
  us_psql -c "$role
              ALTER TABLE items ALTER COLUMN id RESTART WITH 1000000000000;" >/dev/null || return 1
  # The subscriptions connect as the daemon's role (not a superuser), registered by the clusters' superuser.
  register_region "$US_PORT" eu "$(daemon_conninfo "$EU_PORT")" || return 1
  register_region "$EU_PORT" us "$(daemon_conninfo "$US_PORT")"
}
daemon_conninfo() { echo "host=127.0.0.1 port=$1 dbname=app user=tenancyd password=tenancyd-pw"; }

eu_psql() { PGPORT_OVERRIDE=$EU_PORT cluster_psql -d app "$@"; }
us_psql() { PGPORT_OVERRIDE=$US_PORT cluster_psql -d app "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# Persistent psql sessions (FIFOs), so the steps of a move, and the freeze above all, pay no process start-up:
# open_session NAME PORT, sq NAME SQL (prints the rows; non-zero and the error on stderr when it fails),
# close_session NAME.
open_session() {
  local f="$TENANCY_TMP/session.$1"
  rm -f "$f.in" "$f.out"; mkfifo "$f.in" "$f.out"
  as_pg psql -X -q -At -h 127.0.0.1 -p "$2" -U postgres -d app <"$f.in" >"$f.out" 2>&1 &
  eval "exec {SESSION_IN_$1}>\"$f.in\" {SESSION_OUT_$1}<\"$f.out\""
  sq "$1" "SET client_min_messages = warning" >/dev/null
}
sq() {
  local in_fd out_fd line out="" err
  eval "in_fd=\$SESSION_IN_$1 out_fd=\$SESSION_OUT_$1"
  printf '%s;\n\\echo __END__ :ERROR\n' "$2" >&"$in_fd"
  while IFS= read -r line <&"$out_fd"; do
    [[ $line == "__END__ "* ]] && { err=${line#__END__ }; break; }
    out+="$line"$'\n'
  done
  if [ "$err" = true ]; then printf '%s' "$out" >&2; return 1; fi
  printf '%s' "${out%$'\n'}"
}
close_session() {
  local in_fd out_fd
  eval "in_fd=\$SESSION_IN_$1 out_fd=\$SESSION_OUT_$1"
  printf '\\q\n' >&"$in_fd"
  eval "exec {SESSION_IN_$1}>&- {SESSION_OUT_$1}<&-"
}

# move_tenant TENANT [hook [pre_freeze_hook]]: the whole protocol from EU to US, as an orchestrator with one admin
# session per region runs it (move_steps alone leaves the sessions open; MOVE_STOP_AFTER=freeze or switch stops it
# there, as an orchestrator that died at that point would). hook (a shell function name) runs after the switch, before the source is cleaned (the
# test writes to the old region there); pre_freeze_hook once the copy is ready. Sets MOVE_FREEZE_MS, MOVE_TOTAL_MS,
# MOVE_COPY_MS, MOVE_SUBID. Returns non-zero at the first failed step, leaving the state for rollback_move.
move_tenant() {
  local tenant=$1 hook=${2:-} pre_freeze_hook=${3:-} status=0
  open_session src "$EU_PORT"; open_session dst "$US_PORT"
  move_steps "$tenant" "$hook" "$pre_freeze_hook" || status=1
  close_session src; close_session dst
  return $status
}
move_steps() {
  local tenant=$1 hook=$2 pre_freeze_hook=$3 t0 t_copy t_freeze t_frozen t_caught_up t_switched tag prep progress
  local epoch key handover
  tag="m$(openssl rand -hex 8)"  # dollar-quote tag for documents passed between the sessions
  t0=$(now_ms)
  prep=$(sq src "SELECT tenancy.move_source_prepare('$tenant', 'us')") || return 1
  sq src "SELECT tenancy.move_source_create_slot('$tenant')" >/dev/null || return 1
  sq dst "SELECT tenancy.move_target_prepare(\$$tag\$$prep\$$tag\$::jsonb -> 'tenant',
                                            \$$tag\$$prep\$$tag\$::jsonb -> 'tables', 'us')" >/dev/null || return 1
  MOVE_SUBID=$(sq dst "SELECT tenancy.move_target_subscribe('$tenant')") || return 1
  # Initial copy, then streaming: wait for every table to be ready.
  for _ in $(seq 1 1200); do
    progress=$(sq dst "SELECT tenancy.move_target_progress('$tenant')") || return 1
    [ "$(jq -r .all_ready <<<"$progress")" = true ] && break
    [ "$(jq -r .subscription_enabled <<<"$progress")" = false ] && { echo "subscription disabled: $progress"; return 1; }
    sleep 0.1
  done
  [ "$(jq -r .all_ready <<<"$progress")" = true ] || { echo "copy did not finish: $progress"; return 1; }
  t_copy=$(now_ms)
  echo "copied: $(jq -c '[.tables[] | {table, rows}]' <<<"$progress")"
  [ -n "$pre_freeze_hook" ] && "$pre_freeze_hook" "$tenant"
  key=$(sq dst "SELECT tenancy.move_target_transport_key('$tenant')") || return 1
  local public_key nonce
  public_key=$(jq -r .public_key <<<"$key"); nonce=$(jq -r .nonce <<<"$key")

  # The write freeze: from here until the switch the tenant's writes are refused (55006) in both regions.
  t_freeze=$(now_ms)
  epoch=$(sq src "SELECT tenancy.move_source_freeze('$tenant')") || return 1
  [ "${MOVE_STOP_AFTER:-}" = freeze ] && return 0
  t_frozen=$(now_ms)
  until [ "$(sq dst "SELECT tenancy.move_target_caught_up('$tenant', $epoch)")" = t ]; do
    [ $(( $(now_ms) - t_frozen )) -gt 60000 ] && { echo "no catch-up within 60 s"; return 1; }
    sleep 0.005
  done
  t_caught_up=$(now_ms)
  handover=$(sq src "SELECT tenancy.move_source_handover('$tenant', decode('$public_key', 'hex'))") \
    || return 1
  sq dst "SELECT tenancy.move_target_switch('$tenant', $epoch, \$$tag\$$handover\$$tag\$::jsonb,
                                           '$nonce')" >/dev/null || return 1
  t_switched=$(now_ms)
  echo us > "$TENANCY_TMP/directory.$tenant"
  MOVE_FREEZE_MS=$(( $(now_ms) - t_freeze ))
  [ "${MOVE_STOP_AFTER:-}" = switch ] && return 0
  [ -n "$hook" ] && "$hook" "$tenant"
  sq dst "SELECT tenancy.move_target_finish('$tenant')" >/dev/null || return 1
  sq src "SELECT tenancy.move_source_finish('$tenant', 'switched', $MOVE_SUBID)" >/dev/null || return 1
  MOVE_COPY_MS=$((t_copy - t0))
  MOVE_TOTAL_MS=$(( $(now_ms) - t0 ))
  echo "move of $tenant: copy ${MOVE_COPY_MS} ms, write freeze ${MOVE_FREEZE_MS} ms (freeze $((t_frozen - t_freeze))," \
       "catch-up $((t_caught_up - t_frozen)), handover + switch $((t_switched - t_caught_up))), total ${MOVE_TOTAL_MS} ms"
}

# rollback_move TENANT: the source forgets the move (writes allowed again); the target's leftovers are removed
# when it answers (retried for up to 60 s).
rollback_move() {
  local tenant=$1
  eu_psql -At -c "SELECT tenancy.move_source_finish('$tenant', 'rolled_back', ${MOVE_SUBID:-NULL})" >/dev/null || return 1
  echo eu > "$TENANCY_TMP/directory.$tenant"
}
