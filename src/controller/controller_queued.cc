// Controller: control of queued work (hold, release, requeue, update) and
// job dependencies: what keeps a pending job from the scheduler although it
// would fit, and what cancels one whose dependencies can never be met.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "controller/controller.h"

namespace icos::controller {

using store::JobState;

absl::StatusOr<const Controller::JobEntry*> Controller::OpenJobFor(const Principal& caller, int64_t id) {
  auto it = engine_.jobs().find(id);
  if (it == engine_.jobs().end() || !MaySeeJobsOf(caller, it->second.rec.user)) {
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
    WriteLock lock(*this);
    absl::StatusOr<const JobEntry*> open = OpenJobFor(caller, id);
    if (!open.ok()) return open.status();
    const JobEntry& j = **open;
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
    engine::Change c(clock_->NowMs());
    JobEntry& next = engine_.Stage(c, id);
    next.rec.hold = hold ? HoldKindOf(caller) : "";
    std::string unused;
    next.rec.reason = hold ? engine_.HeldBackReason(next, &unused) : "waiting for the next scheduling pass";
    ++next.revision;
    c.batch.jobs.push_back(next.rec);
    c.Event(id, "", hold ? "Held" : "Released", absl::StrCat(hold ? "held" : "released", " by ", caller.name));
    ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
  }
  Wake();
  return absl::OkStatus();
}

absl::Status Controller::RequeueJob(const Principal& caller, int64_t id, bool hold) {
  if (absl::Status st = Authorize(caller, Action::kControlJob); !st.ok()) return st;
  {
    WriteLock lock(*this);
    absl::StatusOr<const JobEntry*> open = OpenJobFor(caller, id);
    if (!open.ok()) return open.status();
    const JobEntry& j = **open;
    if (j.rec.state != JobState::kRunning) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " is ", store::JobStateName(j.rec.state), "; only a running job can be requeued"));
    }
    // As a preemption: the current attempt's tasks are told to stop (they no
    // longer ShouldRun), and the next attempt is scheduled only once they
    // have (never twice at once). No retry is spent.
    engine::Change c(clock_->NowMs());
    JobEntry& next = engine_.Stage(c, id);
    if (hold) next.rec.hold = HoldKindOf(caller);
    ++next.revision;
    engine_.Requeue(
        next, "", absl::StrCat("requeued by ", caller.name, hold ? absl::StrCat("; held (icos release ", id, ")") : ""),
        "Requeued", c);
    ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
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
    WriteLock lock(*this);
    absl::StatusOr<const JobEntry*> open = OpenJobFor(caller, id);
    if (!open.ok()) return open.status();
    const JobEntry& j = **open;
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
      // A class's priority is the admin's: only an admin may set another
      // (and the job then has a priority of its own, no class).
      if (!spec.priority_class.empty() && !MayExceedQueuePriority(caller)) {
        return absl::FailedPreconditionError(absl::StrCat("job ", id, "'s priority is its priority class '",
                                                          spec.priority_class,
                                                          "''s; resubmit it with another class, or ask an admin"));
      }
      if (absl::Status st = CheckQueuePriority(caller, spec.queue, *update.priority); !st.ok()) return st;
      spec.priority = *update.priority;
      spec.priority_class.clear();
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
    engine::Change c(clock_->NowMs());
    JobEntry& next = engine_.Stage(c, id);
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
    c.batch.jobs.push_back(next.rec);
    c.Event(id, "", "Updated", absl::StrCat("by ", caller.name, ":", what));
    ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
  }
  Wake();
  return absl::OkStatus();
}

// --- dependencies --------------------------------------------------------------------

absl::Status Controller::LoadEndedDependencies() {
  for (int64_t id : engine_.UnknownDependencies()) {
    auto dep = store_->GetJob(id);
    if (dep.status().code() == absl::StatusCode::kNotFound) continue;  // waits, saying it is unknown
    if (!dep.ok()) return dep.status();
    // Every open job is in memory after a load: one that is not has ended.
    engine_.NoteEnded(id, dep->state);
  }
  return absl::OkStatus();
}

}  // namespace icos::controller
