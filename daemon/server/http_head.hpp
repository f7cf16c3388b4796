// daemon/server/http_head.hpp
// The request head as tenancyd's transport reads it before cpp-httplib sees a byte: where it ends, how long its body
// is, and whether its framing is unambiguous. Anything two parsers could read differently (bare LF, folded lines,
// several Content-Length or Transfer-Encoding headers, a body on GET, %2F in the path) is refused here, so the
// library and every proxy in front agree on where each request ends.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tenancyd {

struct HeadLimits {
	size_t max_header_bytes = 32768; // request line and headers together
	size_t max_body_bytes = 1048576;
	size_t max_request_line = 8192;
};

struct HeadVerdict {
	enum class Kind {
		kIncomplete, // the head has not ended yet (and is within max_header_bytes)
		kAccept,     // head ends at head_len; body_len body bytes follow
		kRefuse,     // answer status with code/message and close the connection
	};
	Kind kind = Kind::kIncomplete;
	size_t head_len = 0; // bytes of the head as received, final empty line included
	size_t body_len = 0; // Content-Length (0 without one)
	std::string head;    // the head as it goes to cpp-httplib: Range, If-Range and Expect removed
	bool expect_continue = false;
	int status = 0;
	std::string code; // error code of the JSON error body
	std::string message;
};

// Examines the bytes received so far for one request (leading empty lines already skipped by the caller).
HeadVerdict ExamineHead(std::string_view buffer, const HeadLimits &limits);

} // namespace tenancyd
