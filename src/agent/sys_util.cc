#include "agent/sys_util.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace icos::agent {

bool PortInUse(int32_t port) {
  if (port <= 0 || port > 65'535) return false;
  auto taken = [](int family, const sockaddr* addr, socklen_t len) {
    const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;  // no such family here: nothing can hold it
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    const bool in_use = bind(fd, addr, len) != 0 && errno == EADDRINUSE;
    close(fd);
    return in_use;
  };
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_port = htons(static_cast<uint16_t>(port));
  v4.sin_addr.s_addr = htonl(INADDR_ANY);
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_port = htons(static_cast<uint16_t>(port));
  v6.sin6_addr = in6addr_any;
  return taken(AF_INET, reinterpret_cast<const sockaddr*>(&v4), sizeof(v4)) ||
         taken(AF_INET6, reinterpret_cast<const sockaddr*>(&v6), sizeof(v6));
}

absl::Status ErrnoError(int err, absl::string_view what) {
  // Not absl::ErrnoToStatus: it appends strerror's text a second time, and
  // its absl::base_internal::StrError builds a table on first use that a
  // TSan build sees raced when two launches fail at once.
  char buf[256];
  return absl::Status(absl::ErrnoToStatusCode(err), absl::StrCat(what, ": ", strerror_r(err, buf, sizeof(buf))));
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", path));
  std::string out;
  char buf[4096];
  while (true) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      return ErrnoError(err, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return out;
}

absl::Status WriteExistingFile(const std::string& path, absl::string_view content) {
  int fd = open(path.c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", path));
  // cgroupfs parses each write(2) as one command, so the value must go out in a
  // single call; a short write is an error, not something to continue.
  ssize_t n;
  do {
    n = write(fd, content.data(), content.size());
  } while (n < 0 && errno == EINTR);
  int err = errno;
  close(fd);
  if (n < 0) return ErrnoError(err, absl::StrCat("write '", content, "' to ", path));
  if (static_cast<size_t>(n) != content.size()) {
    return absl::InternalError(absl::StrCat("short write to ", path));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view content, bool durable) {
  std::string tmp = absl::StrCat(path, ".tmp");
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("create ", tmp));
  size_t done = 0;
  while (done < content.size()) {
    ssize_t n = write(fd, content.data() + done, content.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      close(fd);
      unlink(tmp.c_str());
      return ErrnoError(err, absl::StrCat("write ", tmp));
    }
    done += static_cast<size_t>(n);
  }
  if (durable && fsync(fd) != 0) {
    int err = errno;
    close(fd);
    unlink(tmp.c_str());
    return ErrnoError(err, absl::StrCat("fsync ", tmp));
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    unlink(tmp.c_str());
    return ErrnoError(err, absl::StrCat("rename ", tmp, " to ", path));
  }
  if (durable) {
    // The rename is a change to the directory: it is durable once the directory is.
    const size_t slash = path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0) return ErrnoError(errno, absl::StrCat("open ", dir));
    const int r = fsync(dir_fd);
    const int err = errno;
    close(dir_fd);
    if (r != 0) return ErrnoError(err, absl::StrCat("fsync ", dir));
  }
  return absl::OkStatus();
}

absl::Status MakeDirs(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("MakeDirs: empty path");
  std::string prefix;
  for (size_t pos = 0; pos <= path.size();) {
    size_t next = path.find('/', pos);
    if (next == std::string::npos) next = path.size();
    prefix = path.substr(0, next);
    pos = next + 1;
    if (prefix.empty()) continue;  // leading '/'
    if (mkdir(prefix.c_str(), mode) != 0 && errno != EEXIST) {
      return ErrnoError(errno, absl::StrCat("mkdir ", prefix));
    }
  }
  if (!IsDirectory(path)) return absl::FailedPreconditionError(absl::StrCat(path, " exists and is not a directory"));
  return absl::OkStatus();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

absl::StatusOr<ProcStat> ReadProcStat(pid_t pid) {
  if (pid <= 0) return absl::InvalidArgumentError(absl::StrCat("invalid pid ", pid));
  absl::StatusOr<std::string> text = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
  if (!text.ok()) return text.status();
  // The command name (field 2) may hold spaces and ')', so fields are counted
  // from the LAST ')'.
  size_t close_paren = text->rfind(')');
  if (close_paren == std::string::npos) {
    return absl::InternalError(absl::StrCat("malformed /proc/", pid, "/stat"));
  }
  std::vector<absl::string_view> fields =
      absl::StrSplit(absl::string_view(*text).substr(close_paren + 1), ' ', absl::SkipEmpty());
  // fields[0] is field 3 (state), so field N is fields[N - 3].
  constexpr size_t kStateIndex = 3 - 3, kPgidIndex = 5 - 3, kStartIndex = 22 - 3;
  ProcStat stat;
  int64_t pgid = 0;
  if (fields.size() <= kStartIndex || fields[kStateIndex].empty() || !absl::SimpleAtoi(fields[kPgidIndex], &pgid) ||
      !absl::SimpleAtoi(fields[kStartIndex], &stat.start_ticks)) {
    return absl::InternalError(absl::StrCat("malformed /proc/", pid, "/stat"));
  }
  stat.state = fields[kStateIndex][0];
  stat.pgid = static_cast<pid_t>(pgid);
  return stat;
}

bool ProcessAlive(pid_t pid, int64_t start_ticks) {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno != EPERM) return false;
  absl::StatusOr<ProcStat> stat = ReadProcStat(pid);
  if (!stat.ok()) return false;
  if (stat->state == 'Z' || stat->state == 'X') return false;
  return start_ticks <= 0 || stat->start_ticks == start_ticks;
}

int64_t UnixMillis() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1'000'000;
}

absl::StatusOr<bool> LockHeld(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    return ErrnoError(errno, absl::StrCat("open ", path));
  }
  const int r = flock(fd, LOCK_EX | LOCK_NB);
  const int err = errno;
  close(fd);  // releases the lock if we took it
  if (r == 0) return false;
  if (err == EWOULDBLOCK) return true;
  return ErrnoError(err, absl::StrCat("flock ", path));
}

}  // namespace icos::agent
