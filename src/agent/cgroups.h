// Per-task control groups on cgroup v2 (unified) and cgroup v1 (one hierarchy
// per controller), behind one interface.
//
// Each task gets the group "<parent>/<task_id>" (parent default "icos") under
// each hierarchy root: on v2 one directory, on v1 one directory in each of the
// cpu, cpuset, memory and pids hierarchies that is mounted. Limits map to the
// kernel files as follows (see Documentation/admin-guide/cgroup-v2.rst and
// Documentation/admin-guide/cgroup-v1/*.rst):
//
//   limit        v2                                   v1
//   cpu          cpu.max "<quota> <period>"           cpu.cfs_period_us, cpu.cfs_quota_us
//   memory       memory.max (+ memory.swap.max = 0)   memory.limit_in_bytes (+ memory.memsw.limit_in_bytes)
//   cpuset       cpuset.cpus, cpuset.mems             cpuset.cpus, cpuset.mems (copied from the parent first)
//   kill all     cgroup.kill, else SIGKILL each pid   SIGKILL each pid in cgroup.procs
//   OOM kills    memory.events "oom_kill N"           memory.oom_control "oom_kill N", else memory.failcnt
//
// A controller that is not available (not mounted on v1, not offered by the
// parent on v2) never fails a call: the limit is skipped and CreateGroup says
// so in a warning, so the caller can run the task without it and report that.
//
// The hierarchy roots are injectable (CgroupOptions) so tests can point the
// code at a temporary directory laid out like cgroupfs; the code therefore
// never creates interface files, it only writes ones that exist, exactly as
// it would on the kernel's filesystem.
//
// Thread-safety: a CgroupManager holds no mutable state after Create(); its
// const and non-const methods may be called from several threads as long as
// no two calls act on the same task id at once.
#ifndef ICOS_AGENT_CGROUPS_H_
#define ICOS_AGENT_CGROUPS_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace icos::agent {

// How CgroupManager finds the hierarchy.
enum class CgroupMode {
  kAuto,      // from mountinfo_path; if unreadable, statfs() of v2_root
  kV2,        // a v2 hierarchy rooted at v2_root (no checks that it is cgroupfs)
  kV1,        // v1 hierarchies at <v1_root>/<controller> (no checks that they are cgroupfs)
  kDisabled,  // no cgroups: Create() fails with FailedPrecondition
};

enum class CgroupVersion { kV1, kV2 };

struct CgroupOptions {
  CgroupMode mode = CgroupMode::kAuto;
  // kAuto reads mount points from here.
  std::string mountinfo_path = "/proc/self/mountinfo";
  // kV2: root of the unified hierarchy (holds cgroup.controllers).
  // kAuto: the path statfs() checks when mountinfo_path is unreadable.
  std::string v2_root = "/sys/fs/cgroup";
  // kV1: directory holding one hierarchy per controller, as <v1_root>/memory.
  std::string v1_root = "/sys/fs/cgroup";
  // The group, relative to each hierarchy root, that holds one child group per
  // task. May be nested ("icos/tasks"). Must not be empty.
  std::string parent = "icos";
  // CFS period for CPU limits, microseconds. 100 ms is the kernel's default.
  int64_t cpu_period_us = 100'000;
};

// Where the hierarchies are: the result of detection or configuration.
struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kV2;
  std::string v2_root;                          // kV2 only
  std::map<std::string, std::string> v1_roots;  // kV1 only: controller -> mount point
  // One line for logs and warnings, e.g. "cgroup v2 at /sys/fs/cgroup".
  std::string Describe() const;
};

// The controllers icos manages. Others (io, hugetlb, ...) are left alone.
inline constexpr absl::string_view kCgroupControllers[] = {"cpu", "cpuset", "memory", "pids"};

// Pure: finds the hierarchies in the text of /proc/self/mountinfo. When v1
// hierarchies of any managed controller are mounted they are used (hybrid
// hosts keep their controllers on v1 and leave the v2 tree without them);
// otherwise the cgroup2 mount is used. NotFound when neither is mounted.
absl::StatusOr<CgroupLayout> ParseMountInfo(absl::string_view mountinfo);

// Applies `options.mode`: detection for kAuto, checks that the configured
// roots exist for kV1/kV2.
absl::StatusOr<CgroupLayout> ResolveCgroupLayout(const CgroupOptions& options);

// Limits for one task group. Zero or empty means "no limit".
struct CgroupLimits {
  int64_t cpu_milli = 0;      // 1000 = one CPU's worth of time per period
  int64_t memory_bytes = 0;   // hard limit; swap is disabled alongside when the kernel allows
  std::vector<int32_t> cpus;  // cpuset CPU ids
  std::vector<int32_t> mems;  // cpuset NUMA node ids
};

class CgroupManager {
 public:
  // Resolves the layout. FailedPrecondition for kDisabled; NotFound when no
  // hierarchy is found. Creates nothing on disk.
  static absl::StatusOr<std::unique_ptr<CgroupManager>> Create(const CgroupOptions& options);

  const CgroupLayout& layout() const { return layout_; }
  CgroupVersion version() const { return layout_.version; }
  const CgroupOptions& options() const { return options_; }

  // Creates "<parent>/<task_id>" in every hierarchy (reusing one that is
  // already there), enabling the managed controllers on the way down on v2,
  // and applies `limits`. Returns one warning per requested limit that could
  // not be applied because its controller is unavailable.
  // Errors: InvalidArgument for a task id that is not one path component or a
  // limit the kernel rejects (e.g. a CPU that does not exist); the errno's
  // status (PermissionDenied, ...) when a directory cannot be made.
  absl::StatusOr<std::vector<std::string>> CreateGroup(const std::string& task_id, const CgroupLimits& limits);

  // The cgroup.procs files of the task's group, one per hierarchy where the
  // group exists. A process joins the group by writing its pid to each; the
  // launcher does that between fork and exec, where only raw syscalls are safe.
  std::vector<std::string> ProcsFiles(const std::string& task_id) const;

  // Moves `pid` (the whole thread group) into the task's group.
  absl::Status AddPid(const std::string& task_id, pid_t pid);

  // Processes in the group, in the order the kernel lists them (zombies may
  // be included on some kernels; KillAll ignores them).
  absl::StatusOr<std::vector<pid_t>> ListPids(const std::string& task_id) const;

  // Kills every process in the group: one write to cgroup.kill where the
  // kernel has it (v2, Linux >= 5.14), else SIGKILL to each listed pid,
  // re-listing until no live process is left (bounded to ~100 ms; processes
  // forked meanwhile are caught by the next round). OK when the group is
  // empty or gone. DeadlineExceeded if processes survive (uninterruptible I/O).
  absl::Status KillAll(const std::string& task_id);

  // How many processes of the group the kernel OOM killer has killed. On v1
  // kernels older than 4.13 (no oom_kill line) this is memory.failcnt, the
  // number of times the limit was hit, which over-approximates.
  // Unavailable when the group has no memory controller.
  absl::StatusOr<int64_t> OomKillCount(const std::string& task_id) const;

  // Removes the task's group from every hierarchy. OK when already gone;
  // FailedPrecondition while processes remain (the kernel refuses with EBUSY).
  absl::Status RemoveGroup(const std::string& task_id);

  // The task's group directory: on v1, the one in the hierarchy used to list
  // processes (pids, else memory, cpu, cpuset).
  std::string GroupDir(const std::string& task_id) const;

 private:
  CgroupManager(CgroupOptions options, CgroupLayout layout);

  // Every hierarchy root the task group lives under (v2: one).
  std::vector<std::string> Roots() const;
  std::string ListingRoot() const;
  std::string MemoryRoot() const;  // empty if no memory hierarchy (v1)

  absl::StatusOr<std::vector<std::string>> CreateGroupV2(const std::string& task_id, const CgroupLimits& limits);
  absl::StatusOr<std::vector<std::string>> CreateGroupV1(const std::string& task_id, const CgroupLimits& limits);

  CgroupOptions options_;
  CgroupLayout layout_;
  std::vector<std::string> parent_parts_;  // options_.parent split at '/'
};

// "0,2,3" for {0, 2, 3}: the list format cpuset.cpus/cpuset.mems accept.
std::string FormatCpuList(const std::vector<int32_t>& ids);

}  // namespace icos::agent

#endif  // ICOS_AGENT_CGROUPS_H_
