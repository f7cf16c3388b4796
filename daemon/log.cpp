// daemon/log.cpp
// JSON log lines written with one write(2) each so concurrent lines never interleave.
#include "log.hpp"

#include <atomic>
#include <chrono>
#include <ctime>
#include <unistd.h>

namespace tenancyd {

namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};

const char *
LevelName(LogLevel level)
{
	switch (level) {
	case LogLevel::kDebug:
		return "debug";
	case LogLevel::kInfo:
		return "info";
	case LogLevel::kWarn:
		return "warn";
	default:
		return "error";
	}
}

// RFC 3339 UTC with milliseconds.
std::string
NowRfc3339()
{
	auto now = std::chrono::system_clock::now();
	std::time_t secs = std::chrono::system_clock::to_time_t(now);
	int ms = static_cast<int>(
	    std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000);
	std::tm tm{};
	gmtime_r(&secs, &tm);
	char buf[64];
	std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
	              tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
	return buf;
}
} // namespace

bool
ParseLogLevel(const std::string &text, LogLevel &out)
{
	for (LogLevel l : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn, LogLevel::kError})
		if (text == LevelName(l)) {
			out = l;
			return true;
		}
	return false;
}

void
SetLogLevel(LogLevel level)
{
	g_level.store(static_cast<int>(level));
}

bool
LogEnabled(LogLevel level)
{
	return static_cast<int>(level) >= g_level.load(std::memory_order_relaxed);
}

void
Log(LogLevel level, const std::string &message, nlohmann::json fields)
{
	if (!LogEnabled(level))
		return;
	nlohmann::json line = {{"ts", NowRfc3339()}, {"level", LevelName(level)}, {"msg", message}};
	for (auto &[k, v] : fields.items())
		line[k] = v;
	std::string text = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
	ssize_t ignored = ::write(STDERR_FILENO, text.data(), text.size());
	(void)ignored;
}

} // namespace tenancyd
