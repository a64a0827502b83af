#include "cli/service_command.h"

#include <CLI/CLI.hpp>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cli/client.h"

namespace icos::cli {
namespace {

using nlohmann::json;

bool Parsed(const CLI::App* app) { return app != nullptr && app->parsed(); }

int Endpoints(const json& r, bool ready_only, std::ostream& out) {
  const json& list = r["endpoints"];
  if (ready_only) {
    for (const auto& e : list) {
      if (e.value("ready", false)) out << e.value("address", "") << "\n";
    }
    return 0;
  }
  out << "service " << r["id"].get<int64_t>() << " (" << r["name"].get<std::string>() << "): " << r.value("ready", 0)
      << " of " << r.value("replicas", 0) << " replicas ready; revision " << r.value("revision", 0) << ", "
      << r.value("rollout", "") << "\n";
  out << absl::StrFormat("%-8s %-8s %-8s %-10s %-14s %-22s %-6s %-8s %s\n", "REPLICA", "JOB", "ATTEMPT", "STATE",
                         "NODE", "ADDRESS", "READY", "CURRENT", "REASON");
  for (const auto& e : list) {
    out << absl::StrFormat("%-8d %-8d %-8d %-10s %-14s %-22s %-6s %-8s %s\n", e.value("replica", 0),
                           e.value("job", int64_t{0}), e.value("attempt", 0), e.value("state", ""),
                           e.value("node", "-"), e.value("address", "").empty() ? "-" : e.value("address", ""),
                           e.value("ready", false) ? "yes" : "no", e.value("current", false) ? "yes" : "old",
                           e.value("reason", ""));
  }
  return 0;
}

int History(const json& r, std::ostream& out) {
  out << "service " << r["id"].get<int64_t>() << " (" << r["name"].get<std::string>() << "): " << r.value("replicas", 0)
      << " replicas of revision " << r.value("revision", 0) << ", " << r.value("rollout", "") << "\n";
  out << absl::StrFormat("%-9s %-20s %-10s %-12s %s\n", "REVISION", "CREATED", "BY", "OUTCOME", "CHANGE");
  for (const auto& v : r["revisions"]) {
    const int64_t ms = v.value("created_ms", int64_t{0});
    const std::string outcome = v.value("outcome", "");
    out << absl::StrFormat("%-9d %-20s %-10s %-12s %s\n", v.value("revision", 0),
                           absl::FormatTime("%Y-%m-%d %H:%M:%S", absl::FromUnixMillis(ms), absl::LocalTimeZone()),
                           v.value("created_by", ""),
                           outcome.empty() ? (v.value("revision", 0) == r.value("revision", 0) ? "current" : "-")
                                           : outcome.substr(0, outcome.find(':')),
                           v.value("change", "") + (outcome.find(':') != std::string::npos
                                                        ? absl::StrCat(" (", outcome.substr(outcome.find(':') + 2), ")")
                                                        : ""));
  }
  return 0;
}

}  // namespace

void AddServiceCommands(CLI::App& app, ServiceCommands& c,
                        const std::function<void(CLI::App*, bool json_output)>& common) {
  c.endpoints = app.add_subcommand("endpoints", "Show a service's replicas: where each serves and whether it is ready");
  c.endpoints->add_option("service", c.id, "The service's id (as `icos submit` printed it)")->required();
  c.endpoints->add_flag("--ready", c.ready_only, "Only the ready ones, one host:port a line (for scripts)");
  common(c.endpoints, true);

  c.service =
      app.add_subcommand("service", "A service's revisions: update (a rolling update), scale, history, rollback");
  c.service->require_subcommand(1);
  c.update = c.service->add_subcommand("update", "Roll a service's replicas over to a new spec, a few at a time");
  c.update->add_option("service", c.id, "The service's id")->required();
  c.update->add_option("file", c.file, "The new spec (YAML or JSON; '-' for stdin), with the same name")->required();
  c.update->add_option("--chdir", c.chdir, "Directory relative paths are resolved against (default: the file's)");
  c.scale = c.service->add_subcommand("scale", "Set how many replicas a service has (0 stops them all but keeps it)");
  c.scale->add_option("service", c.id, "The service's id")->required();
  c.scale->add_option("replicas", c.replicas, "How many")->required()->check(CLI::NonNegativeNumber);
  c.history = c.service->add_subcommand("history", "A service's revisions, how each came and how its rollout ended");
  c.history->add_option("service", c.id, "The service's id")->required();
  c.rollback = c.service->add_subcommand("rollback", "Roll a service back to an earlier revision (a new revision)");
  c.rollback->add_option("service", c.id, "The service's id")->required();
  c.rollback->add_option("--to", c.to, "The revision (default: the last that rolled out completely)");
  for (CLI::App* sub : {c.update, c.scale, c.history, c.rollback}) common(sub, true);
}

bool ServiceCommandParsed(const ServiceCommands& c) {
  return Parsed(c.endpoints) || Parsed(c.update) || Parsed(c.scale) || Parsed(c.history) || Parsed(c.rollback);
}

int RunServiceCommand(const ServiceCommands& c, ApiClient& api, bool as_json, std::ostream& out, std::ostream& err) {
  if (!ServiceCommandParsed(c)) return -1;
  auto fail = [&](const absl::Status& st) {
    err << "icos: " << st.message() << "\n";
    return st.code() == absl::StatusCode::kUnavailable ? 3 : 1;
  };
  int64_t id = 0;
  if (!absl::SimpleAtoi(c.id, &id) || id <= 0) {
    err << "icos: '" << c.id << "' is not a service id\n";
    return 2;
  }
  const std::string base = absl::StrCat("/api/v1/services/", id);
  absl::StatusOr<json> r;
  if (Parsed(c.endpoints)) {
    r = api.Json("GET", base + "/endpoints");
  } else if (Parsed(c.history)) {
    r = api.Json("GET", base);
  } else if (Parsed(c.scale)) {
    r = api.Json("POST", base + "/scale", json{{"replicas", c.replicas}}.dump(), "application/json");
  } else if (Parsed(c.rollback)) {
    r = api.Json("POST", base + "/rollback", c.to > 0 ? json{{"revision", c.to}}.dump() : "", "application/json");
  } else {
    auto text = ReadInput(c.file);
    if (!text.ok()) return fail(text.status());
    auto dir = SubmitBaseDir(c.file, c.chdir);
    if (!dir.ok()) return fail(dir.status());
    r = api.Json("POST", base + "/update", *text, "application/yaml", {{"X-Icos-Workdir", *dir}});
  }
  if (!r.ok()) return fail(r.status());
  if (as_json) {
    out << r->dump(2) << "\n";
    return 0;
  }
  if (Parsed(c.endpoints)) return Endpoints(*r, c.ready_only, out);
  if (Parsed(c.history)) return History(*r, out);
  if (Parsed(c.scale)) {
    out << "service " << id << ": " << c.replicas << " replicas (icos endpoints " << id << ")\n";
  } else {
    out << "service " << id << ": rolling out revision " << (*r)["revision"].get<int32_t>() << " (icos endpoints " << id
        << "; icos service history " << id << ")\n";
  }
  return 0;
}

}  // namespace icos::cli
