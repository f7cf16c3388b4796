// extension/pg/partition_functions.cpp
// SQL entry points that lay out hash partitions: create_partitions, repartition, isolate_tenant, unisolate_tenant.
#include "tenancy/core/partition_plan.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/partition_ops.hpp"

#include <cstring>
#include <vector>

extern "C" {
#include "postgres.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/uuid.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_create_partitions);
PG_FUNCTION_INFO_V1(tenancy_repartition);
PG_FUNCTION_INFO_V1(tenancy_isolate_tenant);
PG_FUNCTION_INFO_V1(tenancy_unisolate_tenant);
}

using namespace tenancy;
using namespace tenancy::pg::partition;

namespace {

// The bounds of parts as core values, for the plan maths.
std::vector<core::HashBound>
BoundsOf(List *parts)
{
	std::vector<core::HashBound> bounds;
	ListCell *lc;
	foreach (lc, parts) {
		const Part *p = static_cast<const Part *>(lfirst(lc));
		bounds.push_back(core::HashBound{p->modulus, p->remainder});
	}
	return bounds;
}

// A repartition plan flattened into palloc'd ints so it leaves the doorway without C++ objects:
// nsteps, then per step nfrom, (modulus, remainder) * nfrom, nto, (modulus, remainder) * nto.
int *
FlatPlan(List *parts, int target)
{
	return pg::CallCore([&] {
		std::vector<core::ReshapeStep> steps = core::PlanRepartition(BoundsOf(parts), target);
		std::vector<int> flat{static_cast<int>(steps.size())};
		for (const core::ReshapeStep &s : steps) {
			flat.push_back(static_cast<int>(s.from.size()));
			for (const core::HashBound &b : s.from)
				flat.insert(flat.end(), {b.modulus, b.remainder});
			flat.push_back(static_cast<int>(s.to.size()));
			for (const core::HashBound &b : s.to)
				flat.insert(flat.end(), {b.modulus, b.remainder});
		}
		int *out = static_cast<int *>(pg::PallocOrThrow(flat.size() * sizeof(int)));
		std::memcpy(out, flat.data(), flat.size() * sizeof(int));
		return out;
	});
}

Part *
FindPart(List *parts, int modulus, int remainder)
{
	ListCell *lc;
	foreach (lc, parts) {
		Part *p = static_cast<Part *>(lfirst(lc));
		if (p->modulus == modulus && p->remainder == remainder)
			return p;
	}
	elog(ERROR, "partition (%d, %d) vanished", modulus, remainder);
}

// The hash partition that holds tenant.
Part *
PartOfTenant(Table *t, List *parts, const char *tenant)
{
	ListCell *lc;
	foreach (lc, parts) {
		Part *p = static_cast<Part *>(lfirst(lc));
		if (HashContains(t->relid, p->modulus, p->remainder, tenant))
			return p;
	}
	ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
	                errmsg("no partition of table %s holds tenant %s", t->qualified, tenant),
	                errhint("Create the partitions with tenancy.create_partitions().")));
}

bool
ListHasString(List *list, const char *s)
{
	ListCell *lc;
	foreach (lc, list)
		if (strcmp(static_cast<const char *>(lfirst(lc)), s) == 0)
			return true;
	return false;
}

NewPart *
MakeNewPart(int modulus, int remainder, List *tenants)
{
	NewPart *np = static_cast<NewPart *>(palloc0(sizeof(NewPart)));
	np->modulus = modulus;
	np->remainder = remainder;
	np->tenants = tenants;
	return np;
}

char *
UuidText(Datum d)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, d));
}

// TN001 unless the tenant is in the registry: isolating a tenant that does not exist is a typo, not a plan.
void
RequireTenant(const char *tenant)
{
	Oid types[1] = {TEXTOID};
	Datum values[1] = {CStringGetTextDatum(tenant)};
	int rc = SPI_execute_with_args("SELECT 1 FROM tenancy.tenants WHERE id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid",
	                               1, types, values, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read tenancy.tenants: %s", SPI_result_code_string(rc));
	if (SPI_processed == 0)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_TENANT_NOT_FOUND), errmsg("tenant %s not found", tenant)));
}

// Rebuilds the partition of tenant with tenants as its isolated set; returns the rows moved.
uint64
RebuildWithTenants(Table *t, Part *p, List *tenants)
{
	List *restores = DropIncomingForeignKeys(t->relid, true);
	uint64 moved = ReplaceParts(t, list_make1(p), list_make1(MakeNewPart(p->modulus, p->remainder, tenants)));
	RunStatements(restores);
	ReapplyIsolation(t);
	return moved;
}

} // namespace

// create_partitions(tbl regclass, partitions int) -> int: the partitions <table>_p000.. of an empty hash layout.
extern "C" Datum
tenancy_create_partitions(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	int count = PG_GETARG_INT32(1);
	pg::CallCore([&] { core::ValidatePartitionCount(count); });

	SPI_connect();
	Table *t = OpenTable(relid, Expect::kHashPartitioned, "manage partitions");
	List *existing = LoadParts(t);
	if (existing != NIL)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("table %s already has %d partitions", t->qualified, list_length(existing)),
		                errhint("Use tenancy.repartition() to change the partition count.")));
	char *before = LayoutJson(t);
	for (int r = 0; r < count; r++)
		CreatePart(t, t->qualified, PartitionNameOf(t, r), count, r, NIL);
	ReapplyIsolation(t);
	Audit("partitions_created", NULL, before, LayoutJson(t));
	SPI_finish();
	PG_RETURN_INT32(count);
}

// repartition(tbl regclass, partitions int) -> bigint: splits or merges one partition group at a time; returns the
// rows moved.
extern "C" Datum
tenancy_repartition(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	int target = PG_GETARG_INT32(1);
	pg::CallCore([&] { core::ValidatePartitionCount(target); });

	SPI_connect();
	Table *t = OpenTable(relid, Expect::kHashPartitioned, "manage partitions");
	List *parts = LoadParts(t);
	int *plan = FlatPlan(parts, target);
	char *before = LayoutJson(t);
	uint64 moved = 0;
	int nsteps = plan[0];
	int pos = 1;
	List *restores = nsteps > 0 ? DropIncomingForeignKeys(relid, true) : NIL;
	for (int s = 0; s < nsteps; s++) {
		List *olds = NIL;
		List *old_tenants = NIL;
		int nfrom = plan[pos++];
		for (int k = 0; k < nfrom; k++, pos += 2) {
			Part *p = FindPart(parts, plan[pos], plan[pos + 1]);
			olds = lappend(olds, p);
			old_tenants = list_concat(old_tenants, p->tenants);
		}
		List *news = NIL;
		int nto = plan[pos++];
		for (int k = 0; k < nto; k++, pos += 2) {
			// isolated tenants stay isolated in whichever new partition now holds them
			List *tenants = NIL;
			ListCell *lc;
			foreach (lc, old_tenants)
				if (HashContains(relid, plan[pos], plan[pos + 1], static_cast<char *>(lfirst(lc))))
					tenants = lappend(tenants, lfirst(lc));
			news = lappend(news, MakeNewPart(plan[pos], plan[pos + 1], tenants));
		}
		moved += ReplaceParts(t, olds, news);
	}
	RunStatements(restores);
	if (nsteps > 0) {
		ReapplyIsolation(t);
		Audit("table_repartitioned", NULL, before, LayoutJson(t));
	}
	SPI_finish();
	PG_RETURN_INT64(static_cast<int64>(moved));
}

// isolate_tenant(tbl regclass, tenant_id uuid) -> bigint: the tenant's hash partition becomes LIST
// sub-partitioned with a leaf for the tenant and a default leaf; returns the rows moved (0 if already isolated).
extern "C" Datum
tenancy_isolate_tenant(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	char *tenant = UuidText(PG_GETARG_DATUM(1));

	SPI_connect();
	Table *t = OpenTable(relid, Expect::kHashPartitioned, "manage partitions");
	RequireTenant(tenant);
	List *parts = LoadParts(t);
	Part *p = PartOfTenant(t, parts, tenant);
	uint64 moved = 0;
	if (ListHasString(p->tenants, tenant)) {
		ereport(NOTICE, (errmsg("tenant %s is already isolated in table %s", tenant, t->qualified)));
	} else {
		char *before = LayoutJson(t);
		moved = RebuildWithTenants(t, p, lappend(list_copy(p->tenants), tenant));
		Audit("tenant_isolated", tenant, before, LayoutJson(t));
	}
	SPI_finish();
	PG_RETURN_INT64(static_cast<int64>(moved));
}

// unisolate_tenant(tbl regclass, tenant_id uuid) -> bigint: the tenant's rows go back to the shared partition,
// which becomes a plain partition again when no isolated tenant is left; returns the rows moved.
extern "C" Datum
tenancy_unisolate_tenant(PG_FUNCTION_ARGS)
{
	Oid relid = PG_GETARG_OID(0);
	char *tenant = UuidText(PG_GETARG_DATUM(1));

	SPI_connect();
	Table *t = OpenTable(relid, Expect::kHashPartitioned, "manage partitions");
	List *parts = LoadParts(t);
	Part *p = PartOfTenant(t, parts, tenant);
	if (!ListHasString(p->tenants, tenant))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("tenant %s is not isolated in table %s", tenant, t->qualified)));
	List *rest = NIL;
	ListCell *lc;
	foreach (lc, p->tenants)
		if (strcmp(static_cast<char *>(lfirst(lc)), tenant) != 0)
			rest = lappend(rest, lfirst(lc));
	char *before = LayoutJson(t);
	uint64 moved = RebuildWithTenants(t, p, rest);
	Audit("tenant_unisolated", tenant, before, LayoutJson(t));
	SPI_finish();
	PG_RETURN_INT64(static_cast<int64>(moved));
}
