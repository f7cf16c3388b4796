-- sql/src/89_region_connections.sql
-- The region registry of live moves: the connection string a move into this cluster subscribes with, per source
-- region. Superuser-only on purpose (issue #15): CREATE SUBSCRIPTION runs as a superuser (PostgreSQL 15), so the
-- server it connects to must be one a superuser chose, never an admin's argument.

-- Owned by the superuser that installs the extension, not by tenancy_owner (sql/src/98_ownership.sql keeps it so):
-- with no privilege granted to anyone, only a superuser can read or write it; a function running as tenancy_owner
-- cannot point a move at another server. The operator registers each region that may send tenants here, e.g.
--   INSERT INTO tenancy.region_connections (region, conninfo)
--   VALUES ('eu', 'host=pg-eu.internal dbname=app user=replicator sslmode=verify-full');
-- The role in the connection string needs REPLICATION, SELECT on the replicated tables and BYPASSRLS on the
-- source (docs/residency.md 4.1, "What the DBA configures"). Rows are dumped with the database (pg_dump).
CREATE TABLE tenancy.region_connections (
  region text PRIMARY KEY CHECK (region OPERATOR(pg_catalog.~) '^[a-z][a-z0-9_-]*$'),
  conninfo text NOT NULL CHECK (conninfo OPERATOR(pg_catalog.<>) ''),
  updated_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE tenancy.region_connections IS
  'superuser-only: the connection string a live move into this cluster subscribes with, by source region';
SELECT pg_catalog.pg_extension_config_dump('tenancy.region_connections', '');
REVOKE ALL ON tenancy.region_connections FROM PUBLIC;
