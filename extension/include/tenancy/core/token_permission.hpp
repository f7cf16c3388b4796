// extension/include/tenancy/core/token_permission.hpp
// The role-to-action matrix of tenancyd tenant tokens (SPEC.md "What a tenant token may do"); no PostgreSQL here.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <string_view>

namespace tenancy::core {

enum class TokenPermission { kAllowed, kDenied, kUnknownAction };

// Whether a token of role (a tenancy.user_role label) may perform action, a tenancyd route action such as
// "tenant.read"; "tenant.patch.<key>" refines PATCH per changed key. Unknown actions are told apart, never denied
// silently, so a typo in a route table fails loudly.
TokenPermission TokenPermits(std::string_view role, std::string_view action) noexcept;

} // namespace tenancy::core
