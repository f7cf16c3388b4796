// test/unit/daemon/http_head_test.cpp
// The transport's request-head reader: complete heads, limits, and every ambiguous framing refused.
#include "server/http_head.hpp"

#include <gtest/gtest.h>

using namespace tenancyd;
using Kind = HeadVerdict::Kind;

namespace {
HeadVerdict
Examine(const std::string &text, HeadLimits limits = {})
{
	return ExamineHead(text, limits);
}
} // namespace

TEST(HttpHead, CompleteHeadWithBody)
{
	std::string req = "POST /api/v1/admin/tenants HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
	auto v = Examine(req);
	ASSERT_EQ(v.kind, Kind::kAccept);
	EXPECT_EQ(v.head_len, req.size() - 2);
	EXPECT_EQ(v.body_len, 2u);
	EXPECT_EQ(v.head, req.substr(0, req.size() - 2));
}

TEST(HttpHead, IncompleteUntilTheEmptyLine)
{
	EXPECT_EQ(Examine("GET /healthz HTTP/1.1\r\nHost: x\r\n").kind, Kind::kIncomplete);
	EXPECT_EQ(Examine("GET /healthz HTTP/1.1\r\nHost: x\r\n\r").kind, Kind::kIncomplete);
	EXPECT_EQ(Examine("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").kind, Kind::kAccept);
}

TEST(HttpHead, HeaderBytesAreCapped)
{
	HeadLimits limits;
	limits.max_header_bytes = 1024;
	std::string req = "GET /healthz HTTP/1.1\r\n";
	while (req.size() <= 1024)
		req += "X-Flood: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
	auto v = Examine(req, limits);
	EXPECT_EQ(v.kind, Kind::kRefuse);
	EXPECT_EQ(v.status, 431);
	// A complete head over the cap is refused too.
	EXPECT_EQ(Examine(req + "\r\n", limits).status, 431);
	// A request line that never ends.
	EXPECT_EQ(Examine("GET /" + std::string(9000, 'a'), limits).status, 414);
}

TEST(HttpHead, AmbiguousFramingIsRefused)
{
	auto status = [](const std::string &headers, const std::string &method = "POST") {
		auto v = ExamineHead(method + " /x HTTP/1.1\r\nHost: x\r\n" + headers + "\r\n", HeadLimits{});
		return v.kind == Kind::kRefuse ? v.status : 0;
	};
	EXPECT_EQ(status("Transfer-Encoding: chunked\r\n"), 411);
	EXPECT_EQ(status("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n"), 400);
	EXPECT_EQ(status("Content-Length: 0\r\nContent-Length: 5\r\n"), 400);
	EXPECT_EQ(status("Content-Length: 5\r\ncontent-length: 5\r\n"), 400);
	EXPECT_EQ(status("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400);
	EXPECT_EQ(status("Content-Length: +5\r\n"), 400);
	EXPECT_EQ(status("Content-Length: 5, 5\r\n"), 400);
	EXPECT_EQ(status("Content-Length : 5\r\n"), 400);       // whitespace before the colon
	EXPECT_EQ(status("X-A: 1\r\n continued\r\n"), 400);     // obsolete line folding
	EXPECT_EQ(status("Content-Length: 5\r\n", "GET"), 400); // a GET body would run as the next request
	EXPECT_EQ(status("Content-Length: 0\r\n", "GET"), 0);
	EXPECT_EQ(status("Host: y\r\n"), 400);
	EXPECT_EQ(status("Content-Length: 2000000\r\n"), 413);
	EXPECT_EQ(Examine("GET /x HTTP/1.1\r\nX-A: 1\nContent-Length: 5\r\n\r\n").status, 400); // bare LF
	EXPECT_EQ(Examine("GET /x HTTP/1.1\r\nX-A: 1\rContent-Length: 5\r\n\r\n").status, 400); // bare CR
	EXPECT_EQ(Examine("GET /x HTTP/2.0\r\n\r\n").status, 505);
	EXPECT_EQ(Examine("BREW /x HTTP/1.1\r\n\r\n").status, 501);
	EXPECT_EQ(Examine("GET http://x/ HTTP/1.1\r\n\r\n").status, 400);
}

TEST(HttpHead, EncodedSlashInThePathIsRefused)
{
	EXPECT_EQ(Examine("GET /api/v1%2fadmin/tenants HTTP/1.1\r\n\r\n").status, 400);
	EXPECT_EQ(Examine("GET /api/v1/tenants/a%2Fb HTTP/1.1\r\n\r\n").status, 400);
	EXPECT_EQ(Examine("GET /a%5cb HTTP/1.1\r\n\r\n").status, 400);
	EXPECT_EQ(Examine("GET /a%00b HTTP/1.1\r\n\r\n").status, 400);
	// In the query string it is only data.
	EXPECT_EQ(Examine("GET /api/v1/tenants?cursor=a%2Fb HTTP/1.1\r\n\r\n").kind, Kind::kAccept);
}

TEST(HttpHead, RangeAndExpectAreRemoved)
{
	auto v = Examine("POST /x HTTP/1.1\r\nRange: bytes=0-,0-,0-\r\nIf-Range: x\r\nExpect: 100-continue\r\n"
	                 "Content-Length: 1\r\n\r\n");
	ASSERT_EQ(v.kind, Kind::kAccept);
	EXPECT_TRUE(v.expect_continue);
	EXPECT_EQ(v.head, "POST /x HTTP/1.1\r\nContent-Length: 1\r\n\r\n");
	EXPECT_EQ(v.head_len, std::string("POST /x HTTP/1.1\r\nRange: bytes=0-,0-,0-\r\nIf-Range: x\r\n"
	                                  "Expect: 100-continue\r\nContent-Length: 1\r\n\r\n")
	                          .size());
}

TEST(HttpHead, BodyBytesMayHoldAnything)
{
	auto v = Examine("POST /x HTTP/1.1\r\nContent-Length: 5\r\n\r\na\nb\rc");
	EXPECT_EQ(v.kind, Kind::kAccept);
}
