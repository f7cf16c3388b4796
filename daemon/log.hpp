// daemon/log.hpp
// Structured logging: one JSON object per line on stderr; never bodies, tokens or keys.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace tenancyd {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// Parses "debug", "info", "warn" or "error"; false for anything else.
bool ParseLogLevel(const std::string &text, LogLevel &out);
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);

// Writes {"ts": ..., "level": ..., "msg": ..., ...fields} as one line when the level is enabled.
void Log(LogLevel level, const std::string &message, nlohmann::json fields = nlohmann::json::object());

} // namespace tenancyd
