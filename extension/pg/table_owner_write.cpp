// extension/pg/table_owner_write.cpp
// tenancy._write_as_table_owner: the superuser-run import writes a tenant's rows into an application table as that
// table's owner, inside the tenant's context, so the table's triggers, defaults, checks and index expressions run
// with its owner's rights and its own policy admits exactly that tenant's rows.
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/tenant_context.hpp"

extern "C" {
#include "postgres.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_write_as_table_owner);
}

namespace tenancy::pg {

namespace {

struct OwnerWrite {
	const pg_uuid_t *tenant;
	const char *sql;
	int64 processed;
};

void
WriteAsTableOwner(void *arg)
{
	OwnerWrite *w = static_cast<OwnerWrite *>(arg);
	SetTenantContextInNestLevel(w->tenant);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	int rc = SPI_execute(w->sql, false, 0);
	if (rc != SPI_OK_INSERT && rc != SPI_OK_DELETE && rc != SPI_OK_UPDATE)
		elog(ERROR, "unexpected result of an owner's write: %s", SPI_result_code_string(rc));
	w->processed = (int64)SPI_processed;
	SPI_finish();
}

} // namespace

} // namespace tenancy::pg

using namespace tenancy;

// tenancy._write_as_table_owner(tbl regclass, tenant uuid, stmt text) -> bigint: runs one INSERT/UPDATE/DELETE as
// the owner of tbl with tenant as the context; rows written. Superusers only: it runs SQL as another role (for the
// import, a step down from the superuser; for anyone else it would be a step up to the table's owner).
extern "C" Datum
tenancy_write_as_table_owner(PG_FUNCTION_ARGS)
{
	if (!superuser())
		ereport(ERROR, (errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
		                errmsg("permission denied for function _write_as_table_owner"),
		                errdetail("Only the import, running as the superuser, may write as a table's owner.")));
	Oid relid = PG_GETARG_OID(0);
	pg::OwnerWrite w = {PG_GETARG_UUID_P(1), text_to_cstring(PG_GETARG_TEXT_PP(2)), 0};
	pg::RunAsTableOwner(relid, pg::WriteAsTableOwner, &w);
	PG_RETURN_INT64(w.processed);
}
