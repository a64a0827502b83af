#include "agent/cgroups.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/device_filter.h"
#include "agent/sys_util.h"

namespace icos::agent {
namespace {

// From linux/magic.h; spelled out so the build does not depend on kernel headers.
constexpr int64_t kCgroup2SuperMagic = 0x63677270;

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string UnescapeMountField(absl::string_view field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      absl::string_view oct = field.substr(i + 1, 3);
      if (oct.size() == 3 && std::all_of(oct.begin(), oct.end(), [](char c) { return c >= '0' && c <= '7'; })) {
        out.push_back(static_cast<char>((oct[0] - '0') * 64 + (oct[1] - '0') * 8 + (oct[2] - '0')));
        i += 3;
        continue;
      }
    }
    out.push_back(field[i]);
  }
  return out;
}

bool IsResourceController(absl::string_view name) {
  return std::find(std::begin(kCgroupControllers), std::end(kCgroupControllers), name) != std::end(kCgroupControllers);
}

bool IsV1ContainmentController(absl::string_view name) {
  return std::find(std::begin(kCgroupV1ContainmentControllers), std::end(kCgroupV1ContainmentControllers), name) !=
         std::end(kCgroupV1ContainmentControllers);
}

// Sleeps 1 ms: the poll interval of the bounded waits below (kill rounds,
// freezing). They wait on the kernel, not on time, so no Clock is injected.
void PauseBriefly() {
  struct timespec pause = {0, 1'000'000};
  nanosleep(&pause, nullptr);
}

// The whitespace-separated words of a file such as cgroup.controllers; empty
// when the file is missing (a fake tree, or a kernel without the file).
std::set<std::string> ReadWords(const std::string& path) {
  std::set<std::string> words;
  absl::StatusOr<std::string> text = ReadFile(path);
  if (!text.ok()) return words;
  for (absl::string_view w : absl::StrSplit(*text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    // A fake tree may hold what was written ("+cpu"); the kernel shows "cpu".
    if (!w.empty() && (w[0] == '+' || w[0] == '-')) w.remove_prefix(1);
    words.emplace(w);
  }
  return words;
}

std::string Trimmed(const absl::StatusOr<std::string>& text) {
  return text.ok() ? std::string(absl::StripAsciiWhitespace(*text)) : std::string();
}

absl::Status ValidateTaskId(const std::string& task_id) {
  if (task_id.empty() || task_id == "." || task_id == ".." || task_id.find('/') != std::string::npos ||
      task_id.find('\0') != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("task id '", task_id, "' cannot name a cgroup: it must be one path component"));
  }
  return absl::OkStatus();
}

absl::Status ValidateClusterId(const std::string& cluster_id) {
  if (cluster_id.empty() || cluster_id.size() > 64 || !std::all_of(cluster_id.begin(), cluster_id.end(), [](char c) {
        return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
      })) {
    return absl::InvalidArgumentError(
        absl::StrCat("cluster id '", cluster_id,
                     "' must be 1 to 64 letters, digits, '-' or '_' (it names the "
                     "cluster's cgroup, so agents of two clusters on one host stay apart)"));
  }
  return absl::OkStatus();
}

absl::Status MakeDir(const std::string& path) {
  if (mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoError(errno, absl::StrCat("mkdir ", path));
  return absl::OkStatus();
}

// Makes the group directory `dir` and the interface files in it belong to the
// agent's effective uid and be writable by it alone, so a task (another uid)
// can neither move itself to another group (cgroup.procs, cgroup.threads,
// tasks), make subgroups, nor raise its own limits. The kernel creates them
// that way (0755 directories, 0644 or stricter files, owned by the creator);
// this repairs groups that someone delegated (chown'ed) or made under a
// permissive umask, and checks what it cannot repair.
absl::Status SecureGroupDir(const std::string& dir) {
  const uid_t uid = geteuid();
  const gid_t gid = getegid();
  int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir_fd < 0) return ErrnoError(errno, absl::StrCat("open ", dir));
  DIR* listing = fdopendir(dir_fd);  // owns dir_fd from here
  if (listing == nullptr) {
    int err = errno;
    close(dir_fd);
    return ErrnoError(err, absl::StrCat("opendir ", dir));
  }
  auto fail = [&](absl::string_view what, const std::string& name) {
    absl::Status s = ErrnoError(errno, absl::StrCat(what, " ", dir, "/", name, " (securing the task's cgroup)"));
    closedir(listing);
    return s;
  };
  struct stat st;
  if (fstat(dir_fd, &st) != 0) return fail("stat", ".");
  if (st.st_uid != uid && fchown(dir_fd, uid, gid) != 0) return fail("chown", ".");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && fchmod(dir_fd, st.st_mode & 07755) != 0) return fail("chmod", ".");
  while (struct dirent* entry = readdir(listing)) {
    const char* name = entry->d_name;
    if (std::strcmp(name, ".") == 0 || std::strcmp(name, "..") == 0) continue;
    // Subgroups are secured when they are made; cgroupfs tells their type
    // here, which spares a stat of each of the many tasks' groups under a
    // parent at every launch.
    if (entry->d_type == DT_DIR) continue;
    if (fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue;  // a file of a controller being disabled
      return fail("stat", name);
    }
    if (!S_ISREG(st.st_mode)) continue;  // subgroups are secured when they are made
    if (st.st_uid != uid && fchownat(dir_fd, name, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) return fail("chown", name);
    if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0 && fchmodat(dir_fd, name, st.st_mode & 07755, 0) != 0) {
      return fail("chmod", name);
    }
  }
  closedir(listing);
  return absl::OkStatus();
}

// MakeDir, then SecureGroupDir.
absl::Status MakeSecureDir(const std::string& path) {
  if (absl::Status s = MakeDir(path); !s.ok()) return s;
  return SecureGroupDir(path);
}

// The pids in a cgroup.procs file.
absl::StatusOr<std::vector<pid_t>> ReadPids(const std::string& procs_file) {
  absl::StatusOr<std::string> text = ReadFile(procs_file);
  if (!text.ok()) return text.status();
  std::vector<pid_t> pids;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    int64_t pid = 0;
    if (absl::SimpleAtoi(line, &pid) && pid > 0) pids.push_back(static_cast<pid_t>(pid));
  }
  return pids;
}

// Whether the freezer of `group` reports it frozen: v2 "frozen 1" in
// cgroup.events, v1 "FROZEN" in freezer.state ("FREEZING" while in progress).
bool IsFrozen(const std::string& group, bool v2) {
  if (!v2) return Trimmed(ReadFile(absl::StrCat(group, "/freezer.state"))) == "FROZEN";
  absl::StatusOr<std::string> events = ReadFile(absl::StrCat(group, "/cgroup.events"));
  return events.ok() && absl::StrContains(*events, "frozen 1");
}

// Thaws a group that a crash left frozen (an agent killed inside KillAll), so
// a task started in the reused group does not hang. No-op without a freezer.
absl::Status ThawIfFrozen(const std::string& group, bool v2) {
  if (v2) {
    const std::string freeze = absl::StrCat(group, "/cgroup.freeze");
    if (Trimmed(ReadFile(freeze)) == "1") return WriteExistingFile(freeze, "0");
    return absl::OkStatus();
  }
  const std::string state = absl::StrCat(group, "/freezer.state");
  const std::string value = Trimmed(ReadFile(state));
  if (!value.empty() && value != "THAWED") return WriteExistingFile(state, "THAWED");
  return absl::OkStatus();
}

// Writes a limit; the kernel answers EINVAL/ERANGE for values it rejects,
// which is the caller's mistake, so those become InvalidArgument.
absl::Status WriteLimit(const std::string& path, absl::string_view value) {
  absl::Status s = WriteExistingFile(path, value);
  if (!s.ok() && (absl::IsOutOfRange(s) || absl::IsInvalidArgument(s))) {
    return absl::InvalidArgumentError(absl::StrCat("the kernel rejected the limit: ", s.message()));
  }
  return s;
}

int64_t CpuQuotaUs(int64_t cpu_milli, int64_t period_us) {
  // cpu_milli thousandths of a CPU for each period; the kernel's minimum
  // quota is 1 ms, so tiny limits are rounded up to it.
  return std::max<int64_t>(1000, cpu_milli * period_us / 1000);
}

std::string MissingControllerWarning(absl::string_view limit, absl::string_view controller, const CgroupLayout& layout,
                                     absl::string_view why) {
  return absl::StrCat(limit, " not applied: the ", controller, " controller is not available (", layout.Describe(),
                      why.empty() ? "" : "; ", why, ")");
}

}  // namespace

std::string CgroupLayout::Describe() const {
  if (version == CgroupVersion::kV2) {
    return absl::StrCat("cgroup v2 at ", v2_root, v2_nsdelegate ? " (nsdelegate)" : "");
  }
  std::vector<std::string> parts;
  for (const auto& [controller, root] : v1_roots) parts.push_back(absl::StrCat(controller, "=", root));
  return absl::StrCat("cgroup v1 with ", parts.empty() ? "no controllers" : absl::StrJoin(parts, " "));
}

std::string FormatCpuList(const std::vector<int32_t>& ids) { return absl::StrJoin(ids, ","); }

// The cpuset files have the same names and format on v1 and v2.
absl::Status WriteCpuset(const std::string& group, const CgroupLimits& limits) {
  if (!limits.cpus.empty()) {
    absl::Status s = WriteLimit(absl::StrCat(group, "/cpuset.cpus"), FormatCpuList(limits.cpus));
    if (!s.ok()) return s;
  }
  if (!limits.mems.empty()) {
    absl::Status s = WriteLimit(absl::StrCat(group, "/cpuset.mems"), FormatCpuList(limits.mems));
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

namespace {

// One cgroup mount of mountinfo.
struct CgroupMount {
  std::string fstype;  // "cgroup" or "cgroup2"
  std::string mount_point;
  std::vector<std::string> super_options;  // "rw", "cpu", "nsdelegate", ...
};

std::vector<CgroupMount> CgroupMounts(absl::string_view mountinfo) {
  std::vector<CgroupMount> mounts;
  for (absl::string_view line : absl::StrSplit(mountinfo, '\n', absl::SkipEmpty())) {
    // "<id> <parent> <maj:min> <root> <mount point> <opts> [optional...] - <fstype> <source> <super opts>"
    size_t dash = line.find(" - ");
    if (dash == absl::string_view::npos) continue;
    std::vector<absl::string_view> left = absl::StrSplit(line.substr(0, dash), ' ', absl::SkipEmpty());
    std::vector<absl::string_view> right = absl::StrSplit(line.substr(dash + 3), ' ', absl::SkipEmpty());
    if (left.size() < 5 || right.empty() || (right[0] != "cgroup" && right[0] != "cgroup2")) continue;
    CgroupMount mount{.fstype = std::string(right[0]), .mount_point = UnescapeMountField(left[4])};
    if (right.size() >= 3) mount.super_options = absl::StrSplit(right[2], ',');
    mounts.push_back(std::move(mount));
  }
  return mounts;
}

bool HasOption(const CgroupMount& mount, absl::string_view option) {
  return std::find(mount.super_options.begin(), mount.super_options.end(), option) != mount.super_options.end();
}

}  // namespace

absl::StatusOr<CgroupLayout> ParseMountInfo(absl::string_view mountinfo) {
  CgroupLayout v1;
  v1.version = CgroupVersion::kV1;
  bool has_resource_controller = false;
  const CgroupMount* v2 = nullptr;
  const std::vector<CgroupMount> mounts = CgroupMounts(mountinfo);
  for (const CgroupMount& mount : mounts) {
    if (mount.fstype == "cgroup2") {
      if (v2 == nullptr) v2 = &mount;
      continue;
    }
    for (const std::string& opt : mount.super_options) {
      const bool resource = IsResourceController(opt);
      if (resource || IsV1ContainmentController(opt)) v1.v1_roots.emplace(opt, mount.mount_point);
      has_resource_controller |= resource;
    }
  }
  // The version is decided by the resource controllers alone: a v2 host that
  // also mounts a lone v1 hierarchy (say, freezer for an old tool) is v2.
  if (has_resource_controller) return v1;
  if (v2 != nullptr) {
    CgroupLayout layout;
    layout.version = CgroupVersion::kV2;
    layout.v2_root = v2->mount_point;
    layout.v2_nsdelegate = HasOption(*v2, "nsdelegate");
    return layout;
  }
  return absl::NotFoundError("no cgroup v1 or v2 hierarchy is mounted");
}

absl::StatusOr<CgroupLayout> ResolveCgroupLayout(const CgroupOptions& options) {
  CgroupLayout layout;
  switch (options.mode) {
    case CgroupMode::kDisabled:
      return absl::FailedPreconditionError("cgroups are disabled by configuration");
    case CgroupMode::kV2:
      if (!PathExists(absl::StrCat(options.v2_root, "/cgroup.procs"))) {
        return absl::NotFoundError(absl::StrCat("no cgroup v2 hierarchy at ", options.v2_root));
      }
      layout.version = CgroupVersion::kV2;
      layout.v2_root = options.v2_root;
      if (absl::StatusOr<std::string> mountinfo = ReadFile(options.mountinfo_path); mountinfo.ok()) {
        for (const CgroupMount& mount : CgroupMounts(*mountinfo)) {
          if (mount.fstype == "cgroup2" && mount.mount_point == options.v2_root) {
            layout.v2_nsdelegate = HasOption(mount, "nsdelegate");
          }
        }
      }
      return layout;
    case CgroupMode::kV1: {
      layout.version = CgroupVersion::kV1;
      bool has_resource_controller = false;
      auto add = [&](absl::string_view controller) {
        std::string root = absl::StrCat(options.v1_root, "/", controller);
        if (!PathExists(absl::StrCat(root, "/cgroup.procs"))) return false;
        layout.v1_roots.emplace(controller, root);
        return true;
      };
      for (absl::string_view controller : kCgroupControllers) has_resource_controller |= add(controller);
      for (absl::string_view controller : kCgroupV1ContainmentControllers) add(controller);
      if (!has_resource_controller) {
        return absl::NotFoundError(absl::StrCat("no cgroup v1 controller hierarchy under ", options.v1_root));
      }
      return layout;
    }
    case CgroupMode::kAuto:
      break;
  }
  absl::StatusOr<std::string> mountinfo = ReadFile(options.mountinfo_path);
  if (mountinfo.ok()) return ParseMountInfo(*mountinfo);
  // No /proc (a minimal chroot): the filesystem type of the usual mount point
  // tells v2 (cgroup2 itself) from v1 (a tmpfs holding one mount per controller).
  struct statfs fs;
  if (statfs(options.v2_root.c_str(), &fs) == 0 && static_cast<int64_t>(fs.f_type) == kCgroup2SuperMagic) {
    layout.version = CgroupVersion::kV2;
    layout.v2_root = options.v2_root;
    return layout;
  }
  CgroupOptions v1 = options;
  v1.mode = CgroupMode::kV1;
  return ResolveCgroupLayout(v1);
}

absl::StatusOr<std::unique_ptr<CgroupManager>> CgroupManager::Create(const CgroupOptions& options) {
  if (options.mode == CgroupMode::kDisabled) return ResolveCgroupLayout(options).status();
  std::vector<std::string> parts = absl::StrSplit(options.parent, '/', absl::SkipEmpty());
  if (parts.empty() ||
      std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p == ".." || p == "."; })) {
    return absl::InvalidArgumentError(absl::StrCat("cgroup parent '", options.parent, "' must be a relative path"));
  }
  if (absl::Status s = ValidateClusterId(options.cluster_id); !s.ok()) return s;
  if (options.cpu_period_us < 1000 || options.cpu_period_us > 1'000'000) {
    return absl::InvalidArgumentError("cpu_period_us must be within [1000, 1000000] (the kernel's bounds)");
  }
  absl::StatusOr<CgroupLayout> layout = ResolveCgroupLayout(options);
  if (!layout.ok()) return layout.status();
  auto manager = std::unique_ptr<CgroupManager>(new CgroupManager(options, *std::move(layout)));
  parts.push_back(options.cluster_id);
  manager->prefix_ = absl::StrJoin(parts, "/");
  manager->parent_parts_ = std::move(parts);
  return manager;
}

absl::Status CgroupManager::MakeSecureParent(const std::string& dir) {
  if (absl::Status s = MakeDir(dir); !s.ok()) return s;
  struct stat st;
  if (stat(dir.c_str(), &st) != 0) return ErrnoError(errno, absl::StrCat("stat ", dir));
  std::lock_guard<std::mutex> lock(secured_mu_);
  auto it = secured_parents_.find(dir);
  // Another directory (inode), or this one given away, is secured again.
  if (it != secured_parents_.end() && it->second == st.st_ino && st.st_uid == geteuid() &&
      (st.st_mode & (S_IWGRP | S_IWOTH)) == 0) {
    return absl::OkStatus();
  }
  if (absl::Status s = SecureGroupDir(dir); !s.ok()) return s;
  secured_parents_[dir] = st.st_ino;
  return absl::OkStatus();
}

CgroupManager::CgroupManager(CgroupOptions options, CgroupLayout layout)
    : options_(std::move(options)), layout_(std::move(layout)) {}

std::vector<std::string> CgroupManager::Roots() const {
  if (layout_.version == CgroupVersion::kV2) return {layout_.v2_root};
  // Co-mounted controllers ("cpu,cpuacct") share one root: list it once.
  std::vector<std::string> roots;
  for (const auto& [controller, root] : layout_.v1_roots) {
    if (std::find(roots.begin(), roots.end(), root) == roots.end()) roots.push_back(root);
  }
  return roots;
}

std::string CgroupManager::ListingRoot() const {
  if (layout_.version == CgroupVersion::kV2) return layout_.v2_root;
  for (const char* controller : {"pids", "memory", "cpu", "cpuset", "devices", "freezer"}) {
    auto it = layout_.v1_roots.find(controller);
    if (it != layout_.v1_roots.end()) return it->second;
  }
  return layout_.v1_roots.empty() ? std::string() : layout_.v1_roots.begin()->second;
}

std::string CgroupManager::MemoryRoot() const {
  if (layout_.version == CgroupVersion::kV2) return layout_.v2_root;
  auto it = layout_.v1_roots.find("memory");
  return it == layout_.v1_roots.end() ? std::string() : it->second;
}

std::string CgroupManager::GroupPath(const std::string& root, const std::string& task_id) const {
  return absl::StrCat(root, "/", prefix_, "/", task_id);
}

std::string CgroupManager::V1Group(const char* controller, const std::string& task_id) const {
  auto it = layout_.v1_roots.find(controller);
  return it == layout_.v1_roots.end() ? std::string() : GroupPath(it->second, task_id);
}

std::string CgroupManager::GroupDir(const std::string& task_id) const { return GroupPath(ListingRoot(), task_id); }

std::vector<std::string> CgroupManager::ListGroups() const {
  std::vector<std::string> ids;
  const std::string dir = absl::StrCat(ListingRoot(), "/", prefix_);
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return ids;
  while (struct dirent* entry = readdir(d)) {
    const std::string name = entry->d_name;
    if (entry->d_type == DT_DIR && ValidateTaskId(name).ok()) ids.push_back(name);
  }
  closedir(d);
  std::sort(ids.begin(), ids.end());
  return ids;
}

absl::StatusOr<std::vector<std::string>> CgroupManager::CreateGroup(const std::string& task_id,
                                                                    const CgroupLimits& limits) {
  if (absl::Status s = ValidateTaskId(task_id); !s.ok()) return s;
  if (limits.devices.has_value()) {
    for (const DeviceRule& rule : *limits.devices) {
      if (absl::Status s = ValidateDeviceRule(rule); !s.ok()) return s;
    }
  }
  return layout_.version == CgroupVersion::kV2 ? CreateGroupV2(task_id, limits) : CreateGroupV1(task_id, limits);
}

absl::StatusOr<std::vector<std::string>> CgroupManager::CreateGroupV2(const std::string& task_id,
                                                                      const CgroupLimits& limits) {
  // A controller reaches a group only if every ancestor lists it in
  // cgroup.subtree_control, so enable them from the root down. Failures are
  // remembered rather than returned: the task can still run without them.
  std::map<std::string, std::string> enable_errors;
  std::string dir = layout_.v2_root;
  for (size_t level = 0; level <= parent_parts_.size(); ++level) {
    if (level > 0) {
      dir = absl::StrCat(dir, "/", parent_parts_[level - 1]);
      if (absl::Status s = MakeSecureParent(dir); !s.ok()) return s;
    }
    std::set<std::string> available = ReadWords(absl::StrCat(dir, "/cgroup.controllers"));
    std::set<std::string> enabled = ReadWords(absl::StrCat(dir, "/cgroup.subtree_control"));
    for (absl::string_view controller : kCgroupControllers) {
      std::string name(controller);
      if (!available.count(name) || enabled.count(name)) continue;
      // One controller per write, so one refusal does not block the others.
      absl::Status s = WriteExistingFile(absl::StrCat(dir, "/cgroup.subtree_control"), absl::StrCat("+", name));
      if (!s.ok()) enable_errors.emplace(name, std::string(s.message()));
    }
  }
  const std::string group = absl::StrCat(dir, "/", task_id);
  if (absl::Status s = MakeSecureDir(group); !s.ok()) return s;
  if (absl::Status s = ThawIfFrozen(group, /*v2=*/true); !s.ok()) return s;
  const std::set<std::string> controllers = ReadWords(absl::StrCat(group, "/cgroup.controllers"));

  std::vector<std::string> warnings;
  auto missing = [&](absl::string_view limit, const std::string& controller) {
    auto it = enable_errors.find(controller);
    warnings.push_back(
        MissingControllerWarning(limit, controller, layout_, it == enable_errors.end() ? "" : it->second));
  };
  if (limits.cpu_milli > 0) {
    if (controllers.count("cpu")) {
      std::string value =
          absl::StrCat(CpuQuotaUs(limits.cpu_milli, options_.cpu_period_us), " ", options_.cpu_period_us);
      if (absl::Status s = WriteLimit(absl::StrCat(group, "/cpu.max"), value); !s.ok()) return s;
    } else {
      missing(absl::StrCat("CPU limit of ", limits.cpu_milli, "m"), "cpu");
    }
  }
  if (limits.memory_bytes > 0) {
    if (controllers.count("memory")) {
      if (absl::Status s = WriteLimit(absl::StrCat(group, "/memory.max"), absl::StrCat(limits.memory_bytes)); !s.ok()) {
        return s;
      }
      // Without this the task would spill into swap instead of being OOM
      // killed at its limit. The file only exists with swap accounting on.
      std::string swap_max = absl::StrCat(group, "/memory.swap.max");
      if (PathExists(swap_max)) {
        if (absl::Status s = WriteExistingFile(swap_max, "0"); !s.ok()) {
          warnings.push_back(absl::StrCat("swap not disabled for the task: ", s.message()));
        }
      }
    } else {
      missing(absl::StrCat("memory limit of ", limits.memory_bytes, " bytes"), "memory");
    }
  }
  if (!limits.cpus.empty() || !limits.mems.empty()) {
    if (controllers.count("cpuset")) {
      // v2 cpusets start empty, meaning "inherit the parent's", so unlike v1
      // nothing has to be copied before the group is usable.
      if (absl::Status s = WriteCpuset(group, limits); !s.ok()) return s;
    } else {
      missing("cpuset binding", "cpuset");
    }
  }
  if (limits.devices.has_value()) {
    // Applied before any process joins, so a task never runs unfiltered.
    absl::Status s = AttachDeviceFilter(group, *limits.devices);
    if (absl::IsUnavailable(s)) {
      warnings.push_back(absl::StrCat("device allow-list not applied: no cgroup v2 device filter (", s.message(), ")"));
    } else if (!s.ok()) {
      return s;
    }
  }
  return warnings;
}

absl::StatusOr<std::vector<std::string>> CgroupManager::CreateGroupV1(const std::string& task_id,
                                                                      const CgroupLimits& limits) {
  for (const std::string& root : Roots()) {
    const bool is_cpuset = PathExists(absl::StrCat(root, "/cpuset.cpus"));
    std::string dir = root;
    std::vector<std::string> levels = parent_parts_;
    levels.push_back(task_id);
    for (size_t level = 0; level < levels.size(); ++level) {
      std::string child = absl::StrCat(dir, "/", levels[level]);
      absl::Status s = level + 1 < levels.size() ? MakeSecureParent(child) : MakeSecureDir(child);
      if (!s.ok()) return s;
      if (is_cpuset) {
        // A new v1 cpuset starts with no CPUs and no memory nodes, and the
        // kernel refuses to add a task to it (ENOSPC) until both are set.
        for (const char* file : {"/cpuset.cpus", "/cpuset.mems"}) {
          if (!Trimmed(ReadFile(absl::StrCat(child, file))).empty()) continue;
          std::string inherited = Trimmed(ReadFile(absl::StrCat(dir, file)));
          if (absl::Status s = WriteExistingFile(absl::StrCat(child, file), inherited); !s.ok()) return s;
        }
      }
      dir = std::move(child);
    }
  }
  if (std::string freezer = V1Group("freezer", task_id); !freezer.empty()) {
    if (absl::Status s = ThawIfFrozen(freezer, /*v2=*/false); !s.ok()) return s;
  }

  std::vector<std::string> warnings;
  if (limits.cpu_milli > 0) {
    if (std::string group = V1Group("cpu", task_id); !group.empty()) {
      absl::Status s = WriteLimit(absl::StrCat(group, "/cpu.cfs_period_us"), absl::StrCat(options_.cpu_period_us));
      if (s.ok()) {
        s = WriteLimit(absl::StrCat(group, "/cpu.cfs_quota_us"),
                       absl::StrCat(CpuQuotaUs(limits.cpu_milli, options_.cpu_period_us)));
      }
      if (!s.ok()) return s;
    } else {
      warnings.push_back(MissingControllerWarning(absl::StrCat("CPU limit of ", limits.cpu_milli, "m"), "cpu", layout_,
                                                  "not mounted"));
    }
  }
  if (limits.memory_bytes > 0) {
    if (std::string group = V1Group("memory", task_id); !group.empty()) {
      std::string bytes = absl::StrCat(limits.memory_bytes);
      // memory+swap gets the same limit so the task cannot escape into swap.
      // The kernel keeps memsw >= limit_in_bytes at every step, so a group that
      // already exists with a lower memsw (an earlier task of the same id)
      // first has memsw lifted, then both set in order.
      std::string memsw = absl::StrCat(group, "/memory.memsw.limit_in_bytes");
      const bool has_memsw = PathExists(memsw);
      if (has_memsw) (void)WriteExistingFile(memsw, "-1");
      if (absl::Status s = WriteLimit(absl::StrCat(group, "/memory.limit_in_bytes"), bytes); !s.ok()) return s;
      if (has_memsw) {
        if (absl::Status s = WriteExistingFile(memsw, bytes); !s.ok()) {
          warnings.push_back(absl::StrCat("swap not limited for the task: ", s.message()));
        }
      }
    } else {
      warnings.push_back(MissingControllerWarning(absl::StrCat("memory limit of ", limits.memory_bytes, " bytes"),
                                                  "memory", layout_, "not mounted"));
    }
  }
  if (!limits.cpus.empty() || !limits.mems.empty()) {
    if (std::string group = V1Group("cpuset", task_id); !group.empty()) {
      if (absl::Status s = WriteCpuset(group, limits); !s.ok()) return s;
    } else {
      warnings.push_back(MissingControllerWarning("cpuset binding", "cpuset", layout_, "not mounted"));
    }
  }
  if (limits.devices.has_value()) {
    if (std::string group = V1Group("devices", task_id); !group.empty()) {
      // "a" clears the group's list and denies everything; each allow adds
      // one rule (the kernel parses one rule per write). A reused group gets
      // exactly the new list.
      if (absl::Status s = WriteLimit(absl::StrCat(group, "/devices.deny"), "a"); !s.ok()) return s;
      for (const DeviceRule& rule : *limits.devices) {
        if (absl::Status s = WriteLimit(absl::StrCat(group, "/devices.allow"), FormatDeviceRule(rule)); !s.ok()) {
          return s;
        }
      }
    } else {
      warnings.push_back(MissingControllerWarning("device allow-list", "devices", layout_, "not mounted"));
    }
  }
  return warnings;
}

std::vector<std::string> CgroupManager::ProcsFiles(const std::string& task_id) const {
  std::vector<std::string> files;
  if (!ValidateTaskId(task_id).ok()) return files;
  for (const std::string& root : Roots()) {
    std::string group = GroupPath(root, task_id);
    if (IsDirectory(group)) files.push_back(absl::StrCat(group, "/cgroup.procs"));
  }
  return files;
}

absl::Status CgroupManager::AddPid(const std::string& task_id, pid_t pid) {
  if (absl::Status s = ValidateTaskId(task_id); !s.ok()) return s;
  std::vector<std::string> files = ProcsFiles(task_id);
  if (files.empty()) return absl::NotFoundError(absl::StrCat("no cgroup for task ", task_id));
  for (const std::string& file : files) {
    if (absl::Status s = WriteExistingFile(file, absl::StrCat(pid)); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<pid_t>> CgroupManager::ListPids(const std::string& task_id) const {
  if (absl::Status s = ValidateTaskId(task_id); !s.ok()) return s;
  return ReadPids(absl::StrCat(GroupDir(task_id), "/cgroup.procs"));
}

absl::Status CgroupManager::KillAll(const std::string& task_id) {
  if (absl::Status s = ValidateTaskId(task_id); !s.ok()) return s;
  const std::string group = GroupDir(task_id);
  if (!IsDirectory(group)) return absl::OkStatus();
  if (layout_.version == CgroupVersion::kV2) {
    // The kernel kills the whole subtree atomically, forks in flight included.
    const std::string kill_file = absl::StrCat(group, "/cgroup.kill");
    if (options_.use_cgroup_kill && PathExists(kill_file)) return WriteExistingFile(kill_file, "1");
    // Linux 5.2 to 5.13: the v2 freezer.
    if (PathExists(absl::StrCat(group, "/cgroup.freeze"))) return KillFrozen(task_id, group, /*v2=*/true);
  } else if (std::string freezer = V1Group("freezer", task_id); !freezer.empty() && IsDirectory(freezer)) {
    return KillFrozen(task_id, freezer, /*v2=*/false);
  }
  return SignalUntilEmpty(task_id);
}

absl::Status CgroupManager::KillFrozen(const std::string& task_id, const std::string& group, bool v2) {
  // A frozen process cannot fork, so one listing of a frozen group is
  // complete: a fork loop or a daemon forking on SIGCHLD cannot outrun the
  // kill. A process in uninterruptible sleep may keep the group FREEZING;
  // after a bounded wait it is killed anyway and the re-listing below catches
  // whatever it spawned.
  const std::string freeze_file = absl::StrCat(group, v2 ? "/cgroup.freeze" : "/freezer.state");
  absl::Status frozen = WriteExistingFile(freeze_file, v2 ? "1" : "FROZEN");
  if (frozen.ok()) {
    constexpr int kMaxFreezeWaits = 1000;  // ~1 s
    for (int i = 0; i < kMaxFreezeWaits && !IsFrozen(group, v2); ++i) PauseBriefly();
    absl::StatusOr<std::vector<pid_t>> pids = ReadPids(absl::StrCat(group, "/cgroup.procs"));
    if (pids.ok()) {
      // v2 delivers SIGKILL to frozen processes at once; v1 queues it until
      // they are thawed, and then it is the first thing they handle.
      for (pid_t pid : *pids) kill(pid, SIGKILL);
    }
  }
  // Thaw whatever happened above: a group left frozen hangs the next task
  // that reuses it (CreateGroup also thaws, for crashes in between).
  absl::Status thawed = WriteExistingFile(freeze_file, v2 ? "0" : "THAWED");
  absl::Status killed = SignalUntilEmpty(task_id);
  if (!killed.ok()) return killed;
  return thawed;
}

absl::Status CgroupManager::SignalUntilEmpty(const std::string& task_id) {
  // Without a freezer a process may fork between our listing and our kill,
  // so list again until a round finds nothing alive.
  constexpr int kMaxRounds = 100;
  size_t alive = 0;
  for (int round = 0; round < kMaxRounds; ++round) {
    absl::StatusOr<std::vector<pid_t>> pids = ListPids(task_id);
    if (!pids.ok()) return absl::IsNotFound(pids.status()) ? absl::OkStatus() : pids.status();
    alive = 0;
    for (pid_t pid : *pids) {
      if (!ProcessAlive(pid, 0)) continue;
      ++alive;
      kill(pid, SIGKILL);
    }
    if (alive == 0) return absl::OkStatus();
    // SIGKILL is delivered asynchronously; give the victims a moment to exit.
    PauseBriefly();
  }
  return absl::DeadlineExceededError(
      absl::StrCat(alive, " processes of ", GroupDir(task_id), " survived SIGKILL (uninterruptible sleep?)"));
}

namespace {

// The value of `key` in a "key value" per line file (memory.stat, memory.events).
std::optional<int64_t> FindCounter(const std::string& text, absl::string_view key) {
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv = absl::StrSplit(line, absl::MaxSplits(' ', 1));
    int64_t value = 0;
    if (kv.first == key && absl::SimpleAtoi(kv.second, &value)) return value;
  }
  return std::nullopt;
}

}  // namespace

absl::StatusOr<int64_t> CgroupManager::ResidentKib(const std::string& task_id) const {
  if (absl::Status s = ValidateTaskId(task_id); !s.ok()) return s;
  const std::string root = MemoryRoot();
  if (root.empty()) return absl::UnavailableError(absl::StrCat("no memory controller (", layout_.Describe(), ")"));
  const std::string file = absl::StrCat(GroupPath(root, task_id), "/memory.stat");
  absl::StatusOr<std::string> stat = ReadFile(file);
  if (!stat.ok()) return stat.status();
  // v1's total_ counts the group's descendants too, as v2's anon does.
  const std::optional<int64_t> bytes =
      layout_.version == CgroupVersion::kV2 ? FindCounter(*stat, "anon") : FindCounter(*stat, "total_rss");
  if (!bytes) return absl::UnavailableError(absl::StrCat(file, " says nothing of anonymous memory"));
  return *bytes / 1024;
}

absl::StatusOr<int64_t> CgroupManager::OomKillCount(const std::string& task_id) const {
  if (absl::Status s = ValidateTaskId(task_id); !s.ok()) return s;
  std::string root = MemoryRoot();
  if (root.empty()) return absl::UnavailableError(absl::StrCat("no memory controller (", layout_.Describe(), ")"));
  std::string group = GroupPath(root, task_id);
  if (layout_.version == CgroupVersion::kV2) {
    absl::StatusOr<std::string> events = ReadFile(absl::StrCat(group, "/memory.events"));
    if (!events.ok()) {
      if (absl::IsNotFound(events.status()) && IsDirectory(group)) {
        return absl::UnavailableError(
            absl::StrCat("the memory controller is not enabled for ", group, " (", layout_.Describe(), ")"));
      }
      return events.status();
    }
    return FindCounter(*events, "oom_kill").value_or(0);
  }
  absl::StatusOr<std::string> oom_control = ReadFile(absl::StrCat(group, "/memory.oom_control"));
  if (!oom_control.ok()) return oom_control.status();
  if (std::optional<int64_t> kills = FindCounter(*oom_control, "oom_kill")) return *kills;
  // Kernels before 4.13 do not count OOM kills per group.
  absl::StatusOr<std::string> failcnt = ReadFile(absl::StrCat(group, "/memory.failcnt"));
  if (!failcnt.ok()) return failcnt.status();
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*failcnt), &value)) {
    return absl::InternalError(absl::StrCat("unparsable ", group, "/memory.failcnt"));
  }
  return value;
}

absl::Status CgroupManager::RemoveGroup(const std::string& task_id) {
  if (absl::Status s = ValidateTaskId(task_id); !s.ok()) return s;
  if (layout_.version == CgroupVersion::kV2) {
    // The kernel releases a removed group's programs itself, but only once
    // the group is freed, which may be later; detach now so nothing outlives
    // the task. Only an empty group: a process still in it must stay filtered.
    const std::string group = GroupDir(task_id);
    absl::StatusOr<std::vector<pid_t>> pids = ListPids(task_id);
    if (pids.ok() && pids->empty()) {
      absl::Status s = DetachDeviceFilters(group);
      if (!s.ok() && !absl::IsUnavailable(s)) return s;
    }
  }
  for (const std::string& root : Roots()) {
    std::string group = GroupPath(root, task_id);
    if (rmdir(group.c_str()) == 0 || errno == ENOENT) continue;
    if (errno == EBUSY) {
      return absl::FailedPreconditionError(absl::StrCat("cannot remove ", group, ": processes are still in it"));
    }
    return ErrnoError(errno, absl::StrCat("rmdir ", group));
  }
  return absl::OkStatus();
}

}  // namespace icos::agent
