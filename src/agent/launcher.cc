#include "agent/launcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "agent/log_tail.h"
#include "agent/program_run.h"
#include "agent/shim.h"
#include "agent/shim_spawn.h"
#include "agent/sys_util.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace icos::agent {
namespace {

constexpr size_t kMaxTaskIdLength = 200;

// steady_clock behind the Clock interface. Its origin is arbitrary (boot), so
// it is only fit for measuring intervals, which is all the launcher does.
class MonotonicClock final : public icos::Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// ---------------------------------------------------------------------------
// Agent side.
// ---------------------------------------------------------------------------

absl::Status ValidateTaskId(const std::string& id) {
  if (id.empty() || id.size() > kMaxTaskIdLength || id[0] == '.' || !std::all_of(id.begin(), id.end(), [](char c) {
        return absl::ascii_isalnum(c) || c == '.' || c == '_' || c == '-';
      })) {
    return absl::InvalidArgumentError(absl::StrCat("task id '", id,
                                                   "' must be 1-200 letters, digits, '.', '_' or '-', "
                                                   "not starting with '.'"));
  }
  return absl::OkStatus();
}

// Parsed <task_id>.exit.
struct ExitRecord {
  int wait_status = 0;
  int32_t stage = shim::kStageNone;
  int err = 0;
  int64_t end_unix_ms = 0;
  bool lease_stop = false;
  int64_t max_rss_kib = 0;
};

absl::StatusOr<ExitRecord> ReadExitRecord(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return text.status();
  ExitRecord record;
  int found = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    int64_t value = 0;
    if (!absl::SimpleAtoi(kv.second, &value)) continue;
    if (kv.first == "wait_status") {
      record.wait_status = static_cast<int>(value);
      ++found;
    } else if (kv.first == "stage") {
      record.stage = static_cast<int32_t>(value);
    } else if (kv.first == "errno") {
      record.err = static_cast<int>(value);
    } else if (kv.first == "end_unix_ms") {
      record.end_unix_ms = value;
    } else if (kv.first == "lease_stop") {
      record.lease_stop = value != 0;
    } else if (kv.first == "max_rss_kib") {
      record.max_rss_kib = value;
    }
  }
  if (found == 0) return absl::DataLossError(absl::StrCat(path, " has no wait_status"));
  return record;
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", sig);
}

// This boot of the machine: a journal written under another one says nothing
// about which processes still run.
std::string BootId() {
  absl::StatusOr<std::string> id = ReadFile("/proc/sys/kernel/random/boot_id");
  return id.ok() ? std::string(absl::StripAsciiWhitespace(*id)) : std::string();
}

enum class Phase { kStarting, kRunning, kEnded };

const char* PhaseName(Phase p) {
  switch (p) {
    case Phase::kStarting:
      return "starting";
    case Phase::kRunning:
      return "running";
    case Phase::kEnded:
      return "ended";
  }
  return "?";
}

nlohmann::json ExitToJson(const TaskExit& e) {
  return {{"kind", std::string(TaskExitKindName(e.kind))},
          {"exit_code", e.exit_code},
          {"signal", e.signal},
          {"reason", e.reason},
          {"end_unix_ms", e.end_unix_ms},
          {"max_rss_kib", e.max_rss_kib}};
}

TaskExit ExitFromJson(const std::string& id, const nlohmann::json& j) {
  TaskExit e;
  e.task_id = id;
  const std::string kind = j.value("kind", "Lost");
  for (TaskExitKind k :
       {TaskExitKind::kExited, TaskExitKind::kSignaled, TaskExitKind::kOOMKilled, TaskExitKind::kCancelled,
        TaskExitKind::kLaunchFailed, TaskExitKind::kLost, TaskExitKind::kLeaseExpired, TaskExitKind::kNodeShutdown}) {
    if (TaskExitKindName(k) == kind) e.kind = k;
  }
  e.exit_code = j.value("exit_code", -1);
  e.signal = j.value("signal", 0);
  e.reason = j.value("reason", "");
  e.end_unix_ms = j.value("end_unix_ms", int64_t{0});
  e.max_rss_kib = j.value("max_rss_kib", int64_t{0});
  return e;
}

}  // namespace

absl::string_view TaskExitKindName(TaskExitKind kind) {
  switch (kind) {
    case TaskExitKind::kExited:
      return "Exited";
    case TaskExitKind::kSignaled:
      return "Signaled";
    case TaskExitKind::kOOMKilled:
      return "OOMKilled";
    case TaskExitKind::kCancelled:
      return "Cancelled";
    case TaskExitKind::kLaunchFailed:
      return "LaunchFailed";
    case TaskExitKind::kLost:
      return "Lost";
    case TaskExitKind::kNodeShutdown:
      return "NodeShutdown";
    case TaskExitKind::kLeaseExpired:
      return "LeaseExpired";
  }
  return "Unknown";
}

struct TaskLauncher::Task {
  std::string task_id;
  int64_t sampled_rss_kib = 0;  // the most SampleMemory saw (memory only)
  Phase phase = Phase::kStarting;
  std::vector<std::string> argv;
  std::string workdir;
  std::string log_path;
  std::string boot_id;
  pid_t shim_pid = 0;
  int64_t shim_start_ticks = 0;
  pid_t task_pid = 0;
  int64_t task_start_ticks = 0;
  int64_t start_unix_ms = 0;
  int64_t max_disconnect_ms = 0;
  bool has_cgroup = false;
  // True while the shim is our child and waitpid() tells us when it ends;
  // adopted tasks are watched through their lock and exit file instead.
  bool owned = false;
  // Journals from before the lock existed: liveness by pid and start time.
  bool legacy = false;
  bool stop_requested = false;
  bool node_shutdown = false;         // the stop is the node's shutdown, not the job's
  int64_t stop_deadline_unix_ms = 0;  // persisted, so a restarted agent keeps the deadline
  int64_t kill_at_ms = 0;             // clock_ time of the SIGKILL
  int64_t term_at_ms = 0;             // clock_ time of the SIGTERM (later than the stop: a checkpoint window)
  bool term_sent = false;
  bool kill_sent = false;
  // A checkpoint signal sent by Stop (TaskExit's fields of the same names);
  // the window's end is clock_ time.
  int64_t checkpoint_asked_unix_ms = 0;
  int64_t checkpoint_window_ms = 0;
  int64_t checkpoint_window_end_ms = 0;
  bool checkpoint_window_ran_out = false;
  std::string load_error;  // why Adopt() could not read the journal
  // Set once ended (phase kEnded); `reported` once Poll() returned it.
  TaskExit exit;
  bool reported = false;
};

TaskLauncher::TaskLauncher(TaskLauncherOptions options) : options_(std::move(options)), boot_id_(BootId()) {
  if (options_.clock == nullptr) owned_clock_ = std::make_unique<MonotonicClock>();
  clock_ = options_.clock != nullptr ? options_.clock : owned_clock_.get();
}

TaskLauncher::~TaskLauncher() = default;

absl::StatusOr<std::unique_ptr<TaskLauncher>> TaskLauncher::Create(TaskLauncherOptions options) {
  if (options.state_dir.empty()) return absl::InvalidArgumentError("TaskLauncherOptions.state_dir is required");
  if (options.log_dir.empty()) return absl::InvalidArgumentError("TaskLauncherOptions.log_dir is required");
  // Journals name commands and logs hold output: the agent's alone.
  if (absl::Status s = MakeDirs(options.state_dir, 0700); !s.ok()) return s;
  if (absl::Status s = MakeDirs(options.log_dir, 0700); !s.ok()) return s;
  auto launcher = std::unique_ptr<TaskLauncher>(new TaskLauncher(std::move(options)));
  // One named must be there; the one beside the program is used only if it is.
  const std::string& named = launcher->options_.shim_path;
  if (!named.empty() && access(named.c_str(), X_OK) != 0) return ErrnoError(errno, "shim program " + named);
  launcher->shim_path_ = named.empty() ? shim::ShimBesideSelf() : named;
  absl::StatusOr<std::unique_ptr<CgroupManager>> cgroups = CgroupManager::Create(launcher->options_.cgroups);
  if (cgroups.ok()) {
    launcher->cgroups_ = *std::move(cgroups);
  } else {
    launcher->cgroup_status_ = std::string(cgroups.status().message());
  }
  return launcher;
}

std::string TaskLauncher::StateFile(const std::string& task_id, absl::string_view suffix) const {
  return absl::StrCat(options_.state_dir, "/", task_id, suffix);
}
std::string TaskLauncher::LogPath(const std::string& task_id) const {
  return absl::StrCat(options_.log_dir, "/", task_id, ".log");
}

void TaskLauncher::Failpoint(absl::string_view point) const {
  if (options_.failpoint) options_.failpoint(point);
}

absl::Status TaskLauncher::SaveState(const Task& task, bool durable) const {
  nlohmann::json j = {
      {"version", 2},
      {"task_id", task.task_id},
      {"phase", PhaseName(task.phase)},
      {"boot_id", task.boot_id},
      {"argv", task.argv},
      {"workdir", task.workdir},
      {"log_path", task.log_path},
      {"shim_pid", task.shim_pid},
      {"shim_start_ticks", task.shim_start_ticks},
      {"task_pid", task.task_pid},
      {"task_start_ticks", task.task_start_ticks},
      {"start_unix_ms", task.start_unix_ms},
      {"max_disconnect_ms", task.max_disconnect_ms},
      {"cgroup", task.has_cgroup},
      {"stop_requested", task.stop_requested},
      {"node_shutdown", task.node_shutdown},
      {"stop_deadline_unix_ms", task.stop_deadline_unix_ms},
  };
  if (task.phase == Phase::kEnded) j["exit"] = ExitToJson(task.exit);
  return WriteFileAtomically(StateFile(task.task_id, ".json"), j.dump(2) + "\n", durable);
}

void TaskLauncher::RemoveStateFiles(const std::string& task_id) const {
  // The journal goes last: a crash half-way leaves a journal that still
  // says how the task ended (or, before "ended", an exit record to read).
  for (absl::string_view suffix : {".exit", ".exit.tmp", ".pid", ".pid.tmp", ".spawn", ".lock", ".json.tmp", ".json"}) {
    unlink(StateFile(task_id, suffix).c_str());
  }
}

absl::StatusOr<LaunchedTask> TaskLauncher::Start(const TaskLaunch& launch) { return StartTask(launch, false); }

absl::StatusOr<LaunchedTask> TaskLauncher::StartHeld(const TaskLaunch& launch) { return StartTask(launch, true); }

void TaskLauncher::Accept(const std::string& task_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(task_id);
  if (it == held_.end()) return;
  tasks_.emplace(task_id, std::move(it->second));
  held_.erase(it);
}

absl::StatusOr<LaunchedTask> TaskLauncher::StartTask(const TaskLaunch& launch, bool hold) {
  if (absl::Status s = ValidateTaskId(launch.task_id); !s.ok()) return s;
  const std::string& id = launch.task_id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (tasks_.count(id) > 0 || starting_.count(id) > 0 || held_.count(id) > 0 || PathExists(StateFile(id, ".json"))) {
      return absl::AlreadyExistsError(absl::StrCat("task ", id, " was already started here (its journal exists)"));
    }
    starting_.insert(id);
  }
  std::unique_ptr<Task> task;
  absl::StatusOr<LaunchedTask> started = StartUnlocked(launch, task);
  std::lock_guard<std::mutex> lock(mu_);
  starting_.erase(id);
  if (started.ok()) (hold ? held_ : tasks_).emplace(id, std::move(task));
  return started;
}

absl::StatusOr<LaunchedTask> TaskLauncher::StartUnlocked(const TaskLaunch& launch, std::unique_ptr<Task>& task) {
  if (launch.argv.empty()) return absl::InvalidArgumentError("argv is empty");
  if (launch.cpu_milli < 0 || launch.memory_mib < 0) return absl::InvalidArgumentError("negative limit");
  const std::string& id = launch.task_id;
  if (launch.user.has_value() && geteuid() != 0 && launch.user->uid != geteuid()) {
    return absl::PermissionDeniedError(
        absl::StrCat("cannot run task ", id, " as uid ", launch.user->uid, ": the agent is not root"));
  }
  if (!launch.workdir.empty() && !IsDirectory(launch.workdir)) {
    return absl::InvalidArgumentError(absl::StrCat("workdir '", launch.workdir, "' is not an existing directory"));
  }
  // Absolute, because the command is resolved here but run after the chdir.
  std::string workdir = launch.workdir;
  if (!workdir.empty() && workdir[0] != '/') {
    char cwd[PATH_MAX];
    if (getcwd(cwd, sizeof(cwd)) == nullptr) return ErrnoError(errno, "getcwd");
    workdir = absl::StrCat(cwd, "/", workdir);
  }

  // The task's environment: launch.env, over the agent's unless clean_env.
  std::vector<std::string> env_strings;
  if (!launch.clean_env) {
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      absl::string_view entry(*e);
      size_t eq = entry.find('=');
      if (eq != absl::string_view::npos && launch.env.count(std::string(entry.substr(0, eq))) > 0) continue;
      env_strings.emplace_back(entry);
    }
  }
  for (const auto& [key, value] : launch.env) {
    if (key.empty() || key.find('=') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad environment variable name '", key, "'"));
    }
    env_strings.push_back(absl::StrCat(key, "=", value));
  }
  std::string path_var = kDefaultCommandPath;
  if (auto it = launch.env.find("PATH"); it != launch.env.end()) {
    path_var = it->second;
  } else if (const char* agent_path = getenv("PATH"); agent_path != nullptr && !launch.clean_env) {
    path_var = agent_path;
  }
  if (launch.clean_env && launch.env.count("PATH") == 0) env_strings.push_back(absl::StrCat("PATH=", path_var));
  absl::StatusOr<std::string> exec_path = ResolveCommand(launch.argv[0], path_var, workdir);
  if (!exec_path.ok()) return exec_path.status();

  // Leftovers of an earlier task with this id (forgotten half-way) would be
  // taken for ours.
  RemoveStateFiles(id);

  LaunchedTask result;
  result.task_id = id;
  result.log_path = LogPath(id);
  CgroupLimits limits{.cpu_milli = launch.cpu_milli,
                      .memory_bytes = launch.memory_mib * 1024 * 1024,
                      .cpus = launch.cpus,
                      .mems = launch.mems,
                      .devices = launch.device_rules};
  const bool wants_limits = limits.cpu_milli > 0 || limits.memory_bytes > 0 || !limits.cpus.empty() ||
                            !limits.mems.empty() || limits.devices.has_value();
  bool has_cgroup = false;
  if (cgroups_ != nullptr) {
    absl::StatusOr<std::vector<std::string>> warnings = cgroups_->CreateGroup(id, limits);
    if (warnings.ok()) {
      has_cgroup = true;
      result.warnings = *std::move(warnings);
      result.cgroup_dir = cgroups_->GroupDir(id);
    } else if (absl::IsInvalidArgument(warnings.status())) {
      cgroups_->RemoveGroup(id).IgnoreError();
      return warnings.status();
    } else {
      cgroups_->RemoveGroup(id).IgnoreError();  // whatever part of it was made
      result.warnings.push_back(
          absl::StrCat("running without a cgroup, so without limits: ", warnings.status().message()));
    }
  } else if (wants_limits) {
    result.warnings.push_back(absl::StrCat("running without limits: no cgroups (", cgroup_status_, ")"));
  }
  if (options_.require_limits && wants_limits && !result.warnings.empty()) {
    if (has_cgroup) cgroups_->RemoveGroup(id).IgnoreError();
    return absl::FailedPreconditionError(
        absl::StrCat("cannot enforce the task's limits: ", absl::StrJoin(result.warnings, "; ")));
  }

  task = std::make_unique<Task>();
  task->task_id = id;
  task->phase = Phase::kStarting;
  task->boot_id = boot_id_;
  task->argv = launch.argv;
  task->workdir = workdir;
  task->log_path = result.log_path;
  task->has_cgroup = has_cgroup;
  task->max_disconnect_ms = options_.lease_path.empty() ? 0 : launch.max_disconnect_ms;
  task->start_unix_ms = UnixMillis();
  // The journal before the fork: from here on a restarted agent knows this
  // id may have started and never starts it again (see the header).
  if (absl::Status s = SaveState(*task, /*durable=*/true); !s.ok()) {
    if (has_cgroup) cgroups_->RemoveGroup(id).IgnoreError();
    unlink(StateFile(id, ".json").c_str());
    return absl::Status(s.code(), absl::StrCat("cannot journal task ", id, ": ", s.message()));
  }
  Failpoint("journaled");
  auto abandon = [&](absl::Status why) {
    RemoveStateFiles(id);
    if (has_cgroup) cgroups_->RemoveGroup(id).IgnoreError();
    return why;
  };

  // Everything the shim and the task touch, laid out before the fork.
  ExecArgv exec = MakeExecArgv(launch.argv, *exec_path);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> procs_files;
  std::string cgroup_kill_file;
  if (has_cgroup) {
    procs_files = cgroups_->ProcsFiles(id);
    if (cgroups_->version() == CgroupVersion::kV2) {
      const std::string kill_file = cgroups_->GroupDir(id) + "/cgroup.kill";
      if (PathExists(kill_file)) cgroup_kill_file = kill_file;
    }
  }
  std::vector<const char*> procs_ptrs;
  for (const std::string& f : procs_files) procs_ptrs.push_back(f.c_str());
  const std::string exit_path = StateFile(id, ".exit"), exit_tmp_path = StateFile(id, ".exit.tmp");
  const std::string pid_path = StateFile(id, ".pid"), pid_tmp_path = StateFile(id, ".pid.tmp");
  const std::string spawn_path = StateFile(id, ".spawn");
  const std::string lock_path = StateFile(id, ".lock");

  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) return abandon(ErrnoError(errno, absl::StrCat("create ", lock_path)));
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    close(lock_fd);
    return abandon(ErrnoError(err, absl::StrCat("flock ", lock_path)));
  }
  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) {
    const int err = errno;
    close(lock_fd);
    return abandon(ErrnoError(err, "pipe"));
  }
  // Keep the pipe and the lock off 0-2 in case the agent runs with those
  // closed: the shim is about to replace them.
  for (int* fd : {&report[0], &report[1], &lock_fd}) {
    if (*fd >= 0 && *fd < 3) {
      int moved = fcntl(*fd, F_DUPFD_CLOEXEC, 3);
      close(*fd);
      *fd = moved;
    }
  }
  if (report[0] < 0 || report[1] < 0 || lock_fd < 0) return abandon(ErrnoError(errno, "fcntl(F_DUPFD_CLOEXEC)"));

  std::vector<gid_t> groups;
  shim::ShimPlan plan;
  if (launch.user.has_value()) {
    groups = launch.user->groups;
    plan.identity.uid = launch.user->uid;
    plan.identity.gid = launch.user->gid;
    plan.identity.groups = groups.data();
    plan.identity.num_groups = groups.size();
  }
  plan.log_path = result.log_path.c_str();
  plan.workdir = workdir.empty() ? nullptr : workdir.c_str();
  plan.exit_path = exit_path.c_str();
  plan.exit_tmp_path = exit_tmp_path.c_str();
  plan.pid_path = pid_path.c_str();
  plan.pid_tmp_path = pid_tmp_path.c_str();
  plan.spawn_path = spawn_path.c_str();
  plan.exec_path = exec_path->c_str();
  plan.argv = exec.argv.data();
  plan.sh_argv = exec.sh_argv.data();
  plan.envp = envp.data();
  plan.procs_files = procs_ptrs.data();
  plan.num_procs_files = procs_ptrs.size();
  plan.cgroup_kill_file = cgroup_kill_file.empty() ? nullptr : cgroup_kill_file.c_str();
  plan.report_fd = report[1];
  plan.lock_fd = lock_fd;
  if (task->max_disconnect_ms > 0) {
    plan.lease_path = options_.lease_path.c_str();
    plan.max_disconnect_ms = task->max_disconnect_ms;
    plan.grace_ms = launch.lease_grace_ms;
  }
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    plan.max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20));
  }

  pid_t shim_pid = -1;
  absl::Status spawned;
  if (!shim_path_.empty()) {
    absl::StatusOr<pid_t> pid = shim::SpawnShim(shim_path_, plan);
    spawned = pid.status();
    if (pid.ok()) shim_pid = *pid;
  } else if ((shim_pid = fork()) == 0) {
    close(report[0]);
    shim::RunShim(plan);
  } else if (shim_pid < 0) {
    spawned = ErrnoError(errno, "fork");
  }
  close(report[1]);
  close(lock_fd);  // the shim holds the lock now; only it may
  if (shim_pid < 0) {
    close(report[0]);
    return abandon(spawned);
  }
  Failpoint("forked");
  int32_t task_pid = -1;
  ssize_t got = 0;
  while ((got = read(report[0], &task_pid, sizeof(task_pid))) < 0 && errno == EINTR) {
  }
  close(report[0]);
  if (got != static_cast<ssize_t>(sizeof(task_pid))) {
    // The shim died before it could say anything (killed from outside), so
    // before forking the task: nothing ran.
    int status = 0;
    waitpid(shim_pid, &status, 0);
    return abandon(absl::InternalError(
        absl::StrCat("the shim of task ", id, " died before starting it",
                     shim_path_.empty() ? "" : absl::StrCat(" (is ", shim_path_, " of this icos version?)"))));
  }

  task->shim_pid = shim_pid;
  // The shim is our child, so its /proc entry lasts until we reap it; the
  // task may already be gone, in which case its start time stays unknown (0).
  if (absl::StatusOr<ProcStat> st = ReadProcStat(shim_pid); st.ok()) task->shim_start_ticks = st->start_ticks;
  if (task_pid > 0) {
    task->task_pid = task_pid;
    if (absl::StatusOr<ProcStat> st = ReadProcStat(task_pid); st.ok()) task->task_start_ticks = st->start_ticks;
  }
  task->phase = Phase::kRunning;
  task->owned = true;
  // The pids help a restarted agent signal the task; losing them loses
  // nothing the lock and the shim's pid file do not also say.
  SaveState(*task, /*durable=*/false).IgnoreError();
  Failpoint("recorded");
  result.shim_pid = shim_pid;
  result.task_pid = task->task_pid;
  result.start_unix_ms = task->start_unix_ms;
  return result;
}

void TaskLauncher::LoadPids(Task& task) const {
  if (task.task_pid != 0 || task.legacy) return;
  // The agent crashed before journaling the pids; the shim wrote them (or is
  // about to: then the next call finds them).
  absl::StatusOr<std::string> pids = ReadFile(StateFile(task.task_id, ".pid"));
  std::vector<std::string> parts;
  if (pids.ok()) parts = absl::StrSplit(absl::StripAsciiWhitespace(*pids), ' ');
  if (parts.size() == 2) {
    (void)absl::SimpleAtoi(parts[0], &task.task_pid);
    (void)absl::SimpleAtoi(parts[1], &task.shim_pid);
  }
}

void TaskLauncher::KillNow(Task& task) {
  LoadPids(task);
  // The process group catches the task's children; the cgroup also catches
  // those that left the group (setsid, daemons).
  if (task.task_pid > 0) kill(-task.task_pid, SIGKILL);
  if (task.has_cgroup && cgroups_ != nullptr) cgroups_->KillAll(task.task_id).IgnoreError();
  task.kill_sent = true;
}

absl::Status TaskLauncher::Stop(const std::string& task_id, int64_t grace_ms, bool node_shutdown,
                                CheckpointFirst checkpoint) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return absl::NotFoundError(absl::StrCat("no task ", task_id));
  Task& task = *it->second;
  if (task.phase == Phase::kEnded) return absl::OkStatus();
  LoadPids(task);
  if (grace_ms < 0) grace_ms = options_.default_grace_ms;
  const int64_t now = clock_->NowMs();
  // A checkpoint window only before a graceful stop: killing at once means at once.
  const int64_t window = checkpoint.signal > 0 && grace_ms > 0 ? std::max<int64_t>(0, checkpoint.window_ms) : 0;
  task.node_shutdown |= node_shutdown;
  if (task.stop_requested) {
    task.kill_at_ms = std::min(task.kill_at_ms, now + window + grace_ms);
    task.term_at_ms = std::min(task.term_at_ms, now + window);
  } else {
    task.stop_requested = true;
    task.term_at_ms = now + window;
    task.kill_at_ms = now + window + grace_ms;
    task.stop_deadline_unix_ms = UnixMillis() + window + grace_ms;
    // Best effort: losing it only means a restarted agent reports the task
    // as ended on its own rather than Cancelled.
    SaveState(task, /*durable=*/false).IgnoreError();
    // To the main process only: its children (data loaders, say) may not
    // expect the signal, and its default action ends a process.
    if (task.task_pid > 0 && window > 0 && kill(task.task_pid, checkpoint.signal) == 0) {
      task.checkpoint_asked_unix_ms = UnixMillis();
      task.checkpoint_window_ms = window;
      task.checkpoint_window_end_ms = now + window;
    }
  }
  if (grace_ms == 0 && !task.kill_sent) KillNow(task);
  SendTermIfDue(task, now);
  return absl::OkStatus();
}

void TaskLauncher::SendTermIfDue(Task& task, int64_t now) {
  if (!task.stop_requested || task.term_sent || task.kill_sent || now < task.term_at_ms) return;
  LoadPids(task);
  if (task.task_pid > 0) kill(-task.task_pid, SIGTERM);
  task.term_sent = true;
  // Cut short by its own window, not by a later stop that allowed none.
  task.checkpoint_window_ran_out = task.checkpoint_asked_unix_ms > 0 && now >= task.checkpoint_window_end_ms;
}

void TaskLauncher::ReleaseCgroup(const std::string& task_id) {
  if (cgroups_ == nullptr) return;
  // Processes the task left behind (daemons, orphans) die with it.
  cgroups_->KillAll(task_id).IgnoreError();
  if (!cgroups_->RemoveGroup(task_id).ok()) cgroups_to_remove_.push_back(task_id);
}

TaskExit TaskLauncher::Finish(Task& task, const int* shim_wait_status) {
  TaskExit exit;
  exit.task_id = task.task_id;
  exit.checkpoint_asked_unix_ms = task.checkpoint_asked_unix_ms;
  exit.checkpoint_window_ms = task.checkpoint_window_ms;
  exit.checkpoint_window_ran_out = task.checkpoint_window_ran_out;
  absl::StatusOr<ExitRecord> record = ReadExitRecord(StateFile(task.task_id, ".exit"));
  if (!task.owned && task.shim_pid > 0) {
    // An adopted shim may still be our child (a new TaskLauncher in the same
    // process); reap it so it does not linger as a zombie.
    absl::StatusOr<ProcStat> st = ReadProcStat(task.shim_pid);
    if (st.ok() && (task.shim_start_ticks == 0 || st->start_ticks == task.shim_start_ticks)) {
      int ignored = 0;
      waitpid(task.shim_pid, &ignored, WNOHANG);
    }
  }
  if (!record.ok()) {
    // No record: the shim was killed, or the journal was unreadable. The
    // task may still run in its cgroup or process group; it must not
    // outlive the report that it was lost.
    KillNow(task);
    exit.kind = TaskExitKind::kLost;
    exit.end_unix_ms = UnixMillis();
    exit.reason = task.load_error.empty()
                      ? absl::StrCat("the task's shim (pid ", task.shim_pid, ") ended without recording an exit status")
                      : absl::StrCat("unreadable journal: ", task.load_error);
    if (shim_wait_status != nullptr && WIFSIGNALED(*shim_wait_status)) {
      absl::StrAppend(&exit.reason, " (shim killed by ", SignalName(WTERMSIG(*shim_wait_status)), ")");
    } else if (!absl::IsNotFound(record.status())) {
      absl::StrAppend(&exit.reason, ": ", record.status().message());
    }
  } else {
    exit.end_unix_ms = record->end_unix_ms > 0 ? record->end_unix_ms : UnixMillis();
    exit.max_rss_kib = std::max(record->max_rss_kib, task.sampled_rss_kib);
    const int status = record->wait_status;
    if (WIFEXITED(status)) exit.exit_code = WEXITSTATUS(status);
    if (WIFSIGNALED(status)) {
      exit.signal = WTERMSIG(status);
      exit.exit_code = 128 + exit.signal;
    }
    int64_t oom_kills = 0;
    if (task.has_cgroup && cgroups_ != nullptr) {
      oom_kills = cgroups_->OomKillCount(task.task_id).value_or(0);
    }
    const std::string command = task.argv.empty() ? std::string() : task.argv[0];
    const std::string error = std::strerror(record->err);
    if (record->stage != shim::kStageNone) {
      exit.kind = TaskExitKind::kLaunchFailed;
      exit.signal = 0;
      exit.exit_code = record->err == ENOENT ? 127 : 126;
      switch (record->stage) {
        case shim::kStageLog:
          exit.reason = absl::StrCat("cannot open log file ", task.log_path, ": ", error);
          break;
        case shim::kStageChdir:
          exit.reason = absl::StrCat("cannot change to workdir '", task.workdir, "': ", error);
          break;
        case shim::kStageFork:
          exit.reason = absl::StrCat("the shim could not fork the task: ", error);
          break;
        case shim::kStageCgroup:
          exit.reason = absl::StrCat("the task could not join its cgroup: ", error);
          break;
        case shim::kStageExec:
          exit.reason = record->err == ENOENT ? absl::StrCat("command '", command, "' not found (exec: ", error, ")")
                                              : absl::StrCat("exec '", command, "' failed: ", error);
          break;
        case shim::kStageJournal:
          exit.reason = absl::StrCat("the shim could not record the start (", error, "); the task was not started");
          break;
        case shim::kStageIdentity:
          exit.reason = absl::StrCat("cannot become the task's user: ", error);
          break;
        default:
          exit.reason = absl::StrCat("launch failed at stage ", record->stage, ": ", error);
      }
    } else if (oom_kills > 0 && (exit.signal == SIGKILL || exit.exit_code == 128 + SIGKILL)) {
      // A shell that ran the victim exits 137 itself instead of dying of
      // SIGKILL, hence the exit code check too.
      exit.kind = TaskExitKind::kOOMKilled;
      exit.reason = "OOMKilled";
    } else if (record->lease_stop) {
      exit.kind = TaskExitKind::kLeaseExpired;
      exit.reason = absl::StrCat("stopped: the node lost contact with the controller for ",
                                 task.max_disconnect_ms / 1000, " s (its lease ended)");
    } else if (task.stop_requested && task.node_shutdown) {
      exit.kind = TaskExitKind::kNodeShutdown;
      exit.reason = "stopped: its node shut down (the node's icos agent stopped)";
    } else if (task.stop_requested) {
      exit.kind = TaskExitKind::kCancelled;
      exit.reason =
          task.kill_sent ? "stopped: killed with SIGKILL after the grace period" : "stopped: ended after SIGTERM";
      if (exit.signal == 0) absl::StrAppend(&exit.reason, " (exit code ", exit.exit_code, ")");
    } else if (exit.signal != 0) {
      exit.kind = TaskExitKind::kSignaled;
      exit.reason = absl::StrCat("killed by ", SignalName(exit.signal));
    } else {
      exit.kind = TaskExitKind::kExited;
      exit.reason = absl::StrCat("exited with code ", exit.exit_code);
    }
    // Why it failed is usually in its last words.
    if (exit.kind == TaskExitKind::kSignaled || (exit.kind == TaskExitKind::kExited && exit.exit_code != 0)) {
      if (std::string tail = LogTail(task.log_path); !tail.empty())
        absl::StrAppend(&exit.reason, "; last output: ", tail);
    }
  }
  if (task.has_cgroup) ReleaseCgroup(task.task_id);
  task.phase = Phase::kEnded;
  task.exit = exit;
  // Durable: once journaled, this exit is what every later report says.
  // Should the write fail, the exit record is still there to read again.
  SaveState(task, /*durable=*/true).IgnoreError();
  Failpoint("ended");
  return exit;
}

std::vector<TaskExit> TaskLauncher::Poll() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<TaskExit> exits;
  const int64_t now = clock_->NowMs();
  for (auto& [id, owned_task] : tasks_) {
    Task& task = *owned_task;
    if (task.phase == Phase::kEnded) {
      if (!task.reported) {  // ended before this launcher adopted it
        task.reported = true;
        exits.push_back(task.exit);
      }
      continue;
    }
    bool ended = false;
    int shim_status = 0;
    bool have_shim_status = false;
    if (task.owned) {
      pid_t r = waitpid(task.shim_pid, &shim_status, WNOHANG);
      if (r == task.shim_pid) {
        ended = true;
        have_shim_status = true;
      } else if (r < 0 && errno == ECHILD) {
        task.owned = false;  // someone else reaped it; fall back to the exit file
      }
    }
    if (!task.owned) {
      if (PathExists(StateFile(id, ".exit"))) {
        ended = true;
      } else if (task.legacy) {
        ended =
            !ProcessAlive(task.shim_pid, task.shim_start_ticks) && !ProcessAlive(task.task_pid, task.task_start_ticks);
      } else {
        // Free lock: the shim is gone, with its record written (read below)
        // or without one (Lost).
        absl::StatusOr<bool> held = LockHeld(StateFile(id, ".lock"));
        ended = held.ok() && !*held;
      }
    }
    if (!ended) {
      SendTermIfDue(task, now);
      if (task.stop_requested && !task.kill_sent && now >= task.kill_at_ms) KillNow(task);
      continue;
    }
    task.reported = true;
    exits.push_back(Finish(task, have_shim_status ? &shim_status : nullptr));
  }
  for (auto it = cgroups_to_remove_.begin(); it != cgroups_to_remove_.end();) {
    if (cgroups_ != nullptr && !cgroups_->RemoveGroup(*it).ok()) {
      cgroups_->KillAll(*it).IgnoreError();
      ++it;
    } else {
      it = cgroups_to_remove_.erase(it);
    }
  }
  return exits;
}

void TaskLauncher::SampleMemory() {
  if (cgroups_ == nullptr) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, task] : tasks_) {
    if (task->phase != Phase::kRunning || !task->has_cgroup) continue;
    if (absl::StatusOr<int64_t> kib = cgroups_->ResidentKib(id); kib.ok()) {
      task->sampled_rss_kib = std::max(task->sampled_rss_kib, *kib);
    }
  }
}

absl::Status TaskLauncher::Forget(const std::string& task_id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return absl::NotFoundError(absl::StrCat("no task ", task_id));
  if (it->second->phase != Phase::kEnded) {
    return absl::FailedPreconditionError(absl::StrCat("task ", task_id, " has not ended"));
  }
  Failpoint("forgetting");
  RemoveStateFiles(task_id);
  tasks_.erase(it);
  return absl::OkStatus();
}

std::unique_ptr<TaskLauncher::Task> TaskLauncher::LoadJournal(const std::string& id) {
  auto task = std::make_unique<Task>();
  task->task_id = id;
  absl::StatusOr<std::string> text = ReadFile(StateFile(id, ".json"));
  nlohmann::json j;
  if (text.ok()) j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!text.ok() || !j.is_object()) {
    // Unreadable: nothing to watch. Keep it as a task whose processes are
    // unknown so the next Poll() reports it (Lost, unless an exit file says more).
    task->load_error = text.ok() ? absl::StrCat(StateFile(id, ".json"), " is not a JSON object")
                                 : std::string(text.status().message());
    task->legacy = true;
    return task;
  }
  std::string phase;
  try {
    phase = j.value("phase", "");
    task->boot_id = j.value("boot_id", "");
    task->argv = j.value("argv", std::vector<std::string>{});
    task->workdir = j.value("workdir", std::string());
    task->log_path = j.value("log_path", LogPath(id));
    task->shim_pid = j.value("shim_pid", 0);
    task->shim_start_ticks = j.value("shim_start_ticks", int64_t{0});
    task->task_pid = j.value("task_pid", 0);
    task->task_start_ticks = j.value("task_start_ticks", int64_t{0});
    task->start_unix_ms = j.value("start_unix_ms", int64_t{0});
    task->max_disconnect_ms = j.value("max_disconnect_ms", int64_t{0});
    task->has_cgroup = j.value("cgroup", false) && cgroups_ != nullptr;
    task->stop_requested = j.value("stop_requested", false);
    task->node_shutdown = j.value("node_shutdown", false);
    task->stop_deadline_unix_ms = j.value("stop_deadline_unix_ms", int64_t{0});
    if (phase == "ended") {
      task->phase = Phase::kEnded;
      task->exit = ExitFromJson(id, j.value("exit", nlohmann::json::object()));
      return task;
    }
  } catch (const nlohmann::json::exception&) {
    // A field of the wrong type: treat like an unreadable file.
    task = std::make_unique<Task>();
    task->task_id = id;
    task->legacy = true;
    task->load_error = absl::StrCat(StateFile(id, ".json"), " has a field of the wrong type");
    return task;
  }
  task->legacy = phase.empty();  // written before journals had phases and locks
  task->phase = phase == "starting" ? Phase::kStarting : Phase::kRunning;
  if (task->legacy) return task;
  if (!task->boot_id.empty() && !boot_id_.empty() && task->boot_id != boot_id_) {
    // Every process of that boot is gone; what they did before is unknown.
    task->phase = Phase::kEnded;
    task->exit = {.task_id = id,
                  .kind = TaskExitKind::kLost,
                  .reason = "the node rebooted while the task ran",
                  .end_unix_ms = UnixMillis()};
    SaveState(*task, /*durable=*/true).IgnoreError();
    return task;
  }
  // The order matters: a shim alive now may write its marker and record
  // after any check, but never after releasing its lock. So: the lock
  // first; once it is free, the markers it left are final.
  absl::StatusOr<bool> held = LockHeld(StateFile(id, ".lock"));
  if (held.ok() && *held) {
    LoadPids(*task);
    return task;
  }
  if (!PathExists(StateFile(id, ".spawn")) && !PathExists(StateFile(id, ".exit"))) {
    // Journaled, but the shim died (or was never forked) before marking the
    // spawn: the task never ran and no process of it can appear any more.
    if (task->has_cgroup) cgroups_->RemoveGroup(id).IgnoreError();
    RemoveStateFiles(id);
    return nullptr;
  }
  return task;  // ended: Poll() reads the exit record, or reports it Lost
}

std::vector<std::string> TaskLauncher::Adopt() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> adopted;
  DIR* dir = opendir(options_.state_dir.c_str());
  if (dir == nullptr) return adopted;
  std::vector<std::string> ids;
  while (struct dirent* entry = readdir(dir)) {
    absl::string_view name = entry->d_name;
    if (absl::ConsumeSuffix(&name, ".json") && ValidateTaskId(std::string(name)).ok()) ids.emplace_back(name);
  }
  closedir(dir);
  std::sort(ids.begin(), ids.end());
  const int64_t now_ms = clock_->NowMs();
  const int64_t now_unix_ms = UnixMillis();
  for (const std::string& id : ids) {
    if (tasks_.count(id) > 0) continue;
    std::unique_ptr<Task> task = LoadJournal(id);
    if (task == nullptr) {
      never_started_.push_back(id);
      continue;
    }
    if (task->stop_requested) {
      // Whether SIGTERM went out is not journaled: send it (again) now.
      task->term_at_ms = now_ms;
      task->kill_at_ms = now_ms + std::max<int64_t>(0, task->stop_deadline_unix_ms - now_unix_ms);
    }
    bool alive = false;
    if (task->phase != Phase::kEnded && !PathExists(StateFile(id, ".exit"))) {
      if (task->legacy) {
        alive = ProcessAlive(task->shim_pid, task->shim_start_ticks) ||
                ProcessAlive(task->task_pid, task->task_start_ticks);
      } else {
        absl::StatusOr<bool> held = LockHeld(StateFile(id, ".lock"));
        alive = held.ok() && *held;
      }
    }
    if (alive) adopted.push_back(id);
    tasks_.emplace(id, std::move(task));
  }
  ReapOrphanGroups();
  return adopted;
}

void TaskLauncher::ReapOrphanGroups() {
  if (cgroups_ == nullptr) return;
  // A group with no journal holds processes nobody will report or stop (the
  // state directory was lost, or a crash came between making the group and
  // journaling): the controller will count them lost and may run their
  // tasks elsewhere, so they must not run on here.
  for (const std::string& id : cgroups_->ListGroups()) {
    if (tasks_.count(id) > 0 || PathExists(StateFile(id, ".json"))) continue;
    cgroups_->KillAll(id).IgnoreError();
    if (!cgroups_->RemoveGroup(id).ok()) cgroups_to_remove_.push_back(id);
    orphans_reaped_.push_back(id);
  }
}

bool TaskLauncher::Knows(const std::string& task_id) const {
  std::lock_guard<std::mutex> lock(mu_);
  return tasks_.count(task_id) > 0 || starting_.count(task_id) > 0 || held_.count(task_id) > 0 ||
         PathExists(StateFile(task_id, ".json"));
}

std::vector<std::string> TaskLauncher::Running() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> ids;
  for (const auto& [id, task] : tasks_) {
    if (task->phase != Phase::kEnded) ids.push_back(id);
  }
  return ids;  // std::map keeps them sorted
}

}  // namespace icos::agent
