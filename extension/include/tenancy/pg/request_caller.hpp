// extension/include/tenancy/pg/request_caller.hpp
// The tenancyd request a session's statements act for (its token or the admin token, remote address, request id),
// recorded in every audit event the session writes. Session state, replaced per request. PG regime.
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

// Forgets the caller: later audit events name no API caller.
void ClearRequestCaller(void);

// Records the caller for the session's later audit events: a tenant token (token_id, role name, tenant_id) or the
// admin token (token_id NULL), the request's claims (a JSON object of at most 1 kB, from tenancyd) and the database
// role that said so (current_user now). Clears first, so an invalid request (TN005) leaves no caller.
void SetRequestCaller(Jsonb *request, const pg_uuid_t *token_id, const char *role, const pg_uuid_t *tenant_id);

// The caller as a JSON object ({"actor": "tenant token" | "admin token", "token_id", "role", "tenant_id",
// "set_by", and the request's keys}), or NULL without one. Points into session memory: copy before keeping.
Jsonb *RequestCaller(void);

} // namespace tenancy::pg
