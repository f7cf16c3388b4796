#!/usr/bin/env bash
# test/integration/dump_restore.sh
# pg_dump / pg_restore of a database with tenants (a child stored before its parent), users, edited plans, quota
# overrides and an audit log into a fresh cluster: every row comes back, the chain verifies and keeps growing.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

start_src_dst_clusters

src_psql -d postgres -c "CREATE DATABASE app"
src_psql -d app <<'SQL'
CREATE EXTENSION tenancy;
-- A DBA edits the plans and gives one tenant an override.
UPDATE tenancy.plans SET max_users = 3, price_usd_month = 55 WHERE plan = 'developer';
DO $$
DECLARE
  a tenancy.tenants := tenancy.create_tenant('Alpha', 'alpha', 'team', admin_email => 'owner@alpha.io');
  b tenancy.tenants := tenancy.create_tenant('Beta', 'beta', 'enterprise', 'eu', display_name => 'Beta EU');
  c tenancy.tenants := tenancy.create_tenant('Gamma', 'gamma', admin_email => 'g@gamma.io');
BEGIN
  -- beta becomes alpha's child, then alpha is rewritten: the child row now lies before its parent on disk.
  PERFORM tenancy.update_tenant(b.id, jsonb_build_object('parent_tenant_id', a.id));
  PERFORM tenancy.update_tenant(a.id, '{"status": "active", "configuration": {"branding": {"color": "red"}}}');
  PERFORM tenancy.add_user(a.id, 'dev@alpha.io', 'Dev', 'One', 'developer', false);
  PERFORM tenancy.set_user_role((SELECT id FROM tenancy.users WHERE email = 'dev@alpha.io'), 'admin');
  PERFORM tenancy.add_user(c.id, 'second@gamma.io');
  INSERT INTO tenancy.quota_overrides VALUES (c.id, 'projects', 42);
  PERFORM tenancy.delete_tenant(c.id);
END $$;
SQL

child_first=$(src_psql -d app -At -c "SELECT (SELECT ctid FROM tenancy.tenants WHERE slug = 'beta')
                                           < (SELECT ctid FROM tenancy.tenants WHERE slug = 'alpha')")
[ "$child_first" = t ] || { echo "setup did not store the child before its parent"; exit 1; }

# Everything the restore must bring back, as one fingerprint per table.
FINGERPRINT="
SELECT 'tenants', md5(string_agg(t::text, ',' ORDER BY t.id)) FROM tenancy.tenants t
UNION ALL SELECT 'users', md5(string_agg(u::text, ',' ORDER BY u.id)) FROM tenancy.users u
UNION ALL SELECT 'plans', md5(string_agg(p::text, ',' ORDER BY p.plan)) FROM tenancy.plans p
UNION ALL SELECT 'quota_overrides', md5(string_agg(q::text, ',' ORDER BY q.tenant_id, q.metric)) FROM tenancy.quota_overrides q
UNION ALL SELECT 'audit_log', md5(string_agg(a::text, ',' ORDER BY a.id)) FROM tenancy.audit_log a
UNION ALL SELECT 'audit_chain_head', md5(string_agg(h::text, ',')) FROM tenancy.audit_chain_head h
UNION ALL SELECT 'counts', (SELECT count(*) FROM tenancy.tenants) || '/' || (SELECT count(*) FROM tenancy.users) || '/'
                         || (SELECT count(*) FROM tenancy.audit_log)
ORDER BY 1"
before=$(src_psql -d app -At -c "$FINGERPRINT")
echo "source: $before"
problems=$(src_psql -d app -At -c "SELECT count(*) FROM tenancy.verify_audit_log()")
[ "$problems" = 0 ] || { echo "source audit log does not verify"; exit 1; }

dump_restore_db app "$TENANCY_TMP/app.dump"

after=$(dst_psql -d app -At -c "$FINGERPRINT")
echo "restored: $after"
[ "$before" = "$after" ] || { echo "restored rows differ from the source"; diff <(echo "$before") <(echo "$after"); exit 1; }

dst_psql -d app -At -c "SELECT * FROM tenancy.verify_audit_log()" > "$TENANCY_TMP/verify.out"
[ ! -s "$TENANCY_TMP/verify.out" ] || { echo "restored audit log does not verify:"; cat "$TENANCY_TMP/verify.out"; exit 1; }

# The restored registry works: the hierarchy, the edited plan, the roles and a chain that keeps growing.
dst_psql -d app -At <<'SQL' > "$TENANCY_TMP/after.out"
SELECT p.slug FROM tenancy.tenant_ancestors((SELECT id FROM tenancy.tenants WHERE slug = 'beta')) a
  JOIN tenancy.tenants p ON p.id = a;
SELECT tenancy.tenant_json((SELECT id FROM tenancy.tenants WHERE slug = 'gamma')) -> 'quotas' ->> 'max_users';
SELECT (tenancy.create_tenant('Delta', 'delta', admin_email => 'd@delta.io')).slug;
SELECT count(*) FROM tenancy.verify_audit_log();
SELECT pg_has_role('tenancy_admin', 'tenancy_admin', 'USAGE') AND has_function_privilege('tenancy_admin',
       'tenancy.create_tenant(text, text, text, text, uuid, text, text)', 'EXECUTE');
SQL
cat "$TENANCY_TMP/after.out"
printf 'alpha\n3\ndelta\n0\nt\n' | diff - "$TENANCY_TMP/after.out"
echo "dump/restore ok"
