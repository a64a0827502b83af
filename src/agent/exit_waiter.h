// Wakes the agent's report loop the moment a task's shim exits, instead of
// at its next tick: a finished task frees its devices for
// the next job, so the time from its exit to the report is on every job's
// critical path (issue #23: a trivial job's exit used to wait up to 10 ms,
// 5 ms on average, before the agent even looked).
//
// Each watched process gets a pidfd (Linux >= 5.3), readable once it has
// exited; Wake() writes an eventfd. Where pidfd_open is missing, Watch does
// nothing and the loop falls back to its tick.
//
// Thread-safety: Watch and Wake from any thread; Wait from one thread only
// (it alone closes the pidfds, so the ones it polls stay open meanwhile).
#ifndef ICOS_AGENT_EXIT_WAITER_H_
#define ICOS_AGENT_EXIT_WAITER_H_

#include <sys/types.h>

#include <mutex>
#include <vector>

namespace icos::agent {

class ExitWaiter {
 public:
  ExitWaiter();
  ~ExitWaiter();
  ExitWaiter(const ExitWaiter&) = delete;
  ExitWaiter& operator=(const ExitWaiter&) = delete;

  // Wakes Wait once `pid` exits (a pid already gone is not watched: the
  // tick finds it). Not at once: a start is reported at the next tick, which
  // for a short task is often the report of its end too (one commit, not two).
  void Watch(pid_t pid);
  // Wakes Wait now (or its next call, if none is waiting).
  void Wake();
  // Blocks until a watched process exited, Wake() was called, or timeout_ms
  // passed. A process seen exited is watched no longer (its exit is the
  // caller's to collect), so an uncollected exit never spins the loop.
  void Wait(int timeout_ms);
  // How many processes are watched (tests).
  size_t watched() const;

 private:
  int wake_fd_ = -1;  // eventfd
  mutable std::mutex mu_;
  std::vector<int> pidfds_;  // guarded by mu_; closed only by Wait
};

}  // namespace icos::agent

#endif  // ICOS_AGENT_EXIT_WAITER_H_
