-- sql/src/06_audit_anchor.sql
-- The outside anchor of the audit chain head (new in 0.3.0). The audit writer (extension/pg/audit_queue.cpp)
-- writes the head to the server log as "tenancy audit anchor: db=... seq=... hash=..." every
-- tenancy.audit_anchor_interval and when it goes idle; the server log is out of the database superuser's reach, so
-- a cut tail with a rewound head, which the chain alone cannot show, is found against an anchor.

-- verify_audit_log(), and a problem when the chain no longer holds the anchored event with the anchored hash.
CREATE FUNCTION tenancy.verify_audit_log(anchor_seq bigint, anchor_hash bytea, OUT id bigint, OUT problem text)
RETURNS SETOF record
LANGUAGE c VOLATILE PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'tenancy_verify_audit_log';
COMMENT ON FUNCTION tenancy.verify_audit_log(bigint, bytea) IS
  'verify_audit_log(), and whether the chain still holds the anchored event with the anchored hash';

-- The chain head now, also written to the server log as an anchor line (on demand, next to the writer's).
CREATE FUNCTION tenancy.audit_anchor(OUT seq bigint, OUT hash bytea) RETURNS record
LANGUAGE c VOLATILE STRICT PARALLEL RESTRICTED AS 'MODULE_PATHNAME', 'tenancy_audit_anchor';
COMMENT ON FUNCTION tenancy.audit_anchor() IS
  'id and hash of the newest audit event, also written to the server log as a "tenancy audit anchor:" line';

REVOKE ALL ON FUNCTION tenancy.verify_audit_log(bigint, bytea), tenancy.audit_anchor() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.verify_audit_log(bigint, bytea), tenancy.audit_anchor() TO tenancy_admin;
