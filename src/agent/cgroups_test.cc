#include "agent/cgroups.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "agent/sys_util.h"
#include "agent/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::icos::agent::testing::Slurp;
using ::icos::agent::testing::Spit;
using ::icos::agent::testing::TempDir;
using ::icos::agent::testing::WaitUntil;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;

constexpr int64_t kMiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// Fake hierarchies: directories holding the interface files the kernel shows,
// with the kernel's initial values, so the code under test reads and writes
// exactly what it would on cgroupfs. The kernel creates a group's files on
// mkdir; a plain directory cannot, so tests lay out the groups beforehand
// (CreateGroup reuses existing groups, as it does after an agent restart).
// ---------------------------------------------------------------------------

bool Has(const std::vector<std::string>& v, const std::string& x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

// A v2 group whose cgroup.controllers lists `controllers` (those its parent
// enabled). The root has no limit files and no cgroup.kill, as in the kernel.
void MakeFakeV2Group(const std::string& dir, const std::vector<std::string>& controllers, bool is_root = false) {
  std::filesystem::create_directories(dir);
  Spit(dir + "/cgroup.controllers", absl::StrJoin(controllers, " ") + "\n");
  Spit(dir + "/cgroup.subtree_control", "\n");
  Spit(dir + "/cgroup.procs", "");
  if (is_root) return;
  Spit(dir + "/cgroup.kill", "");
  Spit(dir + "/cgroup.events", "populated 0\nfrozen 0\n");
  if (Has(controllers, "cpu")) Spit(dir + "/cpu.max", "max 100000\n");
  if (Has(controllers, "memory")) {
    Spit(dir + "/memory.max", "max\n");
    Spit(dir + "/memory.swap.max", "max\n");
    Spit(dir + "/memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n");
  }
  if (Has(controllers, "cpuset")) {
    Spit(dir + "/cpuset.cpus", "\n");
    Spit(dir + "/cpuset.mems", "\n");
  }
  if (Has(controllers, "pids")) Spit(dir + "/pids.max", "max\n");
}

std::string Trim(const std::string& s) {
  size_t end = s.find_last_not_of(" \n");
  return end == std::string::npos ? "" : s.substr(0, end + 1);
}

pid_t SpawnSleeper() {
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sleep", "sleep", "1000", static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Waits (bounded) for our child `pid` to end; its wait status, or -1.
int ReapChild(pid_t pid) {
  int status = -1;
  bool reaped = WaitUntil([&] { return waitpid(pid, &status, WNOHANG) == pid; }, 5000);
  if (!reaped) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return status;
}

// ---------------------------------------------------------------------------
// Detection.
// ---------------------------------------------------------------------------

// This build machine: v1 controllers plus an empty cgroup2 tree (hybrid).
constexpr char kHybridMountinfo[] =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct\n"
    "34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n"
    "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
    "39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n"
    "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";

TEST(ParseMountInfoTest, HybridHostUsesV1Controllers) {
  absl::StatusOr<CgroupLayout> layout = ParseMountInfo(kHybridMountinfo);
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->version, CgroupVersion::kV1);
  EXPECT_THAT(layout->v1_roots,
              ElementsAre(Pair("cpu", "/sys/fs/cgroup/cpu"), Pair("cpuset", "/sys/fs/cgroup/cpuset"),
                          Pair("memory", "/sys/fs/cgroup/memory"), Pair("pids", "/sys/fs/cgroup/pids")));
}

TEST(ParseMountInfoTest, PureV2HostUsesUnifiedMount) {
  absl::StatusOr<CgroupLayout> layout = ParseMountInfo(
      "25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 "
      "rw,nsdelegate,memory_recursiveprot\n");
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->version, CgroupVersion::kV2);
  EXPECT_EQ(layout->v2_root, "/sys/fs/cgroup");
}

TEST(ParseMountInfoTest, CoMountedControllersShareOneRoot) {
  absl::StatusOr<CgroupLayout> layout =
      ParseMountInfo("30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:11 - cgroup cgroup rw,cpu,cpuacct\n");
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_THAT(layout->v1_roots, ElementsAre(Pair("cpu", "/sys/fs/cgroup/cpu,cpuacct")));
}

TEST(ParseMountInfoTest, UnescapesMountPoints) {
  absl::StatusOr<CgroupLayout> layout = ParseMountInfo("1 0 0:1 / /mnt/my\\040cgroups rw - cgroup2 none rw\n");
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->v2_root, "/mnt/my cgroups");
}

TEST(ParseMountInfoTest, NoCgroupMountIsNotFound) {
  EXPECT_EQ(ParseMountInfo("22 1 8:1 / / rw - ext4 /dev/sda1 rw\n").status().code(), absl::StatusCode::kNotFound);
}

TEST(ResolveCgroupLayoutTest, AutoReadsInjectedMountinfo) {
  TempDir tmp;
  Spit(tmp.Sub("mountinfo"), absl::StrCat("9 1 0:9 / ", tmp.Sub("cg"), " rw - cgroup2 cgroup2 rw\n"));
  absl::StatusOr<CgroupLayout> layout = ResolveCgroupLayout({.mountinfo_path = tmp.Sub("mountinfo")});
  ASSERT_TRUE(layout.ok()) << layout.status();
  EXPECT_EQ(layout->v2_root, tmp.Sub("cg"));
}

TEST(ResolveCgroupLayoutTest, DisabledIsFailedPrecondition) {
  EXPECT_EQ(CgroupManager::Create({.mode = CgroupMode::kDisabled}).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(ResolveCgroupLayoutTest, MissingV2RootIsNotFound) {
  EXPECT_EQ(CgroupManager::Create({.mode = CgroupMode::kV2, .v2_root = "/nonexistent/cgroup", .cluster_id = "c1"})
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

// ---------------------------------------------------------------------------
// cgroup v2 against a fake tree.
// ---------------------------------------------------------------------------

class CgroupV2FakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.Sub("cgroup");
    MakeFakeV2Group(root_, {"cpuset", "cpu", "io", "memory", "pids"}, /*is_root=*/true);
    MakeFakeV2Group(root_ + "/icos", {"cpuset", "cpu", "memory", "pids"});
    MakeFakeV2Group(root_ + "/icos/c1", {"cpuset", "cpu", "memory", "pids"});
    MakeFakeV2Group(group(), {"cpuset", "cpu", "memory", "pids"});
    absl::StatusOr<std::unique_ptr<CgroupManager>> manager =
        CgroupManager::Create({.mode = CgroupMode::kV2, .v2_root = root_, .cluster_id = "c1"});
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = *std::move(manager);
  }
  std::string group() const { return root_ + "/icos/c1/t1"; }

  TempDir tmp_;
  std::string root_;
  std::unique_ptr<CgroupManager> manager_;
};

TEST_F(CgroupV2FakeTest, WritesCpuMax) {
  // 1500 millicores = 1.5 CPUs = 150000 us of every 100000 us period.
  ASSERT_TRUE(manager_->CreateGroup("t1", {.cpu_milli = 1500}).ok());
  EXPECT_EQ(Slurp(group() + "/cpu.max"), "150000 100000");
}

TEST_F(CgroupV2FakeTest, WritesMemoryMaxAndDisablesSwap) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {.memory_bytes = 64 * kMiB}).ok());
  EXPECT_EQ(Slurp(group() + "/memory.max"), "67108864");  // 64 * 2^20
  EXPECT_EQ(Slurp(group() + "/memory.swap.max"), "0");
}

TEST_F(CgroupV2FakeTest, WritesCpusetLists) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {.cpus = {0, 2, 3}, .mems = {1}}).ok());
  EXPECT_EQ(Slurp(group() + "/cpuset.cpus"), "0,2,3");
  EXPECT_EQ(Slurp(group() + "/cpuset.mems"), "1");
}

TEST_F(CgroupV2FakeTest, AppliedLimitsGiveNoWarnings) {
  absl::StatusOr<std::vector<std::string>> warnings =
      manager_->CreateGroup("t1", {.cpu_milli = 500, .memory_bytes = kMiB, .cpus = {0}, .mems = {0}});
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  EXPECT_THAT(*warnings, IsEmpty());
}

TEST_F(CgroupV2FakeTest, EnablesControllersInTheParentsSubtreeControl) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  // One "+name" write per controller; the fake keeps the last one written.
  EXPECT_THAT(Slurp(root_ + "/cgroup.subtree_control"), ::testing::StartsWith("+"));
  EXPECT_THAT(Slurp(root_ + "/icos/cgroup.subtree_control"), ::testing::StartsWith("+"));
  EXPECT_THAT(Slurp(root_ + "/icos/c1/cgroup.subtree_control"), ::testing::StartsWith("+"));
}

TEST_F(CgroupV2FakeTest, MissingMemoryControllerIsAWarningNotAnError) {
  MakeFakeV2Group(root_ + "/icos/c1/t2", {"cpu"});
  absl::StatusOr<std::vector<std::string>> warnings =
      manager_->CreateGroup("t2", {.cpu_milli = 1000, .memory_bytes = 64 * kMiB});
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  EXPECT_THAT(*warnings, ElementsAre(HasSubstr("memory controller is not available")));
  EXPECT_EQ(Slurp(root_ + "/icos/c1/t2/cpu.max"), "100000 100000");
  EXPECT_FALSE(PathExists(root_ + "/icos/c1/t2/memory.max"));  // never created
}

TEST_F(CgroupV2FakeTest, AddPidWritesCgroupProcs) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  ASSERT_TRUE(manager_->AddPid("t1", 4242).ok());
  EXPECT_EQ(Slurp(group() + "/cgroup.procs"), "4242");
  EXPECT_THAT(manager_->ProcsFiles("t1"), ElementsAre(group() + "/cgroup.procs"));
}

TEST_F(CgroupV2FakeTest, ListPidsReadsCgroupProcs) {
  Spit(group() + "/cgroup.procs", "12\n34\n");
  absl::StatusOr<std::vector<pid_t>> pids = manager_->ListPids("t1");
  ASSERT_TRUE(pids.ok()) << pids.status();
  EXPECT_THAT(*pids, ElementsAre(12, 34));
}

TEST_F(CgroupV2FakeTest, KillAllWritesCgroupKill) {
  ASSERT_TRUE(manager_->KillAll("t1").ok());
  EXPECT_EQ(Slurp(group() + "/cgroup.kill"), "1");
}

TEST_F(CgroupV2FakeTest, KillAllSignalsEachPidWithoutCgroupKill) {
  // Kernels before 5.14 have no cgroup.kill: every listed process gets SIGKILL.
  std::filesystem::remove(group() + "/cgroup.kill");
  pid_t child = SpawnSleeper();
  ASSERT_GT(child, 0);
  Spit(group() + "/cgroup.procs", absl::StrCat(child, "\n"));
  ASSERT_TRUE(manager_->KillAll("t1").ok());
  int status = ReapChild(child);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

TEST_F(CgroupV2FakeTest, ReadsOomKillsFromMemoryEvents) {
  Spit(group() + "/memory.events", "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n");
  absl::StatusOr<int64_t> kills = manager_->OomKillCount("t1");
  ASSERT_TRUE(kills.ok()) << kills.status();
  EXPECT_EQ(*kills, 2);
}

TEST_F(CgroupV2FakeTest, OomKillCountWithoutMemoryControllerIsUnavailable) {
  MakeFakeV2Group(root_ + "/icos/c1/t2", {"cpu"});
  EXPECT_EQ(manager_->OomKillCount("t2").status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(CgroupV2FakeTest, RemoveGroupDeletesTheDirectory) {
  // The kernel's rmdir ignores interface files; a plain directory must be
  // emptied first.
  for (const auto& entry : std::filesystem::directory_iterator(group())) std::filesystem::remove(entry.path());
  ASSERT_TRUE(manager_->RemoveGroup("t1").ok());
  EXPECT_FALSE(PathExists(group()));
}

TEST_F(CgroupV2FakeTest, RemovingAMissingGroupIsOk) { EXPECT_TRUE(manager_->RemoveGroup("never-made").ok()); }

TEST_F(CgroupV2FakeTest, RejectsTaskIdThatIsNotOnePathComponent) {
  EXPECT_EQ(manager_->CreateGroup("../escape", {}).status().code(), absl::StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------
// cgroup v1 against a fake tree.
// ---------------------------------------------------------------------------

class CgroupV1FakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = tmp_.Sub("cgroup");
    for (const std::string& dir :
         {std::string(""), std::string("/icos"), std::string("/icos/c1"), std::string("/icos/c1/t1")}) {
      const bool top = dir.empty();
      std::string cpu = root_ + "/cpu" + dir, memory = root_ + "/memory" + dir, cpuset = root_ + "/cpuset" + dir;
      for (const std::string& d : {cpu, memory, cpuset}) {
        std::filesystem::create_directories(d);
        Spit(d + "/cgroup.procs", "");
        Spit(d + "/tasks", "");
      }
      Spit(cpu + "/cpu.cfs_period_us", "100000\n");
      Spit(cpu + "/cpu.cfs_quota_us", "-1\n");
      Spit(memory + "/memory.limit_in_bytes", "9223372036854771712\n");
      Spit(memory + "/memory.memsw.limit_in_bytes", "9223372036854771712\n");
      Spit(memory + "/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
      Spit(memory + "/memory.failcnt", "0\n");
      // A new v1 cpuset is empty; only the root has CPUs and memory nodes.
      Spit(cpuset + "/cpuset.cpus", top ? "0-3\n" : "\n");
      Spit(cpuset + "/cpuset.mems", top ? "0\n" : "\n");
    }
    absl::StatusOr<std::unique_ptr<CgroupManager>> manager =
        CgroupManager::Create({.mode = CgroupMode::kV1, .v1_root = root_, .cluster_id = "c1"});
    ASSERT_TRUE(manager.ok()) << manager.status();
    manager_ = *std::move(manager);
  }

  TempDir tmp_;
  std::string root_;
  std::unique_ptr<CgroupManager> manager_;
};

TEST_F(CgroupV1FakeTest, FindsMountedControllers) {
  EXPECT_THAT(manager_->layout().v1_roots, ElementsAre(Pair("cpu", root_ + "/cpu"), Pair("cpuset", root_ + "/cpuset"),
                                                       Pair("memory", root_ + "/memory")));
}

TEST_F(CgroupV1FakeTest, CopiesTheParentsCpusetIntoNewGroups) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  EXPECT_EQ(Slurp(root_ + "/cpuset/icos/c1/cpuset.cpus"), "0-3");
  EXPECT_EQ(Slurp(root_ + "/cpuset/icos/c1/cpuset.mems"), "0");
  EXPECT_EQ(Slurp(root_ + "/cpuset/icos/c1/t1/cpuset.cpus"), "0-3");
  EXPECT_EQ(Slurp(root_ + "/cpuset/icos/c1/t1/cpuset.mems"), "0");
}

TEST_F(CgroupV1FakeTest, RequestedCpusetReplacesTheCopiedOne) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {.cpus = {1, 2}}).ok());
  EXPECT_EQ(Slurp(root_ + "/cpuset/icos/c1/t1/cpuset.cpus"), "1,2");
  EXPECT_EQ(Slurp(root_ + "/cpuset/icos/c1/t1/cpuset.mems"), "0");
}

TEST_F(CgroupV1FakeTest, WritesCfsQuotaAndPeriod) {
  // 250 millicores = a quarter of each 100000 us period.
  ASSERT_TRUE(manager_->CreateGroup("t1", {.cpu_milli = 250}).ok());
  EXPECT_EQ(Slurp(root_ + "/cpu/icos/c1/t1/cpu.cfs_period_us"), "100000");
  EXPECT_EQ(Slurp(root_ + "/cpu/icos/c1/t1/cpu.cfs_quota_us"), "25000");
}

TEST_F(CgroupV1FakeTest, WritesMemoryAndMemswLimits) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {.memory_bytes = 64 * kMiB}).ok());
  EXPECT_EQ(Slurp(root_ + "/memory/icos/c1/t1/memory.limit_in_bytes"), "67108864");
  EXPECT_EQ(Slurp(root_ + "/memory/icos/c1/t1/memory.memsw.limit_in_bytes"), "67108864");
}

TEST_F(CgroupV1FakeTest, AddPidJoinsEveryHierarchy) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  ASSERT_TRUE(manager_->AddPid("t1", 777).ok());
  for (const char* controller : {"cpu", "cpuset", "memory"}) {
    EXPECT_EQ(Slurp(absl::StrCat(root_, "/", controller, "/icos/c1/t1/cgroup.procs")), "777") << controller;
  }
}

TEST_F(CgroupV1FakeTest, ReadsOomKillFromOomControl) {
  Spit(root_ + "/memory/icos/c1/t1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n");
  absl::StatusOr<int64_t> kills = manager_->OomKillCount("t1");
  ASSERT_TRUE(kills.ok()) << kills.status();
  EXPECT_EQ(*kills, 1);
}

TEST_F(CgroupV1FakeTest, FallsBackToFailcntOnOldKernels) {
  // Before Linux 4.13 memory.oom_control has no oom_kill line.
  Spit(root_ + "/memory/icos/c1/t1/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n");
  Spit(root_ + "/memory/icos/c1/t1/memory.failcnt", "3\n");
  absl::StatusOr<int64_t> kills = manager_->OomKillCount("t1");
  ASSERT_TRUE(kills.ok()) << kills.status();
  EXPECT_EQ(*kills, 3);
}

TEST_F(CgroupV1FakeTest, MissingPidsHierarchyIsSkipped) {
  // No pids mount in the fake: a group is still made and nothing mentions pids.
  absl::StatusOr<std::vector<std::string>> warnings = manager_->CreateGroup("t1", {.cpu_milli = 100});
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  EXPECT_THAT(*warnings, IsEmpty());
  EXPECT_EQ(manager_->layout().v1_roots.count("pids"), 0u);
}

// ---------------------------------------------------------------------------
// Real hierarchies of this machine. Need root; skipped, saying why, otherwise.
// ---------------------------------------------------------------------------

// Where the kernel mounted a cgroup2 tree, if anywhere (on hybrid hosts it is
// not the one ParseMountInfo picks).
std::string RealCgroup2Mount() {
  absl::StatusOr<std::string> mountinfo = ReadFile("/proc/self/mountinfo");
  if (!mountinfo.ok()) return "";
  for (absl::string_view line : absl::StrSplit(*mountinfo, '\n', absl::SkipEmpty())) {
    if (line.find(" - cgroup2 ") == absl::string_view::npos) continue;
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ');
    if (fields.size() > 4) return std::string(fields[4]);
  }
  return "";
}

std::string UniqueParent() { return absl::StrCat("icos-test-", getpid()); }
constexpr char kTestCluster[] = "c-test";
// Where the task groups are, relative to each hierarchy root.
std::string Prefix() { return absl::StrCat(UniqueParent(), "/", kTestCluster); }

class RealCgroupTest : public ::testing::Test {
 protected:
  // Creates a manager for `options`, or explains in *skip why it cannot.
  void Init(CgroupOptions options, std::string* skip) {
    if (geteuid() != 0) {
      *skip = "cgroup tests need root (creating groups under /sys/fs/cgroup)";
      return;
    }
    options.parent = UniqueParent();
    options.cluster_id = kTestCluster;
    absl::StatusOr<std::unique_ptr<CgroupManager>> manager = CgroupManager::Create(options);
    if (!manager.ok()) {
      *skip = absl::StrCat("no usable cgroup hierarchy: ", manager.status().message());
      return;
    }
    manager_ = *std::move(manager);
    for (const auto& [controller, root] : manager_->layout().v1_roots) roots_.push_back(root);
    if (!manager_->layout().v2_root.empty()) roots_.push_back(manager_->layout().v2_root);
    for (const std::string& root : roots_) {
      if (access(root.c_str(), W_OK) != 0) *skip = absl::StrCat(root, " is not writable");
    }
  }

  void TearDown() override {
    for (pid_t pid : children_) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
    }
    if (manager_ == nullptr) return;
    manager_->KillAll("t1").IgnoreError();
    manager_->RemoveGroup("t1").IgnoreError();
    for (const std::string& root : roots_) {
      rmdir(absl::StrCat(root, "/", Prefix()).c_str());
      rmdir(absl::StrCat(root, "/", UniqueParent()).c_str());
    }
  }

  pid_t Spawn() {
    pid_t pid = SpawnSleeper();
    children_.push_back(pid);
    return pid;
  }

  std::unique_ptr<CgroupManager> manager_;
  std::vector<std::string> roots_;
  std::vector<pid_t> children_;
};

class RealCgroupV1Test : public RealCgroupTest {
 protected:
  void SetUp() override {
    std::string skip;
    absl::StatusOr<CgroupLayout> layout = ResolveCgroupLayout({});
    if (!layout.ok() || layout->version != CgroupVersion::kV1) {
      GTEST_SKIP() << "this host does not use cgroup v1 controllers ("
                   << (layout.ok() ? layout->Describe() : std::string(layout.status().message())) << ")";
    }
    Init({}, &skip);  // kAuto: the v1 mount points found above
    if (!skip.empty()) GTEST_SKIP() << skip;
  }
};

TEST_F(RealCgroupV1Test, CreatesGroupWithLimitsTheKernelAccepts) {
  absl::StatusOr<std::vector<std::string>> warnings =
      manager_->CreateGroup("t1", {.cpu_milli = 500, .memory_bytes = 64 * kMiB, .cpus = {0}});
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  const CgroupLayout& layout = manager_->layout();
  if (layout.v1_roots.count("memory")) {
    EXPECT_EQ(Trim(Slurp(absl::StrCat(layout.v1_roots.at("memory"), "/", Prefix(), "/t1/memory.limit_in_bytes"))),
              "67108864");
  }
  if (layout.v1_roots.count("cpu")) {
    EXPECT_EQ(Trim(Slurp(absl::StrCat(layout.v1_roots.at("cpu"), "/", Prefix(), "/t1/cpu.cfs_quota_us"))), "50000");
  }
  if (layout.v1_roots.count("cpuset")) {
    EXPECT_EQ(Trim(Slurp(absl::StrCat(layout.v1_roots.at("cpuset"), "/", Prefix(), "/t1/cpuset.cpus"))), "0");
  }
}

TEST_F(RealCgroupV1Test, AddedPidIsListedInEveryHierarchy) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  pid_t child = Spawn();
  ASSERT_TRUE(manager_->AddPid("t1", child).ok());
  absl::StatusOr<std::vector<pid_t>> pids = manager_->ListPids("t1");
  ASSERT_TRUE(pids.ok()) << pids.status();
  EXPECT_THAT(*pids, ElementsAre(child));
  for (const std::string& procs : manager_->ProcsFiles("t1")) {
    EXPECT_EQ(Trim(Slurp(procs)), absl::StrCat(child)) << procs;
  }
}

TEST_F(RealCgroupV1Test, KillAllKillsEveryProcessAndGroupCanBeRemoved) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  pid_t a = Spawn(), b = Spawn();
  ASSERT_TRUE(manager_->AddPid("t1", a).ok());
  ASSERT_TRUE(manager_->AddPid("t1", b).ok());
  ASSERT_TRUE(manager_->KillAll("t1").ok());
  for (pid_t pid : {a, b}) {
    int status = ReapChild(pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << pid;
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
  }
  children_.clear();
  ASSERT_TRUE(manager_->RemoveGroup("t1").ok());
  EXPECT_FALSE(PathExists(manager_->GroupDir("t1")));
}

TEST_F(RealCgroupV1Test, FreshGroupHasNoOomKills) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {.memory_bytes = 64 * kMiB}).ok());
  if (!manager_->layout().v1_roots.count("memory")) GTEST_SKIP() << "no v1 memory hierarchy";
  absl::StatusOr<int64_t> kills = manager_->OomKillCount("t1");
  ASSERT_TRUE(kills.ok()) << kills.status();
  EXPECT_EQ(*kills, 0);
}

TEST_F(RealCgroupV1Test, KernelRejectsCpuThatDoesNotExist) {
  if (!manager_->layout().v1_roots.count("cpuset")) GTEST_SKIP() << "no v1 cpuset hierarchy";
  absl::StatusOr<std::vector<std::string>> warnings = manager_->CreateGroup("t1", {.cpus = {4095}});
  EXPECT_EQ(warnings.status().code(), absl::StatusCode::kInvalidArgument) << warnings.status();
}

class RealCgroupV2Test : public RealCgroupTest {
 protected:
  void SetUp() override {
    std::string mount = RealCgroup2Mount();
    if (mount.empty()) GTEST_SKIP() << "no cgroup2 filesystem is mounted on this host";
    std::string skip;
    Init({.mode = CgroupMode::kV2, .v2_root = mount}, &skip);
    if (!skip.empty()) GTEST_SKIP() << skip;
  }
};

TEST_F(RealCgroupV2Test, AddedPidIsListed) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  pid_t child = Spawn();
  ASSERT_TRUE(manager_->AddPid("t1", child).ok());
  absl::StatusOr<std::vector<pid_t>> pids = manager_->ListPids("t1");
  ASSERT_TRUE(pids.ok()) << pids.status();
  EXPECT_THAT(*pids, ElementsAre(child));
}

TEST_F(RealCgroupV2Test, KillAllKillsEveryProcessAndGroupCanBeRemoved) {
  ASSERT_TRUE(manager_->CreateGroup("t1", {}).ok());
  pid_t a = Spawn(), b = Spawn();
  ASSERT_TRUE(manager_->AddPid("t1", a).ok());
  ASSERT_TRUE(manager_->AddPid("t1", b).ok());
  ASSERT_TRUE(manager_->KillAll("t1").ok());
  for (pid_t pid : {a, b}) {
    int status = ReapChild(pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << pid;
    EXPECT_EQ(WTERMSIG(status), SIGKILL);
  }
  children_.clear();
  // Exited processes leave the group asynchronously after being reaped.
  EXPECT_TRUE(WaitUntil([&] { return manager_->RemoveGroup("t1").ok(); }, 5000));
  EXPECT_FALSE(PathExists(manager_->GroupDir("t1")));
}

TEST_F(RealCgroupV2Test, MemoryLimitIsAppliedOrReportedMissing) {
  // On hybrid hosts the v2 tree has no controllers; on pure v2 hosts it has.
  absl::StatusOr<std::vector<std::string>> warnings = manager_->CreateGroup("t1", {.memory_bytes = 64 * kMiB});
  ASSERT_TRUE(warnings.ok()) << warnings.status();
  std::string memory_max = manager_->GroupDir("t1") + "/memory.max";
  if (PathExists(memory_max)) {
    EXPECT_THAT(*warnings, IsEmpty());
    EXPECT_EQ(Trim(Slurp(memory_max)), "67108864");
  } else {
    EXPECT_THAT(*warnings, ElementsAre(HasSubstr("memory controller is not available")));
  }
}

}  // namespace
}  // namespace icos::agent
