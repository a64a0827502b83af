// Services' commands (issue #22; docs/services.md): `icos endpoints SERVICE`
// (each replica, where it serves, whether it is ready) and `icos service
// show|update|scale|history|rollback|pause|resume` (revisions and rolling updates).
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
  CLI::App* service = nullptr;  // the group: show, update, scale, history, rollback
  CLI::App *update = nullptr, *scale = nullptr, *history = nullptr, *rollback = nullptr, *pause = nullptr,
           *resume = nullptr;
  std::string id;    // the service's id (as `icos submit` printed it)
  std::string file;  // update: the new spec ("-": stdin)
  std::string chdir;
  int32_t replicas = -1;
  int32_t to = 0;  // rollback: the revision; 0: the last that rolled out
  bool ready_only = false;
};

// Adds the subcommands; `common` adds the connection flags (and -o when asked).
void AddServiceCommands(CLI::App& app, ServiceCommands& c,
                        const std::function<void(CLI::App*, bool json_output)>& common);
// Whether one of them was chosen.
bool ServiceCommandParsed(const ServiceCommands& c);
// Runs the one that was chosen (its exit code), or -1 when none was.
int RunServiceCommand(const ServiceCommands& c, ApiClient& api, bool as_json, std::ostream& out, std::ostream& err);

}  // namespace icos::cli

#endif  // ICOS_CLI_SERVICE_COMMAND_H_
