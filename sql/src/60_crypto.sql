-- sql/src/60_crypto.sql
-- Tenant-key encryption: wrapped data keys, master key fingerprint, encrypt/decrypt, rotation, rewrap, shredding.

-- One row per data key version of a tenant, stored only wrapped (AES-256-GCM) by the master key, which never enters
-- the database. A destroyed version keeps its row with wrapped_key NULL (crypto-shredding): versions are never
-- reused and decrypt can say why it fails. No app role can read this table.
CREATE TABLE tenancy.tenant_keys (
  tenant_id uuid NOT NULL,
  version integer NOT NULL CHECK (version >= 1),
  wrapped_key bytea CHECK (pg_catalog.octet_length(wrapped_key) = 61),
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
  destroyed_at timestamptz,
  PRIMARY KEY (tenant_id, version),
  CONSTRAINT tenant_keys_destroyed_has_no_key CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);
COMMENT ON TABLE tenancy.tenant_keys IS
  'wrapped per-tenant data keys by version; a destroyed version keeps its row without the key';
-- pg_dump must keep the keys, or a restore could never decrypt anything.
SELECT pg_catalog.pg_extension_config_dump('tenancy.tenant_keys', '');

-- HMAC-SHA-256 of a fixed label under the master key, stored with the first data key: a wrong master key is then
-- refused before it wraps anything. It reveals nothing about the key.
CREATE TABLE tenancy.master_key_fingerprint (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  fingerprint bytea NOT NULL CHECK (pg_catalog.octet_length(fingerprint) = 32),
  created_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE tenancy.master_key_fingerprint IS 'fingerprint of the master key that wraps tenancy.tenant_keys';
SELECT pg_catalog.pg_extension_config_dump('tenancy.master_key_fingerprint', '');

-- Every change to the keys table invalidates its relcache entry, which flushes the unwrapped-key cache of every
-- backend when the change commits (rotation, destruction, rewrap, even a superuser's direct DML).
CREATE FUNCTION tenancy._tenant_keys_changed() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_tenant_keys_changed';
COMMENT ON FUNCTION tenancy._tenant_keys_changed() IS 'internal: flushes every backend''s tenant key cache';
CREATE TRIGGER tenant_keys_changed AFTER INSERT OR UPDATE OR DELETE ON tenancy.tenant_keys
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._tenant_keys_changed();
CREATE TRIGGER tenant_keys_truncated AFTER TRUNCATE ON tenancy.tenant_keys
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._tenant_keys_changed();

-- An app role may use the keys of its context tenant's descendants while some table is isolated with
-- include_descendants (SPEC.md "Encryption"). Each backend caches whether one is; every change to
-- tenancy.isolation_config invalidates its relcache entry, which makes every backend read it again.
CREATE FUNCTION tenancy._crypto_scope_changed() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_crypto_scope_changed';
COMMENT ON FUNCTION tenancy._crypto_scope_changed() IS
  'internal: makes every backend re-read whether descendants'' keys are usable (include_descendants tables)';
CREATE TRIGGER crypto_scope_changed AFTER INSERT OR UPDATE OR DELETE ON tenancy.isolation_config
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._crypto_scope_changed();
CREATE TRIGGER crypto_scope_truncated AFTER TRUNCATE ON tenancy.isolation_config
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._crypto_scope_changed();

-- A new tenant gets key version 1 and tenants.encryption_key_id = '<tenant uuid>:v1' when the master key is
-- available; otherwise its first encrypt creates it. Rows that already name a key (pg_restore) are left alone.
CREATE FUNCTION tenancy._tenant_key_on_insert() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_tenant_key_on_insert';
COMMENT ON FUNCTION tenancy._tenant_key_on_insert() IS 'internal: creates the first data key of a new tenant';
CREATE TRIGGER tenants_create_key BEFORE INSERT ON tenancy.tenants
  FOR EACH ROW EXECUTE FUNCTION tenancy._tenant_key_on_insert();

-- Deleting a tenant row destroys its keys, however the row was deleted.
CREATE FUNCTION tenancy._tenant_keys_on_delete() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_tenant_keys_on_delete';
COMMENT ON FUNCTION tenancy._tenant_keys_on_delete() IS 'internal: crypto-shreds the keys of a deleted tenant';
CREATE TRIGGER tenants_destroy_keys AFTER DELETE ON tenancy.tenants
  FOR EACH ROW EXECUTE FUNCTION tenancy._tenant_keys_on_delete();

-- encrypt/decrypt: volatile (a fresh random nonce each call), parallel safe (keys are read, not written, once the
-- tenant has one). The one-argument forms use the tenant context.
CREATE FUNCTION tenancy.encrypt(tenant_id uuid, plaintext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_encrypt';
CREATE FUNCTION tenancy.encrypt(plaintext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_encrypt';
CREATE FUNCTION tenancy.decrypt(tenant_id uuid, ciphertext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_decrypt';
CREATE FUNCTION tenancy.decrypt(ciphertext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_decrypt';
CREATE FUNCTION tenancy.encrypt_bytea(tenant_id uuid, plaintext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_encrypt_bytea';
CREATE FUNCTION tenancy.encrypt_bytea(plaintext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_encrypt_bytea';
CREATE FUNCTION tenancy.decrypt_bytea(tenant_id uuid, ciphertext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_decrypt_bytea';
CREATE FUNCTION tenancy.decrypt_bytea(ciphertext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_decrypt_bytea';
COMMENT ON FUNCTION tenancy.encrypt(uuid, text) IS
  'AES-256-GCM under the tenant''s current data key; base64 of version byte, key version, nonce, ciphertext, tag';
COMMENT ON FUNCTION tenancy.encrypt(text) IS 'encrypt for the tenant of the current context (TN004 without one)';
COMMENT ON FUNCTION tenancy.decrypt(uuid, text) IS
  'decrypts a tenancy.encrypt value of that tenant; TN006 when altered, of another tenant, or its key is unknown';
COMMENT ON FUNCTION tenancy.decrypt(text) IS 'decrypt for the tenant of the current context (TN004 without one)';
COMMENT ON FUNCTION tenancy.encrypt_bytea(uuid, bytea) IS 'encrypt for bytea: the binary envelope, no base64';
COMMENT ON FUNCTION tenancy.encrypt_bytea(bytea) IS 'encrypt_bytea for the tenant of the current context';
COMMENT ON FUNCTION tenancy.decrypt_bytea(uuid, bytea) IS 'decrypts an encrypt_bytea value of that tenant';
COMMENT ON FUNCTION tenancy.decrypt_bytea(bytea) IS 'decrypt_bytea for the tenant of the current context';

CREATE FUNCTION tenancy.reencrypt(tenant_id uuid, ciphertext text) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_reencrypt';
COMMENT ON FUNCTION tenancy.reencrypt(uuid, text) IS 'the value re-encrypted under the tenant''s current key version';
CREATE FUNCTION tenancy.reencrypt_bytea(tenant_id uuid, ciphertext bytea) RETURNS bytea
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_reencrypt_bytea';
COMMENT ON FUNCTION tenancy.reencrypt_bytea(uuid, bytea) IS 'reencrypt for encrypt_bytea values';

CREATE FUNCTION tenancy.ciphertext_key_version(ciphertext text) RETURNS integer
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_ciphertext_key_version';
COMMENT ON FUNCTION tenancy.ciphertext_key_version(text) IS 'key version named by a tenancy.encrypt value';
CREATE FUNCTION tenancy.ciphertext_key_version(ciphertext bytea) RETURNS integer
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_ciphertext_key_version_bytea';
COMMENT ON FUNCTION tenancy.ciphertext_key_version(bytea) IS 'key version named by a tenancy.encrypt_bytea value';
CREATE FUNCTION tenancy.current_key_version(tenant_id uuid) RETURNS integer
LANGUAGE c STABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_current_key_version';
COMMENT ON FUNCTION tenancy.current_key_version(uuid) IS 'the tenant''s current key version; NULL when it has none';

CREATE FUNCTION tenancy.rotate_tenant_key(tenant_id uuid) RETURNS integer
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_rotate_tenant_key';
COMMENT ON FUNCTION tenancy.rotate_tenant_key(uuid) IS
  'creates the next data key version of a tenant for new values; older versions still decrypt';
CREATE FUNCTION tenancy.rewrap_keys() RETURNS integer
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_rewrap_keys';
COMMENT ON FUNCTION tenancy.rewrap_keys() IS
  'rewraps every data key from tenancy.previous_master_key_file''s key to the current master key';
CREATE FUNCTION tenancy._destroy_tenant_keys(tenant_id uuid) RETURNS integer
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_destroy_tenant_keys';
COMMENT ON FUNCTION tenancy._destroy_tenant_keys(uuid) IS
  'internal: crypto-shredding; destroys every key version of a tenant (delete_tenant(id, erase => true))';

-- Re-encrypts up to batch_size values of a text or bytea column that are not under their tenant's current key,
-- and returns how many it did: call it until it returns 0, each call in its own transaction so locks stay short.
-- Runs with the caller's rights (it must be able to see and update the rows).
CREATE FUNCTION tenancy.reencrypt_column(tbl regclass, column_name name, tenant_column name DEFAULT 'tenant_id',
                                         batch_size integer DEFAULT 1000) RETURNS bigint
LANGUAGE plpgsql VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  col_type regtype;
  tenant_type regtype;
  fn text;
  done bigint;
BEGIN
  IF batch_size < 1 THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005', MESSAGE = 'batch_size must be at least 1';
  END IF;
  SELECT a.atttypid::regtype INTO col_type FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attname OPERATOR(pg_catalog.=) column_name
     AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
  SELECT a.atttypid::regtype INTO tenant_type FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) tbl AND a.attname OPERATOR(pg_catalog.=) tenant_column
     AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped;
  IF col_type IS NULL OR col_type NOT IN ('text'::regtype, 'bytea'::regtype) THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005',
      MESSAGE = format('column "%s" of %s must exist and be of type text or bytea', column_name, tbl);
  END IF;
  IF tenant_type IS DISTINCT FROM 'uuid'::regtype THEN
    RAISE EXCEPTION USING ERRCODE = 'TN005',
      MESSAGE = format('column "%s" of %s must exist and be of type uuid', tenant_column, tbl);
  END IF;
  fn := CASE WHEN col_type OPERATOR(pg_catalog.=) 'text'::regtype THEN 'tenancy.reencrypt' ELSE 'tenancy.reencrypt_bytea' END;
  -- tableoid with ctid: ctid alone is not unique across the partitions of a partitioned table.
  EXECUTE format(
    'UPDATE %1$s AS t SET %2$I = %4$s(t.%3$I, t.%2$I) '
    'WHERE (t.tableoid, t.ctid) IN (SELECT s.tableoid, s.ctid FROM %1$s AS s '
    'WHERE s.%2$I IS NOT NULL AND tenancy.ciphertext_key_version(s.%2$I) OPERATOR(pg_catalog.<) '
    'tenancy.current_key_version(s.%3$I) LIMIT %5$s FOR UPDATE SKIP LOCKED)',
    tbl, column_name, tenant_column, fn, batch_size);
  GET DIAGNOSTICS done = ROW_COUNT;
  RETURN done;
END
$$;
COMMENT ON FUNCTION tenancy.reencrypt_column(regclass, name, name, integer) IS
  're-encrypts one batch of a column under current key versions; call until it returns 0';

CREATE FUNCTION tenancy.fernet_decrypt(token text, key text) RETURNS text
LANGUAGE c IMMUTABLE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_fernet_decrypt';
COMMENT ON FUNCTION tenancy.fernet_decrypt(text, text) IS
  'migration helper: plaintext of a Fernet token (or of base64 of one, as the brief stored it)';
CREATE FUNCTION tenancy.fernet_decrypt(token text, key text, ttl_seconds integer) RETURNS text
LANGUAGE c VOLATILE STRICT PARALLEL SAFE AS 'MODULE_PATHNAME', 'tenancy_fernet_decrypt';
COMMENT ON FUNCTION tenancy.fernet_decrypt(text, text, integer) IS
  'fernet_decrypt refusing tokens older than ttl_seconds (or over 60 seconds in the future)';

REVOKE ALL ON tenancy.tenant_keys, tenancy.master_key_fingerprint FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy._tenant_keys_changed(), tenancy._tenant_key_on_insert(),
  tenancy._tenant_keys_on_delete(), tenancy._crypto_scope_changed() FROM PUBLIC;
REVOKE ALL ON FUNCTION tenancy.encrypt(uuid, text), tenancy.encrypt(text), tenancy.decrypt(uuid, text),
  tenancy.decrypt(text), tenancy.encrypt_bytea(uuid, bytea), tenancy.encrypt_bytea(bytea),
  tenancy.decrypt_bytea(uuid, bytea), tenancy.decrypt_bytea(bytea), tenancy.reencrypt(uuid, text),
  tenancy.reencrypt_bytea(uuid, bytea), tenancy.ciphertext_key_version(text), tenancy.ciphertext_key_version(bytea),
  tenancy.current_key_version(uuid), tenancy.rotate_tenant_key(uuid), tenancy.rewrap_keys(),
  tenancy._destroy_tenant_keys(uuid), tenancy.reencrypt_column(regclass, name, name, integer),
  tenancy.fernet_decrypt(text, text), tenancy.fernet_decrypt(text, text, integer) FROM PUBLIC;
-- SPEC.md "Roles and grants": apps encrypt and decrypt for their context tenant (checked inside); the rest is admin.
GRANT EXECUTE ON FUNCTION tenancy.encrypt(uuid, text), tenancy.encrypt(text), tenancy.decrypt(uuid, text),
  tenancy.decrypt(text), tenancy.encrypt_bytea(uuid, bytea), tenancy.encrypt_bytea(bytea),
  tenancy.decrypt_bytea(uuid, bytea), tenancy.decrypt_bytea(bytea) TO tenancy_admin, tenancy_app;
GRANT EXECUTE ON FUNCTION tenancy.reencrypt(uuid, text), tenancy.reencrypt_bytea(uuid, bytea),
  tenancy.ciphertext_key_version(text), tenancy.ciphertext_key_version(bytea), tenancy.current_key_version(uuid),
  tenancy.rotate_tenant_key(uuid), tenancy.rewrap_keys(), tenancy._destroy_tenant_keys(uuid),
  tenancy.reencrypt_column(regclass, name, name, integer), tenancy.fernet_decrypt(text, text),
  tenancy.fernet_decrypt(text, text, integer) TO tenancy_admin;
