// test/unit/daemon/errors_test.cpp
// SQLSTATE -> HTTP mapping (SPEC.md "Errors") and the JSON error body.
#include "errors.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

using namespace tenancyd;

TEST(SqlStateMapping, SpecTable)
{
	EXPECT_EQ(MapSqlState("TN001").status, 404);
	EXPECT_EQ(MapSqlState("TN002").status, 403);
	EXPECT_EQ(MapSqlState("TN003").status, 429);
	EXPECT_EQ(MapSqlState("TN004").status, 403);
	EXPECT_EQ(MapSqlState("TN005").status, 400);
	EXPECT_EQ(MapSqlState("TN006").status, 400);
	EXPECT_EQ(MapSqlState("TN007").status, 409);
	EXPECT_EQ(MapSqlState("23505").status, 409);
	EXPECT_EQ(MapSqlState("42501").status, 403);
	EXPECT_EQ(MapSqlState("55000").status, 503);
}

TEST(SqlStateMapping, ClassesAndUnknowns)
{
	EXPECT_EQ(MapSqlState("22P02").status, 400); // invalid text representation (bad enum value)
	EXPECT_EQ(MapSqlState("22023").status, 400);
	EXPECT_EQ(MapSqlState("08006").status, 503);
	EXPECT_EQ(MapSqlState("57P01").status, 503); // admin shutdown
	EXPECT_EQ(MapSqlState("57014").status, 503); // statement timeout
	EXPECT_EQ(MapSqlState("42883").status, 501);
	EXPECT_EQ(MapSqlState("XX000").status, 500);
	EXPECT_EQ(MapSqlState("42P01").status, 500);
	EXPECT_EQ(MapSqlState("").status, 500);
}

TEST(SqlStateMapping, InternalMessagesAreHidden)
{
	ApiError e = ErrorFromSqlState("XX000", "relation \"secret_table\" does not exist", "");
	EXPECT_EQ(e.status(), 500);
	EXPECT_EQ(std::string(e.what()), "internal error");
	ApiError tn = ErrorFromSqlState("TN005", "invalid slug \"A\"", "Slugs are lower case.");
	EXPECT_EQ(std::string(tn.what()), "invalid slug \"A\"");
	EXPECT_EQ(tn.detail(), "Slugs are lower case.");
	EXPECT_EQ(tn.sqlstate(), "TN005");
}

// A tenant frozen by a live move: retryable 503 with Retry-After, the server's message kept (it names the region).
TEST(SqlStateMapping, MoveFreezeIsRetryable)
{
	EXPECT_EQ(MapSqlState("55006").status, 503);
	EXPECT_STREQ(MapSqlState("55006").code, "tenant_moving");
	ApiError e = ErrorFromSqlState("55006", "tenant \"t\" is being moved to region \"us\"",
	                               "Writes are paused for the final switch of a live move.");
	EXPECT_EQ(e.status(), 503);
	EXPECT_EQ(e.retry_after, 1);
	EXPECT_EQ(e.sqlstate(), "55006");
	EXPECT_EQ(std::string(e.what()), "tenant \"t\" is being moved to region \"us\"");
	// Other states of class 55 are not retryable moves: 55000 keeps its mapping and no Retry-After.
	EXPECT_EQ(ErrorFromSqlState("55000", "master key missing", "").retry_after, 0);
	EXPECT_EQ(MapSqlState("55P03").status, 500);
}

TEST(ErrorBody, ShapeAndNulls)
{
	auto doc = nlohmann::json::parse(ErrorBody("invalid_json", "malformed JSON at byte 3", ""));
	EXPECT_EQ(doc["error"]["code"], "invalid_json");
	EXPECT_EQ(doc["error"]["message"], "malformed JSON at byte 3");
	EXPECT_TRUE(doc["error"]["sqlstate"].is_null());
	EXPECT_TRUE(doc["error"]["detail"].is_null());
	auto sql = nlohmann::json::parse(ErrorBody("tenant_not_found", "m", "TN001", "d"));
	EXPECT_EQ(sql["error"]["sqlstate"], "TN001");
	EXPECT_EQ(sql["error"]["detail"], "d");
	// Invalid UTF-8 from anywhere never breaks the error body.
	EXPECT_NO_THROW(nlohmann::json::parse(ErrorBody("x", "bad \xff byte", "")));
}
