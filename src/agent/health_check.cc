#include "agent/health_check.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace icos::agent {
namespace {

constexpr size_t kMaxOutput = 64 << 10;  // the first line is all we need

int64_t MonotonicMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::string FirstLine(const std::string& output) {
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (!line.empty()) return std::string(line.substr(0, 500));
  }
  return "";
}

}  // namespace

HealthCheckResult RunHealthCheckProgram(const std::string& program, int64_t timeout_ms) {
  if (access(program.c_str(), X_OK) != 0) {
    return {false, absl::StrCat("cannot execute ", program, ": ", std::strerror(errno))};
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return {false, absl::StrCat("health check: pipe: ", std::strerror(errno))};
  // Everything the child needs is prepared before fork: it may only make
  // async-signal-safe calls in a threaded process.
  const std::string exec_failed = absl::StrCat("cannot execute ", program, "\n");
  char* const argv[] = {const_cast<char*>(program.c_str()), nullptr};
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return {false, absl::StrCat("health check: fork: ", std::strerror(errno))};
  }
  if (pid == 0) {
    setpgid(0, 0);
    const int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, STDIN_FILENO);
    dup2(fds[1], STDOUT_FILENO);
    dup2(fds[1], STDERR_FILENO);
    execv(program.c_str(), argv);
    (void)!write(STDOUT_FILENO, exec_failed.data(), exec_failed.size());
    _exit(127);
  }
  setpgid(pid, pid);  // also here, so the group exists before any kill below
  close(fds[1]);

  std::string output;
  const int64_t deadline = MonotonicMs() + std::max<int64_t>(timeout_ms, 0);
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
    return {false, absl::StrCat("timed out after ", timeout_ms / 1000.0, " s", line.empty() ? "" : ": ", line)};
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
