// extension/core/token_permission.cpp
// The tenant token role-to-action matrix, as plain string comparisons (called once per tenancyd request).
#include "tenancy/core/token_permission.hpp"

#include <initializer_list>

namespace tenancy::core {

namespace {

bool
OneOf(std::string_view value, std::initializer_list<std::string_view> set) noexcept
{
	for (std::string_view s : set)
		if (value == s)
			return true;
	return false;
}

TokenPermission
Allow(bool allowed) noexcept
{
	return allowed ? TokenPermission::kAllowed : TokenPermission::kDenied;
}

} // namespace

TokenPermission
TokenPermits(std::string_view role, std::string_view action) noexcept
{
	if (OneOf(action, {"tenant.read", "usage.read", "sla.read"}))
		return Allow(role != "guest");
	if (OneOf(action, {"users.read", "users.write"}))
		return Allow(OneOf(role, {"owner", "admin", "manager"}));
	if (OneOf(action, {"tenant.write", "tokens.write", "keys.write", "export.read"}))
		return Allow(OneOf(role, {"owner", "admin"}));
	if (action == "tenant.patch.plan")
		return Allow(role == "owner"); // a plan change is billing: only the owner has billing "full"
	// Lifecycle, hierarchy and residency (where the data lives: a move between clusters) stay with the operator's
	// admin token.
	if (OneOf(action, {"tenant.patch.status", "tenant.patch.parent_tenant_id", "tenant.patch.data_residency"}))
		return TokenPermission::kDenied;
	if (action.starts_with("tenant.patch."))
		return Allow(OneOf(role, {"owner", "admin"}));
	if (action == "none")
		return TokenPermission::kDenied;
	return TokenPermission::kUnknownAction;
}

} // namespace tenancy::core
