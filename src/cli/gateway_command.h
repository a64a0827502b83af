// `icos gateway`: the service gateway (gateway/gateway.h) as a process of
// its own, on any machine that reaches the controllers and the nodes
// (issue #22; docs/services.md, "A gateway of its own"). It asks the API
// where each service's requests go (GET /api/v1/routes/{service}) and
// reports what it forwarded every second (POST /api/v1/gateway/load), with
// a token of role gateway, which may do nothing else. Several may run side
// by side behind a load balancer: the autoscaler sums their reports.
#ifndef ICOS_CLI_GATEWAY_COMMAND_H_
#define ICOS_CLI_GATEWAY_COMMAND_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "controller/service_autoscale.h"
#include "protocol/http_client.h"

namespace CLI {
class App;
}

namespace icos::cli {

struct GatewayFlags {
  std::string server;  // the controllers' API, comma-separated (leader and standbys)
  std::string ca_cert;
  std::string token, token_file;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string tls_cert, tls_key;  // serve HTTPS; both or neither
  int threads = 32;               // requests forwarded at once
  double report_interval_s = 1;
  // Prometheus' /metrics (the icos_gateway_* families) on this port of
  // 127.0.0.1, or HOST:PORT; "" none.
  std::string metrics_listen;
};

CLI::App* AddGatewayCommand(CLI::App& app, GatewayFlags& flags);
int RunGateway(const GatewayFlags& flags, std::ostream& out, std::ostream& err);

// A service's route from GET /api/v1/routes/{service}'s reply.
absl::StatusOr<controller::ServiceRoute> ParseRoute(const nlohmann::json& reply);

}  // namespace icos::cli

#endif  // ICOS_CLI_GATEWAY_COMMAND_H_
