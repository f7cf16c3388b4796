// daemon/config.cpp
// One alphabetical table of keys (PgBouncer's bouncer_params): name, whether SIGHUP applies it, and its parser.
#include "config.hpp"

#include "auth/token.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <yaml-cpp/yaml.h>

namespace tenancyd {

namespace {

struct Param {
	const char *name; // section.key
	bool reloadable;
	bool required;
	std::function<void(Config &, const YAML::Node &, const std::string &)> apply;
	std::function<bool(const Config &, const Config &)> same; // restart-only keys: did the value change?
};

[[noreturn]] void
Fail(const std::string &key, const std::string &message)
{
	throw ConfigError(key + ": " + message);
}

std::string
AsString(const YAML::Node &node, const std::string &key)
{
	if (!node.IsScalar())
		Fail(key, "must be a string");
	return node.Scalar();
}

long
AsInt(const YAML::Node &node, const std::string &key, long min, long max)
{
	if (node.IsScalar()) {
		// from_chars never throws: "-", "+1", "1e3", "0x10", " 1", "99999999999999999999" all fail here.
		const std::string &s = node.Scalar();
		long v = 0;
		auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
		if (!s.empty() && ec == std::errc() && end == s.data() + s.size() && v >= min && v <= max)
			return v;
	}
	Fail(key, "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
}

bool
AsBool(const YAML::Node &node, const std::string &key)
{
	if (node.IsScalar()) {
		if (node.Scalar() == "true")
			return true;
		if (node.Scalar() == "false")
			return false;
	}
	Fail(key, "must be true or false");
}

template <typename T>
std::function<bool(const Config &, const Config &)>
Same(T Config::*member)
{
	return [member](const Config &a, const Config &b) { return a.*member == b.*member; };
}

// An integer key from min to max; a restart-only one reports a changed value on reload.
template <typename T>
Param
IntParam(const char *name, bool reloadable, T Config::*member, long min, long max)
{
	return {name, reloadable, false,
	        [member, min, max](Config &c, const YAML::Node &n, const std::string &k) {
		        c.*member = static_cast<T>(AsInt(n, k, min, max));
	        },
	        reloadable ? nullptr : Same(member)};
}

// A string key that must not be empty; a change needs a restart.
Param
NonEmptyParam(const char *name, std::string Config::*member)
{
	return {name, false, false,
	        [member](Config &c, const YAML::Node &n, const std::string &k) {
		        c.*member = AsString(n, k);
		        if ((c.*member).empty())
			        Fail(k, "must not be empty");
	        },
	        Same(member)};
}

// regions.<residency>: the connection string of the cluster serving it; a change needs a restart.
Param
RegionParam(const char *name)
{
	std::string region = std::string(name).substr(std::strlen("regions."));
	return {name, false, false,
	        [region](Config &c, const YAML::Node &n, const std::string &k) {
		        std::string conninfo = AsString(n, k);
		        if (conninfo.empty())
			        Fail(k, "must be the connection string of the cluster serving region \"" + region + "\"");
		        c.regions[region] = conninfo;
	        },
	        [region](const Config &a, const Config &b) {
		        auto ia = a.regions.find(region), ib = b.regions.find(region);
		        return (ia == a.regions.end()) == (ib == b.regions.end()) &&
		               (ia == a.regions.end() || ia->second == ib->second);
	        }};
}

// Cross-key rules of regions: and directory: (a misrouted tenant is a residency breach, so be strict).
void
CheckRegions(const Config &config, const YAML::Node &root)
{
	if (root["regions"] && root["regions"].IsMap() && root["regions"].size() == 0)
		throw ConfigError("regions: must map at least one data residency to a connection string");
	if (config.regions.empty()) {
		if (!config.directory_conninfo.empty() || !config.directory_region.empty())
			throw ConfigError(
			    std::string(config.directory_conninfo.empty() ? "directory.region" : "directory.conninfo") +
			    ": only used with regions (single-cluster mode has no tenant directory)");
		if (config.db_conninfo.empty())
			throw ConfigError("database.conninfo: required");
		return;
	}
	std::map<std::string, std::string> by_conninfo;
	for (const auto &[region, conninfo] : config.regions) {
		auto [it, fresh] = by_conninfo.emplace(conninfo, region);
		if (!fresh)
			throw ConfigError("regions." + region + ": same connection string as regions." + it->second +
			                  " (each region needs its own cluster)");
	}
	if (!config.directory_conninfo.empty() && !config.directory_region.empty())
		throw ConfigError("directory.region: give either directory.conninfo or directory.region, not both");
	if (!config.directory_region.empty() && !config.regions.count(config.directory_region))
		throw ConfigError("directory.region: no cluster is configured for region \"" + config.directory_region +
		                  "\" under regions");
}

const std::vector<Param> &
Params()
{
	static const std::vector<Param> kParams = {
	    {"auth.admin_token_sha256", true, true,
	     [](Config &c, const YAML::Node &n, const std::string &k) {
		     std::string hex = AsString(n, k);
		     auto raw = FromHex(hex);
		     if (hex.size() != 64 || !raw)
			     Fail(k, "must be 64 hex characters (the SHA-256 of the admin bearer token)");
		     c.admin_token_sha256 = *raw;
	     },
	     nullptr},
	    IntParam("database.acquire_timeout_ms", false, &Config::db_acquire_timeout_ms, 10, 600000),
	    IntParam("database.connect_timeout_s", false, &Config::db_connect_timeout_s, 2, 600),
	    // required unless regions are configured (checked in CheckRegions)
	    NonEmptyParam("database.conninfo", &Config::db_conninfo),
	    IntParam("database.health_check_interval_s", false, &Config::db_health_check_interval_s, 1, 3600),
	    IntParam("database.max_connections_per_tenant", false, &Config::db_max_connections_per_tenant, 0, 1000),
	    IntParam("database.pool_size", false, &Config::db_pool_size, 1, 1000),
	    IntParam("database.statement_timeout_ms", false, &Config::db_statement_timeout_ms, 1, 3600000),
	    NonEmptyParam("directory.conninfo", &Config::directory_conninfo),
	    {"directory.region", false, false,
	     [](Config &c, const YAML::Node &n, const std::string &k) { c.directory_region = AsString(n, k); },
	     Same(&Config::directory_region)},
	    IntParam("limits.body_timeout_ms", false, &Config::body_timeout_ms, 100, 600000),
	    IntParam("limits.header_timeout_ms", false, &Config::header_timeout_ms, 100, 600000),
	    IntParam("limits.max_body_bytes", false, &Config::max_body_bytes, 1, 1L << 30),
	    IntParam("limits.max_exports", true, &Config::max_exports, 1, 1000),
	    IntParam("limits.max_exports_per_tenant", true, &Config::max_exports_per_tenant, 1, 1000),
	    IntParam("limits.max_header_bytes", false, &Config::max_header_bytes, 1024, 1L << 20),
	    IntParam("limits.write_timeout_ms", false, &Config::write_timeout_ms, 100, 600000),
	    IntParam("listen.drain_timeout_s", false, &Config::listen_drain_timeout_s, 0, 3600),
	    NonEmptyParam("listen.host", &Config::listen_host),
	    IntParam("listen.keep_alive_max_requests", false, &Config::listen_keep_alive_max_requests, 1, 1000000),
	    IntParam("listen.keep_alive_timeout_s", false, &Config::listen_keep_alive_timeout_s, 1, 3600),
	    IntParam("listen.max_connections", false, &Config::listen_max_connections, 1, 100000),
	    IntParam("listen.port", false, &Config::listen_port, 1, 65535),
	    IntParam("listen.threads", false, &Config::listen_threads, 1, 1024),
	    {"log.level", true, false,
	     [](Config &c, const YAML::Node &n, const std::string &k) {
		     if (!ParseLogLevel(AsString(n, k), c.log_level))
			     Fail(k, "must be one of debug, info, warn, error");
	     },
	     nullptr},
	    IntParam("metrics.max_tenants", true, &Config::metrics_max_tenants, 0, 100000),
	    {"metrics.require_admin_token", true, false,
	     [](Config &c, const YAML::Node &n, const std::string &k) { c.metrics_require_admin_token = AsBool(n, k); },
	     nullptr},
	    {"metrics.token_sha256", true, false,
	     [](Config &c, const YAML::Node &n, const std::string &k) {
		     std::string hex = AsString(n, k);
		     auto raw = FromHex(hex);
		     if (hex.size() != 64 || !raw)
			     Fail(k, "must be 64 hex characters (the SHA-256 of the scrape token for GET /metrics)");
		     c.metrics_token_sha256 = *raw;
	     },
	     nullptr},
	    {"pools.dedicated_for", false, false,
	     [](Config &c, const YAML::Node &n, const std::string &k) {
		     if (!n.IsSequence())
			     Fail(k, "must be a list of plans (developer, team, enterprise)");
		     c.pools_dedicated_for.clear();
		     for (const auto &item : n) {
			     std::string plan = item.IsScalar() ? item.Scalar() : "";
			     if (plan != "developer" && plan != "team" && plan != "enterprise")
				     Fail(k, "must be a list of plans (developer, team, enterprise)");
			     c.pools_dedicated_for.push_back(plan);
		     }
	     },
	     Same(&Config::pools_dedicated_for)},
	    IntParam("pools.dedicated_size", false, &Config::pools_dedicated_size, 1, 1000),
	    RegionParam("regions.australia"),
	    RegionParam("regions.canada"),
	    RegionParam("regions.eu"),
	    RegionParam("regions.uk"),
	    RegionParam("regions.us"),
	    IntParam("sla.window_hours", true, &Config::sla_window_hours, 1, 9600),
	    {"tls.cert_file", false, false,
	     [](Config &c, const YAML::Node &n, const std::string &k) { c.tls_cert_file = AsString(n, k); },
	     Same(&Config::tls_cert_file)},
	    {"tls.key_file", false, false,
	     [](Config &c, const YAML::Node &n, const std::string &k) { c.tls_key_file = AsString(n, k); },
	     Same(&Config::tls_key_file)},
	};
	return kParams;
}

// Runs a key's parser; whatever it throws (yaml-cpp, std::sto*, range, allocation) becomes a ConfigError naming
// the key, so --check-config reports it and a SIGHUP keeps the old configuration instead of ending the process.
void
ApplyParam(const Param &p, Config &config, const YAML::Node &node, const std::string &key)
{
	try {
		p.apply(config, node, key);
	} catch (const ConfigError &) {
		throw;
	} catch (const YAML::Exception &e) {
		Fail(key, "invalid value (" + e.msg + ")");
	} catch (const std::exception &e) {
		Fail(key, std::string("invalid value (") + e.what() + ")");
	}
}

Config
ParseConfigUnchecked(const std::string &yaml_text)
{
	YAML::Node root;
	try {
		root = YAML::Load(yaml_text);
	} catch (const YAML::Exception &e) {
		throw ConfigError("invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
	}
	if (!root.IsMap())
		throw ConfigError("the configuration must be a YAML mapping of sections (listen, database, auth, ...)");
	std::map<std::string, const Param *> by_name;
	std::set<std::string> sections;
	for (const Param &p : Params()) {
		by_name[p.name] = &p;
		std::string n = p.name;
		sections.insert(n.substr(0, n.find('.')));
	}
	Config config;
	std::set<std::string> seen;
	std::set<std::string> seen_sections;
	for (const auto &section : root) {
		std::string sname = section.first.IsScalar() ? section.first.Scalar() : "?";
		if (!sections.count(sname))
			throw ConfigError(sname + ": unknown section");
		if (!seen_sections.insert(sname).second)
			throw ConfigError(sname + ": given twice");
		if (section.second.IsNull())
			continue;
		if (!section.second.IsMap())
			throw ConfigError(sname + ": must be a mapping");
		for (const auto &entry : section.second) {
			std::string key = sname + "." + (entry.first.IsScalar() ? entry.first.Scalar() : "?");
			auto it = by_name.find(key);
			if (it == by_name.end() && sname == "regions")
				throw ConfigError(key + ": unknown region; regions are us, eu, uk, canada, australia");
			if (it == by_name.end())
				throw ConfigError(key + ": unknown key");
			if (!seen.insert(key).second)
				throw ConfigError(key + ": given twice");
			ApplyParam(*it->second, config, entry.second, key);
		}
	}
	for (const Param &p : Params())
		if (p.required && !seen.count(p.name))
			throw ConfigError(std::string(p.name) + ": required");
	CheckRegions(config, root);
	if (config.tls_cert_file.empty() != config.tls_key_file.empty())
		throw ConfigError(config.tls_cert_file.empty() ? "tls.cert_file: required when tls.key_file is set"
		                                               : "tls.key_file: required when tls.cert_file is set");
	for (const std::string &file : {config.tls_cert_file, config.tls_key_file})
		if (!file.empty() && !std::ifstream(file).good())
			throw ConfigError((file == config.tls_cert_file ? "tls.cert_file" : "tls.key_file") +
			                  std::string(": cannot read \"") + file + "\"");
	return config;
}

} // namespace

Config
ParseConfig(const std::string &yaml_text)
{
	try {
		return ParseConfigUnchecked(yaml_text);
	} catch (const ConfigError &) {
		throw;
	} catch (const YAML::Exception &e) {
		// yaml-cpp can also throw while iterating a document (e.g. a key that is not a scalar).
		throw ConfigError("invalid YAML at line " + std::to_string(e.mark.line + 1) + ": " + e.msg);
	} catch (const std::exception &e) {
		throw ConfigError(std::string("invalid configuration: ") + e.what());
	}
}

const std::vector<std::string> &
Residencies()
{
	static const std::vector<std::string> kResidencies = {"us", "eu", "uk", "canada", "australia"};
	return kResidencies;
}

std::string
DirectoryConninfo(const Config &config)
{
	if (config.regions.empty())
		return "";
	if (!config.directory_conninfo.empty())
		return config.directory_conninfo;
	if (!config.directory_region.empty())
		return config.regions.at(config.directory_region);
	if (!config.db_conninfo.empty())
		return config.db_conninfo;
	for (const std::string &r : Residencies())
		if (config.regions.count(r))
			return config.regions.at(r);
	return "";
}

Config
LoadConfig(const std::string &path)
{
	std::ifstream in(path);
	if (!in)
		throw ConfigError("cannot read configuration file \"" + path + "\"");
	std::stringstream ss;
	ss << in.rdbuf();
	return ParseConfig(ss.str());
}

std::vector<std::string>
KeysNeedingRestart(const Config &old_config, const Config &new_config)
{
	std::vector<std::string> keys;
	for (const Param &p : Params())
		if (!p.reloadable && p.same && !p.same(old_config, new_config))
			keys.push_back(p.name);
	return keys;
}

std::vector<std::string>
ConfigKeys()
{
	std::vector<std::string> keys;
	for (const Param &p : Params())
		keys.push_back(p.name);
	return keys;
}

} // namespace tenancyd
