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

// 1e400 once escaped as nlohmann's out_of_range (a 500); a raw NUL once ended the input early (trailing bytes).
TEST(JsonBody, OverflowNulAndTrailingBytesAre400)
{
	for (const std::string &bad :
	     std::vector<std::string>{std::string("{}\0garbage", 10), std::string("{\"a\": 1}\0{\"b\": 2}", 17),
	                              std::string("\0{}", 3), std::string("{\"a\": 1\0}", 9), "{\"a\": 1e400} x",
	                              "{\"a\": 1e400, \"a\": 1}", "{\"a\": 1e400", "{\"a\": -}", "{\"a\": 1.}",
	                              "{\"a\": .5}", "{\"a\": 1e}", "{\"a\": +1}", "{\"a\": 1e400e1}", "{\"a\": --1}"})
		EXPECT_EQ(StatusOf(bad), 400) << bad;
	for (const std::string &ok : std::vector<std::string>{
	         "{\"a\": 1e400}", "{\"a\": -1e999}", "{\"a\": [1E+400, -0.5e-400]}", "{\"a\": {\"b\": 1e400}}",
	         "{\"a\": 18446744073709551616}", "{\"a\": 1e-400}", "{\"a\": \"1e400\", \"b\": 1e400}",
	         "{\"a\": \"\\\"1e400\", \"b\": 2}", "{\"a\": " + std::string("1") + std::string(5000, '0') + "}"})
		EXPECT_EQ(StatusOf(ok), 200) << ok;
	// Strings that look like numbers are untouched.
	EXPECT_EQ(ParseJsonObject("{\"a\": \"1e400\", \"b\": 1e400}")["a"], "1e400");
}

TEST(JsonBody, ParsedNumbersAreOnlyPlaceholdersForOverflow)
{
	auto doc = ParseJsonObject("{\"a\": 1e400, \"b\": 2, \"c\": \"x\"}");
	EXPECT_TRUE(doc["a"].is_number());
	EXPECT_EQ(doc["b"], 2);
	EXPECT_THROW(OptionalString(doc, "a"), ApiError); // a number is still a number for the type checks
}
