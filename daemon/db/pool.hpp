// daemon/db/pool.hpp
// A fixed-size libpq connection pool: RAII leases, PQexecParams only, statement timeout, health checks, reconnect.
#pragma once

#include <chrono>
#include <condition_variable>
#include <libpq-fe.h>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace tenancyd {

struct PoolOptions {
	std::string name = "shared"; // for logs
	std::string conninfo;
	int size = 8;
	int acquire_timeout_ms = 5000;
	int connect_timeout_s = 3;
	int statement_timeout_ms = 5000;
	// Connections one tenant may hold at once (0: the whole pool). A tenant at its share waits like everyone else
	// when the pool is full; when its wait times out the request is refused with 53400 (HTTP 429), so one tenant's
	// slow requests can never hold every connection (issue #16).
	int max_per_tenant = 0;
};

// What /readyz reports: the pool answers, every connection is busy but the database answers a fresh connection, or
// the database does not answer.
enum class PoolHealth { kUp, kBusy, kDown };

// A failed query or connection. sqlstate is empty when libpq gave none (the connection broke).
class DbError : public std::runtime_error {
public:
	DbError(std::string sqlstate, const std::string &message, std::string detail, bool connection_lost)
	    : std::runtime_error(message), sqlstate_(std::move(sqlstate)), detail_(std::move(detail)),
	      connection_lost_(connection_lost)
	{
	}
	const std::string &sqlstate() const { return sqlstate_; }
	const std::string &detail() const { return detail_; }
	bool connection_lost() const { return connection_lost_; }

private:
	std::string sqlstate_;
	std::string detail_;
	bool connection_lost_;
};

// A query result (text format). Owns the PGresult.
class Result {
public:
	explicit Result(PGresult *res) : res_(res, &PQclear) {}
	int rows() const { return PQntuples(res_.get()); }
	bool null(int row, int col) const { return PQgetisnull(res_.get(), row, col); }
	std::string get(int row, int col) const { return PQgetvalue(res_.get(), row, col); }
	std::optional<std::string> opt(int row, int col) const
	{
		return null(row, col) ? std::nullopt : std::optional<std::string>(get(row, col));
	}

private:
	std::unique_ptr<PGresult, void (*)(PGresult *)> res_;
};

using Param = std::optional<std::string>; // nullopt is SQL NULL

class Pool;

// Which API caller the database session's audit events name (tenancy.authorize_token's request argument, or
// tenancy.set_request_caller). A request thread sets t_session_caller once authenticated (auth/authorizer.cpp); a
// connection whose session was told about another caller tells it first, before the next statement: one extra
// statement on the admin token's requests only, since a tenant token's first statement (authorize_token) tells it
// in the same round trip. Threads without a request (health checks, moves) leave key empty: no API caller.
struct SessionCaller {
	std::string key;     // unique per request; empty: no API caller
	Param admin_request; // the request's claims ({"remote_addr", "request_id"}) when the admin token calls
	bool keep = false;   // a request that writes no audit event (a read): the session is left as it is
};
extern thread_local SessionCaller t_session_caller;

// One pooled connection, lent to one request at a time.
class Connection {
public:
	// The session is told about this caller key by the statement about to run (authorize_token's request).
	void CallerToldBy(const std::string &key) { caller_key_ = key; }
	// Runs one statement with out-of-line parameters (never interpolated). Throws DbError.
	Result Exec(const char *sql, const std::vector<Param> &params = {});
	// Like Exec for a statement run on every request: prepared once per session, so later calls skip parse and
	// plan. `sql` must be a string literal (the cache is keyed by its address).
	Result ExecPrepared(const char *sql, const std::vector<Param> &params);
	// BEGIN; body(); COMMIT, rolling back when body throws.
	template <typename Body>
	auto Transaction(Body &&body) -> decltype(body())
	{
		Exec("BEGIN");
		try {
			if constexpr (std::is_void_v<decltype(body())>) {
				body();
				Exec("COMMIT");
			} else {
				auto out = body();
				Exec("COMMIT");
				return out;
			}
		} catch (...) {
			RollbackQuietly();
			throw;
		}
	}

private:
	friend class Pool;
	void RollbackQuietly();
	// Tells the session about t_session_caller when it was told about another one (see SessionCaller).
	void SyncCaller();
	// Turns a PGresult into a Result, or throws DbError (and frees it) when the statement failed.
	Result Check(PGresult *res);
	PGconn *conn_ = nullptr;
	std::unordered_map<const char *, std::string> prepared_; // statement text -> prepared name in this session
	std::string caller_key_; // t_session_caller.key the session was last told about ("": none, as a new session)
	bool in_use_ = false;
	std::string holder_; // the tenant whose request holds it ("" for none)
	std::chrono::steady_clock::time_point last_used_{};
};

// Returns the connection to its pool when destroyed.
class Lease {
public:
	Lease(Pool *pool, Connection *conn) : pool_(pool), conn_(conn) {}
	Lease(Lease &&other) noexcept : pool_(other.pool_), conn_(other.conn_) { other.conn_ = nullptr; }
	Lease(const Lease &) = delete;
	Lease &operator=(const Lease &) = delete;
	~Lease();
	Connection *operator->() { return conn_; }
	Connection &operator*() { return *conn_; }

private:
	Pool *pool_;
	Connection *conn_;
};

class Pool {
public:
	explicit Pool(PoolOptions options);
	~Pool();
	// Waits up to acquire_timeout_ms for a free connection and (re)connects it when needed. Throws DbError. With a
	// tenant, at most options.max_per_tenant connections go to that tenant at once.
	Lease Acquire(const std::string &tenant = "");
	// Pings idle connections that were unused for at least `idle`, closing broken ones (reconnected lazily).
	void CheckIdle(std::chrono::milliseconds idle);
	// True when a connection answers SELECT 1 within the bounded acquire and connect time.
	bool Ping();
	// Ping that tells a busy pool from a database that does not answer: when no connection is free it opens one
	// short-lived connection of its own (at most once a second; the answer is cached meanwhile).
	PoolHealth Probe();
	void CloseAll();
	const PoolOptions &options() const { return options_; }

private:
	friend class Lease;
	void Release(Connection *conn);
	void Connect(Connection &conn);
	PoolOptions options_;
	std::mutex mutex_;
	std::condition_variable available_;
	std::vector<std::unique_ptr<Connection>> slots_;
	// After a failed connect, others fail fast for a short while instead of piling up on a dead server.
	std::chrono::steady_clock::time_point connect_failed_at_{};
	std::string connect_error_;
	bool closed_ = false;
	std::unordered_map<std::string, int> held_; // tenant -> connections it holds now
	std::mutex probe_mutex_;
	std::chrono::steady_clock::time_point probed_at_{};
	PoolHealth probed_ = PoolHealth::kUp;
};

} // namespace tenancyd
