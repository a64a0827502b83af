#include "agent/shim.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>  // rename
#include <cstring>
#include <initializer_list>

namespace icos::agent::shim {
namespace {

// ---------------------------------------------------------------------------
// Async-signal-safe helpers: raw syscalls on caller-provided buffers.
// ---------------------------------------------------------------------------

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

}  // namespace

void CloseRange(int first, int last, int max_fd) {
  if (first > last) return;
#ifdef SYS_close_range
  if (syscall(SYS_close_range, static_cast<unsigned>(first), static_cast<unsigned>(last), 0u) == 0) return;
#endif
  for (int fd = first; fd <= last && fd < max_fd; ++fd) close(fd);
}

void CloseFdsExcept(int a, int b, int max_fd) {
  if (a > b) {
    int t = a;
    a = b;
    b = t;
  }
  int next = 3;
  for (int keep : {a, b}) {
    if (keep < next) continue;
    CloseRange(next, keep - 1, max_fd);
    next = keep + 1;
  }
  CloseRange(next, INT32_MAX, max_fd);
}

namespace {

// Writes `len` bytes to `tmp_path` and renames it over `path`, so a reader
// sees the whole file or none. fsync when `durable` (survives power loss).
void WriteFileWhole(const char* path, const char* tmp_path, const char* data, size_t len, bool durable) {
  int fd = open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return;
  bool ok = WriteAll(fd, data, len);
  if (durable) fsync(fd);
  close(fd);
  if (ok) rename(tmp_path, path);
}

void AppendKeyValue(char* buf, size_t* len, const char* key, int64_t value) {
  size_t key_len = std::strlen(key);
  std::memcpy(buf + *len, key, key_len);
  *len += key_len;
  buf[(*len)++] = ' ';
  *len += FormatInt(value, buf + *len);
  buf[(*len)++] = '\n';
}

// The first integer in `path` (a lease file); false when unreadable.
bool ReadInt(const char* path, int64_t* out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[32];
  ssize_t n = ReadFull(fd, buf, sizeof(buf) - 1);
  close(fd);
  if (n <= 0) return false;
  int64_t v = 0;
  ssize_t i = 0;
  for (; i < n && buf[i] >= '0' && buf[i] <= '9'; ++i) v = v * 10 + (buf[i] - '0');
  if (i == 0) return false;
  *out = v;
  return true;
}

// SIGKILL to every process listed in a cgroup.procs file.
void KillListedPids(const char* procs_file) {
  int fd = open(procs_file, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  int64_t pid = 0;
  bool in_number = false;
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] >= '0' && buf[i] <= '9') {
        pid = pid * 10 + (buf[i] - '0');
        in_number = true;
      } else {
        if (in_number && pid > 1) kill(static_cast<pid_t>(pid), SIGKILL);
        pid = 0;
        in_number = false;
      }
    }
  }
  if (in_number && pid > 1) kill(static_cast<pid_t>(pid), SIGKILL);
  close(fd);
}

// Ends the task's whole process group and, with its cgroup, the processes
// that left the group (setsid daemons).
void KillEverything(const ShimPlan& plan, pid_t task) {
  kill(-task, SIGKILL);
  if (plan.cgroup_kill_file != nullptr) {
    int fd = open(plan.cgroup_kill_file, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      WriteAll(fd, "1", 1);
      close(fd);
    }
  }
  // Twice: a process forked while the first list was read is caught by the second.
  for (int round = 0; round < 2; ++round) {
    for (size_t i = 0; i < plan.num_procs_files; ++i) KillListedPids(plan.procs_files[i]);
  }
}

[[noreturn]] void FailTask(int err_fd, int32_t stage, int err) {
  int32_t msg[2] = {stage, err};
  WriteAll(err_fd, msg, sizeof(msg));
  _exit(err == ENOENT ? 127 : 126);
}

}  // namespace

int JoinProcsFiles(const char* const* files, size_t n) {
  char pid_text[24];
  size_t pid_len = FormatInt(getpid(), pid_text);
  for (size_t i = 0; i < n; ++i) {
    int fd = open(files[i], O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) return errno;
    if (write(fd, pid_text, pid_len) != static_cast<ssize_t>(pid_len)) {
      const int err = errno;
      close(fd);
      return err;
    }
    close(fd);
  }
  return 0;
}

void ResetSignals() {
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
}

// Root dropping to another uid loses every capability; no_new_privs keeps
// setuid programs (sudo, su) from giving any back.
bool SwitchIdentity(const ShimIdentity& id) {
  if (id.uid < 0) return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 || errno == EINVAL;
  if (setgroups(id.num_groups, id.groups) != 0) return false;
  if (setresgid(static_cast<gid_t>(id.gid), static_cast<gid_t>(id.gid), static_cast<gid_t>(id.gid)) != 0) return false;
  if (setresuid(static_cast<uid_t>(id.uid), static_cast<uid_t>(id.uid), static_cast<uid_t>(id.uid)) != 0) return false;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  // A process that could get root back must not run a task as a user.
  if (id.uid != 0 && (setuid(0) == 0 || geteuid() == 0)) {
    errno = EPERM;
    return false;
  }
  return true;
}

namespace {

// The grandchild: becomes the task.
[[noreturn]] void RunTask(const ShimPlan& plan, int err_fd) {
  // Its own process group, so Stop() can signal the task and everything it
  // forks without touching the shim.
  setpgid(0, 0);
  ResetSignals();

  // Into the cgroup while still privileged: the groups belong to root, and a
  // task that is not root can never move itself out again.
  if (int err = JoinProcsFiles(plan.procs_files, plan.num_procs_files); err != 0) FailTask(err_fd, kStageCgroup, err);
  if (!SwitchIdentity(plan.identity)) FailTask(err_fd, kStageIdentity, errno);
  // The agent keeps its own files private (umask 077); a task's files get
  // the usual defaults.
  umask(022);
  // chdir as the owner: a directory the user may not enter is their error,
  // not something root's rights should paper over.
  if (plan.workdir != nullptr && chdir(plan.workdir) != 0) FailTask(err_fd, kStageChdir, errno);
  execve(plan.exec_path, plan.argv, plan.envp);
  if (errno == ENOEXEC) execve(plan.sh_argv[0], plan.sh_argv, plan.envp);
  FailTask(err_fd, kStageExec, errno);
}

}  // namespace

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

namespace {

// What the lease watch has done to the task so far.
struct LeaseWatch {
  bool term_sent = false;
  bool kill_sent = false;
};

// Stops the task once the node has been out of contact with the controller
// for too long (ShimPlan's lease fields).
void EnforceLease(const ShimPlan& plan, pid_t task, LeaseWatch* watch) {
  if (plan.lease_path == nullptr || plan.max_disconnect_ms <= 0 || watch->kill_sent) return;
  int64_t last_contact = 0;
  if (!ReadInt(plan.lease_path, &last_contact)) return;  // no lease written: nothing to judge by
  const int64_t silent_ms = BootTimeMs() - last_contact;
  const int64_t kill_at = plan.max_disconnect_ms - kLeaseMarginMs;
  int64_t grace = plan.grace_ms;
  if (grace > kill_at / 2) grace = kill_at / 2;
  if (!watch->term_sent && silent_ms >= kill_at - grace) {
    kill(-task, SIGTERM);
    watch->term_sent = true;
  }
  if (silent_ms >= kill_at) {
    KillEverything(plan, task);
    watch->kill_sent = true;
  }
}

}  // namespace

int64_t BootTimeMs() {
  struct timespec ts;
  clock_gettime(CLOCK_BOOTTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

void RunShim(const ShimPlan& plan) {
  // Signals aimed at the agent's terminal or session, or at the task, must
  // not end the record keeper. SIGCHLD must be default for waitpid to work,
  // and blocked, so that sigtimedwait below wakes for it without a handler.
  struct sigaction act;
  std::memset(&act, 0, sizeof(act));
  sigemptyset(&act.sa_mask);
  act.sa_handler = SIG_IGN;
  for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE}) sigaction(sig, &act, nullptr);
  act.sa_handler = SIG_DFL;
  sigaction(SIGCHLD, &act, nullptr);
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_SETMASK, &chld, nullptr);
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
  int log_fd = open(plan.log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (log_fd < 0) {
    stage = kStageLog;
    err = errno;
  } else {
    dup2(log_fd, 1);
    dup2(log_fd, 2);
    if (log_fd > 2) close(log_fd);
  }
  CloseFdsExcept(plan.report_fd, plan.lock_fd, plan.max_fd);

  int wait_status = 0;
  bool reported = false;
  LeaseWatch lease;
  if (stage == kStageNone) {
    // The marker goes first: a shim killed before it leaves none, and then
    // the task was certainly never forked (the agent may start it again).
    int marker = open(plan.spawn_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (marker < 0 || fsync(marker) != 0) {
      stage = kStageJournal;
      err = errno;
    }
    if (marker >= 0) close(marker);
  }
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
      char pids[48];
      size_t len = FormatInt(task, pids);
      pids[len++] = ' ';
      len += FormatInt(getpid(), pids + len);
      pids[len++] = '\n';
      WriteFileWhole(plan.pid_path, plan.pid_tmp_path, pids, len, /*durable=*/false);
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
      // As a subreaper the shim also inherits the task's orphaned
      // descendants; reap them as they die until the task itself ends, and
      // watch the lease meanwhile.
      const bool has_lease = plan.lease_path != nullptr && plan.max_disconnect_ms > 0;
      while (true) {
        int status = 0;
        pid_t reaped = waitpid(-1, &status, WNOHANG);
        if (reaped == task) {
          wait_status = status;
          break;
        }
        if (reaped > 0) continue;
        if (reaped < 0 && errno != EINTR) break;
        EnforceLease(plan, task, &lease);
        struct timespec wait_for = {has_lease ? 0 : 10, has_lease ? kLeasePollMs * 1'000'000 : 0};
        sigtimedwait(&chld, nullptr, &wait_for);  // returns at once when a child ended
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
  AppendKeyValue(record, &len, "lease_stop", lease.term_sent || lease.kill_sent ? 1 : 0);
  // The largest peak RSS of all the shim reaped: the task, and (a subreaper)
  // its orphans; each includes the children it waited for itself.
  struct rusage usage;
  if (getrusage(RUSAGE_CHILDREN, &usage) == 0) AppendKeyValue(record, &len, "max_rss_kib", usage.ru_maxrss);
  WriteFileWhole(plan.exit_path, plan.exit_tmp_path, record, len, /*durable=*/true);
  _exit(0);
}

}  // namespace icos::agent::shim
