// Per-task control groups on cgroup v2 (unified) and cgroup v1 (one hierarchy
// per controller), behind one interface.
//
// Each task gets the group "<parent>/<cluster_id>/<task_id>" (parent default
// "icos") under each hierarchy root: on v2 one directory, on v1 one directory
// in each of the cpu, cpuset, memory, pids, devices and freezer hierarchies
// that is mounted. The cluster id keeps the agents of two clusters on one host
// apart: task ids ("j1-g0-r0-a0") restart in every cluster, and a shared
// "icos/<task id>" let one cluster's job join, and be killed with, another's.
// Limits map to the kernel files as follows (see
// Documentation/admin-guide/cgroup-v2.rst and Documentation/admin-guide/cgroup-v1/*.rst):
//
//   limit        v2                                   v1
//   cpu          cpu.max "<quota> <period>"           cpu.cfs_period_us, cpu.cfs_quota_us
//   memory       memory.max (+ memory.swap.max = 0)   memory.limit_in_bytes (+ memory.memsw.limit_in_bytes)
//   cpuset       cpuset.cpus, cpuset.mems             cpuset.cpus, cpuset.mems (copied from the parent first)
//   devices      eBPF BPF_CGROUP_DEVICE program       devices.deny "a", then devices.allow per rule
//                (device_filter.h)
//   kill all     cgroup.kill, else cgroup.freeze 1,   freezer.state FROZEN, SIGKILL each pid,
//                SIGKILL each pid, cgroup.freeze 0    THAWED (no freezer: SIGKILL each pid)
//   OOM kills    memory.events "oom_kill N"           memory.oom_control "oom_kill N", else memory.failcnt
//
// A controller that is not available (not mounted on v1, not offered by the
// parent on v2, no BPF for devices) never fails a call: the limit is skipped
// and CreateGroup says so in a warning, so the caller can run the task without
// it and report that, or refuse to.
//
// Containment. Tasks run as unprivileged users (the launcher's setuid) and
// must not be able to leave their group: moving a process needs write access
// to the destination's cgroup.procs (v1 and v2) and, on v2, to that of the
// common ancestor. So every directory this class creates or walks through
// below the hierarchy root, and every interface file in it, is made to belong
// to the agent's effective uid and to be writable by it alone (mode 0755 for
// directories, no group/other write bit on files), repairing groups left
// delegated by someone else. Where the v2 mount has `nsdelegate`
// (CgroupLayout::v2_nsdelegate) a task put in its own cgroup namespace cannot
// move out of it even with write access; the launcher may add that.
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
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "agent/device_access.h"

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
  // cluster. May be nested ("icos/tasks"). Must not be empty.
  std::string parent = "icos";
  // The cluster this agent serves: each task group lives at
  // <parent>/<cluster_id>/<task_id>, so agents of different clusters on one
  // host never touch each other's groups. Required; letters, digits, '-' and
  // '_' only (it is a path component), at most 64 characters.
  std::string cluster_id;
  // CFS period for CPU limits, microseconds. 100 ms is the kernel's default.
  int64_t cpu_period_us = 100'000;
  // v2: KillAll writes cgroup.kill where the kernel has it (>= 5.14). false
  // takes the freezer path that older kernels use (tests of that path).
  bool use_cgroup_kill = true;
};

// Where the hierarchies are: the result of detection or configuration.
struct CgroupLayout {
  CgroupVersion version = CgroupVersion::kV2;
  std::string v2_root;                          // kV2 only
  std::map<std::string, std::string> v1_roots;  // kV1 only: controller -> mount point
  // kV2: the mount has the nsdelegate option (cgroup namespaces are
  // delegation boundaries). From mountinfo; false when unknown.
  bool v2_nsdelegate = false;
  // One line for logs and warnings, e.g. "cgroup v2 at /sys/fs/cgroup".
  std::string Describe() const;
};

// The resource controllers icos manages. Others (io, hugetlb, ...) are left alone.
inline constexpr absl::string_view kCgroupControllers[] = {"cpu", "cpuset", "memory", "pids"};
// v1-only hierarchies icos also uses, for containment: v2 has the freezer in
// its core (cgroup.freeze) and filters devices with eBPF instead.
inline constexpr absl::string_view kCgroupV1ContainmentControllers[] = {"devices", "freezer"};

// Pure: finds the hierarchies in the text of /proc/self/mountinfo. When v1
// hierarchies of any resource controller are mounted they are used, together
// with the v1 devices and freezer hierarchies (hybrid hosts keep their
// controllers on v1 and leave the v2 tree without them); otherwise the
// cgroup2 mount is used. NotFound when neither is mounted.
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
  // The complete device allow-list (TaskDeviceAllowList in device_access.h:
  // the defaults plus the task's own nodes); every other device is denied.
  // Unset: the group's device access is left as it is (a new group allows
  // every device), which tasks should never get.
  std::optional<std::vector<DeviceRule>> devices;
};

class CgroupManager {
 public:
  // Resolves the layout. FailedPrecondition for kDisabled; NotFound when no
  // hierarchy is found. Creates nothing on disk.
  static absl::StatusOr<std::unique_ptr<CgroupManager>> Create(const CgroupOptions& options);

  const CgroupLayout& layout() const { return layout_; }
  CgroupVersion version() const { return layout_.version; }
  const CgroupOptions& options() const { return options_; }

  // Creates "<parent>/<cluster_id>/<task_id>" in every hierarchy (reusing one
  // that is already there, thawed if a crash left it frozen), enabling the
  // managed controllers on the way down on v2, makes every level belong to
  // the agent and writable by it alone (see the file comment), and applies
  // `limits`. Returns one warning per requested limit that could not be
  // applied because its controller is unavailable (devices: no devices
  // hierarchy on v1; no BPF, or not cgroupfs, on v2).
  // Errors: InvalidArgument for a task id that is not one path component, an
  // invalid device rule, or a limit the kernel rejects (e.g. a CPU that does
  // not exist); the errno's status (PermissionDenied, ...) when a directory
  // cannot be made or its ownership/mode cannot be repaired; Internal when
  // the kernel rejects the generated device program.
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

  // Kills every process in the group, including ones that left the task's
  // process group or session (setsid daemons) and ones forking as fast as
  // they can: one write to cgroup.kill where the kernel has it (v2, Linux >=
  // 5.14); else the group is frozen (v2 cgroup.freeze, v1 freezer
  // hierarchy), every listed pid gets SIGKILL, and the group is thawed, so
  // no process can fork between the listing and the kill. Without either,
  // SIGKILL to each listed pid, re-listing until no live process is left.
  // The re-listing also follows the freezer path (bounded to ~100 ms). OK
  // when the group is empty or gone. DeadlineExceeded if processes survive
  // (uninterruptible I/O).
  absl::Status KillAll(const std::string& task_id);

  // How many processes of the group the kernel OOM killer has killed. On v1
  // kernels older than 4.13 (no oom_kill line) this is memory.failcnt, the
  // number of times the limit was hit, which over-approximates.
  // Unavailable when the group has no memory controller.
  absl::StatusOr<int64_t> OomKillCount(const std::string& task_id) const;

  // The group's resident memory now, in KiB: the anonymous memory of all its
  // processes (memory.stat's anon on v2, total_rss on v1), without the page
  // cache: what sacct's MaxRSS adds up over a task's processes. Unavailable
  // when the group has no memory controller.
  absl::StatusOr<int64_t> ResidentKib(const std::string& task_id) const;

  // Removes the task's group from every hierarchy, detaching its v2 device
  // program first once no process is left in it. OK when already gone;
  // FailedPrecondition while processes remain (the kernel refuses with EBUSY).
  absl::Status RemoveGroup(const std::string& task_id);

  // The task ids that have a group under this cluster's parent (in the
  // hierarchy used to list processes), sorted; empty when there is none.
  std::vector<std::string> ListGroups() const;

  // The task's group directory: on v1, the one in the hierarchy used to list
  // processes (pids, else memory, cpu, cpuset, devices, freezer).
  std::string GroupDir(const std::string& task_id) const;

 private:
  CgroupManager(CgroupOptions options, CgroupLayout layout);

  // "<root>/<parent>/<cluster_id>/<task_id>".
  std::string GroupPath(const std::string& root, const std::string& task_id) const;
  // The task's group in one v1 hierarchy; empty when it is not mounted.
  std::string V1Group(const char* controller, const std::string& task_id) const;
  // SIGKILL to every live listed process until none is left.
  absl::Status SignalUntilEmpty(const std::string& task_id);
  // Freeze, SIGKILL every pid listed in `group`, thaw, then SignalUntilEmpty.
  absl::Status KillFrozen(const std::string& task_id, const std::string& group, bool v2);

  // Every hierarchy root the task group lives under (v2: one).
  std::vector<std::string> Roots() const;
  std::string ListingRoot() const;
  std::string MemoryRoot() const;  // empty if no memory hierarchy (v1)

  absl::StatusOr<std::vector<std::string>> CreateGroupV2(const std::string& task_id, const CgroupLimits& limits);
  absl::StatusOr<std::vector<std::string>> CreateGroupV1(const std::string& task_id, const CgroupLimits& limits);

  // MakeDir, then SecureGroupDir of a parent level ("icos", "icos/<cluster>")
  // the first time this manager passes it, or when it is another directory
  // (inode) than the one secured, or no longer the agent's alone.
  // Only root or the agent's uid can change a directory the agent owns, so
  // once secured it stays so; securing it at every launch listed (and
  // stat'ed) every task group under it: 15 ms a launch with 150 groups.
  absl::Status MakeSecureParent(const std::string& dir);

  CgroupOptions options_;
  CgroupLayout layout_;
  std::mutex secured_mu_;
  std::map<std::string, ino_t> secured_parents_;  // path -> inode secured; guarded by secured_mu_
  std::vector<std::string> parent_parts_;         // options_.parent split at '/', then cluster_id
  std::string prefix_;                            // parent_parts_ joined: "icos/<cluster_id>"
};

// "0,2,3" for {0, 2, 3}: the list format cpuset.cpus/cpuset.mems accept.
std::string FormatCpuList(const std::vector<int32_t>& ids);

}  // namespace icos::agent

#endif  // ICOS_AGENT_CGROUPS_H_
