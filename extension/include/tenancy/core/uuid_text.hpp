// extension/include/tenancy/core/uuid_text.hpp
// Parsing and formatting of uuid text for the tenant context (app.tenant_id values, signed tokens).
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace tenancy::core {

using UuidBytes = std::array<std::uint8_t, 16>;

// Accepts the forms PostgreSQL's uuid input accepts for a context value: 32 hex digits, optionally with a hyphen
// after any group of four, optionally in braces, any case. Returns false (never throws) for anything else, because
// a malformed context value means "no context", not an error.
bool ParseUuid(std::string_view text, UuidBytes &out) noexcept;

// The canonical lower-case 8-4-4-4-12 form.
std::string FormatUuid(const UuidBytes &bytes);

} // namespace tenancy::core
