// extension/pg/isolation_hold_cursor.cpp
// WITH HOLD cursors and the tenant context never meet: a transaction that declares one has no tenant context.
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/module.hpp"
#include "tenancy/pg/tenant_context.hpp"

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "nodes/parsenodes.h"
#include "storage/proc.h"
#include "tcop/utility.h"
}

namespace tenancy::pg {

namespace {

// A WITH HOLD cursor is materialized at COMMIT, inside the committing transaction and therefore with its tenant
// context, and stays readable after the context is gone: through a transaction pooler, by the next client. And
// once materialized it outlives even a failed COMMIT. So the cursor is refused while a context is set, and a
// transaction that declared one gets no context afterwards (set_tenant refuses, app.tenant_id is ignored): its
// materialization then finds no context and fails closed (TN004) before anything is kept.
LocalTransactionId hold_cursor_lxid = InvalidLocalTransactionId;
ProcessUtility_hook_type previous_process_utility = NULL;

void
HoldCursorProcessUtility(PlannedStmt *pstmt, const char *query_string, bool read_only_tree,
                         ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *query_env,
                         DestReceiver *dest, QueryCompletion *qc)
{
	Node *stmt = pstmt->utilityStmt;
	if (stmt != NULL && IsA(stmt, DeclareCursorStmt) && (((DeclareCursorStmt *)stmt)->options & CURSOR_OPT_HOLD) != 0) {
		pg_uuid_t ignored;
		if (CurrentTenantId(&ignored))
			ereport(ERROR, (errcode(ERRCODE_INVALID_CURSOR_DEFINITION),
			                errmsg("cannot declare a WITH HOLD cursor while a tenant context is set"),
			                errdetail("The cursor would keep the tenant's rows readable after the context ends."),
			                errhint("Declare the cursor without WITH HOLD and fetch from it before COMMIT.")));
		hold_cursor_lxid = MyProc->lxid;
	}
	if (previous_process_utility)
		previous_process_utility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
	else
		standard_ProcessUtility(pstmt, query_string, read_only_tree, context, params, query_env, dest, qc);
}

void
InitHoldCursorGuard()
{
	previous_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = HoldCursorProcessUtility;
}
TENANCY_REGISTER_INIT(InitHoldCursorGuard, 20);

} // namespace

bool
HoldCursorDeclaredInTransaction(void)
{
	return hold_cursor_lxid != InvalidLocalTransactionId && MyProc != NULL && hold_cursor_lxid == MyProc->lxid;
}

} // namespace tenancy::pg
