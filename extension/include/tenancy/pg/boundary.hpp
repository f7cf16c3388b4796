// extension/include/tenancy/pg/boundary.hpp
// The single doorway between PostgreSQL's longjmp errors and C++ exceptions (STYLE.md section 4).
#pragma once

#include "tenancy/core/error.hpp"

#include <cstddef>
#include <new>
#include <type_traits>

extern "C" {
#include "postgres.h"
}

namespace tenancy::pg {

// SQLSTATEs of the TN class (SPEC.md "Errors").
#define TENANCY_ERRCODE_TENANT_NOT_FOUND MAKE_SQLSTATE('T', 'N', '0', '0', '1')
#define TENANCY_ERRCODE_TENANT_NOT_ACTIVE MAKE_SQLSTATE('T', 'N', '0', '0', '2')
#define TENANCY_ERRCODE_QUOTA_EXCEEDED MAKE_SQLSTATE('T', 'N', '0', '0', '3')
#define TENANCY_ERRCODE_NO_TENANT_CONTEXT MAKE_SQLSTATE('T', 'N', '0', '0', '4')
#define TENANCY_ERRCODE_INVALID_INPUT MAKE_SQLSTATE('T', 'N', '0', '0', '5')
#define TENANCY_ERRCODE_DECRYPTION_FAILED MAKE_SQLSTATE('T', 'N', '0', '0', '6')
#define TENANCY_ERRCODE_HIERARCHY MAKE_SQLSTATE('T', 'N', '0', '0', '7')

// A failure copied out of a catch handler. Trivially destructible, so nothing is left to destroy when
// RaiseFailure longjmps away.
struct Failure {
	int sqlstate = 0;
	bool hide_statement = false;
	char message[512] = {};
	char detail[1024] = {};
	char hint[512] = {};
};

int SqlStateFor(core::ErrorKind kind) noexcept;
void FillFailure(Failure &f, int sqlstate, const char *message, const char *detail, const char *hint) noexcept;

// The only ereport(ERROR) of the boundary; call it after the catch handler has exited.
[[noreturn]] void RaiseFailure(const Failure &f);

// palloc that never longjmps: throws std::bad_alloc instead, so it is safe inside CallCore.
void *PallocOrThrow(std::size_t size);

// Runs body with every C++ object inside try; converts exceptions to ereport after the handler has exited.
// Set hide_statement for crypto entry points so plaintext arguments never reach the server log.
template <typename Body>
auto
CallCore(Body &&body, bool hide_statement = false) -> decltype(body())
{
	// The 2 KB Failure is only constructed when something failed: CallCore sits on per-row hot paths. It is never
	// destroyed, which is fine because RaiseFailure longjmps over it anyway.
	static_assert(std::is_trivially_destructible_v<Failure>);
	alignas(Failure) unsigned char storage[sizeof(Failure)];
	Failure *f;
	try {
		return body();
	} catch (const core::Error &e) {
		f = new (storage) Failure();
		FillFailure(*f, SqlStateFor(e.kind()), e.what(), e.detail().c_str(), e.hint().c_str());
	} catch (const std::bad_alloc &) {
		f = new (storage) Failure();
		FillFailure(*f, ERRCODE_OUT_OF_MEMORY, "out of memory", nullptr, nullptr);
	} catch (const std::exception &e) {
		f = new (storage) Failure();
		FillFailure(*f, ERRCODE_INTERNAL_ERROR, "unexpected C++ exception in tenancy", e.what(), nullptr);
	} catch (...) {
		f = new (storage) Failure();
		FillFailure(*f, ERRCODE_INTERNAL_ERROR, "unexpected C++ exception in tenancy", nullptr, nullptr);
	}
	f->hide_statement = f->hide_statement || hide_statement;
	RaiseFailure(*f);
}

} // namespace tenancy::pg
