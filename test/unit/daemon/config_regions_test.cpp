// test/unit/daemon/config_regions_test.cpp
// regions: and directory: in tenancyd's YAML: what routes where, and every misconfiguration named by its key.
#include "config.hpp"
#include "support/config_error.hpp"

#include <gtest/gtest.h>

using namespace tenancyd;
using tenancyd::test::ErrorOf;

namespace {
const std::string kAuth = "auth: {admin_token_sha256: \"" + std::string(64, 'a') + "\"}\n";
const std::string kTwoRegions = kAuth + "regions: {eu: \"host=eu dbname=app\", us: \"host=us dbname=app\"}\n";
} // namespace

TEST(ConfigRegions, WithoutRegionsNothingChanges)
{
	Config c = ParseConfig("database: {conninfo: \"dbname=app\"}\n" + kAuth);
	EXPECT_TRUE(c.regions.empty());
	EXPECT_EQ(DirectoryConninfo(c), "");
	EXPECT_EQ(ErrorOf(kAuth), "database.conninfo: required");
}

TEST(ConfigRegions, RegionsReplaceDatabaseConninfo)
{
	Config c = ParseConfig(kTwoRegions);
	ASSERT_EQ(c.regions.size(), 2u);
	EXPECT_EQ(c.regions.at("eu"), "host=eu dbname=app");
	// No directory: and no database.conninfo: the first region in residency order (us before eu) holds it.
	EXPECT_EQ(DirectoryConninfo(c), "host=us dbname=app");
}

TEST(ConfigRegions, DirectoryChoice)
{
	EXPECT_EQ(DirectoryConninfo(ParseConfig(kTwoRegions + "directory: {region: eu}\n")), "host=eu dbname=app");
	EXPECT_EQ(DirectoryConninfo(ParseConfig(kTwoRegions + "directory: {conninfo: \"host=dir\"}\n")), "host=dir");
	EXPECT_EQ(DirectoryConninfo(ParseConfig(kTwoRegions + "database: {conninfo: \"host=home\"}\n")), "host=home");
}

TEST(ConfigRegions, ErrorsNameTheKey)
{
	EXPECT_EQ(ErrorOf(kAuth + "regions: {mars: \"host=m\"}\n"),
	          "regions.mars: unknown region; regions are us, eu, uk, canada, australia");
	EXPECT_EQ(ErrorOf(kAuth + "regions: {eu: \"\"}\n"),
	          "regions.eu: must be the connection string of the cluster serving region \"eu\"");
	EXPECT_EQ(ErrorOf(kAuth + "regions: {eu: [a, b]}\n"), "regions.eu: must be a string");
	EXPECT_EQ(ErrorOf(kAuth + "regions: {}\n"), "regions: must map at least one data residency to a connection string");
	EXPECT_EQ(ErrorOf(kAuth + "regions: [eu]\n"), "regions: must be a mapping");
	EXPECT_EQ(ErrorOf(kAuth + "regions: {eu: \"host=x\", uk: \"host=x\"}\n"),
	          "regions.uk: same connection string as regions.eu (each region needs its own cluster)");
	EXPECT_EQ(ErrorOf(kTwoRegions + "directory: {region: uk}\n"),
	          "directory.region: no cluster is configured for region \"uk\" under regions");
	EXPECT_EQ(ErrorOf(kTwoRegions + "directory: {region: eu, conninfo: \"host=d\"}\n"),
	          "directory.region: give either directory.conninfo or directory.region, not both");
	EXPECT_EQ(ErrorOf(kTwoRegions + "directory: {conninfo: \"\"}\n"), "directory.conninfo: must not be empty");
	EXPECT_EQ(ErrorOf(kTwoRegions + "directory: {cache: true}\n"), "directory.cache: unknown key");
	EXPECT_EQ(ErrorOf("database: {conninfo: \"dbname=app\"}\n" + kAuth + "directory: {region: eu}\n"),
	          "directory.region: only used with regions (single-cluster mode has no tenant directory)");
}

TEST(ConfigRegions, RegionChangesNeedARestart)
{
	Config a = ParseConfig(kTwoRegions);
	Config b = ParseConfig(kAuth + "regions: {eu: \"host=eu2 dbname=app\", us: \"host=us dbname=app\"}\n");
	auto keys = KeysNeedingRestart(a, b);
	ASSERT_EQ(keys.size(), 1u);
	EXPECT_EQ(keys[0], "regions.eu");
}

TEST(ConfigRegions, AddedRegionOrMovedDirectoryNeedsARestart)
{
	Config a = ParseConfig(kTwoRegions);
	Config b = ParseConfig(kTwoRegions + "directory: {conninfo: \"host=dir\"}\n");
	Config c =
	    ParseConfig(kAuth + "regions: {eu: \"host=eu dbname=app\", us: \"host=us dbname=app\", uk: \"host=uk\"}\n");
	EXPECT_EQ(KeysNeedingRestart(a, b), std::vector<std::string>{"directory.conninfo"});
	EXPECT_EQ(KeysNeedingRestart(a, c), std::vector<std::string>{"regions.uk"});
	EXPECT_EQ(KeysNeedingRestart(c, a), std::vector<std::string>{"regions.uk"});
}
