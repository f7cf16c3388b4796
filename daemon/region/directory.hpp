// daemon/region/directory.hpp
// The tenant directory (tenancy.tenant_directory in the database directory.conninfo names): id, slug -> region.
#pragma once

#include "db/pool.hpp"

#include <optional>
#include <string>

namespace tenancyd {

struct DirectoryEntry {
	std::string tenant_id;
	std::string slug;
	std::string region;
	bool pending = false;   // being created: not known to have committed in its region yet
	std::string region_xid; // pending entries: the creating transaction in the region's cluster (xid8 text)
};

// Reads and writes the directory; every call is one autocommitted statement on the directory's own pool, so any
// tenancyd instance sees another's change at its next lookup (there is no per-instance cache).
class Directory {
  public:
	explicit Directory(PoolOptions options) : pool_(std::move(options)) {}
	// The entry of a tenant (pending or active), or nullopt. Throws DbError.
	std::optional<DirectoryEntry> Find(const std::string &tenant_id);
	std::optional<DirectoryEntry> FindBySlug(const std::string &slug);
	// Records a tenant that the region's transaction region_xid is creating. Throws DbError 23505 when the slug
	// (or id) is taken.
	void Reserve(const std::string &tenant_id, const std::string &slug, const std::string &region,
	             const std::string &region_xid);
	// Records an existing tenant, active (one created outside tenancyd). False when the id already has an entry;
	// throws DbError 23505 when the slug is another tenant's.
	bool Register(const DirectoryEntry &entry);
	// pending -> active; no-op for an active entry.
	void Activate(const std::string &tenant_id);
	// Removes a pending entry whose creation did not commit; active entries are never removed here.
	void ForgetPending(const std::string &tenant_id);
	// The move's switch: points an active tenant at region `to` if it is at `from` now, in one statement (a
	// compare-and-set, so two movers cannot both win). False when the entry is not active at `from`.
	bool SwitchRegion(const std::string &tenant_id, const std::string &from, const std::string &to);
	// Throws DbError when the directory table is missing or unreadable (checked once at start).
	void Check();
	bool
	Ping()
	{
		return pool_.Ping();
	}
	void
	CheckIdle(std::chrono::milliseconds idle)
	{
		pool_.CheckIdle(idle);
	}
	void
	CloseAll()
	{
		pool_.CloseAll();
	}

  private:
	// sql must outlive the pool (ExecPrepared keys its cache by the text's address).
	std::optional<DirectoryEntry> FindWhere(const std::string &sql, const std::string &key);
	Pool pool_;
};

} // namespace tenancyd
