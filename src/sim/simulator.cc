#include "sim/simulator.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <deque>
#include <memory>
#include <numbers>
#include <queue>
#include <random>
#include <set>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/unit_interval.h"
#include "core/estimates.h"
#include "core/resources/quota.h"
#include "core/resources/usage_history.h"

namespace icos::sim {
namespace {

constexpr int32_t kDefaultPerNode = 4;
constexpr int64_t kHourMs = 3'600'000;

int64_t ToMs(double s) { return core::SecondsToMs(s); }

core::Node MakeNode(int32_t index, int32_t devices, const std::string& model) {
  core::Node n;
  n.name = absl::StrCat("node-", index);
  n.cpu_milli = 96'000;
  n.memory_mib = 768 * 1'024;
  for (int32_t d = 0; d < devices; ++d) {
    core::Device dev;
    dev.vendor = "nvidia";
    dev.model = model;
    dev.memory_mib = 32'768;
    dev.island = 0;
    n.devices.push_back(dev);
  }
  n.network_path = {absl::StrCat("rack-", index / 32)};
  return n;
}

}  // namespace

absl::StatusOr<std::vector<core::Node>> ParseClusterSpec(absl::string_view spec) {
  std::vector<core::Node> nodes;
  for (absl::string_view item : absl::StrSplit(spec, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> parts = absl::StrSplit(item, 'x');
    int64_t node_count = 0, per_node = kDefaultPerNode, gpus = 0;
    auto bad = [&] {
      return absl::InvalidArgumentError(
          absl::StrCat("cluster spec item '", item, "': expected GPUSxMODEL (nodes of 4) or NODESxPER_NODExMODEL"));
    };
    if (parts.size() == 2) {
      if (!absl::SimpleAtoi(parts[0], &gpus) || gpus < 1 || gpus > 10'000'000) return bad();
      node_count = (gpus + per_node - 1) / per_node;
    } else if (parts.size() == 3) {
      if (!absl::SimpleAtoi(parts[0], &node_count) || !absl::SimpleAtoi(parts[1], &per_node) || node_count < 1 ||
          per_node < 1 || per_node > 1024 || node_count > 1'000'000) {
        return bad();
      }
      gpus = node_count * per_node;
    } else {
      return bad();
    }
    const std::string model(absl::StripAsciiWhitespace(parts.back()));
    if (model.empty()) return bad();
    for (int64_t i = 0; i < node_count; ++i) {
      const int64_t left = gpus - i * per_node;
      nodes.push_back(
          MakeNode(static_cast<int32_t>(nodes.size()), static_cast<int32_t>(std::min(left, per_node)), model));
    }
  }
  if (nodes.empty()) return absl::InvalidArgumentError(absl::StrCat("cluster spec '", spec, "' names no devices"));
  // Names of one width ("node-007"), so that name order is index order: the
  // controller keeps nodes by name, and a live run of the same cluster must
  // see them in the simulator's order (placement ties go to the first).
  const size_t width = std::to_string(nodes.size() - 1).size();
  for (size_t i = 0; i < nodes.size(); ++i) {
    const std::string digits = std::to_string(i);
    nodes[i].name = absl::StrCat("node-", std::string(width - digits.size(), '0'), digits);
  }
  return nodes;
}

std::string DescribePlacement(const std::vector<core::Node>& nodes, const std::vector<core::TaskPlacement>& tasks) {
  std::vector<std::string> parts;
  parts.reserve(tasks.size());
  for (const core::TaskPlacement& t : tasks) {
    std::vector<int32_t> devices;
    for (const core::DeviceSlice& s : t.devices) devices.push_back(s.device);
    const bool known = t.node >= 0 && t.node < static_cast<int32_t>(nodes.size());
    parts.push_back(
        absl::StrCat(known ? nodes[t.node].name : absl::StrCat("#", t.node), ":", absl::StrJoin(devices, ",")));
  }
  std::sort(parts.begin(), parts.end());
  return absl::StrJoin(parts, ";");
}

core::Job ToCoreJob(const SimJob& s, const std::vector<std::string>& cluster_models, int32_t max_per_node) {
  core::Job job;
  job.id = JobId(s.id);
  job.queue = s.queue;
  job.submit_ms = ToMs(s.arrival_s);
  core::TaskGroup g;
  g.name = "worker";
  int32_t replicas = 1;
  if (s.gpus > 0 && s.gpu_milli < 1000) {
    g.request.device_percent = std::clamp((s.gpu_milli + 9) / 10, 1, 99);
  } else if (s.gpus > 0) {
    // Whole devices: one task if a node holds them, else the fewest equal tasks
    // that each fit a node (a 12-GPU job on 8-GPU nodes: 2 x 6).
    int32_t per = std::min(s.gpus, max_per_node);
    while (s.gpus % per != 0) --per;
    replicas = s.gpus / per;
    g.request.devices = per;
  }
  g.replicas = replicas;
  g.request.cpu_milli = (s.cpu_milli + replicas - 1) / replicas;
  g.request.memory_mib = (s.memory_mib + replicas - 1) / replicas;
  std::vector<std::string> allowed = s.models;
  if (allowed.empty()) {
    for (const auto& [m, t] : s.throughput) allowed.push_back(m);
  }
  if (!allowed.empty()) {
    // Cluster order first (the order an agnostic policy tries), then models the
    // cluster lacks (so the core can say the job never fits).
    std::vector<std::string> ordered;
    for (const std::string& m : cluster_models) {
      if (std::find(allowed.begin(), allowed.end(), m) != allowed.end()) ordered.push_back(m);
    }
    for (const std::string& m : allowed) {
      if (std::find(ordered.begin(), ordered.end(), m) == ordered.end()) ordered.push_back(m);
    }
    for (const std::string& m : ordered) {
      auto it = s.throughput.find(m);
      g.device_choices.push_back({"nvidia", m, it == s.throughput.end() ? 0.0 : it->second});
    }
  }
  job.groups.push_back(std::move(g));
  return job;
}

std::string EstimatorFor(absl::string_view policy, const std::string& fallback) {
  return core::PolicyWantsLearnedEstimates(policy) ? "learned" : fallback;
}

namespace {

// Spread of an oracle estimate for the gittins order: the least it tells apart,
// so that it ranks by time left as SRTF does.
constexpr double kOracleLogSd = 0.05;

// The event loop and its state. One instance per Simulate() call.
class Sim {
 public:
  Sim(const std::vector<core::Node>& nodes, const std::vector<SimJob>& jobs, const SimOptions& options,
      const core::Scheduler& scheduler, learn::RuntimeEstimator* estimator)
      : jobs_(jobs), options_(options), scheduler_(scheduler), estimator_(estimator) {
    snap_.nodes = nodes;
    for (const core::Node& n : nodes) {
      max_per_node_ = std::max<int32_t>(max_per_node_, static_cast<int32_t>(n.devices.size()));
      for (const core::Device& d : n.devices) {
        if (std::find(models_.begin(), models_.end(), d.model) == models_.end()) models_.push_back(d.model);
        result_.total_devices += 1;
      }
    }
    if (options.queues.empty()) {
      std::set<std::string> names;
      for (const SimJob& j : jobs) {
        if (!j.queue.empty()) names.insert(j.queue);
      }
      for (const std::string& q : names) snap_.queues.push_back(core::Queue{.name = q});
    } else {
      snap_.queues = options.queues;
    }
    if (options.min_run_s > 0 || options.usage_half_life_s > 0) {
      // Every queue, the implicit default one (jobs without a queue) included.
      const auto is_default = [](const core::Queue& q) { return q.name == core::QuotaTracker::kDefaultQueue; };
      if (std::none_of(snap_.queues.begin(), snap_.queues.end(), is_default)) {
        snap_.queues.push_back(core::Queue{.name = core::QuotaTracker::kDefaultQueue});
      }
      for (core::Queue& q : snap_.queues) {
        if (options.min_run_s > 0) q.min_run_ms = ToMs(options.min_run_s);
        if (options.usage_half_life_s > 0) q.usage_half_life_s = options.usage_half_life_s;
      }
    }
    state_.resize(jobs.size());
    result_.jobs.resize(jobs.size());
    for (size_t i = 0; i < jobs.size(); ++i) {
      const SimJob& j = jobs[i];
      JobOutcome& o = result_.jobs[i];
      o.id = j.id;
      o.arrival_s = j.arrival_s;
      o.duration_s = j.duration_s;
      o.gpus = j.gpus;
      state_[i].remaining_s = j.duration_s;
      for (const auto& [m, t] : j.throughput) state_[i].best_tput = std::max(state_[i].best_tput, t);
    }
    result_.policy = options.policy;
    result_.estimator = options.estimator;
    down_.assign(snap_.nodes.size(), 0);
    if (options.device_mtbf_h > 0) {
      for (size_t k = 0; k < snap_.nodes.size(); ++k) ScheduleFailure(static_cast<int32_t>(k), 0);
    }
    if (options.rack_nodes > 0 && options.rack_mtbf_h > 0) {
      const size_t racks = (snap_.nodes.size() + options.rack_nodes - 1) / options.rack_nodes;
      for (size_t r = 0; r < racks; ++r) ScheduleRackFailure(static_cast<int32_t>(r), 0);
    }
  }

  absl::StatusOr<SimResult> Run();

 private:
  enum class Where { kFuture, kPending, kRunning, kDone, kRejected };
  struct JobState {
    Where where = Where::kFuture;
    int32_t pos = -1;        // index in snap_.pending or snap_.running
    double remaining_s = 0;  // isolated work left, in seconds on the fastest type
    double best_tput = 0;
    double speed = 1;      // relative speed on the current type (<= 1)
    bool restore = false;  // pays the checkpoint-restore delay at its next start
    int64_t start_ms = 0;
    int64_t work_from_ms = 0;      // start + restore delay
    int32_t epoch = 0;             // completion events of older epochs are stale
    double share = 0;              // devices held while running
    double attained_at_start = 0;  // device-seconds of service before this run
    int32_t recent_stops = 0;      // stops in the last hour (Job::recent_interruptions)
  };
  enum class StopKind { kPreempted, kMigrated, kFault };
  // A node's next failure, or its repair (the fault model).
  struct NodeEvent {
    enum Kind { kFail, kRepair, kRackFail, kRackRepair };
    int64_t t_ms;
    int32_t node;  // the rack's index for rack events
    Kind kind;
    int64_t down_ms = 0;  // repairs: when the failure began
    bool operator>(const NodeEvent& o) const { return std::tie(t_ms, node, kind) > std::tie(o.t_ms, o.node, o.kind); }
  };
  struct Completion {
    int64_t t_ms;
    int32_t job;
    int32_t epoch;
    bool operator>(const Completion& o) const { return std::tie(t_ms, job) > std::tie(o.t_ms, o.job); }
  };

  // What is known of job i's runs, for the shared estimate rule; `running`:
  // of the run under way (its restore is behind it in work_from_ms).
  core::RunHistory History(int32_t i, bool running) const;
  // The core's runtime_estimate_ms for job i while running (from its start).
  int64_t RunningEstimateMs(int32_t i) const;
  // The estimator revised job i's estimate (a job of its burst finished).
  void Revise(const learn::RuntimeEstimator::Revision& r);
  static learn::JobFacts Facts(const SimJob& s);
  int64_t PendingEstimateMs(int32_t i) const;
  void AddPending(int32_t i, core::Job job);
  core::Job TakePending(int32_t i);
  core::RunningJob TakeRunning(int32_t i);
  // Preempted (or moved): back to pending, to pay the restore delay at its next
  // start, keeping the work up to its last checkpoint.
  void Stop(int32_t i, int64_t now_ms, StopKind kind = StopKind::kPreempted);
  // The fault model: draws node k's next failure after `from_ms` (none for
  // a node without devices).
  void ScheduleFailure(int32_t node, int64_t from_ms);
  // Node k goes down: its running jobs stop (StopKind::kFault) and it takes
  // no work until every failure that took it down is repaired.
  void TakeDown(int32_t node, int64_t now_ms);
  void BringUp(int32_t node, int64_t now_ms, int64_t down_ms);
  // How long the next repair takes (SimOptions::repair_times), in ms.
  int64_t RepairMs();
  // Rack r's next failure after `from_ms` (SimOptions::rack_mtbf_h).
  void ScheduleRackFailure(int32_t rack, int64_t from_ms);
  void HandleNodeEvent(const NodeEvent& e);
  // The end of job i's run at `now_ms` (a stop or its completion): counts the
  // devices it held and the restore it paid.
  void EndRun(int32_t i, int64_t now_ms);
  // When running job i finished its last checkpoint of this run (0: none yet).
  int64_t LastCheckpointMs(int32_t i, int64_t now_ms) const;
  // Stops older than an hour no longer count as recent interruptions.
  void ExpireStops(int64_t now_ms);
  core::Job* SnapshotJob(int32_t i);
  // Starts pending job i at `tasks` on `device_type` ("vendor/model").
  absl::Status Start(int32_t i, const std::string& device_type, std::vector<core::TaskPlacement> tasks, int64_t now_ms);
  absl::Status Pass(int64_t now_ms);
  void Sample(int64_t now_ms);

  const std::vector<SimJob>& jobs_;
  const SimOptions& options_;
  const core::Scheduler& scheduler_;
  learn::RuntimeEstimator* estimator_;  // null unless options_.estimator == "learned"
  // The gittins order ranks a job by its whole estimated run time and its age
  // (attained service); the others want the estimated time left.
  const bool total_estimates_ = scheduler_.order().ranks_by_total_estimate();
  core::Snapshot snap_;
  std::vector<std::string> models_;  // cluster models in first-seen order
  int32_t max_per_node_ = 1;
  std::vector<JobState> state_;
  std::priority_queue<Completion, std::vector<Completion>, std::greater<>> completions_;
  // When a run's min_run_s is over (the job may be preempted from then on):
  // the same records as completions, for a pass at that time.
  std::priority_queue<Completion, std::vector<Completion>, std::greater<>> exempt_ends_;
  const int64_t min_run_ms_ = ToMs(options_.min_run_s);
  const bool capped_ = options_.scheduler.max_interruptions_per_hour > 0 || options_.max_interruptions_per_hour > 0;
  SimResult result_;
  double used_ = 0;
  bool dirty_ = false;  // something arrived or capacity was freed since the last pass
  const int64_t checkpoint_ms_ = ToMs(options_.checkpoint_interval_s);  // 0: perfect checkpoints
  // (stop time, job) of every stop in the last hour, oldest first. With a cap
  // on interruptions, a stop leaving the hour is an event (the job may be
  // preempted again).
  std::deque<std::pair<int64_t, int32_t>> stops_;
  std::vector<core::WaitingJob> last_waiting_;
  // Fair share over time, as the live engine keeps it (engine_pass.cc).
  core::UsageHistory usage_history_;
  std::priority_queue<NodeEvent, std::vector<NodeEvent>, std::greater<>> node_events_;
  std::mt19937_64 fault_rng_{options_.fault_seed};
  // Racks and repair times draw from streams of their own: a seed's node
  // failures stay the same whatever else is modelled.
  std::mt19937_64 rack_rng_{options_.fault_seed ^ 0x9e3779b97f4a7c15ULL};
  std::mt19937_64 repair_rng_{options_.fault_seed ^ 0xc2b2ae3d27d4eb4fULL};
  std::vector<int32_t> down_;  // per node: failures not yet repaired
  int32_t nodes_down_ = 0;     // nodes with any
};

void Sim::ScheduleFailure(int32_t node, int64_t from_ms) {
  const double devices = static_cast<double>(snap_.nodes[node].devices.size());
  if (devices <= 0) return;
  // Exponential gaps: the node's mean time between failures is the
  // device MTBF over its devices. Drawn by hand, not with
  // std::exponential_distribution, so that a seed gives the same faults on
  // every standard library.
  const double u = OpenUnitFromBits(fault_rng_());
  const double gap_h = -std::log(u) * options_.device_mtbf_h / devices;
  node_events_.push({from_ms + std::max<int64_t>(1, ToMs(gap_h * 3'600)), node, NodeEvent::kFail});
}

int64_t Sim::RepairMs() {
  const double mean = options_.repair_s;
  double s = mean;
  if (options_.repair_times == SimOptions::RepairTimes::kExponential) {
    s = -std::log(OpenUnitFromBits(repair_rng_())) * mean;
  } else if (options_.repair_times == SimOptions::RepairTimes::kLogNormal) {
    // exp(mu + sigma z) with mean exp(mu + sigma^2 / 2) = mean; z by Box-Muller
    // on the raw bits (the same draws on every standard library).
    const double sigma = options_.repair_sigma;
    const double u1 = OpenUnitFromBits(repair_rng_()), u2 = OpenUnitFromBits(repair_rng_());
    const double z = std::sqrt(-2 * std::log(u1)) * std::cos(2 * std::numbers::pi * u2);
    s = std::exp(std::log(mean) - sigma * sigma / 2 + sigma * z);
  }
  return std::max<int64_t>(1, ToMs(std::min(s, 100 * mean)));
}

void Sim::ScheduleRackFailure(int32_t rack, int64_t from_ms) {
  const double gap_h = -std::log(OpenUnitFromBits(rack_rng_())) * options_.rack_mtbf_h;
  node_events_.push({from_ms + std::max<int64_t>(1, ToMs(gap_h * 3'600)), rack, NodeEvent::kRackFail});
}

void Sim::TakeDown(int32_t node, int64_t now_ms) {
  ++result_.faults;
  if (down_[node]++ > 0) return;  // already down: nothing runs there
  ++nodes_down_;
  snap_.nodes[node].schedulable = false;
  std::vector<int32_t> hit;
  for (const core::RunningJob& r : snap_.running) {
    for (const core::TaskPlacement& t : r.tasks) {
      if (t.node == node) {
        hit.push_back(static_cast<int32_t>(r.job.id.value()));
        break;
      }
    }
  }
  for (int32_t i : hit) Stop(i, now_ms, StopKind::kFault);
}

void Sim::BringUp(int32_t node, int64_t now_ms, int64_t down_ms) {
  result_.node_hours_down += (now_ms - down_ms) / 3.6e6;
  if (--down_[node] > 0) return;
  snap_.nodes[node].schedulable = true;
  --nodes_down_;
  dirty_ = true;
}

void Sim::HandleNodeEvent(const NodeEvent& e) {
  const int64_t now = e.t_ms;
  const int32_t racks = options_.rack_nodes > 0
                            ? static_cast<int32_t>((snap_.nodes.size() + options_.rack_nodes - 1) / options_.rack_nodes)
                            : 0;
  switch (e.kind) {
    case NodeEvent::kFail:
      TakeDown(e.node, now);
      node_events_.push({now + RepairMs(), e.node, NodeEvent::kRepair, now});
      break;
    case NodeEvent::kRepair:
      BringUp(e.node, now, e.down_ms);
      ScheduleFailure(e.node, now);
      break;
    case NodeEvent::kRackFail: {
      if (e.node >= racks) break;
      ++result_.rack_faults;
      const int32_t first = e.node * options_.rack_nodes;
      const int32_t last = std::min<int32_t>(first + options_.rack_nodes, static_cast<int32_t>(snap_.nodes.size()));
      for (int32_t k = first; k < last; ++k) TakeDown(k, now);
      node_events_.push({now + RepairMs(), e.node, NodeEvent::kRackRepair, now});
      break;
    }
    case NodeEvent::kRackRepair: {
      const int32_t first = e.node * options_.rack_nodes;
      const int32_t last = std::min<int32_t>(first + options_.rack_nodes, static_cast<int32_t>(snap_.nodes.size()));
      for (int32_t k = first; k < last; ++k) BringUp(k, now, e.down_ms);
      ScheduleRackFailure(e.node, now);
      break;
    }
  }
}

learn::JobFacts Sim::Facts(const SimJob& s) {
  return learn::JobFacts{
      .user = s.user, .queue = s.queue, .name = s.name, .gpus = s.gpus, .submit_unix_s = s.submit_unix_s};
}

core::RunHistory Sim::History(int32_t i, bool running) const {
  core::RunHistory h;
  // The estimate now held: the oracle's is the true run time, so that the
  // work left reads as the true remaining work.
  h.estimate_s = options_.estimator == "oracle" ? jobs_[i].duration_s : result_.jobs[i].final_estimate_s;
  h.worked_s = jobs_[i].duration_s - state_[i].remaining_s;  // as of the last stop
  h.restore = running ? state_[i].work_from_ms > state_[i].start_ms : state_[i].restore;
  return h;
}

int64_t Sim::RunningEstimateMs(int32_t i) const {
  return core::RunningEstimateMs(History(i, true), total_estimates_, ToMs(options_.restore_delay_s), state_[i].speed);
}

void Sim::Revise(const learn::RuntimeEstimator::Revision& r) {
  const int32_t i = static_cast<int32_t>(r.key);
  const JobState& st = state_[i];
  result_.jobs[i].final_estimate_s = r.runtime_s;
  core::Job* job = SnapshotJob(i);
  if (job == nullptr) return;
  job->runtime_estimate_ms = st.where == Where::kPending ? PendingEstimateMs(i) : RunningEstimateMs(i);
  job->runtime_log_sd = estimator_->EstimateLogSd(i);
  dirty_ = true;
}

int64_t Sim::PendingEstimateMs(int32_t i) const {
  return core::PendingEstimateMs(History(i, false), total_estimates_, ToMs(options_.restore_delay_s));
}

void Sim::AddPending(int32_t i, core::Job job) {
  state_[i].where = Where::kPending;
  state_[i].pos = static_cast<int32_t>(snap_.pending.size());
  job.runtime_estimate_ms = PendingEstimateMs(i);
  snap_.pending.push_back(std::move(job));
  dirty_ = true;
}

core::Job Sim::TakePending(int32_t i) {
  const int32_t pos = state_[i].pos;
  core::Job job = std::move(snap_.pending[pos]);
  if (pos + 1 != static_cast<int32_t>(snap_.pending.size())) {
    snap_.pending[pos] = std::move(snap_.pending.back());
    state_[snap_.pending[pos].id.value()].pos = pos;
  }
  snap_.pending.pop_back();
  state_[i].pos = -1;
  return job;
}

core::RunningJob Sim::TakeRunning(int32_t i) {
  const int32_t pos = state_[i].pos;
  core::RunningJob r = std::move(snap_.running[pos]);
  if (pos + 1 != static_cast<int32_t>(snap_.running.size())) {
    snap_.running[pos] = std::move(snap_.running.back());
    state_[snap_.running[pos].job.id.value()].pos = pos;
  }
  snap_.running.pop_back();
  state_[i].pos = -1;
  used_ -= state_[i].share;
  return r;
}

core::Job* Sim::SnapshotJob(int32_t i) {
  const JobState& st = state_[i];
  return st.where == Where::kPending   ? &snap_.pending[st.pos]
         : st.where == Where::kRunning ? &snap_.running[st.pos].job
                                       : nullptr;
}

int64_t Sim::LastCheckpointMs(int32_t i, int64_t now_ms) const {
  const JobState& st = state_[i];
  if (checkpoint_ms_ <= 0 || now_ms < st.work_from_ms + checkpoint_ms_) return 0;
  return st.work_from_ms + (now_ms - st.work_from_ms) / checkpoint_ms_ * checkpoint_ms_;
}

void Sim::ExpireStops(int64_t now_ms) {
  while (!stops_.empty() && stops_.front().first + kHourMs <= now_ms) {
    const int32_t i = stops_.front().second;
    stops_.pop_front();
    --state_[i].recent_stops;
    if (core::Job* job = SnapshotJob(i)) job->recent_interruptions = state_[i].recent_stops;
    // A capped job that runs may be a victim again.
    if (capped_ && state_[i].where == Where::kRunning) dirty_ = true;
  }
}

void Sim::EndRun(int32_t i, int64_t now_ms) {
  const JobState& st = state_[i];
  const double restore_s = std::max<int64_t>(0, std::min(now_ms, st.work_from_ms) - st.start_ms) / 1000.0;
  result_.jobs[i].lost_gpu_s += st.share * restore_s;
  result_.gpu_hours_used += st.share * (now_ms - st.start_ms) / 3.6e6;
}

void Sim::Stop(int32_t i, int64_t now_ms, StopKind kind) {
  JobState& st = state_[i];
  EndRun(i, now_ms);
  core::RunningJob r = TakeRunning(i);
  const int64_t worked_ms = std::max<int64_t>(0, now_ms - st.work_from_ms);
  // With checkpoints, only the work up to the last one of this run is kept.
  // Without, a planned stop checkpoints on its signal; a fault gives none.
  const int64_t kept_ms = checkpoint_ms_ > 0         ? worked_ms / checkpoint_ms_ * checkpoint_ms_
                          : kind == StopKind::kFault ? 0
                                                     : worked_ms;
  result_.jobs[i].lost_gpu_s += st.share * (worked_ms - kept_ms) / 1000.0;
  st.remaining_s = std::max(0.0, st.remaining_s - kept_ms / 1000.0 * st.speed);
  st.restore = true;
  r.job.checkpoint_ms = 0;
  r.job.recent_interruptions = ++st.recent_stops;
  stops_.emplace_back(now_ms, i);
  ++st.epoch;
  r.job.attained_device_s = st.attained_at_start + st.share * (now_ms - st.start_ms) / 1000.0;
  if (kind == StopKind::kMigrated) {
    ++result_.migrations;
  } else if (kind == StopKind::kFault) {
    ++result_.fault_stops;
    ++result_.jobs[i].fault_stops;
    result_.gpu_hours_lost_to_faults += st.share * (worked_ms - kept_ms) / 3.6e6;
  } else {
    ++result_.jobs[i].preemptions;
    ++result_.preemptions;
  }
  ++result_.events;
  AddPending(i, std::move(r.job));
}

absl::Status Sim::Start(int32_t i, const std::string& device_type, std::vector<core::TaskPlacement> tasks,
                        int64_t now_ms) {
  JobState& st = state_[i];
  core::RunningJob r;
  r.job = TakePending(i);
  r.start_ms = now_ms;
  r.tasks = std::move(tasks);
  st.speed = 1.0;
  if (st.best_tput > 0) {
    const std::string model = device_type.substr(device_type.find('/') + 1);
    auto it = jobs_[i].throughput.find(model);
    if (it == jobs_[i].throughput.end() || it->second <= 0) {
      return absl::InternalError(absl::StrCat("job ", i, " bound to ", device_type, ", where it has no throughput"));
    }
    st.speed = it->second / st.best_tput;
  }
  st.share = 0;
  for (const core::TaskPlacement& t : r.tasks) {
    for (const core::DeviceSlice& s : t.devices) st.share += s.percent / 100.0;
  }
  st.start_ms = now_ms;
  st.attained_at_start = r.job.attained_device_s;
  st.work_from_ms = now_ms + (st.restore ? ToMs(options_.restore_delay_s) : 0);
  st.restore = false;
  const int64_t finish_ms = st.work_from_ms + ToMs(st.remaining_s / st.speed);
  r.job.runtime_estimate_ms = RunningEstimateMs(i);
  st.where = Where::kRunning;
  st.pos = static_cast<int32_t>(snap_.running.size());
  snap_.running.push_back(std::move(r));
  used_ += st.share;
  completions_.push({finish_ms, i, st.epoch});
  if (min_run_ms_ > 0 && now_ms + min_run_ms_ < finish_ms) exempt_ends_.push({now_ms + min_run_ms_, i, st.epoch});
  JobOutcome& o = result_.jobs[i];
  if (o.first_start_s < 0) {
    o.first_start_s = now_ms / 1000.0;
    o.first_placement = DescribePlacement(snap_.nodes, snap_.running.back().tasks);
  }
  ++result_.binds;
  return absl::OkStatus();
}

absl::Status Sim::Pass(int64_t now_ms) {
  snap_.now_ms = now_ms;
  // Attained service grows while a job runs; LAS (Tiresias) orders and
  // preempts by it. Checkpoints are finished as it works.
  for (core::RunningJob& r : snap_.running) {
    const int32_t i = static_cast<int32_t>(r.job.id.value());
    const JobState& st = state_[i];
    r.job.attained_device_s = st.attained_at_start + st.share * (now_ms - st.start_ms) / 1000.0;
    r.job.checkpoint_ms = LastCheckpointMs(i, now_ms);
    r.job.checkpoints = checkpoint_ms_ > 0;
  }
  usage_history_.Update(snap_);
  ++result_.passes;
  absl::StatusOr<core::Decisions> d = scheduler_.Schedule(snap_);
  if (!d.ok())
    return absl::InternalError(absl::StrCat("scheduling pass at t=", now_ms / 1000.0, " s: ", d.status().message()));
  dirty_ = false;
  for (const core::PreemptDecision& p : d->preemptions) {
    const int64_t v = p.victim.value();
    if (v < 0 || v >= static_cast<int64_t>(state_.size()) || state_[v].where != Where::kRunning) {
      return absl::InternalError(absl::StrCat("preemption of job ", v, ", which is not running"));
    }
    Stop(static_cast<int32_t>(v), now_ms);
  }
  for (core::MigrateDecision& m : d->migrations) {
    const int64_t id = m.job.value();
    if (id < 0 || id >= static_cast<int64_t>(state_.size()) || state_[id].where != Where::kRunning) {
      return absl::InternalError(absl::StrCat("migration of job ", id, ", which is not running"));
    }
    Stop(static_cast<int32_t>(id), now_ms, StopKind::kMigrated);
    absl::Status st = Start(static_cast<int32_t>(id), m.device_type, std::move(m.tasks), now_ms);
    if (!st.ok()) return st;
  }
  for (core::BindDecision& b : d->binds) {
    const int64_t id = b.job.value();
    if (id < 0 || id >= static_cast<int64_t>(state_.size()) || state_[id].where != Where::kPending) {
      return absl::InternalError(absl::StrCat("bind of job ", id, ", which is not pending"));
    }
    for (JobId victim : b.after_preemption) {
      if (state_[victim.value()].where == Where::kRunning) Stop(static_cast<int32_t>(victim.value()), now_ms);
    }
    absl::Status st = Start(static_cast<int32_t>(id), b.device_type, std::move(b.tasks), now_ms);
    if (!st.ok()) return st;
  }
  for (core::WaitingJob& w : d->waiting) {
    if (w.kind == core::WaitKind::kInvalid) {
      return absl::InternalError(absl::StrCat("job ", w.job.value(), " is invalid: ", w.reason));
    }
    if (w.kind == core::WaitKind::kNeverFits) {
      const int32_t i = static_cast<int32_t>(w.job.value());
      if (state_[i].where != Where::kPending) continue;
      TakePending(i);
      state_[i].where = Where::kRejected;
      result_.jobs[i].rejected = true;
      result_.jobs[i].reason = std::move(w.reason);
    }
  }
  last_waiting_ = std::move(d->waiting);
  return absl::OkStatus();
}

void Sim::Sample(int64_t now_ms) {
  if (!options_.record_utilisation) return;
  auto& u = result_.utilisation;
  const double t = now_ms / 1000.0;
  if (!u.empty() && u.back().t_s == t) {
    u.back().used = used_;
    if (u.size() >= 2 && u[u.size() - 2].used == used_) u.pop_back();
    return;
  }
  if (!u.empty() && u.back().used == used_) return;
  u.push_back({t, used_});
}

absl::StatusOr<SimResult> Sim::Run() {
  const auto wall_start = std::chrono::steady_clock::now();
  size_t next = 0;
  const size_t n = jobs_.size();
  for (size_t i = 0; i < n; ++i) {
    if (jobs_[i].id != static_cast<int64_t>(i)) {
      return absl::InvalidArgumentError(
          absl::StrCat("job at position ", i, " has id ", jobs_[i].id, "; ids must be 0..n-1"));
    }
    if (i > 0 && jobs_[i].arrival_s < jobs_[i - 1].arrival_s) {
      return absl::InvalidArgumentError(absl::StrCat("job ", i, " arrives before job ", i - 1, "; sort the trace"));
    }
  }
  // With nodes down, pending work may wait for a repair.
  while (next < n || !completions_.empty() || (nodes_down_ > 0 && !snap_.pending.empty())) {
    int64_t now = INT64_MAX;
    if (next < n) now = ToMs(jobs_[next].arrival_s);
    if (!completions_.empty()) now = std::min(now, completions_.top().t_ms);
    if (!node_events_.empty()) now = std::min(now, node_events_.top().t_ms);
    // Runs leaving their min_run_s, and (capped) stops leaving the hour, may
    // be preempted now: worth a pass.
    if (!exempt_ends_.empty()) now = std::min(now, exempt_ends_.top().t_ms);
    if (capped_ && !stops_.empty()) now = std::min(now, stops_.front().first + kHourMs);
    while (!exempt_ends_.empty() && exempt_ends_.top().t_ms == now) {
      const Completion e = exempt_ends_.top();
      exempt_ends_.pop();
      if (e.epoch == state_[e.job].epoch && state_[e.job].where == Where::kRunning) dirty_ = true;
    }
    ExpireStops(now);
    // Completions first (they free capacity), then arrivals, all of this instant.
    while (!completions_.empty() && completions_.top().t_ms == now) {
      const Completion c = completions_.top();
      completions_.pop();
      JobState& st = state_[c.job];
      if (c.epoch != st.epoch || st.where != Where::kRunning) continue;
      EndRun(c.job, now);
      TakeRunning(c.job);
      st.where = Where::kDone;
      st.remaining_s = 0;
      result_.jobs[c.job].finish_s = now / 1000.0;
      result_.jobs[c.job].gpu_share = st.share;
      ++result_.events;
      if (estimator_ != nullptr) {
        absl::Status s = estimator_->ObserveFinish(c.job, Facts(jobs_[c.job]), jobs_[c.job].duration_s);
        if (!s.ok()) return absl::InternalError(absl::StrCat("runtime estimator: ", s.message()));
        for (const learn::RuntimeEstimator::Revision& r : estimator_->TakeRevisions()) Revise(r);
      }
      dirty_ = true;
    }
    // Then failures and repairs (a job that ended at this instant is not hit).
    while (!node_events_.empty() && node_events_.top().t_ms == now) {
      const NodeEvent e = node_events_.top();
      node_events_.pop();
      HandleNodeEvent(e);
    }
    std::vector<JobId> arrived;
    while (next < n && ToMs(jobs_[next].arrival_s) == now) {
      const int32_t i = static_cast<int32_t>(next++);
      if (options_.on_arrivals) arrived.push_back(JobId(i));
      if (estimator_ != nullptr) {
        const double estimate = estimator_->EstimateAtSubmit(i, Facts(jobs_[i]));
        // Too little history: unknown, as the live cluster hands it out.
        if (estimator_->HandsOutEstimates()) result_.jobs[i].estimate_s = result_.jobs[i].final_estimate_s = estimate;
      } else if (options_.estimator == "oracle") {
        result_.jobs[i].estimate_s = result_.jobs[i].final_estimate_s = jobs_[i].duration_s;
      }
      core::Job job = ToCoreJob(jobs_[i], models_, max_per_node_);
      job.runtime_log_sd = estimator_ != nullptr ? estimator_->EstimateLogSd(i) : kOracleLogSd;
      AddPending(i, std::move(job));
      ++result_.events;
    }
    if (!arrived.empty()) {
      snap_.now_ms = now;
      options_.on_arrivals(snap_, arrived);
    }
    // With migration a pass is worth running on freed capacity even when no job waits.
    const bool can_move = options_.scheduler.migrate_to_faster_type && !snap_.running.empty();
    for (int k = 0; dirty_ && (!snap_.pending.empty() || can_move) && k < options_.max_passes_per_instant; ++k) {
      absl::Status s = Pass(now);
      if (!s.ok()) return s;
    }
    Sample(now);
  }
  // Whatever is still pending can never start: nothing is left to free capacity.
  for (const core::WaitingJob& w : last_waiting_) {
    const int64_t i = w.job.value();
    if (i >= 0 && i < static_cast<int64_t>(n) && state_[i].where == Where::kPending) result_.jobs[i].reason = w.reason;
  }
  for (const JobOutcome& o : result_.jobs) result_.gpu_hours_lost += o.lost_gpu_s / 3600.0;
  result_.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - wall_start).count();
  if (estimator_ != nullptr) {
    // A model that cannot predict would leave every estimate to history
    // without a trace in the results: fail loudly instead.
    if (estimator_->failed_predictions() > 0) {
      return absl::InternalError(absl::StrCat("runtime estimator: ", estimator_->failed_predictions(),
                                              " predictions failed; last: ", estimator_->last_prediction_error()));
    }
    result_.models_trained = estimator_->models_trained();
    result_.train_wall_s = estimator_->train_wall_s();
  }
  return std::move(result_);
}

}  // namespace

absl::StatusOr<SimResult> Simulate(const std::vector<core::Node>& nodes, const std::vector<SimJob>& jobs,
                                   const SimOptions& options) {
  if (options.restore_delay_s < 0) return absl::InvalidArgumentError("restore_delay_s must be >= 0");
  if (options.checkpoint_interval_s < 0) return absl::InvalidArgumentError("checkpoint_interval_s must be >= 0");
  if (options.min_run_s < 0) return absl::InvalidArgumentError("min_run_s must be >= 0");
  if (options.device_mtbf_h < 0 || options.repair_s < 0 || options.rack_mtbf_h < 0 || options.rack_nodes < 0 ||
      !(options.repair_sigma > 0 && options.repair_sigma <= 5)) {
    return absl::InvalidArgumentError(
        "device_mtbf_h, repair_s, rack_nodes and rack_mtbf_h must be >= 0, repair_sigma in (0, 5]");
  }
  if (options.max_interruptions_per_hour < 0) {
    return absl::InvalidArgumentError("max_interruptions_per_hour must be >= 0");
  }
  core::SchedulerOptions scheduler_options = options.scheduler;
  if (options.max_interruptions_per_hour > 0) {
    scheduler_options.max_interruptions_per_hour = options.max_interruptions_per_hour;
  }
  // Moving a job costs what a preemption costs: a checkpoint restore.
  scheduler_options.restore_cost_ms = ToMs(options.restore_delay_s);
  absl::StatusOr<core::Scheduler> scheduler = core::Scheduler::Create(std::move(scheduler_options));
  if (!scheduler.ok()) return scheduler.status();
  std::unique_ptr<learn::RuntimeEstimator> estimator;
  if (options.estimator == "learned") {
    auto e = learn::RuntimeEstimator::Create(options.learned);
    if (!e.ok()) return e.status();
    estimator = *std::move(e);
  } else if (options.estimator != "oracle" && options.estimator != "none") {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown estimator '", options.estimator, "'; known: oracle, learned, none"));
  }
  Sim sim(nodes, jobs, options, *scheduler, estimator.get());
  return sim.Run();
}

}  // namespace icos::sim
