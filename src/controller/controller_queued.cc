// Controller: control of queued work (hold, release, requeue, update) and
// job dependencies: what keeps a pending job from the scheduler although it
// would fit, and what cancels one whose dependencies can never be met.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "controller/controller.h"
#include "controller/dependencies.h"

namespace icos::controller {

using store::JobState;

absl::StatusOr<Controller::JobEntry*> Controller::OpenJobFor(const Principal& caller, int64_t id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || !MaySeeJobsOf(caller, it->second.rec.user)) {
    auto stored = store_->GetJob(id);
    if (stored.ok() && MaySeeJobsOf(caller, stored->user)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " already ended (", store::JobStateName(stored->state), ")"));
    }
    return absl::NotFoundError(absl::StrCat("no job ", id));
  }
  if (store::IsTerminal(it->second.rec.state)) {
    return absl::FailedPreconditionError(
        absl::StrCat("job ", id, " already ended (", store::JobStateName(it->second.rec.state), ")"));
  }
  return &it->second;
}

absl::Status Controller::Hold(const Principal& caller, int64_t id, bool hold) {
  if (absl::Status st = Authorize(caller, Action::kControlJob); !st.ok()) return st;
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<JobEntry*> open = OpenJobFor(caller, id);
    if (!open.ok()) return open.status();
    JobEntry& j = **open;
    if (hold && j.rec.state != JobState::kPending) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " is ", store::JobStateName(j.rec.state),
                       "; only a pending job can be held (icos requeue --hold stops a running one and holds it)"));
    }
    if (hold && !j.rec.hold.empty()) {
      return absl::FailedPreconditionError(absl::StrCat("job ", id, " is already held (", j.rec.hold, " hold)"));
    }
    if (!hold && j.rec.hold.empty()) return absl::FailedPreconditionError(absl::StrCat("job ", id, " is not held"));
    if (!hold && !MayRelease(caller, j.rec.hold)) {
      return absl::PermissionDeniedError(
          absl::StrCat("job ", id, " was held by an admin; only an admin may release it"));
    }
    JobEntry next = j;
    next.rec.hold = hold ? HoldKindOf(caller) : "";
    std::string unused;
    next.rec.reason = hold ? HeldBackReason(next, &unused) : "waiting for the next scheduling pass";
    ++next.revision;
    store::WriteBatch b;
    b.jobs.push_back(next.rec);
    Event(b, id, "", hold ? "Held" : "Released", absl::StrCat(hold ? "held" : "released", " by ", caller.name));
    if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
    j = std::move(next);
  }
  Wake();
  return absl::OkStatus();
}

absl::Status Controller::RequeueJob(const Principal& caller, int64_t id, bool hold) {
  if (absl::Status st = Authorize(caller, Action::kControlJob); !st.ok()) return st;
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<JobEntry*> open = OpenJobFor(caller, id);
    if (!open.ok()) return open.status();
    JobEntry& j = **open;
    if (j.rec.state != JobState::kRunning) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " is ", store::JobStateName(j.rec.state), "; only a running job can be requeued"));
    }
    // As a preemption: the current attempt's tasks are told to stop (they no
    // longer ShouldRun), and the next attempt is scheduled only once they
    // have (never twice at once). No retry is spent.
    JobEntry next = j;
    next.rec.state = JobState::kPending;
    ++next.rec.attempt;
    if (hold) next.rec.hold = HoldKindOf(caller);
    next.rec.reason =
        absl::StrCat("requeued by ", caller.name, hold ? absl::StrCat("; held (icos release ", id, ")") : "");
    ++next.revision;
    store::WriteBatch b;
    b.jobs.push_back(next.rec);
    Event(b, id, "", "Requeued", next.rec.reason);
    if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
    j = std::move(next);
    TouchJob(j);
  }
  Wake();
  return absl::OkStatus();
}

absl::Status Controller::Update(const Principal& caller, int64_t id, const JobUpdate& update) {
  if (absl::Status st = Authorize(caller, Action::kControlJob); !st.ok()) return st;
  if (!update.priority && !update.time_limit_s && !update.runtime_estimate_s) {
    return absl::InvalidArgumentError("nothing to update: give a priority, a time limit or a run-time estimate");
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    absl::StatusOr<JobEntry*> open = OpenJobFor(caller, id);
    if (!open.ok()) return open.status();
    JobEntry& j = **open;
    api::JobSpec spec = j.spec;
    if ((update.time_limit_s || update.runtime_estimate_s) && j.rec.state != JobState::kPending) {
      // Its tasks were sent with the old limit; the agents enforce that one.
      return absl::FailedPreconditionError(absl::StrCat("job ", id, " is ", store::JobStateName(j.rec.state),
                                                        "; a time limit or estimate changes while pending"));
    }
    if (update.priority) {
      const api::SpecLimits& limits = options_.spec_limits;
      if (*update.priority < -limits.max_priority || *update.priority > limits.max_priority) {
        return absl::InvalidArgumentError(absl::StrCat("priority ", *update.priority, " is out of range; use ",
                                                       -limits.max_priority, " to ", limits.max_priority));
      }
      if (absl::Status st = CheckQueuePriority(caller, spec.queue, *update.priority); !st.ok()) return st;
      spec.priority = *update.priority;
    }
    for (const auto& [value, field] : {std::pair{update.time_limit_s, &spec.time_limit_s},
                                       std::pair{update.runtime_estimate_s, &spec.runtime_estimate_s}}) {
      if (!value) continue;
      if (*value < 0 || *value > api::kMaxDurationS) {
        return absl::InvalidArgumentError(absl::StrCat("a duration of ", *value, " s is out of range"));
      }
      *field = *value;
    }
    if (spec.time_limit_s > 0 && spec.runtime_estimate_s > spec.time_limit_s) {
      return absl::InvalidArgumentError(absl::StrCat("the run-time estimate (", spec.runtime_estimate_s,
                                                     " s) is above the time limit (", spec.time_limit_s,
                                                     " s); the job would be stopped before it is expected to finish"));
    }
    JobEntry next = j;
    next.spec = spec;
    next.rec.priority = spec.priority;
    next.rec.spec_json = api::JobSpecToJson(spec);
    // The scheduler's view, with a learned estimate applied as before.
    next.core = api::ToCoreJob(spec, JobId(id), next.rec.user, next.rec.submit_ms);
    const api::RuntimeEstimate est = api::EstimateOf(spec, next.learned_estimate_s);
    next.core.runtime_estimate_ms = std::llround(est.seconds * 1000);
    if (est.source == "learned") next.core.runtime_log_sd = next.learned_log_sd;
    ++next.revision;
    std::string what;
    if (update.priority) absl::StrAppend(&what, " priority ", spec.priority);
    if (update.time_limit_s) absl::StrAppend(&what, " time_limit ", spec.time_limit_s, " s");
    if (update.runtime_estimate_s) absl::StrAppend(&what, " runtime_estimate ", spec.runtime_estimate_s, " s");
    store::WriteBatch b;
    b.jobs.push_back(next.rec);
    Event(b, id, "", "Updated", absl::StrCat("by ", caller.name, ":", what));
    if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
    j = std::move(next);
  }
  Wake();
  return absl::OkStatus();
}

// --- dependencies --------------------------------------------------------------------

void Controller::NoteDependencies(const JobEntry& j, int delta) {
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

std::optional<JobState> Controller::DependencyState(int64_t id) const {
  if (auto it = jobs_.find(id); it != jobs_.end()) return it->second.rec.state;
  if (auto it = ended_deps_.find(id); it != ended_deps_.end()) return it->second;
  return std::nullopt;
}

absl::Status Controller::LoadEndedDependencies() {
  for (const auto& [id, count] : depended_on_) {
    if (jobs_.count(id)) continue;
    auto dep = store_->GetJob(id);
    if (dep.status().code() == absl::StatusCode::kNotFound) continue;  // waits, saying it is unknown
    if (!dep.ok()) return dep.status();
    // Every open job is in memory after a load: one that is not has ended.
    ended_deps_[id] = dep->state;
  }
  return absl::OkStatus();
}

std::string Controller::HeldBackReason(const JobEntry& j, std::string* unmet) const {
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

absl::Status Controller::CancelUnmet(const std::vector<std::pair<int64_t, std::string>>& unmet) {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMs();
  store::WriteBatch b;
  std::vector<JobEntry> next;
  for (const auto& [id, why] : unmet) {
    auto it = jobs_.find(id);
    if (it == jobs_.end() || it->second.rec.state != JobState::kPending || HasActiveTasks(it->second, false)) continue;
    JobEntry& j = next.emplace_back(it->second);
    j.rec.state = JobState::kCancelled;
    j.rec.end_ms = now;
    j.rec.reason = absl::StrCat("dependency never satisfied: ", why);
    b.jobs.push_back(j.rec);
    Event(b, id, "", "Cancelled", j.rec.reason);
  }
  if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
  for (JobEntry& j : next) jobs_[j.rec.id] = std::move(j);
  // Its own dependents learn at the next pass (after_ok on it cannot be met).
  Prune();
  return absl::OkStatus();
}

}  // namespace icos::controller
