// extension/include/tenancy/pg/spi_plan.hpp
// Statements prepared once per backend (SPI_keepplan) for the hot paths that run them on every call. PG regime.
#pragma once

extern "C" {
#include "postgres.h"
#include "executor/spi.h"
}

namespace tenancy::pg {

// The plan in *slot, prepared from sql on first use (inside SPI) and kept for the backend's life; the plan cache
// re-plans it after DDL on the tables it reads. what names the statement in the error if preparing fails.
SPIPlanPtr KeptPlan(SPIPlanPtr *slot, const char *sql, int nargs, const Oid *types, const char *what);

} // namespace tenancy::pg
