// test/unit/core/token_permission_test.cpp
// The tenant token role-to-action matrix of SPEC.md, cell by cell, and the actions it must refuse to guess about.
#include "tenancy/core/token_permission.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

using tenancy::core::TokenPermission;
using tenancy::core::TokenPermits;

namespace {

const std::vector<std::string> kRoles = {"owner", "admin", "manager", "developer", "viewer", "guest"};

// The roles allowed an action, from the full list.
std::vector<std::string>
AllowedRoles(const std::string &action)
{
	std::vector<std::string> allowed;
	for (const std::string &role : kRoles) {
		TokenPermission p = TokenPermits(role, action);
		EXPECT_NE(p, TokenPermission::kUnknownAction) << action;
		if (p == TokenPermission::kAllowed)
			allowed.push_back(role);
	}
	return allowed;
}

} // namespace

TEST(TokenPermission, ReadsAreForEveryRoleButGuest)
{
	std::vector<std::string> expected = {"owner", "admin", "manager", "developer", "viewer"};
	EXPECT_EQ(AllowedRoles("tenant.read"), expected);
	EXPECT_EQ(AllowedRoles("usage.read"), expected);
	EXPECT_EQ(AllowedRoles("sla.read"), expected);
}

TEST(TokenPermission, UsersNeedManagerOrAbove)
{
	std::vector<std::string> expected = {"owner", "admin", "manager"};
	EXPECT_EQ(AllowedRoles("users.read"), expected);
	EXPECT_EQ(AllowedRoles("users.write"), expected);
}

TEST(TokenPermission, AdministrationNeedsOwnerOrAdmin)
{
	std::vector<std::string> expected = {"owner", "admin"};
	for (const char *action : {"tenant.write", "tokens.write", "keys.write", "export.read", "tenant.patch.name",
	                           "tenant.patch.settings", "tenant.patch."})
		EXPECT_EQ(AllowedRoles(action), expected) << action;
}

TEST(TokenPermission, PlanIsOwnerOnlyAndLifecycleAndResidencyAreNobodys)
{
	EXPECT_EQ(AllowedRoles("tenant.patch.plan"), std::vector<std::string>{"owner"});
	EXPECT_TRUE(AllowedRoles("tenant.patch.status").empty());
	EXPECT_TRUE(AllowedRoles("tenant.patch.parent_tenant_id").empty());
	EXPECT_TRUE(AllowedRoles("tenant.patch.data_residency").empty()); // a move between clusters: operator only
	EXPECT_TRUE(AllowedRoles("none").empty());
}

TEST(TokenPermission, UnknownActionsAreNotGuessed)
{
	for (const char *action : {"", "drop.everything", "tenant.read ", "Tenant.read", "usage", "tenant.patch",
	                           "tenant_patch.plan", "users.read.x", "None"})
		EXPECT_EQ(TokenPermits("owner", action), TokenPermission::kUnknownAction) << action;
	// An action with an embedded NUL is not the action before it.
	EXPECT_EQ(TokenPermits("owner", std::string_view("tenant.read\0x", 13)), TokenPermission::kUnknownAction);
}

TEST(TokenPermission, UnknownRolesGetNothingButReads)
{
	// tenancy.user_role cannot hold other labels; this pins the matrix's own fallbacks.
	EXPECT_EQ(TokenPermits("root", "users.write"), TokenPermission::kDenied);
	EXPECT_EQ(TokenPermits("", "tenant.patch.plan"), TokenPermission::kDenied);
	EXPECT_EQ(TokenPermits("Guest", "tenant.read"), TokenPermission::kAllowed);
}
