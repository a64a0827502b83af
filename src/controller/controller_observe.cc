// The controller's observability: metrics state, utilisation history and
// usage accounting. Kept apart from controller.cc, which only calls the hooks
// (AddUsage in Commit, counters in RunPass and Heartbeat, SampleUtilisation in
// the loop).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "controller/controller.h"

namespace icos::controller {

using nlohmann::json;
using store::JobState;
using store::TaskState;

namespace {

bool ActiveTask(TaskState s) { return s == TaskState::kAssigned || s == TaskState::kRunning; }

std::string TypeOf(const core::Device& d) { return absl::StrCat(d.vendor, "/", d.model); }

}  // namespace

void Controller::AddUsage(store::WriteBatch& b) const {
  for (const store::TaskRecord& t : b.tasks) {
    // A task that never ran held nothing worth accounting (it may have waited
    // for preempted victims, which were still being charged).
    if (t.start_ms <= 0) continue;
    auto jit = engine_.jobs().find(t.job_id);
    if (jit == engine_.jobs().end()) continue;
    const JobEntry& j = jit->second;
    const TaskEntry* entry = nullptr;
    for (const auto& e : j.tasks) {
      if (e.rec.group == t.group && e.rec.replica == t.replica && e.rec.attempt == t.attempt) entry = &e;
    }
    if (entry == nullptr) continue;
    store::UsageRecord u;
    u.job_id = t.job_id;
    u.group = t.group;
    u.replica = t.replica;
    u.attempt = t.attempt;
    u.user = j.rec.user;
    u.queue = j.rec.queue;
    u.node = t.node;
    u.start_ms = t.start_ms;
    u.end_ms = store::IsTerminal(t.state) ? std::max(t.end_ms, t.start_ms) : 0;
    u.cpu_milli = entry->placement.cpu_milli;
    std::vector<std::pair<std::string, double>> slices;
    auto nit = engine_.nodes().find(t.node);
    for (const auto& s : entry->placement.devices) {
      std::string type = "unknown/unknown";
      if (nit != engine_.nodes().end() && s.device >= 0 &&
          s.device < static_cast<int32_t>(nit->second.node.devices.size())) {
        type = TypeOf(nit->second.node.devices[s.device]);
      }
      slices.emplace_back(type, static_cast<double>(s.percent) / core::kWholeDevicePercent);
    }
    u.devices_json = UsageDevicesJson(slices);
    b.usage.push_back(std::move(u));
  }
}

Controller::Allocation Controller::Allocated() const {
  Allocation a;
  for (int64_t id : engine_.JobsWithActiveTasks()) {
    const JobEntry& j = *engine_.FindJob(id);
    for (const auto& t : j.tasks) {
      if (!ActiveTask(t.rec.state)) continue;
      auto nit = engine_.nodes().find(t.rec.node);
      if (nit == engine_.nodes().end() || nit->second.rec.state != "Ready") continue;
      auto& [devices, cpu] = a.queue[j.rec.queue];
      cpu += static_cast<double>(t.placement.cpu_milli) / 1000.0;
      for (const auto& s : t.placement.devices) {
        const double share = static_cast<double>(s.percent) / core::kWholeDevicePercent;
        a.device[{t.rec.node, s.device}] += share;
        devices += share;
      }
    }
  }
  return a;
}

absl::StatusOr<ClusterMetrics> Controller::CollectMetrics() const {
  // Terminal jobs live only in the store; it counts by an index, not a scan of rows.
  auto by_state = store_->CountJobsByState();
  if (!by_state.ok()) return by_state.status();
  ClusterMetrics m;
  if (learning_) m.learning = learning_->GetStats();
  for (JobState s :
       {JobState::kPending, JobState::kRunning, JobState::kSucceeded, JobState::kFailed, JobState::kCancelled}) {
    m.jobs_by_state[store::JobStateName(s)] = 0;
  }
  for (const auto& [state, n] : *by_state) m.jobs_by_state[store::JobStateName(state)] = n;
  auto leader = store_->GetLeader();
  if (!leader.ok()) return leader.status();
  m.leader_epoch = leader->epoch;
  m.leader_since_ms = leader->since_ms;

  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMs();
  const Allocation alloc = Allocated();
  for (const auto& [name, n] : engine_.nodes()) {
    const SlowNodeDetector::Verdict pace = slow_nodes_.Judge(name);
    m.nodes.push_back({name, n.rec.state, n.drained, static_cast<double>(now - n.rec.heartbeat_ms) / 1000.0,
                       pace.judged ? pace.ratio : -1});
    for (size_t i = 0; i < n.node.devices.size(); ++i) {
      const core::Device& d = n.node.devices[i];
      DeviceMetric dm;
      dm.node = name;
      dm.index = static_cast<int32_t>(i);
      dm.vendor = d.vendor;
      dm.model = d.model;
      auto it = alloc.device.find({name, dm.index});
      dm.allocated = it == alloc.device.end() ? 0 : std::min(1.0, it->second);
      if (n.rec.state == "Ready" && i < n.usage.size()) dm.usage = n.usage[i];
      dm.healthy = d.healthy;
      dm.drained = d.drained || n.drained;
      m.devices.push_back(std::move(dm));
    }
  }
  std::map<std::string, QueueMetric> queues;
  queues["default"].queue.name = "default";
  for (const auto& [name, q] : engine_.queues()) queues[name].queue = q;
  for (const auto& [name, load] : engine_.QueueLoads()) {
    auto it = queues.find(name);
    if (it == queues.end()) continue;
    it->second.pending += load.pending;
    it->second.running += load.running;
  }
  for (const auto& [name, used] : alloc.queue) {
    auto it = queues.find(name);
    if (it == queues.end()) continue;
    it->second.devices = used.first;
    it->second.cpu_cores = used.second;
  }
  for (auto& [name, q] : queues) m.queues.push_back(std::move(q));
  return m;
}

absl::StatusOr<bool> Controller::SampleUtilisation() {
  const int64_t step = std::max<int64_t>(1, options_.utilisation_step_s);
  const int64_t now_s = clock_->NowMs() / 1000;
  const int64_t slot = now_s / step;
  std::lock_guard<std::mutex> sample_lock(sample_mu_);
  if (slot == last_sample_slot_) return false;
  json by_type = json::object(), by_queue = json::object();
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Allocation alloc = Allocated();
    std::map<std::string, std::pair<double, int64_t>> types;  // allocated, total
    for (const auto& [name, n] : engine_.nodes()) {
      if (n.rec.state != "Ready") continue;
      for (size_t i = 0; i < n.node.devices.size(); ++i) {
        auto& [allocated, total] = types[TypeOf(n.node.devices[i])];
        ++total;
        auto it = alloc.device.find({name, static_cast<int32_t>(i)});
        if (it != alloc.device.end()) allocated += std::min(1.0, it->second);
      }
    }
    for (const auto& [type, v] : types) by_type[type] = {{"allocated", v.first}, {"total", v.second}};
    for (const auto& [queue, used] : alloc.queue) by_queue[queue] = used.first;
  }
  store::WriteBatch b;
  b.samples.push_back({slot * step, json{{"by_type", by_type}, {"by_queue", by_queue}}.dump()});
  b.prune_samples_before_s = slot * step - options_.utilisation_retention_s;
  if (absl::Status st = store_->Apply(std::move(b)); !st.ok()) return st;
  last_sample_slot_ = slot;
  return true;
}

absl::StatusOr<UtilisationHistory> Controller::Utilisation(const Principal& caller, int64_t since_s,
                                                           int64_t until_s) const {
  if (absl::Status st = Authorize(caller, Action::kReadUtilisation); !st.ok()) return st;
  if (since_s >= until_s) {
    return absl::InvalidArgumentError(absl::StrCat("since (", since_s, ") must be before until (", until_s, ")"));
  }
  auto samples = store_->ListUtilisation(since_s, until_s);
  if (!samples.ok()) return samples.status();
  return UtilisationHistory{options_.utilisation_step_s, *std::move(samples)};
}

absl::StatusOr<UsageReport> Controller::Usage(const Principal& caller, int64_t since_ms, int64_t until_ms,
                                              UsageBy by) const {
  if (absl::Status st = Authorize(caller, Action::kReadUsage); !st.ok()) return st;
  if (since_ms >= until_ms) {
    return absl::InvalidArgumentError(
        absl::StrCat("since (", since_ms / 1000, ") must be before until (", until_ms / 1000, ")"));
  }
  auto intervals = store_->ListUsage(since_ms, until_ms);
  if (!intervals.ok()) return intervals.status();
  auto counts = store_->CountJobs(since_ms, until_ms);
  if (!counts.ok()) return counts.status();
  if (const std::optional<std::string> owner = VisibleOwner(caller)) {
    // A user sees its own usage only, whichever way it is grouped.
    std::erase_if(*intervals, [&](const store::UsageRecord& u) { return u.user != *owner; });
    std::erase_if(*counts, [&](const store::JobCounts& c) { return c.user != *owner; });
  }
  auto rows = ComputeUsage(*intervals, *counts, by, since_ms, until_ms, clock_->NowMs());
  if (!rows.ok()) return rows.status();
  return UsageReport{by, since_ms, until_ms, *std::move(rows)};
}

namespace {

// A queue amount (ResourceAmounts units) in base units: cores, bytes, devices.
double BaseUnits(const std::string& resource, int64_t amount) {
  if (resource == "memory") return static_cast<double>(amount) * 1024 * 1024;
  return static_cast<double>(amount) / 1000.0;  // millicores, milli-devices
}

}  // namespace

void RenderMetrics(const ClusterMetrics& m, const ControllerCounters& c, metrics::ExpositionWriter& w) {
  using metrics::Labels;
  auto device_labels = [](const DeviceMetric& d) {
    return Labels{{"node", d.node}, {"index", std::to_string(d.index)}, {"vendor", d.vendor}, {"model", d.model}};
  };
  w.Family("icos_device_allocated_ratio", "gauge",
           "Share of the device held by active tasks (0..1; fractional requests hold a part).");
  for (const auto& d : m.devices) w.Sample("icos_device_allocated_ratio", device_labels(d), d.allocated);
  // Absent while unknown (no report yet, a library that cannot tell, a lost
  // node): a 0 would read as an idle device.
  w.Family("icos_device_utilization_ratio", "gauge",
           "Compute utilisation the vendor library reports (0..1), from the agent's last health check.");
  for (const auto& d : m.devices) {
    if (d.usage.utilization_pct >= 0) {
      w.Sample("icos_device_utilization_ratio", device_labels(d), d.usage.utilization_pct / 100.0);
    }
  }
  w.Family("icos_device_memory_used_bytes", "gauge", "Device memory in use, from the agent's last health check.");
  for (const auto& d : m.devices) {
    if (d.usage.memory_used_mib >= 0) {
      w.Sample("icos_device_memory_used_bytes", device_labels(d),
               static_cast<double>(d.usage.memory_used_mib) * 1048576.0);
    }
  }
  w.Family("icos_device_healthy", "gauge", "1 if the device's vendor plugin reports it healthy, else 0.");
  for (const auto& d : m.devices) w.Sample("icos_device_healthy", device_labels(d), d.healthy ? 1 : 0);
  w.Family("icos_device_drained", "gauge", "1 if the device or its node is drained (no new work), else 0.");
  for (const auto& d : m.devices) w.Sample("icos_device_drained", device_labels(d), d.drained ? 1 : 0);

  w.Family("icos_queue_allocated_devices", "gauge",
           "Devices held by the queue's active tasks (shares count their fraction).");
  for (const auto& q : m.queues) w.Sample("icos_queue_allocated_devices", {{"queue", q.queue.name}}, q.devices);
  w.Family("icos_queue_allocated_cpu_cores", "gauge", "CPU cores held by the queue's active tasks.");
  for (const auto& q : m.queues) w.Sample("icos_queue_allocated_cpu_cores", {{"queue", q.queue.name}}, q.cpu_cores);
  w.Family("icos_queue_guaranteed", "gauge",
           "Queue guarantee per resource, in base units (cpu: cores, memory: bytes, devices/vendor/model: devices).");
  for (const auto& q : m.queues) {
    for (const auto& [r, v] : q.queue.guaranteed) {
      w.Sample("icos_queue_guaranteed", {{"queue", q.queue.name}, {"resource", r}}, BaseUnits(r, v));
    }
  }
  w.Family("icos_queue_limit", "gauge", "Queue limit per resource, in base units; absent: no limit.");
  for (const auto& q : m.queues) {
    for (const auto& [r, v] : q.queue.limit) {
      w.Sample("icos_queue_limit", {{"queue", q.queue.name}, {"resource", r}}, BaseUnits(r, v));
    }
  }
  w.Family("icos_queue_pending_jobs", "gauge", "Jobs waiting in the queue.");
  for (const auto& q : m.queues)
    w.Sample("icos_queue_pending_jobs", {{"queue", q.queue.name}}, static_cast<double>(q.pending));
  w.Family("icos_queue_running_jobs", "gauge", "Jobs running in the queue.");
  for (const auto& q : m.queues)
    w.Sample("icos_queue_running_jobs", {{"queue", q.queue.name}}, static_cast<double>(q.running));

  // Each takeover by a standby controller raises the epoch: changes() of it
  // counts failovers.
  w.Family("icos_leader_epoch", "gauge", "Leadership epoch of the store (grows by one at every controller takeover).");
  w.Sample("icos_leader_epoch", {}, static_cast<double>(m.leader_epoch));
  w.Family("icos_leader_since_seconds", "gauge", "Unix time the serving controller took the store's leadership.");
  w.Sample("icos_leader_since_seconds", {}, static_cast<double>(m.leader_since_ms) / 1000.0);
  w.Family("icos_jobs", "gauge", "Jobs by state (every job the store holds).");
  for (const auto& [state, n] : m.jobs_by_state) w.Sample("icos_jobs", {{"state", state}}, static_cast<double>(n));

  std::map<std::string, int64_t> nodes_by_state = {{"Ready", 0}, {"NotReady", 0}, {"Drained", 0}};
  for (const auto& n : m.nodes) {
    ++nodes_by_state[n.state];
    if (n.drained) ++nodes_by_state["Drained"];
  }
  w.Family("icos_nodes", "gauge", "Nodes by state; Drained counts drained nodes whatever their readiness.");
  for (const auto& [state, n] : nodes_by_state) w.Sample("icos_nodes", {{"state", state}}, static_cast<double>(n));
  w.Family("icos_node_heartbeat_age_seconds", "gauge",
           "Seconds since the node's agent last spoke (since the controller started, for a silent node).");
  for (const auto& n : m.nodes) w.Sample("icos_node_heartbeat_age_seconds", {{"node", n.name}}, n.heartbeat_age_s);
  w.Family("icos_node_runtime_ratio", "gauge",
           "Median run time / estimate of the node's recent single-node jobs over the cluster's (1: as expected; "
           "absent below 10 jobs).");
  for (const auto& n : m.nodes) {
    if (n.runtime_ratio >= 0) w.Sample("icos_node_runtime_ratio", {{"node", n.name}}, n.runtime_ratio);
  }

  w.Family("icos_runtime_estimator_jobs_learned", "gauge",
           "Succeeded jobs the run-time estimator has learned from (stored history included).");
  w.Sample("icos_runtime_estimator_jobs_learned", {}, static_cast<double>(m.learning.finished));
  w.Family("icos_runtime_estimator_models_trained", "gauge", "Models the run-time estimator fitted since the start.");
  w.Sample("icos_runtime_estimator_models_trained", {}, m.learning.models_trained);
  w.Family("icos_runtime_estimator_failed_predictions", "gauge",
           "Estimates the model could not make (answered from history instead); anything but 0 is a bug.");
  w.Sample("icos_runtime_estimator_failed_predictions", {}, static_cast<double>(m.learning.failed_predictions));

  c.heartbeats.Render(w);
  c.overtaken_heartbeats.Render(w);
  c.lost_device_seconds.Render(w);
  c.webhook_deliveries.Render(w);
  c.estimate_ratio.Render(w);
  c.pass_duration.Render(w);
  c.binds.Render(w);
  c.preemptions.Render(w);
  c.loop_errors.Render(w);
}

// --- device use of jobs -----------------------------------------------------------

}  // namespace icos::controller
