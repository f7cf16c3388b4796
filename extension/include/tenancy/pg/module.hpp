// extension/include/tenancy/pg/module.hpp
// Module start-up: each feature file registers its own _PG_init work, so features never edit a shared init list.
#pragma once

namespace tenancy::pg {

using InitFunction = void (*)();

// Called from a static initializer (at dlopen, before _PG_init): only stores the pointer, never calls PostgreSQL.
bool RegisterInit(InitFunction fn, int order) noexcept;

// True while _PG_init runs from shared_preload_libraries (shared memory can only be requested then).
bool LoadedAtStartup() noexcept;

} // namespace tenancy::pg

// In a feature's .cpp file: TENANCY_REGISTER_INIT(InitQuotaGucs, 20); lower orders run first.
#define TENANCY_REGISTER_INIT(fn, order)                                                                              \
	static const bool tenancy_init_registered_##fn = ::tenancy::pg::RegisterInit(&(fn), (order))
