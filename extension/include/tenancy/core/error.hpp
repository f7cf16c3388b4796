// extension/include/tenancy/core/error.hpp
// The one exception type of the core regime; the PG boundary maps its kind to a SQLSTATE.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <stdexcept>
#include <string>

namespace tenancy::core {

// Each kind maps to exactly one SQLSTATE in SqlStateFor() (extension/pg/boundary.cpp) and to one HTTP status in
// the daemon; keep the three lists in step.
enum class ErrorKind {
	kTenantNotFound,     // TN001
	kTenantNotActive,    // TN002
	kQuotaExceeded,      // TN003
	kNoTenantContext,    // TN004
	kInvalidInput,       // TN005
	kDecryptionFailed,   // TN006
	kHierarchy,          // TN007
	kPermissionDenied,   // 42501
	kNotSetUp,           // 55000
	kCryptoLibrary,      // 39000
	kInternal,           // XX000
};

class Error : public std::runtime_error {
  public:
	Error(ErrorKind kind, std::string message, std::string detail = {}, std::string hint = {})
	    : std::runtime_error(std::move(message)), kind_(kind), detail_(std::move(detail)), hint_(std::move(hint))
	{
	}

	ErrorKind
	kind() const noexcept
	{
		return kind_;
	}
	const std::string &
	detail() const noexcept
	{
		return detail_;
	}
	const std::string &
	hint() const noexcept
	{
		return hint_;
	}

  private:
	ErrorKind kind_;
	std::string detail_;
	std::string hint_;
};

// The five-character SQLSTATE of a kind ("TN005"); shared by the extension and the daemon's tests.
const char *SqlStateText(ErrorKind kind) noexcept;

} // namespace tenancy::core
