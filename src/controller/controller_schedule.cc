// Controller: the scheduling pass (snapshot, decisions applied with their
// stale checks) and the node checks that fail the tasks of lost nodes.
#include <algorithm>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/controller.h"
#include "core/estimates.h"
#include "core/resources/cluster_state.h"
#include "devices/vendors.h"
#include "frameworks/frameworks.h"

namespace icos::controller {

using nlohmann::json;
using store::JobState;
using store::TaskState;

// --- scheduling ------------------------------------------------------------------------

absl::StatusOr<std::vector<Controller::TaskEntry>> Controller::MakeTasks(
    const api::JobSpec& spec, const TaskOwner& owner, int64_t job_id, int32_t attempt, const core::BindDecision& bind,
    const PassNodes& nodes, const std::vector<int64_t>& waits_for, PortBook& ports) const {
  const std::vector<std::string>& node_names = nodes.names;
  // Ranks in (group, replica) order; nodes numbered in order of first use.
  // Linear in the job's tasks (a 10,000-task gang binds in one pass): one
  // RankInfo is filled once and only its per-rank fields change per task.
  std::vector<core::TaskPlacement> placed = bind.tasks;
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
  if (!placed.empty()) {
    // From where the job id points: consecutive jobs do not reuse the port
    // one just released (PortBook).
    auto master = ports.Take(node_names[placed[0].node], job_id);
    if (!master.ok()) return master.status();
    info.master_port = *master;
  }
  for (const auto& p : placed) {
    const std::string& name = node_names[p.node];
    node_rank.emplace(name, static_cast<int32_t>(node_rank.size()));
    ++per_node[name];
    info.rank_hosts.push_back(nodes.addresses[p.node]);
    auto port = ports.Take(name, job_id);
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
    e.rec.attempt = attempt;
    e.rec.node = node;
    e.rec.state = TaskState::kAssigned;
    wire::Assignment& a = e.assignment;
    a.task_id = wire::TaskId(job_id, p.group, p.replica, attempt);
    a.job_id = job_id;
    a.group = p.group;
    a.replica = p.replica;
    a.attempt = attempt;
    a.argv = ts.command;
    a.workdir = ts.workdir;
    a.cpu_milli = p.cpu_milli;
    a.memory_mib = p.memory_mib;
    a.numa_nodes = p.numa_nodes;
    a.time_limit_s = spec.time_limit_s;
    if (rank == 0) a.ports.push_back(info.master_port);
    a.ports.push_back(info.rank_ports[rank]);
    a.user = owner.user;
    a.uid = owner.uid;
    a.gid = owner.gid;
    a.grace_ms = options_.grace_ms;
    a.max_disconnect_ms = spec.max_disconnect_s > 0 ? spec.max_disconnect_s * 1000 : options_.node_lease_ms;
    for (const auto& [k, v] : spec.env) a.env[k] = v;
    for (const auto& [k, v] : ts.env) a.env[k] = v;
    info.rank = rank;
    info.local_rank = local_seen[node]++;
    info.local_world_size = per_node[node];
    info.node_rank = node_rank[node];
    const core::Node& where = (*nodes.nodes)[p.node];
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

Controller::JobRuns Controller::RunsOf(const JobEntry& j, int64_t now) const {
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
    double share = 0;
    for (const core::DeviceSlice& d : t.placement.devices) share += d.percent / 100.0;
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
  const int64_t restore_ms = options_.scheduler.restore_cost_ms;
  core::RunHistory h;
  h.estimate_s = static_cast<double>(j.core.runtime_estimate_ms) / 1000.0;
  int32_t index = 0;
  for (const auto& [attempt, r] : runs) {
    const bool restored = index++ > 0;
    if (attempt == j.rec.attempt && j.rec.state == JobState::kRunning) {
      out.running = true;
      out.run_start_ms = r.start_ms;
      h.restore = restored;
      out.running_estimate_ms = core::RunningEstimateMs(h, total_estimates_, restore_ms, speed_on(r.model));
      break;  // later attempts cannot have run
    }
    const int64_t work_from = r.start_ms + (restored ? restore_ms : 0);
    h.worked_s += static_cast<double>(std::max<int64_t>(0, r.end_ms - work_from)) / 1000.0 * speed_on(r.model);
  }
  out.worked_s = h.worked_s;
  if (!out.running) {
    h.restore = !runs.empty();
    out.pending_estimate_ms = core::PendingEstimateMs(h, total_estimates_, restore_ms);
  }
  return out;
}

absl::Status Controller::RunPass() {
  // One pass at a time; the lock on the cluster state is held only to take
  // the snapshot and to apply the decisions, never while icos::core thinks,
  // so submits, heartbeats and watches are not blocked by a pass.
  std::lock_guard<std::mutex> pass_lock(pass_mu_);
  // Real elapsed time for the latency histogram, whatever clock_ says (a FakeClock stands still).
  const auto pass_start = std::chrono::steady_clock::now();
  ApplyLearnedEstimates();
  const int64_t now = clock_->NowMs();
  core::Snapshot snap;
  snap.now_ms = now;
  PassNodes pass_nodes;
  pass_nodes.nodes = &snap.nodes;
  std::vector<std::string>& node_names = pass_nodes.names;
  std::vector<uint64_t> node_generation;
  std::map<int64_t, int32_t> pending_attempt;
  std::map<int64_t, int64_t> pending_revision;
  std::map<int64_t, int32_t> running_attempt;          // jobs whose current attempt runs
  std::vector<std::pair<int64_t, std::string>> unmet;  // dependencies never met: cancel
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, int32_t> node_index;
    for (const auto& [name, n] : nodes_) {
      if (n.rec.state != "Ready") continue;
      node_index[name] = static_cast<int32_t>(snap.nodes.size());
      node_names.push_back(name);
      pass_nodes.addresses.push_back(n.rec.address.empty() ? name : n.rec.address);
      node_generation.push_back(n.generation);
      snap.nodes.push_back(n.node);
      if (n.drained || !n.unhealthy_reason.empty()) snap.nodes.back().schedulable = false;
      for (int32_t d : n.drained_devices) {
        if (d >= 0 && d < static_cast<int32_t>(snap.nodes.back().devices.size())) {
          snap.nodes.back().devices[d].drained = true;
        }
      }
    }
    for (const auto& [name, q] : queues_) snap.queues.push_back(q);
    // Throttled arrays (array: ...%N): their elements running, or offered
    // to this pass, so that at most N run at once.
    std::map<int64_t, int32_t> array_active;
    for (const auto& [id, j] : jobs_) {
      if (j.rec.array_id != 0 && j.spec.array_throttle > 0 &&
          (j.rec.state == JobState::kRunning || HasActiveTasks(j, false))) {
        ++array_active[j.rec.array_id];
      }
    }
    for (auto& [id, j] : jobs_) {
      core::RunningJob rj;
      rj.job = j.core;
      rj.job.preemptible = j.spec.preemptible && j.rec.state == JobState::kRunning;
      const JobRuns runs = RunsOf(j, now);
      rj.job.attained_device_s = runs.attained_device_s;
      if (runs.running) rj.job.runtime_estimate_ms = runs.running_estimate_ms;
      for (const auto& t : j.tasks) {
        if (!store::IsActive(t.rec.state)) continue;
        auto ni = node_index.find(t.rec.node);
        if (ni == node_index.end()) continue;  // node not ready: its tasks are being failed
        core::TaskPlacement p = t.placement;
        p.node = ni->second;
        rj.tasks.push_back(p);
      }
      rj.start_ms = runs.running ? runs.run_start_ms : j.rec.start_ms;
      if (runs.running) running_attempt[id] = j.rec.attempt;
      if (!rj.tasks.empty()) snap.running.push_back(std::move(rj));
      // A job waits while tasks of an earlier attempt still run (never twice
      // at once), and a restarted one for its back-off.
      if (j.rec.state == JobState::kPending && !HasActiveTasks(j, false) &&
          (j.rec.attempt == 0 || now >= RetryAtMs(j))) {
        // Held, or waiting for its dependencies: not the scheduler's to place.
        std::string never;
        if (std::string why = HeldBackReason(j, &never); !why.empty()) {
          if (!never.empty()) unmet.emplace_back(id, std::move(never));
          j.rec.reason = std::move(why);
          continue;
        }
        if (j.rec.array_id != 0 && j.spec.array_throttle > 0 &&
            array_active[j.rec.array_id]++ >= j.spec.array_throttle) {
          j.rec.reason = absl::StrCat("ArrayThrottle: ", j.spec.array_throttle, " of array ", j.rec.array_id,
                                      " run at once (its %", j.spec.array_throttle, ")");
          continue;
        }
        pending_revision[id] = j.revision;
        snap.pending.push_back(j.core);
        snap.pending.back().attained_device_s = runs.attained_device_s;
        snap.pending.back().runtime_estimate_ms = runs.pending_estimate_ms;
        pending_attempt[id] = j.rec.attempt;
      }
    }
  }
  if (!unmet.empty()) {
    if (absl::Status st = CancelUnmet(unmet); !st.ok()) return st;
    Wake();  // their own dependents learn at once
  }
  // Nothing waits: nothing to decide, unless running jobs may move to a
  // faster type that has freed.
  if (snap.pending.empty() && !options_.scheduler.migrate_to_faster_type) return absl::OkStatus();
  OfferForecastInput(snap);
  const auto decide_start = std::chrono::steady_clock::now();
  auto decisions = scheduler_.Schedule(snap);
  last_decide_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - decide_start).count();
  if (!decisions.ok()) return decisions.status();

  // Each rank's framework setup is computed outside the lock too: for a
  // large gang it is the costliest part of a bind. Specs never change after
  // submission, so a copy taken now is the one the decision was made for;
  // whether the job is still pending at that attempt is checked below.
  // A move to a faster device type (the gavel policy's
  // migrate_to_faster_type) is a bind of the job's next attempt to the new
  // place, waiting for its own current tasks to stop (as a preemptor waits
  // for its victims): the simulator's stop-and-restart, placed where the
  // core chose, in one pass. A job that checkpoints resumes as after any
  // preemption.
  std::vector<core::BindDecision> moves;
  for (const auto& m : decisions->migrations) {
    moves.push_back({.job = m.job, .device_type = m.device_type, .tasks = m.tasks, .after_preemption = {m.job}});
  }
  std::map<int64_t, absl::StatusOr<std::vector<TaskEntry>>> made;
  {
    std::map<int64_t, std::pair<api::JobSpec, TaskOwner>> bound;
    // The ports active tasks hold; binds happen only in passes, one at a
    // time, so none is booked behind this pass's back.
    PortBook ports(options_.port_base, options_.port_span);
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!decisions->binds.empty() || !moves.empty()) {
        for (const auto& [id, j] : jobs_) {
          for (const TaskEntry& t : j.tasks) {
            if (!store::IsActive(t.rec.state)) continue;
            for (int32_t p : t.assignment.ports) ports.Hold(t.rec.node, p);
          }
        }
      }
      for (const auto* list : {&decisions->binds, &moves}) {
        for (const auto& bind : *list) {
          auto it = jobs_.find(bind.job.value());
          if (it == jobs_.end()) continue;
          const store::JobRecord& r = it->second.rec;
          auto& [spec, owner] =
              bound.emplace(it->first, std::make_pair(it->second.spec, TaskOwner{r.user, r.run_uid, r.run_gid}))
                  .first->second;
          if (r.array_id != 0) {  // each element is told which it is (Slurm's SLURM_ARRAY_*)
            spec.env["ICOS_ARRAY_JOB_ID"] = absl::StrCat(r.array_id);
            spec.env["ICOS_ARRAY_INDEX"] = absl::StrCat(r.array_index);
            spec.env["ICOS_ARRAY_COUNT"] = absl::StrCat(spec.array_indices.size());
          }
        }
      }
    }
    for (const auto* list : {&decisions->binds, &moves}) {
      const bool moving = list == &moves;
      for (const auto& bind : *list) {
        auto it = bound.find(bind.job.value());
        if (it == bound.end()) continue;
        std::vector<int64_t> waits_for;
        for (JobId v : bind.after_preemption) waits_for.push_back(v.value());
        const int32_t attempt = moving ? running_attempt[it->first] + 1 : pending_attempt[it->first];
        made.emplace(it->first, MakeTasks(it->second.first, it->second.second, it->first, attempt, bind, pass_nodes,
                                          waits_for, ports));
      }
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  // What changed while the core thought makes some decisions stale: a job
  // cancelled or restarted, a node lost or re-registered. Those are dropped
  // and the next pass decides again; capacity only grew otherwise.
  auto still_pending = [&](int64_t id) {
    auto it = jobs_.find(id);
    return it != jobs_.end() && it->second.rec.state == JobState::kPending &&
           it->second.rec.attempt == pending_attempt[id] && it->second.revision == pending_revision[id] &&
           !HasActiveTasks(it->second, false);
  };
  auto node_unchanged = [&](int32_t index) {
    auto it = nodes_.find(node_names[index]);
    return it != nodes_.end() && it->second.rec.state == "Ready" && it->second.generation == node_generation[index];
  };
  bool stale = false;
  int64_t binds = 0, preemptions = 0;
  store::WriteBatch b;
  std::map<int64_t, JobEntry> next;  // changed copies, committed after the store write
  auto copy = [&](int64_t id) -> JobEntry& {
    auto it = next.find(id);
    return it != next.end() ? it->second : next.emplace(id, jobs_.at(id)).first->second;
  };
  for (size_t k = 0; k < moves.size(); ++k) {
    const core::MigrateDecision& m = decisions->migrations[k];
    const int64_t id = m.job.value();
    auto it = jobs_.find(id);
    bool valid = it != jobs_.end() && it->second.rec.state == JobState::kRunning && running_attempt.count(id) &&
                 it->second.rec.attempt == running_attempt[id];
    for (const auto& t : m.tasks) valid = valid && node_unchanged(t.node);
    auto made_it = made.find(id);
    if (!valid || made_it == made.end() || !made_it->second.ok()) {
      stale = true;
      continue;
    }
    JobEntry& j = copy(id);
    ++j.rec.attempt;
    j.rec.reason = absl::StrCat("moving from ", m.from_type, " to ", m.device_type, ": ", m.reason);
    j.waits_for = {id};  // its own tasks of the attempt before
    std::set<std::string> where;
    for (auto& t : *made_it->second) {
      where.insert(t.rec.node);
      b.tasks.push_back(t.rec);
      j.tasks.push_back(std::move(t));
    }
    b.jobs.push_back(j.rec);
    Event(b, j.rec.id, "", "Migrating",
          absl::StrCat(j.rec.reason, "; ", m.tasks.size(), " tasks on ", absl::StrJoin(where, ", ")));
    ++preemptions;
  }
  for (const auto& p : decisions->preemptions) {
    auto vit = jobs_.find(p.victim.value());
    if (vit == jobs_.end() || vit->second.rec.state != JobState::kRunning || !still_pending(p.preemptor.value())) {
      stale = true;
      continue;
    }
    JobEntry& v = copy(p.victim.value());
    v.rec.state = JobState::kPending;
    ++v.rec.attempt;  // its current tasks are stopped; it is scheduled afresh later
    v.rec.reason = absl::StrCat("preempted: ", p.reason);
    b.jobs.push_back(v.rec);
    Event(b, v.rec.id, "", "Preempted", p.reason);
    ++preemptions;
  }
  for (const auto& bind : decisions->binds) {
    bool valid = still_pending(bind.job.value());
    for (const auto& t : bind.tasks) valid = valid && node_unchanged(t.node);
    if (!valid) {
      stale = true;
      continue;
    }
    auto made_it = made.find(bind.job.value());
    if (made_it == made.end()) {
      stale = true;
      continue;
    }
    absl::StatusOr<std::vector<TaskEntry>>& tasks_made = made_it->second;
    // Every task port of a node is held: the job waits, as for any resource.
    if (tasks_made.status().code() == absl::StatusCode::kResourceExhausted) continue;
    JobEntry& j = copy(bind.job.value());
    std::vector<int64_t> waits_for;
    for (JobId v : bind.after_preemption) waits_for.push_back(v.value());
    if (!tasks_made.ok()) {
      // The framework cannot be set up for this placement: a spec problem the user must fix.
      j.rec.state = JobState::kFailed;
      j.rec.end_ms = now;
      j.rec.reason =
          absl::StrCat("cannot set up ", api::FrameworkName(j.spec.framework), ": ", tasks_made.status().message());
      b.jobs.push_back(j.rec);
      Event(b, j.rec.id, "", "Failed", j.rec.reason);
      continue;
    }
    j.rec.state = JobState::kRunning;
    if (j.rec.start_ms == 0) j.rec.start_ms = now;
    j.rec.reason = bind.after_preemption.empty() ? "" : "waiting for preempted jobs to stop";
    j.waits_for = std::move(waits_for);
    std::vector<TaskEntry> tasks = *std::move(tasks_made);
    std::set<std::string> where;
    for (auto& t : tasks) {
      where.insert(t.rec.node);
      b.tasks.push_back(t.rec);
      j.tasks.push_back(std::move(t));
    }
    b.jobs.push_back(j.rec);
    ++binds;
    Event(b, j.rec.id, "", "Scheduled",
          absl::StrCat(bind.tasks.size(), " tasks on ", absl::StrJoin(where, ", "),
                       bind.device_type.empty() ? "" : absl::StrCat(" (", bind.device_type, ")")));
  }
  std::map<int64_t, std::string> reserved;
  for (const auto& r : decisions->reservations) {
    reserved[r.job.value()] =
        absl::StrCat("; reserved to start in about ", (r.start_ms - now + 59'999) / 60'000, " min");
  }
  if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
  counters_.binds.Inc({}, static_cast<double>(binds));
  counters_.preemptions.Inc({}, static_cast<double>(preemptions));
  // Waiting reasons are recomputed every pass: kept in memory (the API shows
  // them), not written, so a thousand waiting jobs cost no writes per pass.
  for (const auto& w : decisions->waiting) {
    auto it = jobs_.find(w.job.value());
    if (it == jobs_.end() || it->second.rec.state != JobState::kPending) continue;
    it->second.rec.reason = absl::StrCat(core::WaitKindName(w.kind), ": ", w.reason, reserved[w.job.value()]);
  }
  for (auto& [id, j] : next) {
    jobs_[id] = std::move(j);
    TouchJob(jobs_[id]);
  }
  Prune();
  if (stale) Wake();
  counters_.pass_duration.Observe({},
                                  std::chrono::duration<double>(std::chrono::steady_clock::now() - pass_start).count());
  return absl::OkStatus();
}

int64_t Controller::AgentPaceMs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return AgentPaceLocked();
}

int64_t Controller::AgentPaceLocked() const {
  const int64_t per_s = std::max<int64_t>(2, options_.max_agent_polls_per_s) / 2;
  const int64_t pace = std::max<int64_t>(1'000, static_cast<int64_t>(nodes_.size()) * 1'000 / per_s);
  // Several beats per lease, so one slow beat never costs a node its lease.
  return std::max<int64_t>(250, std::min(pace, options_.node_lease_ms / 4));
}

absl::Status Controller::CheckNodes() {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMs();
  store::WriteBatch b;
  std::map<int64_t, JobEntry> touched;
  std::map<std::string, int64_t> silent;  // nodes past a lease or a task's max_disconnect, by silence
  for (auto& [name, n] : nodes_) {
    const int64_t quiet = now - n.rec.heartbeat_ms;
    if (quiet < api::kMinMaxDisconnectS * 1000) continue;
    silent[name] = quiet;
    if (n.rec.state != "Ready" || quiet <= options_.node_lease_ms) continue;
    n.rec.state = "NotReady";
    b.nodes.push_back(n.rec);
    Event(b, 0, name, "NodeLost",
          absl::StrCat("no heartbeat for ", quiet / 1000, " s; its tasks stop there once their max_disconnect passes"));
  }
  // A task is failed here only once its shim has certainly stopped it: its
  // max_disconnect after the last heartbeat (the shim kills it a margin
  // before that, counting from before the heartbeat was sent).
  if (!silent.empty()) {
    for (auto& [id, j] : jobs_) {
      for (size_t i = 0; i < j.tasks.size(); ++i) {
        const TaskEntry& task = j.tasks[i];
        auto quiet = silent.find(task.rec.node);
        if (quiet == silent.end() || !store::IsActive(task.rec.state)) continue;
        const int64_t limit =
            task.assignment.max_disconnect_ms > 0 ? task.assignment.max_disconnect_ms : options_.node_lease_ms;
        if (quiet->second <= limit) continue;
        auto it = touched.find(id);
        if (it == touched.end()) it = touched.emplace(id, j).first;
        TaskEntry& t = it->second.tasks[i];
        t.rec.state = TaskState::kFailed;
        t.rec.reason = absl::StrCat("node '", task.rec.node, "' lost: no contact for ", quiet->second / 1000,
                                    " s, so its agent stopped the task (max_disconnect ", limit / 1000, " s)");
        t.rec.end_ms = now;
        b.tasks.push_back(t.rec);
      }
    }
  }
  for (auto& [id, j] : touched) EvaluateJob(j, b);
  if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
  for (auto& [id, j] : touched) {
    jobs_[id] = std::move(j);
    TouchJob(jobs_[id]);
  }
  Prune();
  return absl::OkStatus();
}

void Controller::Prune() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (store::IsTerminal(it->second.rec.state) && !HasActiveTasks(it->second, false)) {
      LearnFromEnd(it->second);
      // Jobs that wait on it learn how it ended after it leaves memory.
      if (depended_on_.count(it->first)) ended_deps_[it->first] = it->second.rec.state;
      NoteDependencies(it->second, -1);
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace icos::controller
