// extension/pg/token_permits.cpp
// tenancy.token_permits(role, action) in C: tenancyd's authorize_token calls it once per request, and a C call
// costs no plpgsql setup and no search_path switch in each new transaction (bench/daemon/RESULTS.md).
#include "tenancy/core/token_permission.hpp"
#include "tenancy/pg/boundary.hpp"

#include <string_view>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "utils/builtins.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_token_permits);
}

using namespace tenancy;

// tenancy.token_permits(role tenancy.user_role, action text) -> boolean; TN005 for an unknown action.
extern "C" Datum
tenancy_token_permits(PG_FUNCTION_ARGS)
{
	const char *role = DatumGetCString(DirectFunctionCall1(enum_out, PG_GETARG_DATUM(0)));
	text *action = PG_GETARG_TEXT_PP(1);
	const char *action_data = VARDATA_ANY(action);
	size_t action_len = VARSIZE_ANY_EXHDR(action);
	core::TokenPermission permission =
	    pg::CallCore([&] { return core::TokenPermits(role, std::string_view(action_data, action_len)); });
	if (permission == core::TokenPermission::kUnknownAction)
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("unknown token action \"%s\"", text_to_cstring(action))));
	PG_RETURN_BOOL(permission == core::TokenPermission::kAllowed);
}
