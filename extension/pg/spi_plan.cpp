// extension/pg/spi_plan.cpp
// Statements prepared once per backend (SPI_keepplan): parsing and planning them on every call cost more than the rest.
#include "tenancy/pg/spi_plan.hpp"

namespace tenancy::pg {

SPIPlanPtr
KeptPlan(SPIPlanPtr *slot, const char *sql, int nargs, const Oid *types, const char *what)
{
	if (*slot != NULL)
		return *slot;
	SPIPlanPtr plan = SPI_prepare(sql, nargs, const_cast<Oid *>(types));
	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare %s: %s", what, SPI_result_code_string(SPI_result));
	*slot = plan;
	return plan;
}

} // namespace tenancy::pg
