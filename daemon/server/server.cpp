// daemon/server/server.cpp
// One dispatch wrapper runs every route: path parameters, auth, body parsing, the handler, and error mapping.
// Every failure, including those cpp-httplib produces itself (404, 413), answers the same JSON error body.
#include "server/server.hpp"

#include "auth/authorizer.hpp"
#include "errors.hpp"
#include "log.hpp"
#include "region/request_routing.hpp"
#include "server/context.hpp"
#include "server/json_body.hpp"
#include "server/params.hpp"
#include "server/transport.hpp"

#include <algorithm>
#include <chrono>
#include <regex>

namespace tenancyd {

namespace {

// Per-request facts for the logger and metrics; cpp-httplib runs a request start to finish on one thread.
struct RequestInfo {
	std::chrono::steady_clock::time_point start;
	const char *route = nullptr; // route pattern once dispatched
	std::string tenant_id;       // tenant the request was about
	bool tenant_exists = false;  // the database confirmed tenant_id (its token authenticated, or the request succeeded)
	bool started = false;        // the pre-routing handler ran (start and the peer address are known)
};
thread_local RequestInfo t_info;

void
WriteReply(httplib::Response &res, const Reply &reply)
{
	res.status = reply.status;
	for (const auto &[k, v] : reply.headers)
		res.set_header(k, v);
	if (reply.status == 204)
		return;
	res.set_content(reply.body, reply.content_type);
}

Reply
ErrorReply(const ApiError &e)
{
	Reply r{e.status(), ErrorBody(e.code(), e.what(), e.sqlstate(), e.detail())};
	if (e.retry_after > 0)
		r.headers["Retry-After"] = std::to_string(e.retry_after);
	if (e.status() == 401)
		r.headers["WWW-Authenticate"] = "Bearer";
	return r;
}

ApiError
FromDbError(const DbError &e)
{
	if (e.connection_lost() || e.sqlstate().empty()) {
		ApiError api(503, "database_unavailable", "database unavailable");
		api.retry_after = 1;
		return api;
	}
	return ErrorFromSqlState(e.sqlstate(), e.what(), e.detail());
}

void
Dispatch(App &app, const Route &route, const std::vector<std::string> &names, const httplib::Request &req,
         httplib::Response &res)
{
	t_info.route = route.path;
	RequestContext ctx{req, app, app.config(), {}, {}, {}, nlohmann::json::object(), {}, std::nullopt};
	ctx.request_id = RequestIdOf(req);
	Reply reply;
	try {
		try {
			for (size_t i = 0; i < names.size() && i + 1 < req.matches.size(); i++) {
				std::string value = req.matches[i + 1].str();
				RequireUuid(value, names[i].c_str());
				std::transform(value.begin(), value.end(), value.begin(), ::tolower);
				ctx.path[names[i]] = value;
			}
			if (ctx.path.count("id"))
				ctx.tenant_id = ctx.path["id"];
			Authorize(ctx, route);
			// Metrics and SLA series only for authorized requests: unauthenticated clients cannot mint series. A
			// tenant token proves its tenant exists; an admin request for an id proves nothing until it succeeds.
			t_info.tenant_id = ctx.tenant_id;
			t_info.tenant_exists = ctx.caller.kind == Caller::Kind::kTenant;
			if (req.body.size() > ctx.config->max_body_bytes)
				throw ApiError(413, "payload_too_large", "request body exceeds limits.max_body_bytes");
			if (route.has_body)
				ctx.body = ParseJsonObject(req.body);
			if (route.needs_db && !ctx.lease)
				AcquireForRequest(ctx);
			reply = route.handler(ctx);
			if (reply.status < 300)
				t_info.tenant_exists = true;
		} catch (const DbError &e) {
			if (e.connection_lost() || e.sqlstate().empty())
				Log(LogLevel::kWarn, "database error", {{"error", e.what()}, {"route", route.path}});
			else if (MapSqlState(e.sqlstate()).status >= 500)
				Log(LogLevel::kError, "database error",
				    {{"sqlstate", e.sqlstate()}, {"error", e.what()}, {"route", route.path}});
			throw FromDbError(e);
		}
	} catch (const ApiError &e) {
		reply = ErrorReply(e);
	} catch (const std::exception &e) {
		Log(LogLevel::kError, "unexpected error", {{"error", e.what()}, {"route", route.path}});
		reply = ErrorReply(ApiError(500, "internal_error", "internal error"));
	}
	ctx.lease.reset(); // the connection goes back before the response is written
	reply.headers["X-Request-Id"] = ctx.request_id;
	WriteReply(res, reply);
}

void
RegisterRoute(httplib::Server &server, App &app, const Route &route, const std::string &path)
{
	auto names = std::make_shared<std::vector<std::string>>();
	std::string pattern = PatternToRegex(path, *names);
	httplib::Server::Handler h = [&app, &route, names](const httplib::Request &req, httplib::Response &res) {
		Dispatch(app, route, *names, req, res);
	};
	std::string m = route.method;
	if (m == "GET")
		server.Get(pattern, h);
	else if (m == "POST")
		server.Post(pattern, h);
	else if (m == "PATCH")
		server.Patch(pattern, h);
	else if (m == "DELETE")
		server.Delete(pattern, h);
}

// One JSON line per request (never bodies or tokens), then the metrics and SLA counters.
void
LogRequest(App &app, const httplib::Request &req, const httplib::Response &res)
{
	double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_info.start).count();
	std::string route = t_info.route ? t_info.route : "unmatched";
	if (t_info.route && std::string(t_info.route) != "/metrics" && std::string(t_info.route) != "/healthz" &&
	    std::string(t_info.route) != "/readyz") {
		app.metrics.Observe(t_info.tenant_id, route, req.method, res.status, seconds, t_info.tenant_exists);
		if (!t_info.tenant_id.empty())
			app.sla.Record(t_info.tenant_id, res.status, seconds, t_info.tenant_exists);
	}
	LogLevel level = res.status >= 500 ? LogLevel::kError : LogLevel::kInfo;
	if (LogEnabled(level)) {
		std::string path = req.path.size() > 200 ? req.path.substr(0, 200) : req.path;
		// cpp-httplib answers a bad request line or an over-long URI (400, 414) before our pre-routing handler runs
		// and before it has read the peer address: their time and address are unknown, so they are null (they were
		// a time since the epoch of steady_clock and ""), and `refused` tells such lines apart.
		nlohmann::json fields = {
		    {"method", req.method},
		    {"route", route},
		    {"path", path},
		    {"status", res.status},
		    {"ms", t_info.started ? nlohmann::json(std::round(seconds * 100000) / 100) : nlohmann::json(nullptr)},
		    {"tenant_id", t_info.tenant_id.empty() ? nlohmann::json(nullptr) : nlohmann::json(t_info.tenant_id)},
		    {"remote_addr", req.remote_addr.empty() ? nlohmann::json(nullptr) : nlohmann::json(req.remote_addr)}};
		if (!t_info.started)
			fields["refused"] = "before_routing";
		Log(level, "request", fields);
	}
	t_info = RequestInfo{};
}

// The API takes JSON only (SPEC.md "JSON in and out"). A body of another type is refused with 415 before it is read:
// cpp-httplib would otherwise parse application/x-www-form-urlencoded (capped at 8 KiB, into query parameters) and
// multipart/form-data bodies itself. A request without a body may name any type or none.
bool
RefuseContentType(const httplib::Request &req, httplib::Response &res)
{
	const std::string length = req.get_header_value("Content-Length");
	if (length.empty() || length == "0" || !req.has_header("Content-Type"))
		return false;
	// Every Content-Type header counts: cpp-httplib acts on the first, a proxy may act on another.
	bool json = true;
	auto [from, to] = req.headers.equal_range("Content-Type");
	for (auto it = from; it != to; ++it) {
		std::string type = it->second.substr(0, it->second.find(';'));
		while (!type.empty() && (type.back() == ' ' || type.back() == '\t'))
			type.pop_back();
		std::transform(type.begin(), type.end(), type.begin(), ::tolower);
		json = json && type == "application/json";
	}
	if (json)
		return false;
	res.status = 415;
	res.set_header("Connection", "close"); // the unread body must not be parsed as a next request
	res.set_header("Accept", "application/json");
	res.set_content(ErrorBody("unsupported_media_type", "request bodies must be application/json", ""),
	                "application/json");
	return true;
}

} // namespace

std::string
PatternToRegex(const std::string &path, std::vector<std::string> &names)
{
	std::string out;
	for (size_t i = 0; i < path.size(); i++) {
		if (path[i] == '{') {
			size_t end = path.find('}', i);
			names.push_back(path.substr(i + 1, end - i - 1));
			out += "([^/]+)";
			i = end;
		} else if (path[i] == '.') {
			out += "\\.";
		} else {
			out += path[i];
		}
	}
	return out;
}

std::unique_ptr<httplib::Server>
BuildServer(App &app)
{
	auto config = app.config();
	std::unique_ptr<httplib::Server> server;
	if (!config->tls_cert_file.empty()) {
		auto ssl = std::make_unique<httplib::SSLServer>(config->tls_cert_file.c_str(), config->tls_key_file.c_str());
		if (!ssl->is_valid())
			throw std::runtime_error("could not load tls.cert_file/tls.key_file");
		server = std::move(ssl);
		// cpp-httplib's own TLS transport: a pool thread per connection and none of the bounds of GuardedServer
		// (docs/operations.md: terminate TLS at nginx in front instead).
		int threads = config->listen_threads;
		server->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
		Log(LogLevel::kWarn, "tls at the daemon uses cpp-httplib's thread-per-connection transport without the "
		                     "connection limits; terminate TLS at the front proxy (docs/operations.md)");
	} else {
		// Plain HTTP: tenancyd's own transport (server/transport.hpp) bounds connections, heads, bodies, framing.
		TransportLimits limits;
		limits.threads = config->listen_threads;
		limits.max_connections = config->listen_max_connections;
		limits.keep_alive_timeout_ms = config->listen_keep_alive_timeout_s * 1000;
		limits.keep_alive_max_requests = config->listen_keep_alive_max_requests;
		limits.header_timeout_ms = config->header_timeout_ms;
		limits.body_timeout_ms = config->body_timeout_ms;
		limits.write_timeout_ms = config->write_timeout_ms;
		limits.drain_timeout_ms = config->listen_drain_timeout_s * 1000;
		limits.head.max_header_bytes = config->max_header_bytes;
		limits.head.max_body_bytes = config->max_body_bytes;
		server = std::make_unique<GuardedServer>(limits);
	}
	server->set_payload_max_length(config->max_body_bytes);
	// Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus delayed ACK adds ~40 ms each.
	server->set_tcp_nodelay(true);
	server->set_keep_alive_max_count(static_cast<size_t>(config->listen_keep_alive_max_requests));
	server->set_keep_alive_timeout(config->listen_keep_alive_timeout_s);
	server->set_read_timeout(10);
	server->set_write_timeout(10);
	for (const Route &route : Routes()) {
		RegisterRoute(*server, app, route, route.path);
		std::string path = route.path;
		if (path.rfind("/api/v1/", 0) == 0)
			RegisterRoute(*server, app, route, path.substr(4)); // the /v1 alias of the brief's examples
	}
	server->set_pre_routing_handler([](const httplib::Request &req, httplib::Response &res) {
		t_info = RequestInfo{};
		t_info.start = std::chrono::steady_clock::now();
		t_info.started = true;
		if (RefuseContentType(req, res))
			return httplib::Server::HandlerResponse::Handled;
		// GuardedServer refuses these before cpp-httplib reads the request; the TLS server (cpp-httplib's own
		// transport) gets them here. cpp-httplib 0.11 does not bound chunked request bodies by the payload limit.
		if (req.has_header("Transfer-Encoding") && req.get_header_value("Transfer-Encoding") != "identity") {
			res.status = 411;
			res.set_header("Connection", "close"); // the unread body must not be parsed as a next request
			res.set_content(ErrorBody("length_required", "request bodies need a Content-Length", ""),
			                "application/json");
			return httplib::Server::HandlerResponse::Handled;
		}
		// Ranges are never served (a multi-range answer is built in memory): the whole answer, always.
		const_cast<httplib::Request &>(req).ranges.clear();
		// A POST/PATCH/DELETE without Content-Length is an empty body (SPEC.md), not the 400 cpp-httplib 0.11 would
		// answer. The request object is ours and not really const (cpp-httplib builds it mutable before routing).
		if (!req.has_header("Content-Length") && req.method != "GET" && req.method != "HEAD")
			const_cast<httplib::Request &>(req).set_header("Content-Length", "0");
		return httplib::Server::HandlerResponse::Unhandled;
	});
	// Errors cpp-httplib raises itself (no route, body too large, bad request line) get the JSON body too.
	server->set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request &,
	                                                                    httplib::Response &res) {
		if (!res.body.empty())
			return httplib::Server::HandlerResponse::Unhandled;
		auto [code, message] = DefaultErrorFor(res.status);
		res.set_content(ErrorBody(code, message, ""), "application/json");
		return httplib::Server::HandlerResponse::Handled;
	}));
	server->set_exception_handler([](const httplib::Request &, httplib::Response &res, std::exception_ptr) {
		res.status = 500;
		res.set_content(ErrorBody("internal_error", "internal error", ""), "application/json");
	});
	server->set_logger([&app](const httplib::Request &req, const httplib::Response &res) { LogRequest(app, req, res); });
	return server;
}

} // namespace tenancyd
