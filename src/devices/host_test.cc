#include "devices/host.h"

#include "devices/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::devices {
namespace {

using ::testing::ElementsAre;
using testing::ScratchDir;
using testing::WriteFile;

TEST(ParseCpuListTest, ExpandsRangesAndSingles) {
  absl::StatusOr<std::vector<int>> cpus = ParseCpuList("0-2,5,7-8\n");
  ASSERT_TRUE(cpus.ok()) << cpus.status();
  EXPECT_THAT(*cpus, ElementsAre(0, 1, 2, 5, 7, 8));
}

TEST(ParseCpuListTest, RejectsGarbage) {
  EXPECT_FALSE(ParseCpuList("0-x").ok());
  EXPECT_FALSE(ParseCpuList("4-2").ok());
}

TEST(ReadHostTest, ReadsCpusMemoryAndNumaNodes) {
  auto root = ScratchDir("root");
  WriteFile(root / "proc/meminfo", "MemTotal:       16777216 kB\nMemFree: 1 kB\n");
  WriteFile(root / "sys/devices/system/cpu/online", "0-7\n");
  WriteFile(root / "sys/devices/system/node/node0/cpulist", "0-3\n");
  WriteFile(root / "sys/devices/system/node/node0/meminfo", "Node 0 MemTotal:  8388608 kB\n");
  WriteFile(root / "sys/devices/system/node/node1/cpulist", "4-7\n");
  WriteFile(root / "sys/devices/system/node/node1/meminfo", "Node 1 MemTotal:  8388608 kB\n");
  WriteFile(root / "sys/devices/system/node/possible", "0-1\n");  // not a node directory

  absl::StatusOr<HostResources> host =
      ReadHost({.proc_root = (root / "proc").string(), .sysfs_root = (root / "sys").string()});
  ASSERT_TRUE(host.ok()) << host.status();
  // 16777216 kB / 1024 = 16384 MiB; each node holds half.
  EXPECT_EQ(host->cpu_count, 8);
  EXPECT_EQ(host->memory_mib, 16384);
  ASSERT_EQ(host->numa_nodes.size(), 2u);
  EXPECT_EQ(host->numa_nodes[1].id, 1);
  EXPECT_THAT(host->numa_nodes[1].cpus, ElementsAre(4, 5, 6, 7));
  EXPECT_EQ(host->numa_nodes[1].memory_mib, 8192);
}

TEST(ReadHostTest, MissingMeminfoIsAnError) {
  auto root = ScratchDir("root");
  absl::StatusOr<HostResources> host = ReadHost({.proc_root = (root / "proc").string()});
  EXPECT_EQ(host.status().code(), absl::StatusCode::kNotFound);
}

TEST(ReadHostTest, NoNodeDirectoryMeansNoNumaNodes) {
  auto root = ScratchDir("root");
  WriteFile(root / "proc/meminfo", "MemTotal: 2048 kB\n");
  WriteFile(root / "sys/devices/system/cpu/online", "0\n");
  absl::StatusOr<HostResources> host =
      ReadHost({.proc_root = (root / "proc").string(), .sysfs_root = (root / "sys").string()});
  ASSERT_TRUE(host.ok()) << host.status();
  EXPECT_EQ(host->cpu_count, 1);
  EXPECT_TRUE(host->numa_nodes.empty());
}

}  // namespace
}  // namespace icos::devices
