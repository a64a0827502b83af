// Neutral HTTP/1.1 request and response types for icos_net's server
// (server.h), so handlers never see the transport (Boost.Beast stays inside
// src/net/*.cc), and the handle a handler keeps to answer later (Deferred).
//
// Thread-safety: Request and Response are plain values (one thread at a
// time); Deferred is thread-safe.
#ifndef ICOS_NET_HTTP_H_
#define ICOS_NET_HTTP_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace icos::net {

// Header names compare case-insensitively (RFC 9110 section 5.1).
struct CaseInsensitiveLess {
  using is_transparent = void;
  bool operator()(std::string_view a, std::string_view b) const;
};
using Headers = std::multimap<std::string, std::string, CaseInsensitiveLess>;

struct Request {
  std::string method;                              // as sent: "GET", "POST", ... (any token the client chose)
  std::string target;                              // the raw request target, e.g. "/api/v1/jobs?limit=1"
  std::string path;                                // the target's path, percent-decoded ("+" stays "+")
  std::multimap<std::string, std::string> params;  // query parameters, decoded ("+" is a space)
  Headers headers;
  std::string body;
  std::string peer;  // the client's address, e.g. "127.0.0.1" or "::1"
  // [0] the whole path, [1..] the groups of the route pattern that matched.
  std::vector<std::string> matches;
  bool keep_alive = true;  // the client allows another request on the connection

  bool has_param(std::string_view name) const;
  // The first value of a query parameter; "" when absent.
  std::string param(std::string_view name) const;
  // The first value of a header; "" when absent.
  std::string header(std::string_view name) const;
};

struct DeferredState;  // server.cc
class Deferred;
struct Response;

// Where a streamed response's pieces go (Response::BeginStream): the
// server's connection. Called on the handler's thread; each call returns
// once its bytes are written, false when they cannot be (client gone or too
// slow, server stopping, a HEAD request).
class ChunkSink {
 public:
  virtual ~ChunkSink() = default;
  virtual bool Head(const Response& head) = 0;
  virtual bool Piece(std::string_view data) = 0;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  std::string content_type;  // empty: no Content-Type header
  // The handler accepted the credentials the request carried. The server then
  // prefers to keep this connection when its client address is over its
  // connection cap (ServerOptions, "Eviction"): set it only after checking them.
  bool authenticated = false;

  void Set(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
  void SetHeader(std::string name, std::string value);

  // Answers later: the handler returns without a response and whoever holds
  // the returned handle completes it, from any thread, within `timeout`.
  // When that passes unanswered, `on_timeout` runs once on the route's
  // worker pool with the handle (it should Complete it; if it has not within
  // ServerOptions::limits.deferred_grace_ms more, the server answers 504). A
  // connection that closes first (client gone, evicted) runs `on_timeout`
  // too, with a handle that can no longer answer (open() false), so what the
  // handler registered can be dropped; not while the server stops. Nothing
  // else of this Response is sent. The connection holds no thread meanwhile.
  // REQUIRES: called at most once, from the handler.
  Deferred Defer(std::chrono::milliseconds timeout, std::function<void(Deferred)> on_timeout);
  bool deferred() const { return deferred_ != nullptr; }
  const std::shared_ptr<DeferredState>& deferred_state() const { return deferred_; }

  // Streams the body while the handler runs, for answers that come in
  // pieces (a language model's tokens, server-sent events). BeginStream
  // sends the status line and the headers set so far (status, headers,
  // content_type) with Transfer-Encoding: chunked; WriteChunk sends one
  // piece and returns once it is written, so a slow client slows the
  // producer (each piece within Limits::write_timeout_ms). Both return
  // false when the client is gone or too slow (stop producing), and
  // BeginStream also where nothing can stream (a HEAD request, a handler on
  // the I/O thread, after Defer): answer as usual then. The stream ends
  // when the handler returns; after BreakStream (the producer failed
  // midway) it is cut off instead, so the client sees it broken, not short.
  bool BeginStream();
  bool WriteChunk(std::string_view piece);
  void BreakStream() { stream_broken_ = true; }
  bool streaming() const { return streaming_; }
  bool stream_broken() const { return stream_broken_; }
  // The server's: where BeginStream and WriteChunk write (none: no streaming).
  void set_chunk_sink(std::shared_ptr<ChunkSink> sink) { sink_ = std::move(sink); }

 private:
  std::shared_ptr<DeferredState> deferred_;
  std::shared_ptr<ChunkSink> sink_;
  bool streaming_ = false, stream_broken_ = false;
};

// A response to send later (Response::Defer). Copyable; all copies name the
// same response. Thread-safe.
class Deferred {
 public:
  Deferred() = default;
  explicit Deferred(std::shared_ptr<DeferredState> state) : state_(std::move(state)) {}

  // Sends `response` (its own Defer, if any, is ignored). True if this call
  // answered; false when an earlier call did, the connection closed, or the
  // server stopped: the first call wins.
  bool Complete(Response response) const;
  // Whether Complete can still answer.
  bool open() const;
  const std::shared_ptr<DeferredState>& state() const { return state_; }

 private:
  std::shared_ptr<DeferredState> state_;
};

// A request the server answered, for metrics and logs. Labels are bounded:
// `method` is one of GET, POST, PUT, DELETE, PATCH, HEAD, OPTIONS or "other",
// `route` a route's label or "unmatched".
struct RequestRecord {
  std::string_view method;
  std::string_view route;
  int status = 0;
  double seconds = 0;  // from the request's last byte to its response's start
};

// `{"error": message, "code": code}`: the API's error format (docs/api.md).
std::string JsonError(std::string_view message, std::string_view code);

// RFC 3986 percent-decoding; with `plus_is_space` (query strings) "+" is a space.
std::string PercentDecode(std::string_view s, bool plus_is_space);
// Splits a request target into its decoded path and query parameters.
void ParseTarget(std::string_view target, std::string* path, std::multimap<std::string, std::string>* params);

}  // namespace icos::net

#endif  // ICOS_NET_HTTP_H_
