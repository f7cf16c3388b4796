// extension/include/tenancy/pg/plain_read.hpp
// The check before the superuser reads a relation that someone else owns (RunAsSuperuser: export, import,
// partitions(), quota recounts). PG regime: may ereport.
//
// Reading runs no trigger, but planning does run code: the relation cache folds constant calls in index expressions
// and predicates, partition key expressions and statistics expressions (eval_const_expressions) in the identity of
// whoever plans first, and constraint exclusion does the same with CHECK constraints. A function of the table's
// owner there (IMMUTABLE by its own say) would run as the superuser. So every such expression of the relation and
// of all its partitions and inheritance children may call only functions owned by a superuser, and coerce only to
// domains owned by one.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace tenancy::pg {

// Raises 42501 naming the relation and the expression unless relid and every relation inheriting from it are plain
// tables (or partitioned tables) whose index, partition key, CHECK and statistics expressions call only
// superusers' code. Locks each relation in SHARE UPDATE EXCLUSIVE mode (ACCESS SHARE on a standby), held to the
// end of the transaction, so no such expression can be added before the read is planned.
// hold_off_ddl false: ACCESS SHARE only, for reads on a write path (the quota counter's first load) that must not
// wait behind a VACUUM or CREATE INDEX of the table; a DDL committed between the check and the read's planning is
// then not excluded.
void RequirePlainRead(Oid relid, bool hold_off_ddl);

// RequirePlainRead(relid, true).
void RequirePlainRead(Oid relid);

} // namespace tenancy::pg
