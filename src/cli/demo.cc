#include "cli/demo.h"

#include <chrono>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "core/scheduler.h"
#include "sim/synthetic.h"

namespace icos::cli {
namespace {

std::string DevicesOf(const core::Snapshot& s, const core::TaskPlacement& t) {
  std::vector<std::string> devs;
  for (const auto& d : t.devices) {
    devs.push_back(d.percent == core::kWholeDevicePercent ? absl::StrCat(d.device)
                                                          : absl::StrCat(d.device, ":", d.percent, "%"));
  }
  return absl::StrCat(s.nodes[t.node].name, "[", absl::StrJoin(devs, ","), "]");
}

std::string Ask(const core::Job& j) {
  const auto& g = j.groups[0];
  std::string what =
      g.request.devices > 0 ? absl::StrCat(g.request.devices) : absl::StrCat(g.request.device_percent, "%");
  std::string kind = g.device_choices.empty() ? "any" : g.device_choices[0].vendor;
  return g.replicas > 1 ? absl::StrCat(g.replicas, "x", what, " ", kind) : absl::StrCat(what, " ", kind);
}

}  // namespace

int RunDemo(const DemoOptions& o, std::ostream& out, std::ostream& err) {
  sim::ClusterSpec spec;
  spec.nodes = o.nodes;
  spec.types = {{"nvidia", "A100-80G"}, {"ascend", "910B"}, {"cambricon", "MLU370"}, {"hygon", "K100"}};
  spec.nodes_per_rack = 4;
  core::Snapshot snap;
  snap.now_ms = 3'600'000;
  snap.nodes = sim::MakeCluster(spec);
  snap.running = sim::MakeRunning(spec, snap.nodes, o.running, o.seed + 1, 1'000, snap.now_ms);
  sim::WorkloadSpec w;
  w.seed = o.seed;
  w.jobs = o.jobs;
  w.first_id = 1;
  w.submit_ms = snap.now_ms - o.jobs;
  w.max_devices = 16;
  w.fractional_share = 0.15;
  snap.pending = sim::MakeJobs(spec, w);

  auto sched = core::Scheduler::Create({.order = o.order, .placement = o.placement});
  if (!sched.ok()) {
    err << "icos demo: " << sched.status().message() << "\n";
    return 1;
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto d = sched->Schedule(snap);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!d.ok()) {
    err << "icos demo: " << d.status().message() << "\n";
    return 1;
  }
  const auto job = [&](JobId id) -> const core::Job& {
    for (const auto& j : snap.pending) {
      if (j.id == id) return j;
    }
    return snap.pending.front();
  };

  if (o.output == "json") {
    nlohmann::json j;
    j["nodes"] = snap.nodes.size();
    j["pass_ms"] = ms;
    for (const auto& b : d->binds) {
      nlohmann::json tasks = nlohmann::json::array();
      for (const auto& t : b.tasks) tasks.push_back(DevicesOf(snap, t));
      nlohmann::json after = nlohmann::json::array();
      for (JobId v : b.after_preemption) after.push_back(v.value());
      j["binds"].push_back(
          {{"job", b.job.value()}, {"device_type", b.device_type}, {"tasks", tasks}, {"after_preemption", after}});
    }
    for (const auto& p : d->preemptions)
      j["preemptions"].push_back({{"victim", p.victim.value()}, {"for", p.preemptor.value()}, {"reason", p.reason}});
    for (const auto& r : d->reservations)
      j["reservations"].push_back({{"job", r.job.value()}, {"start_ms", r.start_ms}});
    for (const auto& w : d->waiting)
      j["waiting"].push_back({{"job", w.job.value()}, {"kind", core::WaitKindName(w.kind)}, {"reason", w.reason}});
    out << j.dump(2) << "\n";
    return 0;
  }

  int64_t devices = 0;
  for (const auto& n : snap.nodes) devices += static_cast<int64_t>(n.devices.size());
  out << absl::StrFormat(
      "cluster: %d nodes, %d devices (nvidia/A100-80G, ascend/910B, cambricon/MLU370, hygon/K100); "
      "%d running jobs; %d pending\n",
      snap.nodes.size(), devices, snap.running.size(), snap.pending.size());
  out << absl::StrFormat(
      "policy: order=%s placement=%s topology-aware, heterogeneity-aware, EASY backfill, preemption\n\n", o.order,
      o.placement);
  out << absl::StrFormat("%-6s %-8s %-16s %-18s %s\n", "JOB", "PRIO", "ASKS", "TYPE", "PLACED ON");
  for (const auto& b : d->binds) {
    std::vector<std::string> where;
    for (const auto& t : b.tasks) where.push_back(DevicesOf(snap, t));
    std::string after =
        b.after_preemption.empty() ? "" : absl::StrCat("  (after preempting ", b.after_preemption.size(), ")");
    out << absl::StrFormat("%-6d %-8d %-16s %-18s %s%s\n", b.job.value(), job(b.job).priority, Ask(job(b.job)),
                           b.device_type, absl::StrJoin(where, " "), after);
  }
  for (const auto& p : d->preemptions) out << absl::StrFormat("preempt job %d: %s\n", p.victim.value(), p.reason);
  for (const auto& r : d->reservations) {
    out << absl::StrFormat("reserve job %d to start in %.0f min on %d node(s)\n", r.job.value(),
                           static_cast<double>(r.start_ms - snap.now_ms) / 60'000.0, r.nodes.size());
  }
  out << "\n" << absl::StrFormat("%-6s %-16s %-12s %s\n", "JOB", "ASKS", "WAITING", "REASON");
  for (const auto& w : d->waiting) {
    out << absl::StrFormat("%-6d %-16s %-12s %s\n", w.job.value(), Ask(job(w.job)), core::WaitKindName(w.kind),
                           w.reason);
  }
  out << absl::StrFormat("\n%d started, %d preempted, %d reserved, %d waiting; pass took %.2f ms\n", d->binds.size(),
                         d->preemptions.size(), d->reservations.size(), d->waiting.size(), ms);
  return 0;
}

}  // namespace icos::cli
