// test/unit/core/fernet_test.cpp
// Fernet decryption against the test vectors of the Fernet specification (github.com/fernet/spec).
#include "tenancy/core/base64.hpp"
#include "tenancy/core/error.hpp"
#include "tenancy/core/fernet.hpp"

#include <gtest/gtest.h>

#include <string>

using namespace tenancy::core;

namespace {

const std::string kSecret = "cw_0x689RpI-jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=";
// generate.json / verify.json: "hello" at 1985-10-26T01:20:00-07:00 with IV 0..15.
const std::string kToken =
    "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==";
constexpr std::int64_t kTokenTime = 499162800; // 1985-10-26T08:20:00Z

std::string
Text(const SecureBytes &b)
{
	return std::string(reinterpret_cast<const char *>(b.data()), b.size());
}

struct InvalidVector {
	const char *desc;
	const char *token;
	std::int64_t now;
};

} // namespace

TEST(Fernet, VerifyVector)
{
	// verify.json: now = 01:20:01-07:00, ttl 60 s.
	EXPECT_EQ(Text(FernetDecrypt(kToken, kSecret, 60, kTokenTime + 1)), "hello");
}

TEST(Fernet, GenerateVectorDecryptsWithoutTtl)
{
	EXPECT_EQ(Text(FernetDecrypt(kToken, kSecret, std::nullopt, kTokenTime + 1000000000)), "hello");
}

TEST(Fernet, TokenBase64EncodedAgainAsTheBriefStoredIt)
{
	std::string wrapped = Base64Encode(reinterpret_cast<const std::uint8_t *>(kToken.data()), kToken.size());
	EXPECT_EQ(Text(FernetDecrypt(wrapped, kSecret, std::nullopt, 0)), "hello");
	// PostgreSQL's encode(..., 'base64') breaks lines every 76 characters.
	std::string broken = wrapped.substr(0, 76) + "\n" + wrapped.substr(76);
	EXPECT_EQ(Text(FernetDecrypt(broken, kSecret, std::nullopt, 0)), "hello");
}

TEST(Fernet, InvalidVectors)
{
	// invalid.json: every entry has ttl 60 s and now = 01:20:01-07:00 unless noted.
	const InvalidVector vectors[] = {
	    {"incorrect mac",
	     "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykQUFBQUFBQUFBQQ==",
	     kTokenTime + 1},
	    {"too short", "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPA==", kTokenTime + 1},
	    {"invalid base64",
	     "%%%%%%%%%%%%%AECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
	     kTokenTime + 1},
	    {"payload size not multiple of block size",
	     "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPOm73QeoCk9uGib28Xe5vz6oxq5nmxbx_v7mrfyudzUm",
	     kTokenTime + 1},
	    {"payload padding error",
	     "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0ODz4LEpdELGQAad7aNEHbf-JkLPIpuiYRLQ3RtXatOYREu2FWke6CnJNYIbkuKNqOhw==",
	     kTokenTime + 1},
	    {"far-future TS (unacceptable clock skew)",
	     "gAAAAAAdwStRAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAnja1xKYyhd-Y6mSkTOyTGJmw2Xc2a6kBd-iX9b_qXQcw==",
	     kTokenTime + 1},
	    {"expired TTL",
	     "gAAAAAAdwJ6xAAECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAl1-szkFVzXTuGb4hR8AKtwcaX1YdykRtfsH-p1YsUD2Q==",
	     kTokenTime + 91}, // 01:21:31-07:00
	    {"incorrect IV (causes padding error)",
	     "gAAAAAAdwJ6xBQECAwQFBgcICQoLDA0OD3HkMATM5lFqGaerZ-fWPAkLhFLHpGtDBRLRTZeUfWgHSv49TF2AUEZ1TIvcZjK1zQ==",
	     kTokenTime + 1},
	    {"trailing characters after b64 padding",
	     "gAAAAAAdwJ6wAAECAwQFBgcICQoLDA0ODy021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA=="
	     "trailingdata",
	     kTokenTime + 1},
	    {"invalid characters in b64",
	     "*gAAAAAAdwJ6wAAECAwQFBgcI!CQoLDA0ODy021?cpGVWKZ_eEwC@GM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
	     kTokenTime + 1},
	    {"invalid non-urlsafe characters in b64",
	     "gAAAAAAdwJ6wAAEC/AwQFBgcICQoLDA0ODy+021cpGVWKZ_eEwCGM4BLLF_5CV9dOPmrhuVUPgJobwOz7JcbmrR64jVmpU4IwqDA==",
	     kTokenTime + 1},
	};
	for (const auto &v : vectors) {
		try {
			FernetDecrypt(v.token, kSecret, 60, v.now);
			ADD_FAILURE() << v.desc << ": accepted";
		} catch (const Error &e) {
			EXPECT_EQ(e.kind(), ErrorKind::kDecryptionFailed) << v.desc;
		}
	}
}

TEST(Fernet, WrongOrMalformedKey)
{
	const std::string other = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
	try {
		FernetDecrypt(kToken, other, std::nullopt, 0);
		FAIL();
	} catch (const Error &e) {
		EXPECT_EQ(e.kind(), ErrorKind::kDecryptionFailed);
	}
	for (const std::string &bad : {std::string("short"), kSecret.substr(0, 43), std::string(44, '*'),
	                               std::string("cw/0x689RpI+jtRR7oE8h_eQsKImvJapLeSbXpwF4e4=")}) {
		try {
			FernetDecrypt(kToken, bad, std::nullopt, 0);
			ADD_FAILURE() << bad;
		} catch (const Error &e) {
			EXPECT_EQ(e.kind(), ErrorKind::kInvalidInput) << bad;
		}
	}
}
