#include "sim/fgd_experiment.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>
#include <random>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "core/scheduler.h"

namespace icos::sim {
namespace {

bool Shared(const SimJob& pod) { return pod.gpus > 0 && pod.gpu_milli < 1000; }
int32_t SharePercent(const SimJob& pod) { return std::clamp((pod.gpu_milli + 9) / 10, 1, 99); }

core::Job PodJob(const SimJob& pod, int64_t id) {
  core::Job job;
  job.id = JobId(id);
  core::TaskGroup g;
  g.name = "pod";
  g.request.cpu_milli = pod.cpu_milli;
  g.request.memory_mib = pod.memory_mib;
  if (Shared(pod)) {
    g.request.device_percent = SharePercent(pod);
  } else {
    g.request.devices = pod.gpus;
  }
  for (const std::string& m : pod.models) g.device_choices.push_back({"nvidia", m, 0.0});
  job.groups.push_back(std::move(g));
  return job;
}

// GPU capacity a pod asks for, in milli-GPUs.
int64_t GpuMilli(const SimJob& pod) { return Shared(pod) ? pod.gpu_milli : int64_t{pod.gpus} * 1000; }

// What is free on each node, kept from the binds, for the fragmentation rate.
class FreeLedger {
 public:
  explicit FreeLedger(const std::vector<core::Node>& nodes) {
    for (const core::Node& n : nodes) {
      free_.emplace_back(n.devices.size(), core::kWholeDevicePercent);
      cpu_.push_back(n.cpu_milli);
      model_.push_back(n.devices.empty() ? "" : n.devices[0].model);  // openb's nodes have one model each
    }
  }
  void Take(const core::TaskPlacement& t) {
    cpu_[t.node] -= t.cpu_milli;
    for (const core::DeviceSlice& s : t.devices) free_[t.node][s.device] -= s.percent;
  }
  // Fragmented over all free GPU capacity, per cent (FGD's rate).
  double FragRatePct(const core::FgdScorer& measure) const {
    double frag = 0;
    int64_t free = 0;
    for (size_t n = 0; n < free_.size(); ++n) {
      for (int32_t r : free_[n]) free += r;
      frag += measure.Fragmentation(free_[n], cpu_[n], model_[n].empty() ? nullptr : &model_[n]);
    }
    return free > 0 ? 100.0 * frag / (static_cast<double>(free) * 10.0) : 0.0;
  }

 private:
  std::vector<std::vector<int32_t>> free_;  // per node, per device, per cent
  std::vector<int64_t> cpu_;
  std::vector<std::string> model_;
};

}  // namespace

std::vector<core::TaskShape> TypicalShapes(const std::vector<SimJob>& pods, double coverage) {
  // Shapes by (devices, share, CPU, the models it may use: FGD's gpuspec).
  std::map<std::tuple<int32_t, int32_t, int64_t, std::vector<std::string>>, int64_t> count;
  int64_t total = 0;
  for (const SimJob& p : pods) {
    if (p.gpus == 0) continue;  // strands every free GPU wherever it goes: ranks no placement
    ++count[{Shared(p) ? 0 : p.gpus, Shared(p) ? SharePercent(p) : 0, p.cpu_milli, core::NormalizedModels(p.models)}];
    ++total;
  }
  std::vector<std::pair<int64_t, core::TaskShape>> by_count;
  for (const auto& [shape, n] : count) {
    const auto& [devices, percent, cpu, models] = shape;
    by_count.push_back({n, core::TaskShape{devices, percent, cpu, static_cast<double>(n), models}});
  }
  // Most frequent first (stable: ties keep shape order), the fewest covering `coverage`.
  std::stable_sort(by_count.begin(), by_count.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<core::TaskShape> shapes;
  int64_t covered = 0;
  for (const auto& [n, shape] : by_count) {
    if (static_cast<double>(covered) >= coverage * static_cast<double>(total)) break;
    shapes.push_back(shape);
    covered += n;
  }
  return shapes;
}

absl::StatusOr<InflationResult> RunInflation(const std::vector<core::Node>& cluster, const std::vector<SimJob>& pods,
                                             const std::string& policy, const InflationOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  if (pods.empty()) return absl::InvalidArgumentError("the trace has no pods");
  core::SchedulerOptions so;
  so.backfill = core::BackfillMode::kNone;
  so.preemption = false;
  so.topology_aware = false;
  so.heterogeneity_aware = false;
  so.min_feasible_nodes = o.candidates;
  so.fractional_candidates = o.candidates;
  const std::vector<core::TaskShape> mix = TypicalShapes(pods);
  // FGD's own baselines (core::FgdBaselineScorer) and icos' own binpack and
  // spread, each on its own; fgd with its typical mix.
  if (policy == "fgd") {
    so.placement = "fgd";
    so.fgd_for_fractional = true;
    so.workload = mix;
  } else if (policy == "binpack" || policy == "spread" || policy == "bestfit" || policy == "gpupacking" ||
             policy == "random" || policy == "dotprod" || policy == "gpuclustering") {
    so.placement = policy;
    so.fgd_for_fractional = false;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown inflation policy '", policy,
                     "'; known: fgd, bestfit, gpupacking, random, dotprod, gpuclustering, binpack, spread"));
  }
  auto sched = core::Scheduler::Create(so);
  if (!sched.ok()) return sched.status();
  // Every policy's fragmentation is measured against the same mix.
  const core::FgdScorer measure(mix);

  std::mt19937_64 rng(o.seed);
  core::Snapshot snap;
  snap.nodes = cluster;
  std::shuffle(snap.nodes.begin(), snap.nodes.end(), rng);
  int64_t capacity = 0;
  for (const core::Node& n : snap.nodes) capacity += static_cast<int64_t>(n.devices.size()) * 1000;
  if (capacity == 0) return absl::InvalidArgumentError("the cluster has no GPUs");
  // Shuffled pods, then random copies until GPU requests reach inflation x capacity.
  std::vector<const SimJob*> order;
  for (const SimJob& p : pods) {
    if (p.gpus > 0 || o.cpu_pods) order.push_back(&p);
  }
  std::shuffle(order.begin(), order.end(), rng);
  int64_t requested = 0;
  for (const SimJob* p : order) requested += GpuMilli(*p);
  if (requested == 0) return absl::InvalidArgumentError("no pod of the trace asks for a GPU");
  std::uniform_int_distribution<size_t> pick(0, pods.size() - 1);
  while (requested < static_cast<int64_t>(o.inflation * static_cast<double>(capacity))) {
    const SimJob& p = pods[pick(rng)];
    if (p.gpus == 0 && !o.cpu_pods) continue;
    order.push_back(&p);
    requested += GpuMilli(p);
  }
  auto session = core::SchedulingSession::Begin(*sched, snap);
  if (!session.ok()) return session.status();

  InflationResult r;
  r.policy = policy;
  r.seed = o.seed;
  FreeLedger ledger(snap.nodes);
  int64_t arrived = 0, allocated = 0;
  double next_mark = 5;
  bool at_100 = false;
  for (size_t i = 0; i < order.size(); ++i) {
    const SimJob& pod = *order[i];
    core::Decisions d = session->PlaceOne(PodJob(pod, static_cast<int64_t>(i) + 1));
    for (const core::BindDecision& b : d.binds) {
      for (const core::TaskPlacement& t : b.tasks) ledger.Take(t);
    }
    if (pod.gpus == 0) {  // CPU-only pods do not count towards GPU arrival
      ++r.cpu_pods_arrived;
      r.cpu_pods_placed += d.binds.empty() ? 0 : 1;
      continue;
    }
    arrived += GpuMilli(pod);
    ++r.pods_arrived;
    if (!d.binds.empty()) {
      ++r.pods_placed;
      allocated += GpuMilli(pod);
    }
    const double arrived_pct = 100.0 * static_cast<double>(arrived) / static_cast<double>(capacity);
    const double unallocated_pct = 100.0 - 100.0 * static_cast<double>(allocated) / static_cast<double>(capacity);
    while (arrived_pct >= next_mark) {
      const double frag = ledger.FragRatePct(measure);
      r.curve.push_back({next_mark, unallocated_pct, frag});
      if (next_mark == 90) r.frag_rate_pct_at_90 = frag;
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
