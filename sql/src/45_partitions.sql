-- sql/src/45_partitions.sql
-- Hash partitioning by tenant: create, convert, repartition, isolate a tenant, and report (docs/partitioning.md).

-- Every function below is an admin function run by the table's owner (checked in C). They run as the caller
-- (SECURITY INVOKER): the DDL they issue needs nothing the owner does not already have. search_path is pinned so
-- every name they print into generated DDL is schema-qualified.

CREATE FUNCTION tenancy.create_partitions(tbl regclass, partitions integer = 16) RETURNS integer
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_create_partitions';
COMMENT ON FUNCTION tenancy.create_partitions(regclass, integer) IS
  'creates the hash partitions <table>_p000.. of a table declared PARTITION BY HASH (tenant_id); returns their number';

CREATE FUNCTION tenancy.partition_table(tbl regclass, partitions integer = 16) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_partition_table';
COMMENT ON FUNCTION tenancy.partition_table(regclass, integer) IS
  'turns a plain table into a hash-partitioned one under the same name, keeping rows, keys, indexes, foreign keys, '
  'triggers, policies, grants, owner and comments; returns the rows moved';

CREATE FUNCTION tenancy.repartition(tbl regclass, partitions integer) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_repartition';
COMMENT ON FUNCTION tenancy.repartition(regclass, integer) IS
  'changes the number of hash partitions to a multiple or divisor of the current one, one partition at a time; '
  'returns the rows moved';

CREATE FUNCTION tenancy.isolate_tenant(tbl regclass, tenant_id uuid) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_isolate_tenant';
COMMENT ON FUNCTION tenancy.isolate_tenant(regclass, uuid) IS
  'gives a tenant a leaf of its own: its hash partition becomes LIST sub-partitioned by tenant; returns the rows moved';

CREATE FUNCTION tenancy.unisolate_tenant(tbl regclass, tenant_id uuid) RETURNS bigint
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_unisolate_tenant';
COMMENT ON FUNCTION tenancy.unisolate_tenant(regclass, uuid) IS
  'undoes isolate_tenant: the tenant''s rows return to the shared hash partition; returns the rows moved';

CREATE FUNCTION tenancy.partitions(tbl regclass)
RETURNS TABLE (name regclass, rows bigint, bytes bigint, tenants bigint, isolated_tenant uuid)
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_partitions';
COMMENT ON FUNCTION tenancy.partitions(regclass) IS
  'every leaf partition of a table with its exact row count, total bytes, distinct tenants and isolated tenant';

CREATE FUNCTION tenancy.tenant_partition(tbl regclass, tenant_id uuid) RETURNS regclass
LANGUAGE c STABLE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_tenant_partition';
COMMENT ON FUNCTION tenancy.tenant_partition(regclass, uuid) IS
  'the leaf partition that holds a tenant''s rows';

REVOKE ALL ON FUNCTION tenancy.create_partitions(regclass, integer), tenancy.partition_table(regclass, integer),
  tenancy.repartition(regclass, integer), tenancy.isolate_tenant(regclass, uuid),
  tenancy.unisolate_tenant(regclass, uuid), tenancy.partitions(regclass), tenancy.tenant_partition(regclass, uuid)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.create_partitions(regclass, integer), tenancy.partition_table(regclass, integer),
  tenancy.repartition(regclass, integer), tenancy.isolate_tenant(regclass, uuid),
  tenancy.unisolate_tenant(regclass, uuid), tenancy.partitions(regclass), tenancy.tenant_partition(regclass, uuid)
  TO tenancy_admin;

CREATE FUNCTION tenancy.tenant_advice()
RETURNS TABLE (tenant_id uuid, metric text, value bigint, threshold bigint, action text, reason text)
LANGUAGE c VOLATILE STRICT PARALLEL UNSAFE SET search_path = pg_catalog, pg_temp
AS 'MODULE_PATHNAME', 'tenancy_tenant_advice';
COMMENT ON FUNCTION tenancy.tenant_advice() IS
  'tenants over the large-tenant thresholds (1,000 projects, 10,000 API calls an hour, 100 GB) with the action to take';
REVOKE ALL ON FUNCTION tenancy.tenant_advice() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tenancy.tenant_advice() TO tenancy_admin;
