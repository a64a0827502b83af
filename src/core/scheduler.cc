#include "core/scheduler.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <map>
#include <numeric>
#include <string_view>
#include <tuple>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/pass.h"
#include "core/resources/cluster_state.h"
#include "core/resources/quota.h"

namespace icos::core {

const char* WaitKindName(WaitKind kind) {
  switch (kind) {
    case WaitKind::kResources:
      return "Resources";
    case WaitKind::kTopology:
      return "Topology";
    case WaitKind::kQuota:
      return "Quota";
    case WaitKind::kReservation:
      return "Reservation";
    case WaitKind::kOrder:
      return "Order";
    case WaitKind::kNeverFits:
      return "NeverFits";
    case WaitKind::kInvalid:
      return "Invalid";
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
    if (g.min_available < 0 || g.min_available > g.replicas)
      return where + "min_available must be between 0 and replicas";
    if (r.cpu_milli < 0 || r.memory_mib < 0) return where + "CPU and memory must not be negative";
    if (r.devices < 0) return where + "device count must not be negative";
    if (r.device_percent < 0 || r.device_percent >= kWholeDevicePercent) {
      return where + "a device share must be between 1 and 99 per cent (ask for whole devices otherwise)";
    }
    if (r.device_memory_mib < 0) return where + "device memory must not be negative";
    if (r.devices > 0 && (r.device_percent > 0 || r.device_memory_mib > 0)) {
      return where + "ask for whole devices or a share of one device, not both";
    }
    if (!r.NeedsDevices() && r.cpu_milli == 0 && r.memory_mib == 0)
      return where + "asks for nothing; set CPU, memory or devices";
    for (const DeviceChoice& c : g.device_choices) {
      if (c.throughput < 0 || !std::isfinite(c.throughput))
        return where + "device throughput must be a non-negative number";
      if (c.vendor.empty() && !c.model.empty()) return where + "a device model needs its vendor";
    }
  }
  return "";
}

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
        return absl::FailedPreconditionError(
            absl::StrCat("running job ", rj.job.id.value(), " does not fit the cluster: ", st.message()));
      }
      if (t.group < 0 || t.group >= static_cast<int32_t>(rj.job.groups.size())) {
        return absl::InvalidArgumentError(
            absl::StrCat("running job ", rj.job.id.value(), " names task group ", t.group));
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

// The device models a group may use, sorted, for FGD's task mix; empty when
// any will do (no choices, or one that names a vendor only).
static std::vector<std::string> AllowedModels(const TaskGroup& g) {
  std::vector<std::string> models;
  for (const DeviceChoice& c : g.device_choices) {
    if (c.model.empty()) return {};
    models.push_back(c.model);
  }
  return NormalizedModels(std::move(models));
}

void Pass::PrepareMarket() {
  // Mean relative throughput per type over pending jobs that state throughputs.
  std::vector<double> sum(cluster_.num_types(), 0.0);
  std::vector<int64_t> count(cluster_.num_types(), 0);
  // FGD's task mix: shapes, with the models they may use (empty: any).
  std::map<std::tuple<int32_t, int32_t, int64_t, std::vector<std::string>>, double> shapes;
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
        shapes[{r.devices, r.device_percent, r.cpu_milli, AllowedModels(g)}] += g.replicas;
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
        const auto& [devices, percent, cpu, models] = shape;
        workload.push_back({devices, percent, cpu, w, models});
      }
    }
    fgd_ = std::make_unique<FgdScorer>(std::move(workload));
  }
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

namespace {

// A shape key's parts as raw bytes: no decimal formatting per job per pass,
// and strings carry their length, so no two shapes share a key.
void AppendRaw(std::string& key, int64_t v) { key.append(reinterpret_cast<const char*>(&v), sizeof v); }
void AppendRaw(std::string& key, std::string_view s) {
  AppendRaw(key, static_cast<int64_t>(s.size()));
  key.append(s);
}

}  // namespace

std::string Pass::ShapeKey(const Job& job, bool honour) const {
  std::string key;
  key.reserve(64 + 48 * job.groups.size());
  key.push_back(honour ? 'h' : 'f');
  AppendRaw(key, job.queue);
  AppendRaw(key, job.priority);
  // Whether it may preempt decides whether it waits: a job that may must
  // not take the answer of one that may not.
  key.push_back(job.preempts ? 'p' : 'n');
  AppendRaw(key, static_cast<int64_t>(job.groups.size()));
  for (const TaskGroup& g : job.groups) {
    const TaskRequest& r = g.request;
    for (int64_t v : {int64_t{g.replicas}, int64_t{g.min_available}, r.cpu_milli, r.memory_mib, int64_t{r.devices},
                      int64_t{r.device_percent}, r.device_memory_mib, static_cast<int64_t>(g.affinity),
                      static_cast<int64_t>(g.device_choices.size()), static_cast<int64_t>(g.node_selector.size())}) {
      AppendRaw(key, v);
    }
    for (const DeviceChoice& c : g.device_choices) {
      AppendRaw(key, c.vendor);
      AppendRaw(key, c.model);
      int64_t bits = 0;
      static_assert(sizeof bits == sizeof c.throughput);
      std::memcpy(&bits, &c.throughput, sizeof bits);
      AppendRaw(key, bits);
    }
    for (const auto& [k, v] : g.node_selector) {
      AppendRaw(key, k);
      AppendRaw(key, v);
    }
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
    if (!invalid[i].empty()) {
      wait(WaitKind::kInvalid, invalid[i]);
      continue;
    }
    const int32_t q = in.queue_of[i];
    if (q < 0) {
      wait(WaitKind::kInvalid, absl::StrCat("queue '", job.queue, "' does not exist; submit to an existing queue"));
      continue;
    }
    WaitKind kind = WaitKind::kNeverFits;
    if (std::string never = NeverFits(job, q, &kind); !never.empty()) {
      wait(kind, never);
      continue;
    }
    if (blocked) {
      wait(WaitKind::kOrder, "waits for earlier jobs (strict ordering)");
      continue;
    }
    // Jobs that end before the earliest reservation cannot delay it.
    const bool honour =
        reservations_ > 0 && !(job.runtime_estimate_ms > 0 && snap_.now_ms + job.runtime_estimate_ms <= shadow_ms_);
    // A shape that failed to be placed in this pass fails again: the
    // cluster only fills up as the pass goes on. Behind a reservation the
    // answer also depends on it, so such jobs have their own entries, used
    // once no job can reserve any more (until then each failure may take a
    // reservation). Such a job still tries to preempt, as it would have:
    // whether it may depends on more than its shape (its estimate under
    // srtf, its attained service under las), and the attempts count
    // against the pass's budget.
    const bool may_reserve = opt_.backfill == BackfillMode::kEasy && reservations_ < opt_.reservation_depth;
    const std::string key = honour && may_reserve ? "" : ShapeKey(job, honour);
    if (!key.empty()) {
      if (auto it = failed_shapes_.find(key); it != failed_shapes_.end()) {
        ++stats_.shape_cache_hits;
        if (honour && TryPreempt(job, q, out)) continue;
        wait(it->second.first, it->second.second);
        continue;
      }
    }
    Attempt a = TryPlace(job, q, honour, true);
    if (a.ok) {
      Bind(job, q, std::move(a), {}, out);
      continue;
    }
    if (a.kind != WaitKind::kQuota && TryPreempt(job, q, out)) continue;
    if (honour && a.kind != WaitKind::kQuota && TryPlace(job, q, false, false).ok) {
      std::string reason = absl::StrCat("would delay job ", shadow_job_.value(), ", which holds a reservation; ",
                                        job.runtime_estimate_ms > 0 ? "its runtime estimate ends too late"
                                                                    : "give it a runtime estimate to let it backfill");
      if (!key.empty()) failed_shapes_[key] = {WaitKind::kReservation, reason};
      wait(WaitKind::kReservation, std::move(reason));
      continue;
    }
    if (opt_.backfill == BackfillMode::kStrict) blocked = true;
    if (opt_.backfill == BackfillMode::kEasy && reservations_ < opt_.reservation_depth && a.kind != WaitKind::kQuota) {
      TryReserve(job, q, out);
    }
    if (!key.empty() && a.kind != WaitKind::kQuota) failed_shapes_[key] = {a.kind, a.reason};
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
  WaitKind kind = WaitKind::kNeverFits;
  if (std::string never = NeverFits(job, q, &kind); !never.empty()) {
    out.waiting.push_back({job.id, kind, never});
    return out;
  }
  const bool honour =
      reservations_ > 0 && !(job.runtime_estimate_ms > 0 && snap_.now_ms + job.runtime_estimate_ms <= shadow_ms_);
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
  if (s.options_.restore_cost_ms < 0 || s.options_.max_migrations_per_pass < 0) {
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
