-- sql/src/86_owner_writes.sql
-- The import's writes into application tables, as each table's owner inside the target tenant's context
-- (docs/isolation.md "Privilege model"): superusers only, granted to nobody.
CREATE FUNCTION tenancy._write_as_table_owner(tbl regclass, tenant uuid, stmt text) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE AS 'MODULE_PATHNAME', 'tenancy_write_as_table_owner';
COMMENT ON FUNCTION tenancy._write_as_table_owner(regclass, uuid, text) IS
  'internal: the import writes a tenant''s rows into an application table as the table''s owner (superusers only)';
REVOKE ALL ON FUNCTION tenancy._write_as_table_owner(regclass, uuid, text) FROM PUBLIC;
