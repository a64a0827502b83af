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
// Thread-safety: all methods are thread-safe; RunDue runs the programs
// outside the lock.
#ifndef ICOS_AGENT_COMMAND_PROBES_H_
#define ICOS_AGENT_COMMAND_PROBES_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
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
  // `run` is RunProgram but for tests. At most `parallel` probes run at once.
  explicit CommandProbes(const icos::Clock* clock, RunFn run = RunProgram, size_t parallel = 8);

  // The probes of a running task, run in `context` (its argv and timeout
  // are each probe's), the first of each initial_delay_ms after
  // `started_ms` (by the clock). Replaces what the task had.
  void Set(const std::string& task_id, const std::vector<wire::CommandProbe>& probes, ProgramRun context,
           int64_t started_ms);
  // Stops probing the task (it ended, or is stopping) and drops its outcomes.
  void Remove(const std::string& task_id);
  bool Has(const std::string& task_id) const;

  // Runs the probes due now and waits for them. True when an outcome
  // differs from the one before it of the same probe (a change worth a
  // heartbeat now).
  bool RunDue();
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
    ProgramRun context;
    std::vector<Probe> probes;
  };

  const icos::Clock* clock_;
  RunFn run_;
  size_t parallel_;
  mutable std::mutex mu_;
  std::map<std::string, Task> tasks_;  // guarded by mu_
};

}  // namespace icos::agent

#endif  // ICOS_AGENT_COMMAND_PROBES_H_
