#include "devices/registry.h"

#include <cstdlib>

#include "devices/nvml_plugin.h"
#include "devices/sim_plugin.h"
#include "devices/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::devices {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::WriteFile;

// Two NUMA nodes with ids 0 and 1, 4 CPUs and 8 GiB each.
HostResources TwoSocketHost() {
  return {.cpu_count = 8,
          .memory_mib = 16384,
          .numa_nodes = {{.id = 0, .cpus = {0, 1, 2, 3}, .memory_mib = 8192},
                         {.id = 1, .cpus = {4, 5, 6, 7}, .memory_mib = 8192}}};
}

// Two NVIDIA GPUs linked to each other, from the fake NVML.
void ScriptTwoLinkedGpus() {
  auto path = ScratchDir("nvml") / "fake_nvml.json";
  WriteFile(path, R"({"devices": [
    {"name": "NVIDIA H100", "uuid": "GPU-0", "bus_id": "00000000:18:00.0", "nvlinks": ["00000000:19:00.0"]},
    {"name": "NVIDIA H100", "uuid": "GPU-1", "bus_id": "00000000:19:00.0", "nvlinks": ["00000000:18:00.0"]}]})");
  setenv("FAKE_NVML_CONFIG", path.c_str(), 1);
}

std::vector<std::unique_ptr<DevicePlugin>> NvmlAndSim(const std::string& library, const std::string& inventory) {
  std::vector<std::unique_ptr<DevicePlugin>> plugins;
  plugins.push_back(std::make_unique<NvmlPlugin>(NvmlPluginOptions{.library_path = library}));
  plugins.push_back(std::make_unique<SimPlugin>(SimPluginOptions{.inventory_json = inventory}));
  return plugins;
}

constexpr char kFourAscend[] = R"({"devices": [
  {"vendor": "ascend", "model": "910B", "count": 4, "memory": "64Gi", "islands": 2,
   "numa": [0, 0, 1, 1], "unhealthy": [2]}]})";

TEST(ToCoreDeviceTest, CopiesSchedulerFields) {
  DeviceInfo info{.vendor = "nvidia",
                  .model = "H100",
                  .memory_total_mib = 81559,
                  .numa_node = -1,
                  .island = 2,
                  .pcie_switch = 1,
                  .compute_units = 132,
                  .healthy = false};
  core::Device d = ToCoreDevice(info);
  EXPECT_EQ(d.vendor, "nvidia");
  EXPECT_EQ(d.model, "H100");
  EXPECT_EQ(d.memory_mib, 81559);
  EXPECT_EQ(d.compute_units, 132);
  EXPECT_FALSE(d.healthy);
  EXPECT_EQ(d.island, 2);
  EXPECT_EQ(d.numa_node, 0);  // unknown becomes the first node
  EXPECT_EQ(d.pcie_switch, 1);
}

TEST(DefaultPluginsTest, EveryVendorBackendAndSimOnlyWithAnInventory) {
  EXPECT_EQ(DefaultPlugins({}).size(), 4u);
  std::vector<std::unique_ptr<DevicePlugin>> plugins = DefaultPlugins({.inventory_path = "inv.json"});
  ASSERT_EQ(plugins.size(), 5u);
  EXPECT_EQ(plugins[0]->name(), "nvml");
  EXPECT_EQ(plugins[1]->name(), "dcmi");
  EXPECT_EQ(plugins[2]->name(), "cndev");
  EXPECT_EQ(plugins[3]->name(), "rocm_smi");
  EXPECT_EQ(plugins[4]->name(), "sim");
}

TEST(DiscoverTest, CombinesHostAndEveryPluginsDevices) {
  ScriptTwoLinkedGpus();
  auto plugins = NvmlAndSim(FAKE_NVML_LIB, kFourAscend);
  absl::StatusOr<Discovery> got = Discover({.node_name = "n1", .host_override = TwoSocketHost()}, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  const core::Node& node = got->node;
  EXPECT_EQ(node.name, "n1");
  EXPECT_EQ(node.cpu_milli, 8000);
  EXPECT_EQ(node.memory_mib, 16384);
  ASSERT_EQ(node.numa_nodes.size(), 2u);
  EXPECT_EQ(node.numa_nodes[1].cpu_milli, 4000);
  ASSERT_EQ(node.devices.size(), 6u);
  std::vector<std::string> vendors;
  std::vector<int> islands, numa;
  for (const core::Device& d : node.devices) {
    vendors.push_back(d.vendor);
    islands.push_back(d.island);
    numa.push_back(d.numa_node);
  }
  EXPECT_THAT(vendors, ElementsAre("nvidia", "nvidia", "ascend", "ascend", "ascend", "ascend"));
  // NVLink pair is island 0; the sim's islands 0 and 1 move up past it.
  EXPECT_THAT(islands, ElementsAre(0, 0, 1, 1, 2, 2));
  // NVIDIA NUMA unknown (no sysfs) -> 0; sim ids 0,0,1,1 map to indices 0,0,1,1.
  EXPECT_THAT(numa, ElementsAre(0, 0, 0, 0, 1, 1));
  EXPECT_FALSE(node.devices[4].healthy);  // ascend index 2
  EXPECT_EQ(got->origin[4], std::make_pair(1, 2));
}

TEST(DiscoverTest, UnavailablePluginContributesNoDevices) {
  auto plugins = NvmlAndSim("/nonexistent/libnvidia-ml.so.1", kFourAscend);
  absl::StatusOr<Discovery> got = Discover({.host_override = TwoSocketHost()}, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->plugins.size(), 2u);
  EXPECT_FALSE(got->plugins[0].available);
  EXPECT_THAT(got->plugins[0].reason, HasSubstr("cannot load"));
  EXPECT_EQ(got->node.devices.size(), 4u);
}

TEST(DiscoverTest, MalformedInventoryFailsDiscovery) {
  auto plugins = NvmlAndSim("/nonexistent/libnvidia-ml.so.1", R"({"devices": [{"vendor": "x"}]})");
  absl::StatusOr<core::Node> got = DiscoverNode({.host_override = TwoSocketHost()}, plugins);
  EXPECT_EQ(got.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(got.status().message(), HasSubstr("device plugin sim"));
}

TEST(DiscoverTest, SimHostStandsInForTheRealHost) {
  auto plugins = NvmlAndSim("/nonexistent/libnvidia-ml.so.1",
                            R"({"host": {"cpus": 96, "memory": "1Ti", "numa_nodes": 2}, "devices": []})");
  absl::StatusOr<core::Node> got = DiscoverNode({}, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(got->cpu_milli, 96000);
  EXPECT_EQ(got->memory_mib, 1048576);
  EXPECT_EQ(got->numa_nodes.size(), 2u);
}

TEST(DiscoverTest, NumaIdMissingFromHostMapsToFirstNode) {
  auto plugins = NvmlAndSim("/nonexistent/libnvidia-ml.so.1", R"({"devices": [
    {"vendor": "ascend", "model": "910B", "count": 1, "memory": "64Gi", "numa": 5}]})");
  absl::StatusOr<core::Node> got = DiscoverNode({.host_override = TwoSocketHost()}, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->devices.size(), 1u);
  EXPECT_EQ(got->devices[0].numa_node, 0);
}

}  // namespace
}  // namespace icos::devices

namespace icos::devices {
namespace {

// All four real backends at once, each over its fake library: one node with
// NVIDIA, Ascend, Cambricon and AMD devices, islands unique across vendors.
TEST(DiscoverTest, EveryRealBackendJoinsOneNode) {
  ScriptTwoLinkedGpus();
  auto dir = ScratchDir("fakes");
  WriteFile(dir / "dcmi.json", R"({"cards": [{"id": 0, "chips": [{"name": "910B3", "hccs": 0}]},
                                             {"id": 1, "chips": [{"name": "910B3", "hccs": 0}]}]})");
  WriteFile(dir / "cndev.json", R"({"cards": [{"name": "MLU370-X8"}]})");
  WriteFile(dir / "rsmi.json", R"({"devices": [{"name": "AMD Instinct MI300X", "xgmi": 0},
                                               {"name": "AMD Instinct MI300X", "xgmi": 0}]})");
  setenv("FAKE_DCMI_CONFIG", (dir / "dcmi.json").c_str(), 1);
  setenv("FAKE_CNDEV_CONFIG", (dir / "cndev.json").c_str(), 1);
  setenv("FAKE_RSMI_CONFIG", (dir / "rsmi.json").c_str(), 1);
  std::vector<std::unique_ptr<DevicePlugin>> plugins = DefaultPlugins({.nvml_library = FAKE_NVML_LIB,
                                                                       .dcmi_library = FAKE_DCMI_LIB,
                                                                       .cndev_library = FAKE_CNDEV_LIB,
                                                                       .rocm_smi_library = FAKE_RSMI_LIB});
  absl::StatusOr<Discovery> got = Discover({.node_name = "mixed", .host_override = TwoSocketHost()}, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<std::string> vendors;
  std::vector<int> islands;
  for (const core::Device& d : got->node.devices) {
    vendors.push_back(d.vendor);
    islands.push_back(d.island);
  }
  EXPECT_THAT(vendors, ElementsAre("nvidia", "nvidia", "ascend", "ascend", "cambricon", "amd", "amd"));
  // NVLink pair 0, HCCS pair 1, the MLU without link information -1, XGMI pair 2.
  EXPECT_THAT(islands, ElementsAre(0, 0, 1, 1, -1, 2, 2));
  ASSERT_EQ(got->plugins.size(), 4u);
  for (const PluginReport& report : got->plugins) EXPECT_TRUE(report.available) << report.name << ": " << report.reason;
  EXPECT_EQ(got->plugins[1].visible_devices_var, "ASCEND_RT_VISIBLE_DEVICES");
}

}  // namespace
}  // namespace icos::devices

namespace icos::devices {
namespace {

TEST(CheckNodeHealthTest, ReportsSickAndVanishedDevicesInNodeOrder) {
  auto path = ScratchDir("inv") / "inventory.json";
  WriteFile(path, kFourAscend);  // 4 NPUs, NPU 2 unhealthy
  std::vector<std::unique_ptr<DevicePlugin>> plugins;
  plugins.push_back(std::make_unique<SimPlugin>(SimPluginOptions{.inventory_path = path.string()}));
  absl::StatusOr<Discovery> got = Discover({.node_name = "n", .host_override = TwoSocketHost()}, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<DeviceState> health = CheckNodeHealth(*got, plugins);
  ASSERT_EQ(health.size(), 4u);
  EXPECT_TRUE(health[0].healthy);
  EXPECT_FALSE(health[2].healthy);
  // The inventory now lists three healthy NPUs: NPU 2 recovered, NPU 3 vanished.
  WriteFile(path, R"({"devices": [{"vendor": "ascend", "model": "910B", "count": 3, "memory": "64Gi"}]})");
  health = CheckNodeHealth(*got, plugins);
  ASSERT_EQ(health.size(), 4u);
  EXPECT_TRUE(health[2].healthy);
  EXPECT_FALSE(health[3].healthy);
  EXPECT_EQ(health[3].reason, "no longer reported by sim");
  // A health query that fails (an inventory caught mid-edit) keeps the last answers.
  WriteFile(path, "{not json");
  health = CheckNodeHealth(*got, plugins, health);
  EXPECT_FALSE(health[3].healthy);
  EXPECT_TRUE(health[2].healthy);
}

}  // namespace
}  // namespace icos::devices

namespace icos::devices {
namespace {

// Each check carries what the devices are doing now, as their plugin reads
// it; a check whose plugin fails leaves the figures unknown, not stale.
TEST(CheckNodeHealthTest, CarriesEachDevicesUtilisation) {
  auto path = ScratchDir("usage") / "inventory.json";
  WriteFile(path, R"({"devices": [{"vendor": "nvidia", "model": "A100", "count": 2, "memory": "80Gi",
                                   "utilization": [90, 0]}]})");
  std::vector<std::unique_ptr<DevicePlugin>> plugins;
  plugins.push_back(std::make_unique<SimPlugin>(SimPluginOptions{.inventory_path = path.string()}));
  absl::StatusOr<Discovery> got = Discover({.node_name = "n", .host_override = TwoSocketHost()}, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<DeviceState> health = CheckNodeHealth(*got, plugins);
  ASSERT_EQ(health.size(), 2u);
  EXPECT_EQ(health[0].utilization_pct, 90);
  EXPECT_EQ(health[1].utilization_pct, 0);
  EXPECT_EQ(health[0].memory_used_mib, 0);
  WriteFile(path, R"({"devices": [{"vendor": "nvidia", "model": "A100", "count": 2, "memory": "80Gi",
                                   "utilization": 40}]})");
  health = CheckNodeHealth(*got, plugins, health);
  EXPECT_EQ(health[1].utilization_pct, 40);
  WriteFile(path, "{not json");
  health = CheckNodeHealth(*got, plugins, health);
  EXPECT_TRUE(health[1].healthy);
  EXPECT_EQ(health[1].utilization_pct, -1);
  WriteFile(path, R"({"devices": [{"vendor": "nvidia", "model": "A100", "count": 2, "memory": "80Gi",
                                   "utilization": 101}]})");
  EXPECT_FALSE(SimPlugin(SimPluginOptions{.inventory_path = path.string()}).Init().ok());
}

TEST(CheckNodeHealthTest, DeviceAboveTheTemperatureLimitIsUnhealthy) {
  auto path = ScratchDir("nvml") / "fake_nvml.json";
  WriteFile(path, R"({"devices": [{"name": "NVIDIA H100", "temperature": 70},
                                  {"name": "NVIDIA H100", "temperature": 95}]})");
  setenv("FAKE_NVML_CONFIG", path.c_str(), 1);
  std::vector<std::unique_ptr<DevicePlugin>> plugins;
  plugins.push_back(std::make_unique<NvmlPlugin>(NvmlPluginOptions{.library_path = FAKE_NVML_LIB}));
  absl::StatusOr<Discovery> got = Discover({.node_name = "n", .host_override = TwoSocketHost()}, plugins);
  ASSERT_TRUE(got.ok()) << got.status();
  // No limit: both healthy. Limit 90 C: the 95 C GPU is not.
  std::vector<DeviceState> health = CheckNodeHealth(*got, plugins);
  EXPECT_TRUE(health[1].healthy);
  health = CheckNodeHealth(*got, plugins, {}, 90);
  EXPECT_TRUE(health[0].healthy);
  EXPECT_FALSE(health[1].healthy);
  EXPECT_EQ(health[1].reason, "temperature 95 C is above the limit of 90 C");
}

}  // namespace
}  // namespace icos::devices
