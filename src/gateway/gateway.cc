#include "gateway/gateway.h"

#include <httplib.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <thread>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace icos::gateway {
namespace {

// Headers that describe one hop's connection, not the message (RFC 9110
// 7.6.1), and those httplib writes itself.
bool HopByHop(const std::string& name) {
  const std::string n = absl::AsciiStrToLower(name);
  return n == "connection" || n == "keep-alive" || n == "proxy-connection" || n == "te" || n == "trailer" ||
         n == "transfer-encoding" || n == "upgrade" || n == "host" || n == "content-length" ||
         n == "proxy-authorization" || n == "proxy-authenticate";
}

// A replica's answer's headers, as the client gets them.
void CopyAnswerHeaders(const httplib::Response& from, net::Response& to) {
  to.headers.clear();
  for (const auto& [k, v] : from.headers) {
    if (HopByHop(k) || absl::EqualsIgnoreCase(k, "Content-Type")) continue;
    to.headers.emplace(k, v);
  }
  to.content_type = from.get_header_value("Content-Type");
}

// Safe to send again after a replica may have seen it (RFC 9110 9.2.2,
// less PUT and DELETE, whose repeat a careless server may not take well).
bool Idempotent(const std::string& method) { return method == "GET" || method == "HEAD" || method == "OPTIONS"; }

// A service as a URL segment names it: its id, or a name (a DNS label).
bool ServiceSegment(const std::string& s) {
  if (s.empty() || s.size() > 63) return false;
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-'; });
}

void Error(net::Response& res, int status, const std::string& message, const std::string& code) {
  res.status = status;
  res.Set(net::JsonError(message, code), "application/json");
}

}  // namespace

// One replica: its idle keep-alive connections and the requests in flight.
struct Gateway::Upstream {
  std::string address;  // host:port
  std::string host;
  int port = 0;
  std::atomic<int> in_flight{0};
  std::atomic<int64_t> ejected_until_ms{0};
  std::mutex mu;
  std::vector<std::unique_ptr<httplib::Client>> idle;  // guarded by mu

  std::unique_ptr<httplib::Client> Take(const GatewayOptions& o) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
    }
    auto c = std::make_unique<httplib::Client>(host, port);
    c->set_keep_alive(true);
    c->set_tcp_nodelay(true);
    c->set_url_encode(false);  // the target is forwarded as the client sent it
    c->set_decompress(false);  // and the answer as the replica sent it (its Content-Encoding kept)
    c->set_connection_timeout(std::chrono::milliseconds(o.connect_timeout_ms));
    c->set_read_timeout(std::chrono::milliseconds(o.read_timeout_ms));
    c->set_write_timeout(std::chrono::milliseconds(o.read_timeout_ms));
    return c;
  }
  void Give(std::unique_ptr<httplib::Client> c) {
    std::lock_guard<std::mutex> lock(mu);
    if (idle.size() < 64) idle.push_back(std::move(c));
  }
};

// One service's requests as the autoscaler reads them (ServiceLoad).
struct Gateway::Counted {
  std::atomic<uint64_t> requests{0};
  std::atomic<int32_t> in_flight{0};
  std::array<std::atomic<uint64_t>, controller::kLatencyBoundsMs.size() + 1> latency{};

  void Answered(double ms) {
    const auto* bound = std::lower_bound(controller::kLatencyBoundsMs.begin(), controller::kLatencyBoundsMs.end(), ms);
    ++latency[bound - controller::kLatencyBoundsMs.begin()];
    ++requests;
  }
};

Gateway::Gateway(GatewayOptions options, EndpointsFn endpoints, Clock* clock)
    : options_(std::move(options)),
      endpoints_(std::move(endpoints)),
      clock_(clock),
      latency_(
          "icos_gateway_request_seconds",
          "From a request's arrival at the gateway to its answer, replicas' time included, by service.", {"service"},
          {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}) {}

Gateway::~Gateway() { Stop(); }

absl::Status Gateway::Start() {
  net::Router router;
  for (const char* method : {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
    router.Add(method, "/.*", [this](const net::Request& req, net::Response& res) { Handle(req, res); },
               {.label = "/:service/*"});
  }
  net::ServerOptions o;
  o.host = options_.host;
  o.port = options_.port;
  o.io_threads = options_.io_threads;
  o.limits = options_.limits;
  o.channels = {{"gateway", options_.threads, options_.queue}};
  o.tls_cert_file = options_.tls_cert_file;
  o.tls_key_file = options_.tls_key_file;
  server_ = std::make_unique<net::Server>(std::move(router), o);
  return server_->Start();
}

void Gateway::Stop() {
  if (server_) server_->Stop();
}

int Gateway::port() const { return server_ ? server_->port() : 0; }

absl::StatusOr<controller::ServiceRoute> Gateway::ReadyOf(const std::string& service, bool fresh) {
  const int64_t now = clock_->NowMs();
  if (!fresh) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = cache_.find(service);
    if (it != cache_.end() && now - it->second.fetched_ms < options_.endpoints_ttl_ms) return it->second.ready;
  }
  absl::StatusOr<controller::ServiceRoute> ready = endpoints_(service);
  std::lock_guard<std::mutex> lock(mu_);
  // Bounded: a name asked for that no service has is kept only briefly.
  if (cache_.size() > 4'096) {
    std::erase_if(cache_, [&](const auto& e) { return now - std::max(e.second.fetched_ms, e.second.good_ms) > 1'000; });
  }
  Cached& c = cache_[service];
  c.fetched_ms = now;
  if (ready.ok()) {
    c.good = *ready;
    c.good_ms = now;
  } else if (const absl::StatusCode code = ready.status().code();
             (code == absl::StatusCode::kUnavailable || code == absl::StatusCode::kDeadlineExceeded) && c.good &&
             now - c.good_ms < options_.stale_route_ms) {
    ready = *c.good;  // the control plane is away: keep serving where it last said
  }
  c.ready = ready;
  return ready;
}

absl::StatusOr<controller::ServiceRoute> Gateway::AwaitReplica(const std::string& service,
                                                               controller::ServiceRoute route) {
  const int64_t deadline = clock_->NowMs() + route.cold_start_ms;
  while (route.ready.empty() && clock_->NowMs() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    absl::StatusOr<controller::ServiceRoute> again = ReadyOf(service, /*fresh=*/true);
    if (!again.ok()) return again;
    route = *std::move(again);
  }
  return route;
}

std::shared_ptr<Gateway::Counted> Gateway::CountedOf(int64_t id) {
  std::lock_guard<std::mutex> lock(counted_mu_);
  std::shared_ptr<Counted>& c = counted_[id];
  if (!c) c = std::make_shared<Counted>();
  return c;
}

controller::ServiceLoad Gateway::LoadOf(int64_t id) const {
  controller::ServiceLoad load;
  std::lock_guard<std::mutex> lock(counted_mu_);
  auto it = counted_.find(id);
  if (it == counted_.end()) return load;
  const Counted& c = *it->second;
  load.requests = c.requests.load();
  load.in_flight = c.in_flight.load();
  for (size_t i = 0; i < load.latency.size(); ++i) load.latency[i] = c.latency[i].load();
  return load;
}

std::map<int64_t, controller::ServiceLoad> Gateway::Loads() const {
  std::vector<int64_t> ids;
  {
    std::lock_guard<std::mutex> lock(counted_mu_);
    for (const auto& [id, c] : counted_) ids.push_back(id);
  }
  std::map<int64_t, controller::ServiceLoad> out;
  for (int64_t id : ids) out[id] = LoadOf(id);
  return out;
}

std::shared_ptr<Gateway::Upstream> Gateway::Pick(const std::vector<std::string>& ready,
                                                 const std::vector<std::string>& tried, bool ejected_too) {
  const int64_t now = clock_->NowMs();
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<Upstream> best;
  const size_t n = ready.size();
  const size_t start = n == 0 ? 0 : turn_++ % n;
  for (size_t k = 0; k < n; ++k) {
    const std::string& address = ready[(start + k) % n];
    if (std::find(tried.begin(), tried.end(), address) != tried.end()) continue;
    std::shared_ptr<Upstream>& u = upstreams_[address];
    if (!u) {
      u = std::make_shared<Upstream>();
      u->address = address;
      const size_t colon = address.rfind(':');
      u->host = address.substr(0, colon);
      if (u->host.size() > 2 && u->host.front() == '[') u->host = u->host.substr(1, u->host.size() - 2);
      if (!absl::SimpleAtoi(address.substr(colon + 1), &u->port)) continue;
    }
    if (!ejected_too && u->ejected_until_ms.load() > now) continue;
    if (!best || u->in_flight.load() < best->in_flight.load()) best = u;
  }
  return best;
}

void Gateway::Handle(const net::Request& req, net::Response& res) {
  const auto started = std::chrono::steady_clock::now();
  // /<service>/<rest>: the target's first segment names the service; the
  // rest (query included) goes to the replica as the client wrote it.
  const std::string& target = req.target;
  const size_t slash = target.find_first_of("/?", 1);
  const std::string service = target.substr(1, slash == std::string::npos ? std::string::npos : slash - 1);
  std::string rest = slash == std::string::npos ? "/" : target.substr(slash);
  if (!rest.empty() && rest[0] == '?') rest = "/" + rest;
  std::string label = "unknown";
  auto done = [&] {
    requests_.Inc({label, absl::StrCat(res.status)});
    latency_.Observe({label}, std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  };
  if (!ServiceSegment(service)) {
    Error(res, 404, "the gateway serves /<service>/...: a service's id or name first", "NotFound");
    return done();
  }
  absl::StatusOr<controller::ServiceRoute> route = ReadyOf(service);
  if (!route.ok()) {
    const absl::StatusCode code = route.status().code();
    if (code == absl::StatusCode::kNotFound) {
      Error(res, 404, std::string(route.status().message()), "NotFound");
    } else if (code == absl::StatusCode::kFailedPrecondition) {  // a name several services have
      Error(res, 409, std::string(route.status().message()), "Conflict");
    } else {  // the control plane away, or refusing this gateway (a revoked token)
      res.SetHeader("Retry-After", "1");
      Error(res, 503, absl::StrCat("the gateway cannot tell where ", service, " runs: ", route.status().message()),
            "Unavailable");
    }
    return done();
  }
  // Counted from here to the answer: in flight (the autoscaler's
  // concurrency, and a service at zero's wake-up call), then answered.
  std::shared_ptr<Counted> counted = CountedOf(route->id);
  ++counted->in_flight;
  struct Uncount {
    Counted& c;
    std::chrono::steady_clock::time_point started;
    ~Uncount() {
      --c.in_flight;
      c.Answered(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());
    }
  } uncount{*counted, started};
  bool waited = false;
  if (route->ready.empty() && route->cold_start_ms > 0) {
    route = AwaitReplica(service, *std::move(route));
    if (!route.ok()) {
      Error(res, 503, std::string(route.status().message()), "Unavailable");
      return done();
    }
    waited = true;
  }
  const std::vector<std::string>* ready = &route->ready;
  label = service;
  httplib::Request up;
  up.method = req.method;
  up.path = rest;
  up.body = req.body;
  for (const auto& [k, v] : req.headers) {
    if (!HopByHop(k)) up.headers.emplace(k, v);
  }
  const std::string forwarded = req.header("X-Forwarded-For");
  up.headers.erase("X-Forwarded-For");
  up.headers.emplace("X-Forwarded-For", forwarded.empty() ? req.peer : absl::StrCat(forwarded, ", ", req.peer));
  std::vector<std::string> tried;
  std::string last_error = absl::StrCat(
      "service ", service, " has no ready replica",
      waited
          ? absl::StrCat(": none became ready within ", route->cold_start_ms / 1000, "s of the request (a cold start)")
          : "");
  for (int attempt = 0; attempt < options_.max_attempts; ++attempt) {
    std::shared_ptr<Upstream> u = Pick(*ready, tried, false);
    // Every ready replica skipped after a failure: try them anyway rather
    // than answer for none (a blip on all of them must not become a 3 s
    // outage; Envoy's panic threshold).
    if (!u && tried.empty()) u = Pick(*ready, tried, true);
    if (!u) break;
    if (attempt > 0) retries_.Inc({label});
    tried.push_back(u->address);
    ++u->in_flight;
    std::unique_ptr<httplib::Client> client = u->Take(options_);
    httplib::Response got;
    httplib::Error error = httplib::Error::Success;
    // An answer of unknown length (chunked: a model's tokens, server-sent
    // events) goes on to the client piece by piece as it comes; one with a
    // Content-Length is read whole first (and may then be retried).
    bool streamed = false, client_gone = false;
    std::string body;
    up.response_handler = [&](const httplib::Response& head) {
      if (head.has_header("Content-Length") || head.status < 200 || head.status == 204 || head.status == 304) {
        return true;
      }
      res.status = head.status;
      CopyAnswerHeaders(head, res);
      streamed = res.BeginStream();  // false where it cannot stream: read whole
      return true;
    };
    up.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
      if (!streamed) {
        body.append(data, n);
        return true;
      }
      client_gone = !res.WriteChunk(std::string_view(data, n));
      return !client_gone;
    };
    const bool sent = client->send(up, got, error);
    --u->in_flight;
    if (streamed) {
      // Its status is sent: no other replica can answer it now.
      if (sent) {
        u->Give(std::move(client));
      } else {
        res.BreakStream();  // the client sees a broken answer, not a short one
        if (!client_gone) u->ejected_until_ms = clock_->NowMs() + options_.eject_ms;
      }
      return done();
    }
    got.body = std::move(body);
    if (!sent) {
      // Refused or dropped: skip it until its probe has had time to tell.
      u->ejected_until_ms = clock_->NowMs() + options_.eject_ms;
      last_error = absl::StrCat("replica ", u->address, ": ", httplib::to_string(error));
      // A refused connect reached nothing: any method may go elsewhere.
      if (error == httplib::Error::Connection || Idempotent(req.method)) continue;
      break;
    }
    u->Give(std::move(client));
    if (Idempotent(req.method) && (got.status == 502 || got.status == 503 || got.status == 504) &&
        attempt + 1 < options_.max_attempts && static_cast<size_t>(attempt + 1) < ready->size()) {
      last_error = absl::StrCat("replica ", u->address, " answered ", got.status);
      continue;
    }
    res.status = got.status;
    CopyAnswerHeaders(got, res);
    res.Set(std::move(got.body), got.get_header_value("Content-Type"));
    return done();
  }
  res.headers.clear();  // none of a failed replica's
  res.SetHeader("Retry-After", "1");
  Error(res, ready->empty() ? 503 : 502, last_error, ready->empty() ? "Unavailable" : "BadGateway");
  done();
}

void Gateway::RenderMetrics(controller::metrics::ExpositionWriter& w) const {
  requests_.Render(w);
  retries_.Render(w);
  latency_.Render(w);
}

}  // namespace icos::gateway
