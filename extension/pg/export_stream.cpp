// extension/pg/export_stream.cpp
// Reads one table's rows of a tenant export as COPY text and hashes them (OpenSSL EVP SHA-256), in one pass.
#include "tenancy/pg/boundary.hpp" /* core headers first */
#include "tenancy/pg/export_sha256.hpp"
#include "tenancy/pg/export_stream.hpp"

#include <array>

extern "C" {
#include "postgres.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/uuid.h"
}

namespace tenancy::pg {

namespace {

constexpr int kBatchRows = 1000;

// COPY text format's one-letter escapes (CopyAttributeOutText / CopyReadAttributesText): the byte and its letter.
constexpr char kCopyEscapes[][2] = {{'\b', 'b'}, {'\f', 'f'}, {'\n', 'n'}, {'\r', 'r'},
                                    {'\t', 't'}, {'\v', 'v'}, {'\\', '\\'}};

// Byte-indexed tables of the escapes both ways (0: none), for the per-byte loops.
constexpr auto kCopyEscapeLetter = [] {
	std::array<char, 256> table{};
	for (const auto &escape : kCopyEscapes)
		table[static_cast<unsigned char>(escape[0])] = escape[1];
	return table;
}();
constexpr auto kCopyEscapedByte = [] {
	std::array<char, 256> table{};
	for (const auto &escape : kCopyEscapes)
		table[static_cast<unsigned char>(escape[1])] = escape[0];
	return table;
}();

// One streamed table remembered for export_manifest, in the transaction's memory.
struct StreamedTable {
	pg_uuid_t tenant;
	Oid table;
	ExportTableSum sum;
	StreamedTable *next;
};

StreamedTable *streamed = NULL;
LocalTransactionId streamed_lxid = InvalidLocalTransactionId;

} // namespace

char
CopyEscapedByte(char letter)
{
	return kCopyEscapedByte[static_cast<unsigned char>(letter)];
}

void
AppendCopyValue(StringInfo buf, const char *value)
{
	if (value == NULL) {
		appendBinaryStringInfo(buf, "\\N", 2);
		return;
	}
	// As COPY's text format (CopyAttributeOutText with the tab delimiter): backslash, and the control characters
	// with a letter escape, are escaped; every other byte is copied (server encodings never embed ASCII bytes in a
	// multibyte character, so a byte-wise scan is safe). Runs without escapes are copied in one piece.
	const char *start = value;
	const char *p = value;
	for (; *p; p++) {
		char letter = kCopyEscapeLetter[static_cast<unsigned char>(*p)];
		if (letter == 0)
			continue;
		if (p > start)
			appendBinaryStringInfo(buf, start, p - start);
		appendStringInfoChar(buf, '\\');
		appendStringInfoChar(buf, letter);
		start = p + 1;
	}
	if (p > start)
		appendBinaryStringInfo(buf, start, p - start);
}

int
UseCanonicalTextSettings(void)
{
	int level = NewGUCNestLevel();
	static const char *const kSettings[][2] = {{"DateStyle", "ISO, YMD"}, {"IntervalStyle", "postgres"},
	                                           {"TimeZone", "UTC"},       {"extra_float_digits", "1"},
	                                           {"bytea_output", "hex"},   {"lc_monetary", "C"}};
	for (const auto &setting : kSettings)
		(void)set_config_option(setting[0], setting[1], PGC_USERSET, PGC_S_SESSION, GUC_ACTION_SAVE, true, ERROR,
		                        false);
	return level;
}

void
StreamExportTable(const char *select_sql, Datum tenant, ExportRowFn fn, void *arg, ExportTableSum *sum)
{
	Sha256 *digest = NewSha256(CurrentMemoryContext); // freed with the caller's SPI memory
	Oid types[1] = {UUIDOID};
	Datum values[1] = {tenant};
	Portal portal = SPI_cursor_open_with_args(NULL, select_sql, 1, types, values, NULL, true, 0);
	MemoryContext batch_context =
	    AllocSetContextCreate(CurrentMemoryContext, "tenancy export batch", ALLOCSET_DEFAULT_SIZES);
	StringInfoData line;
	initStringInfo(&line);
	FmgrInfo *out = NULL;
	char **texts = NULL;
	int natts = 0;
	sum->rows = 0;
	for (;;) {
		SPI_cursor_fetch(portal, true, kBatchRows);
		if (SPI_processed == 0)
			break;
		TupleDesc desc = SPI_tuptable->tupdesc;
		if (out == NULL) {
			natts = desc->natts;
			out = static_cast<FmgrInfo *>(palloc(sizeof(FmgrInfo) * natts));
			texts = static_cast<char **>(palloc(sizeof(char *) * (natts > 0 ? natts : 1)));
			for (int i = 0; i < natts; i++) {
				Oid func;
				bool varlena;
				getTypeOutputInfo(TupleDescAttr(desc, i)->atttypid, &func, &varlena);
				fmgr_info(func, &out[i]);
			}
		}
		MemoryContext previous = MemoryContextSwitchTo(batch_context);
		for (uint64 r = 0; r < SPI_processed; r++) {
			HeapTuple tuple = SPI_tuptable->vals[r];
			resetStringInfo(&line);
			for (int i = 0; i < natts; i++) {
				bool isnull;
				Datum value = heap_getattr(tuple, i + 1, desc, &isnull);
				texts[i] = isnull ? NULL : OutputFunctionCall(&out[i], value);
				if (i > 0)
					appendStringInfoChar(&line, '\t');
				AppendCopyValue(&line, texts[i]);
			}
			if (fn != NULL)
				fn(arg, natts, texts, line.data, line.len);
			appendStringInfoChar(&line, '\n');
			UpdateSha256(digest, line.data, line.len);
		}
		sum->rows += SPI_processed;
		MemoryContextSwitchTo(previous);
		MemoryContextReset(batch_context);
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	MemoryContextDelete(batch_context);
	FinishSha256(digest, sum->sha256);
}

void
RememberStreamedTable(Datum tenant, Oid table, const ExportTableSum *sum)
{
	if (streamed_lxid != MyProc->lxid) {
		streamed = NULL; // the list of an earlier transaction went with its memory
		streamed_lxid = MyProc->lxid;
	}
	StreamedTable *entry =
	    static_cast<StreamedTable *>(MemoryContextAlloc(TopTransactionContext, sizeof(StreamedTable)));
	entry->tenant = *DatumGetUUIDP(tenant);
	entry->table = table;
	entry->sum = *sum;
	entry->next = streamed; // newest first: a table streamed twice is recalled as its last stream
	streamed = entry;
}

bool
RecallStreamedTable(Datum tenant, Oid table, ExportTableSum *sum)
{
	if (streamed_lxid != MyProc->lxid)
		return false;
	for (StreamedTable *entry = streamed; entry != NULL; entry = entry->next)
		if (entry->table == table && memcmp(&entry->tenant, DatumGetUUIDP(tenant), sizeof(pg_uuid_t)) == 0) {
			*sum = entry->sum;
			return true;
		}
	return false;
}

} // namespace tenancy::pg
