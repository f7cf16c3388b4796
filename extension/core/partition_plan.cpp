// extension/core/partition_plan.cpp
// Hash-partition maths for tenancy's partitioning functions; no PostgreSQL here, so unit tests cover every plan.
#include "tenancy/core/partition_plan.hpp"

#include "tenancy/core/error.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <set>

namespace tenancy::core {

namespace {

// Throws when a generated name would be truncated by PostgreSQL, naming the table and its longest usable length.
void
CheckIdentifierLength(const std::string &name, std::string_view table, std::size_t suffix_bytes)
{
	if (table.size() + suffix_bytes <= kMaxIdentifierBytes)
		return;
	std::size_t room = kMaxIdentifierBytes > suffix_bytes ? kMaxIdentifierBytes - suffix_bytes : 0;
	throw Error(ErrorKind::kInvalidInput, "table name \"" + std::string(table) + "\" is too long for partition names",
	            "A generated name such as \"" + name + "\" would exceed 63 bytes with its leaf suffix.",
	            "Rename the table to at most " + std::to_string(room) + " bytes.");
}

// Skips spaces; returns false at the end of input.
bool
SkipSpaces(std::string_view text, std::size_t &pos)
{
	while (pos < text.size() && std::isspace(static_cast<unsigned char>(text[pos])))
		pos++;
	return pos < text.size();
}

// Matches a case-insensitive keyword at pos.
bool
Keyword(std::string_view text, std::size_t &pos, std::string_view word)
{
	SkipSpaces(text, pos);
	if (text.size() - pos < word.size())
		return false;
	for (std::size_t i = 0; i < word.size(); i++)
		if (std::tolower(static_cast<unsigned char>(text[pos + i])) != word[i])
			return false;
	pos += word.size();
	return true;
}

// Reads a non-negative decimal integer below 2^31.
bool
Number(std::string_view text, std::size_t &pos, int &out)
{
	SkipSpaces(text, pos);
	long long value = 0;
	std::size_t start = pos;
	while (pos < text.size() && std::isdigit(static_cast<unsigned char>(text[pos]))) {
		value = value * 10 + (text[pos] - '0');
		if (value > 2147483647LL)
			return false;
		pos++;
	}
	out = static_cast<int>(value);
	return pos > start;
}

std::string
CountList(const std::vector<int> &counts)
{
	std::string out;
	for (int c : counts) {
		if (!out.empty())
			out += ", ";
		out += std::to_string(c);
	}
	return out;
}

} // namespace

void
ValidatePartitionCount(int partitions)
{
	if (partitions < kMinPartitions || partitions > kMaxPartitions)
		throw Error(ErrorKind::kInvalidInput, "invalid partition count " + std::to_string(partitions),
		            "A table is split into 2 to 1000 hash partitions.",
		            "Use a power of two such as 16, 32 or 64, so the count can later be doubled or halved.");
}

std::string
PartitionName(std::string_view table, int remainder)
{
	char suffix[16];
	std::snprintf(suffix, sizeof(suffix), "_p%03d", remainder);
	std::string name = std::string(table) + suffix;
	// leaves add "_t" + 12 hex digits to the partition name: reserve that room now so isolate_tenant never fails late
	CheckIdentifierLength(name, table, 5 + 14);
	return name;
}

std::string
TenantLeafName(std::string_view partition, std::string_view tenant_uuid)
{
	// the last 12 hex digits: random in v4 and v7 uuids alike (v7 starts with a timestamp)
	std::string hex;
	for (char c : tenant_uuid)
		if (std::isxdigit(static_cast<unsigned char>(c)))
			hex += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
	if (hex.size() != 32)
		throw Error(ErrorKind::kInvalidInput, "invalid tenant id \"" + std::string(tenant_uuid) + "\"");
	std::string name = std::string(partition) + "_t" + hex.substr(20);
	CheckIdentifierLength(name, partition, 14);
	return name;
}

std::string
DefaultLeafName(std::string_view partition)
{
	std::string name = std::string(partition) + "_default";
	CheckIdentifierLength(name, partition, 8);
	return name;
}

HashBound
ParseHashBound(std::string_view text)
{
	HashBound b;
	std::size_t pos = 0;
	bool ok = Keyword(text, pos, "for") && Keyword(text, pos, "values") && Keyword(text, pos, "with") &&
	          Keyword(text, pos, "(") && Keyword(text, pos, "modulus") && Number(text, pos, b.modulus) &&
	          Keyword(text, pos, ",") && Keyword(text, pos, "remainder") && Number(text, pos, b.remainder) &&
	          Keyword(text, pos, ")") && !SkipSpaces(text, pos);
	if (!ok || b.modulus < 1 || b.remainder >= b.modulus)
		throw Error(ErrorKind::kInvalidInput, "partition bound \"" + std::string(text) + "\" is not a hash bound",
		            "Only tables partitioned by HASH on the tenant column can be managed.");
	return b;
}

int
UniformModulus(const std::vector<HashBound> &current)
{
	if (current.empty())
		throw Error(ErrorKind::kInvalidInput, "table has no partitions",
		            "A hash-partitioned table needs its partitions before it can be repartitioned.",
		            "Create them with tenancy.create_partitions().");
	int modulus = current.front().modulus;
	std::set<int> remainders;
	for (const HashBound &b : current) {
		if (b.modulus != modulus)
			throw Error(ErrorKind::kInvalidInput, "partitions have different moduli",
			            "Every partition must use the same modulus (" + std::to_string(modulus) + " and " +
			                std::to_string(b.modulus) + " found).",
			            "Finish the interrupted change by repartitioning to the larger modulus.");
		remainders.insert(b.remainder);
	}
	if (static_cast<int>(remainders.size()) != modulus || static_cast<int>(current.size()) != modulus)
		throw Error(ErrorKind::kInvalidInput, "partitions do not cover every hash value",
		            "Found " + std::to_string(current.size()) + " partitions for modulus " + std::to_string(modulus) +
		                ".",
		            "Create the missing partitions with FOR VALUES WITH (MODULUS m, REMAINDER r).");
	return modulus;
}

std::vector<ReshapeStep>
PlanRepartition(const std::vector<HashBound> &current, int target)
{
	ValidatePartitionCount(target);
	int n = UniformModulus(current);
	std::vector<ReshapeStep> steps;
	if (target == n)
		return steps;
	if (target % n == 0) {
		// split: (n, r) -> (target, r + k n) for k = 0 .. target/n - 1
		for (int r = 0; r < n; r++) {
			ReshapeStep step;
			step.from.push_back(HashBound{n, r});
			for (int k = 0; k < target / n; k++)
				step.to.push_back(HashBound{target, r + k * n});
			steps.push_back(std::move(step));
		}
		return steps;
	}
	if (n % target == 0) {
		// merge: (n, r + k target) for k = 0 .. n/target - 1 -> (target, r)
		for (int r = 0; r < target; r++) {
			ReshapeStep step;
			for (int k = 0; k < n / target; k++)
				step.from.push_back(HashBound{n, r + k * target});
			step.to.push_back(HashBound{target, r});
			steps.push_back(std::move(step));
		}
		return steps;
	}
	std::vector<int> allowed;
	for (int c = kMinPartitions; c <= std::min(kMaxPartitions, n * 4); c++)
		if ((c % n == 0 || n % c == 0) && c != n)
			allowed.push_back(c);
	throw Error(ErrorKind::kInvalidInput,
	            "cannot repartition from " + std::to_string(n) + " to " + std::to_string(target) + " partitions",
	            "PostgreSQL requires every hash modulus to divide the next larger one, so the new count must be a "
	            "multiple or a divisor of the current one.",
	            "Choose one of " + CountList(allowed) + ".");
}

bool
Contains(const HashBound &outer, const HashBound &inner)
{
	return inner.modulus % outer.modulus == 0 && inner.remainder % outer.modulus == outer.remainder;
}

} // namespace tenancy::core
