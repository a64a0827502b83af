// A node's runner of service replicas' command probes (issue #22): the
// controller cannot run a program in a replica's context, so the replica's
// agent does, every period, and reports each outcome in its heartbeats
// (wire::ProbeOutcome). The agent only runs and reports; the controller's
// prober (controller/service_probes.h) applies the thresholds, so the rule
// for ready, alive and started is written once.
//
// A probe runs as the replica (program_run.h): its user, its cgroup (so its
// memory and device rules bound the probe too), its directory and its
// environment, with none of the agent's files.
//
// Thread-safety: all methods are thread-safe. Each probe runs on a thread
// of its own, outside the lock, one run of a probe at a time; RunDue waits
// for the runs it started at most kWaitMs, so a probe that hangs for its
// whole timeout (up to an hour) delays no other replica's probes.
#ifndef ICOS_AGENT_COMMAND_PROBES_H_
#define ICOS_AGENT_COMMAND_PROBES_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "agent/program_run.h"
#include "common/clock.h"
#include "protocol/wire.h"

namespace icos::agent {

class CommandProbes {
 public:
  using RunFn = std::function<ProgramResult(const ProgramRun&)>;
  // `run` is RunProgram but for tests.
  explicit CommandProbes(const icos::Clock* clock, RunFn run = RunProgram);

  // The probes of a running task, run in `context` (its argv and timeout
  // are each probe's), the first of each initial_delay_ms after
  // `started_ms` (by the clock). Replaces what the task had.
  void Set(const std::string& task_id, const std::vector<wire::CommandProbe>& probes, ProgramRun context,
           int64_t started_ms);
  // Stops probing the task (it ended, or is stopping) and drops its outcomes.
  void Remove(const std::string& task_id);
  bool Has(const std::string& task_id) const;

  // Starts the probes due now and waits for them at most kWaitMs (one still
  // running then records its outcome when it ends). True when an outcome
  // that differs from the one before it of the same probe was recorded
  // since the last call (a change worth a heartbeat now).
  bool RunDue();
  static constexpr int64_t kWaitMs = 2'000;
  // When the next probe is due (clock ms); INT64_MAX when none is.
  int64_t NextDueMs() const;

  // The task's outcomes not yet acknowledged, oldest first (at most
  // wire::kMaxProbeOutcomes per probe: older ones are dropped).
  std::vector<wire::ProbeOutcome> Pending(const std::string& task_id) const;
  // Drops the task's outcomes up to those `sent` (a heartbeat delivered them).
  void Acknowledge(const std::string& task_id, const std::vector<wire::ProbeOutcome>& sent);

 private:
  struct Probe {
    wire::CommandProbe spec;
    int64_t next_ms = 0;
    bool running = false;
    int64_t seq = 0;  // runs so far
    std::optional<bool> last_passed;
    std::deque<wire::ProbeOutcome> pending;
  };
  struct Task {
    uint64_t generation = 0;  // Set() makes a new one: a run of the old probes records nothing
    ProgramRun context;
    std::vector<Probe> probes;
  };
  // Shared with the probes' threads, which may outlive a RunDue (and this).
  struct State {
    std::mutex mu;
    std::condition_variable cv;  // a run ended
    std::map<std::string, Task> tasks;
    uint64_t generations = 0;
    bool changed = false;
  };

  const icos::Clock* clock_;
  RunFn run_;
  const std::shared_ptr<State> state_ = std::make_shared<State>();
};

}  // namespace icos::agent

#endif  // ICOS_AGENT_COMMAND_PROBES_H_
