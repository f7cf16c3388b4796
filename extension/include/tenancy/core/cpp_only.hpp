// extension/include/tenancy/core/cpp_only.hpp
// Guard included by every core header: core code must never see PostgreSQL headers.
#pragma once

// postgres.h defines PG_VERSION_NUM (via pg_config.h); if it is visible here, a core header was included after a
// PostgreSQL header, and core code could call something that longjmps past C++ destructors.
#ifdef PG_VERSION_NUM
#error "tenancy core headers must be included before any PostgreSQL header (see STYLE.md section 4)"
#endif
