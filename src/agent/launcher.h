// TaskLauncher: the node agent's task runtime. Starts task processes in their
// own cgroup and process group, as their owner, with logs in a file, watches
// them without blocking, stops them with a grace period, and re-adopts them
// after the agent restarts. No networking: the agent's loop calls it.
//
// Process tree of one task:
//
//   agent ──fork──▶ shim (setsid; stdout/stderr → <log_dir>/<task_id>.log)
//                     └──fork──▶ task (own process group; joins the cgroup;
//                                      becomes its owner; execve(argv))
//
// Exactly once (docs/reliability.md). A task's life is journaled in
// <state_dir>/<task_id>.json, and the journal answers, after any crash of the
// agent, whether the task may have started:
//   1. Start() writes the journal (phase "starting", fsynced) BEFORE it forks,
//      and takes an flock on <task_id>.lock that the shim inherits and holds
//      until it exits. A restarted agent never starts an id it has a journal
//      for (AlreadyExists).
//   2. The shim creates <task_id>.spawn before it forks the task. So after a
//      crash: lock held = a shim is alive (adopt it); lock free and no
//      .spawn = the task was never forked and never will be (the journal is
//      dropped: the task may be started afresh); lock free with .spawn and no
//      exit record = the shim was killed (the task's cgroup is killed and it
//      is reported Lost).
//   3. The shim records the exit (<task_id>.exit, renamed into place whole);
//      Poll() turns it into a TaskExit, journals it (phase "ended") and
//      reports it. Nothing is deleted until Forget(), which the agent calls
//      once the controller has acknowledged the exit: a crash in between
//      reports the same exit again, never a second run.
//   4. A journal from an earlier boot of the machine (its boot id differs)
//      proves nothing about what ran: such tasks are reported Lost.
// The shim also enforces the node's lease (shim.h): a node cut off from the
// controller stops its tasks before the controller may start them elsewhere.
//
// The shim ignores SIGTERM/SIGINT/SIGHUP and stays OUT of the task's cgroup
// and process group, so neither Stop(), cgroup kills nor the OOM killer take
// it down with the task. Deployment note: the service manager must not kill
// the agent's whole cgroup on stop (systemd: KillMode=process), or the shims
// die with the agent and their tasks are later reported Lost.
//
// Only async-signal-safe calls run between fork and exec (the agent is
// multi-threaded); everything the shim needs is prepared before fork.
//
// Thread-safety: every call is thread-safe. Start holds the launcher's lock
// only to check and to record the id, not while the task starts (its
// cgroup, journal, fork and the shim's report take milliseconds), so an
// agent can launch on one thread while another polls for exits. Two
// TaskLaunchers must not share a state_dir at once.
#ifndef ICOS_AGENT_LAUNCHER_H_
#define ICOS_AGENT_LAUNCHER_H_

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/cgroups.h"
#include "agent/device_access.h"
#include "common/clock.h"

namespace icos::agent {

struct TaskLauncherOptions {
  // Where <task_id>.json (what was launched) and <task_id>.exit (how it ended)
  // live. Must survive agent restarts (not a tmpfs cleared on restart if
  // adoption matters). Created if missing. Required.
  std::string state_dir;
  // Where <task_id>.log (the task's stdout and stderr, appended) goes.
  // Created if missing. Required.
  std::string log_dir;
  // Cgroup hierarchy to use; mode kDisabled runs tasks without cgroups.
  // When no hierarchy can be used, tasks still run and Start() warns about
  // each limit it could not apply (see require_limits).
  CgroupOptions cgroups;
  // Grace period between SIGTERM and SIGKILL when Stop() is given a negative one.
  int64_t default_grace_ms = 10'000;
  // When true, Start() fails with FailedPrecondition instead of warning if a
  // requested limit (CPU, memory, cpuset) cannot be enforced.
  bool require_limits = false;
  // Time source for grace periods; only differences of NowMs() matter.
  // nullptr: a monotonic clock owned by the launcher, so that a wall-clock
  // step (NTP) neither shortens nor stretches a grace period. Not owned; must
  // outlive the launcher.
  const icos::Clock* clock = nullptr;
  // The node's lease file (shim.h): the agent writes the CLOCK_BOOTTIME
  // millisecond of its last contact with the controller there. Empty: tasks
  // run without a lease whatever their max_disconnect_ms.
  std::string lease_path;
  // The icos-shim program each task's shim runs as (shim_spawn.h). Empty:
  // the one beside the running program, if any; else the shim is a fork of
  // the agent (slower where the agent's memory is large).
  std::string shim_path;
  // Tests only: called at named points of a launch ("journaled", "forked",
  // "recorded", "ended", "forgetting") so a test can crash the agent there.
  std::function<void(absl::string_view point)> failpoint;
};

// The Unix identity a task runs as (only an agent running as root can switch).
struct TaskUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
};

// What to run.
struct TaskLaunch {
  // Names the task's files and cgroup: letters, digits, '.', '_' and '-';
  // at most 200 characters; unique among the tasks of one state_dir.
  std::string task_id;
  // argv[0] is looked up in PATH (from `env` if set there, else the agent's)
  // unless it contains a '/'; a relative path is relative to `workdir`.
  std::vector<std::string> argv;
  // Working directory; empty: the agent's.
  std::string workdir;
  // Added to (and overriding) the agent's environment.
  std::map<std::string, std::string> env;
  // Limits; 0 = none. cpu_milli: thousandths of a CPU; memory_mib: MiB (2^20 bytes).
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  // cpuset CPU ids and NUMA node ids; empty = no binding.
  std::vector<int32_t> cpus;
  std::vector<int32_t> mems;
  // Who the task runs as; unset: the agent's own user.
  std::optional<TaskUser> user;
  // The device files it may open (device_access.h), enforced by its cgroup's
  // device controller; unset: device access is left as it is.
  std::optional<std::vector<DeviceRule>> device_rules;
  // The environment is exactly `env` (plus PATH's default when `env` has
  // none) instead of the agent's environment overridden by `env`.
  bool clean_env = false;
  // How long the task may run while its node cannot reach the controller
  // (the lease); 0: no limit. The shim stops it (SIGTERM, then SIGKILL
  // lease_grace_ms later) kLeaseMarginMs before this much silence.
  int64_t max_disconnect_ms = 0;
  int64_t lease_grace_ms = 10'000;
};

struct LaunchedTask {
  std::string task_id;
  pid_t shim_pid = 0;
  // 0 when the shim could not start the task (Poll() then reports LaunchFailed).
  pid_t task_pid = 0;
  int64_t start_unix_ms = 0;
  std::string log_path;
  // The task's cgroup directory; empty when it runs without one.
  std::string cgroup_dir;
  // Limits that were requested but not applied, and why. Empty when all were.
  std::vector<std::string> warnings;
};

enum class TaskExitKind {
  kExited,        // exited on its own; exit_code says how
  kSignaled,      // killed by a signal nobody at icos sent
  kOOMKilled,     // SIGKILLed by the kernel's OOM killer in its cgroup
  kCancelled,     // ended after Stop()
  kLaunchFailed,  // never ran: exec (or chdir, log file, cgroup join) failed
  kLost,          // vanished without an exit record (shim killed, state lost)
  kLeaseExpired,  // stopped by its shim: the node lost contact with the controller too long
  kNodeShutdown,  // stopped because its node shut down (`icos up` stopping): not the job's doing
};

// "Exited", "Signaled", "OOMKilled", "Cancelled", "LaunchFailed", "Lost", "LeaseExpired", "NodeShutdown".
absl::string_view TaskExitKindName(TaskExitKind kind);

struct TaskExit {
  std::string task_id;
  TaskExitKind kind = TaskExitKind::kLost;
  // The exit status as a shell shows it: the code for a normal exit, 128 +
  // signal for a signal death, 127 (not found) or 126 (other errors) for a
  // failed launch, -1 when unknown (Lost).
  int exit_code = -1;
  int signal = 0;  // the signal that killed the task; 0 if none
  // For people: "exited with code 3", "OOMKilled", "exec 'x' failed: ...".
  std::string reason;
  int64_t end_unix_ms = 0;  // wall clock; for Lost, when the loss was noticed
  // sacct's MaxRSS: the larger of the largest process's peak (the shim's
  // getrusage) and the most its processes held together when sampled
  // (SampleMemory); 0: unknown.
  int64_t max_rss_kib = 0;
  // A stop that asked for a checkpoint first (CheckpointFirst): when its
  // signal went out (Unix ms; 0: none did), the window it gave, and whether
  // the window ran out (SIGTERM followed) before the task ended. What the
  // agent needs to tell how long the job's checkpoint took.
  int64_t checkpoint_asked_unix_ms = 0;
  int64_t checkpoint_window_ms = 0;
  bool checkpoint_window_ran_out = false;
};

// A planned stop of a job that checkpoints (TaskLauncher::Stop).
struct CheckpointFirst {
  int32_t signal = 0;  // 0: none, SIGTERM at once
  int64_t window_ms = 0;
};

class TaskLauncher {
 public:
  // Creates state_dir and log_dir if needed and sets up cgroups (a cgroup
  // failure is not an error; see cgroup_status()). InvalidArgument for
  // missing directories in `options`.
  static absl::StatusOr<std::unique_ptr<TaskLauncher>> Create(TaskLauncherOptions options);

  // Leaves every task running: a new TaskLauncher on the same state_dir
  // adopts them (Adopt()).
  ~TaskLauncher();

  TaskLauncher(const TaskLauncher&) = delete;
  TaskLauncher& operator=(const TaskLauncher&) = delete;

  // Starts the task. Reads the agent's environment (environ), so no thread may
  // call setenv() meanwhile. Before forking it checks the task id, the workdir and
  // that argv[0] resolves to an executable, so a typo comes back here as
  // NotFound ("command 'pyhton3' not found in PATH"); such a task never ran
  // and leaves no journal. Failures after the fork (exec, chdir, identity)
  // are reported by Poll() as LaunchFailed.
  // AlreadyExists when the id has a journal (running, or ended and not yet
  // forgotten): a task id is started at most once.
  absl::StatusOr<LaunchedTask> Start(const TaskLaunch& launch);
  // Start, for a caller that starts tasks outside its own lock but records
  // them under it, and polls under it: the task is kept out of Poll, Stop
  // and Running until Accept(task_id), so that no exit of it is reported
  // before the caller knows it started. Knows() it at once. Every task
  // started so must be accepted.
  absl::StatusOr<LaunchedTask> StartHeld(const TaskLaunch& launch);
  void Accept(const std::string& task_id);

  // Non-blocking. Returns the tasks that ended since the last call, each once
  // per TaskLauncher, and enforces Stop() deadlines (SIGKILL once a grace
  // period has passed by the clock). An ended task's cgroup is removed; its
  // journal stays (a new TaskLauncher reports it again) until Forget().
  std::vector<TaskExit> Poll();

  // Samples each running task's resident memory, all its processes
  // together (CgroupManager::ResidentKib): the largest sample joins its
  // TaskExit::max_rss_kib. A task of several processes (a launcher and its
  // data-loading workers) is thus counted whole, as Slurm's accounting
  // samples it; a peak between samples is seen only in its own process's
  // getrusage. The agent calls it every second; nothing without cgroups.
  void SampleMemory();

  // Drops what is kept of an ended task (journal, exit record; the log
  // stays), once the controller has recorded its exit. NotFound for an
  // unknown id, FailedPrecondition while the task has not ended.
  absl::Status Forget(const std::string& task_id);

  // Sends SIGTERM to the task's process group now and SIGKILL to the group and
  // every process in its cgroup once `grace_ms` (< 0: default_grace_ms) has
  // passed, which a later Poll() does. grace_ms == 0 kills at once. The task is
  // reported as Cancelled (or OOMKilled / LaunchFailed when that happened
  // first). A second Stop() can only shorten the deadline. NotFound for an
  // unknown task; OK (nothing to do) for one that has ended.
  // `node_shutdown`: the node is going down, not the job (its exit is
  // kNodeShutdown, and the controller requeues the job).
  // `checkpoint` (the job's checkpoint contract, a planned stop): send
  // checkpoint.signal now, SIGTERM only window_ms later (or when a later
  // Stop() without one asks), and SIGKILL grace_ms after that.
  absl::Status Stop(const std::string& task_id, int64_t grace_ms, bool node_shutdown = false,
                    CheckpointFirst checkpoint = {});

  // Call once at agent start. Loads every journal in state_dir not known
  // yet (see the header comment for what a journal proves). Returns the ids
  // of the tasks still running, which are then watched through their lock
  // and exit file since they are no longer our children. Tasks that ended
  // while the agent was away, ended ones not yet forgotten, and tasks that
  // vanished without a record (Lost) are reported by the next Poll(). Tasks
  // that certainly never started are dropped (their ids in never_started()).
  std::vector<std::string> Adopt();

  // Ids of the tasks started or adopted that have not ended, sorted.
  std::vector<std::string> Running() const;
  // Whether the id has a journal here (started, maybe ended, not forgotten):
  // then Start() refuses it.
  bool Knows(const std::string& task_id) const;
  // Ids Adopt() found were journaled but certainly never forked.
  const std::vector<std::string>& never_started() const { return never_started_; }
  // Ids of the cgroups Adopt() found without a journal, whose processes it
  // killed (they would run unreported, and maybe twice).
  const std::vector<std::string>& orphans_reaped() const { return orphans_reaped_; }

  // Empty when tasks get cgroups; otherwise why not (disabled, not mounted, ...).
  const std::string& cgroup_status() const { return cgroup_status_; }
  // nullptr when tasks run without cgroups.
  const CgroupManager* cgroups() const { return cgroups_.get(); }

 private:
  struct Task;

  explicit TaskLauncher(TaskLauncherOptions options);

  // <state_dir>/<task_id><suffix>: ".json" (journal), ".exit", ".lock",
  // ".spawn", ".pid" (shim.h).
  std::string StateFile(const std::string& task_id, absl::string_view suffix) const;
  std::string LogPath(const std::string& task_id) const;
  // Writes the journal; `durable` fsyncs it (the "starting" and "ended"
  // entries must survive power loss; the pids need not).
  absl::Status SaveState(const Task& task, bool durable) const;
  void RemoveStateFiles(const std::string& task_id) const;
  void KillNow(Task& task);
  // SIGTERM once a stop's checkpoint window (if any) has passed.
  void SendTermIfDue(Task& task, int64_t now);
  // Fills in the task's pids from the shim's pid file when the journal lacks them.
  void LoadPids(Task& task) const;
  // Reads the exit record, journals the exit and releases the cgroup.
  TaskExit Finish(Task& task, const int* shim_wait_status);
  void ReleaseCgroup(const std::string& task_id);
  // Loads one journal for Adopt(); nullptr when the task never started.
  std::unique_ptr<Task> LoadJournal(const std::string& id);
  void Failpoint(absl::string_view point) const;
  void ReapOrphanGroups();

  // Start and StartHeld: the task goes into tasks_ or held_.
  absl::StatusOr<LaunchedTask> StartTask(const TaskLaunch& launch, bool hold);
  // StartTask without the lock: the slow part, which touches only the new
  // task's own files, cgroup and processes.
  absl::StatusOr<LaunchedTask> StartUnlocked(const TaskLaunch& launch, std::unique_ptr<Task>& task);

  TaskLauncherOptions options_;
  std::string shim_path_;  // the icos-shim program; empty: fork the shim
  std::unique_ptr<icos::Clock> owned_clock_;
  const icos::Clock* clock_;
  std::unique_ptr<CgroupManager> cgroups_;
  std::string cgroup_status_;
  // Guards what follows. Every public call but Start holds it throughout.
  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<Task>> tasks_;
  std::set<std::string> starting_;                     // ids a Start is starting now (not in tasks_ yet)
  std::map<std::string, std::unique_ptr<Task>> held_;  // StartHeld's, not accepted yet
  // Cgroups whose removal failed (processes still exiting); retried by Poll().
  std::vector<std::string> cgroups_to_remove_;
  std::vector<std::string> never_started_;   // set by Adopt
  std::vector<std::string> orphans_reaped_;  // set by Adopt
  std::string boot_id_;                      // this boot of the machine (/proc/sys/kernel/random/boot_id)
};

}  // namespace icos::agent

#endif  // ICOS_AGENT_LAUNCHER_H_
