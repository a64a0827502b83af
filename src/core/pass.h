// The scheduling pass: what one call of Scheduler::Schedule (or a
// SchedulingSession) works on. Internal to icos_core: its three parts are
// scheduler.cc (the pass's frame: snapshot adoption, order, binds),
// pass_placement.cc (where a job fits and why not) and pass_preemption.cc
// (victims, reservations for backfill, moves to faster device types).
#ifndef ICOS_CORE_PASS_H_
#define ICOS_CORE_PASS_H_

#include <algorithm>
#include <cmath>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "core/resources/cluster_state.h"
#include "core/resources/quota.h"
#include "core/scheduler.h"

namespace icos::core {

// A running job as the pass tracks it (from the snapshot or bound in this pass).
struct Running {
  const Job* job = nullptr;
  int32_t queue = -1;
  std::vector<TaskPlacement> tasks;
  std::vector<QuotaDelta> charged;  // one per task, as applied to the quota tree
  int64_t start_ms = 0;
  int64_t end_ms = std::numeric_limits<int64_t>::max();  // unknown: never for backfill
  bool stopped = false;                                  // preempted in this pass
  bool bound_now = false;                                // started by this pass: never its own victim
  int64_t held_milli = 0;                                // device share held, in milli-devices
  std::vector<DeviceTypeId> types;                       // device types held (usually one)
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

inline QuotaDelta TaskDelta(const TaskRequest& r, DeviceTypeId t) {
  QuotaDelta d;
  d.cpu_milli = r.cpu_milli;
  d.memory_mib = r.memory_mib;
  d.type = t;
  d.device_milli =
      r.devices > 0 ? int64_t{r.devices} * 1000 : (r.IsFractional() ? std::max(1, r.device_percent) * 10 : 0);
  return d;
}

inline QuotaDelta Times(QuotaDelta d, int32_t n) {
  d.cpu_milli *= n;
  d.memory_mib *= n;
  d.device_milli *= n;
  return d;
}

inline bool LabelsMatch(const Node& node, const std::map<std::string, std::string>& selector) {
  for (const auto& [k, v] : selector) {
    auto it = node.labels.find(k);
    if (it == node.labels.end() || it->second != v) return false;
  }
  return true;
}

inline std::string Plural(int64_t n, const char* one, const char* many) {
  return absl::StrCat(n, " ", n == 1 ? one : many);
}

// SRTF preempts a running job only when it is expected to run this many times
// longer than the waiting job.
constexpr double kSrtfMargin = 2.0;

// The age of a running job in ms: its wall time under way, all runs together
// (attained device-seconds over the devices it holds).
inline double RunningAgeMs(const Running& r, int64_t now_ms) {
  const double devices = std::max<int64_t>(r.held_milli, 1'000) / 1000.0;
  return std::max(static_cast<double>(now_ms - r.start_ms), r.job->attained_device_s * 1000.0 / devices);
}

// What a running job is expected to need still, in ms. Past its estimate it is
// guessed to need as long again as it has run (long jobs tend to run longer);
// without an estimate, longer than anything.
inline double ExpectedLeftMs(const Running& r, int64_t now_ms) {
  if (r.end_ms == std::numeric_limits<int64_t>::max()) return std::numeric_limits<double>::infinity();
  if (r.end_ms > now_ms) return static_cast<double>(r.end_ms - now_ms);
  return RunningAgeMs(r, now_ms);
}

inline std::string GittinsReason(const Job& job, double job_rank_ms, double victim_rank_ms) {
  auto minutes = [](double ms) {
    return std::isinf(ms) ? std::string("unknown") : absl::StrCat(static_cast<int64_t>(ms / 60'000), " min");
  };
  return absl::StrCat("job ", job.id.value(), " is more likely to end soon (Gittins rank ", minutes(job_rank_ms),
                      " against ", minutes(victim_rank_ms), ")");
}

inline std::string SrtfReason(const Job& job, double victim_left_ms) {
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
  // Why `job` cannot be placed whatever running jobs do, or "". `kind`:
  // kNeverFits, or kResources where devices it could use are only out of
  // service (unhealthy, drained, an unschedulable node): those may return.
  std::string NeverFits(const Job& job, int32_t q, WaitKind* kind) const;
  // Why group `g` can use none of the device types it accepts, or "".
  std::string NoTypeFits(const TaskGroup& g, const std::string& who, const QuotaDelta& host, int32_t q,
                         WaitKind* kind) const;
  // How many nodes carry every label of `selector` (all nodes when empty).
  int32_t NodesMatching(const std::map<std::string, std::string>& selector) const;
  Attempt TryPlace(const Job& job, int32_t q, bool honour_reservations, bool keep);
  bool PlaceGroup(const Job& job, const TaskGroup& g, int32_t gi, DeviceTypeId t, int32_t want, bool honour,
                  std::vector<TaskPlacement>& out, Miss& miss);
  // A share of one device per replica, on any of `types` (best score wins
  // across all of them: FGD compares every node, whatever its model).
  bool PlaceFractional(const TaskGroup& g, int32_t gi, const std::vector<DeviceTypeId>& types, int32_t want,
                       bool honour, std::vector<TaskPlacement>& out, Miss& miss);
  std::vector<int32_t> ChooseDevices(int32_t n, DeviceTypeId t, int32_t k, bool same_island) const;
  TaskPlacement MakeTask(int32_t gi, int32_t replica, int32_t n, const TaskRequest& r,
                         std::vector<int32_t> devices) const;
  std::string Describe(const Job& job, const TaskGroup& g, const Miss& m) const;
  bool TryPreempt(const Job& job, int32_t q, Decisions& out);
  std::vector<int32_t> FindVictims(const Job& job, int32_t q, const std::vector<int32_t>& candidates,
                                   const std::vector<char>& reclaim);
  void TryReserve(const Job& job, int32_t q, Decisions& out);
  // Not to be stopped now: its queue's min_run_ms has not passed, or it was
  // interrupted max_interruptions_per_hour times in the last hour.
  bool Exempt(const Running& r) const;
  // The wall time stopping `r` now throws away: since its last checkpoint
  // (or its run's start, if later) plus the restore it pays.
  int64_t StopCostMs(const Running& r) const;
  // ... times the devices it holds.
  double LostDeviceS(const Running& r) const;
  // The wall time a stop of `r` throws away, if it declares checkpoints
  // (Job::checkpoints): since its last checkpoint, plus the restore; else 0.
  double LostMs(const Running& r) const;
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
  // What makes two jobs the same shape for the pass's cache of failures
  // (`honour`: whether the job must honour the reservations), as bytes.
  std::string ShapeKey(const Job& job, bool honour) const;

  const Scheduler& sched_;
  const SchedulerOptions& opt_;
  const Snapshot& snap_;
  ClusterState cluster_;
  QuotaTracker quota_;
  std::unique_ptr<FgdScorer> fgd_;
  std::vector<double> market_;
  std::vector<Running> running_;
  std::vector<bool> promised_;  // running_[i]'s devices promised to a job waiting for them
  std::deque<Job> adopted_;     // jobs handed to PlaceOne, kept alive for running_
  int64_t max_node_cpu_ = 0, max_node_memory_ = 0;
  std::vector<int64_t> max_device_memory_;  // per type
  std::vector<uint16_t> excluded_;          // per node: reservations that hold it
  int64_t shadow_ms_ = std::numeric_limits<int64_t>::max();
  JobId shadow_job_;
  int reservations_ = 0;
  int preemption_attempts_ = 0;
  absl::flat_hash_map<std::string, std::pair<WaitKind, std::string>> failed_shapes_;
  mutable absl::flat_hash_map<std::string, int32_t> selector_nodes_;  // NodesMatching, by selector
  // Per device type, counting devices out of service too (unhealthy,
  // drained, unschedulable nodes): what the cluster holds once they return.
  // Filled on first need (a job that does not fit).
  struct AllDevices {
    int32_t per_node = 0, per_island = 0;
    int64_t total = 0;
  };
  const AllDevices& AllDevicesOf(DeviceTypeId t) const;
  mutable std::vector<AllDevices> all_devices_;
  PassStats stats_;
};

}  // namespace icos::core

#endif  // ICOS_CORE_PASS_H_
