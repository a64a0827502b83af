#include "agent/program_run.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/shim.h"

extern char** environ;

namespace icos::agent {
namespace {

constexpr size_t kMaxOutput = 64 << 10;  // the first line is all we need

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// The first non-empty line, trimmed, at most 500 bytes, made valid UTF-8 (a
// program may print anything; the reason travels in JSON).
std::string FirstLine(const std::string& output) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty()) continue;
    const std::string dumped =
        nlohmann::json(std::string(line.substr(0, 500))).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    return nlohmann::json::parse(dumped).get<std::string>();
  }
  return "";
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

}  // namespace

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

ExecArgv MakeExecArgv(const std::vector<std::string>& argv, const std::string& exec_path) {
  static char sh[] = "/bin/sh";
  ExecArgv out;
  for (const std::string& a : argv) out.argv.push_back(const_cast<char*>(a.c_str()));
  out.argv.push_back(nullptr);
  out.sh_argv = {sh, const_cast<char*>(exec_path.c_str())};
  for (size_t i = 1; i < argv.size(); ++i) out.sh_argv.push_back(const_cast<char*>(argv[i].c_str()));
  out.sh_argv.push_back(nullptr);
  return out;
}

ProgramResult RunProgram(const ProgramRun& run) {
  if (run.argv.empty()) return {false, "no program to run"};
  std::string path_var = kDefaultCommandPath;
  if (run.env.has_value()) {
    for (const std::string& e : *run.env) {
      if (absl::StartsWith(e, "PATH=")) path_var = e.substr(5);
    }
  } else if (const char* agent_path = getenv("PATH"); agent_path != nullptr) {
    path_var = agent_path;
  }
  absl::StatusOr<std::string> exec_path = ResolveCommand(run.argv[0], path_var, run.workdir);
  if (!exec_path.ok()) return {false, absl::StrCat("cannot execute ", run.argv[0], ": ", exec_path.status().message())};
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {false, absl::StrCat("pipe: ", std::strerror(errno))};
  // Everything the child needs is prepared before fork: it may only make
  // async-signal-safe calls in a threaded process.
  ExecArgv exec = MakeExecArgv(run.argv, *exec_path);
  std::vector<char*> envp;
  if (run.env.has_value()) {
    for (const std::string& e : *run.env) envp.push_back(const_cast<char*>(e.c_str()));
    envp.push_back(nullptr);
  }
  char* const* env = run.env.has_value() ? envp.data() : environ;
  std::vector<const char*> procs;
  for (const std::string& f : run.procs_files) procs.push_back(f.c_str());
  shim::ShimIdentity identity;
  if (run.user.has_value()) {
    identity.uid = run.user->uid;
    identity.gid = run.user->gid;
    identity.groups = run.user->groups.data();
    identity.num_groups = run.user->groups.size();
  }
  int max_fd = 1024;
  struct rlimit nofile;
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur != RLIM_INFINITY) {
    max_fd = static_cast<int>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20));
  }
  const std::string cannot_join = absl::StrCat("cannot join the task's cgroup\n");
  const std::string cannot_become = absl::StrCat("cannot take the task's user\n");
  const std::string cannot_chdir = absl::StrCat("cannot enter ", run.workdir, "\n");
  const std::string cannot_exec = absl::StrCat("cannot execute ", run.argv[0], "\n");
  const pid_t pid = shim::ShimFork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return {false, absl::StrCat("fork: ", std::strerror(errno))};
  }
  if (pid == 0) {
    auto fail = [&](const std::string& why) {
      (void)!write(STDOUT_FILENO, why.data(), why.size());
      _exit(126);
    };
    setpgid(0, 0);
    shim::ResetSignals();
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    // Nothing of the agent's (its sockets, its credential's file) reaches the program.
    shim::CloseFdsExcept(-1, -1, max_fd);
    // Into the cgroup while still privileged (shim.cc's RunTask does the same).
    if (shim::JoinProcsFiles(procs.data(), procs.size()) != 0) fail(cannot_join);
    if (run.user.has_value() && !shim::SwitchIdentity(identity)) fail(cannot_become);
    umask(022);
    if (!run.workdir.empty() && chdir(run.workdir.c_str()) != 0) fail(cannot_chdir);
    execve(exec_path->c_str(), exec.argv.data(), env);
    if (errno == ENOEXEC) execve(exec.sh_argv[0], exec.sh_argv.data(), env);
    (void)!write(STDOUT_FILENO, cannot_exec.data(), cannot_exec.size());
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the group exists before any kill below
  close(fds[1]);

  std::string output;
  const int64_t deadline = MonotonicMs() + std::max<int64_t>(run.timeout_ms, 0);
  bool timed_out = false;
  bool exited = false;
  int status = 0;
  bool eof = false;
  while (true) {
    if (!exited) {
      const pid_t w = waitpid(pid, &status, WNOHANG);
      exited = w == pid;
    }
    // Once the program has exited, its output is what is in the pipe now; a
    // background child it left holding the pipe must not keep us waiting.
    const int64_t left = deadline - MonotonicMs();
    if (!exited && left <= 0) {
      timed_out = true;
      break;
    }
    if (eof && exited) break;
    if (eof) {
      // The program closed its output but runs on: just wait for it.
      std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(left, 20)));
      continue;
    }
    pollfd p{.fd = fds[0], .events = POLLIN, .revents = 0};
    const int ready = poll(&p, 1, exited ? 0 : static_cast<int>(std::min<int64_t>(left, 50)));
    if (ready > 0) {
      char buf[4096];
      const ssize_t n = read(fds[0], buf, sizeof(buf));
      if (n > 0) {
        if (output.size() < kMaxOutput) output.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) eof = true;
    } else if (exited) {
      break;  // nothing more buffered
    }
  }
  close(fds[0]);
  if (timed_out) {
    kill(-pid, SIGKILL);
    waitpid(pid, &status, 0);
    const std::string line = FirstLine(output);
    return {false, absl::StrCat("timed out after ", run.timeout_ms / 1000.0, " s", line.empty() ? "" : ": ", line)};
  }
  // The program is done; anything it left behind in its group goes too.
  kill(-pid, SIGKILL);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {true, ""};
  std::string line = FirstLine(output);
  if (!line.empty()) return {false, line};
  if (WIFSIGNALED(status)) return {false, absl::StrCat("killed by signal ", WTERMSIG(status))};
  return {false, absl::StrCat("exited with status ", WEXITSTATUS(status))};
}

}  // namespace icos::agent
