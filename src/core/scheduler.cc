#include "core/scheduler.h"

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <limits>
#include <numeric>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/resources/cluster_state.h"
#include "core/resources/quota.h"

namespace icos::core {

const char* WaitKindName(WaitKind kind) {
  switch (kind) {
    case WaitKind::kResources: return "Resources";
    case WaitKind::kTopology: return "Topology";
    case WaitKind::kQuota: return "Quota";
    case WaitKind::kReservation: return "Reservation";
    case WaitKind::kOrder: return "Order";
    case WaitKind::kNeverFits: return "NeverFits";
    case WaitKind::kInvalid: return "Invalid";
  }
  return "Unknown";
}

std::string ValidateJob(const Job& job) {
  if (job.groups.empty()) return "the job has no task groups; add at least one";
  if (job.runtime_estimate_ms < 0) return "runtime estimate must not be negative";
  if (!(job.runtime_log_sd >= 0) || !std::isfinite(job.runtime_log_sd)) {
    return "runtime estimate spread (runtime_log_sd) must be a finite number >= 0";
  }
  for (size_t i = 0; i < job.groups.size(); ++i) {
    const TaskGroup& g = job.groups[i];
    const std::string where = absl::StrCat("task group '", g.name.empty() ? std::to_string(i) : g.name, "': ");
    const TaskRequest& r = g.request;
    if (g.replicas < 1) return where + "replicas must be at least 1";
    if (g.min_available < 0 || g.min_available > g.replicas) return where + "min_available must be between 0 and replicas";
    if (r.cpu_milli < 0 || r.memory_mib < 0) return where + "CPU and memory must not be negative";
    if (r.devices < 0) return where + "device count must not be negative";
    if (r.device_percent < 0 || r.device_percent >= kWholeDevicePercent) {
      return where + "a device share must be between 1 and 99 per cent (ask for whole devices otherwise)";
    }
    if (r.device_memory_mib < 0) return where + "device memory must not be negative";
    if (r.devices > 0 && (r.device_percent > 0 || r.device_memory_mib > 0)) {
      return where + "ask for whole devices or a share of one device, not both";
    }
    if (!r.NeedsDevices() && r.cpu_milli == 0 && r.memory_mib == 0) return where + "asks for nothing; set CPU, memory or devices";
    for (const DeviceChoice& c : g.device_choices) {
      if (c.throughput < 0 || !std::isfinite(c.throughput)) return where + "device throughput must be a non-negative number";
      if (c.vendor.empty() && !c.model.empty()) return where + "a device model needs its vendor";
    }
  }
  return "";
}

namespace {

// A running job as the pass tracks it (from the snapshot or bound in this pass).
struct Running {
  const Job* job = nullptr;
  int32_t queue = -1;
  std::vector<TaskPlacement> tasks;
  std::vector<QuotaDelta> charged;  // one per task, as applied to the quota tree
  int64_t start_ms = 0;
  int64_t end_ms = std::numeric_limits<int64_t>::max();  // unknown: never for backfill
  bool stopped = false;  // preempted in this pass
  bool bound_now = false;  // started by this pass: never its own victim
  int64_t held_milli = 0;   // device share held, in milli-devices
  std::vector<DeviceTypeId> types;  // device types held (usually one)
};

struct Candidate {
  int32_t node = 0;
  int32_t cap = 0;  // replicas that fit
  int32_t rack = 0;
  double score = 0;
};

// Why one (task group, device type) did not fit: counted while walking nodes.
struct Miss {
  DeviceTypeId type = -1;
  WaitKind kind = WaitKind::kResources;
  std::string quota;  // set when the queue said no
  int32_t feasible_nodes = 0;
  int32_t capacity = 0;  // replicas that would fit in total
  int32_t cpu_short = 0, memory_short = 0, label_mismatch = 0, island_short = 0, reserved = 0;
  int32_t best_rack_capacity = 0;
};

struct Attempt {
  bool ok = false;
  DeviceTypeId type = -1;
  std::vector<TaskPlacement> tasks;
  std::vector<QuotaDelta> charged;
  WaitKind kind = WaitKind::kResources;
  std::string reason;
};

QuotaDelta TaskDelta(const TaskRequest& r, DeviceTypeId t) {
  QuotaDelta d;
  d.cpu_milli = r.cpu_milli;
  d.memory_mib = r.memory_mib;
  d.type = t;
  d.device_milli = r.devices > 0 ? int64_t{r.devices} * 1000 : (r.IsFractional() ? std::max(1, r.device_percent) * 10 : 0);
  return d;
}

QuotaDelta Times(QuotaDelta d, int32_t n) {
  d.cpu_milli *= n;
  d.memory_mib *= n;
  d.device_milli *= n;
  return d;
}

bool LabelsMatch(const Node& node, const std::map<std::string, std::string>& selector) {
  for (const auto& [k, v] : selector) {
    auto it = node.labels.find(k);
    if (it == node.labels.end() || it->second != v) return false;
  }
  return true;
}

std::string Plural(int64_t n, const char* one, const char* many) { return absl::StrCat(n, " ", n == 1 ? one : many); }

}  // namespace

// SRTF preempts a running job only when it is expected to run this many times
// longer than the waiting job.
constexpr double kSrtfMargin = 2.0;

// The age of a running job in ms: its wall time under way, all runs together
// (attained device-seconds over the devices it holds).
double RunningAgeMs(const Running& r, int64_t now_ms) {
  const double devices = std::max<int64_t>(r.held_milli, 1'000) / 1000.0;
  return std::max(static_cast<double>(now_ms - r.start_ms), r.job->attained_device_s * 1000.0 / devices);
}

// What a running job is expected to need still, in ms. Past its estimate it is
// guessed to need as long again as it has run (long jobs tend to run longer);
// without an estimate, longer than anything.
double ExpectedLeftMs(const Running& r, int64_t now_ms) {
  if (r.end_ms == std::numeric_limits<int64_t>::max()) return std::numeric_limits<double>::infinity();
  if (r.end_ms > now_ms) return static_cast<double>(r.end_ms - now_ms);
  return RunningAgeMs(r, now_ms);
}

std::string GittinsReason(const Job& job, double job_rank_ms, double victim_rank_ms) {
  auto minutes = [](double ms) {
    return std::isinf(ms) ? std::string("unknown") : absl::StrCat(static_cast<int64_t>(ms / 60'000), " min");
  };
  return absl::StrCat("job ", job.id.value(), " is more likely to end soon (Gittins rank ", minutes(job_rank_ms),
                      " against ", minutes(victim_rank_ms), ")");
}

std::string SrtfReason(const Job& job, double victim_left_ms) {
  return absl::StrCat(
      "job ", job.id.value(), " is expected to end sooner (", job.runtime_estimate_ms / 60'000, " min against ",
      std::isinf(victim_left_ms) ? std::string("an unknown time")
                                 : absl::StrCat("about ", static_cast<int64_t>(victim_left_ms / 60'000), " min"),
      " left)");
}

// One scheduling pass; SchedulingSession's body.
class Pass {
 public:
  Pass(const Scheduler& s, const Snapshot& snap, ClusterState cluster, QuotaTracker quota)
      : sched_(s), opt_(s.options_), snap_(snap), cluster_(std::move(cluster)), quota_(std::move(quota)) {}

  static absl::StatusOr<std::unique_ptr<Pass>> Begin(const Scheduler& s, const Snapshot& snap);
  Decisions Run();
  Decisions PlaceOne(const Job& job);

 private:
  absl::Status AdoptRunning();
  void PrepareMarket();
  std::vector<TypeOption> TypeOptions(const TaskGroup& g) const;
  std::string NeverFits(const Job& job, int32_t q) const;
  Attempt TryPlace(const Job& job, int32_t q, bool honour_reservations, bool keep);
  bool PlaceGroup(const Job& job, const TaskGroup& g, int32_t gi, DeviceTypeId t, int32_t want, bool honour,
                  std::vector<TaskPlacement>& out, Miss& miss);
  // A share of one device per replica, on any of `types` (best score wins
  // across all of them: FGD compares every node, whatever its model).
  bool PlaceFractional(const TaskGroup& g, int32_t gi, const std::vector<DeviceTypeId>& types, int32_t want,
                       bool honour, std::vector<TaskPlacement>& out, Miss& miss);
  std::vector<int32_t> ChooseDevices(int32_t n, DeviceTypeId t, int32_t k, bool same_island) const;
  TaskPlacement MakeTask(int32_t gi, int32_t replica, int32_t n, const TaskRequest& r, std::vector<int32_t> devices) const;
  std::string Describe(const Job& job, const TaskGroup& g, const Miss& m) const;
  bool TryPreempt(const Job& job, int32_t q, Decisions& out);
  std::vector<int32_t> FindVictims(const Job& job, int32_t q, const std::vector<int32_t>& candidates,
                                   const std::vector<char>& reclaim);
  void TryReserve(const Job& job, int32_t q, Decisions& out);
  void StopRunning(Running& r);
  void NoteHoldings(Running& r) const;
  // With wait_for_faster_type: the faster type `job` should wait for instead of
  // starting now on a slower free one, or -1. `promise` reserves the freeing
  // device for it in this pass.
  DeviceTypeId FasterTypeWorthWaitingFor(const Job& job, const TaskGroup& g, const std::vector<TypeOption>& opts,
                                         bool promise);
  void RestartRunning(Running& r);
  // With migrate_to_faster_type: moves running jobs onto faster free devices.
  void MigrateToFasterTypes(Decisions& out);
  // Notes a job started (or moved) in this pass as running until `end_ms`.
  void TrackStarted(const Job& job, int32_t q, std::vector<TaskPlacement> tasks, std::vector<QuotaDelta> charged,
                    int64_t end_ms);
  void Bind(const Job& job, int32_t q, Attempt&& a, std::vector<JobId> after, Decisions& out);
  bool Excluded(int32_t n, bool honour) const { return honour && excluded_[n] > 0; }
  std::string ShapeKey(const Job& job) const;

  const Scheduler& sched_;
  const SchedulerOptions& opt_;
  const Snapshot& snap_;
  ClusterState cluster_;
  QuotaTracker quota_;
  std::unique_ptr<FgdScorer> fgd_;
  std::vector<double> market_;
  std::vector<Running> running_;
  std::vector<bool> promised_;  // running_[i]'s devices promised to a job waiting for them
  std::deque<Job> adopted_;  // jobs handed to PlaceOne, kept alive for running_
  int64_t max_node_cpu_ = 0, max_node_memory_ = 0;
  std::vector<int64_t> max_device_memory_;  // per type
  std::vector<uint16_t> excluded_;  // per node: reservations that hold it
  int64_t shadow_ms_ = std::numeric_limits<int64_t>::max();
  JobId shadow_job_;
  int reservations_ = 0;
  int preemption_attempts_ = 0;
  absl::flat_hash_map<std::string, std::pair<WaitKind, std::string>> failed_shapes_;
  PassStats stats_;
};

absl::StatusOr<std::unique_ptr<Pass>> Pass::Begin(const Scheduler& s, const Snapshot& snap) {
  absl::StatusOr<ClusterState> cluster = ClusterState::Build(snap.nodes);
  if (!cluster.ok()) return cluster.status();
  absl::StatusOr<QuotaTracker> quota = QuotaTracker::Build(snap.queues, *cluster);
  if (!quota.ok()) return quota.status();
  auto pass = std::make_unique<Pass>(s, snap, *std::move(cluster), *std::move(quota));
  if (absl::Status st = pass->AdoptRunning(); !st.ok()) return st;
  pass->excluded_.assign(snap.nodes.size(), 0);
  const ClusterState& c = pass->cluster_;
  pass->max_device_memory_.assign(c.num_types(), 0);
  for (int32_t n = 0; n < c.num_nodes(); ++n) {
    pass->max_node_cpu_ = std::max(pass->max_node_cpu_, c.node(n).cpu_milli);
    pass->max_node_memory_ = std::max(pass->max_node_memory_, c.node(n).memory_mib);
    for (int32_t d = 0; d < c.node(n).num_devices; ++d) {
      auto& biggest = pass->max_device_memory_[c.device(n, d).type];
      biggest = std::max(biggest, c.device(n, d).memory_mib);
    }
  }
  pass->PrepareMarket();
  return pass;
}

absl::Status Pass::AdoptRunning() {
  running_.reserve(snap_.running.size() + snap_.pending.size());
  for (const RunningJob& rj : snap_.running) {
    Running r;
    r.job = &rj.job;
    r.queue = quota_.Find(rj.job.queue);
    if (r.queue < 0) r.queue = quota_.Find(QuotaTracker::kDefaultQueue);  // keep accounting; queue was deleted
    r.start_ms = rj.start_ms;
    if (rj.job.runtime_estimate_ms > 0) r.end_ms = rj.start_ms + rj.job.runtime_estimate_ms;
    r.tasks = rj.tasks;
    for (const TaskPlacement& t : rj.tasks) {
      if (absl::Status st = cluster_.CheckFits(t); !st.ok()) {
        return absl::FailedPreconditionError(absl::StrCat("running job ", rj.job.id.value(), " does not fit the cluster: ", st.message()));
      }
      if (t.group < 0 || t.group >= static_cast<int32_t>(rj.job.groups.size())) {
        return absl::InvalidArgumentError(absl::StrCat("running job ", rj.job.id.value(), " names task group ", t.group));
      }
      cluster_.Allocate(t);
      TaskRequest used = rj.job.groups[t.group].request;
      DeviceTypeId type = t.devices.empty() ? -1 : cluster_.device(t.node, t.devices[0].device).type;
      QuotaDelta d = TaskDelta(used, type);
      d.cpu_milli = t.cpu_milli;
      d.memory_mib = t.memory_mib;
      quota_.Apply(r.queue, d, +1);
      r.charged.push_back(d);
    }
    NoteHoldings(r);
    running_.push_back(std::move(r));
  }
  return absl::OkStatus();
}

void Pass::PrepareMarket() {
  // Mean relative throughput per type over pending jobs that state throughputs.
  std::vector<double> sum(cluster_.num_types(), 0.0);
  std::vector<int64_t> count(cluster_.num_types(), 0);
  std::map<std::tuple<int32_t, int32_t, int64_t>, double> shapes;  // FGD task mix
  for (const Job& job : snap_.pending) {
    for (const TaskGroup& g : job.groups) {
      std::vector<TypeOption> opts = TypeOptions(g);
      double best = 0;
      for (const auto& o : opts) best = std::max(best, o.throughput);
      if (best > 0) {
        for (const auto& o : opts) sum[o.type] += o.throughput / best, ++count[o.type];
      }
      if (opt_.workload.empty()) {
        const TaskRequest& r = g.request;
        shapes[{r.devices, r.device_percent, r.cpu_milli}] += g.replicas;
      }
    }
  }
  market_.assign(cluster_.num_types(), 1.0);
  for (int32_t t = 0; t < cluster_.num_types(); ++t) {
    if (count[t] > 0) market_[t] = sum[t] / static_cast<double>(count[t]);
  }
  if (opt_.fgd_for_fractional || sched_.scorer_->name() == "fgd") {
    std::vector<TaskShape> workload = opt_.workload;
    if (workload.empty()) {
      for (const auto& [shape, w] : shapes) {
        const auto& [devices, percent, cpu] = shape;
        workload.push_back({devices, percent, cpu, w});
      }
    }
    fgd_ = std::make_unique<FgdScorer>(std::move(workload));
  }
}

std::vector<TypeOption> Pass::TypeOptions(const TaskGroup& g) const {
  std::vector<TypeOption> out;
  auto add = [&](DeviceTypeId t, double tput) {
    for (const auto& o : out) {
      if (o.type == t) return;
    }
    out.push_back({t, tput > 0 ? tput : 1.0});
  };
  if (g.device_choices.empty()) {
    for (DeviceTypeId t = 0; t < cluster_.num_types(); ++t) add(t, 1.0);
  }
  for (const DeviceChoice& c : g.device_choices) {
    for (DeviceTypeId t : cluster_.TypesMatching(c)) add(t, c.throughput);
  }
  return out;
}

std::string Pass::NeverFits(const Job& job, int32_t q) const {
  QuotaDelta total;
  for (const TaskGroup& g : job.groups) {
    const TaskRequest& r = g.request;
    const int32_t n = g.MinReplicas();
    total += Times(TaskDelta(r, -1), n);
    const std::string who = job.groups.size() < 2 ? "" : absl::StrCat("task group '", g.name, "' ");
    if (r.cpu_milli > max_node_cpu_) {
      return absl::StrCat(who, "needs ", r.cpu_milli, "m CPU per task; the largest node has ", max_node_cpu_, "m");
    }
    if (r.memory_mib > max_node_memory_) {
      return absl::StrCat(who, "needs ", r.memory_mib, " MiB per task; the largest node has ", max_node_memory_, " MiB");
    }
    if (!r.NeedsDevices()) continue;
    std::vector<TypeOption> opts = TypeOptions(g);
    if (opts.empty()) {
      std::vector<std::string> wanted;
      for (const auto& c : g.device_choices) wanted.push_back(c.model.empty() ? c.vendor : absl::StrCat(c.vendor, "/", c.model));
      return absl::StrCat(who, "accepts only ", absl::StrJoin(wanted, " or "), " devices and the cluster has none");
    }
    std::string why;
    for (const TypeOption& o : opts) {
      const std::string& name = cluster_.type_name(o.type);
      const int32_t k = r.devices > 0 ? r.devices : 1;
      if (cluster_.usable_devices(o.type) == 0) {
        why = absl::StrCat(who, "needs ", name, " and every such device is unhealthy or drained");
      } else if (g.affinity == Affinity::kSameIsland && k > cluster_.max_per_island(o.type)) {
        why = absl::StrCat(who, "needs ", k, " x ", name, " on one interconnect island; the largest island has ",
                           cluster_.max_per_island(o.type));
      } else if (k > cluster_.max_per_node(o.type)) {
        why = absl::StrCat(who, "needs ", k, " x ", name, " on one node; the largest node has ", cluster_.max_per_node(o.type));
      } else if (g.affinity == Affinity::kSameNode && int64_t{k} * n > cluster_.max_per_node(o.type)) {
        why = absl::StrCat(who, "needs ", int64_t{k} * n, " x ", name, " on one node; the largest node has ",
                           cluster_.max_per_node(o.type));
      } else if (r.devices > 0 && int64_t{k} * n > cluster_.usable_devices(o.type)) {
        why = absl::StrCat(who, "needs ", int64_t{k} * n, " x ", name, "; the cluster has ", cluster_.usable_devices(o.type));
      } else if (r.IsFractional() && r.device_memory_mib > 0) {
        const int64_t biggest = max_device_memory_[o.type];
        if (r.device_memory_mib > biggest) {
          why = absl::StrCat(who, "needs ", r.device_memory_mib, " MiB of one ", name, "; the largest has ", biggest, " MiB");
        } else {
          return "";
        }
      } else {
        return "";  // this type can hold the group; other groups may still fail below
      }
    }
    if (!why.empty()) return why;
  }
  if (q >= 0) return quota_.CheckNeverFits(q, total);
  return "";
}

std::vector<int32_t> Pass::ChooseDevices(int32_t n, DeviceTypeId t, int32_t k, bool same_island) const {
  const auto& ns = cluster_.node(n);
  // Free devices of type t grouped by island, islands in id order.
  std::vector<std::pair<int32_t, std::vector<int32_t>>> islands;
  for (int32_t d = 0; d < ns.num_devices; ++d) {
    const auto& dev = cluster_.device(n, d);
    if (dev.type != t || !dev.WholeFree()) continue;
    auto it = std::find_if(islands.begin(), islands.end(), [&](auto& e) { return e.first == dev.island; });
    if (it == islands.end()) {
      islands.push_back({dev.island, {}});
      it = islands.end() - 1;
    }
    it->second.push_back(d);
  }
  // Best fit: the smallest island that holds all k, so large islands stay whole.
  const std::vector<int32_t>* best = nullptr;
  for (const auto& [id, devs] : islands) {
    if (static_cast<int32_t>(devs.size()) >= k && (best == nullptr || devs.size() < best->size())) best = &devs;
  }
  if (best != nullptr) return {best->begin(), best->begin() + k};
  if (same_island) return {};
  // Otherwise span as few islands as possible: largest first.
  std::stable_sort(islands.begin(), islands.end(), [](auto& a, auto& b) { return a.second.size() > b.second.size(); });
  std::vector<int32_t> out;
  for (const auto& [id, devs] : islands) {
    for (int32_t d : devs) {
      if (static_cast<int32_t>(out.size()) == k) break;
      out.push_back(d);
    }
  }
  if (static_cast<int32_t>(out.size()) < k) return {};
  std::sort(out.begin(), out.end());
  return out;
}

TaskPlacement Pass::MakeTask(int32_t gi, int32_t replica, int32_t n, const TaskRequest& r, std::vector<int32_t> devices) const {
  TaskPlacement p;
  p.group = gi;
  p.replica = replica;
  p.node = n;
  p.cpu_milli = r.cpu_milli;
  p.memory_mib = r.memory_mib;
  for (int32_t d : devices) {
    const auto& dev = cluster_.device(n, d);
    DeviceSlice s;
    s.device = d;
    if (r.IsFractional()) {
      s.percent = r.device_percent > 0 ? r.device_percent : 1;
      s.memory_mib = r.device_memory_mib;
    } else {
      s.percent = kWholeDevicePercent;
      s.memory_mib = dev.memory_mib;
    }
    p.devices.push_back(s);
    if (std::find(p.numa_nodes.begin(), p.numa_nodes.end(), dev.numa) == p.numa_nodes.end()) p.numa_nodes.push_back(dev.numa);
  }
  std::sort(p.numa_nodes.begin(), p.numa_nodes.end());
  return p;
}

bool Pass::PlaceGroup(const Job& job, const TaskGroup& g, int32_t gi, DeviceTypeId t, int32_t want, bool honour,
                      std::vector<TaskPlacement>& out, Miss& miss) {
  (void)job;
  const TaskRequest& r = g.request;
  const int32_t need = std::min(want, g.MinReplicas());
  if (r.IsFractional()) return PlaceFractional(g, gi, {t}, want, honour, out, miss);
  const NodeScorer& scorer = *sched_.scorer_;
  const int32_t k = r.devices;
  const bool same_island = g.affinity == Affinity::kSameIsland;
  const bool single = want == 1;
  const int32_t limit = single ? opt_.min_feasible_nodes : opt_.gang_feasible_nodes;
  std::vector<Candidate> cands;
  int64_t total_cap = 0;
  int32_t best_cap = 0;
  absl::flat_hash_map<int32_t, int32_t> rack_cap;
  int32_t best_rack_cap = 0;

  auto consider = [&](int32_t n, int32_t free) {
    ++stats_.nodes_scored;
    const auto& ns = cluster_.node(n);
    if (Excluded(n, honour)) { ++miss.reserved; return true; }
    if (!ns.schedulable) return true;
    if (!g.node_selector.empty() && !LabelsMatch(cluster_.spec(n), g.node_selector)) { ++miss.label_mismatch; return true; }
    int64_t cap = want;
    if (k > 0) cap = std::min<int64_t>(cap, same_island ? cluster_.FreeWholeInBestIsland(n, t) / k : free / k);
    if (k > 0 && cap == 0) { ++miss.island_short; return true; }
    if (r.cpu_milli > 0) cap = std::min(cap, ns.free_cpu_milli / r.cpu_milli);
    if (cap == 0) { ++miss.cpu_short; return true; }
    if (r.memory_mib > 0) cap = std::min(cap, ns.free_memory_mib / r.memory_mib);
    if (cap == 0) { ++miss.memory_short; return true; }
    if (g.affinity == Affinity::kSpread) cap = 1;
    Candidate c{n, static_cast<int32_t>(cap), ns.rack, 0.0};
    std::vector<int32_t> devs = k > 0 ? ChooseDevices(n, t, k, same_island) : std::vector<int32_t>{};
    c.score = scorer.Score(cluster_, n, t, r, devs);
    cands.push_back(c);
    total_cap += cap;
    best_cap = std::max<int32_t>(best_cap, c.cap);
    best_rack_cap = std::max(best_rack_cap, rack_cap[c.rack] += c.cap);
    const int32_t feasible = static_cast<int32_t>(cands.size());
    bool enough;
    switch (g.affinity) {
      case Affinity::kSameNode: enough = best_cap >= want; break;
      case Affinity::kSameRack: enough = best_rack_cap >= want; break;
      default: enough = total_cap >= want;
    }
    return !(enough && feasible >= limit);
  };
  if (k > 0) {
    cluster_.ForEachNodeWithFree(t, k, scorer.MostFreeFirst(), consider);
  } else {
    for (int32_t n = 0; n < cluster_.num_nodes(); ++n) {
      if (!consider(n, 0)) break;
    }
  }
  miss.type = t;
  miss.feasible_nodes = static_cast<int32_t>(cands.size());
  miss.capacity = static_cast<int32_t>(std::min<int64_t>(total_cap, std::numeric_limits<int32_t>::max()));
  miss.best_rack_capacity = best_rack_cap;

  // Decide how many replicas go to which node.
  std::vector<std::pair<int32_t, int32_t>> plan;  // node, replicas
  auto by_score = [](const Candidate& a, const Candidate& b) { return std::tie(a.score, a.node) < std::tie(b.score, b.node); };
  auto fill = [&](std::vector<Candidate>& list, int32_t goal) {
    int32_t placed = 0;
    for (const Candidate& c : list) {
      if (placed >= goal) break;
      const int32_t take = std::min(c.cap, goal - placed);
      plan.push_back({c.node, take});
      placed += take;
    }
    return placed;
  };
  int32_t placed = 0;
  if (g.affinity == Affinity::kSameNode || (opt_.topology_aware && best_cap >= want && want > 1)) {
    // Everything on one node: the best-scored node that holds the whole group.
    const Candidate* best = nullptr;
    for (const Candidate& c : cands) {
      if (c.cap >= want && (best == nullptr || by_score(c, *best))) best = &c;
    }
    if (best != nullptr) {
      plan.push_back({best->node, want});
      placed = want;
    } else if (g.affinity == Affinity::kSameNode) {
      miss.kind = total_cap >= need ? WaitKind::kTopology : WaitKind::kResources;
      return false;
    }
  }
  if (placed == 0 && (g.affinity == Affinity::kSameRack || (opt_.topology_aware && want > 1))) {
    // Fewest racks: the tightest rack that holds the group, nodes with room for most replicas first.
    int32_t chosen = -1, chosen_cap = 0;
    std::vector<std::pair<int32_t, int32_t>> racks(rack_cap.begin(), rack_cap.end());
    std::sort(racks.begin(), racks.end());
    for (auto [rack, cap] : racks) {
      if (cap >= want && (chosen < 0 || cap < chosen_cap)) chosen = rack, chosen_cap = cap;
    }
    auto by_cap = [&](const Candidate& a, const Candidate& b) {
      return std::tie(b.cap, a.score, a.node) < std::tie(a.cap, b.score, b.node);
    };
    if (chosen >= 0) {
      std::vector<Candidate> in_rack;
      for (const Candidate& c : cands) {
        if (c.rack == chosen) in_rack.push_back(c);
      }
      std::sort(in_rack.begin(), in_rack.end(), by_cap);
      placed = fill(in_rack, want);
    } else if (g.affinity == Affinity::kSameRack) {
      miss.kind = total_cap >= need ? WaitKind::kTopology : WaitKind::kResources;
      return false;
    } else {
      // Spill over racks, fullest racks first so the gang touches as few as possible.
      std::sort(cands.begin(), cands.end(), [&](const Candidate& a, const Candidate& b) {
        const int32_t ra = rack_cap[a.rack], rb = rack_cap[b.rack];
        return std::tie(rb, a.rack, b.cap, a.score, a.node) < std::tie(ra, b.rack, a.cap, b.score, b.node);
      });
      placed = fill(cands, want);
    }
  }
  if (placed == 0) {
    std::sort(cands.begin(), cands.end(), by_score);
    placed = fill(cands, want);
  }
  if (placed < need) {
    miss.kind = WaitKind::kResources;
    return false;
  }
  int32_t replica = 0;
  for (auto [n, count] : plan) {
    for (int32_t i = 0; i < count && replica < want; ++i) {
      std::vector<int32_t> devs;
      if (k > 0) {
        devs = ChooseDevices(n, t, k, same_island);
        if (devs.empty()) return false;  // cannot happen: capacity was counted per island
      }
      TaskPlacement p = MakeTask(gi, replica++, n, r, std::move(devs));
      cluster_.Allocate(p);
      out.push_back(std::move(p));
    }
  }
  return true;
}

bool Pass::PlaceFractional(const TaskGroup& g, int32_t gi, const std::vector<DeviceTypeId>& types, int32_t want,
                           bool honour, std::vector<TaskPlacement>& out, Miss& miss) {
  const TaskRequest& r = g.request;
  const NodeScorer& scorer = fgd_ != nullptr && opt_.fgd_for_fractional ? *fgd_ : *sched_.scorer_;
  const int32_t need = std::min(want, g.MinReplicas());
  const int32_t pct = r.device_percent > 0 ? r.device_percent : 1;
  std::vector<int32_t> used_nodes;
  std::vector<int32_t> fits;
  std::vector<double> scores;
  miss.type = types.front();
  for (int32_t replica = 0; replica < want; ++replica) {
    int32_t best_node = -1, best_dev = -1, best_rank = 0;
    double best_score = 0;
    int32_t seen = 0;
    DeviceTypeId t = types.front();
    int32_t rank = 0;  // position of t in `types`: the tie-break after the score
    auto consider = [&](int32_t n) {
      ++stats_.nodes_scored;
      const auto& ns = cluster_.node(n);
      if (Excluded(n, honour)) { ++miss.reserved; return true; }
      if (!g.node_selector.empty() && !LabelsMatch(cluster_.spec(n), g.node_selector)) { ++miss.label_mismatch; return true; }
      if (ns.free_cpu_milli < r.cpu_milli) { ++miss.cpu_short; return true; }
      if (ns.free_memory_mib < r.memory_mib) { ++miss.memory_short; return true; }
      const bool taken = std::find(used_nodes.begin(), used_nodes.end(), n) != used_nodes.end();
      if (g.affinity == Affinity::kSpread && taken) return true;
      if (g.affinity == Affinity::kSameNode && !used_nodes.empty() && !taken) return true;
      fits.clear();
      for (int32_t d = 0; d < ns.num_devices; ++d) {
        const auto& dev = cluster_.device(n, d);
        if (dev.type != t || !dev.usable || !dev.shareable) continue;
        if (dev.free_percent < pct || dev.free_memory_mib < r.device_memory_mib) continue;
        fits.push_back(d);
      }
      scorer.ScoreShares(cluster_, n, t, r, fits, scores);
      for (size_t i = 0; i < fits.size(); ++i) {
        const double sc = scores[i];
        const int32_t d = fits[i];
        if (best_node < 0 || std::tie(sc, rank, n, d) < std::tie(best_score, best_rank, best_node, best_dev)) {
          best_node = n, best_dev = d, best_score = sc, best_rank = rank;
        }
      }
      return ++seen < opt_.fractional_candidates;
    };
    for (rank = 0; rank < static_cast<int32_t>(types.size()); ++rank) {
      t = types[rank];
      seen = 0;
      cluster_.ForEachNodeWithPartial(t, consider);
      if (seen < opt_.fractional_candidates) {
        cluster_.ForEachNodeWithFree(t, 1, scorer.MostFreeFirst(), [&](int32_t n, int32_t) { return consider(n); });
      }
    }
    if (best_node < 0) {
      miss.capacity = replica;
      miss.feasible_nodes = static_cast<int32_t>(used_nodes.size());
      miss.kind = WaitKind::kResources;
      return replica >= need;
    }
    TaskPlacement p = MakeTask(gi, replica, best_node, r, {best_dev});
    cluster_.Allocate(p);
    out.push_back(std::move(p));
    used_nodes.push_back(best_node);
  }
  return true;
}

std::string Pass::Describe(const Job& job, const TaskGroup& g, const Miss& m) const {
  (void)job;
  if (!m.quota.empty()) return m.quota;
  const TaskRequest& r = g.request;
  const std::string type = m.type >= 0 ? cluster_.type_name(m.type) : "";
  std::string ask;
  if (r.devices > 0) {
    ask = g.replicas > 1 ? absl::StrCat(g.replicas, " tasks x ", r.devices, " ", type) : absl::StrCat(r.devices, " x ", type);
  } else if (r.IsFractional()) {
    ask = absl::StrCat(g.replicas > 1 ? absl::StrCat(g.replicas, " tasks x ") : "", r.device_percent, "% of one ", type);
  } else {
    ask = absl::StrCat(g.replicas, " tasks x ", r.cpu_milli, "m CPU");
  }
  std::string where;
  switch (g.affinity) {
    case Affinity::kSameIsland: where = " with each task on one interconnect island"; break;
    case Affinity::kSameNode: where = " on one node"; break;
    case Affinity::kSameRack: where = " in one rack"; break;
    case Affinity::kSpread: where = " on distinct nodes"; break;
    case Affinity::kNone: break;
  }
  std::string have;
  if (m.kind == WaitKind::kTopology) {
    have = g.affinity == Affinity::kSameRack ? absl::StrCat("the best rack has room for ", m.best_rack_capacity)
                                             : absl::StrCat("free capacity is split over ", Plural(m.feasible_nodes, "node", "nodes"));
  } else if (r.devices > 0) {
    const int64_t free = cluster_.free_devices(m.type);
    have = absl::StrCat(free, " of ", cluster_.usable_devices(m.type), " are free");
    if (free >= r.devices) absl::StrAppend(&have, ", at most ", cluster_.MaxFreeOnOneNode(m.type), " on one node");
    absl::StrAppend(&have, "; room for ", m.capacity, " of ", g.MinReplicas(), g.MinReplicas() == 1 ? " task" : " tasks");
  } else {
    have = absl::StrCat("room for ", m.capacity, " of ", g.MinReplicas(), " tasks");
  }
  std::vector<std::string> extra;
  if (m.cpu_short > 0) extra.push_back(absl::StrCat(Plural(m.cpu_short, "node lacks", "nodes lack"), " CPU"));
  if (m.memory_short > 0) extra.push_back(absl::StrCat(Plural(m.memory_short, "node lacks", "nodes lack"), " memory"));
  if (m.label_mismatch > 0) extra.push_back(absl::StrCat(Plural(m.label_mismatch, "node does", "nodes do"), " not match the node selector"));
  if (m.island_short > 0 && g.affinity == Affinity::kSameIsland) extra.push_back(absl::StrCat(Plural(m.island_short, "node has", "nodes have"), " no island with enough free devices"));
  if (m.reserved > 0) extra.push_back(absl::StrCat(Plural(m.reserved, "node is", "nodes are"), " reserved for a larger job"));
  std::string tail = extra.empty() ? "" : absl::StrCat(" (", absl::StrJoin(extra, "; "), ")");
  return absl::StrCat("needs ", ask, where, "; ", have, tail);
}

Attempt Pass::TryPlace(const Job& job, int32_t q, bool honour, bool keep) {
  ++stats_.placement_attempts;
  Attempt a;
  const size_t mark = cluster_.Mark();
  std::vector<QuotaDelta> applied;
  auto undo = [&] {
    cluster_.Rollback(mark);
    for (const QuotaDelta& d : applied) quota_.Apply(q, d, -1);
  };
  for (int32_t gi = 0; gi < static_cast<int32_t>(job.groups.size()); ++gi) {
    const TaskGroup& g = job.groups[gi];
    std::vector<TypeOption> opts;
    if (g.request.NeedsDevices()) {
      opts = TypeOptions(g);
      sched_.ranker_->Rank(opts, market_);
    } else {
      opts.push_back({-1, 1.0});
    }
    bool ok = false;
    Miss first_miss;
    bool have_miss = false;
    // Earliest finish: skip types slower than one where a device frees soon enough.
    const DeviceTypeId faster_type = FasterTypeWorthWaitingFor(job, g, opts, keep);
    if (faster_type >= 0) {
      undo();
      a.kind = WaitKind::kResources;
      a.reason = absl::StrCat("waits for a ", cluster_.type_name(faster_type),
                              " that frees soon: it finishes earlier there than on a slower free type");
      return a;
    }
    // A share of one device with no speed preference between types: every
    // acceptable type's devices compete in one placement (FGD and best fit
    // then see the whole cluster, not the first type that has room).
    bool same_speed = true;
    for (const TypeOption& o : opts) same_speed &= o.throughput == opts.front().throughput;
    if (g.request.IsFractional() && opts.size() > 1 && same_speed) {
      std::vector<DeviceTypeId> allowed;
      for (const TypeOption& o : opts) {
        const QuotaDelta all = Times(TaskDelta(g.request, o.type), g.replicas);
        std::string why = quota_.CheckLimits(q, all);
        if (why.empty()) why = quota_.CheckBorrowing(q, all, cluster_);
        if (why.empty()) {
          allowed.push_back(o.type);
        } else if (!have_miss) {
          first_miss.type = o.type;
          first_miss.kind = WaitKind::kQuota;
          first_miss.quota = why;
          have_miss = true;
        }
      }
      if (!allowed.empty()) {
        Miss miss;
        const size_t gm = cluster_.Mark();
        std::vector<TaskPlacement> tasks;
        if (PlaceFractional(g, gi, allowed, g.replicas, honour, tasks, miss)) {
          cluster_.Commit(gm);
          for (TaskPlacement& t : tasks) {
            const DeviceTypeId type = cluster_.device(t.node, t.devices.front().device).type;
            const QuotaDelta d = TaskDelta(g.request, type);
            quota_.Apply(q, d, +1);
            applied.push_back(d);
            a.charged.push_back(d);
            if (a.type < 0) a.type = type;
            a.tasks.push_back(std::move(t));
          }
          ok = true;
        } else {
          cluster_.Rollback(gm);
          first_miss = miss;
          have_miss = true;
        }
      }
      opts.clear();  // decided here
    } else if (g.request.devices > 0 && g.replicas == 1 && opts.size() > 1 && same_speed) {
      // Whole devices for one task, no speed preference: try the type whose
      // best node scores best first, so the scorer compares the whole
      // cluster rather than the first type with room.
      std::vector<std::pair<double, size_t>> ranked;
      for (size_t i = 0; i < opts.size(); ++i) {
        Miss probe;
        std::vector<TaskPlacement> tasks;
        const size_t gm = cluster_.Mark();
        const bool fits = PlaceGroup(job, g, gi, opts[i].type, 1, honour, tasks, probe);
        cluster_.Rollback(gm);
        double score = std::numeric_limits<double>::infinity();
        if (fits && !tasks.empty()) {
          std::vector<int32_t> devs;
          for (const DeviceSlice& sl : tasks[0].devices) devs.push_back(sl.device);
          score = sched_.scorer_->Score(cluster_, tasks[0].node, opts[i].type, g.request, devs);
        }
        ranked.push_back({score, i});
      }
      std::stable_sort(ranked.begin(), ranked.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
      std::vector<TypeOption> reordered;
      for (const auto& [score, i] : ranked) reordered.push_back(opts[i]);
      opts = std::move(reordered);
    }
    for (const TypeOption& o : opts) {
      Miss miss;
      miss.type = o.type;
      const QuotaDelta per_task = TaskDelta(g.request, o.type);
      int32_t want = g.replicas;
      std::string why = quota_.CheckLimits(q, Times(per_task, want));
      if (!why.empty() && g.MinReplicas() < want && quota_.CheckLimits(q, Times(per_task, g.MinReplicas())).empty()) {
        want = g.MinReplicas();
        why.clear();
      }
      if (why.empty()) why = quota_.CheckBorrowing(q, Times(per_task, want), cluster_);
      if (!why.empty()) {
        miss.kind = WaitKind::kQuota;
        miss.quota = why;
      } else {
        const size_t gm = cluster_.Mark();
        std::vector<TaskPlacement> tasks;
        if (PlaceGroup(job, g, gi, o.type, want, honour, tasks, miss)) {
          cluster_.Commit(gm);
          for (TaskPlacement& t : tasks) {
            const QuotaDelta d = per_task;
            quota_.Apply(q, d, +1);
            applied.push_back(d);
            a.charged.push_back(d);
            a.tasks.push_back(std::move(t));
          }
          if (a.type < 0) a.type = o.type;
          ok = true;
          break;
        }
        cluster_.Rollback(gm);
      }
      // Report the most telling miss: a shape problem over a plain lack of room, quota last.
      if (!have_miss || (first_miss.kind == WaitKind::kQuota && miss.kind != WaitKind::kQuota)) first_miss = miss, have_miss = true;
    }
    if (!ok) {
      undo();
      a.kind = first_miss.kind;
      a.reason = Describe(job, g, first_miss);
      return a;
    }
  }
  a.ok = true;
  if (keep) {
    cluster_.Commit(mark);
  } else {
    undo();
  }
  return a;
}

DeviceTypeId Pass::FasterTypeWorthWaitingFor(const Job& job, const TaskGroup& g, const std::vector<TypeOption>& opts,
                                             bool promise) {
  if (!opt_.wait_for_faster_type || job.runtime_estimate_ms <= 0 || g.replicas != 1 || g.request.devices != 1 ||
      opts.size() < 2) {
    return -1;
  }
  double best = 0;
  for (const TypeOption& o : opts) best = std::max(best, o.throughput);
  if (best <= 0) return -1;
  // Finish time at once on the fastest type that has a free device now.
  double now_finish = std::numeric_limits<double>::infinity();
  DeviceTypeId now_type = -1;
  for (const TypeOption& o : opts) {
    if (o.throughput <= 0 || cluster_.MaxFreeOnOneNode(o.type) < 1) continue;
    const double f = job.runtime_estimate_ms * best / o.throughput;
    if (f < now_finish) now_finish = f, now_type = o.type;
  }
  if (now_type < 0) return -1;  // nothing free: the usual waiting applies
  // The soonest-freeing device of a faster type not yet promised to another job.
  if (promised_.size() != running_.size()) promised_.resize(running_.size(), false);
  int32_t pick = -1;
  // Waiting must win by a margin: the estimate and the freeing time are guesses.
  double pick_finish = now_finish * (1.0 - opt_.faster_type_min_gain);
  DeviceTypeId pick_type = -1;
  for (size_t i = 0; i < running_.size(); ++i) {
    const Running& r = running_[i];
    if (promised_[i] || r.stopped || r.end_ms == std::numeric_limits<int64_t>::max() || r.types.size() != 1) continue;
    for (const TypeOption& o : opts) {
      if (o.type != r.types[0] || o.throughput <= 0 || o.type == now_type) continue;
      const double wait = static_cast<double>(std::max<int64_t>(0, r.end_ms - snap_.now_ms));
      const double f = wait + job.runtime_estimate_ms * best / o.throughput;
      if (f < pick_finish) pick_finish = f, pick = static_cast<int32_t>(i), pick_type = o.type;
    }
  }
  if (pick < 0) return -1;
  if (promise) promised_[pick] = true;
  return pick_type;
}

void Pass::MigrateToFasterTypes(Decisions& out) {
  if (!opt_.migrate_to_faster_type) return;
  if (promised_.size() != running_.size()) promised_.resize(running_.size(), false);
  std::vector<char> stays(running_.size(), 0);  // a move was tried and failed
  const bool honour = reservations_ > 0;
  for (int moves = 0; moves < opt_.max_migrations_per_pass; ++moves) {
    // The move that saves the most time, over every eligible job and faster type
    // with a free device now.
    int32_t pick = -1;
    DeviceTypeId pick_type = -1;
    double pick_gain = 0;
    int64_t pick_left = 0;
    for (int32_t i = 0; i < static_cast<int32_t>(running_.size()); ++i) {
      const Running& r = running_[i];
      if (r.stopped || r.bound_now || promised_[i] || stays[i] || !r.job->preemptible ||
          r.end_ms == std::numeric_limits<int64_t>::max() || r.tasks.size() != 1 || r.types.size() != 1 ||
          r.job->groups.size() != 1) {
        continue;
      }
      const TaskGroup& g = r.job->groups[0];
      if (g.request.devices != 1 || g.replicas != 1) continue;
      const std::vector<TypeOption> opts = TypeOptions(g);
      double current = 0;
      for (const TypeOption& o : opts) {
        if (o.type == r.types[0]) current = o.throughput;
      }
      if (current <= 0) continue;
      const double left = static_cast<double>(r.end_ms - snap_.now_ms);
      if (left <= 0) continue;  // due to end now; moving it gains nothing
      for (const TypeOption& o : opts) {
        if (o.throughput <= current || cluster_.MaxFreeOnOneNode(o.type) < 1) continue;
        const double there = left * current / o.throughput + static_cast<double>(opt_.migration_cost_ms);
        const double gain = left - there;
        if (gain >= opt_.faster_type_min_gain * left && gain > pick_gain) {
          pick = i, pick_type = o.type, pick_gain = gain, pick_left = static_cast<int64_t>(there);
        }
      }
    }
    if (pick < 0) return;
    Running& from = running_[pick];
    const Job& job = *from.job;
    const TaskGroup& g = job.groups[0];
    const size_t mark = cluster_.Mark();
    StopRunning(from);
    const QuotaDelta d = TaskDelta(g.request, pick_type);
    std::vector<TaskPlacement> tasks;
    Miss miss;
    const bool placed = quota_.CheckLimits(from.queue, d).empty() &&
                        quota_.CheckBorrowing(from.queue, d, cluster_).empty() &&
                        PlaceGroup(job, g, 0, pick_type, 1, honour, tasks, miss) && tasks.size() == 1;
    if (!placed) {  // the free device is reserved or over quota: leave the job where it is
      cluster_.Rollback(mark);
      for (const QuotaDelta& c : from.charged) quota_.Apply(from.queue, c, +1);
      from.stopped = false;
      stays[pick] = 1;
      continue;
    }
    cluster_.Commit(mark);
    quota_.Apply(from.queue, d, +1);
    MigrateDecision m;
    m.job = job.id;
    m.from_type = cluster_.type_name(from.types[0]);
    m.device_type = cluster_.type_name(pick_type);
    m.tasks = tasks;
    m.reason = absl::StrCat("moves from ", m.from_type, " to a free ", m.device_type, ", where it ends about ",
                            static_cast<int64_t>(pick_gain / 60'000), " min sooner");
    out.migrations.push_back(std::move(m));
    TrackStarted(job, from.queue, std::move(tasks), {d}, snap_.now_ms + pick_left);
    promised_.push_back(false);
    stays.push_back(0);
  }
}

void Pass::NoteHoldings(Running& r) const {
  for (const TaskPlacement& t : r.tasks) {
    for (const DeviceSlice& sl : t.devices) {
      r.held_milli += sl.percent * 10;
      const DeviceTypeId type = cluster_.device(t.node, sl.device).type;
      if (std::find(r.types.begin(), r.types.end(), type) == r.types.end()) r.types.push_back(type);
    }
  }
}

void Pass::StopRunning(Running& r) {
  for (const TaskPlacement& t : r.tasks) cluster_.Release(t);
  for (const QuotaDelta& d : r.charged) quota_.Apply(r.queue, d, -1);
  r.stopped = true;
}

void Pass::RestartRunning(Running& r) {
  for (const TaskPlacement& t : r.tasks) cluster_.Allocate(t);
  for (const QuotaDelta& d : r.charged) quota_.Apply(r.queue, d, +1);
  r.stopped = false;
}

std::vector<int32_t> Pass::FindVictims(const Job& job, int32_t q, const std::vector<int32_t>& candidates,
                                       const std::vector<char>& reclaim) {
  // Greedy: stop candidates in order until the job fits, then give back every
  // victim it can do without (latest picks are kept, earlier ones retried).
  // Leaves cluster and quota exactly as found.
  const size_t mark = cluster_.Mark();
  std::vector<int32_t> chosen;
  bool fits = false;
  for (int32_t v : candidates) {
    if (static_cast<int32_t>(chosen.size()) >= opt_.max_victims) break;
    // Reclaim takes only what is borrowed: never push a lender below its guarantee.
    if (reclaim[v] && !quota_.IsBorrowing(running_[v].queue)) continue;
    StopRunning(running_[v]);
    chosen.push_back(v);
    if (TryPlace(job, q, true, false).ok) {
      fits = true;
      break;
    }
  }
  if (fits) {
    for (size_t i = chosen.size(); i-- > 1;) {
      Running& r = running_[chosen[i - 1]];
      bool fits_back = true;
      for (const TaskPlacement& t : r.tasks) fits_back &= cluster_.CheckFits(t).ok();
      if (!fits_back) continue;
      RestartRunning(r);
      if (TryPlace(job, q, true, false).ok) {
        chosen.erase(chosen.begin() + static_cast<std::ptrdiff_t>(i - 1));
      } else {
        StopRunning(r);
      }
    }
  }
  // Undo: the cluster by its journal, the quota tree and flags by hand.
  for (int32_t v : chosen) {
    running_[v].stopped = false;
    for (const QuotaDelta& d : running_[v].charged) quota_.Apply(running_[v].queue, d, +1);
  }
  cluster_.Rollback(mark);
  if (!fits) chosen.clear();
  return chosen;
}

bool Pass::TryPreempt(const Job& job, int32_t q, Decisions& out) {
  if (!opt_.preemption || preemption_attempts_ >= opt_.max_preemption_attempts) return false;
  // Victims must hold a device type the job accepts (or the job needs no devices).
  std::vector<char> useful(cluster_.num_types(), 0);
  bool any_devices = false;
  // Reclaim: a queue that would stay within its guarantee on some device type
  // the job accepts may take back what other queues borrowed.
  bool reclaiming = false;
  QuotaDelta host;  // CPU and memory of the whole gang
  for (const TaskGroup& g : job.groups) host += Times(TaskDelta(g.request, -1), g.MinReplicas());
  for (const TaskGroup& g : job.groups) {
    if (!g.request.NeedsDevices()) continue;
    any_devices = true;
    for (const TypeOption& o : TypeOptions(g)) {
      useful[o.type] = 1;
      QuotaDelta d = host;
      d.type = o.type;
      d.device_milli = Times(TaskDelta(g.request, o.type), g.MinReplicas()).device_milli;
      reclaiming |= quota_.WithinGuarantee(q, d);
    }
  }
  if (!any_devices) reclaiming = quota_.WithinGuarantee(q, host);
  const LasOrder* las = dynamic_cast<const LasOrder*>(sched_.order_.get());
  const SjfOrder* srtf = dynamic_cast<const SjfOrder*>(sched_.order_.get());
  if (srtf != nullptr && (!srtf->preemptive() || job.runtime_estimate_ms <= 0)) srtf = nullptr;
  const GittinsOrder* gittins = dynamic_cast<const GittinsOrder*>(sched_.order_.get());
  if (gittins != nullptr && job.runtime_estimate_ms <= 0) gittins = nullptr;
  const double job_rank = gittins != nullptr ? gittins->RankMs(job, RunSoFarMs(job)) : 0;
  std::vector<double> victim_rank(gittins != nullptr ? running_.size() : 0);
  struct Candidate {
    int reclaim_rank;  // 0: reclaims borrowed quota, 1: lower priority
    int32_t priority;
    int level;  // LAS level (higher: more attained service, preempted first)
    int64_t start_ms;
    int64_t held;
    JobId id;
    int32_t index;
  };
  std::vector<Candidate> candidates;
  std::vector<char> reclaim(running_.size(), 0);
  std::vector<char> borrowing(quota_.num_queues(), 0);
  for (int32_t qq = 0; qq < quota_.num_queues(); ++qq) borrowing[qq] = reclaiming && qq != q && quota_.IsBorrowing(qq);
  for (int32_t i = 0; i < static_cast<int32_t>(running_.size()); ++i) {
    const Running& r = running_[i];
    if (r.stopped || r.bound_now || !r.job->preemptible) continue;
    bool holds_useful = !any_devices;
    for (DeviceTypeId t : r.types) holds_useful |= useful[t] != 0;
    if (!holds_useful) continue;
    // Tiresias: under LAS order a job may also preempt same-priority jobs of
    // its queue that have attained more service (a higher LAS level).
    const bool las_lower = las != nullptr && r.queue == q && r.job->priority == job.priority &&
                           las->Level(r.job->attained_device_s) > las->Level(job.attained_device_s);
    // SRTF: ... or jobs expected to run much longer (the margin keeps two
    // jobs of similar length from trading places on every pass).
    const bool srtf_longer =
        srtf != nullptr && r.queue == q && r.job->priority == job.priority &&
        ExpectedLeftMs(r, snap_.now_ms) > kSrtfMargin * static_cast<double>(job.runtime_estimate_ms);
    // Gittins: ... or jobs whose rank is much worse (the same margin).
    bool gittins_worse = false;
    if (gittins != nullptr && r.queue == q && r.job->priority == job.priority) {
      victim_rank[i] = gittins->RankMs(*r.job, RunningAgeMs(r, snap_.now_ms));
      gittins_worse = victim_rank[i] > kSrtfMargin * job_rank;
    }
    const bool lower =
        (r.queue == q && r.job->priority < job.priority) || las_lower || srtf_longer || gittins_worse;
    reclaim[i] = borrowing[r.queue];
    if (lower || reclaim[i]) {
      // Higher level: preempted first (LAS: more service; SRTF: longer left;
      // Gittins: worse rank; both in minutes).
      const double minutes = srtf != nullptr      ? ExpectedLeftMs(r, snap_.now_ms) / 60'000.0
                             : gittins != nullptr ? victim_rank[i] / 60'000.0
                                                  : 0.0;
      const int level = las != nullptr ? las->Level(r.job->attained_device_s) : static_cast<int>(std::min(minutes, 1e9));
      candidates.push_back({reclaim[i] ? 0 : 1, r.job->priority, level, r.start_ms, r.held_milli, r.job->id, i});
    }
  }
  if (candidates.empty()) return false;
  ++preemption_attempts_;
  ++stats_.preemption_attempts;
  // Borrowed capacity first, then lowest priority; within that, two greedy
  // orders (youngest first: least work lost; largest first: fewest victims),
  // keeping whichever needs fewer victims.
  std::vector<int32_t> youngest, largest;
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.reclaim_rank, a.priority, b.level, b.start_ms, a.id) <
           std::tie(b.reclaim_rank, b.priority, a.level, a.start_ms, b.id);
  });
  for (const Candidate& c : candidates) youngest.push_back(c.index);
  std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.reclaim_rank, a.priority, b.level, b.held, b.start_ms, a.id) <
           std::tie(b.reclaim_rank, b.priority, a.level, a.held, a.start_ms, b.id);
  });
  for (const Candidate& c : candidates) largest.push_back(c.index);
  std::vector<int32_t> chosen = FindVictims(job, q, youngest, reclaim);
  std::vector<int32_t> alt = FindVictims(job, q, largest, reclaim);
  if (chosen.empty() || (!alt.empty() && alt.size() < chosen.size())) chosen = std::move(alt);
  if (chosen.empty()) return false;  // never preempt for a job that would still not fit

  const size_t mark = cluster_.Mark();
  for (int32_t v : chosen) StopRunning(running_[v]);
  Attempt a = TryPlace(job, q, true, true);
  if (!a.ok) {  // unreachable: FindVictims proved it fits on this very state
    for (int32_t v : chosen) running_[v].stopped = false;
    for (int32_t v : chosen) {
      for (const QuotaDelta& d : running_[v].charged) quota_.Apply(running_[v].queue, d, +1);
    }
    cluster_.Rollback(mark);
    return false;
  }
  cluster_.Commit(mark);
  std::vector<JobId> after;
  for (int32_t i : chosen) {
    const Running& r = running_[i];
    out.preemptions.push_back(
        {r.job->id, job.id,
         reclaim[i] ? absl::StrCat("queue '", quota_.queue(r.queue).name, "' borrowed capacity that queue '",
                                   quota_.queue(q).name, "' reclaims for job ", job.id.value())
         : r.job->priority < job.priority
             ? absl::StrCat("job ", job.id.value(), " has higher priority (", job.priority, " > ", r.job->priority, ")")
         : las != nullptr
             ? absl::StrCat("job ", job.id.value(), " has attained less service (LAS level ",
                            las->Level(job.attained_device_s), " < ", las->Level(r.job->attained_device_s), ")")
         : gittins != nullptr ? GittinsReason(job, job_rank, victim_rank[i])
                              : SrtfReason(job, ExpectedLeftMs(r, snap_.now_ms))});
    after.push_back(r.job->id);
  }
  Bind(job, q, std::move(a), std::move(after), out);
  failed_shapes_.clear();  // capacity moved; earlier failures may fit now
  return true;
}

void Pass::TryReserve(const Job& job, int32_t q, Decisions& out) {
  // Release running jobs in order of expected end until the job fits: that end
  // is its shadow time and the nodes it would use are reserved (EASY backfill,
  // Lifka 1995; Slurm's sched/backfill).
  std::vector<int32_t> ending;
  for (int32_t i = 0; i < static_cast<int32_t>(running_.size()); ++i) {
    if (!running_[i].stopped && running_[i].end_ms != std::numeric_limits<int64_t>::max()) ending.push_back(i);
  }
  std::sort(ending.begin(), ending.end(), [&](int32_t a, int32_t b) {
    return std::tie(running_[a].end_ms, running_[a].job->id) < std::tie(running_[b].end_ms, running_[b].job->id);
  });
  const size_t mark = cluster_.Mark();
  Attempt found;
  int64_t start = 0;
  for (int32_t i : ending) {
    StopRunning(running_[i]);
    Attempt a = TryPlace(job, q, false, false);
    if (a.ok) {
      found = std::move(a);
      start = std::max(snap_.now_ms, running_[i].end_ms);
      break;
    }
  }
  for (int32_t i : ending) {
    if (running_[i].stopped) {
      running_[i].stopped = false;
      for (const QuotaDelta& d : running_[i].charged) quota_.Apply(running_[i].queue, d, +1);
    }
  }
  cluster_.Rollback(mark);
  if (!found.ok) return;
  ReserveDecision res{job.id, start, {}};
  for (const TaskPlacement& t : found.tasks) {
    if (std::find(res.nodes.begin(), res.nodes.end(), t.node) == res.nodes.end()) res.nodes.push_back(t.node);
  }
  std::sort(res.nodes.begin(), res.nodes.end());
  for (int32_t n : res.nodes) ++excluded_[n];
  if (start < shadow_ms_) shadow_ms_ = start, shadow_job_ = job.id;
  ++reservations_;
  failed_shapes_.clear();  // exclusions changed what fits
  out.reservations.push_back(std::move(res));
}

void Pass::TrackStarted(const Job& job, int32_t q, std::vector<TaskPlacement> tasks, std::vector<QuotaDelta> charged,
                        int64_t end_ms) {
  Running r;
  r.job = &job;
  r.queue = q;
  r.start_ms = snap_.now_ms;
  r.end_ms = end_ms;
  r.tasks = std::move(tasks);
  r.charged = std::move(charged);
  r.bound_now = true;
  NoteHoldings(r);
  running_.push_back(std::move(r));
}

void Pass::Bind(const Job& job, int32_t q, Attempt&& a, std::vector<JobId> after, Decisions& out) {
  TrackStarted(
      job, q, a.tasks, a.charged,
      job.runtime_estimate_ms > 0 ? snap_.now_ms + job.runtime_estimate_ms : std::numeric_limits<int64_t>::max());
  BindDecision b;
  b.job = job.id;
  b.device_type = a.type >= 0 ? cluster_.type_name(a.type) : "";
  b.tasks = std::move(a.tasks);
  b.after_preemption = std::move(after);
  out.binds.push_back(std::move(b));
}

std::string Pass::ShapeKey(const Job& job) const {
  std::string key = absl::StrCat(job.queue, "|", job.priority, "|");
  for (const TaskGroup& g : job.groups) {
    const TaskRequest& r = g.request;
    absl::StrAppend(&key, g.replicas, ",", g.min_available, ",", r.cpu_milli, ",", r.memory_mib, ",", r.devices, ",",
                    r.device_percent, ",", r.device_memory_mib, ",", static_cast<int>(g.affinity), ",");
    for (const DeviceChoice& c : g.device_choices) absl::StrAppend(&key, c.vendor, "/", c.model, "@", c.throughput, ";");
    for (const auto& [k, v] : g.node_selector) absl::StrAppend(&key, k, "=", v, ";");
    key += "|";
  }
  return key;
}

Decisions Pass::Run() {
  Decisions out;
  const auto& pending = snap_.pending;
  OrderInput in;
  in.snapshot = &snap_;
  in.quota = &quota_;
  in.capacity = quota_.Capacity(cluster_);
  in.queue_of.resize(pending.size());
  in.demand.resize(pending.size());
  std::vector<std::string> invalid(pending.size());
  for (size_t i = 0; i < pending.size(); ++i) {
    const Job& job = pending[i];
    in.queue_of[i] = quota_.Find(job.queue);
    invalid[i] = ValidateJob(job);
    if (invalid[i].empty()) {
      for (const TaskGroup& g : job.groups) in.demand[i] += Times(TaskDelta(g.request, -1), g.MinReplicas());
    }
  }
  const std::vector<int32_t> order = sched_.order_->Order(in);
  bool blocked = false;  // strict mode: an earlier job could not start
  for (int32_t i : order) {
    const Job& job = pending[i];
    ++stats_.jobs_considered;
    auto wait = [&](WaitKind kind, std::string reason) { out.waiting.push_back({job.id, kind, std::move(reason)}); };
    if (!invalid[i].empty()) { wait(WaitKind::kInvalid, invalid[i]); continue; }
    const int32_t q = in.queue_of[i];
    if (q < 0) { wait(WaitKind::kInvalid, absl::StrCat("queue '", job.queue, "' does not exist; submit to an existing queue")); continue; }
    if (std::string never = NeverFits(job, q); !never.empty()) { wait(WaitKind::kNeverFits, never); continue; }
    if (blocked) { wait(WaitKind::kOrder, "waits for earlier jobs (strict ordering)"); continue; }
    // Jobs that end before the earliest reservation cannot delay it.
    const bool honour = reservations_ > 0 &&
                        !(job.runtime_estimate_ms > 0 && snap_.now_ms + job.runtime_estimate_ms <= shadow_ms_);
    const std::string key = honour ? "" : ShapeKey(job);
    if (!honour) {
      if (auto it = failed_shapes_.find(key); it != failed_shapes_.end()) {
        ++stats_.shape_cache_hits;
        wait(it->second.first, it->second.second);
        continue;
      }
    }
    Attempt a = TryPlace(job, q, honour, true);
    if (a.ok) { Bind(job, q, std::move(a), {}, out); continue; }
    if (a.kind != WaitKind::kQuota && TryPreempt(job, q, out)) continue;
    if (honour && a.kind != WaitKind::kQuota && TryPlace(job, q, false, false).ok) {
      wait(WaitKind::kReservation, absl::StrCat("would delay job ", shadow_job_.value(), ", which holds a reservation; ",
                                                job.runtime_estimate_ms > 0 ? "its runtime estimate ends too late"
                                                                            : "give it a runtime estimate to let it backfill"));
      continue;
    }
    if (opt_.backfill == BackfillMode::kStrict) blocked = true;
    if (opt_.backfill == BackfillMode::kEasy && reservations_ < opt_.reservation_depth && a.kind != WaitKind::kQuota) {
      TryReserve(job, q, out);
    }
    if (!honour && a.kind != WaitKind::kQuota) failed_shapes_[key] = {a.kind, a.reason};
    wait(a.kind, a.reason);
  }
  MigrateToFasterTypes(out);
  out.stats = stats_;
  return out;
}

Decisions Pass::PlaceOne(const Job& submitted) {
  Decisions out;
  const Job& job = adopted_.emplace_back(submitted);
  if (std::string bad = ValidateJob(job); !bad.empty()) {
    out.waiting.push_back({job.id, WaitKind::kInvalid, bad});
    return out;
  }
  const int32_t q = quota_.Find(job.queue);
  if (q < 0) {
    out.waiting.push_back({job.id, WaitKind::kInvalid, absl::StrCat("queue '", job.queue, "' does not exist")});
    return out;
  }
  if (std::string never = NeverFits(job, q); !never.empty()) {
    out.waiting.push_back({job.id, WaitKind::kNeverFits, never});
    return out;
  }
  const bool honour = reservations_ > 0 &&
                      !(job.runtime_estimate_ms > 0 && snap_.now_ms + job.runtime_estimate_ms <= shadow_ms_);
  Attempt a = TryPlace(job, q, honour, true);
  if (a.ok) {
    Bind(job, q, std::move(a), {}, out);
  } else {
    out.waiting.push_back({job.id, a.kind, a.reason});
  }
  out.stats = stats_;
  return out;
}

// --- Scheduler and SchedulingSession --------------------------------------------

Scheduler::Scheduler(SchedulerOptions options) : options_(std::move(options)) {}
Scheduler::Scheduler(Scheduler&&) noexcept = default;
Scheduler& Scheduler::operator=(Scheduler&&) noexcept = default;
Scheduler::~Scheduler() = default;

absl::StatusOr<Scheduler> Scheduler::Create(SchedulerOptions options) {
  if (options.reservation_depth < 0 || options.max_preemption_attempts < 0 || options.max_victims < 1 ||
      options.min_feasible_nodes < 1 || options.gang_feasible_nodes < 1 || options.fractional_candidates < 1) {
    return absl::InvalidArgumentError("scheduler limits must be positive");
  }
  if (!(options.faster_type_min_gain >= 0 && options.faster_type_min_gain < 1)) {
    return absl::InvalidArgumentError("faster_type_min_gain must be in [0, 1)");
  }
  Scheduler s(std::move(options));
  if (s.options_.migration_cost_ms < 0 || s.options_.max_migrations_per_pass < 0) {
    return absl::InvalidArgumentError("migration cost and migrations per pass must not be negative");
  }
  auto order = MakeOrderPolicy(s.options_.order, s.options_.las_thresholds_s);
  if (!order.ok()) return order.status();
  auto scorer = MakeNodeScorer(s.options_.placement);
  if (!scorer.ok()) return scorer.status();
  s.order_ = *std::move(order);
  s.scorer_ = *std::move(scorer);
  if (auto* fgd = dynamic_cast<FgdScorer*>(s.scorer_.get()); fgd != nullptr) fgd->set_workload(s.options_.workload);
  if (s.options_.heterogeneity_aware) {
    s.ranker_ = std::make_unique<HeterogeneityRanker>();
  } else {
    s.ranker_ = std::make_unique<ListedOrderRanker>();
  }
  return s;
}

absl::StatusOr<Decisions> Scheduler::Schedule(const Snapshot& snapshot) const {
  absl::StatusOr<std::unique_ptr<Pass>> pass = Pass::Begin(*this, snapshot);
  if (!pass.ok()) return pass.status();
  return (*pass)->Run();
}

SchedulingSession::SchedulingSession(std::unique_ptr<Pass> pass) : pass_(std::move(pass)) {}
SchedulingSession::SchedulingSession(SchedulingSession&&) noexcept = default;
SchedulingSession& SchedulingSession::operator=(SchedulingSession&&) noexcept = default;
SchedulingSession::~SchedulingSession() = default;

absl::StatusOr<SchedulingSession> SchedulingSession::Begin(const Scheduler& scheduler, const Snapshot& snapshot) {
  absl::StatusOr<std::unique_ptr<Pass>> pass = Pass::Begin(scheduler, snapshot);
  if (!pass.ok()) return pass.status();
  return SchedulingSession(*std::move(pass));
}

Decisions SchedulingSession::RunPass() { return pass_->Run(); }
Decisions SchedulingSession::PlaceOne(const Job& job) { return pass_->PlaceOne(job); }

}  // namespace icos::core
