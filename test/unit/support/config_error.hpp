// test/unit/support/config_error.hpp
// The ConfigError message ParseConfig gives for a YAML text, or "no error" (shared by the daemon config tests).
#pragma once

#include "config.hpp"

#include <string>

namespace tenancyd::test {

inline std::string
ErrorOf(const std::string &yaml)
{
	try {
		ParseConfig(yaml);
	} catch (const ConfigError &e) {
		return e.what();
	}
	return "no error";
}

} // namespace tenancyd::test
