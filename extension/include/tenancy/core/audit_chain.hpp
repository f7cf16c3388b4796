// extension/include/tenancy/core/audit_chain.hpp
// The audit log's hash chain: a canonical byte string per event and SHA-256 links between consecutive events.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace tenancy::core {

// One audit event as the chain sees it. Every field is text or an integer that survives pg_dump/pg_restore
// unchanged (role names, not OIDs; jsonb in its canonical output form; timestamps as PostgreSQL microseconds).
struct AuditEvent {
	std::int64_t id = 0;
	std::int64_t occurred_at_us = 0; // microseconds since 2000-01-01 00:00 UTC (PostgreSQL TimestampTz)
	std::string session_user;
	std::string current_user;
	std::optional<std::string> context_tenant; // uuid text, absent when there was no tenant context
	std::optional<std::string> tenant_id;      // uuid text of the tenant the event is about
	std::string action;
	std::optional<std::string> before; // jsonb text
	std::optional<std::string> after;
};

using AuditDigest = std::array<unsigned char, 32>;

// The chain starts from 32 zero bytes.
constexpr AuditDigest kAuditGenesis{};

// Unambiguous serialisation: a version line, then one "name=" line per field holding either "~" (SQL NULL) or
// "<byte length>:<bytes>", so no choice of field contents can make two different events serialise alike.
std::string CanonicalAuditEvent(const AuditEvent &event);

// SHA-256(prev || CanonicalAuditEvent(event)) with OpenSSL EVP. Throws Error(kCryptoLibrary) if OpenSSL fails.
AuditDigest AuditChainHash(const AuditDigest &prev, const AuditEvent &event);

// Lower-case hex of a digest, for messages and tests.
std::string DigestHex(const AuditDigest &digest);

} // namespace tenancy::core
