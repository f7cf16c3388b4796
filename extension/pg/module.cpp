// extension/pg/module.cpp
// PG_MODULE_MAGIC, _PG_init, the tenancy.* GUC prefix reservation, and the internal validation helpers.
#include "tenancy/core/validation.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/module.hpp"

#include <string>

extern "C" {
#include "postgres.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void _PG_init(void);

/* SQL-callable functions */
PG_FUNCTION_INFO_V1(tenancy_validate_slug);
PG_FUNCTION_INFO_V1(tenancy_normalize_email);
}

namespace tenancy::pg {

namespace {

struct InitEntry {
	InitFunction fn;
	int order;
};

// Plain array: filled by static initializers, so it must not depend on any C++ object's construction order.
constexpr int kMaxInits = 32;
InitEntry init_entries[kMaxInits];
int init_count = 0;
bool loaded_at_startup = false;

} // namespace

bool
RegisterInit(InitFunction fn, int order) noexcept
{
	if (init_count >= kMaxInits)
		return false;
	init_entries[init_count++] = InitEntry{fn, order};
	return true;
}

bool
LoadedAtStartup() noexcept
{
	return loaded_at_startup;
}

} // namespace tenancy::pg

using namespace tenancy;

// Runs every feature's registered init in order. Feature inits are PG-regime code (DefineCustom*Variable and hooks).
void
_PG_init(void)
{
	pg::loaded_at_startup = process_shared_preload_libraries_in_progress;

	/* insertion sort by order: at most kMaxInits entries */
	for (int i = 1; i < pg::init_count; i++)
		for (int j = i; j > 0 && pg::init_entries[j - 1].order > pg::init_entries[j].order; j--) {
			pg::InitEntry tmp = pg::init_entries[j];
			pg::init_entries[j] = pg::init_entries[j - 1];
			pg::init_entries[j - 1] = tmp;
		}
	for (int i = 0; i < pg::init_count; i++)
		pg::init_entries[i].fn();

	MarkGUCPrefixReserved("tenancy");
}

// tenancy._validate_slug(text): raises TN005 when the slug breaks SPEC.md's rule.
extern "C" Datum
tenancy_validate_slug(PG_FUNCTION_ARGS)
{
	const char *slug = text_to_cstring(PG_GETARG_TEXT_PP(0));
	pg::CallCore([&] { core::ValidateSlug(slug); });
	PG_RETURN_VOID();
}

// tenancy._normalize_email(text) -> text: the lower-cased address, or TN005.
extern "C" Datum
tenancy_normalize_email(PG_FUNCTION_ARGS)
{
	const char *email = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char *normalized = pg::CallCore([&] {
		std::string out = core::NormalizeEmail(email);
		char *copy = static_cast<char *>(pg::PallocOrThrow(out.size() + 1));
		memcpy(copy, out.c_str(), out.size() + 1);
		return copy;
	});
	PG_RETURN_TEXT_P(cstring_to_text(normalized));
}
