// daemon/region/router.cpp
// The creation protocol keeps the directory and the clusters consistent without two-phase commit: the directory
// entry is written (pending) inside the region's open transaction and names it, so its outcome can always be read
// back from the region (pg_xact_status) by whichever instance meets the entry next.
#include "region/router.hpp"

#include "errors.hpp"
#include "log.hpp"

namespace tenancyd {

namespace {
PoolOptions
DirectoryOptions(const Config &c)
{
	PoolOptions o;
	o.name = "directory";
	o.conninfo = DirectoryConninfo(c);
	o.size = c.db_pool_size;
	o.acquire_timeout_ms = c.db_acquire_timeout_ms;
	o.connect_timeout_s = c.db_connect_timeout_s;
	o.statement_timeout_ms = c.db_statement_timeout_ms;
	return o;
}
} // namespace

Router::Router(const Config &config)
{
	if (config.regions.empty())
		return;
	for (const std::string &region : Residencies()) {
		auto it = config.regions.find(region);
		if (it == config.regions.end())
			continue;
		pools_[region] = std::make_unique<PoolSet>(config, it->second, region);
		conninfo_[region] = it->second;
		order_.push_back(region);
	}
	directory_ = std::make_unique<Directory>(DirectoryOptions(config));
}

PoolSet &
Router::PoolsOf(const std::string &region)
{
	auto it = pools_.find(region);
	if (it == pools_.end()) {
		ApiError e(503, "region_unavailable", "this tenancyd has no cluster for region \"" + region + "\"", "",
		           "Add the region's connection string under regions: in the configuration.");
		throw e;
	}
	return *it->second;
}

Lease
Router::AcquireIn(const std::string &region, const std::string &tenant_id)
{
	return PoolsOf(region).AcquireFor(tenant_id);
}

std::optional<std::string>
Router::RegionOf(const std::string &tenant_id)
{
	auto entry = directory_->Find(tenant_id);
	if (entry && entry->pending)
		entry = Settle(*entry);
	if (!entry)
		entry = Register(tenant_id);
	if (!entry || entry->pending)
		return std::nullopt;
	return entry->region;
}

std::optional<DirectoryEntry>
Router::Register(const std::string &tenant_id)
{
	// Where the tenant lives: not as the target of a live move (that copy is not the tenant's home until the switch).
	constexpr const char *kFindSql =
	    "SELECT t.slug FROM tenancy.tenants t WHERE t.id OPERATOR(pg_catalog.=) $1::uuid "
	    "   AND NOT EXISTS (SELECT 1 FROM tenancy.tenant_moves m WHERE m.tenant_id OPERATOR(pg_catalog.=) t.id "
	    "                      AND m.side OPERATOR(pg_catalog.=) 'target')";
	std::optional<DirectoryEntry> found;
	for (const std::string &region : order_) {
		std::optional<Result> r;
		try {
			Lease lease = AcquireIn(region);
			r.emplace(lease->Exec(kFindSql, {tenant_id}));
		} catch (const DbError &e) {
			if (e.connection_lost() || e.sqlstate().empty())
				continue; // a region that does not answer: its tenants answer 503 once registered, 404 until then
			throw;
		}
		if (r->rows() == 0)
			continue;
		if (found) {
			Log(LogLevel::kError, "tenant found in two regions' clusters; not registered in the directory",
			    {{"tenant_id", tenant_id}, {"regions", {found->region, region}}});
			return std::nullopt;
		}
		found = DirectoryEntry{tenant_id, r->get(0, 0), region};
	}
	if (!found)
		return std::nullopt;
	try {
		if (directory_->Register(*found))
			Log(LogLevel::kInfo, "tenant created outside tenancyd registered in the directory",
			    {{"tenant_id", tenant_id}, {"region", found->region}});
	} catch (const DbError &e) {
		if (e.sqlstate() != "23505")
			throw;
		Log(LogLevel::kError, "tenant created outside tenancyd not registered: its slug is another tenant's",
		    {{"tenant_id", tenant_id}, {"slug", found->slug}, {"region", found->region}});
		return std::nullopt;
	}
	return directory_->Find(tenant_id); // as it is now (another instance may have registered it first)
}

std::optional<DirectoryEntry>
Router::Settle(const DirectoryEntry &entry)
{
	if (!entry.pending)
		return entry;
	// Status first, existence in a later statement: a commit between the two is then seen by the second.
	std::string status;
	Lease lease = AcquireIn(entry.region);
	try {
		Result r = lease->Exec("SELECT pg_catalog.pg_xact_status($1::xid8)", {entry.region_xid});
		status = r.null(0, 0) ? "" : r.get(0, 0);
	} catch (const DbError &e) {
		if (e.connection_lost() || e.sqlstate().empty())
			throw;
		status = ""; // an xid this cluster cannot place: fall back to whether the tenant is there
	}
	if (status == "in progress")
		return entry;
	bool exists = status == "committed";
	if (status.empty()) {
		Result r = lease->Exec("SELECT EXISTS (SELECT 1 FROM tenancy.tenants t "
		                       "               WHERE t.id OPERATOR(pg_catalog.=) $1::uuid)",
		                       {entry.tenant_id});
		exists = r.get(0, 0) == "t";
	}
	if (exists) {
		directory_->Activate(entry.tenant_id);
		DirectoryEntry active = entry;
		active.pending = false;
		active.region_xid.clear();
		return active;
	}
	directory_->ForgetPending(entry.tenant_id);
	Log(LogLevel::kInfo, "directory: removed the entry of a tenant creation that did not commit",
	    {{"tenant_id", entry.tenant_id}, {"region", entry.region}});
	return std::nullopt;
}

CreatedTenant
Router::CreateTenant(const std::string &region, const std::function<CreatedTenant(Connection &)> &create)
{
	Lease lease = AcquireIn(region);
	lease->Exec("BEGIN");
	CreatedTenant created;
	DirectoryEntry entry;
	try {
		created = create(*lease);
		entry = {created.tenant_id, created.slug, region, true,
		         lease->Exec("SELECT pg_catalog.pg_current_xact_id()").get(0, 0)};
		for (int attempt = 0;; attempt++) {
			try {
				directory_->Reserve(entry.tenant_id, entry.slug, region, entry.region_xid);
				break;
			} catch (const DbError &e) {
				if (e.sqlstate() != "23505" || attempt > 0)
					throw;
				// The slug is in the directory: free it when it is left over from a creation that did not commit.
				auto other = directory_->FindBySlug(entry.slug);
				if (other && other->pending)
					other = Settle(*other);
				if (other)
					throw ApiError(409, "duplicate",
					               "tenant slug \"" + entry.slug + "\" is already taken" +
					                   (other->pending ? " (its tenant is being created)" : "") + " in region \"" +
					                   other->region + "\"",
					               "23505");
			}
		}
	} catch (...) {
		try {
			lease->Exec("ROLLBACK");
		} catch (const DbError &) {
			// the pool discards a connection left in a transaction
		}
		throw;
	}
	try {
		lease->Exec("COMMIT");
	} catch (const DbError &) {
		// The outcome is unknown when the connection broke; settle now if the region can tell, else later.
		try {
			Settle(entry);
		} catch (const std::exception &e) {
			Log(LogLevel::kWarn,
			    "directory: creation outcome unknown; the entry stays pending until a lookup settles it",
			    {{"tenant_id", entry.tenant_id}, {"region", region}, {"error", e.what()}});
		}
		throw;
	}
	try {
		directory_->Activate(entry.tenant_id);
	} catch (const DbError &e) {
		Log(LogLevel::kWarn, "directory: tenant created; its entry stays pending until a lookup settles it",
		    {{"tenant_id", entry.tenant_id}, {"region", region}, {"error", e.what()}});
	}
	return created;
}

std::map<std::string, bool>
Router::PingRegions()
{
	std::map<std::string, bool> up;
	for (const std::string &region : order_)
		up[region] = pools_[region]->Ping();
	return up;
}

std::vector<std::string>
Router::VerifyClusters()
{
	std::vector<std::string> problems;
	for (const std::string &region : order_) {
		try {
			Lease lease = AcquireIn(region);
			Result r = lease->Exec("SELECT pg_catalog.current_setting('tenancy.region', true)");
			std::string served = r.null(0, 0) ? "" : r.get(0, 0);
			if (served.empty())
				Log(LogLevel::kWarn,
				    "the cluster of a region has no tenancy.region set; it would accept tenants of "
				    "any residency",
				    {{"region", region}});
			else if (served != region)
				problems.push_back("regions." + region + ": the cluster serves region \"" + served +
				                   "\" (tenancy.region), not \"" + region + "\"");
		} catch (const DbError &e) {
			if (std::string(e.what()).find("superuser") != std::string::npos)
				problems.push_back("regions." + region + ": " + e.what());
			else
				Log(LogLevel::kWarn, "region not reachable yet", {{"region", region}, {"error", e.what()}});
		}
	}
	try {
		directory_->Check();
	} catch (const DbError &e) {
		if (e.connection_lost() || e.sqlstate().empty())
			Log(LogLevel::kWarn, "tenant directory not reachable yet", {{"error", e.what()}});
		else
			problems.push_back(std::string("directory: ") + e.what() +
			                   " (the directory database needs CREATE EXTENSION tenancy, version 0.2.0 or later)");
	}
	return problems;
}

void
Router::CheckIdle(std::chrono::milliseconds idle)
{
	for (auto &[region, pools] : pools_)
		pools->CheckIdle(idle);
	if (directory_)
		directory_->CheckIdle(idle);
}

void
Router::CloseAll()
{
	for (auto &[region, pools] : pools_)
		pools->CloseAll();
	if (directory_)
		directory_->CloseAll();
}

} // namespace tenancyd
