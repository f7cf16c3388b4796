// daemon/db/pool.cpp
// libpq pool: every statement goes through PQexecParams; broken connections are closed and reopened on next use.
#include "db/pool.hpp"

#include "log.hpp"

namespace tenancyd {

namespace {
// While the server is refusing connections, requests within this window answer 503 at once.
constexpr auto kConnectBackoff = std::chrono::milliseconds(500);

std::string
FirstLine(const char *text)
{
	std::string s = text ? text : "";
	auto nl = s.find('\n');
	return nl == std::string::npos ? s : s.substr(0, nl);
}

std::vector<const char *>
Values(const std::vector<Param> &params)
{
	std::vector<const char *> values;
	values.reserve(params.size());
	for (const Param &p : params)
		values.push_back(p ? p->c_str() : nullptr);
	return values;
}
} // namespace

thread_local SessionCaller t_session_caller;

void
Connection::SyncCaller()
{
	const SessionCaller &want = t_session_caller;
	if (want.keep || caller_key_ == want.key)
		return;
	// Without the admin token's claims (no request, or a tenant token's request on a connection authorize_token did
	// not run on) the session names no API caller rather than a stale one.
	const char *values[1] = {want.admin_request ? want.admin_request->c_str() : nullptr};
	caller_key_ = want.key;
	try {
		Check(PQexecParams(conn_, "SELECT tenancy.set_request_caller($1::pg_catalog.jsonb)", 1, nullptr, values,
		                   nullptr, nullptr, 0));
	} catch (...) {
		caller_key_ = "\x01"; // not known: told again before the next statement
		throw;
	}
}

Result
Connection::Exec(const char *sql, const std::vector<Param> &params)
{
	SyncCaller();
	auto values = Values(params);
	// Parameter types are left to the server, so it infers them from the function signature.
	return Check(
	    PQexecParams(conn_, sql, static_cast<int>(values.size()), nullptr, values.data(), nullptr, nullptr, 0));
}

Result
Connection::ExecPrepared(const char *sql, const std::vector<Param> &params)
{
	SyncCaller();
	auto it = prepared_.find(sql);
	if (it == prepared_.end()) {
		std::string name = "tenancyd_" + std::to_string(prepared_.size());
		Check(PQprepare(conn_, name.c_str(), sql, 0, nullptr));
		it = prepared_.emplace(sql, std::move(name)).first;
	}
	auto values = Values(params);
	return Check(
	    PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(values.size()), values.data(), nullptr, nullptr, 0));
}

Result
Connection::Check(PGresult *res)
{
	ExecStatusType status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK)
		return Result(res);
	std::string sqlstate, message, detail;
	if (res) {
		const char *s = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		sqlstate = s ? s : "";
		const char *m = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
		message = m ? m : FirstLine(PQerrorMessage(conn_));
		const char *d = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);
		detail = d ? d : "";
		PQclear(res);
	} else {
		message = FirstLine(PQerrorMessage(conn_));
	}
	bool lost = PQstatus(conn_) == CONNECTION_BAD;
	throw DbError(sqlstate, message, detail, lost);
}

void
Connection::RollbackQuietly()
{
	if (PQstatus(conn_) != CONNECTION_OK)
		return;
	PGresult *res = PQexecParams(conn_, "ROLLBACK", 0, nullptr, nullptr, nullptr, nullptr, 0);
	PQclear(res);
}

Lease::~Lease()
{
	if (conn_)
		pool_->Release(conn_);
}

Pool::Pool(PoolOptions options) : options_(std::move(options))
{
	for (int i = 0; i < options_.size; i++)
		slots_.push_back(std::make_unique<Connection>());
}

Pool::~Pool()
{
	CloseAll();
}

void
Pool::Connect(Connection &c)
{
	if (c.conn_) {
		PQfinish(c.conn_);
		c.conn_ = nullptr;
	}
	std::string connect_timeout = std::to_string(options_.connect_timeout_s);
	// tcp_user_timeout and keepalives bound the time a request can hang on a server that vanished without a FIN.
	std::string user_timeout = std::to_string(options_.statement_timeout_ms + 5000);
	// Our defaults come before dbname: libpq lets the expanded conninfo override them.
	const char *keys[] = {"connect_timeout", "application_name", "keepalives", "keepalives_idle",
	                      "keepalives_interval", "keepalives_count", "tcp_user_timeout", "dbname", nullptr};
	const char *values[] = {connect_timeout.c_str(), "tenancyd", "1", "5", "2", "3", user_timeout.c_str(),
	                        options_.conninfo.c_str(), nullptr};
	PGconn *conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		std::string message = conn ? FirstLine(PQerrorMessage(conn)) : "out of memory";
		if (conn)
			PQfinish(conn);
		throw DbError("", "could not connect to the database: " + message, "", true);
	}
	c.conn_ = conn;
	c.prepared_.clear();   // prepared statements belonged to the old session
	c.caller_key_.clear(); // and so did the caller it was told about
	try {
		Result r = c.Exec("SELECT pg_catalog.set_config('statement_timeout', $1, false), "
		                  "pg_catalog.current_setting('is_superuser')",
		                  {std::to_string(options_.statement_timeout_ms)});
		if (r.get(0, 1) == "on")
			throw DbError("", "tenancyd refuses to connect as a superuser", "Use a role granted tenancy_admin.",
			              true);
	} catch (...) {
		PQfinish(c.conn_);
		c.conn_ = nullptr;
		throw;
	}
}

Lease
Pool::Acquire(const std::string &tenant)
{
	auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.acquire_timeout_ms);
	Connection *picked = nullptr;
	const bool capped = !tenant.empty() && options_.max_per_tenant > 0;
	{
		std::unique_lock lock(mutex_);
		while (!picked) {
			if (closed_)
				throw DbError("", "the connection pool is closed", "", true);
			if (capped) {
				auto it = held_.find(tenant);
				if (it != held_.end() && it->second >= options_.max_per_tenant) {
					if (available_.wait_until(lock, deadline) == std::cv_status::timeout)
						throw DbError("53400",
						              "the tenant's requests hold their whole share of the database connections",
						              "At most " + std::to_string(options_.max_per_tenant) +
						                  " connections serve one tenant at a time; retry when its running requests "
						                  "have finished.",
						              false);
					continue;
				}
			}
			// Prefer a connected slot so an idle broken one is not tried while a good one waits.
			for (auto &s : slots_)
				if (!s->in_use_ && s->conn_ && (!picked || !picked->conn_))
					picked = s.get();
			if (!picked)
				for (auto &s : slots_)
					if (!s->in_use_) {
						picked = s.get();
						break;
					}
			if (!picked && available_.wait_until(lock, deadline) == std::cv_status::timeout)
				throw DbError("57014", "no database connection became free in time", "", false);
		}
		picked->in_use_ = true;
		picked->holder_ = capped ? tenant : std::string();
		if (capped)
			held_[tenant]++;
		if ((!picked->conn_ || PQstatus(picked->conn_) != CONNECTION_OK) &&
		    std::chrono::steady_clock::now() - connect_failed_at_ < kConnectBackoff) {
			picked->in_use_ = false;
			if (!picked->holder_.empty() && --held_[picked->holder_] <= 0)
				held_.erase(picked->holder_);
			picked->holder_.clear();
			available_.notify_all();
			throw DbError("", "database unavailable: " + connect_error_, "", true);
		}
	}
	Lease lease(this, picked);
	if (!picked->conn_ || PQstatus(picked->conn_) != CONNECTION_OK) {
		try {
			Connect(*picked);
		} catch (const DbError &e) {
			std::lock_guard lock(mutex_);
			connect_failed_at_ = std::chrono::steady_clock::now();
			connect_error_ = e.what();
			throw;
		}
	}
	return lease;
}

void
Pool::Release(Connection *conn)
{
	if (conn->conn_) {
		PGTransactionStatusType ts = PQtransactionStatus(conn->conn_);
		if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR)
			conn->RollbackQuietly();
		// Anything but an idle, healthy connection is closed: the next lease reconnects.
		if (PQstatus(conn->conn_) != CONNECTION_OK || PQtransactionStatus(conn->conn_) != PQTRANS_IDLE) {
			PQfinish(conn->conn_);
			conn->conn_ = nullptr;
		}
	}
	std::lock_guard lock(mutex_);
	conn->in_use_ = false;
	conn->last_used_ = std::chrono::steady_clock::now();
	if (!conn->holder_.empty() && --held_[conn->holder_] <= 0)
		held_.erase(conn->holder_);
	conn->holder_.clear();
	// Every waiter: one at its tenant's share would take a single wake-up and leave a waiter that could run asleep.
	available_.notify_all();
}

void
Pool::CheckIdle(std::chrono::milliseconds idle)
{
	auto now = std::chrono::steady_clock::now();
	std::vector<Connection *> to_check;
	{
		std::lock_guard lock(mutex_);
		for (auto &s : slots_)
			if (!s->in_use_ && s->conn_ && now - s->last_used_ >= idle) {
				s->in_use_ = true;
				to_check.push_back(s.get());
			}
	}
	for (Connection *c : to_check) {
		try {
			c->Exec("SELECT 1");
		} catch (const DbError &e) {
			Log(LogLevel::kWarn, "closing a broken database connection", {{"pool", options_.name}, {"error", e.what()}});
			PQfinish(c->conn_);
			c->conn_ = nullptr;
		}
		Release(c);
	}
}

bool
Pool::Ping()
{
	try {
		Lease lease = Acquire();
		lease->Exec("SELECT 1");
		return true;
	} catch (const DbError &) {
		return false;
	}
}

PoolHealth
Pool::Probe()
{
	bool any_free = false;
	{
		std::lock_guard lock(mutex_);
		for (auto &s : slots_)
			any_free = any_free || !s->in_use_;
	}
	if (any_free)
		return Ping() ? PoolHealth::kUp : PoolHealth::kDown;
	std::lock_guard lock(probe_mutex_);
	auto now = std::chrono::steady_clock::now();
	if (now - probed_at_ < std::chrono::seconds(1))
		return probed_;
	Connection probe;
	try {
		Connect(probe);
		probe.Exec("SELECT 1");
		probed_ = PoolHealth::kBusy;
	} catch (const DbError &) {
		probed_ = PoolHealth::kDown;
	}
	if (probe.conn_)
		PQfinish(probe.conn_);
	probe.conn_ = nullptr;
	probed_at_ = std::chrono::steady_clock::now();
	return probed_;
}

void
Pool::CloseAll()
{
	std::lock_guard lock(mutex_);
	closed_ = true;
	for (auto &s : slots_)
		if (s->conn_ && !s->in_use_) {
			PQfinish(s->conn_);
			s->conn_ = nullptr;
		}
	available_.notify_all();
}

} // namespace tenancyd
