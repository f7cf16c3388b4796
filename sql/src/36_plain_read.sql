-- sql/src/36_plain_read.sql
-- The check the superuser-run SQL makes before it reads an application table (import, quota recounts): planning a
-- read folds the constant calls of index, partition key, CHECK and statistics expressions in the planner's own
-- identity, so none may call code of a role that is not a superuser (extension/pg/plain_read.cpp).
CREATE FUNCTION tenancy._require_plain_read(tbl regclass, hold_off_ddl boolean DEFAULT true) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_require_plain_read';
COMMENT ON FUNCTION tenancy._require_plain_read(regclass, boolean) IS
  'internal: 42501 unless reading the table with superuser rights runs no code of a non-superuser; locks out DDL '
  'that could add such code until the transaction ends (ACCESS SHARE only with hold_off_ddl false)';
REVOKE ALL ON FUNCTION tenancy._require_plain_read(regclass, boolean) FROM PUBLIC;
