// test/unit/daemon/params_test.cpp
// Request parameters: periods, uuids, limits, cursors, booleans.
#include "errors.hpp"
#include "server/params.hpp"

#include <gtest/gtest.h>

using namespace tenancyd;

TEST(Period, AcceptsDaysAndHours)
{
	auto d = ParsePeriod("30d", 9600);
	ASSERT_TRUE(d);
	EXPECT_EQ(d->hours, 720);
	EXPECT_EQ(d->interval, "720 hours");
	EXPECT_EQ(d->text, "30d");
	auto h = ParsePeriod("12h", 9600);
	ASSERT_TRUE(h);
	EXPECT_EQ(h->hours, 12);
	EXPECT_TRUE(ParsePeriod("400d", 9600));
}

TEST(Period, RejectsEverythingElse)
{
	for (const char *bad : {"", "d", "0d", "01d", "401d", "30", "30m", "-1d", "1.5d", "30 d", "30D", "9999999d",
	                        "1e3d", "30dd", "abc"})
		EXPECT_FALSE(ParsePeriod(bad, 9600)) << bad;
}

TEST(Uuid, CanonicalFormOnly)
{
	EXPECT_TRUE(IsUuid("550e8400-e29b-41d4-a716-446655440000"));
	EXPECT_TRUE(IsUuid("550E8400-E29B-41D4-A716-446655440000"));
	EXPECT_FALSE(IsUuid("550e8400e29b41d4a716446655440000"));
	EXPECT_FALSE(IsUuid("550e8400-e29b-41d4-a716-44665544000g"));
	EXPECT_FALSE(IsUuid("{550e8400-e29b-41d4-a716-446655440000}"));
	EXPECT_FALSE(IsUuid(""));
	EXPECT_THROW(RequireUuid("x", "id"), ApiError);
}

TEST(Limit, DefaultAndRange)
{
	EXPECT_EQ(ParseLimit(std::nullopt), 100);
	EXPECT_EQ(ParseLimit(std::string("1")), 1);
	EXPECT_EQ(ParseLimit(std::string("1000")), 1000);
	for (const char *bad : {"0", "1001", "-1", "", "abc", "10.5", "01", "99999999999"}) {
		try {
			ParseLimit(std::string(bad));
			ADD_FAILURE() << bad;
		} catch (const ApiError &e) {
			EXPECT_EQ(e.status(), 400);
		}
	}
}

TEST(Cursor, RoundTripsAndRejectsForgeries)
{
	std::string id = "550e8400-e29b-41d4-a716-446655440000";
	EXPECT_EQ(DecodeCursor(EncodeCursor(id)), id);
	for (const char *bad : {"", "abc", "!!!!", "djE6bm90LWEtdXVpZA"})
		EXPECT_THROW(DecodeCursor(bad), ApiError) << bad;
}

TEST(BoolParam, StrictValues)
{
	EXPECT_TRUE(ParseBoolParam("true", "x"));
	EXPECT_FALSE(ParseBoolParam("false", "x"));
	EXPECT_THROW(ParseBoolParam("yes", "x"), ApiError);
}
