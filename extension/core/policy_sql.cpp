// extension/core/policy_sql.cpp
// SQL text of the isolation policies and table changes; identifiers always quoted, operators schema-qualified.
#include "tenancy/core/policy_sql.hpp"

namespace tenancy::core {

std::string
QuoteIdent(std::string_view ident)
{
	std::string out;
	out.reserve(ident.size() + 2);
	out.push_back('"');
	for (char c : ident) {
		if (c == '"')
			out.push_back('"');
		out.push_back(c);
	}
	out.push_back('"');
	return out;
}

std::string
QualifiedName(const PolicySpec &spec)
{
	return QuoteIdent(spec.schema) + "." + QuoteIdent(spec.table);
}

std::string
IsolationPredicate(const PolicySpec &spec)
{
	return "(" + QuoteIdent(spec.column) + " OPERATOR(pg_catalog.=) tenancy._policy_tenant_id())";
}

std::string
DescendantsPredicate(const PolicySpec &spec)
{
	return "(" + QuoteIdent(spec.column) + " OPERATOR(pg_catalog.=) ANY (tenancy._policy_tenant_ids()))";
}

std::string
CrossTenantPredicate()
{
	return "tenancy._cross_tenant_active()";
}

std::vector<std::string>
RenderDropPolicies(const PolicySpec &spec)
{
	std::vector<std::string> out;
	for (const char *name : {kIsolationPolicy, kDescendantsPolicy, kCrossTenantPolicy})
		out.push_back("DROP POLICY IF EXISTS " + QuoteIdent(name) + " ON " + QualifiedName(spec));
	return out;
}

std::vector<std::string>
RenderPolicies(const PolicySpec &spec)
{
	const std::string table = QualifiedName(spec);
	const std::string predicate = IsolationPredicate(spec);
	std::vector<std::string> out = RenderDropPolicies(spec);
	// One permissive policy for every command: USING hides other tenants' rows from SELECT/UPDATE/DELETE, WITH
	// CHECK refuses inserting them and moving a row to another tenant.
	out.push_back("CREATE POLICY " + QuoteIdent(kIsolationPolicy) + " ON " + table +
	              " AS PERMISSIVE FOR ALL TO PUBLIC USING " + predicate + " WITH CHECK " + predicate);
	// SELECT only: permissive policies are OR-ed per command, so this widens reads and nothing else.
	if (spec.include_descendants)
		out.push_back("CREATE POLICY " + QuoteIdent(kDescendantsPolicy) + " ON " + table +
		              " AS PERMISSIVE FOR SELECT TO PUBLIC USING " + DescendantsPredicate(spec));
	out.push_back("CREATE POLICY " + QuoteIdent(kCrossTenantPolicy) + " ON " + table +
	              " AS PERMISSIVE FOR SELECT TO tenancy_admin USING (" + CrossTenantPredicate() + ")");
	return out;
}

std::string
RenderRowSecurity(const PolicySpec &spec, bool enable, bool force)
{
	return "ALTER TABLE " + QualifiedName(spec) + (enable ? " ENABLE" : " DISABLE") + " ROW LEVEL SECURITY, " +
	       (force ? "FORCE" : "NO FORCE") + " ROW LEVEL SECURITY";
}

std::string
RenderColumnDefault(const PolicySpec &spec, std::string_view expression)
{
	std::string head = "ALTER TABLE ONLY " + QualifiedName(spec) + " ALTER COLUMN " + QuoteIdent(spec.column);
	if (expression.empty())
		return head + " DROP DEFAULT";
	return head + " SET DEFAULT " + std::string(expression);
}

std::string
RenderGeneratedDefault(const PolicySpec &spec)
{
	return RenderColumnDefault(spec, "tenancy.current_tenant_id()");
}

std::string
RenderNotNull(const PolicySpec &spec, bool not_null)
{
	return "ALTER TABLE " + QualifiedName(spec) + " ALTER COLUMN " + QuoteIdent(spec.column) +
	       (not_null ? " SET NOT NULL" : " DROP NOT NULL");
}

std::string
RenderCreateIndex(const PolicySpec &spec)
{
	return "CREATE INDEX ON " + QualifiedName(spec) + " (" + QuoteIdent(spec.column) + ")";
}

std::string
RenderTruncateGuard(const PolicySpec &spec)
{
	return "CREATE OR REPLACE TRIGGER " + QuoteIdent(kTruncateTrigger) + " BEFORE TRUNCATE ON " + QualifiedName(spec) +
	       " FOR EACH STATEMENT EXECUTE FUNCTION tenancy._refuse_truncate()";
}

std::string
RenderDropTruncateGuard(const PolicySpec &spec)
{
	return "DROP TRIGGER IF EXISTS " + QuoteIdent(kTruncateTrigger) + " ON " + QualifiedName(spec);
}

std::string
RenderEraseRows(const PolicySpec &spec)
{
	return "DELETE FROM " + QualifiedName(spec) + " WHERE " + QuoteIdent(spec.column) + " OPERATOR(pg_catalog.=) $1";
}

} // namespace tenancy::core
