#include "agent/command_probes.h"

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>
#include <utility>

namespace icos::agent {

CommandProbes::CommandProbes(const icos::Clock* clock, RunFn run) : clock_(clock), run_(std::move(run)) {}

void CommandProbes::Set(const std::string& task_id, const std::vector<wire::CommandProbe>& probes, ProgramRun context,
                        int64_t started_ms) {
  Task task{.context = std::move(context)};
  for (const wire::CommandProbe& p : probes) {
    task.probes.push_back({.spec = p, .next_ms = started_ms + std::max<int64_t>(p.initial_delay_ms, 0)});
  }
  std::lock_guard<std::mutex> lock(state_->mu);
  task.generation = ++state_->generations;
  state_->tasks[task_id] = std::move(task);
}

void CommandProbes::Remove(const std::string& task_id) {
  std::lock_guard<std::mutex> lock(state_->mu);
  state_->tasks.erase(task_id);
}

bool CommandProbes::Has(const std::string& task_id) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return state_->tasks.count(task_id) > 0;
}

bool CommandProbes::RunDue() {
  struct Run {
    std::string task_id;
    uint64_t generation;
    size_t index;
    ProgramRun program;
  };
  std::vector<Run> due;
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    const int64_t now = clock_->NowMs();
    for (auto& [id, task] : state_->tasks) {
      for (size_t i = 0; i < task.probes.size(); ++i) {
        Probe& p = task.probes[i];
        if (p.running || now < p.next_ms) continue;
        p.running = true;
        ProgramRun program = task.context;
        program.argv = p.spec.argv;
        program.timeout_ms = p.spec.timeout_ms;
        due.push_back({id, task.generation, i, std::move(program)});
      }
    }
  }
  // Each run on a thread of its own, outside the lock; its thread records
  // the outcome. The next run is a period after this one's start, or at its
  // end when it took longer (a slow probe never queues a backlog of runs).
  auto ended = std::make_shared<size_t>(0);
  const int64_t now = clock_->NowMs();
  const auto started = std::chrono::steady_clock::now();
  for (Run& r : due) {
    // The thread may outlive this object and its clock: it reads neither.
    std::thread([state = state_, run = run_, now, started, ended, r = std::move(r)] {
      ProgramResult result = run(r.program);
      const int64_t took_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started).count();
      std::lock_guard<std::mutex> lock(state->mu);
      ++*ended;
      state->cv.notify_all();
      auto it = state->tasks.find(r.task_id);
      if (it == state->tasks.end() || it->second.generation != r.generation) return;  // removed or replaced meanwhile
      Probe& p = it->second.probes[r.index];
      p.running = false;
      p.next_ms = now + std::max(p.spec.period_ms, took_ms);
      state->changed = state->changed || !p.last_passed.has_value() || *p.last_passed != result.passed;
      p.last_passed = result.passed;
      p.pending.push_back(
          {.kind = p.spec.kind, .seq = ++p.seq, .passed = result.passed, .message = std::move(result.reason)});
      while (p.pending.size() > wire::kMaxProbeOutcomes) p.pending.pop_front();
    }).detach();
  }
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->cv.wait_for(lock, std::chrono::milliseconds(kWaitMs), [&] { return *ended == due.size(); });
  return std::exchange(state_->changed, false);
}

int64_t CommandProbes::NextDueMs() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  int64_t next = INT64_MAX;
  for (const auto& [id, task] : state_->tasks) {
    for (const Probe& p : task.probes) {
      if (!p.running) next = std::min(next, p.next_ms);
    }
  }
  return next;
}

std::vector<wire::ProbeOutcome> CommandProbes::Pending(const std::string& task_id) const {
  std::vector<wire::ProbeOutcome> out;
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->tasks.find(task_id);
  if (it == state_->tasks.end()) return out;
  for (const Probe& p : it->second.probes) out.insert(out.end(), p.pending.begin(), p.pending.end());
  return out;
}

void CommandProbes::Acknowledge(const std::string& task_id, const std::vector<wire::ProbeOutcome>& sent) {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->tasks.find(task_id);
  if (it == state_->tasks.end()) return;
  for (Probe& p : it->second.probes) {
    int64_t last = 0;
    for (const wire::ProbeOutcome& o : sent) {
      if (o.kind == p.spec.kind) last = std::max(last, o.seq);
    }
    while (!p.pending.empty() && p.pending.front().seq <= last) p.pending.pop_front();
  }
}

}  // namespace icos::agent
