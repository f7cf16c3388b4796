// extension/pg/crypto_fernet.cpp
// tenancy.fernet_decrypt: reads Fernet tokens of the brief's Python code so data can move to tenancy keys.
#include "tenancy/core/fernet.hpp"
#include "tenancy/pg/boundary.hpp"

#include <cstring>
#include <ctime>
#include <optional>
#include <string_view>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_fernet_decrypt);
}

using namespace tenancy;

// tenancy.fernet_decrypt(token text, key text [, ttl_seconds integer]) -> text. With a ttl, tokens older than it
// (or over 60 seconds in the future) are refused, as Fernet's own decrypt(ttl=...) does.
extern "C" Datum
tenancy_fernet_decrypt(PG_FUNCTION_ARGS)
{
	text *token = PG_GETARG_TEXT_PP(0);
	text *key = PG_GETARG_TEXT_PP(1);
	std::optional<int64> ttl;
	if (PG_NARGS() > 2)
		ttl = PG_GETARG_INT32(2);
	int64 now = static_cast<int64>(std::time(nullptr));
	text *result = pg::CallCore(
	    [&] {
		    core::SecureBytes plain =
		        core::FernetDecrypt(std::string_view(VARDATA_ANY(token), VARSIZE_ANY_EXHDR(token)),
		                            std::string_view(VARDATA_ANY(key), VARSIZE_ANY_EXHDR(key)), ttl, now);
		    text *out = static_cast<text *>(pg::PallocOrThrow(VARHDRSZ + plain.size()));
		    memcpy(VARDATA(out), plain.data(), plain.size());
		    SET_VARSIZE(out, VARHDRSZ + plain.size());
		    return out;
	    },
	    true);
	pg_verifymbstr(VARDATA(result), VARSIZE(result) - VARHDRSZ, false);
	PG_RETURN_TEXT_P(result);
}
