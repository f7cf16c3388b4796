// test/unit/core/policy_sql_test.cpp
// Rendering of the isolation policies and table changes: quoting, operator qualification, idempotent shape.
#include "tenancy/core/policy_sql.hpp"

#include <gtest/gtest.h>

using namespace tenancy::core;

namespace {

PolicySpec
Spec(std::string schema, std::string table, std::string column, bool descendants = false)
{
	return PolicySpec{std::move(schema), std::move(table), std::move(column), descendants};
}

bool
Contains(const std::string &haystack, const std::string &needle)
{
	return haystack.find(needle) != std::string::npos;
}

} // namespace

TEST(PolicyBuilder, QuotesMixedCaseIdentifiers)
{
	EXPECT_EQ(QuoteIdent("Orders"), "\"Orders\"");
	EXPECT_EQ(QuoteIdent("select"), "\"select\"");
	EXPECT_EQ(QuoteIdent("a\"b"), "\"a\"\"b\"");
	EXPECT_EQ(QualifiedName(Spec("App Schema", "Line\"Items", "t")), "\"App Schema\".\"Line\"\"Items\"");
}

TEST(PolicyBuilder, PredicateIsIndexFriendly)
{
	const std::string p = IsolationPredicate(Spec("public", "orders", "tenant_id"));
	EXPECT_EQ(p, "(\"tenant_id\" OPERATOR(pg_catalog.=) tenancy._policy_tenant_id())");
	// never a sub-SELECT: that would become an InitPlan and lose plan-time partition pruning
	EXPECT_FALSE(Contains(p, "SELECT"));
	EXPECT_EQ(DescendantsPredicate(Spec("public", "orders", "Org")),
	          "(\"Org\" OPERATOR(pg_catalog.=) ANY (tenancy._policy_tenant_ids()))");
}

TEST(PolicyBuilder, RendersUsingAndWithCheckForAllCommands)
{
	auto sql = RenderPolicies(Spec("public", "orders", "tenant_id"));
	ASSERT_EQ(sql.size(), 5u); // three drops, isolation, cross-tenant
	EXPECT_EQ(sql[0], "DROP POLICY IF EXISTS \"tenancy_isolation\" ON \"public\".\"orders\"");
	EXPECT_EQ(sql[3], "CREATE POLICY \"tenancy_isolation\" ON \"public\".\"orders\" AS PERMISSIVE FOR ALL TO PUBLIC "
	                  "USING (\"tenant_id\" OPERATOR(pg_catalog.=) tenancy._policy_tenant_id()) "
	                  "WITH CHECK (\"tenant_id\" OPERATOR(pg_catalog.=) tenancy._policy_tenant_id())");
	EXPECT_EQ(sql[4], "CREATE POLICY \"tenancy_admin_cross_tenant\" ON \"public\".\"orders\" AS PERMISSIVE FOR SELECT "
	                  "TO tenancy_admin USING (tenancy._cross_tenant_active())");
}

TEST(PolicyBuilder, DescendantsPolicyIsReadOnly)
{
	auto sql = RenderPolicies(Spec("s", "t", "tenant_id", true));
	ASSERT_EQ(sql.size(), 6u);
	EXPECT_TRUE(Contains(sql[4], "\"tenancy_descendants_read\""));
	EXPECT_TRUE(Contains(sql[4], "FOR SELECT"));
	EXPECT_FALSE(Contains(sql[4], "WITH CHECK"));
	// the write policy stays the tenant itself
	EXPECT_FALSE(Contains(sql[3], "_policy_tenant_ids"));
}

TEST(PolicyBuilder, DropsEveryGeneratedPolicy)
{
	auto sql = RenderDropPolicies(Spec("s", "t", "c"));
	ASSERT_EQ(sql.size(), 3u);
	EXPECT_TRUE(Contains(sql[1], "\"tenancy_descendants_read\""));
	EXPECT_TRUE(Contains(sql[2], "\"tenancy_admin_cross_tenant\""));
}

TEST(PolicyBuilder, RendersTableChanges)
{
	auto spec = Spec("public", "Orders", "Tenant");
	EXPECT_EQ(RenderRowSecurity(spec, true, true),
	          "ALTER TABLE \"public\".\"Orders\" ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY");
	EXPECT_EQ(RenderRowSecurity(spec, false, false),
	          "ALTER TABLE \"public\".\"Orders\" DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY");
	EXPECT_EQ(RenderGeneratedDefault(spec),
	          "ALTER TABLE ONLY \"public\".\"Orders\" ALTER COLUMN \"Tenant\" SET DEFAULT tenancy.current_tenant_id()");
	EXPECT_EQ(RenderColumnDefault(spec, ""),
	          "ALTER TABLE ONLY \"public\".\"Orders\" ALTER COLUMN \"Tenant\" DROP DEFAULT");
	EXPECT_EQ(RenderNotNull(spec, true), "ALTER TABLE \"public\".\"Orders\" ALTER COLUMN \"Tenant\" SET NOT NULL");
	EXPECT_EQ(RenderNotNull(spec, false), "ALTER TABLE \"public\".\"Orders\" ALTER COLUMN \"Tenant\" DROP NOT NULL");
	EXPECT_EQ(RenderCreateIndex(spec), "CREATE INDEX ON \"public\".\"Orders\" (\"Tenant\")");
	EXPECT_EQ(RenderTruncateGuard(spec),
	          "CREATE OR REPLACE TRIGGER \"tenancy_refuse_truncate\" BEFORE TRUNCATE ON "
	          "\"public\".\"Orders\" FOR EACH STATEMENT EXECUTE FUNCTION tenancy._refuse_truncate()");
	EXPECT_EQ(RenderDropTruncateGuard(spec),
	          "DROP TRIGGER IF EXISTS \"tenancy_refuse_truncate\" ON \"public\".\"Orders\"");
	EXPECT_EQ(RenderEraseRows(spec), "DELETE FROM \"public\".\"Orders\" WHERE \"Tenant\" OPERATOR(pg_catalog.=) $1");
}
