#include "agent/shim_spawn.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace icos::agent::shim {
namespace {

void PutNumber(std::string& out, int64_t v) { out.append(reinterpret_cast<const char*>(&v), sizeof(v)); }

void PutString(std::string& out, const char* s) {
  const size_t n = s == nullptr ? 0 : std::strlen(s);
  PutNumber(out, static_cast<int64_t>(n));
  out.append(s == nullptr ? "" : s, n);
}

// A nullptr-terminated array, or `count` entries of one.
void PutList(std::string& out, const char* const* items, size_t count = SIZE_MAX) {
  size_t n = 0;
  while (items != nullptr && n < count && (count != SIZE_MAX || items[n] != nullptr)) ++n;
  PutNumber(out, static_cast<int64_t>(n));
  for (size_t i = 0; i < n; ++i) PutString(out, items[i]);
}

absl::Status Errno(int err, absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(err)));
}

}  // namespace

std::string EncodePlan(const ShimPlan& plan) {
  std::string out;
  PutNumber(out, kPlanVersion);
  for (const char* s : {plan.log_path, plan.workdir, plan.exit_path, plan.exit_tmp_path, plan.pid_path,
                        plan.pid_tmp_path, plan.spawn_path, plan.exec_path, plan.cgroup_kill_file, plan.lease_path}) {
    PutString(out, s);
  }
  PutList(out, plan.argv);
  PutList(out, plan.sh_argv);
  PutList(out, plan.envp);
  PutList(out, plan.procs_files, plan.num_procs_files);
  PutNumber(out, plan.identity.uid);
  PutNumber(out, plan.identity.gid);
  PutNumber(out, static_cast<int64_t>(plan.identity.num_groups));
  for (size_t i = 0; i < plan.identity.num_groups; ++i) PutNumber(out, plan.identity.groups[i]);
  PutNumber(out, plan.max_fd);
  PutNumber(out, plan.max_disconnect_ms);
  PutNumber(out, plan.grace_ms);
  return out;
}

absl::StatusOr<pid_t> SpawnShim(const std::string& shim_path, const ShimPlan& plan) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return Errno(errno, "socketpair");
  // Sources above the targets (3-5), so that no dup2 overwrites another's source.
  int from[3] = {fcntl(sv[1], F_DUPFD_CLOEXEC, 10), fcntl(plan.report_fd, F_DUPFD_CLOEXEC, 10),
                 fcntl(plan.lock_fd, F_DUPFD_CLOEXEC, 10)};
  close(sv[1]);
  auto close_all = [&] {
    for (int fd : from) {
      if (fd >= 0) close(fd);
    }
  };
  if (from[0] < 0 || from[1] < 0 || from[2] < 0) {
    const int err = errno;
    close_all();
    close(sv[0]);
    return Errno(err, "fcntl(F_DUPFD_CLOEXEC)");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, from[0], kPlanFd);
  posix_spawn_file_actions_adddup2(&actions, from[1], kReportFd);
  posix_spawn_file_actions_adddup2(&actions, from[2], kLockFd);
  // The agent's signal mask and handlers stay behind (the shim sets its own).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::string name = "icos-shim";
  char* argv[] = {name.data(), nullptr};
  char* envp[] = {nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, shim_path.c_str(), &actions, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close_all();
  if (rc != 0) {
    close(sv[0]);
    return Errno(rc, absl::StrCat("start ", shim_path));
  }
  // The plan, then EOF. A shim that died meanwhile makes this fail (no
  // SIGPIPE: a socket); the caller then finds no report and reaps it.
  const std::string blob = EncodePlan(plan);
  size_t sent = 0;
  while (sent < blob.size()) {
    const ssize_t n = send(sv[0], blob.data() + sent, blob.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  close(sv[0]);
  return pid;
}

std::string ShimBesideSelf() {
  std::error_code ec;
  const std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return "";
  const std::filesystem::path shim = self.parent_path() / "icos-shim";
  return access(shim.c_str(), X_OK) == 0 ? shim.string() : "";
}

}  // namespace icos::agent::shim
