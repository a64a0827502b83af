// The cluster engine's scheduling pass: the snapshot the scheduler decides
// on, the tasks each bind makes, and the decisions applied with their stale
// checks.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/estimates.h"
#include "devices/vendors.h"
#include "engine/engine.h"
#include "frameworks/frameworks.h"

namespace icos::engine {

using nlohmann::json;
using store::JobState;
using store::TaskState;

constexpr int64_t kHourMs = 3'600'000;

namespace {

// The devices a task holds, fractional slices as parts of one.
double DeviceShare(const core::TaskPlacement& p) {
  double share = 0;
  for (const core::DeviceSlice& d : p.devices) share += d.percent / 100.0;
  return share;
}

}  // namespace

JobRuns Engine::RunsOf(const JobEntry& j, int64_t now) const {
  // The speed of a device model relative to the job's fastest choice (its
  // throughputs; 1 where it gives none), as the simulator runs it. Most jobs
  // give none: then no run's device model is looked up.
  double best = 0;
  for (const core::TaskGroup& g : j.core.groups) {
    for (const core::DeviceChoice& c : g.device_choices) best = std::max(best, c.throughput);
  }
  auto speed_on = [&](const std::string* model) {
    if (best <= 0 || model == nullptr) return 1.0;
    for (const core::TaskGroup& g : j.core.groups) {
      for (const core::DeviceChoice& c : g.device_choices) {
        if (c.model == *model && c.throughput > 0) return c.throughput / best;
      }
    }
    return 1.0;
  };
  // From the tasks' own start and end times (kept in the store, so a
  // restarted controller sees the same).
  struct Run {
    int64_t start_ms = 0, end_ms = 0;
    const std::string* model = nullptr;  // of its devices, where speeds matter
  };
  std::map<int32_t, Run> runs;  // by attempt, those that started (or are about to: the current one)
  JobRuns out;
  for (const auto& t : j.tasks) {
    const bool active = store::IsActive(t.rec.state);
    const bool current = active && t.rec.attempt == j.rec.attempt && j.rec.state == JobState::kRunning;
    if (t.rec.start_ms <= 0 && !current) continue;
    // A task assigned but not yet started starts about now.
    const int64_t start = t.rec.start_ms > 0 ? t.rec.start_ms : now;
    const int64_t end = t.rec.end_ms > 0 ? t.rec.end_ms : active ? now : start;
    const double share = DeviceShare(t.placement);
    out.attained_device_s += share * static_cast<double>(std::max<int64_t>(0, end - start)) / 1000.0;
    Run& r = runs[t.rec.attempt];
    r.start_ms = r.start_ms == 0 ? start : std::min(r.start_ms, start);
    r.end_ms = std::max(r.end_ms, end);
    if (best > 0 && r.model == nullptr && !t.placement.devices.empty()) {
      auto n = nodes_.find(t.rec.node);
      const int32_t d = t.placement.devices[0].device;
      if (n != nodes_.end() && d >= 0 && d < static_cast<int32_t>(n->second.node.devices.size())) {
        r.model = &n->second.node.devices[d].model;
      }
    }
  }
  const int64_t restore_ms = options_.restore_cost_ms;
  core::RunHistory h;
  h.estimate_s = static_cast<double>(j.core.runtime_estimate_ms) / 1000.0;
  for (const auto& [attempt, r] : runs) {
    if (attempt < j.rec.attempt && r.end_ms > now - kHourMs) ++out.interruptions_last_hour;
  }
  int32_t index = 0;
  for (const auto& [attempt, r] : runs) {
    const bool restored = index++ > 0;
    if (attempt == j.rec.attempt && j.rec.state == JobState::kRunning) {
      out.running = true;
      out.run_start_ms = r.start_ms;
      h.restore = restored;
      out.running_estimate_ms = core::RunningEstimateMs(h, options_.total_estimates, restore_ms, speed_on(r.model));
      break;  // later attempts cannot have run
    }
    const int64_t work_from = r.start_ms + (restored ? restore_ms : 0);
    h.worked_s += static_cast<double>(std::max<int64_t>(0, r.end_ms - work_from)) / 1000.0 * speed_on(r.model);
  }
  out.worked_s = h.worked_s;
  if (!out.running) {
    h.restore = !runs.empty();
    out.pending_estimate_ms = core::PendingEstimateMs(h, options_.total_estimates, restore_ms);
  }
  return out;
}

Engine::PassView Engine::MakePassView(const JobEntry& j, const std::map<std::string, int32_t>& node_index) const {
  PassView v;
  v.active_tasks = HasActiveTasks(j, false);
  v.retry_at_ms = RetryAtMs(j);
  for (const core::TaskGroup& g : j.core.groups) {
    for (const core::DeviceChoice& c : g.device_choices) v.every_pass |= c.throughput > 0;
  }
  const bool running = j.rec.state == JobState::kRunning;
  std::map<int32_t, int64_t> run_end;  // earlier attempts that started: when their last task ended
  for (const TaskEntry& t : j.tasks) {
    const bool active = store::IsActive(t.rec.state);
    const bool current = active && t.rec.attempt == j.rec.attempt && running;
    if (active) {
      auto ni = node_index.find(t.rec.node);
      if (ni != node_index.end()) {
        core::TaskPlacement p = t.placement;
        p.node = ni->second;
        v.tasks.push_back(std::move(p));
      }
    }
    // RunsOf's rules, with the time left open.
    if (t.rec.start_ms <= 0 && !current) continue;
    if (t.rec.start_ms <= 0) {  // assigned, about to start: it starts now
      v.unstarted = true;
      v.every_pass |= t.rec.end_ms > 0;
      continue;
    }
    const int64_t end = t.rec.end_ms > 0 ? t.rec.end_ms : active ? 0 : t.rec.start_ms;
    v.served.push_back({DeviceShare(t.placement), t.rec.start_ms, end});
    if (running && t.rec.attempt == j.rec.attempt) {  // the current run
      v.first_start_ms = std::min(v.first_start_ms, t.rec.start_ms);
      continue;
    }
    v.every_pass |= end == 0;  // a task of another run still stopping ends "now"
    if (t.rec.attempt < j.rec.attempt) {
      int64_t& e = run_end[t.rec.attempt];
      e = std::max(e, end);
    }
  }
  for (const auto& [attempt, end] : run_end) v.earlier_run_ends.push_back(end);
  // What does not move with the time (running, estimates, work done) is
  // RunsOf's at any instant.
  if (!v.every_pass) v.runs = RunsOf(j, 1);
  return v;
}

JobRuns Engine::PassRuns(const JobEntry& j, const PassView& v, int64_t now) const {
  if (v.every_pass || now <= 0) return RunsOf(j, now);
  JobRuns out = v.runs;
  out.attained_device_s = 0;
  for (const PassView::Served& s : v.served) {
    const int64_t end = s.end_ms > 0 ? s.end_ms : now;
    out.attained_device_s += s.share * static_cast<double>(std::max<int64_t>(0, end - s.start_ms)) / 1000.0;
  }
  out.interruptions_last_hour = 0;
  for (int64_t end : v.earlier_run_ends) out.interruptions_last_hour += end > now - kHourMs ? 1 : 0;
  if (out.running) out.run_start_ms = v.unstarted ? std::min(v.first_start_ms, now) : v.first_start_ms;
  return out;
}

namespace {

// The next element of `v`, reusing one a recycled pass left there (its
// strings and vectors keep their memory when assigned to).
template <typename T>
T& Next(std::vector<T>& v, size_t& used) {
  return used < v.size() ? v[used++] : (++used, v.emplace_back());
}

}  // namespace

PassInput Engine::BeginPass(int64_t now) {
  // Refilled in place: a large pass copies every open job, and assigning
  // over the last pass's copies costs far less than allocating afresh.
  PassInput in = std::move(spare_pass_);
  spare_pass_ = PassInput();
  core::Snapshot& snap = in.snap;
  snap.now_ms = now;
  snap.past_usage.clear();
  in.pending_attempt.clear();
  in.pending_revision.clear();
  in.running_attempt.clear();
  in.unmet.clear();
  in.held_back.clear();
  size_t nodes_used = 0, queues_used = 0, running_used = 0, pending_used = 0;
  std::map<std::string, int32_t> node_index;
  // At most every node; cut to the ready ones below.
  in.node_names.resize(nodes_.size());
  in.node_addresses.resize(nodes_.size());
  in.node_generation.resize(nodes_.size());
  for (const auto& [name, n] : nodes_) {
    if (n.rec.state != "Ready") continue;
    const size_t i = nodes_used;
    node_index[name] = static_cast<int32_t>(i);
    core::Node& node = Next(snap.nodes, nodes_used);
    in.node_names[i] = name;
    in.node_addresses[i] = n.rec.address.empty() ? name : n.rec.address;
    in.node_generation[i] = n.generation;
    node = n.node;
    if (n.drained || !n.unhealthy_reason.empty()) node.schedulable = false;
    for (int32_t d : n.drained_devices) {
      if (d >= 0 && d < static_cast<int32_t>(node.devices.size())) node.devices[d].drained = true;
    }
  }
  snap.nodes.resize(nodes_used);
  in.node_names.resize(nodes_used);
  in.node_addresses.resize(nodes_used);
  in.node_generation.resize(nodes_used);
  for (const auto& [name, q] : queues_) Next(snap.queues, queues_used) = q;
  snap.queues.resize(queues_used);
  // The views index tasks by the ready nodes' order: another order, another view.
  if (in.node_names != pass_nodes_) {
    pass_views_.clear();
    pass_nodes_ = in.node_names;
  }
  auto view_of = [&](const JobEntry& j) -> const PassView& {
    auto [it, added] = pass_views_.try_emplace(j.rec.id);
    if (added) it->second = MakePassView(j, node_index);
    return it->second;
  };
  // Throttled arrays (array: ...%N): their elements running, or offered
  // to this pass, so that at most N run at once.
  std::map<int64_t, int32_t> array_active;
  for (const auto& [id, j] : jobs_) {
    if (j.rec.array_id != 0 && j.spec.array_throttle > 0 &&
        (j.rec.state == JobState::kRunning || view_of(j).active_tasks)) {
      ++array_active[j.rec.array_id];
    }
  }
  // As many as the last pass had, most likely.
  snap.running.reserve(last_pass_running_);
  snap.pending.reserve(last_pass_pending_);
  in.running_attempt.reserve(last_pass_running_);
  in.pending_attempt.reserve(last_pass_pending_);
  in.pending_revision.reserve(last_pass_pending_);
  for (const auto& [id, j] : jobs_) {
    const PassView& view = view_of(j);
    const JobRuns runs = PassRuns(j, view, now);
    if (runs.running) in.running_attempt[id] = j.rec.attempt;
    if (!view.tasks.empty()) {
      core::RunningJob& rj = Next(snap.running, running_used);
      rj.job = j.core;
      rj.job.preemptible = j.spec.preemptible && j.rec.state == JobState::kRunning;
      rj.job.attained_device_s = runs.attained_device_s;
      rj.job.checkpoint_ms = j.rec.checkpoint_ms;
      rj.job.checkpoints = j.spec.checkpoint.enabled;
      rj.job.recent_interruptions = runs.interruptions_last_hour;
      if (runs.running) rj.job.runtime_estimate_ms = runs.running_estimate_ms;
      rj.tasks = view.tasks;
      rj.start_ms = runs.running ? runs.run_start_ms : j.rec.start_ms;
    }
    // A job waits while tasks of an earlier attempt still run (never twice
    // at once), and a restarted one for its back-off.
    if (j.rec.state == JobState::kPending && !view.active_tasks && (j.rec.attempt == 0 || now >= view.retry_at_ms)) {
      // Held, or waiting for its dependencies: not the scheduler's to place.
      std::string never;
      if (std::string why = HeldBackReason(j, &never); !why.empty()) {
        if (!never.empty()) in.unmet.emplace_back(id, std::move(never));
        if (why != j.rec.reason) in.held_back.emplace_back(id, std::move(why));
        continue;
      }
      if (j.rec.array_id != 0 && j.spec.array_throttle > 0 && array_active[j.rec.array_id]++ >= j.spec.array_throttle) {
        std::string why = absl::StrCat("ArrayThrottle: ", j.spec.array_throttle, " of array ", j.rec.array_id,
                                       " run at once (its %", j.spec.array_throttle, ")");
        if (why != j.rec.reason) in.held_back.emplace_back(id, std::move(why));
        continue;
      }
      in.pending_revision[id] = j.revision;
      core::Job& pending = Next(snap.pending, pending_used);
      pending = j.core;
      pending.attained_device_s = runs.attained_device_s;
      pending.runtime_estimate_ms = runs.pending_estimate_ms;
      in.pending_attempt[id] = j.rec.attempt;
    }
  }
  snap.running.resize(running_used);
  snap.pending.resize(pending_used);
  // Fair share over time: what each queue held since the last pass joins
  // its decayed history, which the drf order adds to what it holds now.
  usage_history_.Update(snap);
  last_pass_running_ = snap.running.size();
  last_pass_pending_ = snap.pending.size();
  return in;
}

BindWork Engine::PrepareBinds(const PassInput& in, const core::Decisions& decisions) const {
  // A move to a faster device type (the gavel policy's
  // migrate_to_faster_type) is a bind of the job's next attempt to the new
  // place, waiting for its own current tasks to stop (as a preemptor waits
  // for its victims): the simulator's stop-and-restart, placed where the
  // core chose, in one pass. A job that checkpoints resumes as after any
  // preemption.
  BindWork work;
  // The ports active tasks hold; binds happen only in passes, one at a
  // time, so none is booked behind this pass's back.
  work.ports = PortBook(options_.port_base, options_.port_span);
  if (!decisions.binds.empty() || !decisions.migrations.empty()) {
    for (int64_t id : with_active_tasks_) {
      for (const TaskEntry& t : jobs_.at(id).tasks) {
        if (!store::IsActive(t.rec.state)) continue;
        for (int32_t p : t.assignment.ports) work.ports.Hold(t.rec.node, p);
      }
    }
  }
  auto add = [&](const core::BindDecision& bind, bool move) {
    const JobEntry* j = FindJob(bind.job.value());
    if (j == nullptr) return;
    BindWork::Item& item = work.items.emplace_back();
    item.bind = bind;
    item.move = move;
    const int64_t id = j->rec.id;
    // A move binds the running job's next attempt; a bind, the pending one's.
    const absl::flat_hash_map<int64_t, int32_t>& attempts = move ? in.running_attempt : in.pending_attempt;
    auto seen = attempts.find(id);
    item.attempt = seen == attempts.end() ? 0 : seen->second + (move ? 1 : 0);
    item.spec = j->spec;
    item.user = j->rec.user;
    item.uid = j->rec.run_uid;
    item.gid = j->rec.run_gid;
    item.checkpoint_window_ms = CheckpointWindowMs(*j);
    if (j->spec.kind == api::JobKind::kService) {  // each replica is told which it is
      item.spec.env["ICOS_SERVICE_ID"] = absl::StrCat(j->rec.array_id);
      item.spec.env["ICOS_REPLICA"] = absl::StrCat(j->rec.array_index);
      item.spec.env["ICOS_REPLICAS"] = absl::StrCat(item.spec.service.replicas);
    } else if (j->rec.array_id != 0) {  // each element is told which it is (Slurm's SLURM_ARRAY_*)
      item.spec.env["ICOS_ARRAY_JOB_ID"] = absl::StrCat(j->rec.array_id);
      item.spec.env["ICOS_ARRAY_INDEX"] = absl::StrCat(j->rec.array_index);
      item.spec.env["ICOS_ARRAY_COUNT"] = absl::StrCat(item.spec.array_count);
    }
  };
  for (const auto& m : decisions.migrations) {
    add({.job = m.job, .device_type = m.device_type, .tasks = m.tasks, .after_preemption = {m.job}}, true);
  }
  for (const auto& b : decisions.binds) add(b, false);
  return work;
}

void Engine::MakeTasks(const PassInput& in, BindWork& work) const {
  for (BindWork::Item& item : work.items) item.tasks = TasksOf(in, item, work.ports);
}

absl::StatusOr<std::vector<TaskEntry>> Engine::TasksOf(const PassInput& in, const BindWork::Item& item,
                                                       PortBook& ports) const {
  const api::JobSpec& spec = item.spec;
  const int64_t job_id = item.bind.job.value();
  const std::vector<std::string>& node_names = in.node_names;
  std::vector<int64_t> waits_for;
  for (JobId v : item.bind.after_preemption) waits_for.push_back(v.value());
  // Ranks in (group, replica) order; nodes numbered in order of first use.
  // Linear in the job's tasks (a 10,000-task gang binds in one pass): one
  // RankInfo is filled once and only its per-rank fields change per task.
  std::vector<core::TaskPlacement> placed = item.bind.tasks;
  std::sort(placed.begin(), placed.end(),
            [](const auto& a, const auto& b) { return std::tie(a.group, a.replica) < std::tie(b.group, b.replica); });
  std::map<std::string, int32_t> node_rank;  // node -> its index among the job's nodes
  std::map<std::string, int32_t> per_node;
  frameworks::RankInfo info;
  info.framework = api::FrameworkName(spec.framework);
  info.job_name = spec.name;
  info.job_id = job_id;
  info.world_size = static_cast<int32_t>(placed.size());
  // The rendezvous port lives on the first rank's node; every rank has one of
  // its own on its node. Booked, so no two tasks on a node share one.
  const int64_t port_hint = job_id + item.attempt;
  if (!placed.empty()) {
    // From where the job id and attempt point: consecutive jobs, and a
    // job's next attempt, do not reuse the port one just released
    // (PortBook), nor one a process outside icos held when an agent found
    // it taken (a service's restart after "port in use").
    auto master = ports.Take(node_names[placed[0].node], port_hint);
    if (!master.ok()) return master.status();
    info.master_port = *master;
  }
  for (const auto& p : placed) {
    const std::string& name = node_names[p.node];
    node_rank.emplace(name, static_cast<int32_t>(node_rank.size()));
    ++per_node[name];
    info.rank_hosts.push_back(in.node_addresses[p.node]);
    auto port = ports.Take(name, port_hint);
    if (!port.ok()) return port.status();
    info.rank_ports.push_back(*port);
    std::vector<int32_t> devs;
    for (const auto& s : p.devices) devs.push_back(s.device);
    info.rank_devices.push_back(devs);
  }
  info.num_nodes = static_cast<int32_t>(node_rank.size());
  info.master_addr = info.rank_hosts.empty() ? "127.0.0.1" : info.rank_hosts[0];
  // The agent puts generated files in the task's own directory and
  // substitutes this placeholder with its path.
  info.files_dir = wire::kTaskDirPlaceholder;
  std::vector<TaskEntry> out;
  out.reserve(placed.size());
  std::map<std::string, int32_t> local_seen;
  for (int32_t rank = 0; rank < static_cast<int32_t>(placed.size()); ++rank) {
    const core::TaskPlacement& p = placed[rank];
    const std::string& node = node_names[p.node];
    const api::TaskSpec& ts = spec.tasks[p.group];
    TaskEntry e;
    e.placement = p;
    e.rec.job_id = job_id;
    e.rec.group = p.group;
    e.rec.replica = p.replica;
    e.rec.attempt = item.attempt;
    e.rec.node = node;
    e.rec.state = TaskState::kAssigned;
    wire::Assignment& a = e.assignment;
    a.task_id = wire::TaskId(job_id, p.group, p.replica, item.attempt);
    a.job_id = job_id;
    a.group = p.group;
    a.replica = p.replica;
    a.attempt = item.attempt;
    a.argv = ts.command;
    a.workdir = ts.workdir;
    a.cpu_milli = p.cpu_milli;
    a.memory_mib = p.memory_mib;
    a.numa_nodes = p.numa_nodes;
    a.time_limit_s = spec.time_limit_s;
    if (rank == 0) a.ports.push_back(info.master_port);
    a.ports.push_back(info.rank_ports[rank]);
    a.user = item.user;
    a.uid = item.uid;
    a.gid = item.gid;
    a.grace_ms = options_.grace_ms;
    if (spec.checkpoint.enabled) {
      a.checkpoint_signal = spec.checkpoint.signal;
      a.checkpoint_grace_ms = item.checkpoint_window_ms;
    }
    a.max_disconnect_ms = spec.max_disconnect_s > 0 ? spec.max_disconnect_s * 1000 : options_.node_lease_ms;
    for (const auto& [k, v] : spec.env) a.env[k] = v;
    for (const auto& [k, v] : ts.env) a.env[k] = v;
    info.rank = rank;
    info.local_rank = local_seen[node]++;
    info.local_world_size = per_node[node];
    info.node_rank = node_rank[node];
    const core::Node& where = in.snap.nodes[p.node];
    for (const auto& s : p.devices) {
      a.devices.push_back(s.device);
      if (s.device >= 0 && s.device < static_cast<int32_t>(where.devices.size())) {
        a.vendor = where.devices[s.device].vendor;
      }
    }
    info.vendor = a.vendor;
    auto setup = frameworks::SetupFramework(info);
    if (!setup.ok()) return setup.status();
    for (auto& [k, v] : setup->env) a.env[k] = std::move(v);
    for (auto& [k, v] : setup->default_env) a.env.emplace(k, std::move(v));  // the job's own choice wins
    a.files = std::move(setup->files);
    // The port a service's replica serves on (its own, the last of its
    // ports): what its readiness probe and `icos endpoints` name. Set after
    // the job's env, which cannot move it.
    if (spec.kind == api::JobKind::kService) {
      a.serve_port = a.ports.back();
      a.env["ICOS_PORT"] = absl::StrCat(a.serve_port);
      // Probes that run on the node: its agent runs them, the controller judges.
      for (const auto& [kind, probe] : spec.service.NamedProbes()) {
        if (probe->type != api::ProbeSpec::Type::kCommand) continue;
        a.command_probes.push_back({.kind = kind,
                                    .argv = probe->command,
                                    .initial_delay_ms = probe->initial_delay_s * 1000,
                                    .period_ms = probe->period_s * 1000,
                                    .timeout_ms = probe->timeout_s * 1000});
      }
    }
    if (!a.devices.empty()) {
      for (const auto& [k, v] : devices::VisibleDevicesEnv(a.vendor, a.devices)) a.env[k] = v;
      if (p.devices[0].percent < core::kWholeDevicePercent) {
        // Device sharing (HAMi-style): the task is told its slice.
        a.env["ICOS_DEVICE_SHARE_PERCENT"] = absl::StrCat(p.devices[0].percent);
        a.env["ICOS_DEVICE_MEMORY_MIB"] = absl::StrCat(p.devices[0].memory_mib);
      }
    }
    e.rec.placement_json = json{
        {"placement", wire::PlacementToJson(p)},
        {"assignment", wire::AssignmentToJson(a)},
        {"waits_for",
         waits_for}}.dump();
    out.push_back(std::move(e));
  }
  return out;
}

PassOutcome Engine::ApplyPass(const PassInput& in, const core::Decisions& decisions, BindWork&& work,
                              int64_t now) const {
  PassOutcome out(now);
  Change& c = out.change;
  // What changed while the core thought makes some decisions stale: a job
  // cancelled or restarted, a node lost or re-registered. Those are dropped
  // and the next pass decides again; capacity only grew otherwise.
  auto attempt_seen = [&](const absl::flat_hash_map<int64_t, int32_t>& m, int64_t id) {
    auto it = m.find(id);
    return it == m.end() ? -1 : it->second;
  };
  auto still_pending = [&](int64_t id) {
    auto it = jobs_.find(id);
    auto revision = in.pending_revision.find(id);
    return it != jobs_.end() && it->second.rec.state == JobState::kPending &&
           it->second.rec.attempt == attempt_seen(in.pending_attempt, id) && revision != in.pending_revision.end() &&
           it->second.revision == revision->second && !HasActiveTasks(it->second, false);
  };
  auto node_unchanged = [&](int32_t index) {
    auto it = nodes_.find(in.node_names[index]);
    return it != nodes_.end() && it->second.rec.state == "Ready" && it->second.generation == in.node_generation[index];
  };
  std::map<int64_t, BindWork::Item*> moves, binds;
  for (BindWork::Item& item : work.items) (item.move ? moves : binds)[item.bind.job.value()] = &item;

  for (const core::MigrateDecision& m : decisions.migrations) {
    const int64_t id = m.job.value();
    auto it = jobs_.find(id);
    const int32_t seen = attempt_seen(in.running_attempt, id);
    bool valid =
        it != jobs_.end() && it->second.rec.state == JobState::kRunning && seen >= 0 && it->second.rec.attempt == seen;
    for (const auto& t : m.tasks) valid = valid && node_unchanged(t.node);
    auto made = moves.find(id);
    if (!valid || made == moves.end() || !made->second->tasks.ok()) {
      out.stale = true;
      continue;
    }
    JobEntry& j = Stage(c, id);
    ++j.rec.attempt;
    j.rec.reason = absl::StrCat("moving from ", m.from_type, " to ", m.device_type, ": ", m.reason);
    j.waits_for = {id};  // its own tasks of the attempt before
    std::set<std::string> where;
    for (auto& t : *made->second->tasks) {
      where.insert(t.rec.node);
      c.batch.tasks.push_back(t.rec);
      j.tasks.push_back(std::move(t));
    }
    c.batch.jobs.push_back(j.rec);
    c.Event(j.rec.id, "", "Migrating",
            absl::StrCat(j.rec.reason, "; ", m.tasks.size(), " tasks on ", absl::StrJoin(where, ", ")));
    ++out.preemptions;
  }
  for (const auto& p : decisions.preemptions) {
    auto vit = jobs_.find(p.victim.value());
    if (vit == jobs_.end() || vit->second.rec.state != JobState::kRunning || !still_pending(p.preemptor.value())) {
      out.stale = true;
      continue;
    }
    JobEntry& v = Stage(c, p.victim.value());
    v.rec.state = JobState::kPending;
    ++v.rec.attempt;  // its current tasks are stopped; it is scheduled afresh later
    v.rec.reason = absl::StrCat("preempted: ", p.reason);
    c.batch.jobs.push_back(v.rec);
    c.Event(v.rec.id, "", "Preempted", p.reason);
    ++out.preemptions;
  }
  for (const auto& bind : decisions.binds) {
    bool valid = still_pending(bind.job.value());
    for (const auto& t : bind.tasks) valid = valid && node_unchanged(t.node);
    auto made = binds.find(bind.job.value());
    if (!valid || made == binds.end()) {
      out.stale = true;
      continue;
    }
    absl::StatusOr<std::vector<TaskEntry>>& tasks_made = made->second->tasks;
    // Every task port of a node is held: the job waits, as for any resource.
    if (tasks_made.status().code() == absl::StatusCode::kResourceExhausted) continue;
    JobEntry& j = Stage(c, bind.job.value());
    std::vector<int64_t> waits_for;
    for (JobId v : bind.after_preemption) waits_for.push_back(v.value());
    if (!tasks_made.ok()) {
      // The framework cannot be set up for this placement: a spec problem the user must fix.
      j.rec.state = JobState::kFailed;
      j.rec.end_ms = now;
      j.rec.reason =
          absl::StrCat("cannot set up ", api::FrameworkName(j.spec.framework), ": ", tasks_made.status().message());
      c.batch.jobs.push_back(j.rec);
      c.Event(j.rec.id, "", "Failed", j.rec.reason);
      continue;
    }
    j.rec.state = JobState::kRunning;
    if (j.rec.start_ms == 0) j.rec.start_ms = now;
    j.rec.reason = bind.after_preemption.empty() ? "" : "waiting for preempted jobs to stop";
    j.waits_for = std::move(waits_for);
    std::set<std::string> where;
    for (auto& t : *tasks_made) {
      where.insert(t.rec.node);
      c.batch.tasks.push_back(t.rec);
      j.tasks.push_back(std::move(t));
    }
    c.batch.jobs.push_back(j.rec);
    ++out.binds;
    c.Event(j.rec.id, "", "Scheduled",
            absl::StrCat(bind.tasks.size(), " tasks on ", absl::StrJoin(where, ", "),
                         bind.device_type.empty() ? "" : absl::StrCat(" (", bind.device_type, ")")));
  }
  return out;
}

Reasons Engine::WaitingReasons(const core::Decisions& decisions, int64_t now) const {
  absl::flat_hash_map<int64_t, int64_t> reserved_minutes;
  for (const auto& r : decisions.reservations) {
    reserved_minutes[r.job.value()] = (r.start_ms - now + 59'999) / 60'000;
  }
  // Every waiting job, every pass: written into one buffer and copied only
  // where it changed (most reasons stay as they were).
  Reasons out;
  std::string reason;
  for (const auto& w : decisions.waiting) {
    auto it = jobs_.find(w.job.value());
    if (it == jobs_.end() || it->second.rec.state != JobState::kPending) continue;
    reason.clear();
    absl::StrAppend(&reason, core::WaitKindName(w.kind), ": ", w.reason);
    if (auto r = reserved_minutes.find(w.job.value()); r != reserved_minutes.end()) {
      absl::StrAppend(&reason, "; reserved to start in about ", r->second, " min");
    }
    if (it->second.rec.reason != reason) out.emplace_back(it->first, reason);
  }
  return out;
}

void Engine::SetReasons(const Reasons& reasons) {
  for (const auto& [id, reason] : reasons) {
    auto it = jobs_.find(id);
    if (it != jobs_.end()) it->second.rec.reason = reason;
  }
}

}  // namespace icos::engine
