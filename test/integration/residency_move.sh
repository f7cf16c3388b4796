#!/usr/bin/env bash
# test/integration/residency_move.sh
# Live move of a 100,000-row tenant from the EU cluster to the US cluster while applications keep writing: nothing
# acknowledged is lost, the old region accepts nothing after the switch and keeps nothing of the tenant, keys are
# re-wrapped under the US master key; a move whose target dies half way rolls back and the tenant keeps working.
set -uo pipefail
source "$TENANCY_ROOT/test/integration/residency_move_lib.bash"

sqlstate_of() { # sqlstate_of PSQL_FN SQL: the SQLSTATE of the error the statement raises, or "none"
  local out
  out=$("$1" -At -v VERBOSITY=sqlstate -c "\\set VERBOSITY sqlstate" -c "$2" 2>&1) && { echo none; return; }
  sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\).*/\1/p' <<<"$out" | head -1
}

start_regions || exit 1
ROLES="CREATE ROLE app_writer LOGIN IN ROLE tenancy_app; CREATE ROLE ops LOGIN IN ROLE tenancy_admin;
       GRANT SELECT, INSERT, UPDATE, DELETE ON projects, items, events TO app_writer;"
eu_psql -c "$ROLES" >/dev/null || exit 1
us_psql -c "$ROLES" >/dev/null || exit 1

# EU: acme (moved), beta (move that fails), other (stays); US: a native tenant whose rows share the tables.
eu_psql >/dev/null <<'SQL' || exit 1
SELECT tenancy.create_tenant('Acme', 'acme', 'enterprise', 'eu', admin_email => 'owner@acme.io');
SELECT tenancy.create_tenant('Beta', 'beta', 'enterprise', 'eu', admin_email => 'owner@beta.io');
SELECT tenancy.create_tenant('Other', 'other', 'enterprise', 'eu', admin_email => 'owner@other.io');
UPDATE tenancy.tenants SET status = 'active';
SELECT tenancy.set_quota_override(id, 'projects', 777) FROM tenancy.tenants WHERE slug = 'acme';
INSERT INTO items (tenant_id, n, payload)
SELECT t.id, g, repeat('x', 40) FROM tenancy.tenants t, generate_series(1, 100000) g WHERE t.slug IN ('acme', 'beta');
INSERT INTO items (tenant_id, n, payload) SELECT id, g, 'other' FROM tenancy.tenants, generate_series(1, 1000) g
 WHERE slug = 'other';
INSERT INTO projects (tenant_id, name, secret)
SELECT t.id, t.slug || ' project ' || g, tenancy.encrypt(t.id, 'secret ' || g) FROM tenancy.tenants t,
       generate_series(1, 50) g;
INSERT INTO events SELECT t.id, g, 'event ' || g FROM tenancy.tenants t, generate_series(1, 500) g;
SELECT tenancy.consume(id, 'api_calls', 42) FROM tenancy.tenants WHERE slug = 'acme';
SQL
# Integer keys are per cluster: each region draws from its own range, or moved rows would collide.
us_psql -c "ALTER TABLE items ALTER COLUMN id RESTART WITH 1000000000000;
            SELECT tenancy.create_tenant('US Native', 'us-native', 'team', 'us');
            INSERT INTO items (tenant_id, n) SELECT id, g FROM tenancy.tenants, generate_series(1, 10) g" >/dev/null \
  || exit 1
id_of() { eu_psql -At -c "SELECT id FROM tenancy.tenants WHERE slug = '$1'"; }
ACME=$(id_of acme); BETA=$(id_of beta); OTHER=$(id_of other)
echo eu > "$TENANCY_TMP/directory.$ACME"
echo eu > "$TENANCY_TMP/directory.$BETA"
# A tenant token stored in the source, for the metering check after the switch.
eu_psql -c "SELECT tenancy.issue_token('$ACME', 'owner', sha256('tnt_move_check'))" >/dev/null || exit 1
ACME_WRAPPED_EU=$(eu_psql -At -c "SELECT encode(wrapped_key, 'hex') FROM tenancy.tenant_keys WHERE tenant_id = '$ACME'")

# Privileges: an application role can neither start nor steer a move.
expect_eq "app role cannot prepare a move" 42501 \
  "$(sqlstate_of eu_psql "SET ROLE app_writer; SELECT tenancy.move_source_prepare('$ACME', 'us')")"
expect_eq "app role cannot subscribe" 42501 \
  "$(sqlstate_of us_psql "SET ROLE app_writer; SELECT tenancy.move_target_subscribe('$ACME')")"
# The region registry is the superuser's: an admin can neither read nor change where a move subscribes.
expect_eq "admin cannot register a region connection" 42501 \
  "$(sqlstate_of us_psql "SET ROLE ops; UPDATE tenancy.region_connections SET conninfo = 'host=evil.example'")"
expect_eq "admin cannot read the region connections" 42501 \
  "$(sqlstate_of us_psql "SET ROLE ops; SELECT count(*) FROM tenancy.region_connections")"
expect_eq "a move to the tenant's own region is refused" TN005 \
  "$(sqlstate_of eu_psql "SELECT tenancy.move_source_prepare('$ACME', 'eu')")"
expect_eq "an unknown region is refused" TN005 \
  "$(sqlstate_of eu_psql "SELECT tenancy.move_source_prepare('$ACME', 'mars')")"

# The applications: each loop writes through whichever region the directory names and records what was
# acknowledged. Rows through SQL as an application role, users and metered calls as the admin / app.
STOP="$TENANCY_TMP/stop"
port_of() { [ "$(cat "$TENANCY_TMP/directory.$1")" = us ] && echo "$US_PORT" || echo "$EU_PORT"; }
writer_rows() {
  local k=0 port
  while [ ! -e "$STOP" ]; do
    k=$((k + 1)); port=$(port_of "$ACME")
    if PGPORT_OVERRIDE=$port cluster_psql -d app -At -c "SET ROLE app_writer; BEGIN;
         SELECT tenancy.set_tenant('$ACME'); INSERT INTO items (tenant_id, n, payload) VALUES ('$ACME', -$k, 'w');
         COMMIT;" >/dev/null 2>>"$TENANCY_TMP/rows.err"; then
      echo "$k $port" >> "$TENANCY_TMP/rows.acked"
    fi
  done
}
writer_users() {
  local k=0 port
  while [ ! -e "$STOP" ]; do
    k=$((k + 1)); port=$(port_of "$ACME")
    if PGPORT_OVERRIDE=$port cluster_psql -d app -At -c "SET ROLE ops;
         SELECT tenancy.add_user('$ACME', 'writer$k@acme.io')" >/dev/null 2>>"$TENANCY_TMP/users.err"; then
      echo "writer$k@acme.io" >> "$TENANCY_TMP/users.acked"
    fi
  done
}
writer_consume() {
  local k=0 port out
  while [ ! -e "$STOP" ]; do
    k=$((k + 1)); port=$(port_of "$ACME")
    out=$(PGPORT_OVERRIDE=$port cluster_psql -d app -At -c "SET ROLE app_writer; BEGIN;
         SELECT tenancy.set_tenant('$ACME');
         SELECT CASE WHEN tenancy.move_guard('$ACME') THEN tenancy.consume('$ACME', 'api_calls', 1) END; COMMIT;" \
         2>>"$TENANCY_TMP/consume.err") && [ "$(tail -1 <<<"$out")" = t ] && echo "$k" >> "$TENANCY_TMP/consume.acked"
  done
}
writer_other() { # a tenant that is not moving: every write must succeed throughout
  local k=0
  while [ ! -e "$STOP" ]; do
    k=$((k + 1))
    if eu_psql -At -c "SET ROLE app_writer; BEGIN; SELECT tenancy.set_tenant('$OTHER');
         INSERT INTO items (tenant_id, n) VALUES ('$OTHER', -$k); UPDATE items SET payload = 'u' WHERE n = $k;
         COMMIT;" >/dev/null 2>>"$TENANCY_TMP/other.err"; then
      echo "$k" >> "$TENANCY_TMP/other.acked"
    else
      echo "$k" >> "$TENANCY_TMP/other.failed"
    fi
  done
}
touch "$TENANCY_TMP"/{rows,users,consume,other}.acked
writer_rows & W1=$!
writer_users & W2=$!
writer_consume & W3=$!
writer_other & W4=$!
sleep 1

# During the copy the target refuses the application (the source still serves the tenant).
before_freeze() {
  expect_eq "the target refuses the tenant's writes before the switch" 55006 \
    "$(sqlstate_of us_psql "SET ROLE app_writer; BEGIN; SELECT tenancy.set_tenant('$ACME');
                            INSERT INTO items (tenant_id, n) VALUES ('$ACME', 0); COMMIT")"
  expect_eq "a second move of the same tenant is refused" 55006 \
    "$(sqlstate_of eu_psql "SELECT tenancy.move_source_prepare('$ACME', 'uk')")"
}
# After the switch and before the source is cleaned, the old region still refuses every write.
after_switch() {
  expect_eq "the old region refuses rows after the switch" 55006 \
    "$(sqlstate_of eu_psql "SET ROLE app_writer; BEGIN; SELECT tenancy.set_tenant('$ACME');
                            INSERT INTO items (tenant_id, n) VALUES ('$ACME', 0); COMMIT")"
  expect_eq "the old region refuses users after the switch" 55006 \
    "$(sqlstate_of eu_psql "SELECT tenancy.add_user('$ACME', 'late@acme.io')")"
  expect_eq "the old region refuses metering after the switch" 55006 \
    "$(sqlstate_of eu_psql "SELECT tenancy.move_guard('$ACME')")"
  expect_eq "the old region refuses tenancyd's metering of a tenant token after the switch" 55006 \
    "$(sqlstate_of eu_psql "SELECT * FROM tenancy.authorize_token(sha256('tnt_move_check'), '$ACME', 'usage.read')")"
}
if ! move_tenant "$ACME" after_switch before_freeze; then
  fail "move of acme failed"
  rollback_move "$ACME"; us_psql -At -c "SELECT tenancy.move_target_abort('$ACME')"
fi
sleep 1
touch "$STOP"
wait "$W1" "$W2" "$W3" "$W4"

# Nothing acknowledged is lost: every acknowledged write is in the US cluster, and nothing else was written.
acked_rows=$(wc -l < "$TENANCY_TMP/rows.acked")
acked_us_rows=$(awk -v p="$US_PORT" '$2 == p' "$TENANCY_TMP/rows.acked" | wc -l)
echo "rows acknowledged: $acked_rows ($acked_us_rows by the US region); refusals: $(grep -c ERROR "$TENANCY_TMP/rows.err")"
[ "$acked_us_rows" -gt 0 ] || fail "no write was acknowledged by the US region after the switch"
expect_eq "acknowledged rows all in the US cluster" "" \
  "$(us_psql -At -c "SELECT string_agg(k::text, ',') FROM unnest(string_to_array('$(cut -d' ' -f1 "$TENANCY_TMP/rows.acked" | tr '\n' ' ' | xargs | tr ' ' ',')', ',')::bigint[]) k
                     WHERE NOT EXISTS (SELECT 1 FROM items WHERE tenant_id = '$ACME' AND n = -k)")"
expect_eq "acme's rows in the US cluster (100,000 + acknowledged)" "$((100000 + acked_rows))" \
  "$(us_psql -At -c "SELECT count(*) FROM items WHERE tenant_id = '$ACME'")"
acked_users=$(wc -l < "$TENANCY_TMP/users.acked")
expect_eq "acme's users in the US cluster (owner + acknowledged)" "$((1 + acked_users))" \
  "$(us_psql -At -c "SELECT count(*) FROM tenancy.users WHERE tenant_id = '$ACME'")"
expect_eq "every acknowledged user is there" 0 \
  "$(us_psql -At -c "SELECT count(*) FROM unnest(string_to_array('$(tr '\n' ',' < "$TENANCY_TMP/users.acked")', ',')) e
                     WHERE e <> '' AND NOT EXISTS (SELECT 1 FROM tenancy.users u WHERE u.tenant_id = '$ACME' AND u.email = e)")"
acked_calls=$(wc -l < "$TENANCY_TMP/consume.acked")
expect_eq "api_calls usage exact (42 + acknowledged)" "$((42 + acked_calls))" \
  "$(us_psql -At -c "SELECT used FROM tenancy._quota_state('$ACME', 'api_calls')")"
expect_eq "users quota counter carried over" "$((1 + acked_users))" \
  "$(us_psql -At -c "SELECT used FROM tenancy._quota_state('$ACME', 'users')")"
expect_eq "quota override carried over" 777 \
  "$(us_psql -At -c "SELECT max_value FROM tenancy.quota_overrides WHERE tenant_id = '$ACME'")"
expect_eq "projects and events copied" "50 500" \
  "$(us_psql -At -c "SELECT (SELECT count(*) FROM projects WHERE tenant_id = '$ACME') || ' ' ||
                            (SELECT count(*) FROM events WHERE tenant_id = '$ACME')")"
expect_eq "the tenant resides in the US now" us \
  "$(us_psql -At -c "SELECT data_residency FROM tenancy.tenants WHERE id = '$ACME'")"

# Keys: re-wrapped under the US master key (another wrapped value), and the old ciphertexts decrypt there.
ACME_WRAPPED_US=$(us_psql -At -c "SELECT encode(wrapped_key, 'hex') FROM tenancy.tenant_keys WHERE tenant_id = '$ACME'")
[ -n "$ACME_WRAPPED_US" ] && [ "$ACME_WRAPPED_US" != "$ACME_WRAPPED_EU" ] && pass "data key re-wrapped" \
  || fail "data key not re-wrapped: eu=$ACME_WRAPPED_EU us=$ACME_WRAPPED_US"
expect_eq "encrypted values decrypt in the US cluster" 50 \
  "$(us_psql -At -c "SELECT count(*) FROM projects WHERE tenant_id = '$ACME' AND tenancy.decrypt('$ACME', secret) LIKE 'secret %'")"
expect_eq "new identity values do not collide" 1 \
  "$(us_psql -At -c "INSERT INTO items (tenant_id, n) VALUES ('$ACME', 0) RETURNING 1")"

# Nothing of the tenant is left in the old region (the audit log keeps its history, append-only by design).
expect_eq "nothing of acme left in the EU cluster" "0 0 0 0 0 0 0 0 0 0 0" "$(eu_psql -At -c "SELECT concat_ws(' ',
    (SELECT count(*) FROM tenancy.tenants WHERE id = '$ACME'), (SELECT count(*) FROM tenancy.users WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM items WHERE tenant_id = '$ACME'), (SELECT count(*) FROM projects WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM events WHERE tenant_id = '$ACME'), (SELECT count(*) FROM tenancy.tenant_keys WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM tenancy.quota_counters WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM tenancy.quota_overrides WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM tenancy.usage_history WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM tenancy.tenant_moves WHERE tenant_id = '$ACME'),
    (SELECT count(*) FROM tenancy.move_markers WHERE tenant_id = '$ACME'))")"
expect_eq "the old region no longer knows the tenant" TN001 \
  "$(sqlstate_of eu_psql "SET ROLE app_writer; SELECT tenancy.set_tenant('$ACME')")"
expect_eq "no publication, slot or subscription left" "0 0 0" \
  "$(eu_psql -At -c "SELECT (SELECT count(*) FROM pg_publication) || ' ' || (SELECT count(*) FROM pg_replication_slots)
                     || ' ' || (SELECT count(*) FROM pg_subscription)")"
expect_eq "no subscription left on the target" 0 "$(us_psql -At -c "SELECT count(*) FROM pg_subscription")"
expect_eq "guards removed, replica identities restored" "0 0 d" \
  "$(eu_psql -At -c "SELECT (SELECT count(*) FROM pg_trigger WHERE tgname = 'tenancy_move_guard') || ' ' ||
                            (SELECT count(*) FROM tenancy.move_replica_identities) || ' ' ||
                            (SELECT relreplident::text FROM pg_class WHERE oid = 'tenancy.users'::regclass)")"
expect_eq "other tenant: no write failed" 0 "$(cat "$TENANCY_TMP/other.failed" 2>/dev/null | wc -l)"
expect_eq "other tenant: every acknowledged row there" "$((1000 + $(wc -l < "$TENANCY_TMP/other.acked")))" \
  "$(eu_psql -At -c "SELECT count(*) FROM items WHERE tenant_id = '$OTHER'")"
expect_eq "audit chains intact" "0 0" \
  "$(eu_psql -At -c "SELECT count(*) FROM tenancy.verify_audit_log()") $(us_psql -At -c "SELECT count(*) FROM tenancy.verify_audit_log()")"
expect_eq "move audited in both regions" "tenant_move_frozen,tenant_move_handover,tenant_move_slot_created,tenant_move_started,tenant_moved_out tenant_move_started,tenant_move_subscribed,tenant_moved_in" \
  "$(eu_psql -At -c "SELECT string_agg(DISTINCT action, ',' ORDER BY action) FROM tenancy.audit_log
                     WHERE tenant_id = '$ACME' AND action LIKE 'tenant_move%'") $(us_psql -At -c "SELECT string_agg(DISTINCT action, ',' ORDER BY action) FROM tenancy.audit_log
                     WHERE tenant_id = '$ACME' AND action LIKE 'tenant_move%'")"
[ "$(us_psql -At -c "SELECT count(*) FROM tenancy.audit_log WHERE tenant_id = '$ACME' AND action = 'audit_event_imported'")" -gt 3 ] \
  && pass "source audit events re-appended in the US chain" || fail "audit events not carried over"

# 2. A move whose target dies half way: the source rolls back, the tenant keeps working there, and the target's
# leftovers are removed once it is back.
eu_psql -At -c "SELECT tenancy.move_source_prepare('$BETA', 'us')" > "$TENANCY_TMP/beta.prep" || fail "beta prepare"
eu_psql -At -c "SELECT tenancy.move_source_create_slot('$BETA')" >/dev/null || fail "beta slot"
us_psql -At -v prep="$(cat "$TENANCY_TMP/beta.prep")" >/dev/null <<'SQL' || fail "beta target prepare"
SELECT tenancy.move_target_prepare((:'prep'::jsonb) -> 'tenant', (:'prep'::jsonb) -> 'tables', 'us');
SQL
# A source that publishes more than the move's tables (here its superuser added one): the target refuses the
# subscription before anything is applied (its apply worker would write that table here as a superuser), and it is
# rolled back; so is a connection string that is not the registered one.
BETA_PUB=$(eu_psql -At -c "SELECT tenancy._move_name('$BETA')")
eu_psql -c "CREATE TABLE loot (id int PRIMARY KEY, secret text); ALTER PUBLICATION $BETA_PUB ADD TABLE loot" >/dev/null \
  || fail "could not widen the publication"
us_psql -c "CREATE TABLE loot (id int PRIMARY KEY, secret text)" >/dev/null || fail "could not create loot on the target"
expect_eq "subscription to a publication with a table outside the move refused" 42501 \
  "$(sqlstate_of us_psql "SELECT tenancy.move_target_subscribe('$BETA')")"
expect_eq "a connection string that is not the registered one refused" 42501 \
  "$(sqlstate_of us_psql "SELECT tenancy.move_target_subscribe('$BETA', 'host=127.0.0.1 port=$EU_PORT dbname=app user=postgres')")"
expect_eq "no subscription left by the refusals" 0 "$(us_psql -At -c "SELECT count(*) FROM pg_subscription")"
eu_psql -c "ALTER PUBLICATION $BETA_PUB DROP TABLE loot; DROP TABLE loot" >/dev/null || fail "could not drop loot"
us_psql -c "DROP TABLE loot" >/dev/null || fail "could not drop loot on the target"
# A partition of a moved table on the target with a trigger that fires in replica mode, whose function another role
# owns: the superuser's apply worker would run it; refused until it is gone.
us_psql >/dev/null <<'SQL' || fail "could not arm events_p0"
CREATE FUNCTION sneaky() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
ALTER FUNCTION sneaky() OWNER TO ops;
CREATE TRIGGER sneaky BEFORE INSERT ON events_p0 FOR EACH ROW EXECUTE FUNCTION sneaky();
ALTER TABLE events_p0 ENABLE ALWAYS TRIGGER sneaky;
SQL
SNEAKY_STATE=$(sqlstate_of us_psql "SELECT tenancy.move_target_subscribe('$BETA')")
us_psql -c "DROP TRIGGER sneaky ON events_p0; DROP FUNCTION sneaky()" >/dev/null || fail "could not disarm events_p0"
expect_eq "subscription whose apply would run another role's trigger as a superuser refused" 42501 "$SNEAKY_STATE"
MOVE_SUBID=$(us_psql -At -c "SELECT tenancy.move_target_subscribe('$BETA')")
sleep 0.5
echo "beta progress when the target is stopped: $(us_psql -At -c "SELECT tenancy.move_target_progress('$BETA') -> 'tables'")"
as_pg pg_ctl -D "$US_DIR/data" -m immediate stop >/dev/null || fail "could not stop the target"
us_psql -At -c "SELECT tenancy.move_target_progress('$BETA')" >/dev/null 2>&1 && fail "the target still answers"
rollback_move "$BETA" || fail "source rollback"
expect_eq "beta writes in the source after the rollback" "1 t" "$(eu_psql -At -c "SET ROLE app_writer; BEGIN;
   SELECT tenancy.set_tenant('$BETA'); INSERT INTO items (tenant_id, n) VALUES ('$BETA', -1) RETURNING 1;
   SELECT tenancy.consume('$BETA', 'api_calls', 1); COMMIT;" | grep -v '^$' | tail -2 | xargs)"
eu_psql -At -c "SELECT tenancy.add_user('$BETA', 'after-rollback@beta.io')" >/dev/null && pass "beta users after the rollback" \
  || fail "add_user after the rollback"
expect_eq "beta intact in the source" "100001 eu" \
  "$(eu_psql -At -c "SELECT (SELECT count(*) FROM items WHERE tenant_id = '$BETA') || ' ' ||
                            (SELECT data_residency FROM tenancy.tenants WHERE id = '$BETA')")"
expect_eq "source clean after the rollback" "0 0 0 0 d" \
  "$(eu_psql -At -c "SELECT concat_ws(' ', (SELECT count(*) FROM pg_publication), (SELECT count(*) FROM pg_replication_slots),
                            (SELECT count(*) FROM pg_trigger WHERE tgname = 'tenancy_move_guard'),
                            (SELECT count(*) FROM tenancy.tenant_moves),
                            (SELECT relreplident::text FROM pg_class WHERE oid = 'tenancy.users'::regclass))")"
as_pg pg_ctl -D "$US_DIR/data" -l "$US_DIR.log" -w -t 60 start >/dev/null || fail "could not restart the target"
expect_eq "target leftovers removed" t "$(us_psql -At -c "SELECT tenancy.move_target_abort('$BETA')")"
expect_eq "nothing of beta in the target" "0 0 0 0 0 0" "$(us_psql -At -c "SELECT concat_ws(' ',
    (SELECT count(*) FROM tenancy.tenants WHERE id = '$BETA'), (SELECT count(*) FROM tenancy.users WHERE tenant_id = '$BETA'),
    (SELECT count(*) FROM items WHERE tenant_id = '$BETA'), (SELECT count(*) FROM pg_subscription),
    (SELECT count(*) FROM tenancy.tenant_moves), (SELECT count(*) FROM pg_trigger WHERE tgname = 'tenancy_move_guard'))")"
expect_eq "abort is idempotent" f "$(us_psql -At -c "SELECT tenancy.move_target_abort('$BETA')")"
expect_eq "abort never touches a tenant living here" "false 1" \
  "$(us_psql -At -c "SELECT tenancy.move_target_abort('$ACME')::text || ' ' || (SELECT count(*) FROM tenancy.tenants WHERE id = '$ACME')")"

echo "summary: freeze ${MOVE_FREEZE_MS:-?} ms, total ${MOVE_TOTAL_MS:-?} ms; $FAILURES failure(s)"
[ "$FAILURES" = 0 ]
