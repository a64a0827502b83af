// A small client for the icos REST API, used by the CLI and the agent. Keeps
// the HTTP library out of their headers. Errors carry the server's message.
//
// HTTPS: an https:// URL is always verified (the certificate chain against
// ApiClientOptions::ca_cert_file, or the system's CAs without one, and the
// URL's host against its names); there is no way to turn that off. A
// failed check is FailedPrecondition naming what the certificate says and
// the fix; it is not retried (another try gets the same certificate).
//
// Thread-safety: one ApiClient per thread (a connection is not shared).
#ifndef ICOS_PROTOCOL_HTTP_CLIENT_H_
#define ICOS_PROTOCOL_HTTP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace httplib {
class Client;
}

namespace icos {

struct HttpReply {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;
};

struct TlsPeerInfo;  // what a TLS handshake was shown (http_client.cc)

struct ApiClientOptions {
  // Bounds connect and each read.
  int64_t timeout_ms = 30'000;
  // Reuse the connection between requests. The server gives each open
  // connection a worker thread, so a client that calls on a timer (an
  // agent: a heartbeat a second, from every node) should not: its idle
  // connection would hold a thread between calls.
  bool keep_alive = true;
  // PEM file of the CA(s) an https:// server's certificate must chain to
  // (`icos tls init`'s ca.crt); only these are trusted then. Empty: the
  // system's CA certificates. Unused for http:// URLs.
  std::string ca_cert_file;
  // Appended to "cannot reach URL: why" (a client of something else than
  // the icos API says so).
  std::string unreachable_hint = " (is the icos server running? `icos up` starts one)";
  // The most bytes of a reply's body read; a longer one fails the request
  // (ResourceExhausted) as soon as it passes this, rather than fill memory
  // (a webhook endpoint is someone else's server). 0: no limit.
  int64_t max_reply_bytes = 0;
};

class ApiClient {
 public:
  // base_url: "http://127.0.0.1:7070" (or https://; a trailing '/' is
  // dropped), or several controllers
  // separated by commas (a leader and its standbys, which do not listen
  // until they lead): a request that cannot connect tries the next one, and
  // the client stays with the one that answered.
  ApiClient(const std::string& base_url, std::string token, ApiClientOptions options);
  ApiClient(const std::string& base_url, std::string token, int64_t timeout_ms = 30'000, bool keep_alive = true)
      : ApiClient(base_url, std::move(token), ApiClientOptions{.timeout_ms = timeout_ms, .keep_alive = keep_alive}) {}
  ~ApiClient();

  // Transport errors are Unavailable ("cannot reach http://...: Connection");
  // TLS errors FailedPrecondition (http_client.h's header comment), except a
  // handshake that broke off, which is Unavailable too.
  // A repeatable request (a GET, or one carrying an Idempotency-Key header)
  // may be sent again: it moves on to the next controller after any
  // transport error, and with set_retry() it is retried on transport errors
  // and 503s until the retry time is spent. Any other request moves on only
  // when it never connected: a write that may have been received is not
  // sent twice.
  absl::StatusOr<HttpReply> Request(const std::string& method, const std::string& path, const std::string& body = "",
                                    const std::string& content_type = "application/json",
                                    const std::map<std::string, std::string>& headers = {});
  // 2xx: the parsed body; otherwise the server's {"error"} as a Status of the matching code.
  absl::StatusOr<nlohmann::json> Json(const std::string& method, const std::string& path, const std::string& body = "",
                                      const std::string& content_type = "application/json",
                                      const std::map<std::string, std::string>& headers = {});

  // The controller now in use.
  const std::string& base_url() const { return urls_[current_]; }

  // Repeatable requests keep trying for up to `total_ms` (back-off from
  // 100 ms doubling to 2 s), through controller restarts and failovers;
  // `on_retry` (optional) hears each failure first. 0: no retries (default).
  void set_retry(int64_t total_ms, std::function<void(const absl::Status&)> on_retry = nullptr) {
    retry_ms_ = total_ms;
    on_retry_ = std::move(on_retry);
  }

 private:
  void Connect(size_t index);
  // The error for a failed request to the current controller: a TLS
  // problem explained, else the transport error's name.
  absl::Status Explain(int error, bool* tls_config_error);

  std::vector<std::string> urls_;
  size_t current_ = 0;
  std::string token_;
  ApiClientOptions options_;
  absl::Status ca_error_;  // the CA file could not be loaded: every request fails with this
  int64_t retry_ms_ = 0;
  std::function<void(const absl::Status&)> on_retry_;
  std::unique_ptr<TlsPeerInfo> peer_;  // outlives client_, whose TLS context points at it
  std::unique_ptr<httplib::Client> client_;
};

// A fresh random key for the Idempotency-Key header (32 hex digits).
std::string NewIdempotencyKey();

// absl::Status for an HTTP error reply (400 -> InvalidArgument, 401 -> Unauthenticated, ...).
absl::Status StatusFromHttp(int status, const std::string& message);

// The Status for a non-2xx reply from `url`: the icos API's own {"error"}
// message; a reply that is not the icos API's (another web server's HTML
// page, a proxy's error) is named as such, with its status and first line,
// instead of being dumped.
absl::Status StatusFromReply(const HttpReply& reply, const std::string& url);

}  // namespace icos

#endif  // ICOS_PROTOCOL_HTTP_CLIENT_H_
