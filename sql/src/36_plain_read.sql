-- sql/src/36_plain_read.sql
-- The check the superuser-run SQL makes before it reads an application table (import, quota recounts): planning a
-- read folds the constant calls of index, partition key, CHECK and statistics expressions in the planner's own
-- identity, so none may call code of a role that is not a superuser (extension/pg/plain_read.cpp).
CREATE FUNCTION tenancy._require_plain_read(tbl regclass) RETURNS void
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_require_plain_read';
COMMENT ON FUNCTION tenancy._require_plain_read(regclass) IS
  'internal: 42501 unless reading the table with superuser rights runs no code of a non-superuser';
REVOKE ALL ON FUNCTION tenancy._require_plain_read(regclass) FROM PUBLIC;
