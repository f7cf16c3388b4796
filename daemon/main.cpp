// daemon/main.cpp
// tenancyd entry point: flags, configuration, server, signal and health threads, listen, exit code.
#include "app.hpp"
#include "config.hpp"
#include "handlers/handlers.hpp"
#include "log.hpp"
#include "server/server.hpp"
#include "signals.hpp"

#include <atomic>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <iostream>
#include <thread>

using namespace tenancyd;

namespace {

void
Usage()
{
	std::cerr << "usage: tenancyd --config FILE\n"
	             "       tenancyd --check-config FILE\n"
	             "       tenancyd --version\n";
}

// Periodically pings idle pooled connections so broken ones are replaced before a request needs them, and takes over
// moves whose tenancyd stopped mid-way (their lock is free on the source), so no tenant is left frozen: at start and
// then every interval.
void
HealthLoop(App &app, std::atomic<bool> &stop, std::mutex &mutex, std::condition_variable &wake)
{
	handlers::AdoptOrphanedMoves(app);
	std::unique_lock lock(mutex);
	while (!stop) {
		auto interval = std::chrono::seconds(app.config()->db_health_check_interval_s);
		wake.wait_for(lock, interval, [&] { return stop.load(); });
		if (stop)
			break;
		lock.unlock();
		app.pools.CheckIdle(interval);
		app.router.CheckIdle(interval);
		handlers::AdoptOrphanedMoves(app);
		lock.lock();
	}
}

int
Run(const std::string &config_path)
{
	Config config;
	try {
		config = LoadConfig(config_path);
	} catch (const std::exception &e) {
		std::cerr << "tenancyd: " << config_path << ": " << e.what() << "\n";
		return 1;
	}
	SetLogLevel(config.log_level);
	BlockSignals();
	App app(config);
	std::unique_ptr<httplib::Server> server;
	try {
		server = BuildServer(app);
	} catch (const std::exception &e) {
		Log(LogLevel::kError, "cannot start", {{"error", e.what()}});
		return 1;
	}
	// Regions mode: every reachable cluster must serve the region it is configured for (a swapped connection
	// string would place tenants in the wrong country); an unreachable one only delays its tenants.
	if (app.router.enabled()) {
		std::vector<std::string> problems = app.router.VerifyClusters();
		for (const std::string &problem : problems)
			Log(LogLevel::kError, "cannot start", {{"error", problem}});
		if (!problems.empty())
			return 1;
	}
	// A first connection at start: refuse a superuser at once; an unreachable database only delays readiness.
	try {
		if (!app.router.enabled())
			Lease lease = app.pools.AcquireFor("");
	} catch (const DbError &e) {
		if (std::strstr(e.what(), "superuser")) {
			Log(LogLevel::kError, "cannot start", {{"error", e.what()}});
			return 1;
		}
		Log(LogLevel::kWarn, "database not reachable yet; /readyz answers 503 until it is", {{"error", e.what()}});
	}
	StartSignalThread(
	    [&app, config_path] {
		    try {
			    Config fresh = LoadConfig(config_path);
			    auto old = app.config();
			    for (const std::string &key : KeysNeedingRestart(*old, fresh))
				    Log(LogLevel::kWarn, "configuration change needs a restart to take effect", {{"key", key}});
			    SetLogLevel(fresh.log_level);
			    app.SetConfig(fresh);
			    Log(LogLevel::kInfo, "configuration reloaded", {{"file", config_path}});
		    } catch (const std::exception &e) {
			    // ConfigError names the key; anything else must not end the process either.
			    Log(LogLevel::kError, "configuration reload failed; keeping the old configuration",
			        {{"error", e.what()}, {"file", config_path}});
		    }
	    },
	    [&server] { server->stop(); });

	std::atomic<bool> stop_health{false};
	std::mutex health_mutex;
	std::condition_variable health_wake;
	std::thread health([&] { HealthLoop(app, stop_health, health_mutex, health_wake); });

	bool ok = server->bind_to_port(config.listen_host, config.listen_port);
	if (ok) {
		Log(LogLevel::kInfo, "listening",
		    {{"url", std::string(config.tls_cert_file.empty() ? "http" : "https") + "://" + config.listen_host + ":" +
		                 std::to_string(config.listen_port)},
		     {"version", TENANCY_VERSION}});
		ok = server->listen_after_bind();
	} else {
		Log(LogLevel::kError, "cannot listen",
		    {{"host", config.listen_host}, {"port", config.listen_port}, {"error", std::strerror(errno)}});
	}
	{
		std::lock_guard lock(health_mutex);
		stop_health = true;
	}
	health_wake.notify_all();
	health.join();
	const int moving = handlers::SettleMovesForShutdown(app);
	app.pools.CloseAll();
	app.router.CloseAll();
	if (ok)
		Log(LogLevel::kInfo, "stopped");
	if (moving > 0) {
		// Their threads use the App: exit without destroying it. Their connections close with the process, which
		// frees each move's lock on the source, so the next tenancyd takes them over (docs/residency.md 4.3).
		Log(LogLevel::kWarn, "tenant moves left running to be taken over", {{"moves", moving}});
		std::_Exit(ok ? 0 : 1);
	}
	return ok ? 0 : 1;
}

} // namespace

int
main(int argc, char **argv)
{
	if (argc == 2 && std::strcmp(argv[1], "--version") == 0) {
		std::cout << "tenancyd " << TENANCY_VERSION << "\n";
		return 0;
	}
	if (argc == 3 && std::strcmp(argv[1], "--check-config") == 0) {
		try {
			LoadConfig(argv[2]);
		} catch (const std::exception &e) {
			std::cerr << "tenancyd: " << argv[2] << ": " << e.what() << "\n";
			return 1;
		}
		std::cout << "tenancyd: " << argv[2] << ": configuration OK\n";
		return 0;
	}
	if (argc == 3 && std::strcmp(argv[1], "--config") == 0)
		return Run(argv[2]);
	Usage();
	return 2;
}
