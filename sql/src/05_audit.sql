-- sql/src/05_audit.sql
-- The append-only, SHA-256 hash-chained audit log, its chain head, guard trigger, writer and verifier.

-- One row per event. Role names (not OIDs) and canonical jsonb are hashed, so the chain verifies after
-- pg_dump/pg_restore. Only the extension owner can write (through tenancy._audit / WriteAuditEvent in C).
CREATE TABLE tenancy.audit_log (
  id bigserial PRIMARY KEY,
  occurred_at timestamptz NOT NULL,
  session_user_name text NOT NULL,
  current_user_name text NOT NULL,
  context_tenant_id uuid,
  tenant_id uuid,
  action text NOT NULL,
  before jsonb,
  after jsonb,
  prev_hash bytea NOT NULL,
  hash bytea NOT NULL
);
CREATE INDEX audit_log_tenant_idx ON tenancy.audit_log (tenant_id, id);
COMMENT ON TABLE tenancy.audit_log IS 'append-only, hash-chained audit events; check with tenancy.verify_audit_log()';
COMMENT ON COLUMN tenancy.audit_log.session_user_name IS 'session_user at the call';
COMMENT ON COLUMN tenancy.audit_log.current_user_name IS 'current_user at the call (the calling role)';
COMMENT ON COLUMN tenancy.audit_log.context_tenant_id IS 'tenant context of the transaction, NULL without one';
COMMENT ON COLUMN tenancy.audit_log.tenant_id IS 'tenant the event is about';
COMMENT ON COLUMN tenancy.audit_log.hash IS 'SHA-256 of prev_hash and the canonical event';
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_log_id_seq', '');

-- The chain head, kept apart from the log so that removing the log's last events cannot also rewrite it. Empty
-- until the first event (so pg_restore's row never collides with a seeded one).
CREATE TABLE tenancy.audit_chain_head (
  singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  last_id bigint NOT NULL,
  last_hash bytea NOT NULL
);
COMMENT ON TABLE tenancy.audit_chain_head IS 'id and hash of the newest audit event; moved only by the extension';
SELECT pg_catalog.pg_extension_config_dump('tenancy.audit_chain_head', '');

CREATE FUNCTION tenancy._audit_guard() RETURNS trigger
LANGUAGE c AS 'MODULE_PATHNAME', 'tenancy_audit_guard';
COMMENT ON FUNCTION tenancy._audit_guard() IS 'internal: refuses UPDATE, DELETE and TRUNCATE of the audit tables';

-- ENABLE ALWAYS: the guard fires under session_replication_role = replica too.
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON tenancy.audit_log
  FOR EACH ROW EXECUTE FUNCTION tenancy._audit_guard();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON tenancy.audit_log
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._audit_guard();
CREATE TRIGGER audit_chain_head_guard BEFORE UPDATE OR DELETE ON tenancy.audit_chain_head
  FOR EACH ROW EXECUTE FUNCTION tenancy._audit_guard();
CREATE TRIGGER audit_chain_head_no_truncate BEFORE TRUNCATE ON tenancy.audit_chain_head
  FOR EACH STATEMENT EXECUTE FUNCTION tenancy._audit_guard();
ALTER TABLE tenancy.audit_log ENABLE ALWAYS TRIGGER audit_log_append_only;
ALTER TABLE tenancy.audit_log ENABLE ALWAYS TRIGGER audit_log_no_truncate;
ALTER TABLE tenancy.audit_chain_head ENABLE ALWAYS TRIGGER audit_chain_head_guard;
ALTER TABLE tenancy.audit_chain_head ENABLE ALWAYS TRIGGER audit_chain_head_no_truncate;

CREATE FUNCTION tenancy._audit(action text, tenant_id uuid, before jsonb, after jsonb) RETURNS void
LANGUAGE c VOLATILE PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_audit';
COMMENT ON FUNCTION tenancy._audit(text, uuid, jsonb, jsonb) IS
  'internal: appends an audit event (callers without tenancy_admin only about their context tenant)';

CREATE FUNCTION tenancy.verify_audit_log(OUT id bigint, OUT problem text) RETURNS SETOF record
LANGUAGE c VOLATILE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'tenancy_verify_audit_log';
COMMENT ON FUNCTION tenancy.verify_audit_log() IS
  'every altered, inserted or removed audit event; empty when the hash chain is intact';

REVOKE ALL ON tenancy.audit_log, tenancy.audit_chain_head FROM PUBLIC;
REVOKE ALL ON SEQUENCE tenancy.audit_log_id_seq FROM PUBLIC;
GRANT SELECT ON tenancy.audit_log, tenancy.audit_chain_head TO tenancy_admin;
REVOKE ALL ON FUNCTION tenancy._audit(text, uuid, jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy._audit(text, uuid, jsonb, jsonb) TO tenancy_admin, tenancy_app;
REVOKE ALL ON FUNCTION tenancy.verify_audit_log() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.verify_audit_log() TO tenancy_admin;
REVOKE ALL ON FUNCTION tenancy._audit_guard() FROM PUBLIC;
