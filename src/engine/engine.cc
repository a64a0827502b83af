// The cluster engine: state, lifecycle rules and the commands that move jobs
// after task reports, node checks and device failures. The scheduling pass
// is engine_pass.cc's.
#include "engine/engine.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "api/job_spec.h"
#include "common/backoff.h"
#include "engine/dependencies.h"

namespace icos::engine {

using store::JobState;
using store::TaskState;

void Change::Event(int64_t job, const std::string& node, const std::string& kind, std::string message) {
  store::EventRecord e;
  e.job_id = job;
  e.node = node;
  e.time_ms = now_ms;
  e.kind = kind;
  e.message = std::move(message);
  batch.events.push_back(std::move(e));
}

std::string DeviceUse::Describe() const {
  if (samples == 0) return "";
  std::string out = absl::StrFormat("devices %.0f%% busy on average over %d samples", BusyPct(), samples);
  const bool memory_known = memory_peak_mib >= 0 && memory_total_mib > 0;
  if (memory_known) {
    out += absl::StrFormat("; at most %.1f of %.1f GiB device memory in use", memory_peak_mib / 1024.0,
                           memory_total_mib / 1024.0);
  }
  if (shares) return out + " (shared devices: the figures include their other tenants)";
  // A hint only on a minute or more of evidence, for whole devices mostly idle
  // and half empty: a share with headroom over what was used.
  const double memory_pct = memory_known ? 100.0 * static_cast<double>(memory_peak_mib) / memory_total_mib : 0;
  if (samples >= 12 && BusyPct() < 30 && memory_pct < 50) {
    const double need = std::max(BusyPct() * 1.5, memory_pct * 1.2);
    const int share = std::clamp(static_cast<int>(std::ceil(need / 10.0)) * 10, 10, 90);
    out +=
        absl::StrFormat("; it asks for more than it uses: device_share: %d would leave the rest to other jobs", share);
  }
  return out;
}

// --- state ---------------------------------------------------------------------

const JobEntry* Engine::FindJob(int64_t id) const {
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

JobEntry* Engine::MutableJob(int64_t id) {
  pass_views_.erase(id);
  auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : &it->second;
}

std::vector<int64_t> Engine::JobsOnNode(const std::string& node) const {
  auto it = active_on_node_.find(node);
  if (it == active_on_node_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

namespace {

const std::string& QueueOf(const JobEntry& j) {
  static const std::string* const kDefault = new std::string("default");
  return j.rec.queue.empty() ? *kDefault : j.rec.queue;
}

}  // namespace

void Engine::Index(const JobEntry& j) {
  if (j.spec.kind == api::JobKind::kService) service_replicas_.insert(j.rec.id);
  if (store::IsTerminal(j.rec.state)) ended_.insert(j.rec.id);
  core::ResourceAmounts holds;
  for (const TaskEntry& t : j.tasks) {
    if (!store::IsActive(t.rec.state)) continue;
    active_on_node_[t.rec.node].insert(j.rec.id);
    with_active_tasks_.insert(j.rec.id);
    holds["cpu"] += t.placement.cpu_milli;
    holds["memory"] += t.placement.memory_mib;
    auto node = nodes_.find(t.rec.node);
    for (const core::DeviceSlice& slice : t.placement.devices) {
      if (node == nodes_.end() || slice.device < 0 ||
          slice.device >= static_cast<int32_t>(node->second.node.devices.size())) {
        continue;
      }
      const core::Device& d = node->second.node.devices[slice.device];
      const int64_t milli = int64_t{slice.percent} * 10;  // 100% is one device, 1000 milli
      holds["devices"] += milli;
      holds[d.vendor] += milli;
      holds[absl::StrCat(d.vendor, "/", d.model)] += milli;
    }
  }
  const bool pending = j.rec.state == JobState::kPending, running = j.rec.state == JobState::kRunning;
  if (!pending && !running && holds.empty()) return;  // an ended job: its queue keeps no entry for it
  QueueLoad& load = queue_loads_[QueueOf(j)];
  load.pending += pending ? 1 : 0;
  load.running += running ? 1 : 0;
  if (!holds.empty()) {
    for (const auto& [k, v] : holds) load.used[k] += v;
    job_holds_[j.rec.id] = std::move(holds);
  }
}

void Engine::Unindex(const JobEntry& j) {
  service_replicas_.erase(j.rec.id);
  with_active_tasks_.erase(j.rec.id);
  ended_.erase(j.rec.id);
  const bool pending = j.rec.state == JobState::kPending, running = j.rec.state == JobState::kRunning;
  // Takes back what Index counted (the queue's entry exists if it counted anything).
  auto held = job_holds_.find(j.rec.id);
  if (auto q = queue_loads_.find(QueueOf(j)); q != queue_loads_.end()) {
    QueueLoad& load = q->second;
    load.pending -= pending ? 1 : 0;
    load.running -= running ? 1 : 0;
    if (held != job_holds_.end()) {
      for (const auto& [k, v] : held->second) {
        if ((load.used[k] -= v) == 0) load.used.erase(k);
      }
    }
    if (load.pending == 0 && load.running == 0 && load.used.empty()) queue_loads_.erase(q);
  }
  if (held != job_holds_.end()) job_holds_.erase(held);
  for (const TaskEntry& t : j.tasks) {
    auto it = active_on_node_.find(t.rec.node);
    if (it == active_on_node_.end()) continue;
    it->second.erase(j.rec.id);
    if (it->second.empty()) active_on_node_.erase(it);
  }
}

void Engine::AddJob(JobEntry job) {
  const int64_t id = job.rec.id;
  if (auto old = jobs_.find(id); old != jobs_.end()) Unindex(old->second);
  Index(job);
  pass_views_.erase(id);
  jobs_[id] = std::move(job);
}

void Engine::NoteDependencies(const JobEntry& j, int delta) {
  const api::Dependencies& d = j.spec.dependencies;
  for (const auto* ids : {&d.after_ok, &d.after_any, &d.after_not_ok}) {
    for (int64_t id : *ids) {
      int32_t& n = depended_on_[id];
      n += delta;
      if (n <= 0) {
        depended_on_.erase(id);
        ended_deps_.erase(id);
      }
    }
  }
}

std::vector<int64_t> Engine::UnknownDependencies() const {
  std::vector<int64_t> out;
  for (const auto& [id, count] : depended_on_) {
    if (!jobs_.count(id) && !ended_deps_.count(id)) out.push_back(id);
  }
  return out;
}

JobEntry& Engine::Stage(Change& c, int64_t id) const {
  auto it = c.jobs.find(id);
  return it != c.jobs.end() ? it->second : c.jobs.emplace(id, jobs_.at(id)).first->second;
}

std::set<std::string> Engine::Adopt(Change&& c) {
  std::set<std::string> touched;
  bool task_ended = false;  // some task of the change went from active to ended
  for (auto& [id, j] : c.jobs) {
    if (const JobEntry* was = FindJob(id)) {
      // A change appends tasks, never reorders them.
      for (size_t i = 0; i < was->tasks.size() && i < j.tasks.size(); ++i) {
        task_ended |= store::IsActive(was->tasks[i].rec.state) && !store::IsActive(j.tasks[i].rec.state);
      }
    }
    for (const TaskEntry& t : j.tasks) {
      if (store::IsActive(t.rec.state)) touched.insert(t.rec.node);
    }
    AddJob(std::move(j));
  }
  c.jobs.clear();
  // Preemptors waiting for their victims may run now that a task stopped.
  if (task_ended) {
    for (int64_t id : with_active_tasks_) {  // a job waiting for victims has its tasks assigned
      const JobEntry& j = jobs_.at(id);
      if (j.waits_for.empty()) continue;
      for (const TaskEntry& t : j.tasks) {
        if (store::IsActive(t.rec.state)) touched.insert(t.rec.node);
      }
    }
  }
  return touched;
}

std::vector<JobEntry> Engine::Prune() {
  std::vector<JobEntry> gone;
  std::vector<int64_t> ended;  // Unindex edits ended_
  for (int64_t id : ended_) {
    if (!with_active_tasks_.contains(id)) ended.push_back(id);
  }
  for (int64_t id : ended) {
    auto it = jobs_.find(id);
    // Jobs that wait on it learn how it ended after it leaves memory.
    if (depended_on_.count(id)) ended_deps_[id] = it->second.rec.state;
    NoteDependencies(it->second, -1);
    Unindex(it->second);
    pass_views_.erase(id);
    gone.push_back(std::move(it->second));
    jobs_.erase(it);
  }
  return gone;
}

// --- rules -----------------------------------------------------------------------

bool Engine::HasActiveTasks(const JobEntry& j, bool older_attempts_only) {
  for (const auto& t : j.tasks) {
    if (store::IsActive(t.rec.state) && (!older_attempts_only || t.rec.attempt < j.rec.attempt)) return true;
  }
  return false;
}

int32_t Engine::Failures(const JobEntry& j) {
  std::set<int32_t> failed;
  for (const auto& t : j.tasks) {
    if (t.rec.state == TaskState::kFailed) failed.insert(t.rec.attempt);
  }
  return static_cast<int32_t>(failed.size());
}

int32_t Engine::RetriesUsed(const JobEntry& j) {
  std::set<int32_t> failed;
  for (const auto& t : j.tasks) {
    if (t.rec.state == TaskState::kFailed && t.rec.exit_code != kInfrastructureExit) failed.insert(t.rec.attempt);
  }
  return static_cast<int32_t>(failed.size());
}

int32_t Engine::InfrastructureFailures(const JobEntry& j) { return Failures(j) - RetriesUsed(j); }

int64_t Engine::RestartBackoffMs(int32_t failures) const {
  return DoublingBackoffMs(options_.restart_backoff_ms, options_.restart_backoff_max_ms, failures);
}

int32_t Engine::CrashLoopRestarts(const JobEntry& j) {
  // Each ended attempt's first start and last end; an attempt that never
  // started ran for no time.
  std::map<int32_t, std::pair<int64_t, int64_t>> runs;
  for (const auto& t : j.tasks) {
    if (t.rec.attempt >= j.rec.attempt || !store::IsTerminal(t.rec.state)) continue;
    auto [it, added] = runs.try_emplace(t.rec.attempt, t.rec.start_ms, t.rec.end_ms);
    if (!added) {
      if (t.rec.start_ms > 0) it->second.first = std::min(it->second.first, t.rec.start_ms);
      it->second.second = std::max(it->second.second, t.rec.end_ms);
    }
  }
  int32_t short_runs = 0;
  for (auto it = runs.rbegin(); it != runs.rend(); ++it) {
    const auto [start, end] = it->second;
    if (start > 0 && end - start >= kStableRunMs) break;
    ++short_runs;
  }
  return short_runs;
}

int64_t Engine::RetryAtMs(const JobEntry& j) const {
  if (j.spec.restart == api::RestartPolicy::kAlways) {
    int64_t last_end_ms = 0;
    for (const auto& t : j.tasks) {
      if (t.rec.attempt < j.rec.attempt && store::IsTerminal(t.rec.state)) {
        last_end_ms = std::max(last_end_ms, t.rec.end_ms);
      }
    }
    return last_end_ms == 0 ? 0 : last_end_ms + RestartBackoffMs(CrashLoopRestarts(j) - 1);
  }
  int64_t last_failure_ms = 0;
  for (const auto& t : j.tasks) {
    if (t.rec.state == TaskState::kFailed) last_failure_ms = std::max(last_failure_ms, t.rec.end_ms);
  }
  if (last_failure_ms == 0) return 0;
  return last_failure_ms + RestartBackoffMs(Failures(j));
}

bool Engine::ShouldRun(const JobEntry& j, const TaskEntry& t) const {
  if (j.rec.state != JobState::kRunning || t.rec.attempt != j.rec.attempt) return false;
  // Waiting for preempted victims holds back a task's start only: once it
  // runs, nothing a victim does later (placed again, preempted again) stops it.
  if (t.rec.state != TaskState::kAssigned) return true;
  // A victim's tasks of the attempt it was preempted in (older than its
  // current one) hold the devices until they stop; its new tasks run elsewhere.
  for (int64_t victim : j.waits_for) {
    auto it = jobs_.find(victim);
    if (it != jobs_.end() && HasActiveTasks(it->second, /*older_attempts_only=*/true)) return false;
  }
  return true;
}

std::optional<JobState> Engine::DependencyState(int64_t id) const {
  if (auto it = jobs_.find(id); it != jobs_.end()) return it->second.rec.state;
  if (auto it = ended_deps_.find(id); it != ended_deps_.end()) return it->second;
  return std::nullopt;
}

std::string Engine::HeldBackReason(const JobEntry& j, std::string* unmet) const {
  if (!j.rec.hold.empty()) {
    return absl::StrCat("Held: ", j.rec.hold == "admin" ? "by an admin" : "by its owner", " (icos release ", j.rec.id,
                        ")");
  }
  if (j.spec.dependencies.empty()) return "";
  const DependencyCheck check =
      CheckDependencies(j.spec.dependencies, [this](int64_t id) { return DependencyState(id); });
  switch (check.kind) {
    case DependencyCheck::Kind::kMet:
      return "";
    case DependencyCheck::Kind::kWaiting:
      return absl::StrCat("Dependency: waiting for ", check.reason);
    case DependencyCheck::Kind::kNeverMet:
      if (j.spec.dependencies.cancel_if_unmet) *unmet = check.reason;
      return absl::StrCat("DependencyNeverSatisfied: ", check.reason, "; cancel it (icos cancel ", j.rec.id, ")");
  }
  return "";
}

std::vector<wire::Assignment> Engine::AssignmentsOf(const std::string& node) const {
  std::vector<wire::Assignment> out;
  for (int64_t id : JobsOnNode(node)) {
    const JobEntry& j = jobs_.at(id);
    for (const auto& t : j.tasks) {
      if (t.rec.node != node || !store::IsActive(t.rec.state)) continue;
      const bool run = ShouldRun(j, t);
      // A task still waiting for its victims is not sent at all.
      if (!run && t.rec.state == TaskState::kAssigned && j.rec.state == JobState::kRunning &&
          t.rec.attempt == j.rec.attempt) {
        continue;
      }
      wire::Assignment a = t.assignment;
      a.run = run;
      // A planned stop of a job that will run again: let it checkpoint first.
      a.checkpoint_first = !run && a.checkpoint_signal > 0 && !store::IsTerminal(j.rec.state);
      if (a.checkpoint_signal > 0) a.checkpoint_grace_ms = CheckpointWindowMs(j);  // as the job's history now says
      a.started = t.rec.state == TaskState::kRunning;
      out.push_back(std::move(a));
    }
  }
  return out;
}

std::vector<std::string> Engine::RecordedEnds(const std::string& node,
                                              const std::vector<wire::TaskStatus>& statuses) const {
  std::vector<std::string> out;
  for (const wire::TaskStatus& s : statuses) {
    auto state = store::ParseTaskState(s.state);
    if (!state || !store::IsTerminal(*state)) continue;
    int64_t job;
    int32_t g, r, a;
    bool tracked_open = false;
    if (wire::ParseTaskId(s.task_id, &job, &g, &r, &a)) {
      if (const JobEntry* j = FindJob(job)) {
        for (const auto& t : j->tasks) {
          if (t.rec.group == g && t.rec.replica == r && t.rec.attempt == a && t.rec.node == node) {
            tracked_open = !store::IsTerminal(t.rec.state);
          }
        }
      }
    }
    if (!tracked_open) out.push_back(s.task_id);
  }
  return out;
}

// --- commands ----------------------------------------------------------------------

void Engine::NoteDeviceUse(const JobEntry& j, Change& c) {
  const std::string what = j.device_use.Describe();
  if (!what.empty()) c.Event(j.rec.id, "", "DeviceUse", what);
}

void Engine::Requeue(JobEntry& j, const std::string& node, std::string reason, const char* event, Change& c) const {
  if (j.rec.state != JobState::kRunning) return;
  // As a gang restart, but no retry is spent: the job did nothing wrong (Slurm
  // requeues a batch job whose node fails). Its tasks are told to stop, and
  // its next attempt starts once they have.
  j.rec.state = JobState::kPending;
  ++j.rec.attempt;
  j.rec.reason = std::move(reason);
  c.batch.jobs.push_back(j.rec);
  c.Event(j.rec.id, node, event, j.rec.reason);
}

namespace {

// Writes j's record with the change; a gang's tasks ending together update
// the one entry instead of writing the row once per task.
void StageRecord(const JobEntry& j, Change& c) {
  if (!c.batch.jobs.empty() && c.batch.jobs.back().id == j.rec.id) {
    c.batch.jobs.back() = j.rec;
  } else {
    c.batch.jobs.push_back(j.rec);
  }
}

}  // namespace

void Engine::NoteLostWork(JobEntry& j, const TaskEntry& t, Change& c) {
  // A user's cancel, or a success, throws nothing away.
  if (t.rec.state == TaskState::kSucceeded || j.rec.state == JobState::kCancelled || t.rec.start_ms <= 0) return;
  const int64_t since = std::max(t.rec.start_ms, j.rec.checkpoint_ms);
  if (t.rec.end_ms <= since) return;
  int64_t percent = 0;
  for (const core::DeviceSlice& d : t.placement.devices) percent += d.percent;
  if (percent == 0) return;
  j.rec.lost_device_ms += percent * (t.rec.end_ms - since) / 100;
  StageRecord(j, c);
}

void Engine::NoteCheckpoint(JobEntry& j, int64_t checkpoint_ms, const std::string& node, Change& c) {
  // The agent's clock: a time ahead of ours is now, not the future.
  const int64_t at = std::min(checkpoint_ms, c.now_ms);
  if (at <= j.rec.checkpoint_ms) return;
  j.rec.checkpoint_ms = at;
  StageRecord(j, c);
  c.Event(j.rec.id, node, "Checkpoint", absl::StrCat("checkpoint finished ", (c.now_ms - at) / 1000, " s ago"));
}

int64_t Engine::CheckpointWindowMs(const JobEntry& j) const {
  const int64_t declared = j.spec.checkpoint.grace_s * 1000;
  if (j.rec.checkpoint_save_ms <= 0) return declared;
  // Half as long again as the longest save seen, plus a margin for a
  // loaded node; never below what the job asked for, nor past the cap.
  const int64_t sized = j.rec.checkpoint_save_ms + j.rec.checkpoint_save_ms / 2 + 5'000;
  return std::max(declared, std::min(sized, options_.max_checkpoint_window_ms));
}

void Engine::NoteCheckpointSave(JobEntry& j, const wire::TaskStatus& s, const std::string& node, Change& c) const {
  // A window that ran out says little of a job that never reported a
  // checkpoint: it may not meet the contract at all, and each stop would
  // wait longer for nothing.
  if (s.checkpoint_cut && j.rec.checkpoint_ms <= 0) return;
  if (s.checkpoint_save_ms <= j.rec.checkpoint_save_ms) return;  // the longest is kept; reports repeat
  j.rec.checkpoint_save_ms = s.checkpoint_save_ms;
  StageRecord(j, c);
  const std::string took = s.checkpoint_cut
                               ? absl::StrCat("did not finish within its ", s.checkpoint_save_ms / 1000, " s window")
                               : absl::StrCat("took ", s.checkpoint_save_ms / 1000, " s after the stop's signal");
  c.Event(j.rec.id, node, "CheckpointSave",
          absl::StrCat("a checkpoint ", took, "; the next planned stop waits up to ", CheckpointWindowMs(j) / 1000,
                       " s for one"));
}

void Engine::EvaluateJob(JobEntry& j, Change& c) const {
  const int64_t now = c.now_ms;
  if (j.rec.state != JobState::kRunning) {
    if (store::IsTerminal(j.rec.state) && !HasActiveTasks(j, false) && j.rec.end_ms == 0) {
      j.rec.end_ms = now;
      c.batch.jobs.push_back(j.rec);
      NoteDeviceUse(j, c);
    }
    return;
  }
  int32_t total = 0, succeeded = 0;
  const TaskEntry* failed = nullptr;
  const TaskEntry* ended = nullptr;  // the first of the attempt's tasks to have ended, however
  for (const auto& t : j.tasks) {
    if (t.rec.attempt != j.rec.attempt) continue;
    ++total;
    if (t.rec.state == TaskState::kSucceeded) ++succeeded;
    if ((t.rec.state == TaskState::kFailed || t.rec.state == TaskState::kKilled) && failed == nullptr) failed = &t;
    if (store::IsTerminal(t.rec.state) && ended == nullptr) ended = &t;
  }
  if (j.spec.restart == api::RestartPolicy::kAlways && ended != nullptr) {
    RestartReplica(j, failed != nullptr ? *failed : *ended, c);
    return;
  }
  if (total > 0 && succeeded == total) {
    j.rec.state = JobState::kSucceeded;
    j.rec.end_ms = now;
    j.rec.reason = "all tasks succeeded";
    c.batch.jobs.push_back(j.rec);
    c.Event(j.rec.id, "", "Succeeded", absl::StrCat(total, " tasks succeeded"));
    NoteDeviceUse(j, c);
    return;
  }
  if (failed == nullptr) return;
  const std::string why = absl::StrCat("task ", failed->rec.group, "/", failed->rec.replica, " ",
                                       store::TaskStateName(failed->rec.state), ": ", failed->rec.reason);
  // The infrastructure's failure (a lost node, a sick device) spends no retry
  // of a job that restarts on failure or checkpoints: it resumes elsewhere.
  const bool on_failure = j.spec.restart == api::RestartPolicy::kOnFailure;
  const bool infrastructure = failed->rec.exit_code == kInfrastructureExit;
  const bool restart = infrastructure ? (on_failure || j.spec.checkpoint.enabled) &&
                                            InfrastructureFailures(j) <= kMaxInfrastructureRestarts
                                      : on_failure && RetriesUsed(j) <= j.spec.max_retries;
  if (restart) {
    // A failed rank restarts the whole gang (torchrun's and Volcano's rule).
    j.rec.state = JobState::kPending;
    ++j.rec.attempt;
    const int64_t backoff_ms = RestartBackoffMs(Failures(j));
    const std::string used = infrastructure
                                 ? absl::StrCat(InfrastructureFailures(j), " infrastructure failures, no retry spent")
                                 : absl::StrCat(RetriesUsed(j), " of ", j.spec.max_retries, " retries used");
    j.rec.reason =
        absl::StrCat("restarting", backoff_ms > 0 ? absl::StrCat(" in ", backoff_ms / 1000, " s") : "",
                     j.rec.checkpoint_ms > 0 ? " from its last checkpoint" : "", " (", used, ") after ", why);
    c.batch.jobs.push_back(j.rec);
    c.Event(j.rec.id, failed->rec.node, "Restarting", j.rec.reason);
  } else {
    j.rec.state = JobState::kFailed;
    j.rec.reason = why;
    if (!HasActiveTasks(j, false)) j.rec.end_ms = now;
    c.batch.jobs.push_back(j.rec);
    c.Event(j.rec.id, failed->rec.node, "Failed", why);
    if (j.rec.end_ms != 0) NoteDeviceUse(j, c);  // else when its last task has stopped
  }
}

void Engine::RestartReplica(JobEntry& j, const TaskEntry& ended, Change& c) const {
  // However it ended, a service's replica runs again (Kubernetes'
  // restartPolicy: Always): at once after a long run or a first short one,
  // then after a back-off that doubles with each further short run in a
  // row, so a crash loop costs little.
  const std::string why = absl::StrCat("task ", ended.rec.group, "/", ended.rec.replica, " ",
                                       store::TaskStateName(ended.rec.state), " (exit ", ended.rec.exit_code, ")",
                                       ended.rec.reason.empty() ? "" : absl::StrCat(": ", ended.rec.reason));
  j.rec.state = JobState::kPending;
  ++j.rec.attempt;
  const int32_t short_runs = CrashLoopRestarts(j);
  const int64_t backoff_ms = RestartBackoffMs(short_runs - 1);
  j.rec.reason =
      absl::StrCat("restarting", backoff_ms > 0 ? absl::StrCat(" in ", backoff_ms / 1000, " s") : "",
                   " (a service's replica restarts Always; ", short_runs, " short runs in a row) after ", why);
  c.batch.jobs.push_back(j.rec);
  c.Event(j.rec.id, ended.rec.node, "Restarting", j.rec.reason);
}

bool Engine::ApplyTaskReports(const std::string& node, const std::vector<wire::TaskStatus>& statuses, Change& c) const {
  const int64_t now = c.now_ms;
  bool changed = false;
  std::set<int64_t> touched;  // jobs staged
  std::set<int64_t> requeue;  // jobs whose current attempt's task the node's shutdown ended
  for (const wire::TaskStatus& s : statuses) {
    int64_t job;
    int32_t g, r, a;
    if (!wire::ParseTaskId(s.task_id, &job, &g, &r, &a)) continue;
    if (!jobs_.count(job)) continue;  // an old job's task: nothing to track
    JobEntry& j = Stage(c, job);
    touched.insert(job);
    for (auto& t : j.tasks) {
      if (t.rec.group != g || t.rec.replica != r || t.rec.attempt != a || t.rec.node != node) continue;
      auto state = store::ParseTaskState(s.state);
      // A task's end is final: a stale report (an attempt already ended,
      // say by a lost lease) changes nothing.
      if (s.checkpoint_ms > 0) NoteCheckpoint(j, s.checkpoint_ms, node, c);
      if (s.checkpoint_save_ms > 0) NoteCheckpointSave(j, s, node, c);
      if (!state || *state == t.rec.state || store::IsTerminal(t.rec.state)) break;
      t.rec.state = *state;
      t.rec.exit_code = s.exit_code;
      t.rec.reason = s.reason;
      if (s.start_ms > 0) t.rec.start_ms = s.start_ms;
      // An agent that does not say when the task started: it started by now (accounting needs a start).
      if (*state == TaskState::kRunning && t.rec.start_ms == 0) t.rec.start_ms = now;
      if (store::IsTerminal(*state)) {
        t.rec.end_ms = s.end_ms > 0 ? s.end_ms : now;
        t.rec.max_rss_kib = std::max<int64_t>(0, s.max_rss_kib);
        NoteLostWork(j, t, c);
      }
      if (s.requeue && store::IsTerminal(*state) && t.rec.attempt == j.rec.attempt) requeue.insert(job);
      c.batch.tasks.push_back(t.rec);
      c.Event(job, node, absl::StrCat("Task", s.state),
              absl::StrCat(s.task_id, store::IsTerminal(*state) ? absl::StrCat(" exit ", s.exit_code) : "",
                           s.reason.empty() ? "" : absl::StrCat(": ", s.reason)));
      changed = true;
      break;
    }
  }
  // A heartbeat lists every task the agent has a journal for, and the
  // agent keeps a journal until the task's end is acknowledged here. A
  // task running here that it no longer lists was lost on its side (its
  // state directory wiped, say): fail it rather than wait for it forever.
  std::set<std::string> reported;
  for (const wire::TaskStatus& s : statuses) reported.insert(s.task_id);
  for (int64_t id : JobsOnNode(node)) {
    const JobEntry& current = jobs_.at(id);
    for (size_t i = 0; i < current.tasks.size(); ++i) {
      const TaskEntry& t = current.tasks[i];
      if (t.rec.node != node || t.rec.state != TaskState::kRunning || reported.count(t.assignment.task_id)) continue;
      // Staged copies have the same tasks in the same order.
      TaskEntry& lost = Stage(c, id).tasks[i];
      touched.insert(id);
      if (lost.rec.state != TaskState::kRunning) continue;
      lost.rec.state = TaskState::kFailed;
      lost.rec.exit_code = kInfrastructureExit;
      lost.rec.reason = "lost: the agent no longer knows this task";
      lost.rec.end_ms = now;
      NoteLostWork(c.jobs.at(id), lost, c);
      c.batch.tasks.push_back(lost.rec);
      c.Event(id, node, "TaskLost", absl::StrCat(lost.assignment.task_id, ": the agent no longer knows it"));
      changed = true;
    }
  }
  for (int64_t id : requeue) {
    Requeue(c.jobs.at(id), node, absl::StrCat("requeued: node '", node, "' shut down under it"), "Requeued", c);
  }
  for (int64_t id : touched) EvaluateJob(c.jobs.at(id), c);
  return changed;
}

void Engine::FailTasksOnDevices(const std::string& node, const std::map<int32_t, std::string>& sick, Change& c) const {
  if (sick.empty()) return;
  std::set<int64_t> touched;
  for (int64_t id : JobsOnNode(node)) {
    const JobEntry& job = jobs_.at(id);
    for (size_t t = 0; t < job.tasks.size(); ++t) {
      const TaskEntry& task = job.tasks[t];
      if (task.rec.node != node || !store::IsActive(task.rec.state)) continue;
      std::string why;
      for (const auto& slice : task.placement.devices) {
        if (auto it = sick.find(slice.device); it != sick.end()) why = it->second;
      }
      if (why.empty()) continue;
      TaskEntry& failed = Stage(c, id).tasks[t];
      touched.insert(id);
      failed.rec.state = TaskState::kFailed;
      failed.rec.exit_code = kInfrastructureExit;
      failed.rec.reason = why;
      failed.rec.end_ms = c.now_ms;
      NoteLostWork(c.jobs.at(id), failed, c);
      c.batch.tasks.push_back(failed.rec);
      c.Event(id, node, "TaskFailed", absl::StrCat(failed.assignment.task_id, ": ", why));
    }
  }
  for (int64_t id : touched) EvaluateJob(c.jobs.at(id), c);
}

void Engine::CheckNodes(Change& c) {
  const int64_t now = c.now_ms;
  std::map<std::string, int64_t> silent;  // nodes past a lease or a task's max_disconnect, by silence
  for (auto& [name, n] : nodes_) {
    const int64_t quiet = now - n.rec.heartbeat_ms;
    if (quiet < api::kMinMaxDisconnectS * 1000) continue;
    silent[name] = quiet;
    if (n.rec.state != "Ready" || quiet <= options_.node_lease_ms) continue;
    n.rec.state = "NotReady";
    c.batch.nodes.push_back(n.rec);
    c.Event(
        0, name, "NodeLost",
        absl::StrCat("no heartbeat for ", quiet / 1000, " s; its tasks stop there once their max_disconnect passes"));
  }
  // A task is failed here only once its shim has certainly stopped it: its
  // max_disconnect after the last heartbeat (the shim kills it a margin
  // before that, counting from before the heartbeat was sent).
  std::set<int64_t> touched;
  for (const auto& [name, quiet] : silent) {
    for (int64_t id : JobsOnNode(name)) {
      const JobEntry& j = jobs_.at(id);
      for (size_t i = 0; i < j.tasks.size(); ++i) {
        const TaskEntry& task = j.tasks[i];
        if (task.rec.node != name || !store::IsActive(task.rec.state)) continue;
        const int64_t limit =
            task.assignment.max_disconnect_ms > 0 ? task.assignment.max_disconnect_ms : options_.node_lease_ms;
        if (quiet <= limit) continue;
        TaskEntry& t = Stage(c, id).tasks[i];
        touched.insert(id);
        t.rec.state = TaskState::kFailed;
        t.rec.exit_code = kInfrastructureExit;
        t.rec.reason = absl::StrCat("node '", name, "' lost: no contact for ", quiet / 1000,
                                    " s, so its agent stopped the task (max_disconnect ", limit / 1000, " s)");
        t.rec.end_ms = now;
        NoteLostWork(c.jobs.at(id), t, c);
        c.batch.tasks.push_back(t.rec);
      }
    }
  }
  for (int64_t id : touched) EvaluateJob(c.jobs.at(id), c);
}

void Engine::CancelUnmet(const std::vector<std::pair<int64_t, std::string>>& unmet, Change& c) const {
  for (const auto& [id, why] : unmet) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.rec.state != JobState::kPending || HasActiveTasks(it->second, false)) continue;
    JobEntry& j = Stage(c, id);
    j.rec.state = JobState::kCancelled;
    j.rec.end_ms = c.now_ms;
    j.rec.reason = absl::StrCat("dependency never satisfied: ", why);
    c.batch.jobs.push_back(j.rec);
    c.Event(id, "", "Cancelled", j.rec.reason);
  }
}

void Engine::SampleDeviceUse(const std::string& node, const std::vector<wire::DeviceUsage>& devices) {
  auto nit = nodes_.find(node);
  if (nit == nodes_.end()) return;
  const std::vector<core::Device>& node_devices = nit->second.node.devices;
  for (int64_t id : JobsOnNode(node)) {
    JobEntry& j = jobs_.at(id);
    if (j.rec.state != JobState::kRunning) continue;
    for (const TaskEntry& t : j.tasks) {
      if (t.rec.node != node || t.rec.state != TaskState::kRunning || t.rec.attempt != j.rec.attempt) continue;
      for (const core::DeviceSlice& slice : t.placement.devices) {
        if (slice.device < 0 || slice.device >= static_cast<int32_t>(devices.size())) continue;
        const wire::DeviceUsage& u = devices[slice.device];
        DeviceUse& use = j.device_use;
        if (slice.percent < 100) use.shares = true;
        if (u.utilization_pct >= 0) {
          use.busy_pct_sum += u.utilization_pct;
          ++use.samples;
        }
        if (u.memory_used_mib > use.memory_peak_mib) {
          use.memory_peak_mib = u.memory_used_mib;
          use.memory_total_mib = node_devices[slice.device].memory_mib;
        }
      }
    }
  }
}

}  // namespace icos::engine
