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
	EXPECT_EQ(c.listen_port, 8081);
	EXPECT_EQ(c.db_pool_size, 8);
	EXPECT_EQ(c.max_body_bytes, 1024u * 1024u);
	EXPECT_EQ(c.metrics_max_tenants, 100);
	EXPECT_TRUE(c.metrics_require_admin_token); // /metrics is private unless opted out (issue #16)
	EXPECT_TRUE(c.metrics_token_sha256.empty());
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

// Every key of the table with values of every wrong shape: each is a ConfigError that names the key (never another
// exception, which would abort --check-config and end a daemon on SIGHUP). "-" once made std::stol throw.
TEST(Config, EveryKeyRejectsBadValuesWithItsName)
{
	const std::vector<std::string> bad = {"\"-\"",
	                                      "-",
	                                      "\"\"",
	                                      "\"+\"",
	                                      "--1",
	                                      "1-",
	                                      "\" 1\"",
	                                      "1.5",
	                                      "1e3",
	                                      "-1e999",
	                                      "1e400",
	                                      "0x10",
	                                      "99999999999999999999",
	                                      "-99999999999999999999",
	                                      "9223372036854775808",
	                                      "\"abc\"",
	                                      "[1]",
	                                      "[]",
	                                      "{a: 1}",
	                                      "{}",
	                                      "~",
	                                      "null",
	                                      "\"\\0\"",
	                                      "!!binary aGVsbG8=",
	                                      "!!int x",
	                                      "\"\\u00e9\"",
	                                      "[[[[1]]]]",
	                                      "-0",
	                                      "000000000000000000001",
	                                      "true",
	                                      ".inf",
	                                      ".nan"};
	for (const std::string &key : ConfigKeys()) {
		std::string section = key.substr(0, key.find('.')), name = key.substr(key.find('.') + 1);
		for (const std::string &value : bad) {
			// Keep the minimal file valid: the key under test replaces its own entry when it is one of them.
			std::string yaml;
			if (section != "database")
				yaml += "database: {conninfo: \"dbname=app\"}\n";
			if (section != "auth")
				yaml += "auth: {admin_token_sha256: \"" + kHash + "\"}\n";
			if (section == "database" && name != "conninfo")
				yaml += "database: {conninfo: \"dbname=app\", " + name + ": " + value + "}\n";
			else if (section == "auth")
				yaml += "auth: {" + name + ": " + value + "}\n";
			else
				yaml += section + ": {" + name + ": " + value + "}\n";
			std::string error;
			try {
				ParseConfig(yaml);
				continue; // some values are valid for some keys (e.g. "-0" for a string key)
			} catch (const ConfigError &e) {
				error = e.what();
			} catch (const std::exception &e) {
				ADD_FAILURE() << key << ": " << value << " threw a non-ConfigError: " << e.what();
				continue;
			}
			// Errors in the value name the key; a value that is not YAML at all is reported as such.
			bool names_key = error.find(key) != std::string::npos || error.find("invalid YAML") == 0 ||
			                 (section == "regions" && error.find("regions.") != std::string::npos) ||
			                 (section == "directory" && error.find("directory.") != std::string::npos) ||
			                 (section == "tls" && error.find("tls.") != std::string::npos);
			EXPECT_TRUE(names_key) << key << ": " << value << " -> " << error;
		}
	}
}

TEST(Config, IntegerKeysRejectWhatStolWouldHaveThrownOn)
{
	for (const char *value : {"\"-\"", "\"\"", "99999999999999999999", "-", "+5", "\"5 \"", "5_0"})
		EXPECT_NE(ErrorOf(kMinimal + "metrics: {max_tenants: " + value + "}\n").find("metrics.max_tenants: must be"),
		          std::string::npos)
		    << value;
	EXPECT_EQ(ParseConfig(kMinimal + "metrics: {max_tenants: 7}\n").metrics_max_tenants, 7);
	EXPECT_EQ(ParseConfig(kMinimal + "listen: {port: 65535}\n").listen_port, 65535);
}
