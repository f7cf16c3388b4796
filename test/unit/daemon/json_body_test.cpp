// test/unit/daemon/json_body_test.cpp
// Strict JSON bodies: syntax, duplicates, depth, NUL, UTF-8, types, unknown fields.
#include "errors.hpp"
#include "server/json_body.hpp"

#include <gtest/gtest.h>

using namespace tenancyd;

namespace {
int
StatusOf(const std::string &body)
{
	try {
		ParseJsonObject(body);
		return 200;
	} catch (const ApiError &e) {
		return e.status();
	}
}
std::string
Nested(int depth)
{
	return std::string(depth, '[') + std::string(depth, ']');
}
} // namespace

TEST(JsonBody, AcceptsObjectsAndEmpty)
{
	EXPECT_TRUE(ParseJsonObject("").empty());
	EXPECT_EQ(ParseJsonObject("{\"a\": {\"a\": 1}}")["a"]["a"], 1);
	EXPECT_EQ(ParseJsonObject("{\"s\": \"caf\xc3\xa9\"}")["s"], "caf\xc3\xa9");
}

TEST(JsonBody, RejectsBadInput)
{
	for (const std::string &bad : std::vector<std::string>{"{", "{\"a\":}", "{\"a\": 1,}", "[]", "\"str\"", "42", "null", "{\"a\": 1} x", "{'a': 1}", "{\"a\": 01}",
	      "{\"a\": 1, \"a\": 2}", "{\"a\": {\"b\": 1, \"b\": 1}}", "{\"a\": \"\\u0000\"}", "{\"\\u0000\": 1}",
	      std::string("{\"a\": \"x\0y\"}", 12), "{\"a\": \"\xff\"}", "{\"a\": \"\xc3\"}", "{\"a\": \"\xed\xa0\x80\"}",
	      "{\"a\": \"\\ud800\"}", "{\"a\": NaN}", "{/* c */}"})
		EXPECT_EQ(StatusOf(bad), 400) << bad;
}

TEST(JsonBody, DepthLimit)
{
	EXPECT_EQ(StatusOf("{\"a\": " + Nested(63) + "}"), 200); // 64 levels with the outer object
	EXPECT_EQ(StatusOf("{\"a\": " + Nested(64) + "}"), 400);
	EXPECT_EQ(StatusOf("{\"a\": " + Nested(100000) + "}"), 400); // no stack overflow
}

TEST(JsonBody, DuplicateKeysInSiblingObjectsAreFine)
{
	EXPECT_EQ(StatusOf("{\"a\": {\"x\": 1}, \"b\": {\"x\": 2}}"), 200);
}

TEST(JsonBody, FieldTypes)
{
	auto obj = ParseJsonObject("{\"s\": \"v\", \"n\": 1, \"b\": true, \"z\": null}");
	EXPECT_EQ(OptionalString(obj, "s"), "v");
	EXPECT_FALSE(OptionalString(obj, "z"));
	EXPECT_FALSE(OptionalString(obj, "missing"));
	EXPECT_THROW(OptionalString(obj, "n"), ApiError);
	EXPECT_THROW(RequiredString(obj, "z"), ApiError);
	EXPECT_EQ(OptionalBool(obj, "b"), true);
	EXPECT_THROW(OptionalBool(obj, "s"), ApiError);
	EXPECT_THROW(RejectUnknownFields(obj, {"s", "n", "b"}), ApiError);
	EXPECT_NO_THROW(RejectUnknownFields(obj, {"s", "n", "b", "z"}));
}
