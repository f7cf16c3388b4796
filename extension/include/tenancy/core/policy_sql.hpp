// extension/include/tenancy/core/policy_sql.hpp
// Renders the SQL that enable_isolation/disable_isolation run: policies, RLS flags, default, NOT NULL, index.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace tenancy::core {

// Policy names: verify_isolation() and disable_isolation() find the generated policies by these names.
inline constexpr const char *kIsolationPolicy = "tenancy_isolation";
inline constexpr const char *kDescendantsPolicy = "tenancy_descendants_read";
inline constexpr const char *kCrossTenantPolicy = "tenancy_admin_cross_tenant";
inline constexpr const char *kTruncateTrigger = "tenancy_refuse_truncate";

// What to protect: a table (schema-qualified) and its tenant column.
struct PolicySpec {
	std::string schema;
	std::string table;
	std::string column;
	bool include_descendants = false;
};

// Always double-quotes (and doubles embedded quotes), so keywords, mixed case and odd characters are all safe.
std::string QuoteIdent(std::string_view ident);

// "schema"."table"
std::string QualifiedName(const PolicySpec &spec);

// The row predicate: a STABLE LEAKPROOF call compared with OPERATOR(pg_catalog.=), never wrapped in a sub-SELECT,
// so it is an index condition and drives plan-time (initial) partition pruning.
std::string IsolationPredicate(const PolicySpec &spec);

// Read-only widening for include_descendants: the column equal to any of the context tenant and its descendants.
std::string DescendantsPredicate(const PolicySpec &spec);

// The cross-tenant path of tenancy_admin members, enabled per transaction by tenancy.begin_cross_tenant().
std::string CrossTenantPredicate();

// DROP POLICY IF EXISTS + CREATE POLICY for every generated policy (the descendants policy only when asked for,
// else dropped), so running it twice gives the same result and repairs a policy edited by hand.
std::vector<std::string> RenderPolicies(const PolicySpec &spec);

// DROP POLICY IF EXISTS for every generated policy.
std::vector<std::string> RenderDropPolicies(const PolicySpec &spec);

// ALTER TABLE ... ENABLE/DISABLE and FORCE/NO FORCE ROW LEVEL SECURITY.
std::string RenderRowSecurity(const PolicySpec &spec, bool enable, bool force);

// ALTER TABLE ONLY ... ALTER COLUMN ... SET DEFAULT tenancy.current_tenant_id(), or the given expression
// (already deparsed SQL) when restoring; an empty expression drops the default.
std::string RenderColumnDefault(const PolicySpec &spec, std::string_view expression);
std::string RenderGeneratedDefault(const PolicySpec &spec);

// ALTER TABLE ... ALTER COLUMN ... SET/DROP NOT NULL (recursing to partitions, as PostgreSQL requires).
std::string RenderNotNull(const PolicySpec &spec, bool not_null);

// CREATE INDEX ON ... (column); PostgreSQL chooses a free name.
std::string RenderCreateIndex(const PolicySpec &spec);

// The BEFORE TRUNCATE guard (RLS does not apply to TRUNCATE, which would remove every tenant's rows).
std::string RenderTruncateGuard(const PolicySpec &spec);
std::string RenderDropTruncateGuard(const PolicySpec &spec);

// DELETE FROM ... WHERE column = $1 (the tenant to erase is the only parameter).
std::string RenderEraseRows(const PolicySpec &spec);

} // namespace tenancy::core
