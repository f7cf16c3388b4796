// daemon/server/http_head.cpp
// A strict reader of HTTP/1.1 request heads (RFC 9112): refuses rather than guesses.
#include "server/http_head.hpp"

#include <algorithm>
#include <cctype>

namespace tenancyd {

namespace {

HeadVerdict
Refuse(int status, const char *code, const std::string &message)
{
	HeadVerdict v;
	v.kind = HeadVerdict::Kind::kRefuse;
	v.status = status;
	v.code = code;
	v.message = message;
	return v;
}

bool
IsTokenChar(char c)
{
	return std::isalnum(static_cast<unsigned char>(c)) ||
	       std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string
Lower(std::string_view s)
{
	std::string out(s);
	std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
	return out;
}

std::string_view
Trim(std::string_view s)
{
	while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
		s.remove_prefix(1);
	while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
		s.remove_suffix(1);
	return s;
}

bool
ContainsCi(std::string_view haystack, std::string_view needle)
{
	return Lower(haystack).find(needle) != std::string::npos;
}

} // namespace

HeadVerdict
ExamineHead(std::string_view buffer, const HeadLimits &limits)
{
	// Every LF must end a CRLF, and a CR must start one: otherwise the library (which skips bare-LF lines) and a
	// proxy could split the head differently. (Only the head is scanned: a body may hold anything.)
	size_t terminator = buffer.find("\r\n\r\n");
	size_t scan = terminator == std::string_view::npos ? buffer.size() : terminator + 4;
	for (size_t i = 0; i < scan; i++) {
		if (buffer[i] == '\n' && (i == 0 || buffer[i - 1] != '\r'))
			return Refuse(400, "bad_request", "malformed request: a line ends in LF without CR");
		if (buffer[i] == '\r' && i + 1 < buffer.size() && buffer[i + 1] != '\n')
			return Refuse(400, "bad_request", "malformed request: CR without LF");
		if (buffer[i] == '\0')
			return Refuse(400, "bad_request", "malformed request: NUL byte in the request head");
	}
	size_t line_end = buffer.find("\r\n");
	if (line_end == std::string_view::npos) {
		if (buffer.size() > limits.max_request_line)
			return Refuse(414, "uri_too_long", "request line too long");
		if (buffer.size() > limits.max_header_bytes)
			return Refuse(431, "header_too_large", "request header fields too large");
		return {};
	}
	if (line_end > limits.max_request_line)
		return Refuse(414, "uri_too_long", "request line too long");
	size_t end = terminator;
	if (end == std::string_view::npos || end + 4 > limits.max_header_bytes) {
		if (buffer.size() > limits.max_header_bytes || (end != std::string_view::npos))
			return Refuse(431, "header_too_large",
			              "request header fields too large (more than " + std::to_string(limits.max_header_bytes) +
			                  " bytes)");
		return {};
	}
	HeadVerdict v;
	v.head_len = end + 4;

	// Request line: METHOD SP origin-form SP HTTP/1.x
	std::string_view line = buffer.substr(0, line_end);
	size_t sp1 = line.find(' ');
	size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
	if (sp1 == std::string_view::npos || sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != line.npos)
		return Refuse(400, "bad_request", "malformed request line");
	std::string_view method = line.substr(0, sp1);
	std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
	std::string_view version = line.substr(sp2 + 1);
	if (version != "HTTP/1.1" && version != "HTTP/1.0")
		return Refuse(505, "http_version_not_supported", "only HTTP/1.1 and HTTP/1.0 are served");
	static const std::string_view kMethods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
	if (std::find(std::begin(kMethods), std::end(kMethods), method) == std::end(kMethods))
		return Refuse(501, "not_implemented", "method not implemented");
	if (target.empty() || target[0] != '/')
		return Refuse(400, "bad_request", "the request target must be a path (origin-form)");
	for (char c : target)
		if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
			return Refuse(400, "bad_request", "malformed request target");
	std::string_view path = target.substr(0, target.find_first_of("?#"));
	// cpp-httplib decodes the path before routing: an encoded slash or backslash would change which route matches
	// (and a proxy in front routes on the undecoded one), a NUL would cut it.
	if (ContainsCi(path, "%2f") || ContainsCi(path, "%5c") || ContainsCi(path, "%00"))
		return Refuse(400, "bad_request", "encoded slash, backslash or NUL in the request path");

	// Header fields.
	int content_lengths = 0, transfer_encodings = 0, hosts = 0;
	unsigned long long content_length = 0;
	std::string head(buffer.substr(0, line_end + 2));
	size_t pos = line_end + 2;
	while (pos < end + 2) {
		size_t eol = buffer.find("\r\n", pos);
		std::string_view field = buffer.substr(pos, eol - pos);
		pos = eol + 2;
		if (field.empty())
			break;
		if (field[0] == ' ' || field[0] == '\t')
			return Refuse(400, "bad_request", "malformed request: folded header line");
		size_t colon = field.find(':');
		if (colon == std::string_view::npos || colon == 0)
			return Refuse(400, "bad_request", "malformed header line");
		std::string_view name = field.substr(0, colon);
		for (char c : name)
			if (!IsTokenChar(c))
				return Refuse(400, "bad_request", "malformed header name");
		std::string_view value = Trim(field.substr(colon + 1));
		for (char c : value)
			if ((static_cast<unsigned char>(c) < 0x20 && c != '\t') || c == 0x7f)
				return Refuse(400, "bad_request", "control character in a header value");
		std::string lname = Lower(name);
		if (lname == "content-length") {
			if (++content_lengths > 1)
				return Refuse(400, "bad_request", "several Content-Length headers");
			if (value.empty() || value.size() > 15 ||
			    !std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; }))
				return Refuse(400, "bad_request", "Content-Length must be a decimal number");
			content_length = std::stoull(std::string(value));
		} else if (lname == "transfer-encoding") {
			if (++transfer_encodings > 1)
				return Refuse(400, "bad_request", "several Transfer-Encoding headers");
		} else if (lname == "host") {
			if (++hosts > 1)
				return Refuse(400, "bad_request", "several Host headers");
		} else if (lname == "range" || lname == "if-range") {
			continue; // ranges are not served: the whole answer, never a multipart of it
		} else if (lname == "expect") {
			v.expect_continue = Lower(value) == "100-continue";
			continue; // answered by the transport, not by the library
		}
		head.append(field);
		head.append("\r\n");
	}
	head.append("\r\n");
	if (transfer_encodings > 0 && content_lengths > 0)
		return Refuse(400, "bad_request", "both Content-Length and Transfer-Encoding");
	if (transfer_encodings > 0)
		return Refuse(411, "length_required",
		              "request bodies need a Content-Length (Transfer-Encoding is not accepted)");
	if (content_length > 0 && (method == "GET" || method == "HEAD" || method == "OPTIONS"))
		return Refuse(400, "bad_request", "a " + std::string(method) + " request has no body");
	if (content_length > limits.max_body_bytes)
		return Refuse(413, "payload_too_large", "request body exceeds limits.max_body_bytes");
	v.kind = HeadVerdict::Kind::kAccept;
	v.body_len = content_length;
	v.head = std::move(head);
	return v;
}

} // namespace tenancyd
