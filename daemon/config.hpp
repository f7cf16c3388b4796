// daemon/config.hpp
// tenancyd's configuration: a plain struct filled from one YAML file and validated once (errors name the key).
#pragma once

#include "log.hpp"

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace tenancyd {

struct Config {
	// listen
	std::string listen_host = "127.0.0.1";
	int listen_port = 8081; // nginx (packaging/nginx/tenancyd.conf) serves users on 8080
	int listen_threads = 16;
	int listen_max_connections = 512;
	int listen_keep_alive_timeout_s = 5;
	int listen_keep_alive_max_requests = 1000;
	int listen_drain_timeout_s = 5;
	// tls: HTTPS when both are set
	std::string tls_cert_file;
	std::string tls_key_file;
	// database (single-cluster mode; with regions only the pool settings apply to every region's pools)
	std::string db_conninfo;
	int db_pool_size = 8;
	int db_acquire_timeout_ms = 5000;
	int db_connect_timeout_s = 3;
	int db_statement_timeout_ms = 5000;
	int db_health_check_interval_s = 10;
	int db_max_connections_per_tenant = 0; // 0: half of each pool (at least one)
	// pools: a second pool reserved for tenants of these plans
	std::vector<std::string> pools_dedicated_for;
	int pools_dedicated_size = 4;
	// auth
	std::string admin_token_sha256; // 32 raw bytes (decoded from the 64-hex configuration value)
	// log
	LogLevel log_level = LogLevel::kInfo;
	// limits
	size_t max_body_bytes = 1024 * 1024;
	int max_exports_per_tenant = 1; // concurrent GET .../export of one tenant; more answer 429
	int max_exports = 2;            // concurrent exports of all tenants together
	size_t max_header_bytes = 32768;
	int header_timeout_ms = 5000;
	int body_timeout_ms = 10000;
	int write_timeout_ms = 10000;
	// metrics
	int metrics_max_tenants = 100;
	// GET /metrics needs the admin token or the scrape token (issue #16); false is the explicit opt-out (public).
	bool metrics_require_admin_token = true;
	std::string metrics_token_sha256; // 32 raw bytes of the scrape token's SHA-256, or empty (admin token only)
	// sla
	int sla_window_hours = 720;
	// regions: data residency (us, eu, uk, canada, australia) -> connection string of the cluster serving it.
	// Empty is single-cluster mode (database.conninfo serves every tenant).
	std::map<std::string, std::string> regions;
	// directory: where the tenant directory (id, slug -> region) lives; see DirectoryConninfo.
	std::string directory_conninfo;
	std::string directory_region;
};

// The data residencies, in the order of the tenancy.data_residency enum.
const std::vector<std::string> &Residencies();

// The connection string of the tenant directory with regions: directory.conninfo, else the cluster of
// directory.region, else database.conninfo, else the first configured region in Residencies() order.
std::string DirectoryConninfo(const Config &config);

// A configuration problem; what() names the key, e.g. `listen.port: must be an integer from 1 to 65535`.
class ConfigError : public std::runtime_error {
  public:
	using std::runtime_error::runtime_error;
};

// Parses and validates YAML text. Throws ConfigError.
Config ParseConfig(const std::string &yaml_text);
// Reads the file and parses it. Throws ConfigError (also for an unreadable file).
Config LoadConfig(const std::string &path);

// Keys whose new value a SIGHUP cannot apply (they need a restart); empty when the change is fully reloadable.
std::vector<std::string> KeysNeedingRestart(const Config &old_config, const Config &new_config);

// Every key the file may hold, alphabetically (packaging/tenancyd.yaml documents each).
std::vector<std::string> ConfigKeys();

} // namespace tenancyd
