// extension/include/tenancy/pg/export_document.hpp
// The tenant export document (format 2) and its manifest, built in one pass over each table. PG regime.
#pragma once

extern "C" {
#include "postgres.h"
#include "utils/jsonb.h"
}

namespace tenancy::pg {

// The export document of tenant (uuid datum), in the caller's memory context: {"format", "format_version": 2,
// "manifest": {..., "tables": [...]}, "data": {"<table>": ["<COPY text line>", ...]}}; without data, the
// manifest alone (checksums of tables that tenancy.export_table streamed in this transaction are reused). Reads
// every table in the active snapshot; run it as the extension owner after the caller's checks.
Jsonb *BuildExportDocument(Datum tenant, bool with_data);

} // namespace tenancy::pg
