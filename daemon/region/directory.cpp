// daemon/region/directory.cpp
// Plain statements on tenancy.tenant_directory; the creation protocol that uses them is in region/router.cpp.
#include "region/directory.hpp"

namespace tenancyd {

namespace {
constexpr const char *kColumns = "SELECT d.tenant_id, d.slug, d.region, d.state, d.region_xid "
                                 "  FROM tenancy.tenant_directory d ";
} // namespace

std::optional<DirectoryEntry>
Directory::FindWhere(const std::string &sql, const std::string &key)
{
	Lease lease = pool_.Acquire();
	Result r = lease->ExecPrepared(sql.c_str(), {key});
	if (r.rows() == 0)
		return std::nullopt;
	DirectoryEntry e;
	e.tenant_id = r.get(0, 0);
	e.slug = r.get(0, 1);
	e.region = r.get(0, 2);
	e.pending = r.get(0, 3) == "pending";
	e.region_xid = r.null(0, 4) ? "" : r.get(0, 4);
	return e;
}

std::optional<DirectoryEntry>
Directory::Find(const std::string &tenant_id)
{
	// Every regions-mode request routed by tenant runs this: one statement text, prepared once per connection.
	static const std::string kSql = kColumns + std::string("WHERE d.tenant_id OPERATOR(pg_catalog.=) $1::uuid");
	return FindWhere(kSql, tenant_id);
}

std::optional<DirectoryEntry>
Directory::FindBySlug(const std::string &slug)
{
	static const std::string kSql = kColumns + std::string("WHERE d.slug OPERATOR(pg_catalog.=) $1::text");
	return FindWhere(kSql, slug);
}

void
Directory::Reserve(const std::string &tenant_id, const std::string &slug, const std::string &region,
                   const std::string &region_xid)
{
	Lease lease = pool_.Acquire();
	lease->Exec("INSERT INTO tenancy.tenant_directory (tenant_id, slug, region, state, region_xid) "
	            "VALUES ($1::uuid, $2::text, $3::text::tenancy.data_residency, 'pending', $4::xid8)",
	            {tenant_id, slug, region, region_xid});
}

bool
Directory::Register(const DirectoryEntry &entry)
{
	Lease lease = pool_.Acquire();
	Result r = lease->Exec("INSERT INTO tenancy.tenant_directory (tenant_id, slug, region, state) "
	                       "VALUES ($1::uuid, $2::text, $3::text::tenancy.data_residency, 'active') "
	                       "ON CONFLICT (tenant_id) DO NOTHING RETURNING 1",
	                       {entry.tenant_id, entry.slug, entry.region});
	return r.rows() == 1;
}

void
Directory::Activate(const std::string &tenant_id)
{
	Lease lease = pool_.Acquire();
	lease->Exec(
	    "UPDATE tenancy.tenant_directory d SET state = 'active', region_xid = NULL, updated_at = pg_catalog.now() "
	    " WHERE d.tenant_id OPERATOR(pg_catalog.=) $1::uuid AND d.state OPERATOR(pg_catalog.=) 'pending'",
	    {tenant_id});
}

void
Directory::ForgetPending(const std::string &tenant_id)
{
	Lease lease = pool_.Acquire();
	lease->Exec("DELETE FROM tenancy.tenant_directory d "
	            " WHERE d.tenant_id OPERATOR(pg_catalog.=) $1::uuid AND d.state OPERATOR(pg_catalog.=) 'pending'",
	            {tenant_id});
}

void
Directory::Check()
{
	Lease lease = pool_.Acquire();
	lease->Exec("SELECT 1 FROM tenancy.tenant_directory LIMIT 0");
}

bool
Directory::SwitchRegion(const std::string &tenant_id, const std::string &from, const std::string &to)
{
	Lease lease = pool_.Acquire();
	Result r =
	    lease->Exec("UPDATE tenancy.tenant_directory d "
	                "   SET region = $3::text::tenancy.data_residency, updated_at = pg_catalog.now() "
	                " WHERE d.tenant_id OPERATOR(pg_catalog.=) $1::uuid AND d.state OPERATOR(pg_catalog.=) 'active' "
	                "   AND d.region OPERATOR(pg_catalog.=) $2::text::tenancy.data_residency "
	                "RETURNING d.tenant_id",
	                {tenant_id, from, to});
	return r.rows() == 1;
}

} // namespace tenancyd
