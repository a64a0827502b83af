// The REST API v1 over HTTP/JSON (cpp-httplib), documented in docs/api.md.
// One protocol for people, scripts, agents and the dashboard. Maps each route
// onto a Controller call and each absl::Status onto an HTTP status with a JSON
// body {"error": "...", "code": "InvalidArgument"}.
//
// Thread-safety: Start/Stop from one thread; requests are served on a pool.
#ifndef ICOS_CONTROLLER_HTTP_SERVER_H_
#define ICOS_CONTROLLER_HTTP_SERVER_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "controller/controller.h"
#include "controller/metrics.h"

namespace httplib {
class Server;
}

namespace icos::controller {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 7070;  // 0: pick a free port (see port())
  size_t max_body_bytes = 1 << 20;
  // Worker threads. Agents' assignment watches each hold one while they wait.
  int threads = 64;
  // Longest an assignment watch may wait before answering "no change".
  int64_t max_watch_ms = 25'000;
  // At most this many watches wait at once (half the threads); any more are
  // answered at once with "retry_ms": watch_retry_ms, and the agent asks
  // again after that long.
  int max_waiting_watches = 32;
  int64_t watch_retry_ms = 1'000;
  // Connections the kernel queues before the server accepts them (the
  // library's own 5 overflows when hundreds of agents connect at once).
  int listen_backlog = 1'024;
  // Requests per second each token may make (bursts up to twice that); more
  // get 429. A flood from one client cannot starve the others. An agent
  // token is limited per node it speaks for (one token may serve them all).
  // 0: no limit.
  double requests_per_s_per_token = 5'000;
  // GET /metrics needs a bearer token (any role) when true. Off by default:
  // Prometheus scrapes without credentials unless configured, and the
  // metrics name nodes and queues but no users, jobs or secrets.
  bool metrics_require_auth = false;
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

  // Binds and serves in a background thread. Fails if the address is taken.
  absl::Status Start();
  void Stop();
  int port() const { return port_; }

 private:
  void Routes();

  Controller* const controller_;
  const HttpServerOptions options_;
  std::unique_ptr<httplib::Server> server_;
  std::unique_ptr<RateLimiter> limiter_;
  std::atomic<int> waiting_watches_{0};  // assignment watches waiting now
  int listen_socket_ = -1;               // set while binding
  std::thread thread_;
  int port_ = 0;
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
