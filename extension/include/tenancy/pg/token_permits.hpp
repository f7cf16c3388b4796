// extension/include/tenancy/pg/token_permits.hpp
// Whether a tenant token's role permits an action: the one SQL-facing check over core::TokenPermits. PG regime.
#pragma once

extern "C" {
#include "postgres.h"
}

namespace tenancy::pg {

// role is a tenancy.user_role enum Datum; TN005 for an action no role knows.
bool RolePermitsAction(Datum role, text *action);

} // namespace tenancy::pg
