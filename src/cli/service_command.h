// `icos endpoints SERVICE`: a service's replicas, where each serves and
// whether it is ready for traffic (issue #22; docs/services.md).
#ifndef ICOS_CLI_SERVICE_COMMAND_H_
#define ICOS_CLI_SERVICE_COMMAND_H_

#include <functional>
#include <ostream>
#include <string>

#include "protocol/http_client.h"

namespace CLI {
class App;
}

namespace icos::cli {

struct ServiceCommands {
  CLI::App* endpoints = nullptr;
  std::string service;  // its id (any replica's id names it too)
  bool ready_only = false;
};

// Adds the subcommands; `common` adds the connection flags (and -o when asked).
void AddServiceCommands(CLI::App& app, ServiceCommands& c,
                        const std::function<void(CLI::App*, bool json_output)>& common);
// Runs the one that was chosen (its exit code), or -1 when none was.
int RunServiceCommand(const ServiceCommands& c, ApiClient& api, bool as_json, std::ostream& out, std::ostream& err);

}  // namespace icos::cli

#endif  // ICOS_CLI_SERVICE_COMMAND_H_
