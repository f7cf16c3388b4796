// extension/core/validation.cpp
// Slug and e-mail validation for the tenant registry; pure C++ so the unit tests cover every rule.
#include "tenancy/core/validation.hpp"

#include "tenancy/core/error.hpp"

namespace tenancy::core {

namespace {

bool
IsSlugChar(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

bool
IsAlnumLower(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

} // namespace

void
ValidateSlug(std::string_view slug)
{
	const std::string hint = "A slug has 3 to 63 characters: lower-case letters, digits and inner hyphens.";
	if (slug.size() < 3 || slug.size() > 63)
		throw Error(ErrorKind::kInvalidInput, "invalid slug \"" + std::string(slug) + "\"",
		            "A slug must be between 3 and 63 characters long.", hint);
	for (char c : slug)
		if (!IsSlugChar(c))
			throw Error(ErrorKind::kInvalidInput, "invalid slug \"" + std::string(slug) + "\"",
			            "A slug may contain only lower-case letters, digits and hyphens.", hint);
	if (!IsAlnumLower(slug.front()) || !IsAlnumLower(slug.back()))
		throw Error(ErrorKind::kInvalidInput, "invalid slug \"" + std::string(slug) + "\"",
		            "A slug must start and end with a letter or a digit.", hint);
}

std::string
NormalizeEmail(std::string_view email)
{
	auto invalid = [&](const char *detail) {
		return Error(ErrorKind::kInvalidInput, "invalid email address \"" + std::string(email.substr(0, 80)) + "\"",
		             detail);
	};
	if (email.empty() || email.size() > 254)
		throw invalid("An email address must have between 1 and 254 characters.");
	std::string out;
	out.reserve(email.size());
	for (char c : email) {
		unsigned char u = static_cast<unsigned char>(c);
		if (u <= 0x20 || u == 0x7f)
			throw invalid("An email address may not contain spaces or control characters.");
		if (c == '"' || c == '(' || c == ')' || c == ',' || c == ':' || c == ';' || c == '<' || c == '>' ||
		    c == '[' || c == ']' || c == '\\')
			throw invalid("An email address may not contain quotes, brackets or separators.");
		out.push_back(c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c);
	}
	auto at = out.find('@');
	if (at == std::string::npos || out.find('@', at + 1) != std::string::npos)
		throw invalid("An email address must contain exactly one \"@\".");
	std::string_view local(out.data(), at), domain(out.data() + at + 1, out.size() - at - 1);
	if (local.empty() || local.size() > 64)
		throw invalid("The part before \"@\" must have between 1 and 64 characters.");
	if (local.front() == '.' || local.back() == '.' || local.find("..") != std::string_view::npos)
		throw invalid("The part before \"@\" may not start or end with a dot or contain two dots in a row.");
	auto dot = domain.find('.');
	if (domain.empty() || dot == std::string_view::npos || domain.front() == '.' || domain.back() == '.' ||
	    domain.find("..") != std::string_view::npos || domain.front() == '-')
		throw invalid("The domain must be a dotted name such as \"example.com\".");
	return out;
}

} // namespace tenancy::core
