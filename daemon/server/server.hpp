// daemon/server/server.hpp
// Builds the cpp-httplib server (HTTP or HTTPS) with the route table, request logging, metrics and error bodies.
#pragma once

#include "app.hpp"

#include <httplib.h>
#include <memory>

namespace tenancyd {

// Throws std::runtime_error when TLS files cannot be loaded.
std::unique_ptr<httplib::Server> BuildServer(App &app);

// "/api/v1/tenants/{id}" -> "/api/v1/tenants/([^/]+)"; the names of the parameters in order.
std::string PatternToRegex(const std::string &path, std::vector<std::string> &names);

} // namespace tenancyd
