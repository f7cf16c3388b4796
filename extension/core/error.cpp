// extension/core/error.cpp
// SQLSTATE text of each core error kind.
#include "tenancy/core/error.hpp"

namespace tenancy::core {

const char *
SqlStateText(ErrorKind kind) noexcept
{
	switch (kind) {
	case ErrorKind::kTenantNotFound:
		return "TN001";
	case ErrorKind::kTenantNotActive:
		return "TN002";
	case ErrorKind::kQuotaExceeded:
		return "TN003";
	case ErrorKind::kNoTenantContext:
		return "TN004";
	case ErrorKind::kInvalidInput:
		return "TN005";
	case ErrorKind::kDecryptionFailed:
		return "TN006";
	case ErrorKind::kHierarchy:
		return "TN007";
	case ErrorKind::kPermissionDenied:
		return "42501";
	case ErrorKind::kNotSetUp:
		return "55000";
	case ErrorKind::kCryptoLibrary:
		return "39000";
	case ErrorKind::kInternal:
		return "XX000";
	}
	return "XX000";
}

} // namespace tenancy::core
