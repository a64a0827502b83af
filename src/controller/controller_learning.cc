// What the controller learns from its own jobs: run-time estimates
// (runtime_learning.h: history at start, estimates into the scheduling pass,
// what the API shows) and slow nodes (slow_nodes.h).
#include <algorithm>
#include <cmath>
#include <deque>
#include <set>

#include "absl/strings/str_cat.h"
#include "controller/controller.h"

namespace icos::controller {

using store::JobState;

// Runs in Create, before the controller is shared with other threads.
absl::Status Controller::LoadRuntimeHistory() {
  if (!learning_) return absl::OkStatus();
  // The most recent successes by id (submission order), as many as the
  // estimator keeps for training; paged so a large store is never read whole.
  const size_t keep = static_cast<size_t>(std::max(1, options_.learning.estimator.window));
  std::deque<store::JobRecord> done;
  store::JobQuery q;
  q.states = {JobState::kSucceeded};
  q.limit = 2'000;
  while (true) {
    auto page = store_->ListJobs(q);
    if (!page.ok()) return page.status();
    for (store::JobRecord& r : *page) {
      if (engine_.jobs().count(r.id)) continue;  // still in memory: reported when pruned
      done.push_back(std::move(r));
      if (done.size() > keep) done.pop_front();
    }
    if (page->size() < static_cast<size_t>(q.limit)) break;
    q.after_id = page->back().id;
  }
  // History accrues in the order jobs ended.
  std::stable_sort(done.begin(), done.end(),
                   [](const store::JobRecord& a, const store::JobRecord& b) { return a.end_ms < b.end_ms; });
  for (const store::JobRecord& r : done) {
    auto devices = StoredSpecDevices(r.spec_json);
    if (!devices.ok()) return absl::DataLossError(absl::StrCat("stored job ", r.id, ": ", devices.status().message()));
    std::vector<store::TaskRecord> tasks;
    if (r.attempt > 0) {  // restarted: its run time is the sum of its attempts
      auto t = store_->ListTasks(r.id);
      if (!t.ok()) return t.status();
      tasks = *std::move(t);
    }
    // The work it did (its device speeds are not looked up here: a stored
    // history is learned from at the reference speed).
    learning_->FromHistory(r.id, FactsOf(r, *devices), RunSeconds(r, tasks, options_.scheduler.restore_cost_ms));
  }
  WriteLock lock(*this);
  for (const auto& [id, j] : engine_.jobs()) {
    if (!store::IsTerminal(j.rec.state)) learning_->Submitted(id, FactsOf(j.rec, j.devices));
  }
  return absl::OkStatus();
}

void Controller::LearnFromEnd(const JobEntry& j) {
  double work_s = -1;  // failed or cancelled: nothing to learn
  if (j.rec.state == JobState::kSucceeded) {
    // What the estimator learns is the job's work (its runs less their
    // restores, at the speed of each run's devices), as the estimates it makes
    // are read (core/estimates.h) and as the simulator learns it.
    work_s = engine_.RunsOf(j, clock_->NowMs()).worked_s;
    std::vector<store::TaskRecord> tasks;
    std::set<std::string> nodes;  // of the attempt that succeeded
    for (const TaskEntry& t : j.tasks) {
      tasks.push_back(t.rec);
      if (t.rec.attempt == j.rec.attempt) nodes.insert(t.rec.node);
    }
    const double run_s = RunSeconds(j.rec, tasks);  // wall time: a slow node shows here
    const api::RuntimeEstimate est = api::EstimateOf(j.spec, j.learned_estimate_s);
    if (est.source == "learned") counters_.estimate_ratio.Observe({}, work_s / est.seconds);
    // A job that ran on one node is evidence about that node; a gang's pace
    // is its slowest member's, so it would blame all of them. A time limit is
    // a bound, not an estimate.
    if (nodes.size() == 1 && (est.source == "user" || est.source == "learned")) {
      slow_nodes_.Observe(*nodes.begin(), est.seconds, run_s);
    }
  }
  if (learning_) learning_->Ended(j.rec.id, FactsOf(j.rec, j.devices), work_s, j.rec.end_ms);
}

void Controller::ApplyLearnedEstimates() {
  if (!learning_) return;
  const std::vector<RuntimeLearning::Estimate> made = learning_->Apply();
  if (made.empty()) return;
  WriteLock lock(*this);
  for (const RuntimeLearning::Estimate& e : made) {
    JobEntry* found = engine_.MutableJob(e.id);
    if (found == nullptr || store::IsTerminal(found->rec.state)) continue;
    JobEntry& j = *found;
    j.learned_estimate_s = e.runtime_s;
    j.learned_log_sd = e.log_sd;
    const api::RuntimeEstimate v = api::EstimateOf(j.spec, e.runtime_s);
    j.core.runtime_estimate_ms = std::llround(v.seconds * 1000);
    if (v.source == "learned") j.core.runtime_log_sd = e.log_sd;
  }
}

}  // namespace icos::controller
