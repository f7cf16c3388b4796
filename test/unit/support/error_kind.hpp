// test/unit/support/error_kind.hpp
// The ErrorKind a call throws; a call that throws nothing fails the test (shared by the core unit tests).
#pragma once

#include "tenancy/core/error.hpp"

#include <gtest/gtest.h>

#include <functional>

namespace tenancy::test {

inline core::ErrorKind
KindOf(const std::function<void()> &fn)
{
	try {
		fn();
	} catch (const core::Error &e) {
		return e.kind();
	}
	ADD_FAILURE() << "expected a tenancy::core::Error, nothing was thrown";
	return core::ErrorKind::kInternal;
}

} // namespace tenancy::test
