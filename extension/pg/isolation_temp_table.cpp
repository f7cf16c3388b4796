// extension/pg/isolation_temp_table.cpp
// Under a tenant context (or a cross-tenant read), a temporary table must be ON COMMIT DROP: with transaction
// pooling (pgbouncer) the server session, and every temporary table in it, goes on to the next client.
#include "tenancy/pg/isolation.hpp"
#include "tenancy/pg/tenant_context.hpp"

extern "C" {
#include "postgres.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "nodes/parsenodes.h"
#include "nodes/primnodes.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

void
RefuseTenantTempTable(Node *parsetree)
{
	if (parsetree == NULL)
		return;
	RangeVar *rel;
	OnCommitAction on_commit;
	bool select_into = false;
	if (IsA(parsetree, CreateStmt)) {
		CreateStmt *stmt = castNode(CreateStmt, parsetree);
		rel = stmt->relation;
		on_commit = stmt->oncommit;
	} else if (IsA(parsetree, CreateTableAsStmt)) {
		CreateTableAsStmt *stmt = castNode(CreateTableAsStmt, parsetree);
		if (stmt->objtype != OBJECT_TABLE || stmt->into == NULL)
			return;
		rel = stmt->into->rel;
		on_commit = stmt->into->onCommit;
		select_into = stmt->is_select_into;
	} else {
		return;
	}
	if (rel == NULL || on_commit == ONCOMMIT_DROP)
		return;
	pg_uuid_t context;
	if (!CurrentTenantId(&context) && !CrossTenantActive())
		return;
	/* CREATE TEMP TABLE, CREATE TABLE pg_temp.x and an unqualified name under search_path = pg_temp, ... */
	if (rel->relpersistence != RELPERSISTENCE_TEMP && !isTempNamespace(RangeVarGetCreationNamespace(rel)))
		return;
	ereport(ERROR,
	        (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
	         errmsg("cannot create temporary table \"%s\" under a tenant context unless it is ON COMMIT DROP",
	                rel->relname),
	         errdetail("A temporary table outlives the transaction: through a transaction pooler, the next client of "
	                   "the same server session could read the tenant's rows."),
	         errhint(select_into ? "Use CREATE TEMP TABLE ... ON COMMIT DROP AS SELECT ... instead of SELECT INTO, or "
	                               "create the table outside the tenant context."
	                             : "Add ON COMMIT DROP, or create the table outside the tenant context.")));
}

} // namespace tenancy::pg
