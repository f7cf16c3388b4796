#!/usr/bin/env bash
# test/integration/upgrade.sh
# ALTER EXTENSION tenancy UPDATE from every released version gives exactly the schema of a fresh install and keeps every row.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

NEW=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$TENANCY_ROOT/tenancy.control")
start_cluster upgrade
cluster_psql -d postgres -c "CREATE DATABASE fresh"
cluster_psql -d fresh -c "CREATE EXTENSION tenancy"

check_upgrade_from() {
FROM=$1
UPG="upgraded_${FROM//./_}"
cluster_psql -d postgres -c "CREATE DATABASE $UPG"

# $FROM with data: tenants, users, an isolated table with rows, audit events.
cluster_psql -d "$UPG" <<SQL
CREATE EXTENSION tenancy VERSION '$FROM';
SELECT extversion FROM pg_extension WHERE extname = 'tenancy';
SELECT id AS acme FROM tenancy.create_tenant('Acme Corporation', 'acme-corp', plan => 'team',
                                              admin_email => 'admin@acme-corp.com') \gset
SELECT id AS globex FROM tenancy.create_tenant('Globex', 'globex', plan => 'enterprise') \gset
SELECT tenancy.add_user(:'acme', 'dev@acme-corp.com', 'John', 'Developer', 'developer') IS NOT NULL;
SELECT (tenancy.update_tenant(:'globex', '{"status": "active", "configuration": {"features": {"ai": true}}}')).status;
CREATE SCHEMA app;
CREATE TABLE app.projects (id bigserial, tenant_id uuid NOT NULL, name text, PRIMARY KEY (tenant_id, id));
SELECT tenancy.enable_isolation('app.projects');
INSERT INTO app.projects (tenant_id, name) SELECT :'acme', 'a' || g FROM generate_series(1, 50) g;
INSERT INTO app.projects (tenant_id, name) SELECT :'globex', 'g' || g FROM generate_series(1, 70) g;
UPDATE tenancy.plans SET max_projects = 77 WHERE plan = 'team';
SQL
snapshot() {
  cluster_psql -d "$UPG" -tA <<'SQL'
SELECT slug, status, plan, configuration::text FROM tenancy.tenants ORDER BY slug;
SELECT email, role, status FROM tenancy.users ORDER BY email;
SELECT tenant_id IS NOT NULL, count(*) FROM app.projects GROUP BY 1;
SELECT action, count(*) FROM tenancy.audit_log GROUP BY 1 ORDER BY 1;
SELECT plan, max_projects FROM tenancy.plans ORDER BY plan;
SQL
}
before=$(snapshot)

cluster_psql -d "$UPG" -c "ALTER EXTENSION tenancy UPDATE"
cluster_psql -d "$UPG" -tAc "SELECT extversion FROM pg_extension WHERE extname = 'tenancy'" | grep -qx "$NEW"

# The same schema: pg_dump of the extension's objects, normalised (comments and SET lines dropped, statements
# sorted, since an upgrade creates objects in another order than a fresh install).
# --binary-upgrade makes pg_dump print every member of the extension (a plain dump prints only CREATE EXTENSION);
# its OID-pinning calls differ between any two databases and are dropped.
dump_schema() {
  as_pg pg_dump -h 127.0.0.1 -p "$CLUSTER_PORT" -U postgres --schema-only --binary-upgrade --exclude-schema=app "$1" \
    | grep -vE '^(--|SET |SELECT pg_catalog.set_config|\\(un)?restrict |SELECT pg_catalog.binary_upgrade)' \
    | awk 'BEGIN{RS=";\n"} {gsub(/\n+/, " "); print $0 ";"}' \
    | grep -vE "WHERE oid = '[0-9]+'|pg_catalog.setval\(" | sort
}
# The application's schema app exists only in the upgraded database and is left out of the comparison.
if ! diff <(dump_schema fresh) <(dump_schema "$UPG") > "$TENANCY_TMP/schema.diff"; then
  echo "schema of the upgraded database differs from a fresh $NEW install:"
  cat "$TENANCY_TMP/schema.diff"
  exit 1
fi
# Extension membership: the same set of objects belongs to the extension.
members() {
  cluster_psql -d "$1" -tA -c "SELECT pg_describe_object(classid, objid, 0) FROM pg_depend
    WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
      AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'tenancy') ORDER BY 1"
}
diff <(members fresh) <(members "$UPG") || { echo "extension members differ"; exit 1; }

after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "data changed by the upgrade:"; diff <(echo "$before") <(echo "$after"); exit 1
fi
[ -z "$(cluster_psql -d "$UPG" -tAc "SELECT * FROM tenancy.verify_audit_log()")" ] || {
  echo "audit chain broken after upgrade"; exit 1; }
[ -z "$(cluster_psql -d "$UPG" -tAc "SELECT * FROM tenancy.verify_isolation()")" ] || {
  echo "isolation problems after upgrade"; cluster_psql -d "$UPG" -c "SELECT * FROM tenancy.verify_isolation()"; exit 1; }

# $NEW features work on the upgraded database, for tenants made under 0.1.0 too.
cluster_psql -d "$UPG" -tA <<'SQL' > "$TENANCY_TMP/features.out"
SELECT id AS acme FROM tenancy.get_tenant_by_slug('acme-corp') \gset
SELECT tenancy.consume(:'acme', 'api_calls', 5);
SELECT (tenancy.usage(:'acme') -> 'current_usage' ->> 'api_calls_this_month');
SELECT tenancy.decrypt(:'acme', tenancy.encrypt(:'acme', 'secret'));
SELECT count(*) FROM tenancy.isolated_tables;
SELECT (tenancy.create_tenant('Initech', 'initech')).slug;
SQL
cat "$TENANCY_TMP/features.out"
diff <(printf 't\n5\nsecret\n1\ninitech\n') "$TENANCY_TMP/features.out" || { echo "$NEW functions misbehave after upgrade"; exit 1; }

# Updating an up-to-date extension is a no-op.
cluster_psql -d "$UPG" -c "ALTER EXTENSION tenancy UPDATE" 2>&1 | grep -q "version \"$NEW\" of extension \"tenancy\" is already installed" \
  || { echo "ALTER EXTENSION tenancy UPDATE on $NEW did not say it is already installed"; exit 1; }
diff <(dump_schema fresh) <(dump_schema "$UPG") >/dev/null || { echo "second update changed the schema"; exit 1; }
echo "upgrade $FROM -> $NEW: schema identical to a fresh install, data kept"
}

for from in 0.1.0 0.2.0; do
  check_upgrade_from "$from"
done
