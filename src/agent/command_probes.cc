#include "agent/command_probes.h"

#include <algorithm>
#include <atomic>
#include <climits>
#include <thread>
#include <utility>

namespace icos::agent {

CommandProbes::CommandProbes(const icos::Clock* clock, RunFn run, size_t parallel)
    : clock_(clock), run_(std::move(run)), parallel_(std::max<size_t>(parallel, 1)) {}

void CommandProbes::Set(const std::string& task_id, const std::vector<wire::CommandProbe>& probes, ProgramRun context,
                        int64_t started_ms) {
  Task task{.context = std::move(context)};
  for (const wire::CommandProbe& p : probes) {
    task.probes.push_back({.spec = p, .next_ms = started_ms + std::max<int64_t>(p.initial_delay_ms, 0)});
  }
  std::lock_guard<std::mutex> lock(mu_);
  tasks_[task_id] = std::move(task);
}

void CommandProbes::Remove(const std::string& task_id) {
  std::lock_guard<std::mutex> lock(mu_);
  tasks_.erase(task_id);
}

bool CommandProbes::Has(const std::string& task_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_.count(task_id) > 0;
}

bool CommandProbes::RunDue() {
  struct Due {
    std::string task_id;
    size_t index;
    ProgramRun run;
    ProgramResult result;
  };
  std::vector<Due> due;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t now = clock_->NowMs();
    for (auto& [id, task] : tasks_) {
      for (size_t i = 0; i < task.probes.size(); ++i) {
        Probe& p = task.probes[i];
        if (p.running || now < p.next_ms) continue;
        p.running = true;
        ProgramRun run = task.context;
        run.argv = p.spec.argv;
        run.timeout_ms = p.spec.timeout_ms;
        due.push_back({id, i, std::move(run), {}});
      }
    }
  }
  if (due.empty()) return false;
  // Outside the lock, up to parallel_ at once: a probe that hangs delays
  // the others by at most its timeout.
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < due.size(); i = next++) due[i].result = run_(due[i].run);
  };
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < std::min(due.size(), parallel_); ++i) helpers.emplace_back(work);
  work();
  for (std::thread& h : helpers) h.join();

  bool changed = false;
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMs();
  for (Due& d : due) {
    auto it = tasks_.find(d.task_id);
    if (it == tasks_.end() || d.index >= it->second.probes.size()) continue;  // removed meanwhile
    Probe& p = it->second.probes[d.index];
    p.running = false;
    // The next period counts from this run's end: a slow probe never queues
    // a backlog of runs.
    p.next_ms = now + p.spec.period_ms;
    changed = changed || !p.last_passed.has_value() || *p.last_passed != d.result.passed;
    p.last_passed = d.result.passed;
    p.pending.push_back(
        {.kind = p.spec.kind, .seq = ++p.seq, .passed = d.result.passed, .message = std::move(d.result.reason)});
    while (p.pending.size() > wire::kMaxProbeOutcomes) p.pending.pop_front();
  }
  return changed;
}

int64_t CommandProbes::NextDueMs() const {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t next = INT64_MAX;
  for (const auto& [id, task] : tasks_) {
    for (const Probe& p : task.probes) {
      if (!p.running) next = std::min(next, p.next_ms);
    }
  }
  return next;
}

std::vector<wire::ProbeOutcome> CommandProbes::Pending(const std::string& task_id) const {
  std::vector<wire::ProbeOutcome> out;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return out;
  for (const Probe& p : it->second.probes) out.insert(out.end(), p.pending.begin(), p.pending.end());
  return out;
}

void CommandProbes::Acknowledge(const std::string& task_id, const std::vector<wire::ProbeOutcome>& sent) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return;
  for (Probe& p : it->second.probes) {
    int64_t last = 0;
    for (const wire::ProbeOutcome& o : sent) {
      if (o.kind == p.spec.kind) last = std::max(last, o.seq);
    }
    while (!p.pending.empty() && p.pending.front().seq <= last) p.pending.pop_front();
  }
}

}  // namespace icos::agent
