// test/unit/core/partition_plan_test.cpp
// Partition names, hash-bound parsing and the split/merge plans of repartition.
#include "tenancy/core/error.hpp"
#include "tenancy/core/partition_plan.hpp"

#include "support/error_kind.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <set>
#include <string>

using namespace tenancy::core;
using tenancy::test::KindOf;

namespace {

// Every hash value lands in exactly one bound of a layout: checked over a finer grid of (12288, v).
void
ExpectExactCover(const std::vector<HashBound> &bounds)
{
	for (int v = 0; v < 12288; v++) {
		int hits = 0;
		for (const HashBound &b : bounds)
			if (Contains(b, HashBound{12288, v}))
				hits++;
		ASSERT_EQ(hits, 1) << "hash value " << v;
	}
}

// The bounds of a fresh table with n partitions, as create_partitions lays them out: (n, 0) .. (n, n - 1).
std::vector<HashBound>
InitialBounds(int partitions)
{
	std::vector<HashBound> bounds;
	for (int r = 0; r < partitions; r++)
		bounds.push_back(HashBound{partitions, r});
	return bounds;
}

// Applies a plan to a layout the way repartition does: remove each step's from, add its to.
std::vector<HashBound>
Apply(std::vector<HashBound> layout, const std::vector<ReshapeStep> &steps)
{
	for (const ReshapeStep &step : steps) {
		for (const HashBound &f : step.from) {
			auto it = std::find(layout.begin(), layout.end(), f);
			EXPECT_NE(it, layout.end());
			layout.erase(it);
		}
		layout.insert(layout.end(), step.to.begin(), step.to.end());
		ExpectExactCover(layout); // every intermediate layout is valid too
	}
	return layout;
}

} // namespace

TEST(PartitionPlan, NamesHaveThreeDigits)
{
	EXPECT_EQ(PartitionName("orders", 0), "orders_p000");
	EXPECT_EQ(PartitionName("orders", 7), "orders_p007");
	EXPECT_EQ(PartitionName("orders", 255), "orders_p255");
	EXPECT_EQ(PartitionName("Mixed Case", 12), "Mixed Case_p012");
}

TEST(PartitionPlan, LeafNames)
{
	EXPECT_EQ(TenantLeafName("orders_p003", "0A1B2C3D-4E5F-6789-abcd-ef0123456789"), "orders_p003_tef0123456789");
	EXPECT_EQ(DefaultLeafName("orders_p003"), "orders_p003_default");
	EXPECT_EQ(KindOf([] { TenantLeafName("orders_p003", "not-a-uuid"); }), ErrorKind::kInvalidInput);
}

TEST(PartitionPlan, RefusesNamesPostgresWouldTruncate)
{
	std::string longest(63 - 5 - 14, 'a');
	EXPECT_NO_THROW(PartitionName(longest, 999));
	EXPECT_EQ(KindOf([&] { PartitionName(longest + "a", 0); }), ErrorKind::kInvalidInput);
	try {
		PartitionName(std::string(60, 'b'), 0);
		FAIL();
	} catch (const Error &e) {
		EXPECT_NE(e.hint().find("at most 44 bytes"), std::string::npos) << e.hint();
	}
}

TEST(PartitionPlan, PartitionCountLimits)
{
	EXPECT_EQ(KindOf([] { ValidatePartitionCount(1); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { ValidatePartitionCount(0); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { ValidatePartitionCount(-16); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { ValidatePartitionCount(1001); }), ErrorKind::kInvalidInput);
	EXPECT_NO_THROW(ValidatePartitionCount(2));
	EXPECT_NO_THROW(ValidatePartitionCount(1000));
}

TEST(PartitionPlan, ParsesHashBounds)
{
	EXPECT_EQ(ParseHashBound("FOR VALUES WITH (modulus 16, remainder 3)"), (HashBound{16, 3}));
	EXPECT_EQ(ParseHashBound("for values with ( MODULUS 1000 , REMAINDER 999 )"), (HashBound{1000, 999}));
	EXPECT_EQ(KindOf([] { ParseHashBound("DEFAULT"); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { ParseHashBound("FOR VALUES IN ('a')"); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { ParseHashBound("FOR VALUES WITH (modulus 4, remainder 4)"); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { ParseHashBound("FOR VALUES WITH (modulus 4, remainder 1) x"); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { ParseHashBound("FOR VALUES WITH (modulus 99999999999, remainder 1)"); }),
	          ErrorKind::kInvalidInput);
}

TEST(PartitionPlan, InitialBoundsCoverEverything)
{
	auto bounds = InitialBounds(16);
	ASSERT_EQ(bounds.size(), 16u);
	EXPECT_EQ(bounds[5], (HashBound{16, 5}));
	ExpectExactCover(bounds);
	EXPECT_EQ(UniformModulus(bounds), 16);
}

TEST(PartitionPlan, SplitsOnePartitionIntoTwoPerStep)
{
	auto steps = PlanRepartition(InitialBounds(16), 32);
	ASSERT_EQ(steps.size(), 16u);
	EXPECT_EQ(steps[3].from, (std::vector<HashBound>{{16, 3}}));
	EXPECT_EQ(steps[3].to, (std::vector<HashBound>{{32, 3}, {32, 19}}));
	auto after = Apply(InitialBounds(16), steps);
	EXPECT_EQ(UniformModulus(after), 32);
}

TEST(PartitionPlan, SplitsAndMergesAcrossSeveralLevels)
{
	auto up = PlanRepartition(InitialBounds(16), 64);
	ASSERT_EQ(up.size(), 16u);
	EXPECT_EQ(up[0].to.size(), 4u);
	auto at64 = Apply(InitialBounds(16), up);
	EXPECT_EQ(UniformModulus(at64), 64);

	auto down = PlanRepartition(at64, 16);
	ASSERT_EQ(down.size(), 16u);
	EXPECT_EQ(down[1].from, (std::vector<HashBound>{{64, 1}, {64, 17}, {64, 33}, {64, 49}}));
	EXPECT_EQ(down[1].to, (std::vector<HashBound>{{16, 1}}));
	EXPECT_EQ(UniformModulus(Apply(at64, down)), 16);

	EXPECT_EQ(UniformModulus(Apply(InitialBounds(16), PlanRepartition(InitialBounds(16), 48))), 48);
	EXPECT_TRUE(PlanRepartition(InitialBounds(16), 16).empty());
}

TEST(PartitionPlan, RefusesCountsTheModuliDoNotAllow)
{
	EXPECT_EQ(KindOf([] { PlanRepartition(InitialBounds(16), 24); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { PlanRepartition(InitialBounds(16), 1); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { PlanRepartition(InitialBounds(16), 2000); }), ErrorKind::kInvalidInput);
	try {
		PlanRepartition(InitialBounds(16), 24);
		FAIL();
	} catch (const Error &e) {
		EXPECT_NE(e.hint().find("2, 4, 8, 32, 48, 64"), std::string::npos) << e.hint();
	}
}

TEST(PartitionPlan, RefusesLayoutsItDidNotMake)
{
	std::vector<HashBound> mixed{{2, 0}, {4, 1}, {4, 3}};
	EXPECT_EQ(KindOf([&] { UniformModulus(mixed); }), ErrorKind::kInvalidInput);
	std::vector<HashBound> gap{{4, 0}, {4, 1}, {4, 3}};
	EXPECT_EQ(KindOf([&] { UniformModulus(gap); }), ErrorKind::kInvalidInput);
	std::vector<HashBound> dup{{2, 0}, {2, 0}};
	EXPECT_EQ(KindOf([&] { UniformModulus(dup); }), ErrorKind::kInvalidInput);
	EXPECT_EQ(KindOf([] { UniformModulus({}); }), ErrorKind::kInvalidInput);
}

TEST(PartitionPlan, ContainsFollowsTheModuloRule)
{
	EXPECT_TRUE(Contains(HashBound{16, 3}, HashBound{32, 19}));
	EXPECT_TRUE(Contains(HashBound{16, 3}, HashBound{32, 3}));
	EXPECT_FALSE(Contains(HashBound{16, 3}, HashBound{32, 4}));
	EXPECT_FALSE(Contains(HashBound{16, 3}, HashBound{24, 3}));
}
