// Raw-socket helpers for icos_net's tests: clients that misbehave on purpose
// (slow, idle, silent), which a well-behaved HTTP client library cannot be.
#ifndef ICOS_NET_TEST_UTIL_H_
#define ICOS_NET_TEST_UTIL_H_

#include <string>

namespace icos::net::testing {

// A TCP connection to 127.0.0.1:port; -1 on failure.
int Connect(int port);
// Writes all of `data`; false on error (e.g. the server closed).
bool SendAll(int fd, const std::string& data);
// Reads one HTTP response (head and a Content-Length body; no body for a
// HEAD request's) within timeout_ms; what arrived, "" when nothing did.
// Bytes that came past the response are kept for the next call on `fd`
// (pipelined answers), so close a descriptor only after reading all it got.
std::string ReadResponse(int fd, int timeout_ms, bool head = false);
// Whether the server closes the connection within timeout_ms (reads and
// drops anything sent before the close).
bool ClosedWithin(int fd, int timeout_ms);
// The status code of a raw response ("HTTP/1.1 503 ..." -> 503); 0 if none.
int StatusOf(const std::string& response);
// The body of a raw response.
std::string BodyOf(const std::string& response);

}  // namespace icos::net::testing

#endif  // ICOS_NET_TEST_UTIL_H_
