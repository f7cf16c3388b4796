// extension/pg/token_permits.cpp
// tenancy.token_permits(role, action) in C, and RolePermitsAction, the same check authorize_token runs once per
// request: a C call costs no plpgsql setup and no search_path switch in each new transaction (bench/daemon/RESULTS.md).
#include "tenancy/core/token_permission.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/token_permits.hpp"

#include <string_view>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_token_permits);
}

namespace tenancy::pg {

bool
RolePermitsAction(Datum role, text *action)
{
	const char *role_name = DatumGetCString(DirectFunctionCall1(enum_out, role));
	const char *action_data = VARDATA_ANY(action);
	size_t action_len = VARSIZE_ANY_EXHDR(action);
	core::TokenPermission permission =
	    CallCore([&] { return core::TokenPermits(role_name, std::string_view(action_data, action_len)); });
	if (permission == core::TokenPermission::kUnknownAction)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("unknown token action \"%s\"", text_to_cstring(action))));
	return permission == core::TokenPermission::kAllowed;
}

} // namespace tenancy::pg

// tenancy.token_permits(role tenancy.user_role, action text) -> boolean; TN005 for an unknown action.
extern "C" Datum
tenancy_token_permits(PG_FUNCTION_ARGS)
{
	PG_RETURN_BOOL(tenancy::pg::RolePermitsAction(PG_GETARG_DATUM(0), PG_GETARG_TEXT_PP(1)));
}
