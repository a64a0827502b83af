#include "sim/fgd_experiment.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "core/scheduler.h"

namespace icos::sim {
namespace {

core::Job PodJob(const SimJob& pod, int64_t id) {
  core::Job job;
  job.id = JobId(id);
  core::TaskGroup g;
  g.name = "pod";
  g.request.cpu_milli = pod.cpu_milli;
  g.request.memory_mib = pod.memory_mib;
  if (pod.gpus > 0 && pod.gpu_milli < 1000) {
    g.request.device_percent = std::clamp((pod.gpu_milli + 9) / 10, 1, 99);
  } else {
    g.request.devices = pod.gpus;
  }
  for (const std::string& m : pod.models) g.device_choices.push_back({"nvidia", m, 0.0});
  job.groups.push_back(std::move(g));
  return job;
}

// GPU capacity a pod asks for, in milli-GPUs.
int64_t GpuMilli(const SimJob& pod) { return pod.gpus > 0 && pod.gpu_milli < 1000 ? pod.gpu_milli : int64_t{pod.gpus} * 1000; }

}  // namespace

absl::StatusOr<InflationResult> RunInflation(const std::vector<core::Node>& cluster, const std::vector<SimJob>& pods,
                                             const std::string& policy, const InflationOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  core::SchedulerOptions so;
  so.backfill = core::BackfillMode::kNone;
  so.preemption = false;
  so.topology_aware = false;
  so.heterogeneity_aware = false;
  so.min_feasible_nodes = o.candidates;
  so.fractional_candidates = o.candidates;
  if (policy == "bestfit") {
    so.placement = "binpack";
    so.fgd_for_fractional = false;
  } else if (policy == "fgd") {
    so.placement = "fgd";
    so.fgd_for_fractional = true;
    // The task mix FGD measures against: the trace's pod shapes by frequency.
    std::map<std::tuple<int32_t, int32_t, int64_t>, double> shapes;
    for (const SimJob& p : pods) {
      const bool frac = p.gpus > 0 && p.gpu_milli < 1000;
      shapes[{frac ? 0 : p.gpus, frac ? std::clamp((p.gpu_milli + 9) / 10, 1, 99) : 0, p.cpu_milli}] += 1;
    }
    for (const auto& [shape, w] : shapes) {
      const auto& [devices, percent, cpu] = shape;
      so.workload.push_back({devices, percent, cpu, w});
    }
  } else if (policy == "spread") {
    so.placement = "spread";
    so.fgd_for_fractional = false;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("unknown inflation policy '", policy, "'; known: bestfit, fgd, spread"));
  }
  auto sched = core::Scheduler::Create(so);
  if (!sched.ok()) return sched.status();

  std::mt19937_64 rng(o.seed);
  core::Snapshot snap;
  snap.nodes = cluster;
  std::shuffle(snap.nodes.begin(), snap.nodes.end(), rng);
  int64_t capacity = 0;
  for (const core::Node& n : snap.nodes) capacity += static_cast<int64_t>(n.devices.size()) * 1000;
  if (capacity == 0) return absl::InvalidArgumentError("the cluster has no GPUs");
  // Shuffled pods, then random copies until requests reach inflation x capacity.
  std::vector<const SimJob*> order;
  for (const SimJob& p : pods) order.push_back(&p);
  std::shuffle(order.begin(), order.end(), rng);
  int64_t requested = 0;
  for (const SimJob* p : order) requested += GpuMilli(*p);
  std::uniform_int_distribution<size_t> pick(0, pods.size() - 1);
  while (requested < static_cast<int64_t>(o.inflation * static_cast<double>(capacity))) {
    order.push_back(&pods[pick(rng)]);
    requested += GpuMilli(*order.back());
  }
  auto session = core::SchedulingSession::Begin(*sched, snap);
  if (!session.ok()) return session.status();

  InflationResult r;
  r.policy = policy;
  r.seed = o.seed;
  int64_t arrived = 0, allocated = 0;
  double next_mark = 5;
  bool at_100 = false;
  for (size_t i = 0; i < order.size(); ++i) {
    const SimJob& pod = *order[i];
    if (pod.gpus == 0) continue;  // CPU-only pods do not count towards GPU arrival
    arrived += GpuMilli(pod);
    ++r.pods_arrived;
    core::Decisions d = session->PlaceOne(PodJob(pod, static_cast<int64_t>(i) + 1));
    if (!d.binds.empty()) {
      ++r.pods_placed;
      allocated += GpuMilli(pod);
    }
    const double arrived_pct = 100.0 * static_cast<double>(arrived) / static_cast<double>(capacity);
    const double unallocated_pct = 100.0 - 100.0 * static_cast<double>(allocated) / static_cast<double>(capacity);
    while (arrived_pct >= next_mark) {
      r.curve.push_back({next_mark, unallocated_pct});
      next_mark += 5;
    }
    if (!at_100 && arrived_pct >= 100.0) {
      r.unallocated_pct_at_100 = unallocated_pct;
      at_100 = true;
    }
    r.arrived_pct_at_end = arrived_pct;
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace icos::sim
