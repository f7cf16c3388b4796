// test/unit/core/uuid_text_test.cpp
// uuid text forms accepted as a tenant context, and malformed ones that must mean "no context".
#include "tenancy/core/uuid_text.hpp"

#include <gtest/gtest.h>

using tenancy::core::FormatUuid;
using tenancy::core::ParseUuid;
using tenancy::core::UuidBytes;

TEST(UuidText, ParsesCanonicalAndRoundTrips)
{
	UuidBytes b{};
	ASSERT_TRUE(ParseUuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", b));
	EXPECT_EQ(b[0], 0xa0);
	EXPECT_EQ(b[15], 0x11);
	EXPECT_EQ(FormatUuid(b), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
}

TEST(UuidText, AcceptsPostgresAlternativeForms)
{
	UuidBytes b{};
	EXPECT_TRUE(ParseUuid("A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11", b));
	EXPECT_TRUE(ParseUuid("{a0eebc99-9c0b4ef8-bb6d6bb9-bd380a11}", b));
	EXPECT_TRUE(ParseUuid("a0eebc999c0b4ef8bb6d6bb9bd380a11", b));
	EXPECT_TRUE(ParseUuid("a0ee-bc99-9c0b-4ef8-bb6d-6bb9-bd38-0a11", b));
	EXPECT_EQ(FormatUuid(b), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
}

TEST(UuidText, RejectsMalformedValues)
{
	UuidBytes b{};
	EXPECT_FALSE(ParseUuid("", b));
	EXPECT_FALSE(ParseUuid("not-a-uuid", b));
	EXPECT_FALSE(ParseUuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1", b));   // one digit short
	EXPECT_FALSE(ParseUuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a111", b)); // one digit long
	EXPECT_FALSE(ParseUuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1g", b));  // not hex
	EXPECT_FALSE(ParseUuid("{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", b)); // unclosed brace
	EXPECT_FALSE(ParseUuid("a0eebc99--9c0b-4ef8-bb6d-6bb9bd380a11", b)); // double hyphen
	EXPECT_FALSE(ParseUuid("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-", b)); // trailing hyphen
	EXPECT_FALSE(ParseUuid(" a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", b)); // leading space
	EXPECT_FALSE(ParseUuid(std::string_view("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\0", 37), b));
}
