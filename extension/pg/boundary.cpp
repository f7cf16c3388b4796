// extension/pg/boundary.cpp
// Implementation of the C/C++ doorway: SQLSTATE mapping, the single ereport site and the non-throwing palloc.
#include "tenancy/pg/boundary.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "utils/elog.h"
#include "utils/memutils.h"
}

namespace tenancy::pg {

int
SqlStateFor(core::ErrorKind kind) noexcept
{
	switch (kind) {
	case core::ErrorKind::kTenantNotFound:
		return TENANCY_ERRCODE_TENANT_NOT_FOUND;
	case core::ErrorKind::kTenantNotActive:
		return TENANCY_ERRCODE_TENANT_NOT_ACTIVE;
	case core::ErrorKind::kQuotaExceeded:
		return TENANCY_ERRCODE_QUOTA_EXCEEDED;
	case core::ErrorKind::kNoTenantContext:
		return TENANCY_ERRCODE_NO_TENANT_CONTEXT;
	case core::ErrorKind::kInvalidInput:
		return TENANCY_ERRCODE_INVALID_INPUT;
	case core::ErrorKind::kDecryptionFailed:
		return TENANCY_ERRCODE_DECRYPTION_FAILED;
	case core::ErrorKind::kHierarchy:
		return TENANCY_ERRCODE_HIERARCHY;
	case core::ErrorKind::kPermissionDenied:
		return ERRCODE_INSUFFICIENT_PRIVILEGE;
	case core::ErrorKind::kNotSetUp:
		return ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE;
	case core::ErrorKind::kCryptoLibrary:
		return ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION;
	case core::ErrorKind::kInternal:
		return ERRCODE_INTERNAL_ERROR;
	}
	return ERRCODE_INTERNAL_ERROR;
}

// strlcpy only: this runs inside catch handlers, where no PostgreSQL call may longjmp.
void
FillFailure(Failure &f, int sqlstate, const char *message, const char *detail, const char *hint) noexcept
{
	f.sqlstate = sqlstate;
	strlcpy(f.message, message ? message : "", sizeof(f.message));
	strlcpy(f.detail, detail ? detail : "", sizeof(f.detail));
	strlcpy(f.hint, hint ? hint : "", sizeof(f.hint));
}

void
RaiseFailure(const Failure &f)
{
	ereport(ERROR, (errcode(f.sqlstate), errmsg_internal("%s", f.message),
	                f.detail[0] ? errdetail_internal("%s", f.detail) : 0, f.hint[0] ? errhint("%s", f.hint) : 0,
	                f.hide_statement ? errhidestmt(true) : 0));
	pg_unreachable();
}

void *
PallocOrThrow(std::size_t size)
{
	if (size > MaxAllocSize)
		throw std::bad_alloc();
	void *p = palloc_extended(size, MCXT_ALLOC_NO_OOM);
	if (p == nullptr)
		throw std::bad_alloc();
	return p;
}

} // namespace tenancy::pg
