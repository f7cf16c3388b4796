// daemon/server/transport.hpp
// tenancyd's own connection handling under cpp-httplib 0.11 (which gives every keep-alive connection a pool thread
// for as long as it stays open, so 16 idle or slow clients stop the server): one poller thread owns every socket
// while it is idle or still sending its request, reads each request head and body with whole-request deadlines and
// size caps, refuses ambiguous framing (http_head.hpp), and only then hands the complete request to a worker, which
// runs cpp-httplib's own request processing (routing, handlers, response) on it. Idle and slow connections cost a
// buffer, never a thread. SIGTERM drains with a deadline.
#pragma once

#include "server/http_head.hpp"

#include <httplib.h>

#include <memory>

namespace tenancyd {

struct TransportLimits {
	int threads = 16;                   // workers running requests
	int max_connections = 512;          // open client connections; more answer 503 and are closed
	int keep_alive_timeout_ms = 5000;   // an idle connection is closed after this
	int keep_alive_max_requests = 1000; // requests per connection, then "Connection: close"
	int header_timeout_ms = 5000;       // the whole request head must arrive within this of its first byte
	int body_timeout_ms = 10000;        // the whole body within this of the end of the head
	int write_timeout_ms = 10000;       // a client taking none of its answer for this long is disconnected
	int drain_timeout_ms = 5000;        // SIGTERM: in-flight requests get this long, then connections are closed
	HeadLimits head;
};

class Transport;

// An httplib::Server whose sockets are run by the Transport instead of cpp-httplib's thread-per-connection loop.
class GuardedServer : public httplib::Server {
  public:
	explicit GuardedServer(const TransportLimits &limits);
	~GuardedServer() override;

	// Connections open now and requests running now (for tests and logs).
	int OpenConnections() const;

  private:
	friend class Transport;
	// cpp-httplib calls this (virtually) for every accepted socket; the Transport adopts the socket instead.
	bool process_and_close_socket(socket_t sock) override;
	// Runs one complete request already read into the stream's buffer (cpp-httplib's own processing).
	bool RunRequest(httplib::Stream &strm, bool close_connection, bool &connection_closed);

	std::shared_ptr<Transport> transport_;
};

} // namespace tenancyd
