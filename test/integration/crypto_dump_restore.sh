#!/usr/bin/env bash
# test/integration/crypto_dump_restore.sh
# pg_dump / pg_restore keeps encrypted data readable: wrapped keys of every version, the master key fingerprint and
# crypto-shredded tombstones come back; shredded values stay unreadable; a wrong master key is refused.
set -euo pipefail
source "$TENANCY_ROOT/test/lib/common.sh"

start_src_dst_clusters

src_psql -d postgres -c "CREATE DATABASE app"
src_psql -d app <<'SQL'
CREATE EXTENSION tenancy;
CREATE TABLE secrets (tenant_id uuid NOT NULL, label text NOT NULL, c text NOT NULL, b bytea NOT NULL);
DO $$
DECLARE
  a uuid := (tenancy.create_tenant('Alpha', 'alpha')).id;
  b uuid := (tenancy.create_tenant('Beta', 'beta')).id;
BEGIN
  INSERT INTO secrets VALUES (a, 'alpha v1', tenancy.encrypt(a, 'alpha v1'), tenancy.encrypt_bytea(a, '\x0001'));
  PERFORM tenancy.rotate_tenant_key(a);
  INSERT INTO secrets VALUES (a, 'alpha v2', tenancy.encrypt(a, 'alpha v2'), tenancy.encrypt_bytea(a, '\x0002'));
  INSERT INTO secrets VALUES (b, 'beta v1', tenancy.encrypt(b, 'beta v1'), tenancy.encrypt_bytea(b, '\x0003'));
  PERFORM tenancy._destroy_tenant_keys(b);
END $$;
-- a tenant created while no master key was configured has no key yet
SET tenancy.master_key_file = '';
SELECT (tenancy.create_tenant('Gamma', 'gamma')).slug;
SQL

KEYS="SELECT md5(string_agg(k::text, ',' ORDER BY tenant_id, version)) FROM tenancy.tenant_keys k
      UNION ALL SELECT md5(fingerprint::text) FROM tenancy.master_key_fingerprint
      UNION ALL SELECT md5(string_agg(coalesce(encryption_key_id, '-'), ',' ORDER BY slug)) FROM tenancy.tenants"
before=$(src_psql -d app -At -c "$KEYS")

dump_restore_db app "$TENANCY_TMP/crypto.dump"

after=$(dst_psql -d app -At -c "$KEYS")
[ "$before" = "$after" ] || { echo "restored keys differ"; diff <(echo "$before") <(echo "$after"); exit 1; }

dst_psql -d app -At -v ON_ERROR_STOP=0 <<'SQL' > "$TENANCY_TMP/after.out" 2>&1
\set VERBOSITY sqlstate
SELECT label, tenancy.decrypt(tenant_id, c), tenancy.decrypt_bytea(tenant_id, b) FROM secrets
 WHERE label LIKE 'alpha%' ORDER BY label;
SELECT tenancy.decrypt(tenant_id, c) FROM secrets WHERE label = 'beta v1';
SELECT tenancy.decrypt(id, tenancy.encrypt(id, 'gamma on demand')) FROM tenancy.tenants WHERE slug = 'gamma';
SELECT encryption_key_id LIKE '%:v1' FROM tenancy.tenants WHERE slug = 'gamma';
SELECT replace(current_setting('tenancy.master_key_file'), 'master.key', 'master2.key') AS other \gset
SET tenancy.master_key_file = :'other';
SELECT tenancy.decrypt(tenant_id, c) FROM secrets WHERE label = 'alpha v1';
SQL
cat "$TENANCY_TMP/after.out"
printf 'alpha v1|alpha v1|\\x0001\nalpha v2|alpha v2|\\x0002\ngamma on demand\nt\n' | diff - <(grep -v ERROR "$TENANCY_TMP/after.out")
[ "$(grep -c 'ERROR:  TN006' "$TENANCY_TMP/after.out")" = 1 ] || { echo "shredded value did not fail with TN006"; exit 1; }
[ "$(grep -c 'ERROR:  55000' "$TENANCY_TMP/after.out")" = 1 ] || { echo "wrong master key was not refused"; exit 1; }
echo "crypto dump/restore ok"
