// extension/core/master_key.cpp
// Master-key loading (file or command), fingerprint, and AES-256-GCM wrapping of tenant data keys.
#include "tenancy/core/master_key.hpp"

#include "tenancy/core/error.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace tenancy::core {

namespace {

constexpr std::size_t kMaxKeySourceSize = 4096;
constexpr std::uint8_t kWrapFormat = 1;
constexpr char kFingerprintLabel[] = "tenancy master key fingerprint v1";

[[noreturn]] void
ThrowNotSetUp(const std::string &message, const std::string &detail, const std::string &hint = {})
{
	throw Error(ErrorKind::kNotSetUp, message, detail, hint);
}

// Closes a file descriptor on every path.
struct FdGuard {
	int fd;
	~FdGuard()
	{
		if (fd >= 0)
			close(fd);
	}
};

std::array<std::uint8_t, 1 + 16 + 4>
WrapAssociatedData(const TenantId &tenant, std::uint32_t key_version) noexcept
{
	std::array<std::uint8_t, 1 + 16 + 4> aad{};
	aad[0] = kWrapFormat;
	std::memcpy(aad.data() + 1, tenant.data(), tenant.size());
	aad[17] = static_cast<std::uint8_t>(key_version >> 24);
	aad[18] = static_cast<std::uint8_t>(key_version >> 16);
	aad[19] = static_cast<std::uint8_t>(key_version >> 8);
	aad[20] = static_cast<std::uint8_t>(key_version);
	return aad;
}

} // namespace

SecretKey
ParseMasterKey(const std::uint8_t *data, std::size_t size, const std::string &source)
{
	SecretKey key;
	if (size == SecretKey::kSize) {
		std::memcpy(key.data(), data, SecretKey::kSize);
		return key;
	}
	std::size_t hex_size = size;
	if (hex_size == 2 * SecretKey::kSize + 1 && data[hex_size - 1] == '\n')
		hex_size--;
	if (hex_size == 2 * SecretKey::kSize) {
		// OPENSSL_hexstr2buf_ex wants a NUL-terminated string: copy into a buffer that is wiped afterwards.
		SecureBytes text(hex_size + 1);
		std::memcpy(text.data(), data, hex_size);
		text.data()[hex_size] = '\0';
		std::size_t decoded = 0;
		if (OPENSSL_hexstr2buf_ex(key.data(), SecretKey::kSize, &decoded, reinterpret_cast<const char *>(text.data()),
		                          '\0') == 1 &&
		    decoded == SecretKey::kSize)
			return key;
	}
	ThrowNotSetUp("master key from " + source + " is malformed",
	              "A master key is 32 raw bytes, or 64 hexadecimal characters with an optional trailing newline; "
	              "this one has " +
	                  std::to_string(size) + " bytes that are neither.",
	              "Generate one with \"openssl rand -hex 32\".");
}

SecretKey
LoadMasterKeyFile(const std::string &path)
{
	const std::string source = "file \"" + path + "\"";
	FdGuard fd{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
	if (fd.fd < 0)
		ThrowNotSetUp("could not open master key " + source, std::string("The system said: ") + std::strerror(errno),
		              "Check tenancy.master_key_file and the file's owner (the server's OS user).");
	struct stat st;
	if (fstat(fd.fd, &st) != 0)
		ThrowNotSetUp("could not stat master key " + source, std::string("The system said: ") + std::strerror(errno));
	if (!S_ISREG(st.st_mode))
		ThrowNotSetUp("master key " + source + " is not a regular file", "The master key must be a plain file.");
	// Checked on the open descriptor, so the file cannot be swapped between the check and the read.
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
		ThrowNotSetUp("master key " + source + " has group or world access",
		              "Its mode is " + std::to_string((st.st_mode >> 6) & 7) + std::to_string((st.st_mode >> 3) & 7) +
		                  std::to_string(st.st_mode & 7) + "; only its owner may have access.",
		              "Run chmod 600 on the file.");

	SecureBytes content(kMaxKeySourceSize + 1);
	std::size_t total = 0;
	while (total < content.size()) {
		ssize_t n = read(fd.fd, content.data() + total, content.size() - total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			ThrowNotSetUp("could not read master key " + source,
			              std::string("The system said: ") + std::strerror(errno));
		if (n == 0)
			break;
		total += static_cast<std::size_t>(n);
	}
	return ParseMasterKey(content.data(), total, source);
}

SecretKey
LoadMasterKeyCommand(const std::string &command)
{
	const std::string source = "tenancy.master_key_command";
	std::FILE *pipe = popen(command.c_str(), "r");
	if (pipe == nullptr)
		ThrowNotSetUp("could not run " + source, std::string("The system said: ") + std::strerror(errno));
	SecureBytes content(kMaxKeySourceSize + 1);
	std::size_t total = 0;
	while (total < content.size()) {
		std::size_t n = std::fread(content.data() + total, 1, content.size() - total, pipe);
		if (n == 0)
			break;
		total += n;
	}
	// Drain anything left so the command never blocks on a full pipe, then collect its status.
	char sink[256];
	while (std::fread(sink, 1, sizeof(sink), pipe) > 0) {
	}
	int status = pclose(pipe);
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		ThrowNotSetUp(source + " failed",
		              status != -1 && WIFEXITED(status)
		                  ? "The command exited with status " + std::to_string(WEXITSTATUS(status)) + "."
		                  : std::string("The command did not exit normally."),
		              "Check the command's output in the server log (its standard error goes there).");
	return ParseMasterKey(content.data(), total, "tenancy.master_key_command");
}

SecretKey
LoadMasterKey(const std::string &file, const std::string &command)
{
	if (!file.empty())
		return LoadMasterKeyFile(file);
	if (!command.empty())
		return LoadMasterKeyCommand(command);
	ThrowNotSetUp("no master key is configured",
	              "Tenant data keys are wrapped by a master key kept outside the database.",
	              "Set tenancy.master_key_file (or tenancy.master_key_command) in postgresql.conf and reload.");
}

std::array<std::uint8_t, 32>
MasterKeyFingerprint(const SecretKey &master)
{
	std::array<std::uint8_t, 32> out{};
	std::size_t out_len = 0;
	if (EVP_Q_mac(nullptr, "HMAC", nullptr, "SHA256", nullptr, master.data(), SecretKey::kSize,
	              reinterpret_cast<const unsigned char *>(kFingerprintLabel), sizeof(kFingerprintLabel) - 1, out.data(),
	              out.size(), &out_len) == nullptr ||
	    out_len != out.size())
		throw Error(ErrorKind::kCryptoLibrary, "OpenSSL failure: could not compute HMAC-SHA-256");
	return out;
}

SecretKey
GenerateDataKey()
{
	SecretKey key;
	if (RAND_priv_bytes(key.data(), static_cast<int>(SecretKey::kSize)) != 1)
		throw Error(ErrorKind::kCryptoLibrary, "OpenSSL failure: could not generate a data key");
	return key;
}

std::vector<std::uint8_t>
WrapDataKey(const SecretKey &master, const SecretKey &data_key, const TenantId &tenant, std::uint32_t key_version)
{
	std::vector<std::uint8_t> out(kWrappedKeySize);
	out[0] = kWrapFormat;
	std::uint8_t *nonce = out.data() + 1;
	std::uint8_t *body = nonce + 12;
	std::uint8_t *tag = body + SecretKey::kSize;
	if (RAND_bytes(nonce, 12) != 1)
		throw Error(ErrorKind::kCryptoLibrary, "OpenSSL failure: could not generate a nonce");
	auto aad = WrapAssociatedData(tenant, key_version);
	CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
	int len = 0;
	if (!ctx || EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), master.data(), nonce, nullptr) != 1 ||
	    EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
	    EVP_EncryptUpdate(ctx.get(), body, &len, data_key.data(), static_cast<int>(SecretKey::kSize)) != 1 ||
	    EVP_EncryptFinal_ex(ctx.get(), body + SecretKey::kSize, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, tag) != 1)
		throw Error(ErrorKind::kCryptoLibrary, "OpenSSL failure: could not wrap a data key");
	return out;
}

SecretKey
UnwrapDataKey(const SecretKey &master, const std::uint8_t *wrapped, std::size_t size, const TenantId &tenant,
              std::uint32_t key_version)
{
	if (size != kWrappedKeySize || wrapped[0] != kWrapFormat)
		ThrowNotSetUp("stored data key is malformed", "The wrapped key of key version " + std::to_string(key_version) +
		                                                  " has an unexpected size or format.");
	const std::uint8_t *nonce = wrapped + 1;
	const std::uint8_t *body = nonce + 12;
	std::uint8_t tag[16];
	std::memcpy(tag, body + SecretKey::kSize, sizeof(tag));
	auto aad = WrapAssociatedData(tenant, key_version);
	SecretKey key;
	CipherCtxPtr ctx(EVP_CIPHER_CTX_new());
	int len = 0;
	if (!ctx || EVP_DecryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), master.data(), nonce, nullptr) != 1 ||
	    EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(), static_cast<int>(aad.size())) != 1 ||
	    EVP_DecryptUpdate(ctx.get(), key.data(), &len, body, static_cast<int>(SecretKey::kSize)) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, sizeof(tag), tag) != 1)
		throw Error(ErrorKind::kCryptoLibrary, "OpenSSL failure: could not unwrap a data key");
	if (EVP_DecryptFinal_ex(ctx.get(), key.data() + SecretKey::kSize, &len) != 1)
		ThrowNotSetUp("could not unwrap a tenant data key with the master key",
		              "The master key is not the one the data key was wrapped with, or the stored key was altered.",
		              "Check tenancy.master_key_file; after changing the master key, run tenancy.rewrap_keys() with "
		              "the old key in tenancy.previous_master_key_file.");
	return key; // key's destructor wipes it on the throwing paths above
}

} // namespace tenancy::core
