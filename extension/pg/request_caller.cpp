// extension/pg/request_caller.cpp
// Which tenancyd caller the session acts for, for the audit log: the daemon connects as one database role for every
// API caller, so without this every HTTP-driven change is recorded under that role only. tenancy.authorize_token
// records the token it found (in the same statement as the token check: no extra round trip), and
// tenancy.set_request_caller the admin token. Only tenancy_admin may call either: an application role cannot claim
// to be an API caller, and every claim also names the database role that made it ("set_by").
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/privilege.hpp"
#include "tenancy/pg/request_caller.hpp"

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/memutils.h"

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_set_request_caller);
}

namespace tenancy::pg {

namespace {

// The caller of this session, in TopMemoryContext (it outlives transactions: tenancyd checks a token in one
// transaction and makes the change in the next); NULL without one.
Jsonb *session_caller = NULL;

// A request's claims are bounded: they are copied into every audit event of the request.
constexpr Size kMaxRequestBytes = 1024;

void
AppendKey(StringInfo buf, const char *key, const char *value)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, ": ");
	escape_json(buf, value);
}

const char *
UuidText(const pg_uuid_t *uuid)
{
	return DatumGetCString(DirectFunctionCall1(uuid_out, UUIDPGetDatum(const_cast<pg_uuid_t *>(uuid))));
}

} // namespace

void
ClearRequestCaller(void)
{
	if (session_caller != NULL)
		pfree(session_caller);
	session_caller = NULL;
}

void
SetRequestCaller(Jsonb *request, const pg_uuid_t *token_id, const char *role, const pg_uuid_t *tenant_id)
{
	ClearRequestCaller();
	if (request != NULL && (!JB_ROOT_IS_OBJECT(request) || VARSIZE(request) > kMaxRequestBytes))
		ereport(ERROR, (errcode(TENANCY_ERRCODE_INVALID_INPUT),
		                errmsg("request must be a JSON object of at most %zu bytes", kMaxRequestBytes)));
	StringInfoData buf;
	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	AppendKey(&buf, "actor", token_id ? "tenant token" : "admin token");
	if (token_id) {
		AppendKey(&buf, "token_id", UuidText(token_id));
		AppendKey(&buf, "role", role);
		AppendKey(&buf, "tenant_id", UuidText(tenant_id));
	}
	AppendKey(&buf, "set_by", GetUserNameFromId(GetUserId(), false));
	appendStringInfoChar(&buf, '}');
	Datum identity = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	// The identity's keys win over the request's: a claim cannot rename the token or the role that made it.
	Datum caller = request ? DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(request), identity) : identity;
	Jsonb *jb = DatumGetJsonbP(caller);
	Jsonb *copy = static_cast<Jsonb *>(MemoryContextAlloc(TopMemoryContext, VARSIZE(jb)));
	memcpy(copy, jb, VARSIZE(jb));
	session_caller = copy;
}

Jsonb *
RequestCaller(void)
{
	return session_caller;
}

} // namespace tenancy::pg

// tenancy.set_request_caller(request jsonb) -> void: the admin token and this request for the session's later audit
// events; NULL clears. tenancy_admin only (also checked here, whatever EXECUTE was granted).
extern "C" Datum
tenancy_set_request_caller(PG_FUNCTION_ARGS)
{
	tenancy::pg::RequireAdmin("name the API caller of audit events");
	if (PG_ARGISNULL(0))
		tenancy::pg::ClearRequestCaller();
	else
		tenancy::pg::SetRequestCaller(PG_GETARG_JSONB_P(0), NULL, NULL, NULL);
	PG_RETURN_VOID();
}
