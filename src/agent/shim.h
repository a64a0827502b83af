// The task shim: the process between the agent and a task. TaskLauncher
// (launcher.h) forks it; it forks the task, waits for it, records how it
// ended, and outlives the agent so that an agent restart neither kills nor
// forgets a task. Internal to the launcher.
//
// Everything here runs in a child of a multi-threaded process without exec,
// so only async-signal-safe calls are allowed: no allocation, no locks, no
// stdio, no errno-to-string. The plan is prepared by the agent before fork.
//
// Files the shim writes in the task's state directory (names in ShimPlan):
//   <id>.spawn  created just before the task is forked: without it, the task
//               was certainly never started (journal.h explains the proof);
//   <id>.pid    "<task pid> <shim pid>\n", right after the fork;
//   <id>.exit   the exit record (ExitRecordText), written whole by rename.
// The shim also holds the task's lock (an flock on <id>.lock, inherited from
// the agent) until it exits: a lock nobody holds means no shim is alive.
#ifndef ICOS_AGENT_SHIM_H_
#define ICOS_AGENT_SHIM_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace icos::agent::shim {

// Where a launch failed after the fork; recorded in the exit file.
enum LaunchStage : int32_t {
  kStageNone = 0,
  kStageLog = 1,
  kStageChdir = 2,
  kStageFork = 3,
  kStageCgroup = 4,
  kStageExec = 5,
  kStageJournal = 6,   // the spawn marker could not be written: the task was not started
  kStageIdentity = 7,  // setgroups/setgid/setuid/no_new_privs failed: the task was not started
};

// The identity a task runs as. uid < 0: the shim's own (no switch).
struct ShimIdentity {
  int64_t uid = -1;
  int64_t gid = -1;
  const gid_t* groups = nullptr;  // supplementary groups (setgroups)
  size_t num_groups = 0;
};

struct ShimPlan {
  const char* log_path = nullptr;
  const char* workdir = nullptr;  // nullptr: keep the agent's
  const char* exit_path = nullptr;
  const char* exit_tmp_path = nullptr;
  const char* pid_path = nullptr;
  const char* pid_tmp_path = nullptr;
  const char* spawn_path = nullptr;
  const char* exec_path = nullptr;
  char* const* argv = nullptr;
  char* const* sh_argv = nullptr;  // "/bin/sh <exec_path> <args>": execvp's answer to ENOEXEC
  char* const* envp = nullptr;
  const char* const* procs_files = nullptr;
  size_t num_procs_files = 0;
  const char* cgroup_kill_file = nullptr;  // v2 cgroup.kill, when the kernel has it; else nullptr
  ShimIdentity identity;
  int report_fd = -1;  // shim -> agent: the task pid (int32), or -1
  int lock_fd = -1;    // the task's flock; held open for the shim's whole life
  int max_fd = 1024;   // close() fallback bound when close_range is missing
  // The node's lease (docs/reliability.md): the agent writes the CLOCK_BOOTTIME
  // millisecond of its last contact with the controller into lease_path. Once
  // that is max_disconnect_ms - grace_ms - kLeaseMarginMs old the shim sends
  // the task SIGTERM, and at max_disconnect_ms - kLeaseMarginMs SIGKILL, so
  // the task has ended before the controller may start it elsewhere.
  // lease_path nullptr or max_disconnect_ms <= 0: no lease.
  const char* lease_path = nullptr;
  int64_t max_disconnect_ms = 0;
  int64_t grace_ms = 10'000;
};

// The fds a spawned icos-shim (shim_spawn.h) finds its plan, report pipe and
// lock on.
inline constexpr int kPlanFd = 3;
inline constexpr int kReportFd = 4;
inline constexpr int kLockFd = 5;
// The plan format's version, its first number: an agent still running an
// older binary after an upgrade must not hand a newer icos-shim a plan it
// reads otherwise (that shim exits at once and the launch fails, saying so).
inline constexpr int64_t kPlanVersion = 1;

// How long before its lease ends a task must be dead: covers the shim's
// polling period, the kill's delivery and clock-rate differences.
inline constexpr int64_t kLeaseMarginMs = 2'000;
// How often the shim looks at the lease while its task runs.
inline constexpr int64_t kLeasePollMs = 200;

// The child of the agent: sets the stage, runs the task, records how it ended.
[[noreturn]] void RunShim(const ShimPlan& plan);

// Async-signal-safe steps of a child of the (threaded) agent before it
// execs, shared with program_run.cc:
// Closes fds first..last (close_range, or one by one below max_fd).
void CloseRange(int first, int last, int max_fd);
// Keeps 0, 1, 2, `a` and `b` (either may be -1): the agent's sockets and
// files must not leak into tasks (an open listening socket would keep the
// agent's port busy).
void CloseFdsExcept(int a, int b, int max_fd);
// Moves this process into each of the cgroup "procs" files; 0, or the errno
// of the first that failed.
int JoinProcsFiles(const char* const* files, size_t n);
// exec keeps ignored signals and the signal mask; a task must start with the
// defaults whatever the agent (or the shim) did to them.
void ResetSignals();
// Takes on the task owner's identity (setgroups, setresgid, setresuid,
// no_new_privs); false (errno set) on failure.
bool SwitchIdentity(const ShimIdentity& id);
// fork() without pthread_atfork handlers (_Fork where glibc has it).
pid_t ShimFork();

// CLOCK_BOOTTIME in milliseconds: counts suspend and never steps, and is the
// same clock for every process of the host (the lease is judged by it).
int64_t BootTimeMs();

}  // namespace icos::agent::shim

#endif  // ICOS_AGENT_SHIM_H_
