#include "devices/topology.h"

#include <cstdlib>
#include <filesystem>

#include "devices/ascend_plugin.h"
#include "devices/registry.h"
#include "devices/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::devices {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ScratchDir;
using ::testing::StartsWith;
using testing::WriteFile;

// testdata/two_socket_pci.xml: two packages of 2 cores x 2 PUs, one 8 GiB
// NUMA node each. Socket 0: root port 00:01.0, PCIe switch (upstream port
// 01:00.0) with GPUs 18:00.0 and 19:00.0 below. Socket 1: root port 80:01.0
// with an NPU 81:00.0 directly below (no switch).
TEST(HwlocTopologyTest, ReadsNumaNodesCoresAndPciLocalityFromXml) {
  absl::StatusOr<HostTopology> topo = LoadHwlocTopology({.xml_path = TOPOLOGY_XML});
  ASSERT_TRUE(topo.ok()) << topo.status();
  EXPECT_EQ(topo->host.cpu_count, 8);
  EXPECT_EQ(topo->host.core_count, 4);
  EXPECT_EQ(topo->host.memory_mib, 16384);
  ASSERT_EQ(topo->host.numa_nodes.size(), 2u);
  EXPECT_EQ(topo->host.numa_nodes[1].id, 1);
  EXPECT_THAT(topo->host.numa_nodes[1].cpus, ElementsAre(4, 5, 6, 7));
  EXPECT_EQ(topo->host.numa_nodes[1].memory_mib, 8192);

  ASSERT_TRUE(topo->pci.contains("0000:18:00.0"));
  ASSERT_TRUE(topo->pci.contains("0000:81:00.0"));
  EXPECT_EQ(topo->pci["0000:18:00.0"].numa_node, 0);
  EXPECT_EQ(topo->pci["0000:18:00.0"].switch_key, "0000:01:00.0");
  EXPECT_EQ(topo->pci["0000:19:00.0"].switch_key, "0000:01:00.0");
  EXPECT_EQ(topo->pci["0000:81:00.0"].numa_node, 1);
  EXPECT_EQ(topo->pci["0000:81:00.0"].switch_key, "");
}

TEST(HwlocTopologyTest, UnreadableXmlIsAnErrorNamingTheFile) {
  absl::StatusOr<HostTopology> topo = LoadHwlocTopology({.xml_path = "/nonexistent/topo.xml"});
  ASSERT_FALSE(topo.ok());
  EXPECT_THAT(topo.status().message(), HasSubstr("/nonexistent/topo.xml"));
}

// Three Ascend chips at the fixture's bus ids; DCMI gives no locality.
std::vector<std::unique_ptr<DevicePlugin>> ThreeChips() {
  auto path = ScratchDir("dcmi") / "fake_dcmi.json";
  WriteFile(path, R"({"cards": [{"id": 0, "chips": [{"bus": "0000:18:00.0"}]},
                                {"id": 1, "chips": [{"bus": "0000:19:00.0"}]},
                                {"id": 2, "chips": [{"bus": "0000:81:00.0"}]}]})");
  setenv("FAKE_DCMI_CONFIG", path.c_str(), 1);
  std::vector<std::unique_ptr<DevicePlugin>> plugins;
  plugins.push_back(std::make_unique<AscendPlugin>(AscendPluginOptions{.library_path = FAKE_DCMI_LIB}));
  return plugins;
}

TEST(HwlocTopologyTest, DiscoverFillsDeviceLocalityFromHwloc) {
  auto plugins = ThreeChips();
  absl::StatusOr<Discovery> got = Discover({.node_name = "n", .hwloc = {.xml_path = TOPOLOGY_XML}}, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->topology_source, "hwloc");
  EXPECT_EQ(got->node.cpu_milli, 8000);
  ASSERT_EQ(got->node.numa_nodes.size(), 2u);
  ASSERT_EQ(got->node.devices.size(), 3u);
  EXPECT_EQ(got->node.devices[0].numa_node, 0);
  EXPECT_EQ(got->node.devices[2].numa_node, 1);
  EXPECT_EQ(got->node.devices[0].pcie_switch, 0);
  EXPECT_EQ(got->node.devices[1].pcie_switch, 0);
  EXPECT_EQ(got->node.devices[2].pcie_switch, -1);
  // The plugin report carries the filled values too (icos_device_probe shows them).
  EXPECT_EQ(got->plugins[0].devices[2].numa_node, 1);
}

TEST(HwlocTopologyTest, FallsBackToSysfsWhenHwlocFails) {
  auto plugins = ThreeChips();
  auto root = ScratchDir("host");
  WriteFile(root / "proc/meminfo", "MemTotal:       4194304 kB\n");
  WriteFile(root / "sys/devices/system/cpu/online", "0-1\n");
  WriteFile(root / "sys/bus/pci/devices/0000:81:00.0/numa_node", "1\n");
  DiscoverOptions options{.node_name = "n",
                          .host = {.proc_root = (root / "proc").string(), .sysfs_root = (root / "sys").string()},
                          .hwloc = {.xml_path = "/nonexistent/topo.xml"}};
  absl::StatusOr<Discovery> got = Discover(options, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_THAT(got->topology_source, StartsWith("sysfs (hwloc: "));
  EXPECT_EQ(got->host.cpu_count, 2);
  EXPECT_EQ(got->plugins[0].devices[2].numa_node, 1);
  EXPECT_EQ(got->plugins[0].devices[0].numa_node, -1);
}

}  // namespace
}  // namespace icos::devices
