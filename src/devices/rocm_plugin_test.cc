#include "devices/rocm_plugin.h"

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>

#include "devices/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::devices {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::ScratchDir;
using testing::WriteFile;

void Script(const json& config) {
  auto path = ScratchDir("rsmi") / "fake_rsmi.json";
  WriteFile(path, config.dump());
  setenv("FAKE_RSMI_CONFIG", path.c_str(), 1);
}

json Gpu(int i) {
  char bus[32];
  std::snprintf(bus, sizeof(bus), "0000:%02x:00.0", 0x0c + i);
  return {{"name", "AMD Instinct MI300X"}, {"memory_total_mib", 196592}, {"bus", bus}};
}

RocmPlugin Loaded(const char* library = FAKE_RSMI_LIB) { return RocmPlugin({.library_path = library}); }

TEST(RocmPluginTest, MissingLibraryMeansZeroDevicesNotAnError) {
  RocmPlugin plugin = Loaded("/nonexistent/librocm_smi64.so");
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("cannot load /nonexistent/librocm_smi64.so"));
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok()) << devices.status();
  EXPECT_TRUE(devices->empty());
}

TEST(RocmPluginTest, EnumeratesEveryField) {
  json gpu = Gpu(0);
  gpu.update({{"memory_used_mib", 1024},
              {"busy", 80},
              {"temp_mc", 52500},
              {"power_uw", 350000000},
              {"numa", 1},
              {"unique_id", 0xabc},
              {"render_minor", 136}});
  Script({{"devices", {gpu}}});
  RocmPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.available()) << plugin.unavailable_reason();
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 1u);
  const DeviceInfo& d = (*devices)[0];
  EXPECT_EQ(d.index, 0);
  EXPECT_EQ(d.vendor, "amd");
  EXPECT_EQ(d.model, "AMD Instinct MI300X");
  EXPECT_EQ(d.uuid, "0x0000000000000abc");
  EXPECT_EQ(d.pci_bus_id, "0000:0c:00.0");
  EXPECT_EQ(d.memory_total_mib, 196592);
  EXPECT_EQ(d.memory_used_mib, 1024);
  EXPECT_EQ(d.utilization_pct, 80);
  EXPECT_EQ(d.temperature_c, 52);  // 52500 millidegrees
  EXPECT_DOUBLE_EQ(d.power_w, 350);
  EXPECT_EQ(d.numa_node, 1);
  EXPECT_TRUE(d.healthy);
  EXPECT_EQ(plugin.vendor(), "amd");
  EXPECT_EQ(plugin.VisibleDevicesVar(), "HIP_VISIBLE_DEVICES");
  EXPECT_THAT(plugin.DeviceNodes({0}), ElementsAre("/dev/kfd", "/dev/dri/renderD136"));
}

TEST(RocmPluginTest, HygonDcuIsReportedAsHygon) {
  json dcu = Gpu(0);
  dcu.update({{"name", "K100_AI"}, {"vendor_id", 0x1d94}});
  json by_name = Gpu(1);
  by_name.update({{"name", "DCU Z100L"}, {"vendor_id", 0x1002}});
  Script({{"devices", {dcu, by_name}}});
  RocmPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].vendor, "hygon");
  EXPECT_EQ((*got)[1].vendor, "hygon");
  EXPECT_EQ(plugin.vendor(), "hygon");
}

TEST(RocmPluginTest, SplitsEightGpusIntoTwoXgmiIslands) {
  json devices = json::array();
  for (int i = 0; i < 8; ++i) {
    json gpu = Gpu(i);
    gpu["xgmi"] = i < 4 ? 0 : 1;
    devices.push_back(gpu);
  }
  Script({{"devices", devices}});
  RocmPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<int> islands;
  for (const DeviceInfo& d : *got) islands.push_back(d.island);
  EXPECT_THAT(islands, ElementsAre(0, 0, 0, 0, 1, 1, 1, 1));
}

TEST(RocmPluginTest, EccErrorsAndLostGpusAreUnhealthy) {
  json ecc = Gpu(1), lost = Gpu(2);
  ecc["ecc_uncorrectable"] = 3;
  lost["lost"] = true;
  Script({{"devices", {Gpu(0), ecc, lost}}});
  RocmPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceHealth>> health = plugin.CheckHealth();
  ASSERT_TRUE(health.ok()) << health.status();
  ASSERT_EQ(health->size(), 3u);
  EXPECT_TRUE((*health)[0].healthy);
  EXPECT_EQ((*health)[0].temperature_c, 40);  // 40000 millidegrees, the fake's default
  EXPECT_FALSE((*health)[1].healthy);
  EXPECT_THAT((*health)[1].reason, HasSubstr("3 uncorrectable ECC"));
  EXPECT_FALSE((*health)[2].healthy);
  EXPECT_THAT((*health)[2].reason, HasSubstr("RSMI_STATUS_UNEXPECTED_DATA"));
}

TEST(RocmPluginTest, InitFailureMakesPluginUnavailableWithErrorText) {
  Script({{"fail_init", 8}});
  RocmPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("rsmi_init failed: RSMI_STATUS_INIT_ERROR (8)"));
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok());
  EXPECT_TRUE(devices->empty());
}

TEST(RocmPluginTest, MissingRequiredSymbolMakesPluginUnavailableNamingIt) {
  Script({{"devices", {Gpu(0)}}});
  RocmPlugin plugin = Loaded(FAKE_RSMI_NO_MEMORY_LIB);
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("rsmi_dev_memory_total_get"));
}

TEST(RocmPluginTest, MissingOptionalSymbolsLeaveTheirFieldsUnknown) {
  json gpu = Gpu(0);
  gpu.update({{"xgmi", 0}, {"numa", 1}, {"ecc_uncorrectable", 5}});
  Script({{"devices", {gpu, Gpu(1)}}});
  RocmPlugin plugin = Loaded(FAKE_RSMI_MINIMAL_LIB);
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.available()) << plugin.unavailable_reason();
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].model, "");
  EXPECT_EQ((*got)[0].island, -1);
  EXPECT_EQ((*got)[0].numa_node, -1);
  EXPECT_TRUE((*got)[0].healthy);  // ECC unreadable without rsmi_dev_ecc_count_get
}

}  // namespace
}  // namespace icos::devices
