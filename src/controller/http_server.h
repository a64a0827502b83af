// The REST API v1 over HTTP/JSON, documented in docs/api.md. One protocol
// for people, scripts, agents and the dashboard. Maps each route onto a
// Controller call and each absl::Status onto an HTTP status with a JSON body
// {"error": "...", "code": "InvalidArgument"}.
//
// Served by icos_net's asynchronous server (src/net/server.h): a connection
// holds no thread while it sends, idles or waits on an assignment watch, so
// slow or idle clients cannot starve the API. Handlers run on three pools:
//   user       users' API calls;
//   agent      node agents' register, heartbeat and watch, reserved so that
//              users cannot take the capacity agents need (and vice versa);
//   anonymous  any request whose bearer token has not yet been seen to
//              authenticate (none, a wrong one, a new one): a flood of them
//              fills this small pool's queue (503), never the other two.
// Assignment watches are deferred responses (assignment_watches.h).
//
// Thread-safety: Start/Stop from one thread; requests are served on pools.
#ifndef ICOS_CONTROLLER_HTTP_SERVER_H_
#define ICOS_CONTROLLER_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>

#include "absl/status/status.h"
#include "controller/controller.h"
#include "controller/metrics.h"
#include "net/server.h"

namespace icos::controller {

class AssignmentWatches;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 7070;  // 0: pick a free port (see port())
  // Worker threads and queue (requests waiting for a thread; more get 503)
  // of the user channel. Handlers block on the controller and the store (a
  // submission waits for its durable commit), so there are more threads than
  // cores; a waiting watch holds none.
  int threads = 32;
  size_t queue = 1'024;
  // The agent channel: registrations, heartbeats, watches.
  int agent_threads = 16;
  size_t agent_queue = 4'096;
  // The anonymous channel (see above).
  int anonymous_threads = 2;
  size_t anonymous_queue = 256;
  int io_threads = 2;
  // Longest an assignment watch may wait before answering "no change".
  int64_t max_watch_ms = 25'000;
  // At most this many watches wait at once; any more are answered at once
  // with "retry_ms": watch_retry_ms (the agent asks again after that long).
  // A waiting watch holds a connection, not a thread.
  int max_waiting_watches = 20'000;
  int64_t watch_retry_ms = 1'000;
  // Connections the kernel queues before the server accepts them.
  int listen_backlog = 1'024;
  // Deadlines, size limits and connection caps (net::Limits documents them;
  // max_body_bytes is the API's 1 MiB).
  net::Limits limits;
  // Serve HTTPS with this certificate chain and key (PEM); empty: HTTP.
  std::string tls_cert_file, tls_key_file;
  // Requests per second each token may make (bursts up to twice that); more
  // get 429. A flood from one client cannot starve the others. An agent
  // token is limited per node it speaks for (one token may serve them all).
  // 0: no limit.
  double requests_per_s_per_token = 5'000;
  // GET /metrics needs a bearer token (any role) when true. Off by default:
  // Prometheus scrapes without credentials unless configured, and the
  // metrics name nodes and queues but no users, jobs or secrets.
  bool metrics_require_auth = false;
  // Families of the same process served with the API's /metrics (the
  // service gateway's); called on each scrape, from a worker thread.
  std::function<void(metrics::ExpositionWriter&)> extra_metrics;
};

// Token buckets by key (one per API token). Thread-safe.
class RateLimiter {
 public:
  RateLimiter(double rate_per_s, double burst);
  // Takes one token from key's bucket; false when it is empty.
  bool Allow(const std::string& key);
  double rate() const { return rate_; }
  // Buckets held now (full ones are forgotten once there are kMaxKeys, in a
  // sweep at most once a second).
  size_t keys();

  static constexpr size_t kMaxKeys = 65'536;

 private:
  struct Bucket {
    double tokens = 0;
    double last = 0;  // seconds, steady clock
  };
  const double rate_, burst_;
  std::mutex mu_;
  std::map<std::string, Bucket> buckets_;
  double next_sweep_ = 0;  // steady-clock seconds; when buckets_ may be swept again
};

class HttpServer {
 public:
  HttpServer(Controller* controller, HttpServerOptions options);
  ~HttpServer();

  // Binds and serves on background threads. Fails if the address is taken.
  absl::Status Start();
  void Stop();
  int port() const;

  // The worker channels (net::ServerOptions::channels).
  enum Channel { kUser = 0, kAgent = 1, kAnonymous = 2 };

 private:
  net::Router Routes();
  // Writes the server's own gauges and counters (connections, queues).
  void RenderServerMetrics(metrics::ExpositionWriter& w) const;

  Controller* const controller_;
  const HttpServerOptions options_;
  std::unique_ptr<RateLimiter> limiter_;
  std::unique_ptr<AssignmentWatches> watches_;
  std::unique_ptr<net::Server> server_;
  // Hashes of tokens that have authenticated: requests carrying one run on
  // their route's channel, others on the anonymous one. Consulted on the I/O
  // threads, so it must not wait on the controller. Only a routing hint: the
  // handler authenticates every request, so a revoked token here costs a
  // 401 on the wrong pool at worst.
  mutable std::mutex seen_mu_;
  std::unordered_set<size_t> seen_tokens_;
  // API requests by route pattern (not raw path: bounded label values).
  metrics::CounterFamily requests_{"icos_http_requests_total",
                                   "API requests by method, route pattern and HTTP status.",
                                   {"method", "route", "code"}};
  metrics::HistogramFamily latency_{
      "icos_http_request_duration_seconds",
      "API request latency by method and route pattern (assignment watches wait up to 25 s).",
      {"method", "route"},
      metrics::HistogramFamily::LatencyBounds()};
};

// The rate limiter's key for a request by `who` to `path`: the token's name,
// and for an agent token "name@node" on /api/v1/nodes/{node}/... paths
// (heartbeats, watches).
std::string RateKey(const Principal& who, const std::string& path);

// The metrics label for a route pattern: regex groups become placeholders,
// e.g. "/api/v1/jobs/(\d+)/logs" -> "/api/v1/jobs/:id/logs".
std::string RouteLabel(const std::string& pattern);

// HTTP status for an absl::Status code.
int HttpStatusFor(const absl::Status& status);

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_HTTP_SERVER_H_
