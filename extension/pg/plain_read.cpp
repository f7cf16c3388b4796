// extension/pg/plain_read.cpp
// RequirePlainRead: no code of a non-superuser in what planning a read of a relation evaluates
// (tenancy/pg/plain_read.hpp), and tenancy._require_plain_read(regclass) for the superuser-run SQL.
#include "tenancy/pg/plain_read.hpp"

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xlog.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/partition.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_partitioned_table.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_statistic_ext.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/nodeFuncs.h"
#include "nodes/pg_list.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/syscache.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_require_plain_read);
}

namespace tenancy::pg {

namespace {

// A function of the system catalogs or owned by a superuser: not code a non-superuser wrote.
bool
FunctionIsForeign(Oid func, void *)
{
	if (func < FirstNormalObjectId)
		return false;
	HeapTuple tuple = SearchSysCache1(PROCOID, ObjectIdGetDatum(func));
	if (!HeapTupleIsValid(tuple))
		return true;
	Oid owner = ((Form_pg_proc)GETSTRUCT(tuple))->proowner;
	ReleaseSysCache(tuple);
	return !superuser_arg(owner);
}

bool
TypeIsForeign(Oid type)
{
	if (type < FirstNormalObjectId)
		return false;
	HeapTuple tuple = SearchSysCache1(TYPEOID, ObjectIdGetDatum(type));
	if (!HeapTupleIsValid(tuple))
		return true;
	Oid owner = ((Form_pg_type)GETSTRUCT(tuple))->typowner;
	ReleaseSysCache(tuple);
	return !superuser_arg(owner);
}

// True when the expression calls a function (operators, casts and I/O conversions included) that is foreign, or
// coerces to a foreign domain (its CHECK constraints are code of its owner).
bool
ForeignCodeWalker(Node *node, void *context)
{
	if (node == NULL)
		return false;
	if (check_functions_in_node(node, FunctionIsForeign, context))
		return true;
	if (IsA(node, CoerceToDomain) && TypeIsForeign(((CoerceToDomain *)node)->resulttype))
		return true;
	if (IsA(node, Query) || IsA(node, SubLink) || IsA(node, SubPlan))
		return true; // never in these expressions; refused rather than walked
	// PostgreSQL 15 declares the walker as bool (*)() (no prototype), which C++ reads as taking no arguments.
	return expression_tree_walker(
	    node, reinterpret_cast<bool (*)()>(reinterpret_cast<void (*)(void)>(ForeignCodeWalker)), context);
}

// Refuses the expression stored as nodeToString text in a catalog column, without evaluating anything.
void
CheckStoredExpression(Oid relid, const char *what, const char *stored)
{
	if (stored == NULL)
		return;
	Node *expr = static_cast<Node *>(stringToNode(stored));
	if (ForeignCodeWalker(expr, NULL))
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		                errmsg("table \"%s\" has %s that runs code of a role that is not a superuser",
		                       get_rel_name(relid), what),
		                errdetail("tenancy reads this table with superuser rights, and planning that read would run "
		                          "that code with them."),
		                errhint("Use only built-in functions (or functions a superuser owns) in the table's index "
		                        "expressions, index predicates, partition keys, CHECK constraints and statistics.")));
}

char *
SysCacheText(int cache, HeapTuple tuple, AttrNumber attr)
{
	bool isnull;
	Datum d = SysCacheGetAttr(cache, tuple, attr, &isnull);
	return isnull ? NULL : TextDatumGetCString(d);
}

// The partition key expressions of partitioned table keyed, reported as relid's.
void
CheckPartitionKey(Oid relid, Oid keyed)
{
	HeapTuple tuple = SearchSysCache1(PARTRELID, ObjectIdGetDatum(keyed));
	if (!HeapTupleIsValid(tuple))
		return;
	char *exprs = SysCacheText(PARTRELID, tuple, Anum_pg_partitioned_table_partexprs);
	ReleaseSysCache(tuple);
	CheckStoredExpression(relid, "a partition key expression", exprs);
}

void
CheckOneRelation(Oid relid)
{
	char relkind = get_rel_relkind(relid);
	if (relkind != RELKIND_RELATION && relkind != RELKIND_PARTITIONED_TABLE)
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE), errmsg("\"%s\" is not a table", get_rel_name(relid)),
		                errdetail("tenancy reads only tables and partitioned tables with superuser rights.")));
	Relation rel = table_open(relid, NoLock);
	List *indexes = RelationGetIndexList(rel);
	List *stats = RelationGetStatExtList(rel);
	TupleConstr *constr = rel->rd_att->constr;
	if (constr != NULL)
		for (int i = 0; i < constr->num_check; i++)
			CheckStoredExpression(relid, "a CHECK constraint", constr->check[i].ccbin);
	table_close(rel, NoLock);

	ListCell *lc;
	foreach (lc, indexes) {
		HeapTuple tuple = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));
		if (!HeapTupleIsValid(tuple))
			continue;
		char *exprs = SysCacheText(INDEXRELID, tuple, Anum_pg_index_indexprs);
		char *pred = SysCacheText(INDEXRELID, tuple, Anum_pg_index_indpred);
		ReleaseSysCache(tuple);
		CheckStoredExpression(relid, "an index expression", exprs);
		CheckStoredExpression(relid, "an index predicate", pred);
	}
	foreach (lc, stats) {
		HeapTuple tuple = SearchSysCache1(STATEXTOID, ObjectIdGetDatum(lfirst_oid(lc)));
		if (!HeapTupleIsValid(tuple))
			continue;
		char *exprs = SysCacheText(STATEXTOID, tuple, Anum_pg_statistic_ext_stxexprs);
		ReleaseSysCache(tuple);
		CheckStoredExpression(relid, "a statistics expression", exprs);
	}
	if (relkind == RELKIND_PARTITIONED_TABLE)
		CheckPartitionKey(relid, relid);
}

} // namespace

void
RequirePlainRead(Oid relid, bool hold_off_ddl)
{
	if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		ereport(ERROR, (errcode(ERRCODE_UNDEFINED_TABLE), errmsg("relation with OID %u does not exist", relid)));
	// The lock first: a relation cache entry reloaded on it reflects every DDL committed before. SHARE UPDATE
	// EXCLUSIVE keeps out, until the read is done, what would add an expression between this check and the
	// planning of the read (CREATE INDEX [CONCURRENTLY], CREATE STATISTICS, ADD CONSTRAINT, ATTACH PARTITION),
	// while reads and writes go on. A standby runs no DDL and takes no lock beyond ACCESS SHARE.
	LOCKMODE mode = (RecoveryInProgress() || !hold_off_ddl) ? AccessShareLock : ShareUpdateExclusiveLock;
	List *rels = find_all_inheritors(relid, mode, NULL);
	ListCell *lc;
	foreach (lc, rels)
		CheckOneRelation(lfirst_oid(lc));
	// A partition read on its own: its partition constraint comes from its ancestors' partition keys, which the
	// planner builds (folding their expressions) under constraint_exclusion = on, a setting the caller chooses.
	if (get_rel_relispartition(relid)) {
		List *ancestors = get_partition_ancestors(relid);
		foreach (lc, ancestors)
			CheckPartitionKey(relid, lfirst_oid(lc));
	}
}

void
RequirePlainRead(Oid relid)
{
	RequirePlainRead(relid, true);
}

} // namespace tenancy::pg

// tenancy._require_plain_read(regclass, boolean): RequirePlainRead for superuser-run SQL (import, quota recounts).
extern "C" Datum
tenancy_require_plain_read(PG_FUNCTION_ARGS)
{
	tenancy::pg::RequirePlainRead(PG_GETARG_OID(0), PG_GETARG_BOOL(1));
	PG_RETURN_VOID();
}
