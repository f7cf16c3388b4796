// test/unit/daemon/config_test.cpp
// Config parsing: defaults, every kind of error naming its key, reload classification.
#include "config.hpp"
#include "support/config_error.hpp"

#include <gtest/gtest.h>

using namespace tenancyd;
using tenancyd::test::ErrorOf;

namespace {
const std::string kHash = std::string(64, 'a');
const std::string kMinimal = "database: {conninfo: \"dbname=app\"}\nauth: {admin_token_sha256: \"" + kHash + "\"}\n";
} // namespace

TEST(Config, MinimalFileGetsDefaults)
{
	Config c = ParseConfig(kMinimal);
	EXPECT_EQ(c.listen_host, "127.0.0.1");
	EXPECT_EQ(c.listen_port, 8080);
	EXPECT_EQ(c.db_pool_size, 8);
	EXPECT_EQ(c.max_body_bytes, 1024u * 1024u);
	EXPECT_EQ(c.metrics_max_tenants, 100);
	EXPECT_FALSE(c.metrics_require_admin_token);
	EXPECT_EQ(c.admin_token_sha256.size(), 32u);
	EXPECT_TRUE(c.pools_dedicated_for.empty());
}

TEST(Config, BriefExampleParses)
{
	Config c = ParseConfig("listen: {host: 0.0.0.0, port: 9090}\n"
	                       "database: {conninfo: \"host=127.0.0.1 port=5432 dbname=app user=tenancy\", pool_size: 4}\n"
	                       "auth: {admin_token_sha256: \"" +
	                       kHash +
	                       "\"}\nlog: {level: debug}\npools: {dedicated_for: [enterprise], dedicated_size: 2}\n"
	                       "metrics: {max_tenants: 5, require_admin_token: true}\nlimits: {max_body_bytes: 2048}\n");
	EXPECT_EQ(c.listen_host, "0.0.0.0");
	EXPECT_EQ(c.listen_port, 9090);
	EXPECT_EQ(c.db_pool_size, 4);
	EXPECT_EQ(c.log_level, LogLevel::kDebug);
	ASSERT_EQ(c.pools_dedicated_for.size(), 1u);
	EXPECT_EQ(c.pools_dedicated_for[0], "enterprise");
	EXPECT_EQ(c.metrics_max_tenants, 5);
	EXPECT_TRUE(c.metrics_require_admin_token);
	EXPECT_EQ(c.max_body_bytes, 2048u);
}

TEST(Config, ErrorsNameTheKey)
{
	EXPECT_EQ(ErrorOf("auth: {admin_token_sha256: \"" + kHash + "\"}\n"), "database.conninfo: required");
	EXPECT_EQ(ErrorOf("database: {conninfo: x}\n"), "auth.admin_token_sha256: required");
	EXPECT_NE(ErrorOf(kMinimal + "listen: {port: 70000}\n").find("listen.port: must be an integer"), std::string::npos);
	EXPECT_NE(ErrorOf(kMinimal + "listen: {port: abc}\n").find("listen.port:"), std::string::npos);
	EXPECT_NE(ErrorOf(kMinimal + "listen: {port: [1]}\n").find("listen.port:"), std::string::npos);
	EXPECT_EQ(ErrorOf(kMinimal + "listen: {prot: 1}\n"), "listen.prot: unknown key");
	EXPECT_EQ(ErrorOf(kMinimal + "listen: {host: \"\"}\n"), "listen.host: must not be empty");
	EXPECT_EQ(ErrorOf("database: {conninfo: \"\"}\nauth: {admin_token_sha256: \"" + kHash + "\"}\n"),
	          "database.conninfo: must not be empty");
	EXPECT_EQ(ErrorOf(kMinimal + "bogus: {a: 1}\n"), "bogus: unknown section");
	EXPECT_EQ(ErrorOf(kMinimal + "listen: 5\n"), "listen: must be a mapping");
	EXPECT_NE(ErrorOf("database: {conninfo: x}\nauth: {admin_token_sha256: abc}\n").find("auth.admin_token_sha256:"),
	          std::string::npos);
	EXPECT_NE(ErrorOf("database: {conninfo: x}\nauth: {admin_token_sha256: \"" + std::string(64, 'g') + "\"}\n")
	              .find("auth.admin_token_sha256:"),
	          std::string::npos);
	EXPECT_NE(ErrorOf(kMinimal + "log: {level: loud}\n").find("log.level:"), std::string::npos);
	EXPECT_NE(ErrorOf(kMinimal + "pools: {dedicated_for: [platinum]}\n").find("pools.dedicated_for:"),
	          std::string::npos);
	EXPECT_NE(ErrorOf(kMinimal + "pools: {dedicated_for: enterprise}\n").find("pools.dedicated_for:"),
	          std::string::npos);
	EXPECT_NE(ErrorOf(kMinimal + "metrics: {require_admin_token: maybe}\n").find("metrics.require_admin_token:"),
	          std::string::npos);
	EXPECT_NE(ErrorOf(kMinimal + "database: {pool_size: 0}\n").find("database: given twice"), std::string::npos);
	EXPECT_NE(ErrorOf(kMinimal + "limits: {max_body_bytes: -1}\n").find("limits.max_body_bytes:"), std::string::npos);
	EXPECT_EQ(ErrorOf(kMinimal + "tls: {cert_file: /nonexistent.crt}\n"),
	          "tls.key_file: required when tls.cert_file is set");
	EXPECT_NE(ErrorOf(kMinimal + "tls: {cert_file: /nonexistent.crt, key_file: /nonexistent.key}\n")
	              .find("tls.cert_file: cannot read"),
	          std::string::npos);
	EXPECT_NE(ErrorOf("listen: [\n").find("invalid YAML"), std::string::npos);
	EXPECT_NE(ErrorOf("- a\n- b\n").find("mapping"), std::string::npos);
}

TEST(Config, DuplicateSectionKeyIsRejected)
{
	EXPECT_NE(ErrorOf("database: {conninfo: x, conninfo: y}\nauth: {admin_token_sha256: \"" + kHash + "\"}\n"),
	          "no error");
}

TEST(Config, ReloadNamesKeysThatNeedRestart)
{
	Config a = ParseConfig(kMinimal);
	Config b = ParseConfig(kMinimal + "log: {level: debug}\nmetrics: {max_tenants: 3}\n");
	EXPECT_TRUE(KeysNeedingRestart(a, b).empty());
	Config c = ParseConfig(kMinimal + "listen: {port: 9999}\n");
	auto keys = KeysNeedingRestart(a, c);
	ASSERT_EQ(keys.size(), 1u);
	EXPECT_EQ(keys[0], "listen.port");
}

TEST(Config, KeysAreAlphabetical)
{
	auto keys = ConfigKeys();
	EXPECT_TRUE(std::is_sorted(keys.begin(), keys.end()));
}

TEST(Config, MissingFileIsAnError)
{
	EXPECT_THROW(LoadConfig("/nonexistent/tenancyd.yaml"), ConfigError);
}
