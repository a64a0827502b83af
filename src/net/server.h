// An asynchronous HTTP/1.1 server (Boost.Beast over Asio, optionally TLS)
// built so that no client can starve it:
//
//   - I/O runs on a few threads (ServerOptions::io_threads) and a connection
//     holds no thread while it connects, sends its request, idles or waits
//     for a deferred response (Response::Defer): slow or idle clients cost a
//     socket and a few kilobytes, not a worker.
//   - Every phase of a connection has a deadline: the TLS handshake and the
//     whole header section (Limits::header_timeout_ms, not per read: a
//     client trickling a byte every few seconds is cut off all the same), the
//     body, the keep-alive idle wait, each write.
//   - Header and body sizes are capped (431, 413 with a JSON error).
//   - Connections are capped per client address and in all; over a cap an
//     idle or slow connection is evicted rather than the new one refused
//     (connection_table.h explains the order). The process's open-file
//     limit is raised to its hard limit at Start.
//   - Handlers run on bounded worker pools, one per channel (e.g. users and
//     node agents), so one kind of client cannot take the threads another
//     needs; a full queue is answered at once with 503 and Retry-After.
//   - Requests no route matched are answered on the I/O thread (404), and
//     metrics labels are bounded (router.h), so no request creates a series.
//
// Thread-safety: Start and Stop from one thread; the rest is thread-safe.
#ifndef ICOS_NET_SERVER_H_
#define ICOS_NET_SERVER_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "net/http.h"
#include "net/router.h"

namespace icos::net {

struct Limits {
  // From a connection's accept (or a keep-alive request's first byte) to the
  // end of its header section, TLS handshake included. Legitimate clients
  // send a request in milliseconds; slowloris is cut off here.
  int64_t header_timeout_ms = 10'000;
  // The body, from the end of the header (1 MiB at 35 KB/s).
  int64_t body_timeout_ms = 30'000;
  // Keep-alive: how long a connection may wait for its next request.
  int64_t idle_timeout_ms = 30'000;
  // Writing one response (a client that does not read is cut off).
  int64_t write_timeout_ms = 30'000;
  // A deferred response whose on_timeout did not answer within this long
  // after its timeout is answered 504.
  int64_t deferred_grace_ms = 10'000;
  size_t max_header_bytes = 16 * 1024;  // request line + headers; more: 431
  size_t max_body_bytes = 1 << 20;      // more: 413
  // Open connections in all, and per client address (connection_table.h).
  // The total is also kept below the open-file limit (less a reserve for the
  // process's other files).
  size_t max_connections = 20'000;
  size_t max_connections_per_address = 512;
};

// A worker pool handlers run on.
struct ChannelOptions {
  std::string name;           // for metrics: "user", "agent", ...
  int threads = 4;            // >= 1
  size_t max_queued = 1'024;  // requests waiting for a thread; more are answered 503
};

struct ServerOptions {
  std::string host = "127.0.0.1";  // an address or a name to resolve
  int port = 0;                    // 0: pick a free port (Server::port())
  int listen_backlog = 1'024;      // connections the kernel queues before they are accepted
  int io_threads = 2;
  Limits limits;
  std::vector<ChannelOptions> channels = {{"default", 8, 1'024}};
  // TLS: both set, the listener speaks only TLS (1.2 or later) with this
  // certificate chain and private key (PEM files).
  std::string tls_cert_file, tls_key_file;
  // Which channel runs a request that matched `route` (default: the
  // route's). Runs on an I/O thread for every request: it must be quick and
  // must never block. Out-of-range answers mean the route's channel.
  std::function<int(const Request&, const Route&)> choose_channel;
  // Called (on an I/O thread) for every response the server starts to send.
  std::function<void(const RequestRecord&)> on_request;
  // Retry-After (seconds) on a 503 from a full queue.
  int retry_after_s = 1;
};

struct ServerStats {
  uint64_t open = 0;      // connections open now
  uint64_t accepted = 0;  // connections accepted since Start
  uint64_t evicted = 0;   // closed to make room for newer ones (per-address or global cap)
  uint64_t refused = 0;   // closed at once: over a cap with nothing evictable
  // Connections closed because a deadline passed, by phase.
  uint64_t header_timeouts = 0, body_timeouts = 0, idle_timeouts = 0, write_timeouts = 0;
  struct Channel {
    std::string name;
    uint64_t rejected = 0;  // requests answered 503 because the queue was full
    size_t queued = 0;      // waiting now
  };
  std::vector<Channel> channels;
};

class Server {
 public:
  // REQUIRES: at least one channel; every route's channel indexes one.
  Server(Router router, ServerOptions options);
  ~Server();  // Stop()
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds, listens and starts the I/O threads and pools. Fails if the
  // address is taken or the TLS files cannot be loaded.
  absl::Status Start();
  // Stops accepting, closes every connection (waiting deferred responses
  // included: their on_timeout does not run), lets handlers already running
  // finish, and joins all threads. Idempotent; does not hang on open
  // connections.
  void Stop();
  int port() const;
  ServerStats Stats() const;
  // Runs `task` on a channel's pool, queue bound or not (work owed to a
  // waiting client, such as answering deferred responses). Dropped once the
  // server stops. REQUIRES: started; channel indexes ServerOptions::channels.
  void Run(int channel, std::function<void()> task);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace icos::net

#endif  // ICOS_NET_SERVER_H_
