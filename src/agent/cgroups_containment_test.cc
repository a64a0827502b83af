// Containment: cluster-scoped groups, groups a task cannot leave, kills a
// task cannot outrun, and device access enforced by the device controller.
// Fake trees first (any user), then the real hierarchies of this machine
// (root only; each test says why it skips).
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/cgroups.h"
#include "agent/containment_test_util.h"
#include "agent/device_access.h"
#include "agent/device_filter.h"
#include "agent/program_run.h"
#include "agent/sys_util.h"
#include "agent/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::icos::agent::testing::JoinGroup;
using ::icos::agent::testing::OpenErrno;
using ::icos::agent::testing::RealCgroup2Mount;
using ::icos::agent::testing::RunInGroup;
using ::icos::agent::testing::ScopedUser;
using ::icos::agent::testing::Slurp;
using ::icos::agent::testing::Spit;
using ::icos::agent::testing::TempDir;
using ::icos::agent::testing::WaitUntil;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::SizeIs;

DeviceRule C(int64_t major, int64_t minor, uint8_t access = kDeviceReadWrite) {
  return {.type = DeviceType::kChar, .major = major, .minor = minor, .access = access};
}

pid_t SpawnSleeper() {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sleep", "sleep", "1000", static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

mode_t ModeOf(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_mode & 07777 : 0;
}

// ---------------------------------------------------------------------------
// Options and layout.
// ---------------------------------------------------------------------------

TEST(CgroupClusterIdTest, IsRequiredAndMustBeOnePlainComponent) {
  TempDir tmp;
  Spit(tmp.Sub("cgroup.procs"), "");
  for (const char* bad : {"", "a/b", "..", "x y", "c.1", "ü"}) {
    EXPECT_EQ(
        CgroupManager::Create({.mode = CgroupMode::kV2, .v2_root = tmp.path(), .cluster_id = bad}).status().code(),
        absl::StatusCode::kInvalidArgument)
        << "'" << bad << "'";
  }
  EXPECT_FALSE(
      CgroupManager::Create({.mode = CgroupMode::kV2, .v2_root = tmp.path(), .cluster_id = std::string(65, 'a')}).ok());
  EXPECT_TRUE(CgroupManager::Create({.mode = CgroupMode::kV2, .v2_root = tmp.path(), .cluster_id = "c-3f9a_01"}).ok());
}

TEST(CgroupClusterIdTest, GroupsLiveUnderTheCluster) {
  TempDir tmp;
  Spit(tmp.Sub("cgroup.procs"), "");
  auto a = CgroupManager::Create({.mode = CgroupMode::kV2, .v2_root = tmp.path(), .cluster_id = "c-a"});
  auto b = CgroupManager::Create({.mode = CgroupMode::kV2, .v2_root = tmp.path(), .cluster_id = "c-b"});
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*a)->GroupDir("j1-g0-r0-a0"), tmp.path() + "/icos/c-a/j1-g0-r0-a0");
  EXPECT_EQ((*b)->GroupDir("j1-g0-r0-a0"), tmp.path() + "/icos/c-b/j1-g0-r0-a0");
}

TEST(CgroupLayoutTest, HybridHostAddsDevicesAndFreezer) {
  absl::StatusOr<CgroupLayout> layout = ParseMountInfo(
      "32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
      "35 31 0:32 / /sys/fs/cgroup/devices rw - cgroup cgroup rw,devices\n"
      "36 31 0:33 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer\n"
      "40 31 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n");
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->version, CgroupVersion::kV1);
  EXPECT_THAT(layout->v1_roots,
              ElementsAre(Pair("cpu", "/sys/fs/cgroup/cpu"), Pair("devices", "/sys/fs/cgroup/devices"),
                          Pair("freezer", "/sys/fs/cgroup/freezer")));
}

TEST(CgroupLayoutTest, LoneV1FreezerDoesNotMakeAV2HostV1) {
  absl::StatusOr<CgroupLayout> layout = ParseMountInfo(
      "25 20 0:22 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"
      "26 25 0:23 / /run/freezer rw - cgroup cgroup rw,freezer\n");
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->version, CgroupVersion::kV2);
  EXPECT_TRUE(layout->v2_nsdelegate);
  EXPECT_THAT(layout->Describe(), HasSubstr("nsdelegate"));
}

TEST(CgroupLayoutTest, NsdelegateIsReadForAConfiguredV2Root) {
  TempDir tmp;
  Spit(tmp.Sub("cgroup.procs"), "");
  Spit(tmp.Sub("mountinfo"), absl::StrCat("9 1 0:9 / ", tmp.path(), " rw - cgroup2 cgroup2 rw,nsdelegate\n"));
  absl::StatusOr<CgroupLayout> layout =
      ResolveCgroupLayout({.mode = CgroupMode::kV2, .mountinfo_path = tmp.Sub("mountinfo"), .v2_root = tmp.path()});
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_TRUE(layout->v2_nsdelegate);
}

// ---------------------------------------------------------------------------
// Fake trees: modes, freezer protocol, device files.
// ---------------------------------------------------------------------------

// A fake v1 tree with the given controllers, each with the groups
// icos/c1/t1 laid out as the kernel would show them.
class CgroupV1FakeContainmentTest : public ::testing::Test {
 protected:
  void Make(const std::vector<std::string>& controllers) {
    root_ = tmp_.Sub("cgroup");
    for (const std::string& controller : controllers) {
      for (const char* level : {"", "/icos", "/icos/c1", "/icos/c1/t1"}) {
        std::string dir = root_ + "/" + controller + level;
        std::filesystem::create_directories(dir);
        Spit(dir + "/cgroup.procs", "");
        Spit(dir + "/tasks", "");
        if (controller == "devices") {
          Spit(dir + "/devices.allow", "");
          Spit(dir + "/devices.deny", "");
          Spit(dir + "/devices.list", "a *:* rwm\n");
        }
        if (controller == "freezer" && level[0] != '\0') Spit(dir + "/freezer.state", "THAWED\n");
      }
    }
    auto manager = CgroupManager::Create({.mode = CgroupMode::kV1, .v1_root = root_, .cluster_id = "c1"});
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = *std::move(manager);
  }
  std::string Group(const std::string& controller) const { return root_ + "/" + controller + "/icos/c1/t1"; }

  TempDir tmp_;
  std::string root_;
  std::unique_ptr<CgroupManager> manager_;
};

TEST_F(CgroupV1FakeContainmentTest, DeniesAllThenAllowsEachRule) {
  Make({"memory", "devices"});
  absl::StatusOr<std::vector<std::string>> warnings = manager_->CreateGroup("t1", {.devices = {{C(1, 3), C(195, 0)}}});
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  EXPECT_THAT(*warnings, IsEmpty());
  EXPECT_EQ(Slurp(Group("devices") + "/devices.deny"), "a");
  EXPECT_EQ(Slurp(Group("devices") + "/devices.allow"), "c 195:0 rw");  // the fake keeps the last write
}

TEST_F(CgroupV1FakeContainmentTest, NoDevicesHierarchyIsAWarning) {
  Make({"memory"});
  absl::StatusOr<std::vector<std::string>> warnings = manager_->CreateGroup("t1", {.devices = {{C(1, 3)}}});
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  EXPECT_THAT(*warnings, ElementsAre(HasSubstr("devices controller is not available")));
}

TEST_F(CgroupV1FakeContainmentTest, InvalidDeviceRuleIsRejectedBeforeAnythingIsMade) {
  Make({"memory", "devices"});
  EXPECT_EQ(manager_->CreateGroup("t2", {.devices = {{C(1, 3, 0)}}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(PathExists(root_ + "/memory/icos/c1/t2"));
}

TEST_F(CgroupV1FakeContainmentTest, KillAllFreezesKillsAndThaws) {
  Make({"memory", "freezer"});
  pid_t child = SpawnSleeper();
  ASSERT_GT(child, 0);
  for (const char* c : {"memory", "freezer"}) Spit(Group(c) + "/cgroup.procs", absl::StrCat(child, "\n"));
  ASSERT_TRUE(manager_->KillAll("t1").ok());
  int status = 0;
  ASSERT_TRUE(WaitUntil([&] { return waitpid(child, &status, WNOHANG) == child; }, 5000));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(Slurp(Group("freezer") + "/freezer.state"), "THAWED");
}

TEST_F(CgroupV1FakeContainmentTest, ReusedFrozenGroupIsThawed) {
  Make({"memory", "freezer"});
  Spit(Group("freezer") + "/freezer.state", "FROZEN\n");  // an agent died inside KillAll
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  EXPECT_EQ(Slurp(Group("freezer") + "/freezer.state"), "THAWED");
}

TEST_F(CgroupV1FakeContainmentTest, RepairsDelegatedModes) {
  Make({"memory"});
  // As if someone delegated the group: group- and world-writable.
  ASSERT_EQ(chmod(Group("memory").c_str(), 0777), 0);
  ASSERT_EQ(chmod((Group("memory") + "/cgroup.procs").c_str(), 0666), 0);
  ASSERT_EQ(chmod((Group("memory") + "/tasks").c_str(), 0662), 0);
  ASSERT_EQ(chmod((root_ + "/memory/icos/c1").c_str(), 0775), 0);
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  EXPECT_EQ(ModeOf(Group("memory")), 0755u);
  EXPECT_EQ(ModeOf(Group("memory") + "/cgroup.procs"), 0644u);
  EXPECT_EQ(ModeOf(Group("memory") + "/tasks"), 0640u);
  EXPECT_EQ(ModeOf(root_ + "/memory/icos/c1"), 0755u);
}

// The parent levels are secured once per manager, not at every launch (each
// time listed every task's group), unless they are another directory now.
TEST_F(CgroupV1FakeContainmentTest, AParentMadeAgainIsSecuredAgain) {
  Make({"memory"});
  const std::string parent = root_ + "/memory/icos/c1";
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  EXPECT_EQ(ModeOf(parent), 0755u);
  // Emptied and made again by someone else, with a permissive mode.
  std::filesystem::remove_all(parent);
  std::filesystem::create_directories(parent);
  Spit(parent + "/cgroup.procs", "");
  ASSERT_EQ(chmod(parent.c_str(), 0777), 0);
  ASSERT_EQ(chmod((parent + "/cgroup.procs").c_str(), 0666), 0);
  ASSERT_TRUE(manager_->CreateGroup("t2", {}).ok());
  EXPECT_EQ(ModeOf(parent), 0755u);
  EXPECT_EQ(ModeOf(parent + "/cgroup.procs"), 0644u);
  // The task groups themselves are secured at each creation.
  ASSERT_EQ(chmod((parent + "/t2").c_str(), 0777), 0);
  ASSERT_TRUE(manager_->CreateGroup("t2", {}).ok());
  EXPECT_EQ(ModeOf(parent + "/t2"), 0755u);
}

TEST(CgroupV2FakeContainmentTest, FreezerPathWithoutCgroupKill) {
  TempDir tmp;
  const std::string group = tmp.Sub("icos/c1/t1");
  std::filesystem::create_directories(group);
  Spit(tmp.Sub("cgroup.procs"), "");
  Spit(group + "/cgroup.procs", "");
  Spit(group + "/cgroup.freeze", "0\n");
  Spit(group + "/cgroup.events", "populated 1\nfrozen 1\n");  // what the kernel shows once frozen
  auto manager = CgroupManager::Create(
      {.mode = CgroupMode::kV2, .v2_root = tmp.path(), .cluster_id = "c1", .use_cgroup_kill = false});
  ASSERT_TRUE(manager.ok()) << manager.status();
  pid_t child = SpawnSleeper();
  ASSERT_GT(child, 0);
  Spit(group + "/cgroup.procs", absl::StrCat(child, "\n"));
  ASSERT_TRUE((*manager)->KillAll("t1").ok());
  int status = 0;
  ASSERT_TRUE(WaitUntil([&] { return waitpid(child, &status, WNOHANG) == child; }, 5000));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(Slurp(group + "/cgroup.freeze"), "0");  // thawed after the kill
}

TEST(CgroupV2FakeContainmentTest, DeviceFilterOnAFakeTreeIsAWarning) {
  TempDir tmp;
  Spit(tmp.Sub("cgroup.procs"), "");
  auto manager = CgroupManager::Create({.mode = CgroupMode::kV2, .v2_root = tmp.path(), .cluster_id = "c1"});
  ASSERT_TRUE(manager.ok()) << manager.status();
  absl::StatusOr<std::vector<std::string>> warnings = (*manager)->CreateGroup("t1", {.devices = DefaultDeviceRules()});
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  EXPECT_THAT(*warnings, ElementsAre(HasSubstr("device allow-list not applied")));
}

// ---------------------------------------------------------------------------
// Real hierarchies. Each test runs on v1 (this host's controllers), on v2 (the
// cgroup2 mount; on this host the empty tree at /sys/fs/cgroup/unified) and,
// for kills, on v2 without cgroup.kill (the freezer path of Linux < 5.14).
// ---------------------------------------------------------------------------

enum class Hierarchy { kV1, kV2, kV2Freezer };

std::string HierarchyName(const ::testing::TestParamInfo<Hierarchy>& info) {
  switch (info.param) {
    case Hierarchy::kV1:
      return "v1";
    case Hierarchy::kV2:
      return "v2";
    case Hierarchy::kV2Freezer:
      return "v2_freezer";
  }
  return "unknown";
}

std::string TestParent() { return absl::StrCat("icos-test-", getpid(), "-containment"); }

class CgroupContainmentTest : public ::testing::TestWithParam<Hierarchy> {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "containment tests need root (groups under /sys/fs/cgroup, setuid, mknod)";
    if (GetParam() == Hierarchy::kV1) {
      absl::StatusOr<CgroupLayout> layout = ResolveCgroupLayout({});
      if (!layout.ok() || layout->version != CgroupVersion::kV1) {
        GTEST_SKIP() << "this host does not use cgroup v1 controllers";
      }
      base_ = {};
    } else {
      const std::string mount = RealCgroup2Mount();
      if (mount.empty()) GTEST_SKIP() << "no cgroup2 filesystem is mounted on this host";
      base_ = {.mode = CgroupMode::kV2, .v2_root = mount};
    }
    base_.parent = TestParent();
    base_.use_cgroup_kill = GetParam() != Hierarchy::kV2Freezer;
    a_ = Manager("c-a");
    ASSERT_NE(a_, nullptr);
  }

  void TearDown() override {
    for (pid_t pid : children_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    std::vector<std::string> roots;
    for (auto& [cluster, manager] : managers_) {
      for (const std::string& task : tasks_) {
        manager->KillAll(task).IgnoreError();
        WaitUntil([&] { return manager->RemoveGroup(task).ok(); }, 5000);
      }
      const CgroupLayout& layout = manager->layout();
      if (layout.version == CgroupVersion::kV2) roots.push_back(layout.v2_root);
      for (const auto& [controller, root] : layout.v1_roots) roots.push_back(root);
      for (const std::string& root : roots) rmdir(absl::StrCat(root, "/", TestParent(), "/", cluster).c_str());
    }
    for (const std::string& root : roots) rmdir(absl::StrCat(root, "/", TestParent()).c_str());
  }

  CgroupManager* Manager(const std::string& cluster) {
    CgroupOptions options = base_;
    options.cluster_id = cluster;
    absl::StatusOr<std::unique_ptr<CgroupManager>> manager = CgroupManager::Create(options);
    EXPECT_TRUE(manager.ok()) << manager.status();
    if (!manager.ok()) return nullptr;
    return (managers_[cluster] = *std::move(manager)).get();
  }

  // Creates the group (remembered for cleanup) and returns its warnings.
  std::vector<std::string> Create(CgroupManager* m, const std::string& task, const CgroupLimits& limits = {}) {
    if (std::find(tasks_.begin(), tasks_.end(), task) == tasks_.end()) tasks_.push_back(task);
    absl::StatusOr<std::vector<std::string>> warnings = m->CreateGroup(task, limits);
    EXPECT_TRUE(warnings.ok()) << warnings.status();
    return warnings.ok() ? *warnings : std::vector<std::string>{};
  }

  pid_t Spawn() {
    pid_t pid = SpawnSleeper();
    children_.push_back(pid);
    return pid;
  }

  bool v2() const { return GetParam() != Hierarchy::kV1; }

  CgroupOptions base_;
  CgroupManager* a_ = nullptr;
  std::map<std::string, std::unique_ptr<CgroupManager>> managers_;
  std::vector<std::string> tasks_;
  std::vector<pid_t> children_;
};

INSTANTIATE_TEST_SUITE_P(Cgroup, CgroupContainmentTest,
                         ::testing::Values(Hierarchy::kV1, Hierarchy::kV2, Hierarchy::kV2Freezer), HierarchyName);

// --- 1. Two clusters on one host -------------------------------------------

TEST_P(CgroupContainmentTest, ClustersWithTheSameTaskIdNeverTouchEachOther) {
  CgroupManager* b = Manager("c-b");
  ASSERT_NE(b, nullptr);
  const std::string task = "j1-g0-r0-a0";  // task ids restart in every cluster
  Create(a_, task);
  Create(b, task);
  ASSERT_NE(a_->GroupDir(task), b->GroupDir(task));
  pid_t in_a = Spawn(), in_b = Spawn();
  ASSERT_TRUE(a_->AddPid(task, in_a).ok());
  ASSERT_TRUE(b->AddPid(task, in_b).ok());

  ASSERT_TRUE(a_->KillAll(task).ok());
  int status = 0;
  ASSERT_TRUE(WaitUntil([&] { return waitpid(in_a, &status, WNOHANG) == in_a; }, 5000));
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(WaitUntil([&] { return a_->RemoveGroup(task).ok(); }, 5000));

  // Cluster B's task is untouched: alive, in its group, which still exists.
  EXPECT_EQ(waitpid(in_b, &status, WNOHANG), 0);
  EXPECT_TRUE(ProcessAlive(in_b, 0));
  absl::StatusOr<std::vector<pid_t>> pids = b->ListPids(task);
  ASSERT_TRUE(pids.ok()) << pids.status();
  EXPECT_THAT(*pids, ElementsAre(in_b));
}

// --- 2. A task cannot leave its group --------------------------------------

// A service replica's command probe (program_run.h) runs where its replica
// does: in its cgroup, as its user, and so cannot read what root keeps.
TEST_P(CgroupContainmentTest, AProgramRunForATaskRunsInItsGroupAsItsUser) {
  ScopedUser user;
  if (!user.ok()) GTEST_SKIP() << "could not create a test user with useradd";
  Create(a_, "t1");
  TempDir tmp;
  const std::string secret = absl::StrCat(tmp.path(), "/root-only");
  Spit(secret, "the controller's key");
  chmod(secret.c_str(), 0600);
  ProgramRun run{.argv = {"/bin/sh", "-c",
                          absl::StrCat("grep -q '/c-a/t1$' /proc/self/cgroup || { echo not in t1; exit 1; }; "
                                       "test \"$(id -u)\" = ",
                                       user.uid(), " || { echo not its user; exit 1; }; cat ", secret)},
                 .user = TaskUser{.uid = user.uid(), .gid = user.gid()},
                 .procs_files = a_->ProcsFiles("t1")};
  ProgramResult r = RunProgram(run);
  EXPECT_FALSE(r.passed);
  EXPECT_THAT(r.reason, HasSubstr("Permission denied"));  // in t1, as the user, and the key stays root's
}

// Tries to move the calling process into each group by writing to `file` in
// it; 0 if any write succeeded, else the last errno.
int TryJoin(const std::vector<std::string>& group_dirs, const char* file) {
  int err = 0;
  const std::string pid = absl::StrCat(getpid());
  for (const std::string& dir : group_dirs) {
    int fd = open(absl::StrCat(dir, "/", file).c_str(), O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
      ssize_t n = write(fd, pid.data(), pid.size());
      err = n < 0 ? errno : 0;
      close(fd);
      if (err == 0) return 0;
    } else {
      err = errno;
    }
  }
  return err;
}

TEST_P(CgroupContainmentTest, UnprivilegedTaskCannotMoveItselfOutOfItsGroup) {
  ScopedUser user;
  if (!user.ok()) GTEST_SKIP() << "could not create a test user with useradd";
  Create(a_, "t1");
  Create(a_, "t2");
  const CgroupLayout& layout = a_->layout();
  std::vector<std::string> roots, other_groups, own_groups;
  if (layout.version == CgroupVersion::kV2) roots.push_back(layout.v2_root);
  for (const auto& [controller, root] : layout.v1_roots) roots.push_back(root);
  for (const std::string& file : a_->ProcsFiles("t2")) other_groups.push_back(file.substr(0, file.rfind('/')));
  for (const std::string& file : a_->ProcsFiles("t1")) own_groups.push_back(file.substr(0, file.rfind('/')));
  const std::vector<std::string> parents = {absl::StrCat(roots[0], "/", TestParent()),
                                            absl::StrCat(roots[0], "/", TestParent(), "/c-a")};

  // The child joins t1 as the launcher's task does (as root), drops to the
  // unprivileged user, then tries every way out; it reports one errno each.
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  const std::vector<std::string> procs_t1 = a_->ProcsFiles("t1");
  pid_t child = fork();
  // Ends the child before `user` is removed, however the test ends.
  struct Reaper {
    pid_t pid;
    ~Reaper() {
      if (pid <= 0) return;
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
  } reaper{child};
  if (child == 0) {
    close(report[0]);
    int results[7] = {-1, -1, -1, -1, -1, -1, -1};
    if (JoinGroup(procs_t1) == 0 && setgroups(0, nullptr) == 0 && setgid(user.gid()) == 0 && setuid(user.uid()) == 0) {
      results[0] = TryJoin(roots, "cgroup.procs");         // the root group
      results[1] = TryJoin(other_groups, "cgroup.procs");  // another task's group
      results[2] = TryJoin(parents, "cgroup.procs");       // icos/, icos/<cluster>/
      results[3] = TryJoin(own_groups, "cgroup.procs");    // its own (a no-op if allowed, but not)
      results[4] = TryJoin(roots, v2() ? "cgroup.threads" : "tasks");
      results[5] = mkdir(absl::StrCat(own_groups[0], "/escape").c_str(), 0755) == 0 ? 0 : errno;
      results[6] = setuid(0) == 0 ? 0 : errno;  // and it cannot become root again
    }
    (void)!write(report[1], results, sizeof(results));
    pause();
    _exit(0);
  }
  close(report[1]);
  int results[7] = {};
  struct pollfd pfd = {report[0], POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 10'000), 1);
  ASSERT_EQ(read(report[0], results, sizeof(results)), static_cast<ssize_t>(sizeof(results)));
  close(report[0]);

  EXPECT_EQ(results[0], EACCES) << "root group";
  EXPECT_EQ(results[1], EACCES) << "another task's group";
  EXPECT_EQ(results[2], EACCES) << "the parent groups";
  EXPECT_EQ(results[3], EACCES) << "its own group's cgroup.procs";
  EXPECT_EQ(results[4], EACCES) << (v2() ? "cgroup.threads" : "tasks");
  EXPECT_EQ(results[5], EACCES) << "mkdir in its group";
  EXPECT_EQ(results[6], EPERM) << "setuid(0)";

  // Still where it was put, in every hierarchy.
  absl::StatusOr<std::vector<pid_t>> pids = a_->ListPids("t1");
  ASSERT_TRUE(pids.ok()) << pids.status();
  EXPECT_THAT(*pids, ElementsAre(child));
  const std::string expected_path = absl::StrCat("/", TestParent(), "/c-a/t1");
  absl::StatusOr<std::string> membership = ReadFile(absl::StrCat("/proc/", child, "/cgroup"));
  ASSERT_TRUE(membership.ok());
  int checked = 0;
  for (absl::string_view line : absl::StrSplit(*membership, '\n', absl::SkipEmpty())) {
    std::vector<std::string> f = absl::StrSplit(line, absl::MaxSplits(':', 2));
    if (f.size() != 3) continue;
    const bool ours = v2() ? f[1].empty() : layout.v1_roots.count(f[1]) > 0;
    if (!ours) continue;
    EXPECT_EQ(f[2], expected_path) << line;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST_P(CgroupContainmentTest, NothingInTheTasksPathIsWritableByOthers) {
  Create(a_, "t1");
  const CgroupLayout& layout = a_->layout();
  std::vector<std::string> roots;
  if (layout.version == CgroupVersion::kV2) roots.push_back(layout.v2_root);
  for (const auto& [controller, root] : layout.v1_roots) roots.push_back(root);
  int files = 0;
  for (const std::string& root : roots) {
    for (const std::string& rel : {TestParent(), TestParent() + "/c-a", TestParent() + "/c-a/t1"}) {
      const std::string dir = root + "/" + rel;
      struct stat st;
      ASSERT_EQ(stat(dir.c_str(), &st), 0) << dir;
      EXPECT_EQ(st.st_uid, geteuid()) << dir;
      EXPECT_EQ(st.st_mode & 022, 0u) << dir;
      for (const auto& entry : std::filesystem::directory_iterator(dir)) {
        if (!entry.is_regular_file()) continue;
        ASSERT_EQ(stat(entry.path().c_str(), &st), 0);
        EXPECT_EQ(st.st_uid, geteuid()) << entry.path();
        EXPECT_EQ(st.st_mode & 022, 0u) << entry.path();
        ++files;
      }
    }
  }
  EXPECT_GT(files, 0);
}

TEST_P(CgroupContainmentTest, DelegatedGroupIsTakenBack) {
  Create(a_, "t1");
  // As `systemd Delegate=` or a careless admin would leave it: owned by
  // another user (nobody), group- and world-writable.
  const std::string group = a_->GroupDir("t1");
  const std::string procs = group + "/cgroup.procs";
  ASSERT_EQ(chown(group.c_str(), 65534, 65534), 0);
  ASSERT_EQ(chmod(group.c_str(), 0777), 0);
  ASSERT_EQ(chown(procs.c_str(), 65534, 65534), 0);
  ASSERT_EQ(chmod(procs.c_str(), 0666), 0);
  Create(a_, "t1");  // a restarted task reuses the group
  struct stat st;
  ASSERT_EQ(stat(group.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  ASSERT_EQ(stat(procs.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, geteuid());
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

// --- 3. Everything ends with the task --------------------------------------

// Forks in a chain until `deadline`: each link forks its successor and exits,
// so the pids in the group change all the time and a list-then-kill loop
// always kills yesterday's pid. Bounded by time and by count.
[[noreturn]] void ChainFork(time_t deadline) {
  for (int i = 0; i < 2'000'000 && time(nullptr) < deadline; ++i) {
    pid_t next = fork();
    if (next > 0) _exit(0);
    if (next < 0) usleep(1000);
  }
  _exit(0);
}

TEST_P(CgroupContainmentTest, KillAllEndsAForkLoopAndASetsidDaemon) {
  Create(a_, "t1");
  if (!v2() && a_->layout().v1_roots.count("freezer") == 0) GTEST_SKIP() << "no v1 freezer hierarchy";
  const std::vector<std::string> procs = a_->ProcsFiles("t1");
  // A safety net for the bound: at most 64 processes where pids is mounted.
  if (!v2() && a_->layout().v1_roots.count("pids")) {
    (void)WriteExistingFile(absl::StrCat(a_->layout().v1_roots.at("pids"), "/", TestParent(), "/c-a/t1/pids.max"),
                            "64");
  }
  int report[2];
  ASSERT_EQ(pipe(report), 0);
  // The holder stays outside the group as the reaper of everything below it
  // (PR_SET_CHILD_SUBREAPER), so it exits exactly when every process of the
  // workload, the daemon included, is gone.
  pid_t holder = fork();
  if (holder == 0) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (fork() == 0) {  // the task
      if (JoinGroup(procs) != 0) _exit(1);
      const time_t deadline = time(nullptr) + 20;
      if (fork() == 0) {  // a daemon: new session, parent gone, not in the task's process group
        setsid();
        if (fork() == 0) {
          pid_t me = getpid();
          (void)!write(report[1], &me, sizeof(me));
          while (time(nullptr) < deadline) usleep(10'000);
          _exit(0);
        }
        _exit(0);
      }
      for (int chain = 0; chain < 3; ++chain) {
        if (fork() == 0) ChainFork(deadline);
      }
      while (time(nullptr) < deadline) usleep(10'000);
      _exit(0);
    }
    close(report[1]);
    while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
    }
    _exit(0);
  }
  children_.push_back(holder);
  close(report[1]);
  pid_t daemon = 0;
  struct pollfd pfd = {report[0], POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 10'000), 1);
  ASSERT_EQ(read(report[0], &daemon, sizeof(daemon)), static_cast<ssize_t>(sizeof(daemon)));
  close(report[0]);
  // The chains are churning: the group holds the task, the daemon and them.
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<std::vector<pid_t>> pids = a_->ListPids("t1");
        return pids.ok() && pids->size() >= 4;
      },
      5000));
  usleep(200'000);

  absl::Status killed = a_->KillAll("t1");
  ASSERT_TRUE(killed.ok()) << killed;
  // The workload would run for 20 s; the holder exiting well before means
  // every process of it, the daemon and the chains' latest links, was killed.
  int status = 0;
  ASSERT_TRUE(WaitUntil([&] { return waitpid(holder, &status, WNOHANG) == holder; }, 10'000))
      << "processes of the task survived KillAll";
  children_.clear();
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_GT(daemon, 0);
  EXPECT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<std::vector<pid_t>> pids = a_->ListPids("t1");
        return pids.ok() && pids->empty();
      },
      5000));
  EXPECT_TRUE(WaitUntil([&] { return a_->RemoveGroup("t1").ok(); }, 5000));
}

TEST_P(CgroupContainmentTest, KillAllEndsAForkBombOfAnUnprivilegedTask) {
  ScopedUser user;
  if (!user.ok()) GTEST_SKIP() << "could not create a test user with useradd";
  Create(a_, "t1");
  if (!v2() && a_->layout().v1_roots.count("freezer") == 0) GTEST_SKIP() << "no v1 freezer hierarchy";
  const std::vector<std::string> procs = a_->ProcsFiles("t1");
  // Every process forks as fast as it can, forever, until RLIMIT_NPROC (the
  // user's process count, so the bound holds on any hierarchy) refuses; a
  // slot freed by a kill is taken again at once. Bounded to 20 s and 64
  // processes.
  pid_t holder = fork();
  if (holder == 0) {
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    if (fork() == 0) {
      const struct rlimit nproc = {64, 64};
      if (JoinGroup(procs) != 0 || setrlimit(RLIMIT_NPROC, &nproc) != 0 || setgroups(0, nullptr) != 0 ||
          setgid(user.gid()) != 0 || setuid(user.uid()) != 0) {
        _exit(1);
      }
      const time_t deadline = time(nullptr) + 20;
      while (time(nullptr) < deadline) {
        if (fork() < 0) usleep(2000);
      }
      _exit(0);
    }
    while (waitpid(-1, nullptr, 0) > 0 || errno == EINTR) {
    }
    _exit(0);
  }
  // Before `user` is removed: end everything, whatever happened.
  struct Cleanup {
    CgroupManager* manager;
    pid_t holder;
    ~Cleanup() {
      if (holder <= 0) return;
      WaitUntil([&] { return manager->KillAll("t1").ok() && waitpid(holder, nullptr, WNOHANG) == holder; }, 30'000);
    }
  } cleanup{a_, holder};
  ASSERT_TRUE(WaitUntil(
      [&] {
        absl::StatusOr<std::vector<pid_t>> pids = a_->ListPids("t1");
        return pids.ok() && pids->size() >= 48;
      },
      10'000))
      << "the fork bomb did not start";

  absl::Status killed = a_->KillAll("t1");
  ASSERT_TRUE(killed.ok()) << killed;
  int status = 0;
  ASSERT_TRUE(WaitUntil([&] { return waitpid(holder, &status, WNOHANG) == holder; }, 10'000))
      << "processes of the fork bomb survived KillAll";
  cleanup.holder = -1;
  EXPECT_TRUE(WIFEXITED(status));
}

// --- 4. Device access ------------------------------------------------------

class FakeDevNodes {
 public:
  // Makes `name` (under the temp dir) as character device major:minor.
  bool Make(const std::string& name, int major_number, int minor_number) {
    std::filesystem::create_directories(std::filesystem::path(tmp_.Sub(name)).parent_path());
    return mknod(tmp_.Sub(name).c_str(), S_IFCHR | 0666, makedev(major_number, minor_number)) == 0;
  }
  std::string Path(const std::string& name) const { return tmp_.Sub(name); }
  const std::string& root() const { return tmp_.path(); }

 private:
  TempDir tmp_;  // removed with the nodes, pass or fail
};

TEST_P(CgroupContainmentTest, OnlyAllowedDevicesOpen) {
  FakeDevNodes dev;
  ASSERT_TRUE(dev.Make("null", 1, 3));
  ASSERT_TRUE(dev.Make("full", 1, 7));
  std::vector<std::string> warnings = Create(a_, "t1", {.devices = {{C(1, 3)}}});
  ASSERT_THAT(warnings, IsEmpty());
  if (!v2()) {
    EXPECT_EQ(Slurp(absl::StrCat(a_->layout().v1_roots.at("devices"), "/", TestParent(), "/c-a/t1/devices.list")),
              "c 1:3 rw\n");
  }
  const std::vector<std::string> procs = a_->ProcsFiles("t1");
  EXPECT_EQ(RunInGroup(procs, [&] { return OpenErrno(dev.Path("null"), O_RDWR); }), 0);
  EXPECT_EQ(RunInGroup(procs, [&] { return OpenErrno(dev.Path("full"), O_RDWR); }), EPERM);
  // The real /dev/null too: the rule names numbers, not paths.
  EXPECT_EQ(RunInGroup(procs, [&] { return OpenErrno("/dev/full", O_RDWR); }), EPERM);
  EXPECT_EQ(RunInGroup(procs, [&] { return OpenErrno("/dev/null", O_RDWR); }), 0);
}

TEST_P(CgroupContainmentTest, TaskGetsItsOwnGpuButNotTheOthers) {
  // NVIDIA's numbers; no driver is loaded here, so an allowed node opens as
  // far as the driver lookup (ENXIO), while a denied one fails with EPERM
  // in the device controller before that.
  FakeDevNodes dev;
  ASSERT_TRUE(dev.Make("nvidia0", 195, 0));
  ASSERT_TRUE(dev.Make("nvidia1", 195, 1));
  ASSERT_TRUE(dev.Make("nvidiactl", 195, 255));
  ASSERT_TRUE(dev.Make("nvidia-uvm", 509, 0));
  ASSERT_TRUE(dev.Make("nvidia-uvm-tools", 509, 1));
  absl::StatusOr<DeviceAllowList> list = TaskDeviceAllowList({{.vendor = "nvidia", .numbers = {0}}}, dev.root());
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(list->warnings, ElementsAre(HasSubstr("nvidia-modeset")));
  ASSERT_THAT(Create(a_, "t1", {.devices = list->rules}), IsEmpty());
  const std::vector<std::string> procs = a_->ProcsFiles("t1");
  auto open_in_group = [&](const std::string& name) {
    return RunInGroup(procs, [&] { return OpenErrno(dev.Path(name), O_RDWR); });
  };
  EXPECT_NE(open_in_group("nvidia0"), EPERM);
  EXPECT_NE(open_in_group("nvidiactl"), EPERM);
  EXPECT_NE(open_in_group("nvidia-uvm"), EPERM);
  EXPECT_EQ(open_in_group("nvidia1"), EPERM);
  EXPECT_EQ(RunInGroup(procs, [&] { return OpenErrno("/dev/urandom"); }), 0);  // defaults
}

TEST_P(CgroupContainmentTest, RemoveGroupReleasesTheDeviceProgram) {
  if (!v2()) GTEST_SKIP() << "v2 only: the v1 devices controller keeps no program";
  Create(a_, "t1", {.devices = DefaultDeviceRules()});
  absl::StatusOr<std::vector<uint32_t>> ids = AttachedDeviceFilters(a_->GroupDir("t1"));
  ASSERT_TRUE(ids.ok()) << ids.status();
  ASSERT_THAT(*ids, SizeIs(1));
  // Creating it again (a restarted task) replaces the program, never stacks.
  Create(a_, "t1", {.devices = DefaultDeviceRules()});
  absl::StatusOr<std::vector<uint32_t>> again = AttachedDeviceFilters(a_->GroupDir("t1"));
  ASSERT_TRUE(again.ok());
  ASSERT_THAT(*again, SizeIs(1));
  ASSERT_TRUE(a_->RemoveGroup("t1").ok());
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.prog_id = (*again)[0];
  EXPECT_LT(syscall(__NR_bpf, BPF_PROG_GET_FD_BY_ID, &attr, sizeof(attr)), 0);
  EXPECT_EQ(errno, ENOENT);
}

}  // namespace
}  // namespace icos::agent
