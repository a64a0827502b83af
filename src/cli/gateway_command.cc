#include "cli/gateway_command.h"

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cli/up.h"
#include "common/clock.h"
#include "common/log.h"
#include "gateway/gateway.h"
#include "net/net_util.h"
#include "net/router.h"
#include "net/server.h"

namespace icos::cli {
namespace {

using nlohmann::json;

// API clients for the gateway's threads: one per request at a time
// (an ApiClient is not shared between threads), kept for reuse.
class ClientPool {
 public:
  ClientPool(std::string server, std::string token, ApiClientOptions options)
      : server_(std::move(server)), token_(std::move(token)), options_(std::move(options)) {}

  template <typename F>
  auto With(F&& f) {
    std::unique_ptr<ApiClient> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!idle_.empty()) {
        c = std::move(idle_.back());
        idle_.pop_back();
      }
    }
    if (!c) c = std::make_unique<ApiClient>(server_, token_, options_);
    auto result = f(*c);
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < 16) idle_.push_back(std::move(c));
    return result;
  }

 private:
  const std::string server_, token_;
  const ApiClientOptions options_;
  std::mutex mu_;
  std::vector<std::unique_ptr<ApiClient>> idle_;
};

std::string LoadsBody(const std::string& instance, const std::map<int64_t, controller::ServiceLoad>& loads) {
  json services = json::array();
  for (const auto& [id, l] : loads) {
    services.push_back({{"id", id},
                        {"requests", l.requests},
                        {"in_flight", std::max(0, l.in_flight)},
                        {"latency", std::vector<uint64_t>(l.latency.begin(), l.latency.end())}});
  }
  return json{{"instance", instance}, {"services", services}}.dump();
}

}  // namespace

absl::StatusOr<controller::ServiceRoute> ParseRoute(const json& reply) {
  if (!reply.is_object() || !reply.contains("id") || !reply["id"].is_number_integer() || !reply.contains("ready") ||
      !reply["ready"].is_array()) {
    return absl::InternalError("the controller's route reply lacks id or ready");
  }
  controller::ServiceRoute route;
  route.id = reply["id"].get<int64_t>();
  for (const json& a : reply["ready"]) {
    if (!a.is_string()) return absl::InternalError("the controller's route reply has a non-string address");
    route.ready.push_back(a.get<std::string>());
  }
  route.cold_start_ms = reply.value("cold_start_ms", int64_t{0});
  return route;
}

CLI::App* AddGatewayCommand(CLI::App& app, GatewayFlags& flags) {
  CLI::App* cmd = app.add_subcommand(
      "gateway",
      "Run the service gateway on its own (on any machine): /<service>/... goes to a ready replica; needs a token "
      "of role gateway (icos token create --role gateway)");
  cmd->add_option("--server", flags.server,
                  "controller API, e.g. https://10.0.0.1:7070; with standbys, all of them, comma-separated")
      ->required();
  cmd->add_option("--ca-cert", flags.ca_cert, "CA certificate (PEM) an https:// controller's certificate chains to");
  CLI::Option* token = cmd->add_option("--token", flags.token, "a gateway token");
  cmd->add_option("--token-file", flags.token_file, "file whose first line is the gateway token (keeps it out of ps)")
      ->check(CLI::ExistingFile)
      ->excludes(token);
  cmd->add_option("--host", flags.host, "address to listen on (0.0.0.0: every address)");
  cmd->add_option("--port", flags.port, "port to listen on")->check(CLI::Range(1, 65535));
  CLI::Option* cert =
      cmd->add_option("--tls-cert", flags.tls_cert, "serve HTTPS with this certificate chain (PEM); with --tls-key")
          ->check(CLI::ExistingFile);
  CLI::Option* key =
      cmd->add_option("--tls-key", flags.tls_key, "the certificate's private key (PEM)")->check(CLI::ExistingFile);
  cert->needs(key);
  key->needs(cert);
  cmd->add_option("--threads", flags.threads, "requests forwarded at once (more wait; past 4,096 waiting: 503)")
      ->check(CLI::Range(1, 4'096));
  cmd->add_option("--metrics", flags.metrics_listen,
                  "serve Prometheus metrics (icos_gateway_*) at http://HOST:PORT/metrics: PORT alone for 127.0.0.1");
  cmd->add_option("--report-interval", flags.report_interval_s,
                  "seconds between reports of the load it forwarded (the autoscaler's input; a gateway silent for "
                  "3 s no longer counts)")
      ->check(CLI::Range(0.1, 1.0));
  return cmd;
}

int RunGateway(const GatewayFlags& flags, std::ostream& out, std::ostream& err) {
  const std::string token = flags.token_file.empty() ? flags.token : ReadTokenFile(flags.token_file);
  if (token.empty()) {
    err << "icos gateway: --token or --token-file is required (a token of role gateway: icos token create --role "
           "gateway)\n";
    return 2;
  }
  if (!flags.ca_cert.empty() && !absl::StrContains(absl::AsciiStrToLower(flags.server), "https://")) {
    err << "icos gateway: --ca-cert is given but --server " << flags.server << " is plain http://\n";
    return 2;
  }
  // A request waiting for its route waits on the controller: not for long.
  ApiClientOptions api;
  api.timeout_ms = 2'000;
  api.ca_cert_file = flags.ca_cert;
  api.max_reply_bytes = 16 << 20;
  ClientPool clients(flags.server, token, api);

  // The token must be a gateway's: an empty report says so at once (a
  // controller that is down only delays the first report).
  const std::string instance = NewIdempotencyKey();
  absl::StatusOr<json> first =
      clients.With([&](ApiClient& c) { return c.Json("POST", "/api/v1/gateway/load", LoadsBody(instance, {})); });
  if (!first.ok() && first.status().code() != absl::StatusCode::kUnavailable) {
    err << "icos gateway: " << first.status().message() << "\n";
    return 1;
  }
  if (!first.ok()) err << "icos gateway: " << first.status().message() << "; serving once it answers\n";

  gateway::GatewayOptions o;
  o.host = flags.host;
  o.port = flags.port;
  o.threads = flags.threads;
  o.tls_cert_file = flags.tls_cert;
  o.tls_key_file = flags.tls_key;
  gateway::Gateway gw(
      o,
      [&clients](const std::string& service) -> absl::StatusOr<controller::ServiceRoute> {
        absl::StatusOr<json> reply =
            clients.With([&](ApiClient& c) { return c.Json("GET", absl::StrCat("/api/v1/routes/", service)); });
        if (!reply.ok()) return reply.status();
        return ParseRoute(*reply);
      },
      RealClock::Default());
  if (absl::Status st = gw.Start(); !st.ok()) {
    err << "icos gateway: cannot listen on " << flags.host << ":" << flags.port << ": " << st.message() << "\n";
    return 1;
  }
  // Metrics on a listener of their own: the gateway's port routes every
  // path to services.
  std::unique_ptr<net::Server> metrics;
  if (!flags.metrics_listen.empty()) {
    // PORT alone is on 127.0.0.1.
    const bool port_only = absl::c_all_of(flags.metrics_listen, absl::ascii_isdigit);
    absl::StatusOr<net::HostPort> at =
        net::ParseHostPort(port_only ? absl::StrCat("127.0.0.1:", flags.metrics_listen) : flags.metrics_listen);
    if (!at.ok() || at->host.empty() || at->port == 0) {
      err << "icos gateway: --metrics " << flags.metrics_listen << ": expected PORT or HOST:PORT\n";
      return 2;
    }
    net::ServerOptions mo;
    mo.host = at->host;
    mo.port = at->port;
    mo.channels = {{"metrics", 1, 16}};
    net::Router router;
    router.Get("/metrics", [&gw](const net::Request&, net::Response& res) {
      controller::metrics::ExpositionWriter w;
      gw.RenderMetrics(w);
      res.Set(w.text(), "text/plain; version=0.0.4");
    });
    metrics = std::make_unique<net::Server>(std::move(router), mo);
    if (absl::Status st = metrics->Start(); !st.ok()) {
      err << "icos gateway: metrics on " << flags.metrics_listen << ": " << st.message() << "\n";
      return 1;
    }
  }
  out << "icos gateway is up: " << (flags.tls_cert.empty() ? "http" : "https") << "://" << flags.host << ":"
      << gw.port() << "/<service>/... (routes from " << flags.server << ")\n"
      << std::flush;

  CatchStopSignals();
  const auto interval_ms = static_cast<int64_t>(flags.report_interval_s * 1000);
  bool failing = false;
  while (SleepUnlessStopped(interval_ms)) {
    absl::StatusOr<json> sent = clients.With(
        [&](ApiClient& c) { return c.Json("POST", "/api/v1/gateway/load", LoadsBody(instance, gw.Loads())); });
    // Said once per outage, not every second.
    if (!sent.ok() && !failing) log::Failure("report load", sent.status());
    if (sent.ok() && failing) spdlog::info("msg=\"load reports reach the controller again\"");
    failing = !sent.ok();
  }
  if (metrics) metrics->Stop();
  gw.Stop();
  return 0;
}

}  // namespace icos::cli
