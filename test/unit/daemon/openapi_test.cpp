// test/unit/daemon/openapi_test.cpp
// daemon/openapi.json and the route table describe the same routes: neither can drift from the other.
#include "handlers/handlers.hpp"
#include "server/context.hpp"
#include "server/server.hpp"

#include <algorithm>
#include <gtest/gtest.h>
#include <set>

using namespace tenancyd;

TEST(OpenApi, MatchesRouteTable)
{
	auto doc = nlohmann::json::parse(handlers::OpenApiDocument());
	EXPECT_EQ(doc["openapi"].get<std::string>().substr(0, 2), "3.");
	std::set<std::string> documented, routed;
	for (auto &[path, ops] : doc["paths"].items())
		for (auto &[method, op] : ops.items()) {
			std::string m = method;
			std::transform(m.begin(), m.end(), m.begin(), ::toupper);
			documented.insert(m + " " + path);
			EXPECT_TRUE(op.contains("responses")) << m << " " << path;
		}
	for (const Route &r : Routes())
		routed.insert(std::string(r.method) + " " + r.path);
	EXPECT_EQ(documented, routed);
}

TEST(OpenApi, SchemaReferencesResolve)
{
	std::string text = handlers::OpenApiDocument();
	auto doc = nlohmann::json::parse(text);
	const std::string prefix = "#/components/schemas/";
	for (size_t p = text.find(prefix); p != std::string::npos; p = text.find(prefix, p + 1)) {
		size_t end = text.find('"', p);
		std::string name = text.substr(p + prefix.size(), end - p - prefix.size());
		EXPECT_TRUE(doc["components"]["schemas"].contains(name)) << name;
	}
}

TEST(Routes, PathParametersAreNamed)
{
	std::vector<std::string> names;
	EXPECT_EQ(PatternToRegex("/api/v1/tenants/{id}/tokens/{token_id}", names), "/api/v1/tenants/([^/]+)/tokens/([^/]+)");
	EXPECT_EQ(names, (std::vector<std::string>{"id", "token_id"}));
	names.clear();
	EXPECT_EQ(PatternToRegex("/api/v1/openapi.json", names), "/api/v1/openapi\\.json");
}

// Issue #16: response schemas had no `required` (a client could not rely on any field) and the export was an
// untyped object.
TEST(OpenApi, ResponseSchemasNameTheirRequiredFields)
{
	auto doc = nlohmann::json::parse(handlers::OpenApiDocument());
	const auto &schemas = doc["components"]["schemas"];
	for (const char *name : {"Tenant", "Quotas", "User", "Usage", "Trends", "TokenIssued", "Sla", "Move", "Error",
	                         "Page", "TenantExport"}) {
		ASSERT_TRUE(schemas.contains(name)) << name;
		ASSERT_TRUE(schemas[name].contains("required")) << name;
		for (const auto &field : schemas[name]["required"])
			EXPECT_TRUE(schemas[name]["properties"].contains(field.get<std::string>())) << name << "." << field;
	}
	EXPECT_EQ(doc["paths"]["/api/v1/tenants/{id}/export"]["get"]["responses"]["200"]["content"]["application/json"]
	             ["schema"]["$ref"],
	          "#/components/schemas/TenantExport");
}
