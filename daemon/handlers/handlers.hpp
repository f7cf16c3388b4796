// daemon/handlers/handlers.hpp
// One function per route, grouped by resource in handlers/*.cpp; each takes a parsed request and returns a Reply.
#pragma once

#include "server/context.hpp"

namespace tenancyd::handlers {

// tenants.cpp
Reply CreateTenant(RequestContext &ctx);
Reply ListTenants(RequestContext &ctx);
Reply GetTenant(RequestContext &ctx);
Reply PatchTenant(RequestContext &ctx);
// users.cpp
Reply AddUser(RequestContext &ctx);
Reply ListUsers(RequestContext &ctx);
// usage.cpp
Reply GetUsage(RequestContext &ctx);
inline constexpr const char *kUsageAnswerSql = "tenancy.usage($2::uuid)"; // GetUsage's Route::answer_sql
Reply GetUsageTrends(RequestContext &ctx);
// tokens.cpp
Reply IssueToken(RequestContext &ctx);
Reply RevokeToken(RequestContext &ctx);
// keys.cpp
Reply RotateKey(RequestContext &ctx);
// sla.cpp
Reply GetSla(RequestContext &ctx);
// export.cpp
Reply ExportTenant(RequestContext &ctx);
// move.cpp (regions mode): POST and GET .../move; PATCH data_residency across regions calls StartMove
Reply MoveTenant(RequestContext &ctx);
Reply GetMove(RequestContext &ctx);
Reply StartMove(RequestContext &ctx, const std::string &to);
// Takes over moves whose orchestrator stopped mid-move (the health loop calls it; nothing without regions:).
void AdoptOrphanedMoves(App &app);
// At shutdown: lets moves in their freeze or past their switch finish (bounded); returns the move threads still
// running, which the process leaves to be taken over.
int SettleMovesForShutdown(App &app);
// system.cpp
Reply Healthz(RequestContext &ctx);
Reply Readyz(RequestContext &ctx);
Reply Metrics(RequestContext &ctx);
Reply OpenApi(RequestContext &ctx);

// The OpenAPI document kept in daemon/openapi.json, embedded at build time (openapi.cpp, generated).
const char *OpenApiDocument();

} // namespace tenancyd::handlers
