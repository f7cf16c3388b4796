// daemon/region/router.hpp
// Regions mode (regions: in the YAML): one PoolSet per region's cluster, the tenant directory, and the lookups that
// send each request to its tenant's region. Disabled (enabled() false) in single-cluster mode.
#pragma once

#include "config.hpp"
#include "db/pool_set.hpp"
#include "region/directory.hpp"

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace tenancyd {

// What the creation callback of Router::CreateTenant made inside the region's transaction.
struct CreatedTenant {
	std::string tenant_id;
	std::string slug;
	std::string document; // the reply body, computed before COMMIT
};

class Router {
  public:
	explicit Router(const Config &config);
	bool
	enabled() const
	{
		return directory_ != nullptr;
	}
	// Configured regions, in residency order (us, eu, uk, canada, australia).
	const std::vector<std::string> &
	Regions() const
	{
		return order_;
	}
	bool
	Serves(const std::string &region) const
	{
		return pools_.count(region) > 0;
	}
	// The connection string regions: gives for a region (what a subscription of the live move connects with).
	const std::string &
	ConninfoOf(const std::string &region) const
	{
		return conninfo_.at(region);
	}
	// The pools of a configured region. Throws ApiError 503 for a region this instance has no cluster for.
	PoolSet &PoolsOf(const std::string &region);
	// A connection to the region's cluster (dedicated pool when the tenant's plan has one). Throws DbError/ApiError.
	Lease AcquireIn(const std::string &region, const std::string &tenant_id = "");
	// The region of an active tenant; nullopt when the directory does not know it (or it is still being created).
	// A pending entry is settled first (Settle), so a crash between the two creation steps heals at the next read.
	std::optional<std::string> RegionOf(const std::string &tenant_id);
	// Settles a pending entry from its region: activated when the creating transaction committed, removed when it
	// aborted (or never left a tenant), kept while it still runs. Returns the entry as it is afterwards.
	std::optional<DirectoryEntry> Settle(const DirectoryEntry &entry);
	// A tenant created in SQL rather than through tenancyd has no directory entry: found in exactly one region's
	// cluster (not as the target of a live move), it is recorded there, active, at its first request.
	std::optional<DirectoryEntry> Register(const std::string &tenant_id);
	// Creates a tenant in region: BEGIN on the region's cluster, create(conn), reserve the id and slug in the
	// directory (pending, with the region transaction's xid), COMMIT, activate. Any failure before COMMIT leaves
	// nothing; a failure after it leaves a pending entry that Settle activates. A slug taken in any region is 409.
	CreatedTenant CreateTenant(const std::string &region, const std::function<CreatedTenant(Connection &)> &create);
	Directory &
	directory()
	{
		return *directory_;
	}
	// Reachability of the directory and of each region's cluster.
	bool
	PingDirectory()
	{
		return directory_->Ping();
	}
	std::map<std::string, bool> PingRegions();
	// At start: each reachable cluster's tenancy.region must be its key in regions: (or empty, with a warning),
	// and a reachable directory database must have tenancy.tenant_directory; returns the problems found.
	std::vector<std::string> VerifyClusters();
	void CheckIdle(std::chrono::milliseconds idle);
	void CloseAll();

  private:
	std::map<std::string, std::unique_ptr<PoolSet>> pools_;
	std::map<std::string, std::string> conninfo_;
	std::vector<std::string> order_;
	std::unique_ptr<Directory> directory_;
};

} // namespace tenancyd
