-- crypto: per-tenant envelope encryption (AES-256-GCM data keys wrapped by the master key), SPEC.md "Encryption"
\set VERBOSITY terse
SET client_min_messages = notice;
SELECT pg_catalog.regexp_replace(current_setting('tenancy.master_key_file'), 'master\.key$', '') AS keydir \gset
SELECT coalesce(max(id), 0) AS audit_start FROM tenancy.audit_log \gset
SELECT id AS ta FROM tenancy.create_tenant('Acme Crypto', 'acme-crypto') \gset
SELECT id AS tb FROM tenancy.create_tenant('Beta Crypto', 'beta-crypto') \gset

-- a new tenant gets key version 1, stored only wrapped, named by encryption_key_id
SELECT encryption_key_id = :'ta' || ':v1' AS key_id_ok FROM tenancy.tenants WHERE id = :'ta';
SELECT version, octet_length(wrapped_key) AS wrapped_bytes, destroyed_at IS NULL AS live
  FROM tenancy.tenant_keys WHERE tenant_id = :'ta' ORDER BY version;
SELECT count(*) AS fingerprints FROM tenancy.master_key_fingerprint;

-- round trips, text and bytea, sizes 0, 1, 15, 16, 17, 1 KB, 1 MB
CREATE TEMP TABLE sizes AS SELECT unnest(ARRAY[0, 1, 15, 16, 17, 1024, 1048576]) AS n;
CREATE TEMP TABLE plain AS
  SELECT n, pg_catalog.left(repeat('héllo wörld ✓ ', n / 10 + 1), n) AS t,
         decode(repeat(md5(n::text), n / 16 + 1), 'hex') AS b FROM sizes;
UPDATE plain SET b = substring(b FROM 1 FOR n);
SELECT n, length(t) = n AS t_len, octet_length(b) = n AS b_len FROM plain ORDER BY n;
CREATE TEMP TABLE sealed AS
  SELECT n, tenancy.encrypt(:'ta', t) AS ct, tenancy.encrypt_bytea(:'ta', b) AS cb FROM plain;
SELECT s.n,
       tenancy.decrypt(:'ta', s.ct) = p.t AS text_ok,
       tenancy.decrypt_bytea(:'ta', s.cb) = p.b AS bytea_ok,
       octet_length(s.cb) = s.n + 33 AS bytea_overhead_33,
       length(s.ct) = 4 * ((octet_length(convert_to(p.t, 'UTF8')) + 33 + 2) / 3) AS base64_len,
       decode(s.ct, 'base64') = substring(decode(s.ct, 'base64') FROM 1) AS base64_decodes
  FROM sealed s JOIN plain p USING (n) ORDER BY s.n;

-- format: version byte 1, key version 1 (big-endian), then 12 bytes of nonce
SELECT get_byte(cb, 0) AS format, substring(cb FROM 2 FOR 4) AS key_version_bytes,
       tenancy.ciphertext_key_version(cb) AS kv_bytea, tenancy.ciphertext_key_version(ct) AS kv_text
  FROM sealed WHERE n = 16;

-- the same plaintext encrypts differently every time (random 96-bit nonces)
SELECT count(DISTINCT c) AS distinct_ciphertexts, count(DISTINCT substring(decode(c, 'base64') FROM 6 FOR 12)) AS distinct_nonces
  FROM (SELECT tenancy.encrypt(:'ta', 'same') AS c FROM generate_series(1, 1000)) s;

-- the context forms
BEGIN;
SELECT tenancy.set_tenant(:'ta');
SELECT tenancy.decrypt(tenancy.encrypt('from context')) AS ctx_text,
       tenancy.decrypt_bytea(tenancy.encrypt_bytea('\x00ff'::bytea)) = '\x00ff'::bytea AS ctx_bytea,
       tenancy.decrypt(:'ta', tenancy.encrypt('explicit after context')) AS mixed;
COMMIT;

-- tampering: every byte of header, nonce, body and tag, one bit at a time, fails with TN006
CREATE TEMP TABLE tamper AS SELECT tenancy.encrypt_bytea(:'ta', 'attack at dawn'::bytea) AS cb;
CREATE FUNCTION pg_temp.outcome(tenant uuid, c bytea) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM tenancy.decrypt_bytea(tenant, c);
  RETURN 'decrypted';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
CREATE FUNCTION pg_temp.outcome_text(tenant uuid, c text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  PERFORM tenancy.decrypt(tenant, c);
  RETURN 'decrypted';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE;
END $$;
SELECT CASE WHEN i < 5 THEN '1 header' WHEN i < 17 THEN '2 nonce' WHEN i < octet_length(cb) - 16 THEN '3 body'
            ELSE '4 tag' END AS region,
       count(*) AS bytes, string_agg(DISTINCT pg_temp.outcome(:'ta', set_byte(cb, i, get_byte(cb, i) # bit)), ',') AS outcomes
  FROM tamper, generate_series(0, octet_length(cb) - 1) i, unnest(ARRAY[1, 128]) bit
 GROUP BY 1 ORDER BY 1;
-- truncation at every length, and one extra byte
SELECT count(*) AS truncations, string_agg(DISTINCT pg_temp.outcome(:'ta', substring(cb FROM 1 FOR len)), ',') AS outcomes
  FROM tamper, generate_series(0, octet_length(cb) - 1) len;
SELECT pg_temp.outcome(:'ta', cb || '\x00'::bytea) AS extended FROM tamper;
-- text form: every base64 character replaced by another fails (also where base64 has unused bits)
SELECT count(*) AS altered_chars, string_agg(DISTINCT pg_temp.outcome_text(:'ta',
         overlay(c PLACING CASE WHEN substr(c, i, 1) = 'A' THEN 'B' ELSE 'A' END FROM i FOR 1)), ',') AS outcomes
  FROM (SELECT tenancy.encrypt(:'ta', 'abcd') AS c) s, generate_series(1, length(c)) i;
SELECT pg_temp.outcome_text(:'ta', c || 'A=') AS appended, pg_temp.outcome_text(:'ta', ' ' || c) AS leading_space,
       pg_temp.outcome_text(:'ta', left(c, -4)) AS cut_group
  FROM (SELECT tenancy.encrypt(:'ta', 'abcd') AS c) s;

-- a ciphertext of tenant A never decrypts as tenant B (nor the other way)
SELECT pg_temp.outcome(:'tb', cb) AS a_as_b FROM tamper;
SELECT pg_temp.outcome(:'ta', tenancy.encrypt_bytea(:'tb', 'of b'::bytea)) AS b_as_a;
-- relabelling the key version fails too, whether or not that version exists
SELECT tenancy.rotate_tenant_key(:'tb') AS tb_version;
SELECT pg_temp.outcome(:'tb', overlay(tenancy.encrypt_bytea(:'tb', 'v2 value'::bytea) PLACING '\x00000001'::bytea FROM 2)) AS relabelled_v2_as_v1;

-- invalid input:
\set VERBOSITY sqlstate
SELECT tenancy.decrypt(:'ta', 'not base64!');
SELECT tenancy.decrypt(:'ta', '');
SELECT tenancy.decrypt_bytea(:'ta', '\x01'::bytea);
SELECT tenancy.decrypt_bytea(:'ta', overlay(cb PLACING '\x02'::bytea FROM 1)) FROM tamper;
SELECT tenancy.decrypt_bytea(:'ta', overlay(cb PLACING '\x00000009'::bytea FROM 2)) FROM tamper;
SELECT tenancy.decrypt_bytea(:'ta', overlay(cb PLACING '\x00000000'::bytea FROM 2)) FROM tamper;
SELECT tenancy.ciphertext_key_version('AAAA');
SELECT tenancy.encrypt('no context');
SELECT tenancy.decrypt_bytea('\x00'::bytea);
SELECT tenancy.encrypt('00000000-0000-0000-0000-000000000001', 'no such tenant');
SELECT tenancy.rotate_tenant_key('00000000-0000-0000-0000-000000000001');
-- a bytea plaintext that is not valid text cannot come out of decrypt(text)
SELECT tenancy.decrypt(:'ta', encode(tenancy.encrypt_bytea(:'ta', '\x00c3'::bytea), 'base64'));
\set VERBOSITY terse
SELECT tenancy.decrypt(:'ta', 'not base64!');
SELECT tenancy.decrypt_bytea(:'ta', overlay(cb PLACING '\x00000009'::bytea FROM 2)) FROM tamper;
SELECT tenancy.encrypt('no context');

-- rotation: a new version for new values, old versions still decrypt, reencrypt upgrades a value
CREATE TEMP TABLE before_rotation AS SELECT tenancy.encrypt(:'ta', 'written under v1') AS c;
SELECT tenancy.rotate_tenant_key(:'ta') AS new_version;
SELECT encryption_key_id = :'ta' || ':v2' AS key_id_ok FROM tenancy.tenants WHERE id = :'ta';
SELECT tenancy.ciphertext_key_version(tenancy.encrypt(:'ta', 'new')) AS new_values_use,
       tenancy.decrypt(:'ta', c) AS old_value, tenancy.ciphertext_key_version(c) AS old_version,
       tenancy.ciphertext_key_version(tenancy.reencrypt(:'ta', c)) AS reencrypted_version,
       tenancy.decrypt(:'ta', tenancy.reencrypt(:'ta', c)) AS reencrypted_value,
       tenancy.current_key_version(:'ta') AS current
  FROM before_rotation;
SELECT tenancy.decrypt_bytea(:'ta', tenancy.reencrypt_bytea(:'ta', cb)) AS reencrypted_bytea FROM tamper;

-- batch re-encryption of a column, in batches until nothing is left
CREATE TABLE crypto_notes (id int PRIMARY KEY, tenant_id uuid NOT NULL, note text, blob bytea);
INSERT INTO crypto_notes SELECT i, CASE WHEN i % 2 = 0 THEN :'ta'::uuid ELSE :'tb'::uuid END,
       tenancy.encrypt(CASE WHEN i % 2 = 0 THEN :'ta'::uuid ELSE :'tb'::uuid END, 'note ' || i),
       tenancy.encrypt_bytea(CASE WHEN i % 2 = 0 THEN :'ta'::uuid ELSE :'tb'::uuid END, convert_to('blob ' || i, 'UTF8'))
  FROM generate_series(1, 25) i;
UPDATE crypto_notes SET note = NULL WHERE id = 25;
SELECT tenancy.rotate_tenant_key(:'ta') AS ta_v3, tenancy.rotate_tenant_key(:'tb') AS tb_v3;
SELECT tenancy.reencrypt_column('crypto_notes', 'note', batch_size => 10) AS batch1,
       tenancy.reencrypt_column('crypto_notes', 'note', batch_size => 10) AS batch2,
       tenancy.reencrypt_column('crypto_notes', 'note', batch_size => 10) AS batch3,
       tenancy.reencrypt_column('crypto_notes', 'note', batch_size => 10) AS batch4;
SELECT tenancy.reencrypt_column('crypto_notes', 'blob') AS bytea_batch;
SELECT tenancy.ciphertext_key_version(note) AS note_version, tenancy.ciphertext_key_version(blob) AS blob_version,
       count(*), bool_and(tenancy.decrypt(tenant_id, note) = 'note ' || id) AS notes_ok,
       bool_and(convert_from(tenancy.decrypt_bytea(tenant_id, blob), 'UTF8') = 'blob ' || id) AS blobs_ok
  FROM crypto_notes GROUP BY 1, 2 ORDER BY 1, 2;
\set VERBOSITY sqlstate
SELECT tenancy.reencrypt_column('crypto_notes', 'id');
SELECT tenancy.reencrypt_column('crypto_notes', 'note', 'id');
SELECT tenancy.reencrypt_column('crypto_notes', 'note', batch_size => 0);
\set VERBOSITY terse

-- master key: missing, malformed, group-readable, wrong, or from a command
CREATE TEMP TABLE mk_test AS SELECT tenancy.encrypt(:'ta', 'kept across settings') AS c;
SET tenancy.master_key_file = '';
-- a tenant created without a master key gets no key (a notice says so)
SELECT id AS tc FROM tenancy.create_tenant('Gamma Crypto', 'gamma-crypto') \gset
SELECT encryption_key_id IS NULL AS no_key_yet FROM tenancy.tenants WHERE id = :'tc';
SELECT tenancy.decrypt(:'ta', c) FROM mk_test;
SELECT tenancy.encrypt(:'tc', 'x');
SELECT tenancy.rotate_tenant_key(:'tc');
SET tenancy.master_key_command = 'exit 3';
SELECT tenancy.encrypt(:'tc', 'x');
SET tenancy.master_key_command = 'echo not-a-key';
SELECT tenancy.encrypt(:'tc', 'x');
SELECT format('cat %smaster.key', :'keydir') AS cmd \gset
SET tenancy.master_key_command = :'cmd';
SELECT tenancy.decrypt(:'ta', c) AS via_command FROM mk_test;
RESET tenancy.master_key_command;
\set VERBOSITY sqlstate
SELECT format('%snonexistent.key', :'keydir') AS f \gset
SET tenancy.master_key_file = :'f';
SELECT tenancy.encrypt(:'tc', 'x');
SELECT format('%smalformed.key', :'keydir') AS f \gset
COPY (SELECT 'this is not a key') TO :'f';
SET tenancy.master_key_file = :'f';
SELECT tenancy.encrypt(:'tc', 'x');
SELECT format('%sshared.key', :'keydir') AS f \gset
SELECT format('cp %1$smaster.key %2$s && chmod 640 %2$s', :'keydir', :'f') AS prog \gset
COPY (SELECT 1) TO PROGRAM :'prog';
SET tenancy.master_key_file = :'f';
SELECT tenancy.decrypt(:'ta', c) FROM mk_test;
SELECT format('%smaster2.key', :'keydir') AS f \gset
SET tenancy.master_key_file = :'f';
SELECT tenancy.decrypt(:'ta', c) FROM mk_test;
SELECT tenancy.encrypt(:'tc', 'x');
SELECT tenancy.rotate_tenant_key(:'ta');
\set VERBOSITY terse
SELECT tenancy.encrypt(:'tc', 'x');
RESET tenancy.master_key_file;
-- no key was created or used by any of the failures above
SELECT count(*) AS tc_keys FROM tenancy.tenant_keys WHERE tenant_id = :'tc';
SELECT max(version) AS ta_version FROM tenancy.tenant_keys WHERE tenant_id = :'ta';
-- a tenant without a key gets one on first use
SELECT tenancy.decrypt(:'tc', tenancy.encrypt(:'tc', 'on demand')) AS on_demand;
SELECT encryption_key_id = :'tc' || ':v1' AS key_id_ok FROM tenancy.tenants WHERE id = :'tc';

-- rewrap after a master key change: to master2.key and back
SELECT format('%smaster2.key', :'keydir') AS new_key, format('%smaster.key', :'keydir') AS old_key \gset
\set VERBOSITY sqlstate
SET tenancy.master_key_file = :'new_key';
SELECT tenancy.rewrap_keys();
\set VERBOSITY terse
SET tenancy.previous_master_key_file = :'new_key';
SELECT tenancy.rewrap_keys();
SET tenancy.previous_master_key_file = :'old_key';
SELECT tenancy.rewrap_keys() = (SELECT count(*) FROM tenancy.tenant_keys WHERE wrapped_key IS NOT NULL) AS rewrapped_all;
SELECT tenancy.rewrap_keys() AS again;
SELECT tenancy.decrypt(:'ta', c) AS after_rewrap FROM mk_test;
SELECT tenancy.decrypt(:'ta', c) AS v1_after_rewrap FROM before_rotation;
RESET tenancy.master_key_file;
\set VERBOSITY sqlstate
SELECT tenancy.decrypt(:'ta', c) FROM mk_test;
\set VERBOSITY terse
SET tenancy.master_key_file = :'old_key';
SET tenancy.previous_master_key_file = :'new_key';
SELECT tenancy.rewrap_keys() > 0 AS rewrapped_back;
RESET tenancy.previous_master_key_file;
RESET tenancy.master_key_file;
SELECT tenancy.decrypt(:'ta', c) AS back_on_master1 FROM mk_test;

-- app roles: only the context tenant, and no access to the key tables
CREATE ROLE regress_crypto_app;
GRANT tenancy_app TO regress_crypto_app;
SET ROLE regress_crypto_app;
\set VERBOSITY sqlstate
SELECT tenancy.encrypt(:'ta', 'no context');
BEGIN;
SELECT tenancy.set_tenant(:'ta');
SELECT tenancy.decrypt(:'ta', tenancy.encrypt(:'ta', 'own tenant')) AS own;
SELECT tenancy.decrypt(tenancy.encrypt('own tenant')) AS own_ctx;
SELECT tenancy.encrypt(:'tb', 'other tenant');
ROLLBACK;
BEGIN;
SELECT tenancy.set_tenant(:'ta');
SELECT tenancy.decrypt(:'tb', 'AQAAAAE=');
ROLLBACK;
SELECT count(*) FROM tenancy.tenant_keys;
SELECT count(*) FROM tenancy.master_key_fingerprint;
SELECT tenancy.rotate_tenant_key(:'ta');
SELECT tenancy.rewrap_keys();
SELECT tenancy._destroy_tenant_keys(:'ta');
SELECT tenancy.reencrypt(:'ta', c) FROM mk_test;
RESET ROLE;
\set VERBOSITY terse

-- crypto-shredding: destroyed keys never decrypt again
CREATE TEMP TABLE shred AS SELECT tenancy.encrypt(:'tb', 'doomed') AS c, tenancy.encrypt_bytea(:'tb', '\x01'::bytea) AS cb;
SELECT tenancy._destroy_tenant_keys(:'tb') AS destroyed;
SELECT encryption_key_id = :'tb' || ':destroyed' AS key_id_destroyed FROM tenancy.tenants WHERE id = :'tb';
SELECT version, wrapped_key IS NULL AS erased, destroyed_at IS NOT NULL AS stamped
  FROM tenancy.tenant_keys WHERE tenant_id = :'tb' ORDER BY version;
SELECT tenancy.decrypt(:'tb', c) FROM shred;
SELECT tenancy.decrypt_bytea(:'tb', cb) FROM shred;
SELECT tenancy.encrypt(:'tb', 'new value');
SELECT tenancy._destroy_tenant_keys(:'tb') AS destroyed_again;
-- a new key after shredding is a new version: old ciphertexts still fail
SELECT tenancy.rotate_tenant_key(:'tb') AS fresh_version;
SELECT tenancy.decrypt(:'tb', c) FROM shred;
-- erase: delete_tenant(erase => true) destroys the keys and removes their rows
CREATE TEMP TABLE shred_c AS SELECT tenancy.encrypt(:'tc', 'erased with tenant') AS c;
SELECT tenancy.delete_tenant(:'tc', erase => true);
SELECT count(*) AS tc_key_rows FROM tenancy.tenant_keys WHERE tenant_id = :'tc';
SELECT tenancy.decrypt(:'tc', c) FROM shred_c;

-- Fernet migration helper (vectors from the Fernet specification)
SELECT tenancy.fernet_decrypt('gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==',
                              'cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=') AS fernet;
-- as the brief stored it: base64 of the token
SELECT tenancy.fernet_decrypt(encode(convert_to('gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==', 'UTF8'), 'base64'),
                              'cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=') AS fernet_b64;
-- and moved under a tenant key
SELECT tenancy.decrypt(:'ta', tenancy.encrypt(:'ta', tenancy.fernet_decrypt(
  'gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==',
  'cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4='))) AS migrated;
\set VERBOSITY sqlstate
SELECT tenancy.fernet_decrypt('gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==',
                              'cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=', 60);
SELECT tenancy.fernet_decrypt('gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==',
                              'cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=');
SELECT tenancy.fernet_decrypt('gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==', 'short');
\set VERBOSITY terse

-- every key operation is audited
SELECT action, CASE tenant_id WHEN :'ta' THEN 'ta' WHEN :'tb' THEN 'tb' WHEN :'tc' THEN 'tc' END AS tenant,
       before, after - 'key_id' - 'rewrapped_keys' AS after, (after ->> 'rewrapped_keys')::int > 0 AS rewrapped_some,
       after ->> 'key_id' = tenant_id || ':v' || (after ->> 'key_version') AS key_id_ok
  FROM tenancy.audit_log WHERE action ~ 'key' AND id > :audit_start ORDER BY id;
SELECT count(*) AS broken_links FROM tenancy.verify_audit_log();

-- the key material never appears in settings
SELECT count(*) AS settings_with_key FROM pg_settings
 WHERE setting ~ (SELECT pg_read_file(current_setting('tenancy.master_key_file'))::text);

-- a key cache of one entry still gives every tenant its own key (eviction on every switch)
SET tenancy.key_cache_size = 1;
SELECT id AS td FROM tenancy.create_tenant('Delta Crypto', 'delta-crypto') \gset
SELECT bool_and(tenancy.decrypt(t, tenancy.encrypt(t, 'v' || i)) = 'v' || i) AS alternating_ok,
       bool_and(pg_temp.outcome_text(CASE WHEN t = :'ta' THEN :'td'::uuid ELSE :'ta'::uuid END,
                                     tenancy.encrypt(t, 'x')) = 'TN006') AS crossed_fail
  FROM (SELECT i, CASE WHEN i % 2 = 0 THEN :'ta'::uuid ELSE :'td'::uuid END AS t FROM generate_series(1, 40) i) s;
SELECT tenancy.decrypt(:'ta', c) AS v1_with_tiny_cache FROM before_rotation;
RESET tenancy.key_cache_size;

-- clean up
DROP TABLE crypto_notes;
DROP ROLE regress_crypto_app;
