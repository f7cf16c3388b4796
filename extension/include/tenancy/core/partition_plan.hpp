// extension/include/tenancy/core/partition_plan.hpp
// Pure hash-partition maths: partition and leaf names, bound parsing, and the split/merge plans of repartition.
#pragma once

#include "tenancy/core/cpp_only.hpp"

#include <string>
#include <string_view>
#include <vector>

namespace tenancy::core {

// Names are <table>_p<NNN>: three digits allow remainders 0..999, so at most 1000 partitions.
constexpr int kMinPartitions = 2;
constexpr int kMaxPartitions = 1000;
// PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes; a truncated name could collide with another table.
constexpr std::size_t kMaxIdentifierBytes = 63;

// One hash partition: FOR VALUES WITH (MODULUS modulus, REMAINDER remainder).
struct HashBound {
	int modulus = 0;
	int remainder = 0;
	bool operator==(const HashBound &) const = default;
};

// A partition count the caller asked for: 2..1000, else Error(kInvalidInput).
void ValidatePartitionCount(int partitions);

// "<table>_p<NNN>" for a remainder; throws kInvalidInput when the name would exceed 63 bytes.
std::string PartitionName(std::string_view table, int remainder);

// Leaves of an isolated partition: "<partition>_t<last 12 hex digits of the tenant>" and "<partition>_default".
std::string TenantLeafName(std::string_view partition, std::string_view tenant_uuid);
std::string DefaultLeafName(std::string_view partition);

// Parses pg_get_expr(relpartbound) of a hash partition, "FOR VALUES WITH (modulus 16, remainder 3)";
// throws kInvalidInput for anything else (list, range, default bounds).
HashBound ParseHashBound(std::string_view bound_expression);

// The modulus shared by every partition when they form the complete set (n, 0) .. (n, n - 1); otherwise throws
// kInvalidInput (mixed moduli or a missing remainder: the table was not laid out by tenancy).
int UniformModulus(const std::vector<HashBound> &current);

// One unit of repartition work: the partitions in from are replaced by the partitions in to, which hold exactly the
// same hash values. A split has one from and several to; a merge the reverse.
struct ReshapeStep {
	std::vector<HashBound> from;
	std::vector<HashBound> to;
};

// The steps that take a uniform layout to target partitions, one old partition (split) or one new partition
// (merge) at a time. PostgreSQL needs every modulus to divide the next larger one, so the target must be a
// multiple or a divisor of the current count; anything else throws kInvalidInput with the counts that would work.
// An empty plan means the table already has target partitions.
std::vector<ReshapeStep> PlanRepartition(const std::vector<HashBound> &current, int target);

// True when value hashes into bound at a finer level: a row of (m, r) lives in (M, R) iff M % m == 0, R % m == r.
bool Contains(const HashBound &outer, const HashBound &inner);

} // namespace tenancy::core
