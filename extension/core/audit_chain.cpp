// extension/core/audit_chain.cpp
// Canonical serialisation of audit events and the SHA-256 chain link (OpenSSL EVP); pure C++ for unit tests.
#include "tenancy/core/audit_chain.hpp"

#include "tenancy/core/error.hpp"

#include <memory>
#include <openssl/evp.h>

namespace tenancy::core {

namespace {

void
AppendField(std::string &out, std::string_view name, const std::optional<std::string> &value)
{
	out.append(name);
	out.push_back('=');
	if (!value) {
		out.push_back('~');
	} else {
		out.append(std::to_string(value->size()));
		out.push_back(':');
		out.append(*value);
	}
	out.push_back('\n');
}

} // namespace

std::string
CanonicalAuditEvent(const AuditEvent &event)
{
	std::string out = "tenancy-audit-v1\n";
	AppendField(out, "id", std::to_string(event.id));
	AppendField(out, "occurred_at", std::to_string(event.occurred_at_us));
	AppendField(out, "session_user", event.session_user);
	AppendField(out, "current_user", event.current_user);
	AppendField(out, "context_tenant", event.context_tenant);
	AppendField(out, "tenant_id", event.tenant_id);
	AppendField(out, "action", event.action);
	AppendField(out, "before", event.before);
	AppendField(out, "after", event.after);
	return out;
}

AuditDigest
AuditChainHash(const AuditDigest &prev, const AuditEvent &event)
{
	const std::string canonical = CanonicalAuditEvent(event);
	std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), &EVP_MD_CTX_free);
	AuditDigest digest{};
	unsigned int length = 0;
	if (!ctx || EVP_DigestInit_ex(ctx.get(), EVP_sha256(), nullptr) != 1 ||
	    EVP_DigestUpdate(ctx.get(), prev.data(), prev.size()) != 1 ||
	    EVP_DigestUpdate(ctx.get(), canonical.data(), canonical.size()) != 1 ||
	    EVP_DigestFinal_ex(ctx.get(), digest.data(), &length) != 1 || length != digest.size())
		throw Error(ErrorKind::kCryptoLibrary, "could not compute the audit log hash",
		            "OpenSSL failed to compute a SHA-256 digest.");
	return digest;
}

std::string
DigestHex(const AuditDigest &digest)
{
	static const char kHex[] = "0123456789abcdef";
	std::string out;
	out.reserve(digest.size() * 2);
	for (unsigned char b : digest) {
		out.push_back(kHex[b >> 4]);
		out.push_back(kHex[b & 0xf]);
	}
	return out;
}

} // namespace tenancy::core
