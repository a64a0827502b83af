#include "cli/service_command.h"

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace icos::cli {

void AddServiceCommands(CLI::App& app, ServiceCommands& c,
                        const std::function<void(CLI::App*, bool json_output)>& common) {
  c.endpoints = app.add_subcommand("endpoints", "Show a service's replicas: where each serves and whether it is ready");
  c.endpoints->add_option("service", c.service, "The service's id (as `icos submit` printed it)")->required();
  c.endpoints->add_flag("--ready", c.ready_only, "Only the ready ones, one host:port a line (for scripts)");
  common(c.endpoints, true);
}

int RunServiceCommand(const ServiceCommands& c, ApiClient& api, bool as_json, std::ostream& out, std::ostream& err) {
  if (c.endpoints == nullptr || !c.endpoints->parsed()) return -1;
  int64_t id = 0;
  if (!absl::SimpleAtoi(c.service, &id) || id <= 0) {
    err << "icos: endpoints: '" << c.service << "' is not a service id\n";
    return 2;
  }
  auto r = api.Json("GET", absl::StrCat("/api/v1/services/", id, "/endpoints"));
  if (!r.ok()) {
    err << "icos: " << r.status().message() << "\n";
    return r.status().code() == absl::StatusCode::kUnavailable ? 3 : 1;
  }
  if (as_json) {
    out << r->dump(2) << "\n";
    return 0;
  }
  const nlohmann::json& list = (*r)["endpoints"];
  if (c.ready_only) {
    for (const auto& e : list) {
      if (e.value("ready", false)) out << e.value("address", "") << "\n";
    }
    return 0;
  }
  out << "service " << (*r)["id"].get<int64_t>() << " (" << (*r)["name"].get<std::string>()
      << "): " << (*r)["ready"].get<int32_t>() << " of " << (*r)["replicas"].get<int32_t>() << " replicas ready\n";
  out << absl::StrFormat("%-8s %-8s %-8s %-10s %-14s %-22s %-6s %s\n", "REPLICA", "JOB", "ATTEMPT", "STATE", "NODE",
                         "ADDRESS", "READY", "REASON");
  for (const auto& e : list) {
    out << absl::StrFormat("%-8d %-8d %-8d %-10s %-14s %-22s %-6s %s\n", e.value("replica", 0), e.value("job", 0L),
                           e.value("attempt", 0), e.value("state", ""), e.value("node", "-"),
                           e.value("address", "").empty() ? "-" : e.value("address", ""),
                           e.value("ready", false) ? "yes" : "no", e.value("reason", ""));
  }
  return 0;
}

}  // namespace icos::cli
