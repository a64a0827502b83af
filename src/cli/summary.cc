#include "cli/summary.h"

#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace icos::cli {

using nlohmann::json;

std::string ClusterSummary(const json& nodes, const json& queues) {
  struct Count {
    int64_t total = 0;
    double used = 0, free = 0;
    int64_t out = 0;
  };
  std::map<std::string, Count> by_type;
  int64_t ready = 0, not_ready = 0, drained = 0, unhealthy = 0;
  for (const json& n : nodes.value("nodes", json::array())) {
    const bool is_ready = n.value("state", "") == "Ready";
    const bool node_drained = n.value("drained", false);
    const bool node_unhealthy = !n.value("unhealthy_reason", "").empty();
    ready += is_ready ? 1 : 0;
    not_ready += is_ready ? 0 : 1;
    drained += node_drained ? 1 : 0;
    unhealthy += node_unhealthy ? 1 : 0;
    std::map<int64_t, double> held;  // device index -> share held
    for (const json& a : n.value("allocations", json::array())) {
      held[a.value("device", int64_t{-1})] += a.value("percent", 100) / 100.0;
    }
    const json devices = n.value("node", json::object()).value("devices", json::array());
    for (size_t i = 0; i < devices.size(); ++i) {
      const json& d = devices[i];
      Count& c = by_type[absl::StrCat(d.value("vendor", ""), "/", d.value("model", ""))];
      ++c.total;
      const double h = std::min(1.0, held[static_cast<int64_t>(i)]);
      c.used += h;
      const bool in_service =
          is_ready && !node_drained && !node_unhealthy && d.value("healthy", true) && !d.value("drained", false);
      if (in_service) {
        c.free += 1.0 - h;
      } else {
        ++c.out;
      }
    }
  }
  std::string out = absl::StrFormat("%-24s %6s %7s %7s %4s\n", "DEVICES", "TOTAL", "IN_USE", "FREE", "OUT");
  for (const auto& [type, c] : by_type) {
    absl::StrAppendFormat(&out, "%-24s %6d %7.2f %7.2f %4d\n", type, c.total, c.used, c.free, c.out);
  }
  if (by_type.empty()) out += "(no devices)\n";
  absl::StrAppendFormat(&out, "\nnodes: %d ready, %d not ready, %d drained, %d unhealthy\n\n", ready, not_ready,
                        drained, unhealthy);
  absl::StrAppendFormat(&out, "%-16s %8s %8s  %s\n", "QUEUE", "PENDING", "RUNNING", "HOLDS");
  for (const json& q : queues.value("queues", json::array())) {
    std::vector<std::string> holds;
    const json used = q.value("used", json::object());  // items() must not outlive it
    for (const auto& [k, v] : used.items()) holds.push_back(absl::StrCat(k, "=", v.dump()));
    absl::StrAppendFormat(&out, "%-16s %8d %8d  %s\n", q.value("name", ""), q.value("pending", int64_t{0}),
                          q.value("running", int64_t{0}), holds.empty() ? "-" : absl::StrJoin(holds, " "));
  }
  return out;
}

}  // namespace icos::cli
