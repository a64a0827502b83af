#include "agent/launcher.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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
#include "agent/sys_util.h"
#include "nlohmann/json.hpp"

extern char** environ;

namespace icos::agent {
namespace {

constexpr size_t kMaxTaskIdLength = 200;
// execvp's search path when PATH is unset (glibc's confstr(_CS_PATH)).
constexpr char kDefaultPath[] = "/bin:/usr/bin";

// steady_clock behind the Clock interface. Its origin is arbitrary (boot), so
// it is only fit for measuring intervals, which is all the launcher does.
class MonotonicClock final : public icos::Clock {
 public:
  int64_t NowMs() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// Where a launch failed after the fork; recorded in the exit file.
enum LaunchStage : int32_t {
  kStageNone = 0,
  kStageLog = 1,
  kStageChdir = 2,
  kStageFork = 3,
  kStageCgroup = 4,
  kStageExec = 5,
};

// ---------------------------------------------------------------------------
// Between fork and exec: async-signal-safe code only. No allocation, no
// locks, no stdio, no errno-to-string; just syscalls on data prepared before
// the fork (ShimPlan).
// ---------------------------------------------------------------------------

struct ShimPlan {
  const char* log_path = nullptr;
  const char* workdir = nullptr;  // nullptr: keep the agent's
  const char* exit_path = nullptr;
  const char* exit_tmp_path = nullptr;
  const char* exec_path = nullptr;
  char* const* argv = nullptr;
  char* const* sh_argv = nullptr;  // "/bin/sh <exec_path> <args>": execvp's answer to ENOEXEC
  char* const* envp = nullptr;
  const char* const* procs_files = nullptr;
  size_t num_procs_files = 0;
  int report_fd = -1;  // shim -> agent: the task pid (int32), or -1
  int max_fd = 1024;   // close() fallback bound when close_range is missing
};

size_t FormatInt(int64_t value, char* buf) {  // buf: >= 21 bytes
  char tmp[21];
  size_t n = 0;
  uint64_t v = value < 0 ? static_cast<uint64_t>(-(value + 1)) + 1 : static_cast<uint64_t>(value);
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  size_t len = 0;
  if (value < 0) buf[len++] = '-';
  while (n > 0) buf[len++] = tmp[--n];
  return len;
}

bool WriteAll(int fd, const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

// Reads up to `size` bytes; fewer only at EOF. Returns the count, -1 on error.
ssize_t ReadFull(int fd, void* data, size_t size) {
  char* p = static_cast<char*>(data);
  size_t done = 0;
  while (done < size) {
    ssize_t n = read(fd, p + done, size - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    if (n == 0) break;
    done += static_cast<size_t>(n);
  }
  return static_cast<ssize_t>(done);
}

void CloseRange(int first, int last_or_max, int max_fd) {
  if (first > last_or_max) return;
#ifdef SYS_close_range
  if (syscall(SYS_close_range, static_cast<unsigned>(first), static_cast<unsigned>(last_or_max), 0u) == 0) return;
#endif
  for (int fd = first; fd <= last_or_max && fd < max_fd; ++fd) close(fd);
}

// Keeps 0, 1, 2 and `keep`: the agent's sockets and files must not leak into
// tasks (an open listening socket would keep the agent's port busy).
void CloseFdsExcept(int keep, int max_fd) {
  CloseRange(3, keep - 1, max_fd);
  CloseRange(keep + 1, INT32_MAX, max_fd);
}

[[noreturn]] void FailTask(int err_fd, int32_t stage, int err) {
  int32_t msg[2] = {stage, err};
  WriteAll(err_fd, msg, sizeof(msg));
  _exit(err == ENOENT ? 127 : 126);
}

// The grandchild: becomes the task.
[[noreturn]] void RunTask(const ShimPlan& plan, int err_fd) {
  // Its own process group, so Stop() can signal the task and everything it
  // forks without touching the shim.
  setpgid(0, 0);
  // exec keeps ignored signals and the signal mask; the task must start with
  // the defaults whatever the agent (or the shim) did to them.
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  for (int sig = 1; sig < NSIG; ++sig) {
    if (sig != SIGKILL && sig != SIGSTOP) sigaction(sig, &dfl, nullptr);
  }
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);

  char pid_text[24];
  size_t pid_len = FormatInt(getpid(), pid_text);
  for (size_t i = 0; i < plan.num_procs_files; ++i) {
    int fd = open(plan.procs_files[i], O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) FailTask(err_fd, kStageCgroup, errno);
    if (write(fd, pid_text, pid_len) != static_cast<ssize_t>(pid_len)) FailTask(err_fd, kStageCgroup, errno);
    close(fd);
  }
  execve(plan.exec_path, plan.argv, plan.envp);
  if (errno == ENOEXEC) execve(plan.sh_argv[0], plan.sh_argv, plan.envp);
  FailTask(err_fd, kStageExec, errno);
}

// fork() runs pthread_atfork handlers, which may take locks another thread of
// the agent held at the first fork; _Fork() (glibc >= 2.34) skips them and is
// async-signal-safe.
pid_t ShimFork() {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
  return _Fork();
#else
  return fork();
#endif
}

void AppendKeyValue(char* buf, size_t* len, const char* key, int64_t value) {
  size_t key_len = std::strlen(key);
  std::memcpy(buf + *len, key, key_len);
  *len += key_len;
  buf[(*len)++] = ' ';
  *len += FormatInt(value, buf + *len);
  buf[(*len)++] = '\n';
}

// The child of the agent: sets the stage, runs the task, records how it ended.
[[noreturn]] void RunShim(const ShimPlan& plan) {
  // Signals aimed at the agent's terminal or session, or at the task, must
  // not end the record keeper. SIGCHLD must be default for waitpid to work.
  struct sigaction act;
  std::memset(&act, 0, sizeof(act));
  sigemptyset(&act.sa_mask);
  act.sa_handler = SIG_IGN;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE}) sigaction(sig, &act, nullptr);
  act.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &act, nullptr);
  sigset_t empty;
  sigemptyset(&empty);
  sigprocmask(SIG_SETMASK, &empty, nullptr);
  // A session of its own: detached from the agent's terminal and process
  // group, so a Ctrl-C or a group kill aimed at the agent misses it.
  setsid();
  // Orphans of the task come to the shim instead of PID 1, which in some
  // containers never reaps them.
  prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

  int32_t stage = kStageNone;
  int err = 0;
  int null_fd = open("/dev/null", O_RDONLY);
  if (null_fd >= 0 && null_fd != 0) {
    dup2(null_fd, 0);
    close(null_fd);
  }
  int log_fd = open(plan.log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (log_fd < 0) {
    stage = kStageLog;
    err = errno;
  } else {
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (log_fd > 2) close(log_fd);
  }
  CloseFdsExcept(plan.report_fd, plan.max_fd);
  if (stage == kStageNone && plan.workdir != nullptr && chdir(plan.workdir) != 0) {
    stage = kStageChdir;
    err = errno;
  }

  int wait_status = 0;
  bool reported = false;
  if (stage == kStageNone) {
    // The task reports a failed exec through this pipe; a successful exec
    // closes it (O_CLOEXEC), so EOF means "running".
    int err_pipe[2];
    pid_t task = -1;
    if (pipe2(err_pipe, O_CLOEXEC) != 0) {
      stage = kStageFork;
      err = errno;
    } else if ((task = ShimFork()) == 0) {
      close(err_pipe[0]);
      close(plan.report_fd);
      RunTask(plan, err_pipe[1]);
    } else if (task < 0) {
      stage = kStageFork;
      err = errno;
      close(err_pipe[0]);
      close(err_pipe[1]);
    } else {
      // Set here as well as in the task so the group exists before the agent
      // learns the pid and may signal it.
      setpgid(task, task);
      close(err_pipe[1]);
      int32_t pid32 = task;
      WriteAll(plan.report_fd, &pid32, sizeof(pid32));
      close(plan.report_fd);
      reported = true;
      int32_t failure[2];
      if (ReadFull(err_pipe[0], failure, sizeof(failure)) == static_cast<ssize_t>(sizeof(failure))) {
        stage = failure[0];
        err = failure[1];
      }
      close(err_pipe[0]);
      // As a subreaper (below) the shim also inherits the task's orphaned
      // descendants; reap them as they die until the task itself ends.
      while (true) {
        int status = 0;
        pid_t reaped = waitpid(-1, &status, 0);
        if (reaped == task) {
          wait_status = status;
          break;
        }
        if (reaped < 0 && errno != EINTR) break;
      }
    }
  }
  if (!reported) {
    int32_t none = -1;
    WriteAll(plan.report_fd, &none, sizeof(none));
    close(plan.report_fd);
  }

  char record[256];
  size_t len = 0;
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  AppendKeyValue(record, &len, "wait_status", wait_status);
  AppendKeyValue(record, &len, "stage", stage);
  AppendKeyValue(record, &len, "errno", err);
  AppendKeyValue(record, &len, "end_unix_ms", static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1'000'000);
  int fd = open(plan.exit_tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd >= 0) {
    bool ok = WriteAll(fd, record, len);
    fsync(fd);
    close(fd);
    // rename() makes the record appear whole or not at all.
    if (ok) rename(plan.exit_tmp_path, plan.exit_path);
  }
  _exit(0);
}

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

std::string JoinPath(const std::string& dir, const std::string& path) {
  if (path.empty() || path[0] == '/' || dir.empty()) return path;
  return absl::StrCat(dir, "/", path);
}

enum class FileCheck { kExecutable, kMissing, kNotExecutable };

// Missing covers every stat() failure: a PATH entry the agent may not search
// (EACCES on /root/bin for an unprivileged agent) does not hold the command.
FileCheck CheckExecutable(const std::string& path, int* err) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    *err = errno;
    return FileCheck::kMissing;
  }
  if (!S_ISREG(st.st_mode)) {
    *err = EACCES;
    return FileCheck::kNotExecutable;
  }
  if (access(path.c_str(), X_OK) != 0) {
    *err = errno;
    return FileCheck::kNotExecutable;
  }
  return FileCheck::kExecutable;
}

// Where execvp would find argv[0], decided before forking so that a typo is an
// error of Start() rather than a task that dies at once.
absl::StatusOr<std::string> ResolveCommand(const std::string& command, const std::string& path_var,
                                           const std::string& workdir) {
  if (command.empty()) return absl::InvalidArgumentError("argv[0] is empty");
  int err = 0;
  if (command.find('/') != std::string::npos) {
    std::string path = JoinPath(workdir, command);
    switch (CheckExecutable(path, &err)) {
      case FileCheck::kExecutable:
        return path;
      case FileCheck::kMissing:
        return absl::NotFoundError(absl::StrCat("command '", command, "' not found: ", std::strerror(err)));
      case FileCheck::kNotExecutable:
        return absl::PermissionDeniedError(
            absl::StrCat("command '", command, "' is not an executable file: ", std::strerror(err)));
    }
  }
  bool found_unexecutable = false;
  for (absl::string_view dir : absl::StrSplit(path_var, ':')) {
    // An empty PATH entry means the current directory, as for execvp.
    std::string candidate = JoinPath(workdir, absl::StrCat(dir.empty() ? "." : dir, "/", command));
    FileCheck check = CheckExecutable(candidate, &err);
    if (check == FileCheck::kExecutable) return candidate;
    if (check == FileCheck::kNotExecutable) found_unexecutable = true;
  }
  if (found_unexecutable) {
    return absl::PermissionDeniedError(
        absl::StrCat("command '", command, "' found in PATH but not executable (PATH=", path_var, ")"));
  }
  return absl::NotFoundError(absl::StrCat("command '", command, "' not found in PATH (PATH=", path_var, ")"));
}

// Parsed <task_id>.exit.
struct ExitRecord {
  int wait_status = 0;
  int32_t stage = kStageNone;
  int err = 0;
  int64_t end_unix_ms = 0;
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
    }
  }
  if (found == 0) return absl::DataLossError(absl::StrCat(path, " has no wait_status"));
  return record;
}

std::string SignalName(int sig) {
  const char* abbrev = sigabbrev_np(sig);
  return abbrev != nullptr ? absl::StrCat("SIG", abbrev) : absl::StrCat("signal ", sig);
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
  }
  return "Unknown";
}

struct TaskLauncher::Task {
  std::string task_id;
  std::vector<std::string> argv;
  std::string workdir;
  std::string log_path;
  pid_t shim_pid = 0;
  int64_t shim_start_ticks = 0;
  pid_t task_pid = 0;
  int64_t task_start_ticks = 0;
  int64_t start_unix_ms = 0;
  bool has_cgroup = false;
  // True while the shim is our child and waitpid() tells us when it ends;
  // adopted tasks are watched through their exit file and /proc instead.
  bool owned = false;
  bool stop_requested = false;
  int64_t stop_deadline_unix_ms = 0;  // persisted, so a restarted agent keeps the deadline
  int64_t kill_at_ms = 0;             // clock_ time of the SIGKILL
  bool kill_sent = false;
  std::string load_error;  // why Adopt() could not read the state file
};

TaskLauncher::TaskLauncher(TaskLauncherOptions options) : options_(std::move(options)) {
  if (options_.clock == nullptr) owned_clock_ = std::make_unique<MonotonicClock>();
  clock_ = options_.clock != nullptr ? options_.clock : owned_clock_.get();
}

TaskLauncher::~TaskLauncher() = default;

absl::StatusOr<std::unique_ptr<TaskLauncher>> TaskLauncher::Create(TaskLauncherOptions options) {
  if (options.state_dir.empty()) return absl::InvalidArgumentError("TaskLauncherOptions.state_dir is required");
  if (options.log_dir.empty()) return absl::InvalidArgumentError("TaskLauncherOptions.log_dir is required");
  if (absl::Status s = MakeDirs(options.state_dir); !s.ok()) return s;
  if (absl::Status s = MakeDirs(options.log_dir); !s.ok()) return s;
  auto launcher = std::unique_ptr<TaskLauncher>(new TaskLauncher(std::move(options)));
  absl::StatusOr<std::unique_ptr<CgroupManager>> cgroups = CgroupManager::Create(launcher->options_.cgroups);
  if (cgroups.ok()) {
    launcher->cgroups_ = *std::move(cgroups);
  } else {
    launcher->cgroup_status_ = std::string(cgroups.status().message());
  }
  return launcher;
}

std::string TaskLauncher::StatePath(const std::string& task_id) const {
  return absl::StrCat(options_.state_dir, "/", task_id, ".json");
}
std::string TaskLauncher::ExitPath(const std::string& task_id) const {
  return absl::StrCat(options_.state_dir, "/", task_id, ".exit");
}
std::string TaskLauncher::LogPath(const std::string& task_id) const {
  return absl::StrCat(options_.log_dir, "/", task_id, ".log");
}

absl::Status TaskLauncher::SaveState(const Task& task) const {
  nlohmann::json j = {
      {"version", 1},
      {"task_id", task.task_id},
      {"argv", task.argv},
      {"workdir", task.workdir},
      {"log_path", task.log_path},
      {"shim_pid", task.shim_pid},
      {"shim_start_ticks", task.shim_start_ticks},
      {"task_pid", task.task_pid},
      {"task_start_ticks", task.task_start_ticks},
      {"start_unix_ms", task.start_unix_ms},
      {"cgroup", task.has_cgroup},
      {"stop_requested", task.stop_requested},
      {"stop_deadline_unix_ms", task.stop_deadline_unix_ms},
  };
  return WriteFileAtomically(StatePath(task.task_id), j.dump(2) + "\n");
}

absl::StatusOr<LaunchedTask> TaskLauncher::Start(const TaskLaunch& launch) {
  if (absl::Status s = ValidateTaskId(launch.task_id); !s.ok()) return s;
  if (launch.argv.empty()) return absl::InvalidArgumentError("argv is empty");
  if (launch.cpu_milli < 0 || launch.memory_mib < 0) return absl::InvalidArgumentError("negative limit");
  const std::string& id = launch.task_id;
  if (tasks_.count(id) > 0 || PathExists(StatePath(id))) {
    return absl::AlreadyExistsError(absl::StrCat("task ", id, " is already running or not yet reported"));
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

  // The task's environment: the agent's, overridden by launch.env.
  std::vector<std::string> env_strings;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view entry(*e);
    size_t eq = entry.find('=');
    if (eq != absl::string_view::npos && launch.env.count(std::string(entry.substr(0, eq))) > 0) continue;
    env_strings.emplace_back(entry);
  }
  for (const auto& [key, value] : launch.env) {
    if (key.empty() || key.find('=') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("bad environment variable name '", key, "'"));
    }
    env_strings.push_back(absl::StrCat(key, "=", value));
  }
  std::string path_var = kDefaultPath;
  if (auto it = launch.env.find("PATH"); it != launch.env.end()) {
    path_var = it->second;
  } else if (const char* agent_path = getenv("PATH"); agent_path != nullptr) {
    path_var = agent_path;
  }
  absl::StatusOr<std::string> exec_path = ResolveCommand(launch.argv[0], path_var, workdir);
  if (!exec_path.ok()) return exec_path.status();

  // A leftover record of an earlier task with this id would be taken for ours.
  unlink(ExitPath(id).c_str());

  LaunchedTask result;
  result.task_id = id;
  result.log_path = LogPath(id);
  CgroupLimits limits{.cpu_milli = launch.cpu_milli,
                      .memory_bytes = launch.memory_mib * 1024 * 1024,
                      .cpus = launch.cpus,
                      .mems = launch.mems};
  const bool wants_limits =
      limits.cpu_milli > 0 || limits.memory_bytes > 0 || !limits.cpus.empty() || !limits.mems.empty();
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

  // Everything the shim and the task touch, laid out before the fork.
  std::vector<char*> argv_ptrs;
  for (const std::string& a : launch.argv) argv_ptrs.push_back(const_cast<char*>(a.c_str()));
  argv_ptrs.push_back(nullptr);
  std::string sh = "/bin/sh";
  std::vector<char*> sh_argv_ptrs = {sh.data(), exec_path->data()};
  for (size_t i = 1; i < launch.argv.size(); ++i) sh_argv_ptrs.push_back(const_cast<char*>(launch.argv[i].c_str()));
  sh_argv_ptrs.push_back(nullptr);
  std::vector<char*> envp;
  for (std::string& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> procs_files;
  if (has_cgroup) procs_files = cgroups_->ProcsFiles(id);
  std::vector<const char*> procs_ptrs;
  for (const std::string& f : procs_files) procs_ptrs.push_back(f.c_str());
  const std::string exit_path = ExitPath(id);
  const std::string exit_tmp_path = exit_path + ".tmp";

  int report[2];
  if (pipe2(report, O_CLOEXEC) != 0) return ErrnoError(errno, "pipe");
  // Keep the pipe off 0-2 in case the agent runs with those closed: the shim
  // is about to replace them.
  for (int& fd : report) {
    if (fd < 3) {
      int moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      close(fd);
      fd = moved;
    }
  }
  if (report[0] < 0 || report[1] < 0) return ErrnoError(errno, "fcntl(F_DUPFD_CLOEXEC)");

  ShimPlan plan;
  plan.log_path = result.log_path.c_str();
  plan.workdir = workdir.empty() ? nullptr : workdir.c_str();
  plan.exit_path = exit_path.c_str();
  plan.exit_tmp_path = exit_tmp_path.c_str();
  plan.exec_path = exec_path->c_str();
  plan.argv = argv_ptrs.data();
  plan.sh_argv = sh_argv_ptrs.data();
  plan.envp = envp.data();
  plan.procs_files = procs_ptrs.data();
  plan.num_procs_files = procs_ptrs.size();
  plan.report_fd = report[1];
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    plan.max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20));
  }

  const int64_t start_unix_ms = UnixMillis();
  pid_t shim = fork();
  if (shim == 0) {
    close(report[0]);
    RunShim(plan);
  }
  int fork_errno = errno;
  close(report[1]);
  if (shim < 0) {
    close(report[0]);
    if (has_cgroup) cgroups_->RemoveGroup(id).IgnoreError();
    return ErrnoError(fork_errno, "fork");
  }
  int32_t task_pid = -1;
  ssize_t got = ReadFull(report[0], &task_pid, sizeof(task_pid));
  close(report[0]);
  if (got != static_cast<ssize_t>(sizeof(task_pid))) {
    // The shim died before it could say anything (killed from outside).
    int status = 0;
    waitpid(shim, &status, 0);
    unlink(exit_path.c_str());
    if (has_cgroup) cgroups_->RemoveGroup(id).IgnoreError();
    return absl::InternalError(absl::StrCat("the shim of task ", id, " died before starting it"));
  }

  auto task = std::make_unique<Task>();
  task->task_id = id;
  task->argv = launch.argv;
  task->workdir = workdir;
  task->log_path = result.log_path;
  task->shim_pid = shim;
  // The shim is our child, so its /proc entry lasts until we reap it; the
  // task may already be gone, in which case its start time stays unknown (0).
  if (absl::StatusOr<ProcStat> st = ReadProcStat(shim); st.ok()) task->shim_start_ticks = st->start_ticks;
  if (task_pid > 0) {
    task->task_pid = task_pid;
    if (absl::StatusOr<ProcStat> st = ReadProcStat(task_pid); st.ok()) task->task_start_ticks = st->start_ticks;
  }
  task->start_unix_ms = start_unix_ms;
  task->has_cgroup = has_cgroup;
  task->owned = true;
  if (absl::Status s = SaveState(*task); !s.ok()) {
    // Without the state file a restarted agent could never find this task
    // again; better to not run it at all.
    KillNow(*task);
    int status = 0;
    waitpid(shim, &status, 0);
    unlink(exit_path.c_str());
    ReleaseCgroup(id);
    return absl::Status(s.code(), absl::StrCat("cannot record task ", id, ": ", s.message()));
  }
  result.shim_pid = shim;
  result.task_pid = task->task_pid;
  result.start_unix_ms = start_unix_ms;
  tasks_.emplace(id, std::move(task));
  return result;
}

void TaskLauncher::KillNow(Task& task) {
  // The process group catches the task's children; the cgroup also catches
  // those that left the group (setsid, daemons).
  if (task.task_pid > 0) kill(-task.task_pid, SIGKILL);
  if (task.has_cgroup && cgroups_ != nullptr) cgroups_->KillAll(task.task_id).IgnoreError();
  task.kill_sent = true;
}

absl::Status TaskLauncher::Stop(const std::string& task_id, int64_t grace_ms) {
  auto it = tasks_.find(task_id);
  if (it == tasks_.end()) return absl::NotFoundError(absl::StrCat("no task ", task_id));
  Task& task = *it->second;
  if (grace_ms < 0) grace_ms = options_.default_grace_ms;
  const int64_t kill_at = clock_->NowMs() + grace_ms;
  if (task.stop_requested) {
    task.kill_at_ms = std::min(task.kill_at_ms, kill_at);
  } else {
    task.stop_requested = true;
    task.kill_at_ms = kill_at;
    task.stop_deadline_unix_ms = UnixMillis() + grace_ms;
    // Best effort: losing it only means a restarted agent reports the task
    // as ended on its own rather than Cancelled.
    SaveState(task).IgnoreError();
    if (task.task_pid > 0 && grace_ms > 0) kill(-task.task_pid, SIGTERM);
  }
  if (grace_ms == 0 && !task.kill_sent) KillNow(task);
  return absl::OkStatus();
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
  absl::StatusOr<ExitRecord> record = ReadExitRecord(ExitPath(task.task_id));
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
    exit.kind = TaskExitKind::kLost;
    exit.end_unix_ms = UnixMillis();
    exit.reason = task.load_error.empty()
                      ? absl::StrCat("the task's shim (pid ", task.shim_pid, ") ended without recording an exit status")
                      : absl::StrCat("unreadable state file: ", task.load_error);
    if (shim_wait_status != nullptr && WIFSIGNALED(*shim_wait_status)) {
      absl::StrAppend(&exit.reason, " (shim killed by ", SignalName(WTERMSIG(*shim_wait_status)), ")");
    } else if (!absl::IsNotFound(record.status())) {
      absl::StrAppend(&exit.reason, ": ", record.status().message());
    }
  } else {
    exit.end_unix_ms = record->end_unix_ms > 0 ? record->end_unix_ms : UnixMillis();
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
    if (record->stage != kStageNone) {
      exit.kind = TaskExitKind::kLaunchFailed;
      exit.signal = 0;
      exit.exit_code = record->err == ENOENT ? 127 : 126;
      switch (record->stage) {
        case kStageLog:
          exit.reason = absl::StrCat("cannot open log file ", task.log_path, ": ", error);
          break;
        case kStageChdir:
          exit.reason = absl::StrCat("cannot change to workdir '", task.workdir, "': ", error);
          break;
        case kStageFork:
          exit.reason = absl::StrCat("the shim could not fork the task: ", error);
          break;
        case kStageCgroup:
          exit.reason = absl::StrCat("the task could not join its cgroup: ", error);
          break;
        case kStageExec:
          exit.reason = record->err == ENOENT ? absl::StrCat("command '", command, "' not found (exec: ", error, ")")
                                              : absl::StrCat("exec '", command, "' failed: ", error);
          break;
        default:
          exit.reason = absl::StrCat("launch failed at stage ", record->stage, ": ", error);
      }
    } else if (oom_kills > 0 && (exit.signal == SIGKILL || exit.exit_code == 128 + SIGKILL)) {
      // A shell that ran the victim exits 137 itself instead of dying of
      // SIGKILL, hence the exit code check too.
      exit.kind = TaskExitKind::kOOMKilled;
      exit.reason = "OOMKilled";
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
  }
  if (task.has_cgroup) ReleaseCgroup(task.task_id);
  unlink(ExitPath(task.task_id).c_str());
  unlink(StatePath(task.task_id).c_str());
  return exit;
}

std::vector<TaskExit> TaskLauncher::Poll() {
  std::vector<TaskExit> exits;
  const int64_t now = clock_->NowMs();
  for (auto it = tasks_.begin(); it != tasks_.end();) {
    Task& task = *it->second;
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
      if (PathExists(ExitPath(task.task_id))) {
        ended = true;
      } else if (!ProcessAlive(task.shim_pid, task.shim_start_ticks) &&
                 !ProcessAlive(task.task_pid, task.task_start_ticks)) {
        // Either gone without a record (Lost), or the shim wrote its record
        // between the two checks above; Finish reads the file again.
        ended = true;
      }
    }
    if (!ended) {
      if (task.stop_requested && !task.kill_sent && now >= task.kill_at_ms) KillNow(task);
      ++it;
      continue;
    }
    exits.push_back(Finish(task, have_shim_status ? &shim_status : nullptr));
    it = tasks_.erase(it);
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

std::vector<std::string> TaskLauncher::Adopt() {
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
    auto task = std::make_unique<Task>();
    task->task_id = id;
    absl::StatusOr<std::string> text = ReadFile(StatePath(id));
    nlohmann::json j;
    if (text.ok()) j = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (!text.ok() || !j.is_object()) {
      // Unreadable: nothing to watch. Keep it as a task whose processes are
      // unknown so the next Poll() reports it (Lost, unless an exit file says more).
      task->load_error =
          text.ok() ? absl::StrCat(StatePath(id), " is not a JSON object") : std::string(text.status().message());
      tasks_.emplace(id, std::move(task));
      continue;
    }
    try {
      task->argv = j.value("argv", std::vector<std::string>{});
      task->workdir = j.value("workdir", std::string());
      task->log_path = j.value("log_path", LogPath(id));
      task->shim_pid = j.value("shim_pid", 0);
      task->shim_start_ticks = j.value("shim_start_ticks", int64_t{0});
      task->task_pid = j.value("task_pid", 0);
      task->task_start_ticks = j.value("task_start_ticks", int64_t{0});
      task->start_unix_ms = j.value("start_unix_ms", int64_t{0});
      task->has_cgroup = j.value("cgroup", false) && cgroups_ != nullptr;
      task->stop_requested = j.value("stop_requested", false);
      task->stop_deadline_unix_ms = j.value("stop_deadline_unix_ms", int64_t{0});
    } catch (const nlohmann::json::exception&) {
      // A field of the wrong type: treat like an unreadable file.
      task = std::make_unique<Task>();
      task->task_id = id;
      task->load_error = absl::StrCat(StatePath(id), " has a field of the wrong type");
    }
    if (task->stop_requested) {
      task->kill_at_ms = now_ms + std::max<int64_t>(0, task->stop_deadline_unix_ms - now_unix_ms);
    }
    const bool alive = !PathExists(ExitPath(id)) && (ProcessAlive(task->shim_pid, task->shim_start_ticks) ||
                                                     ProcessAlive(task->task_pid, task->task_start_ticks));
    if (alive) adopted.push_back(id);
    tasks_.emplace(id, std::move(task));
  }
  return adopted;
}

std::vector<std::string> TaskLauncher::Running() const {
  std::vector<std::string> ids;
  for (const auto& [id, task] : tasks_) ids.push_back(id);
  return ids;  // std::map keeps them sorted
}

}  // namespace icos::agent
