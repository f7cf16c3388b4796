// daemon/server/routes.cpp
// The route table (PgBouncer's cmd_list): method, path, who may call it, and its handler. openapi.json mirrors it.
#include "handlers/handlers.hpp"
#include "server/context.hpp"

namespace tenancyd {

const std::vector<Route> &
Routes()
{
	using namespace handlers;
	// clang-format off
	static const std::vector<Route> kRoutes = {
	    {"POST",   "/api/v1/admin/tenants",                      Access::kAdmin,   nullptr,        true,  true,  CreateTenant},
	    {"GET",    "/api/v1/admin/tenants",                      Access::kAdmin,   nullptr,        true,  false, ListTenants},
	    {"GET",    "/api/v1/tenants/{id}",                       Access::kTenant,  "tenant.read",  true,  false, GetTenant},
	    {"PATCH",  "/api/v1/tenants/{id}",                       Access::kTenant,  "tenant.write", true,  true,  PatchTenant},
	    {"POST",   "/api/v1/tenants/{id}/users",                 Access::kTenant,  "users.write",  true,  true,  AddUser},
	    {"GET",    "/api/v1/tenants/{id}/users",                 Access::kTenant,  "users.read",   true,  false, ListUsers},
	    {"GET",    "/api/v1/tenants/{id}/usage",                 Access::kTenant,  "usage.read",   true,  false, GetUsage, kUsageAnswerSql},
	    {"GET",    "/api/v1/tenants/{id}/usage/trends",          Access::kTenant,  "usage.read",   true,  false, GetUsageTrends},
	    {"POST",   "/api/v1/tenants/{id}/tokens",                Access::kTenant,  "tokens.write", true,  true,  IssueToken},
	    {"DELETE", "/api/v1/tenants/{id}/tokens/{token_id}",     Access::kTenant,  "tokens.write", true,  false, RevokeToken},
	    {"POST",   "/api/v1/tenants/{id}/keys/rotate",           Access::kTenant,  "keys.write",   true,  true,  RotateKey},
	    {"GET",    "/api/v1/tenants/{id}/sla",                   Access::kTenant,  "sla.read",     true,  false, GetSla},
	    {"GET",    "/api/v1/tenants/{id}/export",                Access::kTenant,  "export.read",  true,  false, ExportTenant},
	    {"POST",   "/api/v1/tenants/{id}/move",                  Access::kAdmin,   nullptr,        false, true,  MoveTenant},
	    {"GET",    "/api/v1/tenants/{id}/move",                  Access::kAdmin,   nullptr,        false, false, GetMove},
	    {"GET",    "/api/v1/openapi.json",                       Access::kPublic,  nullptr,        false, false, OpenApi},
	    {"GET",    "/metrics",                                   Access::kMetrics, nullptr,        false, false, Metrics},
	    {"GET",    "/healthz",                                   Access::kPublic,  nullptr,        false, false, Healthz},
	    {"GET",    "/readyz",                                    Access::kPublic,  nullptr,        false, false, Readyz},
	};
	// clang-format on
	return kRoutes;
}

} // namespace tenancyd
