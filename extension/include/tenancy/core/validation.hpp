// extension/include/tenancy/core/validation.hpp
// Input rules of the tenant registry (SPEC.md "Domain"): slugs and e-mail addresses.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <string>
#include <string_view>

namespace tenancy::core {

// A slug is 3-63 characters of ^[a-z0-9](?:[a-z0-9-]*[a-z0-9])$. Throws Error(kInvalidInput) naming the rule broken.
void ValidateSlug(std::string_view slug);

// A pragmatic address check (local@domain, one @, no spaces or control characters, a dot in the domain, at most
// 254 characters). Returns the address lower-cased, as it is stored and compared. Throws Error(kInvalidInput).
std::string NormalizeEmail(std::string_view email);

} // namespace tenancy::core
