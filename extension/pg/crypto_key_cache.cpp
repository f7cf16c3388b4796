// extension/pg/crypto_key_cache.cpp
// Per-backend bounded LRU of unwrapped tenant data keys, flushed in every backend by relcache invalidation.
#include "tenancy/core/master_key.hpp"
#include "tenancy/pg/boundary.hpp"
#include "tenancy/pg/crypto_keys.hpp"
#include "tenancy/pg/module.hpp"

#include <cstring>

extern "C" {
#include "postgres.h"
#include "access/xact.h"
#include "lib/ilist.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/memutils.h"
}

namespace tenancy::pg::crypto {

namespace {

// One unwrapped key version. The cipher is a core object made with new inside CallCore; it is deleted only by
// RemoveEntry, whose destructor work (EVP_CIPHER_CTX_free, which wipes the key schedule) never calls PostgreSQL.
struct CipherKey {
	pg_uuid_t tenant;
	int32 version;
};
struct CipherEntry {
	CipherKey key; // hash key: must be first
	core::DataKeyCipher *cipher;
	dlist_node lru; // head = most recently used
};

// tenant -> its current version, so encrypt finds the right cipher without SPI.
struct CurrentEntry {
	pg_uuid_t tenant; // hash key
	int32 version;
};

MemoryContext cache_context = NULL;
HTAB *ciphers = NULL;
HTAB *currents = NULL;
dlist_head lru_list = DLIST_STATIC_INIT(lru_list);
long cipher_count = 0;

Oid keys_relid = InvalidOid;

// The entries of the last hits, so a run of calls for one tenant (the usual case in a query) skips the hash
// lookups. Cleared whenever any entry goes away.
CipherEntry *last_current = NULL; // the current version of its tenant
CipherEntry *last_version = NULL; // looked up by version (decrypt)

// Bumped by every flush. A load that spans an invalidation (another backend committed a rotation meanwhile) must
// not cache what it read: the same pattern the relcache uses for entries built during invalidation.
uint64 flush_generation = 0;

// Current-version entries read with a transaction snapshot (REPEATABLE READ, SERIALIZABLE) may be older than the
// invalidations already processed; they are dropped at transaction end.
bool currents_from_old_snapshot = false;
bool keys_written_in_xact = false;

void
EnsureCache(void)
{
	if (ciphers != NULL)
		return;
	if (cache_context == NULL)
		cache_context = AllocSetContextCreate(TopMemoryContext, "tenancy key cache", ALLOCSET_SMALL_SIZES);
	HASHCTL ctl;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(CipherKey);
	ctl.entrysize = sizeof(CipherEntry);
	ctl.hcxt = cache_context;
	ciphers = hash_create("tenancy data keys", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = sizeof(pg_uuid_t);
	ctl.entrysize = sizeof(CurrentEntry);
	ctl.hcxt = cache_context;
	currents = hash_create("tenancy current key versions", 64, &ctl, HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

// Only entries holding a cipher are counted and linked into the LRU list.
void
RemoveEntry(CipherEntry *entry)
{
	last_current = last_version = NULL;
	if (entry->cipher != NULL) {
		delete entry->cipher; // noexcept: frees and wipes the EVP contexts
		entry->cipher = NULL;
		dlist_delete(&entry->lru);
		cipher_count--;
	}
	hash_search(ciphers, &entry->key, HASH_REMOVE, NULL);
}

void
FlushCurrents(void)
{
	last_current = NULL;
	if (currents == NULL)
		return;
	HASH_SEQ_STATUS status;
	hash_seq_init(&status, currents);
	CurrentEntry *entry;
	while ((entry = static_cast<CurrentEntry *>(hash_seq_search(&status))) != NULL)
		hash_search(currents, &entry->tenant, HASH_REMOVE, NULL);
}

void
Touch(CipherEntry *entry)
{
	dlist_move_head(&lru_list, &entry->lru);
}

// Relcache callback: any change to tenancy.tenant_keys (its statement trigger sends the invalidation), a full reset
// (InvalidOid, e.g. after a sinval queue overflow) or a relid we have not resolved yet flushes everything.
void
KeysInvalidated(Datum, Oid relid)
{
	if (relid == InvalidOid || keys_relid == InvalidOid || relid == keys_relid)
		FlushKeyCache();
}

// On abort, keys this transaction created or changed may not exist: forget everything. Snapshot-bound current
// versions are forgotten at every transaction end.
void
KeyCacheXactCallback(XactEvent event, void *)
{
	switch (event) {
	case XACT_EVENT_ABORT:
	case XACT_EVENT_PARALLEL_ABORT:
		if (keys_written_in_xact)
			FlushKeyCache();
		keys_written_in_xact = false;
		if (currents_from_old_snapshot)
			FlushCurrents();
		currents_from_old_snapshot = false;
		break;
	case XACT_EVENT_COMMIT:
	case XACT_EVENT_PARALLEL_COMMIT:
	case XACT_EVENT_PREPARE:
		keys_written_in_xact = false;
		if (currents_from_old_snapshot)
			FlushCurrents();
		currents_from_old_snapshot = false;
		break;
	default:
		break;
	}
}

void
KeyCacheSubXactCallback(SubXactEvent event, SubTransactionId, SubTransactionId, void *)
{
	if (event == SUBXACT_EVENT_ABORT_SUB && keys_written_in_xact)
		FlushKeyCache();
}

void
InitKeyCache()
{
	CacheRegisterRelcacheCallback(KeysInvalidated, (Datum)0);
	RegisterXactCallback(KeyCacheXactCallback, NULL);
	RegisterSubXactCallback(KeyCacheSubXactCallback, NULL);
}

core::TenantId
ToTenantId(const pg_uuid_t *tenant)
{
	core::TenantId id;
	memcpy(id.data(), tenant->data, UUID_LEN);
	return id;
}

// Unwraps a stored key with the master key and keys a cipher for it; every C++ object lives inside CallCore.
core::DataKeyCipher *
UnwrapToCipher(const pg_uuid_t *tenant, const StoredKey *stored)
{
	const char *file = master_key_file ? master_key_file : "";
	const char *command = master_key_command ? master_key_command : "";
	return CallCore(
	    [&] {
		    core::SecretKey master = core::LoadMasterKey(file, command);
		    if (stored->fingerprint != NULL) {
			    auto fp = core::MasterKeyFingerprint(master);
			    if (VARSIZE_ANY_EXHDR(stored->fingerprint) != fp.size() ||
			        memcmp(VARDATA_ANY(stored->fingerprint), fp.data(), fp.size()) != 0)
				    throw core::Error(core::ErrorKind::kNotSetUp,
				                      "the configured master key is not the one that wrapped the tenant keys",
				                      "Its fingerprint differs from the one stored when the first key was created.",
				                      "Restore the right key in tenancy.master_key_file, or run "
				                      "tenancy.rewrap_keys() with the old key in tenancy.previous_master_key_file.");
		    }
		    core::TenantId id = ToTenantId(tenant);
		    core::SecretKey data_key =
		        core::UnwrapDataKey(master, reinterpret_cast<const uint8 *>(VARDATA_ANY(stored->wrapped)),
		                            VARSIZE_ANY_EXHDR(stored->wrapped), id, static_cast<uint32>(stored->version));
		    return new core::DataKeyCipher(data_key, id, static_cast<uint32>(stored->version));
	    },
	    true);
}

[[noreturn]] void
RaiseUnknownVersion(int32 version, bool destroyed)
{
	ereport(ERROR, (errcode(TENANCY_ERRCODE_DECRYPTION_FAILED), errmsg("could not decrypt value"),
	                destroyed ? errdetail("Key version %d of this tenant was destroyed.", version)
	                          : errdetail("This tenant has no key version %d.", version),
	                errhidestmt(true)));
	pg_unreachable();
}

// Loads (tenant, version) into the cache; version 0 means the newest. Returns the entry.
CipherEntry *
Load(const pg_uuid_t *tenant, int32 version, bool create)
{
	uint64 generation = flush_generation;
	keys_relid = TenantKeysRelid();
	StoredKey stored;
	FetchStoredKey(tenant, version, &stored);
	if (!stored.found && version == 0 && create) {
		CreateKeyVersion(tenant, KeyCreation::kFirst);
		generation = flush_generation;
		FetchStoredKey(tenant, 0, &stored, true);
	}
	if (!stored.found || stored.destroyed) {
		if (version != 0)
			RaiseUnknownVersion(version, stored.destroyed);
		if (stored.destroyed)
			ereport(ERROR,
			        (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			         errmsg("the data keys of this tenant were destroyed"),
			         errdetail("Its keys were crypto-shredded; values encrypted before can never be decrypted."),
			         errhint("tenancy.rotate_tenant_key() creates a new key for new values."), errhidestmt(true)));
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE), errmsg("this tenant has no data key"),
		                errhint("tenancy.rotate_tenant_key() creates one."), errhidestmt(true)));
	}

	EnsureCache();
	CipherKey key;
	memset(&key, 0, sizeof(key));
	key.tenant = *tenant;
	key.version = stored.version;
	bool found;
	// The entry is reserved before the cipher exists: if unwrapping fails, the empty entry just stays a miss.
	CipherEntry *entry = static_cast<CipherEntry *>(hash_search(ciphers, &key, HASH_ENTER, &found));
	if (!found)
		entry->cipher = NULL;
	if (entry->cipher == NULL) {
		entry->cipher = UnwrapToCipher(tenant, &stored);
		dlist_push_head(&lru_list, &entry->lru);
		cipher_count++;
	} else
		Touch(entry);

	// Remember the current version unless an invalidation arrived while we read it (it may be stale).
	if (version == 0 && generation == flush_generation) {
		CurrentEntry *current = static_cast<CurrentEntry *>(hash_search(currents, tenant, HASH_ENTER, &found));
		current->version = stored.version;
		if (IsolationUsesXactSnapshot())
			currents_from_old_snapshot = true;
	}

	// Evict least recently used keys beyond the bound (never the one just loaded, which is at the head).
	while (cipher_count > key_cache_size && !dlist_is_empty(&lru_list)) {
		// dlist_tail_element's type check is C-only (__builtin_types_compatible_p): compute the container here.
		CipherEntry *victim = reinterpret_cast<CipherEntry *>(reinterpret_cast<char *>(dlist_tail_node(&lru_list)) -
		                                                      offsetof(CipherEntry, lru));
		if (victim == entry)
			break;
		CurrentEntry *current =
		    static_cast<CurrentEntry *>(hash_search(currents, &victim->key.tenant, HASH_FIND, NULL));
		if (current != NULL && current->version == victim->key.version)
			hash_search(currents, &victim->key.tenant, HASH_REMOVE, NULL);
		RemoveEntry(victim);
	}
	return entry;
}

CipherEntry *
Lookup(const pg_uuid_t *tenant, int32 version)
{
	if (ciphers == NULL)
		return NULL;
	CipherKey key;
	memset(&key, 0, sizeof(key));
	key.tenant = *tenant;
	key.version = version;
	CipherEntry *entry = static_cast<CipherEntry *>(hash_search(ciphers, &key, HASH_FIND, NULL));
	if (entry == NULL || entry->cipher == NULL)
		return NULL;
	Touch(entry);
	return entry;
}

} // namespace

TENANCY_REGISTER_INIT(InitKeyCache, 61);

void
FlushKeyCache(void)
{
	flush_generation++;
	last_current = last_version = NULL;
	if (ciphers != NULL) {
		HASH_SEQ_STATUS status;
		hash_seq_init(&status, ciphers);
		CipherEntry *entry;
		while ((entry = static_cast<CipherEntry *>(hash_seq_search(&status))) != NULL) {
			delete entry->cipher; // removing the entry just returned is allowed during a scan
			entry->cipher = NULL;
			hash_search(ciphers, &entry->key, HASH_REMOVE, NULL);
		}
		dlist_init(&lru_list);
		cipher_count = 0;
	}
	FlushCurrents();
}

void
NoteKeysWritten(void)
{
	keys_written_in_xact = true;
}

core::DataKeyCipher *
CurrentKeyCipher(const pg_uuid_t *tenant)
{
	if (last_current != NULL && memcmp(last_current->key.tenant.data, tenant->data, UUID_LEN) == 0)
		return last_current->cipher;
	CipherEntry *entry = NULL;
	if (currents != NULL) {
		CurrentEntry *current = static_cast<CurrentEntry *>(hash_search(currents, tenant, HASH_FIND, NULL));
		if (current != NULL)
			entry = Lookup(tenant, current->version);
	}
	if (entry == NULL) {
		uint64 generation = flush_generation;
		entry = Load(tenant, 0, true);
		// Memoise only what the current-version map vouches for (Load skips it after a concurrent flush).
		if (generation != flush_generation || hash_search(currents, tenant, HASH_FIND, NULL) == NULL)
			return entry->cipher;
	}
	last_current = entry;
	return entry->cipher;
}

core::DataKeyCipher *
VersionKeyCipher(const pg_uuid_t *tenant, uint32 version)
{
	if (last_version != NULL && last_version->key.version == static_cast<int32>(version) &&
	    memcmp(last_version->key.tenant.data, tenant->data, UUID_LEN) == 0)
		return last_version->cipher;
	CipherEntry *entry = Lookup(tenant, static_cast<int32>(version));
	if (entry == NULL)
		entry = Load(tenant, static_cast<int32>(version), false);
	last_version = entry;
	return entry->cipher;
}

int32
CurrentKeyVersion(const pg_uuid_t *tenant)
{
	if (currents != NULL) {
		CurrentEntry *current = static_cast<CurrentEntry *>(hash_search(currents, tenant, HASH_FIND, NULL));
		if (current != NULL)
			return current->version;
	}
	StoredKey stored;
	FetchStoredKey(tenant, 0, &stored);
	return stored.found && !stored.destroyed ? stored.version : 0;
}

} // namespace tenancy::pg::crypto
