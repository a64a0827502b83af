// Controller: the scheduling pass (the engine's snapshot, the scheduler's
// decisions outside the lock, the engine applying them) and the node checks.
#include <algorithm>
#include <chrono>

#include "controller/controller.h"

namespace icos::controller {

// --- scheduling ------------------------------------------------------------------------

absl::Status Controller::RunPass() {
  // One pass at a time. Readers are never blocked by one: the engine takes
  // its snapshot, prepares the binds and applies the decisions reading the
  // state only (ReadersGo), and the pass takes mu_ to adopt what changed.
  // Writers (submits, heartbeats) wait only for those steps, never while
  // icos::core thinks or a bind's tasks are made.
  std::lock_guard<std::mutex> pass_lock(pass_mu_);
  // Real elapsed time for the latency histogram, whatever clock_ says (a FakeClock stands still).
  const auto pass_start = std::chrono::steady_clock::now();
  ApplyLearnedEstimates();
  const int64_t now = clock_->NowMs();
  engine::PassInput in;
  {
    WriteLock lock(*this);
    {
      ReadersGo go(lock);
      in = engine_.BeginPass(now);
    }
    engine_.SetReasons(in.held_back);
    if (!in.unmet.empty()) {
      engine::Change c(now);
      engine_.CancelUnmet(in.unmet, c);
      ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
      // Its own dependents learn at the next pass (after_ok on it cannot be met).
      Prune();
    }
  }
  if (!in.unmet.empty()) Wake();  // their own dependents learn at once
  // Nothing waits: nothing to decide, unless running jobs may move to a
  // faster type that has freed.
  if (in.snap.pending.empty() && !options_.scheduler.migrate_to_faster_type) {
    WriteLock lock(*this);
    engine_.RecyclePass(std::move(in));  // the next pass refills its copies of the running jobs
    return absl::OkStatus();
  }
  OfferForecastInput(in.snap);
  const auto decide_start = std::chrono::steady_clock::now();
  auto decisions = scheduler_.Schedule(in.snap);
  last_decide_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - decide_start).count();
  if (!decisions.ok()) return decisions.status();

  // Each rank's framework setup is computed outside the lock too: for a
  // large gang it is the costliest part of a bind. Specs never change after
  // submission, so a copy taken now is the one the decision was made for;
  // whether the job is still pending at that attempt is checked when the
  // decisions are applied.
  engine::BindWork work;
  {
    WriteLock lock(*this);
    ReadersGo go(lock);
    work = engine_.PrepareBinds(in, *decisions);
  }
  engine_.MakeTasks(in, work);

  WriteLock lock(*this);
  engine::PassOutcome outcome = [&] {
    ReadersGo go(lock);
    return engine_.ApplyPass(in, *decisions, std::move(work), now);
  }();
  ICOS_RETURN_IF_ERROR(Commit(std::move(outcome.change)));
  counters_.binds.Inc({}, static_cast<double>(outcome.binds));
  counters_.preemptions.Inc({}, static_cast<double>(outcome.preemptions));
  const engine::Reasons waiting = [&] {
    ReadersGo go(lock);
    return engine_.WaitingReasons(*decisions, now);
  }();
  engine_.SetReasons(waiting);
  engine_.RecyclePass(std::move(in));
  Prune();
  if (outcome.stale) Wake();
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
  const int64_t pace = std::max<int64_t>(1'000, static_cast<int64_t>(engine_.nodes().size()) * 1'000 / per_s);
  // Several beats per lease, so one slow beat never costs a node its lease.
  return std::max<int64_t>(250, std::min(pace, options_.node_lease_ms / 4));
}

absl::Status Controller::CheckNodes() {
  WriteLock lock(*this);
  engine::Change c(clock_->NowMs());
  engine_.CheckNodes(c);
  ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
  Prune();
  return absl::OkStatus();
}

void Controller::Prune() {
  for (const JobEntry& j : engine_.Prune()) LearnFromEnd(j);
}

}  // namespace icos::controller
