// extension/include/tenancy/pg/partition_ops.hpp
// Shared PG-regime helpers of the partitioning functions: table checks, partition layout, SPI, the staging rebuild.
#pragma once

extern "C" {
#include "postgres.h"
#include "nodes/pg_list.h"
}

namespace tenancy::pg::partition {

// A table the partition functions work on, resolved, checked and locked ACCESS EXCLUSIVE by OpenTable.
struct Table {
	Oid relid;
	Oid owner;
	char *schema;       // unquoted schema name
	char *name;         // unquoted table name
	char *qualified;    // quoted schema.table, safe to splice into SQL
	char *owner_quoted; // quoted owner role name
	char *column;       // unquoted tenant column name
	bool isolated;      // listed by tenancy.isolated_tables
	bool include_descendants;
	char relkind;
};

// An existing hash partition of a managed table; isolated partitions are LIST sub-partitioned by tenant.
struct Part {
	Oid relid;
	char *name;
	int modulus;
	int remainder;
	bool subpartitioned;
	List *tenants; // char * uuid texts of the isolated tenants (empty for a plain partition)
};

// A partition to build: its bound and the tenants that get a leaf of their own.
struct NewPart {
	int modulus;
	int remainder;
	List *tenants;
};

enum class Expect { kPlainTable, kHashPartitioned };

// Resolves relid (TN005 if it does not exist), checks that the caller is tenancy_admin (42501) and owns it
// (42501), locks it ACCESS EXCLUSIVE (so no lock upgrade can deadlock with the application later), and checks
// the tenant column (uuid) and, for kHashPartitioned, that the key is HASH on that column. Needs SPI connected.
Table *OpenTable(Oid relid, Expect expect, const char *operation);

// Runs one utility or DML statement through SPI; returns the rows processed.
uint64 RunSql(const char *sql);

// First column of the first row of a one-parameter query ($1 is an oid), or NULL.
char *QueryOidText(const char *sql, Oid arg);

// Every non-NULL first-column value of a one-parameter query ($1 is an oid), palloc'd, in query order.
List *QueryList(const char *sql, Oid arg);

// The hash partitions of a table, sorted by remainder, with the tenants each one isolates.
List *LoadParts(Table *t);

// Replaces the partitions olds with news (which cover the same hash values), moving every row once through a
// staging table so that no trigger fires and indexes are built in bulk at ATTACH. Returns the rows moved.
// Incoming foreign keys must have been dropped by the caller (see DropIncomingForeignKeys).
uint64 ReplaceParts(Table *t, List *olds, List *news);

// Captures "ALTER TABLE ... ADD CONSTRAINT" for every foreign key that references relid (from other tables, and
// from relid itself when include_self), drops them, and returns the statements that re-create them.
List *DropIncomingForeignKeys(Oid relid, bool include_self);
void RunStatements(List *statements);

// Removes t's isolation (tenancy.disable_isolation restores the table's state from before enable_isolation) so
// partition_table copies the table as it was; ReapplyIsolation puts it back on the new table in the same call.
void SuspendIsolation(Table *t);

// Re-applies the isolation policy to every partition (tenancy.enable_isolation is idempotent) when t is isolated.
void ReapplyIsolation(Table *t);

// Writes an audit event through tenancy._audit; tenant may be NULL; before and after are jsonb texts.
void Audit(const char *action, const char *tenant, const char *before, const char *after);

// True when tenant (uuid text) hashes into (modulus, remainder) of relid's partition key.
bool HashContains(Oid relid, int modulus, int remainder, const char *tenant);

// jsonb text {"table": "...", "partitions": n, ...} describing t's current layout.
char *LayoutJson(Table *t);

// Creates partition (modulus, remainder) named name under parent_qualified, sub-partitioned by tenant when
// tenants is not empty, owned by t's owner. Used by create_partitions and the staging tables.
void CreatePart(Table *t, const char *parent_qualified, const char *name, int modulus, int remainder, List *tenants);

// The name <table>_pNNN of t's hash partition with that remainder.
char *PartitionNameOf(Table *t, int remainder);

// Comma-separated quoted names of the columns a row copy must list: generated columns are recomputed.
char *CopyColumnList(Oid relid);

// Quoted schema-qualified name of a relation called name in t's schema.
char *QualifiedInSchema(Table *t, const char *name);

// Raises TN005 when a relation called name already exists in t's schema.
void RequireFreeName(Table *t, const char *name);

} // namespace tenancy::pg::partition
