// extension/include/tenancy/pg/export_stream.hpp
// One table's rows of a tenant export as COPY text (format 2): each value's text, each row's line, their SHA-256.
#pragma once

extern "C" {
#include "postgres.h"
#include "lib/stringinfo.h"
}

namespace tenancy::pg {

// Called for every row with the text of each column (NULL for SQL null) and the row's COPY line (without its
// newline); the strings live until the next batch.
typedef void (*ExportRowFn)(void *arg, int ncolumns, char **values, const char *line, int line_length);

struct ExportTableSum {
	int64 rows;
	char sha256[65]; // lower-case hex
};

// Runs select_sql ($1 = the tenant uuid) through a cursor in the caller's SPI connection, in the active snapshot
// (read-only), renders every value with its type's output function under the canonical settings (see
// UseCanonicalTextSettings), and hashes each row's COPY text line: values escaped as COPY's text format does,
// tab-separated, newline-terminated (exactly the bytes COPY ... TO STDOUT sends). fn may be NULL.
void StreamExportTable(const char *select_sql, Datum tenant, ExportRowFn fn, void *arg, ExportTableSum *sum);

// Appends value in COPY text format (backslash escapes; NULL becomes \N).
void AppendCopyValue(StringInfo buf, const char *value);

// The byte that a backslash and letter stand for in COPY text format (\b \f \n \r \t \v \\), or 0 for any other letter.
char CopyEscapedByte(char letter);

// Sets, until AtEOXact_GUC(true, returned level), the settings that fix the text form of values: DateStyle ISO,
// IntervalStyle postgres, TimeZone UTC, extra_float_digits 1, bytea_output hex, lc_monetary C. Exports render and
// imports parse under them, whatever the session says.
int UseCanonicalTextSettings(void);

// The checksums of tables streamed by tenancy.export_table in this transaction, so export_manifest called after
// the COPYs describes exactly the bytes they sent without reading the tables again.
void RememberStreamedTable(Datum tenant, Oid table, const ExportTableSum *sum);
bool RecallStreamedTable(Datum tenant, Oid table, ExportTableSum *sum);

} // namespace tenancy::pg
