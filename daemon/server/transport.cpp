// daemon/server/transport.cpp
// The poller/worker transport under cpp-httplib (see transport.hpp). One poller thread owns every connection that is
// idle, sending its request, or being refused; a connection goes to a worker only with a complete request in its
// buffer, and comes back to the poller after the response. Only the poller closes sockets, so a descriptor is never
// reused while a worker still holds it.
#include "server/transport.hpp"

#include "errors.hpp"
#include "log.hpp"

#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tenancyd {

namespace {

using Clock = std::chrono::steady_clock;

enum class State {
	kIdle,     // between requests: waiting for the first byte (keep-alive timeout)
	kHead,     // reading the request head (header timeout, max_header_bytes)
	kBody,     // reading the body (body timeout, Content-Length <= max_body_bytes)
	kQueued,   // complete request waiting for a worker
	kWorking,  // a worker runs it
	kClosing,  // refused: the answer is sent, the rest of the input is read and dropped for a moment, then closed
	kFlushing, // the answer did not fit the socket buffer: the poller sends the rest (write timeout), no worker waits
};

struct Conn {
	int fd = -1;
	std::atomic<State> state{State::kIdle}; // read by the poller while a worker has the connection
	std::string in;                         // received and not yet consumed
	size_t scanned = 0;
	Clock::time_point deadline;
	Clock::time_point started;
	int served = 0;
	size_t discarded = 0;
	std::string out; // answer bytes the socket did not take yet
	size_t out_off = 0;
	bool close_after = false;
	HeadVerdict verdict;
	std::string remote_ip, local_ip;
	int remote_port = 0, local_port = 0;
};

void
Address(int fd, bool peer, std::string &ip, int &port)
{
	sockaddr_storage addr{};
	socklen_t len = sizeof(addr);
	int rc = peer ? getpeername(fd, reinterpret_cast<sockaddr *>(&addr), &len)
	              : getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
	if (rc != 0)
		return;
	char buf[INET6_ADDRSTRLEN] = {0};
	if (addr.ss_family == AF_INET) {
		auto *a = reinterpret_cast<sockaddr_in *>(&addr);
		inet_ntop(AF_INET, &a->sin_addr, buf, sizeof(buf));
		port = ntohs(a->sin_port);
	} else if (addr.ss_family == AF_INET6) {
		auto *a = reinterpret_cast<sockaddr_in6 *>(&addr);
		inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof(buf));
		port = ntohs(a->sin6_port);
	}
	ip = buf;
}

int
MsLeft(Clock::time_point deadline)
{
	auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
	return ms < 0 ? 0 : static_cast<int>(ms);
}

// Statuses after which the rest of the input cannot be trusted to start a new request.
bool
ClosesConnection(int status)
{
	switch (status) {
	case 400:
	case 408:
	case 411:
	case 413:
	case 414:
	case 416:
	case 431:
	case 501:
	case 505:
		return true;
	default:
		return false;
	}
}

const char *
Reason(int status)
{
	switch (status) {
	case 400:
		return "Bad Request";
	case 408:
		return "Request Timeout";
	case 411:
		return "Length Required";
	case 413:
		return "Payload Too Large";
	case 414:
		return "URI Too Long";
	case 431:
		return "Request Header Fields Too Large";
	case 501:
		return "Not Implemented";
	case 503:
		return "Service Unavailable";
	case 505:
		return "HTTP Version Not Supported";
	default:
		return "Error";
	}
}

thread_local bool t_adopting = false;

} // namespace

class Transport {
  public:
	Transport(GuardedServer &server, const TransportLimits &limits) : server_(server), limits_(limits) {}
	~Transport()
	{
		Shutdown();
	}

	void Start();
	void Adopt(int fd);
	void Shutdown();
	int
	Open() const
	{
		return open_.load();
	}

  private:
	void PollLoop();
	void WorkerLoop();
	void AddConn(int fd);
	void OnReadable(Conn &c);
	void OnWritable(Conn &c);
	bool NextRequestInWorker(Conn &c);
	void Rearm(Conn &c, Clock::time_point now);
	void Examine(Conn &c);
	void Dispatch(Conn &c);
	void Refuse(Conn &c, int status, const std::string &code, const std::string &message);
	void Close(int fd);
	void Tick(Clock::time_point now);
	void Wake();

	GuardedServer &server_;
	TransportLimits limits_;
	int epfd_ = -1, evfd_ = -1;
	std::mutex mu_;
	std::condition_variable work_cv_;
	std::condition_variable done_cv_;
	std::deque<Conn *> ready_;
	std::vector<Conn *> returned_;
	std::vector<int> adopted_;
	std::unordered_map<int, std::unique_ptr<Conn>> conns_; // poller thread only
	std::atomic<int> open_{0};
	std::atomic<bool> draining_{false};
	bool stop_workers_ = false;
	bool poller_done_ = false;
	bool started_ = false, shut_ = false;
	Clock::time_point drain_deadline_;
	std::thread poller_;
	std::vector<std::thread> workers_;

	friend class ConnStream;
};

// The stream cpp-httplib reads a request from and writes its response to: the bytes the poller buffered first, then
// the socket (non-blocking, with deadlines).
class ConnStream : public httplib::Stream {
  public:
	ConnStream(Conn &c, const TransportLimits &limits) : c_(c), limits_(limits) {}

	bool
	is_readable() const override
	{
		return off_ < c_.in.size() || Wait(POLLIN, limits_.body_timeout_ms) > 0;
	}
	bool
	is_writable() const override
	{
		return true; // what the socket does not take is buffered for the poller
	}

	ssize_t
	read(char *ptr, size_t size) override
	{
		if (off_ >= c_.in.size()) {
			// Not expected (the poller buffers the whole request), but served with the body deadline.
			char buf[16384];
			if (Wait(POLLIN, limits_.body_timeout_ms) <= 0)
				return -1;
			ssize_t n = recv(c_.fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (n <= 0)
				return n;
			c_.in.append(buf, static_cast<size_t>(n));
		}
		size_t n = std::min(size, c_.in.size() - off_);
		std::memcpy(ptr, c_.in.data() + off_, n);
		off_ += n;
		return static_cast<ssize_t>(n);
	}

	ssize_t
	write(const char *ptr, size_t size) override
	{
		if (!writing_) {
			writing_ = true;
			if (size >= 12 && std::memcmp(ptr, "HTTP/1.", 7) == 0)
				status_ = std::atoi(std::string(ptr + 9, 3).c_str());
		}
		// Sent at once when the socket takes it; the rest waits in the connection's buffer and the poller sends it,
		// so a client that does not read its answer never holds a worker.
		size_t sent = 0;
		if (c_.out.empty()) {
			ssize_t n = send(c_.fd, ptr, size, MSG_NOSIGNAL | MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return -1;
			sent = n > 0 ? static_cast<size_t>(n) : 0;
		}
		if (sent < size)
			c_.out.append(ptr + sent, size - sent);
		return static_cast<ssize_t>(size);
	}

	void
	get_remote_ip_and_port(std::string &ip, int &port) const override
	{
		ip = c_.remote_ip;
		port = c_.remote_port;
	}
	void
	get_local_ip_and_port(std::string &ip, int &port) const override
	{
		ip = c_.local_ip;
		port = c_.local_port;
	}
	socket_t
	socket() const override
	{
		return c_.fd;
	}

	size_t
	consumed() const
	{
		return off_;
	}
	int
	status() const
	{
		return status_;
	}

  private:
	int
	Poll(short events, int timeout_ms) const
	{
		pollfd p{c_.fd, events, 0};
		int rc;
		do
			rc = poll(&p, 1, timeout_ms);
		while (rc < 0 && errno == EINTR);
		if (rc > 0 && (p.revents & (POLLERR | POLLNVAL)))
			return -1;
		return rc;
	}
	int
	Wait(short events, int timeout_ms) const
	{
		return Poll(events, timeout_ms);
	}

	Conn &c_;
	const TransportLimits &limits_;
	size_t off_ = 0;
	bool writing_ = false;
	int status_ = 0;
};

void
Transport::Start()
{
	std::lock_guard lock(mu_);
	if (started_)
		return;
	started_ = true;
	epfd_ = epoll_create1(EPOLL_CLOEXEC);
	evfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (epfd_ < 0 || evfd_ < 0)
		throw std::runtime_error(std::string("transport: ") + std::strerror(errno));
	epoll_event ev{};
	ev.events = EPOLLIN;
	ev.data.fd = evfd_;
	epoll_ctl(epfd_, EPOLL_CTL_ADD, evfd_, &ev);
	poller_ = std::thread([this] { PollLoop(); });
	for (int i = 0; i < limits_.threads; i++)
		workers_.emplace_back([this] { WorkerLoop(); });
}

void
Transport::Wake()
{
	uint64_t one = 1;
	ssize_t rc = ::write(evfd_, &one, sizeof(one));
	(void)rc;
}

void
Transport::Adopt(int fd)
{
	open_++;
	{
		std::lock_guard lock(mu_);
		adopted_.push_back(fd);
	}
	Wake();
}

void
Transport::Shutdown()
{
	{
		std::unique_lock lock(mu_);
		if (!started_ || shut_)
			return;
		shut_ = true;
		drain_deadline_ = Clock::now() + std::chrono::milliseconds(limits_.drain_timeout_ms);
		draining_ = true;
	}
	Wake();
	{
		std::unique_lock lock(mu_);
		done_cv_.wait(lock, [this] { return poller_done_; });
		stop_workers_ = true;
	}
	work_cv_.notify_all();
	for (auto &t : workers_)
		t.join();
	poller_.join();
	close(epfd_);
	close(evfd_);
}

void
Transport::Close(int fd)
{
	auto it = conns_.find(fd);
	if (it == conns_.end())
		return;
	epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
	close(fd);
	conns_.erase(it);
	open_--;
}

void
Transport::AddConn(int fd)
{
	// Full: an idle keep-alive connection makes room (its client reconnects), else the newcomer is refused at once.
	if (static_cast<int>(conns_.size()) >= limits_.max_connections) {
		Conn *victim = nullptr;
		for (auto &[_, c] : conns_)
			if (c->state == State::kIdle && (!victim || c->deadline < victim->deadline))
				victim = c.get();
		if (victim) {
			Close(victim->fd);
		} else {
			static const std::string body =
			    ErrorBody("unavailable", "too many connections (listen.max_connections)", "");
			std::string reply = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
			                    "Retry-After: 1\r\nConnection: close\r\nContent-Length: " +
			                    std::to_string(body.size()) + "\r\n\r\n" + body;
			ssize_t rc = send(fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)rc;
			close(fd);
			open_--;
			Log(LogLevel::kWarn, "connection refused: listen.max_connections reached",
			    {{"max_connections", limits_.max_connections}});
			return;
		}
	}
	int flags = fcntl(fd, F_GETFL, 0);
	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	auto c = std::make_unique<Conn>();
	c->fd = fd;
	c->state = State::kIdle;
	// A new connection must start its request within the header timeout (an idle keep-alive one gets longer).
	c->deadline = Clock::now() + std::chrono::milliseconds(limits_.header_timeout_ms);
	Address(fd, true, c->remote_ip, c->remote_port);
	Address(fd, false, c->local_ip, c->local_port);
	epoll_event ev{};
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.fd = fd;
	epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev);
	conns_[fd] = std::move(c);
}

void
Transport::OnReadable(Conn &c)
{
	size_t cap;
	if (c.state == State::kClosing)
		cap = c.in.size() + 65536;
	else if (c.state == State::kBody)
		cap = c.verdict.head_len + c.verdict.body_len + limits_.head.max_header_bytes;
	else
		cap = limits_.head.max_header_bytes + 1;
	if (c.in.size() >= cap) {
		// Nothing more is needed now (pipelined bytes wait in the kernel); stop listening until it is consumed.
		return;
	}
	char buf[65536];
	size_t want = std::min(sizeof(buf), cap - c.in.size());
	ssize_t n = recv(c.fd, buf, want, MSG_DONTWAIT);
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
		Close(c.fd);
		return;
	}
	if (n < 0)
		return;
	if (c.state == State::kClosing) {
		c.discarded += static_cast<size_t>(n);
		if (c.discarded > 1024 * 1024)
			Close(c.fd);
		return;
	}
	c.in.append(buf, static_cast<size_t>(n));
	Examine(c);
}

// After an answer: closed, or idle again (keep-alive timeout) with any pipelined request examined at once.
void
Transport::Rearm(Conn &c, Clock::time_point now)
{
	if (c.close_after || draining_) {
		Close(c.fd);
		return;
	}
	c.state = State::kIdle;
	c.deadline = now + std::chrono::milliseconds(limits_.keep_alive_timeout_ms);
	epoll_event ev{};
	ev.events = EPOLLIN | EPOLLRDHUP;
	ev.data.fd = c.fd;
	if (epoll_ctl(epfd_, EPOLL_CTL_MOD, c.fd, &ev) != 0)
		epoll_ctl(epfd_, EPOLL_CTL_ADD, c.fd, &ev);
	Examine(c); // a pipelined request may already be buffered
}

// The rest of an answer; the write timeout counts from the last progress.
void
Transport::OnWritable(Conn &c)
{
	ssize_t n = send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
		Close(c.fd);
		return;
	}
	if (n <= 0)
		return;
	c.out_off += static_cast<size_t>(n);
	auto now = Clock::now();
	c.deadline = now + std::chrono::milliseconds(limits_.write_timeout_ms);
	if (c.out_off < c.out.size())
		return;
	c.out.clear();
	c.out.shrink_to_fit();
	c.out_off = 0;
	Rearm(c, now);
}

void
Transport::Examine(Conn &c)
{
	auto now = Clock::now();
	if (c.state == State::kIdle) {
		size_t skip = 0; // RFC 9112 2.2: empty lines before a request line are ignored
		while (c.in.compare(skip, 2, "\r\n") == 0)
			skip += 2;
		c.in.erase(0, skip);
		if (c.in.empty())
			return;
		if (draining_) {
			// A new request on a kept-alive connection while stopping: closed unanswered (as an idle one would be).
			Close(c.fd);
			return;
		}
		c.state = State::kHead;
		c.scanned = 0;
		c.started = now;
		c.deadline = now + std::chrono::milliseconds(limits_.header_timeout_ms);
	}
	if (c.state == State::kHead) {
		// Re-examine only when a line ended (or the cap is reached): a head sent byte by byte costs little.
		if (c.in.find('\n', c.scanned) == std::string::npos && c.in.size() <= limits_.head.max_header_bytes) {
			c.scanned = c.in.size();
			return;
		}
		c.scanned = c.in.size();
		c.verdict = ExamineHead(c.in, limits_.head);
		if (c.verdict.kind == HeadVerdict::Kind::kIncomplete)
			return;
		if (c.verdict.kind == HeadVerdict::Kind::kRefuse) {
			Refuse(c, c.verdict.status, c.verdict.code, c.verdict.message);
			return;
		}
		c.state = State::kBody;
		c.deadline = now + std::chrono::milliseconds(limits_.body_timeout_ms);
		if (c.verdict.expect_continue && c.in.size() < c.verdict.head_len + c.verdict.body_len) {
			static const char kContinue[] = "HTTP/1.1 100 Continue\r\n\r\n";
			ssize_t rc = send(c.fd, kContinue, sizeof(kContinue) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
			(void)rc;
		}
	}
	if (c.state == State::kBody) {
		if (c.in.size() < c.verdict.head_len + c.verdict.body_len)
			return;
		// cpp-httplib gets the head without Range, If-Range and Expect.
		c.in.replace(0, c.verdict.head_len, c.verdict.head);
		Dispatch(c);
	}
}

void
Transport::Dispatch(Conn &c)
{
	epoll_ctl(epfd_, EPOLL_CTL_DEL, c.fd, nullptr);
	c.state = State::kQueued;
	{
		std::lock_guard lock(mu_);
		ready_.push_back(&c);
	}
	work_cv_.notify_one();
}

void
Transport::Refuse(Conn &c, int status, const std::string &code, const std::string &message)
{
	std::string body = ErrorBody(code, message, "");
	std::string reply =
	    "HTTP/1.1 " + std::to_string(status) + " " + Reason(status) +
	    "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
	    "\r\n\r\n" + body;
	ssize_t rc = send(c.fd, reply.data(), reply.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
	(void)rc;
	double ms =
	    c.state == State::kIdle ? 0.0 : std::chrono::duration<double, std::milli>(Clock::now() - c.started).count();
	Log(LogLevel::kInfo, "request refused",
	    {{"status", status},
	     {"code", code},
	     {"reason", message},
	     {"ms", std::round(ms * 100) / 100},
	     {"remote_addr", c.remote_ip}});
	// Half-close, then read and drop what the client still sends for a moment: closing with unread input would
	// reset the connection and could destroy the answer before the client reads it.
	shutdown(c.fd, SHUT_WR);
	c.state = State::kClosing;
	c.in.clear();
	c.in.shrink_to_fit();
	c.deadline = Clock::now() + std::chrono::milliseconds(1000);
}

void
Transport::Tick(Clock::time_point now)
{
	std::vector<int> to_close;
	std::vector<Conn *> timed_out;
	bool past_drain = draining_ && now >= drain_deadline_;
	for (auto &[fd, c] : conns_) {
		switch (c->state) {
		case State::kIdle:
			if (draining_ || now >= c->deadline)
				to_close.push_back(fd);
			break;
		case State::kClosing:
		case State::kFlushing: // a client that does not take its answer
			if (now >= c->deadline || past_drain)
				to_close.push_back(fd);
			break;
		case State::kHead:
		case State::kBody:
			if (past_drain)
				to_close.push_back(fd);
			else if (now >= c->deadline)
				timed_out.push_back(c.get());
			break;
		case State::kQueued:
		case State::kWorking:
			if (past_drain)
				shutdown(fd, SHUT_RDWR); // its worker's reads and writes fail; it comes back and is closed
			break;
		}
	}
	for (Conn *c : timed_out)
		Refuse(*c, 408, "request_timeout",
		       c->state == State::kHead ? "request head not received within limits.header_timeout_ms"
		                                : "request body not received within limits.body_timeout_ms");
	for (int fd : to_close)
		Close(fd);
}

void
Transport::PollLoop()
{
	epoll_event events[128];
	auto last_tick = Clock::now();
	for (;;) {
		int n = epoll_wait(epfd_, events, 128, 50);
		for (int i = 0; i < n; i++) {
			int fd = events[i].data.fd;
			if (fd == evfd_) {
				uint64_t v;
				ssize_t rc = ::read(evfd_, &v, sizeof(v));
				(void)rc;
				continue;
			}
			auto it = conns_.find(fd);
			if (it == conns_.end())
				continue;
			Conn &c = *it->second;
			if (c.state == State::kQueued || c.state == State::kWorking)
				continue;
			if (c.state == State::kFlushing)
				OnWritable(c);
			else
				OnReadable(c);
		}
		std::vector<int> adopted;
		std::vector<Conn *> returned;
		{
			std::lock_guard lock(mu_);
			adopted.swap(adopted_);
			returned.swap(returned_);
		}
		for (int fd : adopted)
			AddConn(fd);
		auto now = Clock::now();
		for (Conn *c : returned) {
			if (!c->out.empty()) {
				c->state = State::kFlushing;
				c->deadline = now + std::chrono::milliseconds(limits_.write_timeout_ms);
				epoll_event ev{};
				ev.events = EPOLLOUT;
				ev.data.fd = c->fd;
				epoll_ctl(epfd_, EPOLL_CTL_ADD, c->fd, &ev);
				continue;
			}
			Rearm(*c, now);
		}
		if (now - last_tick >= std::chrono::milliseconds(50) || draining_) {
			last_tick = now;
			Tick(now);
		}
		if (draining_ && conns_.empty()) {
			std::lock_guard lock(mu_);
			if (adopted_.empty()) {
				poller_done_ = true;
				done_cv_.notify_all();
				return;
			}
		}
	}
}

// A busy keep-alive client sends its next request right after reading an answer: the worker waits for it a moment
// (kWorkerLingerMs, never for a slow or idle client) and runs it at once, instead of handing the connection back to
// the poller and waiting for the poller to hand it out again (three thread switches per request on this path).
// Anything but a complete, acceptable request goes back to the poller, which applies every limit as usual.
constexpr int kWorkerLingerMs = 2;

bool
Transport::NextRequestInWorker(Conn &c)
{
	if (c.close_after || draining_ || !c.out.empty())
		return false;
	auto deadline = Clock::now() + std::chrono::milliseconds(kWorkerLingerMs);
	for (;;) {
		size_t skip = 0;
		while (c.in.compare(skip, 2, "\r\n") == 0)
			skip += 2;
		c.in.erase(0, skip);
		if (!c.in.empty()) {
			HeadVerdict v = ExamineHead(c.in, limits_.head);
			if (v.kind == HeadVerdict::Kind::kRefuse || v.expect_continue)
				return false;
			if (v.kind == HeadVerdict::Kind::kAccept) {
				if (c.in.size() < v.head_len + v.body_len)
					return false; // the body is still coming: the poller waits for it with the body timeout
				c.in.replace(0, v.head_len, v.head);
				c.verdict = std::move(v);
				return true;
			}
		}
		int left = MsLeft(deadline);
		if (left <= 0 || c.in.size() > limits_.head.max_header_bytes)
			return false;
		pollfd p{c.fd, POLLIN, 0};
		if (poll(&p, 1, left) <= 0)
			return false;
		char buf[16384];
		ssize_t n = recv(c.fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n <= 0)
			return false; // end of input or an error: the poller sees it too and closes
		c.in.append(buf, static_cast<size_t>(n));
	}
}

void
Transport::WorkerLoop()
{
	for (;;) {
		Conn *c;
		{
			std::unique_lock lock(mu_);
			work_cv_.wait(lock, [this] { return !ready_.empty() || stop_workers_; });
			if (ready_.empty())
				return;
			c = ready_.front();
			ready_.pop_front();
			c->state = State::kWorking;
		}
		do {
			ConnStream strm(*c, limits_);
			bool close_connection = draining_ || c->served + 1 >= limits_.keep_alive_max_requests;
			bool connection_closed = false;
			bool ok = false;
			try {
				ok = server_.RunRequest(strm, close_connection, connection_closed);
			} catch (const std::exception &e) {
				Log(LogLevel::kError, "request processing failed", {{"error", e.what()}});
			}
			c->in.erase(0, std::min(strm.consumed(), c->in.size()));
			c->served++;
			if (!ok || close_connection || connection_closed || ClosesConnection(strm.status()))
				c->close_after = true;
		} while (NextRequestInWorker(*c));
		{
			std::lock_guard lock(mu_);
			returned_.push_back(c);
		}
		Wake();
	}
}

GuardedServer::GuardedServer(const TransportLimits &limits)
{
	transport_ = std::make_shared<Transport>(*this, limits);
	// cpp-httplib's accept loop hands each socket to a TaskQueue: ours passes it straight to the transport.
	struct AcceptQueue : httplib::TaskQueue {
		explicit AcceptQueue(std::shared_ptr<Transport> t) : t_(std::move(t))
		{
			t_->Start();
		}
		void
		enqueue(std::function<void()> fn) override
		{
			t_adopting = true;
			fn(); // calls process_and_close_socket(sock) below, which adopts the socket
			t_adopting = false;
		}
		void
		shutdown() override
		{
			t_->Shutdown();
		}
		std::shared_ptr<Transport> t_;
	};
	std::weak_ptr<Transport> weak = transport_;
	new_task_queue = [weak] { return new AcceptQueue(weak.lock()); };
}

GuardedServer::~GuardedServer()
{
	transport_->Shutdown();
}

int
GuardedServer::OpenConnections() const
{
	return transport_->Open();
}

bool
GuardedServer::process_and_close_socket(socket_t sock)
{
	if (t_adopting) {
		transport_->Adopt(sock);
		return true;
	}
	::shutdown(sock, SHUT_RDWR);
	::close(sock);
	return false;
}

bool
GuardedServer::RunRequest(httplib::Stream &strm, bool close_connection, bool &connection_closed)
{
	return process_request(strm, close_connection, connection_closed, nullptr);
}

} // namespace tenancyd
