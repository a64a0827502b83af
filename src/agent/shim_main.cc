// icos-shim: a task's shim as a program of its own (shim_spawn.h). Reads its
// plan from fd 3, then runs as a forked shim would (shim.h). Depends on
// nothing but the C and C++ runtimes, so that it starts in about a
// millisecond.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "agent/shim.h"

namespace {

using icos::agent::shim::ShimPlan;

class Reader {
 public:
  explicit Reader(const std::string& blob) : blob_(blob) {}
  bool Number(int64_t* v) {
    if (blob_.size() - at_ < sizeof(*v)) return false;
    std::memcpy(v, blob_.data() + at_, sizeof(*v));
    at_ += sizeof(*v);
    return true;
  }
  bool String(std::string* s) {
    int64_t n = 0;
    if (!Number(&n) || n < 0 || static_cast<uint64_t>(n) > blob_.size() - at_) return false;
    s->assign(blob_, at_, static_cast<size_t>(n));
    at_ += static_cast<size_t>(n);
    return true;
  }
  bool List(std::vector<std::string>* out) {
    int64_t n = 0;
    if (!Number(&n) || n < 0 || static_cast<uint64_t>(n) > blob_.size()) return false;
    out->resize(static_cast<size_t>(n));
    for (std::string& s : *out) {
      if (!String(&s)) return false;
    }
    return true;
  }
  bool AtEnd() const { return at_ == blob_.size(); }

 private:
  const std::string& blob_;
  size_t at_ = 0;
};

// Pointers into `strings`, nullptr-terminated.
std::vector<char*> Pointers(std::vector<std::string>& strings) {
  std::vector<char*> out;
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

}  // namespace

int main() {
  std::string blob;
  char buf[65536];
  while (true) {
    const ssize_t n = read(icos::agent::shim::kPlanFd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    blob.append(buf, static_cast<size_t>(n));
  }
  close(icos::agent::shim::kPlanFd);
  // As in a forked shim, the report pipe and the lock must not reach the
  // task's exec: a task holding the lock would pass for a live shim.
  for (int fd : {icos::agent::shim::kReportFd, icos::agent::shim::kLockFd}) fcntl(fd, F_SETFD, FD_CLOEXEC);
  Reader r(blob);
  std::string paths[10];
  std::vector<std::string> argv, sh_argv, envp, procs;
  int64_t uid = -1, gid = -1, num_groups = 0, version = 0;
  bool ok = r.Number(&version) && version == icos::agent::shim::kPlanVersion;
  for (std::string& p : paths) ok = ok && r.String(&p);
  ok = ok && r.List(&argv) && r.List(&sh_argv) && r.List(&envp) && r.List(&procs);
  ok = ok && r.Number(&uid) && r.Number(&gid) && r.Number(&num_groups) && num_groups >= 0 && num_groups <= 65536;
  std::vector<gid_t> groups;
  for (int64_t i = 0; ok && i < num_groups; ++i) {
    int64_t g = 0;
    ok = r.Number(&g);
    groups.push_back(static_cast<gid_t>(g));
  }
  int64_t max_fd = 0, max_disconnect_ms = 0, grace_ms = 0;
  ok = ok && r.Number(&max_fd) && r.Number(&max_disconnect_ms) && r.Number(&grace_ms) && r.AtEnd() && !argv.empty();
  // No report: the agent reads "died before starting it" and runs nothing.
  if (!ok) return 127;
  auto opt = [](const std::string& s) { return s.empty() ? nullptr : s.c_str(); };
  std::vector<char*> argv_ptrs = Pointers(argv), sh_argv_ptrs = Pointers(sh_argv), envp_ptrs = Pointers(envp);
  std::vector<const char*> procs_ptrs;
  for (const std::string& p : procs) procs_ptrs.push_back(p.c_str());
  ShimPlan plan;
  plan.log_path = paths[0].c_str();
  plan.workdir = opt(paths[1]);
  plan.exit_path = paths[2].c_str();
  plan.exit_tmp_path = paths[3].c_str();
  plan.pid_path = paths[4].c_str();
  plan.pid_tmp_path = paths[5].c_str();
  plan.spawn_path = paths[6].c_str();
  plan.exec_path = paths[7].c_str();
  plan.cgroup_kill_file = opt(paths[8]);
  plan.lease_path = opt(paths[9]);
  plan.argv = argv_ptrs.data();
  plan.sh_argv = sh_argv_ptrs.data();
  plan.envp = envp_ptrs.data();
  plan.procs_files = procs_ptrs.data();
  plan.num_procs_files = procs_ptrs.size();
  plan.identity.uid = uid;
  plan.identity.gid = gid;
  plan.identity.groups = groups.data();
  plan.identity.num_groups = groups.size();
  plan.report_fd = icos::agent::shim::kReportFd;
  plan.lock_fd = icos::agent::shim::kLockFd;
  plan.max_fd = static_cast<int>(max_fd);
  plan.max_disconnect_ms = max_disconnect_ms;
  plan.grace_ms = grace_ms;
  icos::agent::shim::RunShim(plan);
}
