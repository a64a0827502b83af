// The service gateway (issue #22; docs/services.md, "Gateway"): one HTTP
// listener in front of every service. A request for /<service>/<path> goes
// to one of that service's ready replicas as <path>, the one with the
// fewest requests in flight (ties taken in turn), and its answer comes back.
//
// A replica that refuses a connection or drops one is skipped for a while
// (before its readiness probe notices), and the request is sent to another
// replica when that is safe: always when no byte reached the dead one (a
// refused connect), and for idempotent methods (GET, HEAD, OPTIONS) also
// when it died mid-request or answered 502/503/504. So a replica killed
// under load costs idempotent clients nothing.
//
// A service that autoscales from zero has its requests held while a
// replica starts (a cold start), and the gateway counts each service's
// requests, those in flight and their latency for the autoscaler.
//
// <service> is a service's id or, when one running service has it, its
// name. The gateway serves anyone who can reach its port, as an ingress
// does: what it exposes is what services' owners chose to serve. It never
// reaches anything but ready replicas' booked ports.
//
// Thread-safety: Start and Stop from one thread; the rest is thread-safe.
#ifndef ICOS_GATEWAY_GATEWAY_H_
#define ICOS_GATEWAY_GATEWAY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/clock.h"
#include "controller/metrics.h"
#include "controller/service_autoscale.h"
#include "net/http.h"
#include "net/server.h"

namespace icos::gateway {

// The ready replicas (host:port) of `service`, and its id; NotFound when
// no such service runs, another error when it cannot be told which.
using EndpointsFn = std::function<absl::StatusOr<controller::ServiceRoute>(const std::string& service)>;

struct GatewayOptions {
  std::string host = "127.0.0.1";
  int port = 0;  // 0: a free one (Gateway::port())
  int io_threads = 2;
  // Requests being forwarded at once (each holds a thread while it waits
  // for its replica), and waiting for one; more are answered 503.
  int threads = 32;
  size_t queue = 4'096;
  // Request bodies up to 64 MiB (a batch of inputs); the rest as the API's.
  net::Limits limits = [] {
    net::Limits l;
    l.max_body_bytes = 64 << 20;
    return l;
  }();
  // How long a service's list of ready replicas is reused before it is
  // asked for again (readiness changes reach the gateway this late).
  int64_t endpoints_ttl_ms = 200;
  // While the source cannot be reached (Unavailable or DeadlineExceeded:
  // a standalone gateway's controller restarting or failing over), a
  // service's last known replicas are used for up to this long: serving
  // does not stop with the control plane.
  int64_t stale_route_ms = 300'000;
  // TLS: both set, the listener speaks only HTTPS with this certificate
  // chain and key (PEM), as the API's.
  std::string tls_cert_file, tls_key_file;
  // Connecting to a replica, and waiting for each read of its answer.
  int64_t connect_timeout_ms = 2'000;
  int64_t read_timeout_ms = 60'000;
  // A request is sent to at most this many replicas.
  int max_attempts = 3;
  // A replica that refused or dropped a connection is skipped this long.
  int64_t eject_ms = 3'000;
};

class Gateway {
 public:
  Gateway(GatewayOptions options, EndpointsFn endpoints, Clock* clock);
  ~Gateway();

  absl::Status Start();
  void Stop();
  int port() const;

  // icos_gateway_* families (docs/metrics.md), for the API's /metrics.
  void RenderMetrics(controller::metrics::ExpositionWriter& w) const;
  // What it saw of service `id` so far (the autoscaler's input).
  controller::ServiceLoad LoadOf(int64_t id) const;
  // ... of every service it has forwarded to, by id (what a standalone
  // gateway reports to the controller).
  std::map<int64_t, controller::ServiceLoad> Loads() const;

  struct Upstream;  // gateway.cc: one replica's connections and load
  struct Counted;   // gateway.cc: one service's requests, in flight and latency

 private:
  void Handle(const net::Request& req, net::Response& res);
  // The ready replicas of `service`, from the cache or asked anew
  // (`fresh`: asked anew).
  absl::StatusOr<controller::ServiceRoute> ReadyOf(const std::string& service, bool fresh = false);
  // Holds a request for a service at zero until a replica is ready or its
  // cold start times out; the route then (ready empty: none came).
  absl::StatusOr<controller::ServiceRoute> AwaitReplica(const std::string& service, controller::ServiceRoute route);
  std::shared_ptr<Counted> CountedOf(int64_t id);
  // The replica to try next among `ready`, skipping `tried` and (unless
  // `ejected_too`) those skipped after a failure; nullptr when none is left.
  std::shared_ptr<Upstream> Pick(const std::vector<std::string>& ready, const std::vector<std::string>& tried,
                                 bool ejected_too);

  const GatewayOptions options_;
  const EndpointsFn endpoints_;
  Clock* const clock_;
  std::unique_ptr<net::Server> server_;

  struct Cached {
    absl::StatusOr<controller::ServiceRoute> ready;  // the last answer, or the last good one when stale
    int64_t fetched_ms = 0;
    std::optional<controller::ServiceRoute> good;  // the last route the source gave
    int64_t good_ms = 0;
  };
  std::mutex mu_;
  std::map<std::string, Cached> cache_;                         // by service as requested; guarded by mu_
  std::map<std::string, std::shared_ptr<Upstream>> upstreams_;  // by host:port; guarded by mu_
  uint64_t turn_ = 0;                                           // tie-breaks in turn; guarded by mu_
  mutable std::mutex counted_mu_;
  std::map<int64_t, std::shared_ptr<Counted>> counted_;  // by service id; guarded by counted_mu_

  controller::metrics::CounterFamily requests_{
      "icos_gateway_requests_total", "Requests the gateway answered, by service and status code.", {"service", "code"}};
  controller::metrics::CounterFamily retries_{
      "icos_gateway_retries_total", "Requests sent to another replica after one failed them.", {"service"}};
  controller::metrics::HistogramFamily latency_;
};

}  // namespace icos::gateway

#endif  // ICOS_GATEWAY_GATEWAY_H_
