// Helpers for the tests that run real processes in real cgroups (containment
// and device filtering). Tests only.
#ifndef ICOS_AGENT_CONTAINMENT_TEST_UTIL_H_
#define ICOS_AGENT_CONTAINMENT_TEST_UTIL_H_

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/sys_util.h"
#include "agent/test_util.h"

namespace icos::agent::testing {

// The mount point of the host's cgroup2 tree, if any. On hybrid hosts it is
// not the hierarchy ParseMountInfo picks (this build machine: an empty v2
// tree at /sys/fs/cgroup/unified beside the v1 controllers).
inline std::string RealCgroup2Mount() {
  absl::StatusOr<std::string> mountinfo = ReadFile("/proc/self/mountinfo");
  if (!mountinfo.ok()) return "";
  for (absl::string_view line : absl::StrSplit(*mountinfo, '\n', absl::SkipEmpty())) {
    if (line.find(" - cgroup2 ") == absl::string_view::npos) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    if (fields.size() > 4) return std::string(fields[4]);
  }
  return "";
}

// 0 when `path` opens with `flags`, else the errno. For use in a child.
inline int OpenErrno(const std::string& path, int flags = O_RDONLY) {
  int fd = open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  close(fd);
  return 0;
}

// Writes the calling process's pid to each file; 0 or the first errno.
inline int JoinGroup(const std::vector<std::string>& procs_files) {
  const std::string pid = absl::StrCat(getpid());
  for (const std::string& file : procs_files) {
    int fd = open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0) return errno;
    ssize_t n = write(fd, pid.data(), pid.size());
    int err = errno;
    close(fd);
    if (n < 0) return err;
  }
  return 0;
}

// Forks a child that joins the group (as the launcher's task does), runs
// `body` and exits with its result (0..255). Returns the child's exit code,
// 255 + errno's worth if it could not join, or -1 if it did not exit within
// 10 s (it is then killed).
inline int RunInGroup(const std::vector<std::string>& procs_files, const std::function<int()>& body) {
  pid_t pid = fork();
  if (pid == 0) {
    if (JoinGroup(procs_files) != 0) _exit(255);
    _exit(body() & 0xff);
  }
  if (pid < 0) return -1;
  int status = 0;
  bool done = WaitUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 10'000);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A system user made for one test and removed after it, pass or fail.
class ScopedUser {
 public:
  ScopedUser() : name_(absl::StrCat("icosct", getpid() % 100000)) {
    Run(absl::StrCat("userdel ", name_, " >/dev/null 2>&1"));  // a leftover of a killed run
    if (Run(absl::StrCat("useradd --system --no-create-home --shell /usr/sbin/nologin ", name_)) != 0) return;
    struct passwd* pw = getpwnam(name_.c_str());
    if (pw == nullptr) return;
    uid_ = pw->pw_uid;
    gid_ = pw->pw_gid;
    ok_ = true;
  }
  // REQUIRES: no process of the user is left (userdel refuses otherwise).
  ~ScopedUser() {
    if (ok_) Run(absl::StrCat("userdel ", name_));
  }
  bool ok() const { return ok_; }
  uid_t uid() const { return uid_; }
  gid_t gid() const { return gid_; }
  const std::string& name() const { return name_; }

 private:
  static int Run(const std::string& command) { return std::system(command.c_str()); }
  std::string name_;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  bool ok_ = false;
};

}  // namespace icos::agent::testing

#endif  // ICOS_AGENT_CONTAINMENT_TEST_UTIL_H_
