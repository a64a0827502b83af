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

constexpr char kEightAscend[] = R"({"devices": [
  {"vendor": "ascend", "model": "910B", "count": 8, "memory": "64Gi", "compute_units": 24,
   "islands": 2, "numa": [0,0,0,0,1,1,1,1], "unhealthy": [3]}]})";

std::vector<DeviceInfo> EnumerateText(const std::string& json) {
  SimPlugin plugin({.inventory_json = json});
  absl::Status init = plugin.Init();
  EXPECT_TRUE(init.ok()) << init;
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  EXPECT_TRUE(devices.ok()) << devices.status();
  return devices.ok() ? *devices : std::vector<DeviceInfo>{};
}

absl::Status InitError(const std::string& json) {
  SimPlugin plugin({.inventory_json = json});
  return plugin.Init();
}

TEST(ParseMemoryMibTest, ReadsBinaryAndDecimalSuffixes) {
  EXPECT_EQ(*ParseMemoryMib("64Gi"), 65536);
  EXPECT_EQ(*ParseMemoryMib("512Mi"), 512);
  EXPECT_EQ(*ParseMemoryMib("1Ti"), 1048576);
  // 80e9 bytes / 2^20 = 76293.9 MiB, rounded down.
  EXPECT_EQ(*ParseMemoryMib("80G"), 76293);
}

TEST(ParseMemoryMibTest, RejectsGarbage) {
  EXPECT_FALSE(ParseMemoryMib("lots").ok());
  EXPECT_FALSE(ParseMemoryMib("-1Gi").ok());
  EXPECT_FALSE(ParseMemoryMib("Gi").ok());
}

TEST(SimPluginTest, DeclaresEightAscendInTwoIslands) {
  std::vector<DeviceInfo> devices = EnumerateText(kEightAscend);
  ASSERT_EQ(devices.size(), 8u);
  std::vector<int> islands, numa, indices;
  for (const DeviceInfo& d : devices) {
    islands.push_back(d.island);
    numa.push_back(d.numa_node);
    indices.push_back(d.index);
  }
  EXPECT_THAT(islands, ElementsAre(0, 0, 0, 0, 1, 1, 1, 1));
  EXPECT_THAT(numa, ElementsAre(0, 0, 0, 0, 1, 1, 1, 1));
  EXPECT_THAT(indices, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  EXPECT_EQ(devices[0].vendor, "ascend");
  EXPECT_EQ(devices[0].model, "910B");
  EXPECT_EQ(devices[0].memory_total_mib, 65536);
  EXPECT_EQ(devices[0].compute_units, 24);
}

TEST(SimPluginTest, UnhealthyOverrideMarksDeviceWithReason) {
  std::vector<DeviceInfo> devices = EnumerateText(R"({"devices": [
    {"vendor": "ascend", "model": "910B", "count": 4, "memory": "64Gi",
     "unhealthy": [1, {"index": 3, "reason": "HBM ECC"}]}]})");
  ASSERT_EQ(devices.size(), 4u);
  EXPECT_TRUE(devices[0].healthy);
  EXPECT_FALSE(devices[1].healthy);
  EXPECT_EQ(devices[1].health_reason, "marked unhealthy in the inventory");
  EXPECT_FALSE(devices[3].healthy);
  EXPECT_EQ(devices[3].health_reason, "HBM ECC");
}

TEST(SimPluginTest, NumbersIndicesPerVendorAndIslandsAcrossEntries) {
  std::vector<DeviceInfo> devices = EnumerateText(R"({"devices": [
    {"vendor": "ascend", "model": "910B", "count": 2, "memory": "64Gi", "islands": 1},
    {"vendor": "cambricon", "model": "MLU370", "count": 2, "memory": "48Gi", "islands": [0, 1]},
    {"vendor": "ascend", "model": "910A", "count": 1, "memory": "32Gi", "islands": 1}]})");
  ASSERT_EQ(devices.size(), 5u);
  std::vector<int> indices, islands;
  for (const DeviceInfo& d : devices) {
    indices.push_back(d.index);
    islands.push_back(d.island);
  }
  // Ascend 0,1 then Cambricon 0,1 then Ascend 2; entry islands stack: {0}, {1,2}, {3}.
  EXPECT_THAT(indices, ElementsAre(0, 1, 0, 1, 2));
  EXPECT_THAT(islands, ElementsAre(0, 0, 1, 2, 3));
}

TEST(SimPluginTest, MalformedMemoryNamesTheFieldPath) {
  absl::Status s = InitError(R"({"devices": [
    {"vendor": "ascend", "model": "910B", "memory": "64Gi"},
    {"vendor": "amd", "model": "MI300X", "memory": "lots"}]})");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("devices[1].memory"));
}

TEST(SimPluginTest, NumaListOfWrongLengthNamesTheField) {
  absl::Status s = InitError(R"({"devices": [
    {"vendor": "ascend", "model": "910B", "count": 4, "memory": "64Gi", "numa": [0, 1]}]})");
  EXPECT_THAT(s.message(), HasSubstr("devices[0].numa: has 2 entries, count is 4"));
}

TEST(SimPluginTest, IslandsMustDivideCount) {
  absl::Status s = InitError(R"({"devices": [
    {"vendor": "ascend", "model": "910B", "count": 6, "memory": "64Gi", "islands": 4}]})");
  EXPECT_THAT(s.message(), HasSubstr("devices[0].islands"));
}

TEST(SimPluginTest, UnhealthyIndexOutOfRangeIsAnError) {
  absl::Status s = InitError(R"({"devices": [
    {"vendor": "ascend", "model": "910B", "count": 2, "memory": "64Gi", "unhealthy": [2]}]})");
  EXPECT_THAT(s.message(), HasSubstr("devices[0].unhealthy[0]"));
}

TEST(SimPluginTest, MissingVendorIsAnError) {
  absl::Status s = InitError(R"({"devices": [{"model": "910B", "memory": "64Gi"}]})");
  EXPECT_THAT(s.message(), HasSubstr("devices[0].vendor"));
}

TEST(SimPluginTest, InvalidJsonIsAnError) {
  absl::Status s = InitError("{devices: ");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("not valid JSON"));
}

TEST(SimPluginTest, MissingFileFailsInit) {
  SimPlugin plugin({.inventory_path = "/nonexistent/inventory.json"});
  EXPECT_EQ(plugin.Init().code(), absl::StatusCode::kNotFound);
  EXPECT_FALSE(plugin.available());
}

TEST(SimPluginTest, CheckHealthRereadsTheFile) {
  auto path = ScratchDir("inv") / "inventory.json";
  WriteFile(path, R"({"devices": [{"vendor": "ascend", "model": "910B", "count": 2, "memory": "64Gi"}]})");
  SimPlugin plugin({.inventory_path = path.string()});
  ASSERT_TRUE(plugin.Init().ok());
  WriteFile(path, R"({"devices": [{"vendor": "ascend", "model": "910B", "count": 2, "memory": "64Gi",
                     "unhealthy": [1]}]})");
  absl::StatusOr<std::vector<DeviceHealth>> health = plugin.CheckHealth();
  ASSERT_TRUE(health.ok()) << health.status();
  ASSERT_EQ(health->size(), 2u);
  EXPECT_TRUE((*health)[0].healthy);
  EXPECT_FALSE((*health)[1].healthy);
}

TEST(SimPluginTest, VisibleDevicesVarFollowsTheOneVendor) {
  SimPlugin plugin({.inventory_json = kEightAscend});
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_EQ(plugin.vendor(), "ascend");
  EXPECT_EQ(plugin.VisibleDevicesVar(), "ASCEND_RT_VISIBLE_DEVICES");
  EXPECT_TRUE(plugin.DeviceNodes({0, 1}).empty());
}

TEST(SimPluginTest, HostDeclarationSplitsCpusAcrossNumaNodes) {
  SimPlugin plugin({.inventory_json = R"({"host": {"cpus": 8, "memory": "64Gi", "numa_nodes": 2},
                                          "devices": []})"});
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.host().has_value());
  EXPECT_EQ(plugin.host()->cpu_count, 8);
  ASSERT_EQ(plugin.host()->numa_nodes.size(), 2u);
  EXPECT_THAT(plugin.host()->numa_nodes[1].cpus, ElementsAre(4, 5, 6, 7));
  EXPECT_EQ(plugin.host()->numa_nodes[1].memory_mib, 32768);  // 64Gi / 2
}

}  // namespace
}  // namespace icos::devices

namespace icos::devices {
namespace {

// Kunlunxin has no backend (no public XPUML reference); the sim inventory is
// how its nodes are declared, and tasks get XPU_VISIBLE_DEVICES.
TEST(SimPluginTest, KunlunxinInventoryUsesXpuVisibleDevices) {
  SimPlugin plugin({.inventory_path = TESTDATA_DIR "/kunlunxin_p800_x8.json"});
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 8u);
  EXPECT_EQ((*devices)[7].vendor, "kunlunxin");
  EXPECT_EQ((*devices)[7].model, "P800");
  EXPECT_EQ((*devices)[7].memory_total_mib, 98304);  // 96 GiB
  EXPECT_EQ((*devices)[7].numa_node, 1);
  EXPECT_EQ(plugin.VisibleDevicesVar(), "XPU_VISIBLE_DEVICES");
}

}  // namespace
}  // namespace icos::devices
