// extension/core/uuid_text.cpp
// uuid text parsing (PostgreSQL's accepted forms) and canonical formatting, without PostgreSQL.
#include "tenancy/core/uuid_text.hpp"

namespace tenancy::core {

namespace {

int
HexValue(char c) noexcept
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

} // namespace

// Mirrors string_to_uuid() in PostgreSQL's utils/adt/uuid.c: a hyphen may follow any group of four hex digits.
bool
ParseUuid(std::string_view text, UuidBytes &out) noexcept
{
	std::size_t pos = 0;
	bool braces = false;
	if (!text.empty() && text.front() == '{') {
		braces = true;
		pos = 1;
	}
	for (int i = 0; i < 16; i++) {
		if (pos + 2 > text.size())
			return false;
		int hi = HexValue(text[pos]);
		int lo = HexValue(text[pos + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
		pos += 2;
		if (pos < text.size() && text[pos] == '-' && i % 2 == 1 && i < 15)
			pos++;
	}
	if (braces) {
		if (pos >= text.size() || text[pos] != '}')
			return false;
		pos++;
	}
	return pos == text.size();
}

std::string
FormatUuid(const UuidBytes &bytes)
{
	static const char kHex[] = "0123456789abcdef";
	std::string out;
	out.reserve(36);
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out.push_back('-');
		out.push_back(kHex[bytes[i] >> 4]);
		out.push_back(kHex[bytes[i] & 0xf]);
	}
	return out;
}

} // namespace tenancy::core
