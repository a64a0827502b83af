#include "devices/ascend_plugin.h"

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
  auto path = ScratchDir("dcmi") / "fake_dcmi.json";
  WriteFile(path, config.dump());
  setenv("FAKE_DCMI_CONFIG", path.c_str(), 1);
}

// An Atlas 800T A2 style board: 8 cards of one 910B chip each, HCCS-linked
// in two groups of four (chips 0-3 and 4-7).
json EightChips() {
  json cards = json::array();
  for (int i = 0; i < 8; ++i) {
    char bus[32];
    std::snprintf(bus, sizeof(bus), "0000:%02x:00.0", 0xc1 + i);
    json chip = {{"name", "910B3"}, {"hccs", i < 4 ? 0 : 1}, {"bus", bus}};
    cards.push_back({{"id", i}, {"chips", json::array({chip})}});
  }
  return {{"cards", cards}};
}

AscendPlugin Loaded(const char* library = FAKE_DCMI_LIB) { return AscendPlugin({.library_path = library}); }

TEST(AscendPluginTest, MissingLibraryMeansZeroDevicesNotAnError) {
  AscendPlugin plugin = Loaded("/nonexistent/libdcmi.so");
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("cannot load /nonexistent/libdcmi.so"));
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok()) << devices.status();
  EXPECT_TRUE(devices->empty());
}

TEST(AscendPluginTest, EnumeratesEveryField) {
  Script({{"cards",
           {{{"id", 3},
             {"chips",
              {{{"name", "910B3"},
                {"aicore", 20},
                {"hbm_total_mb", 65536},
                {"hbm_used_mb", 3000},
                {"util", 12},
                {"temp", 45},
                {"power_dw", 905},
                {"logic_id", 0},
                {"phy_id", 4},
                {"bus", "0000:C1:00.0"}}}}}}}});
  AscendPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.available()) << plugin.unavailable_reason();
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 1u);
  const DeviceInfo& d = (*devices)[0];
  EXPECT_EQ(d.index, 0);
  EXPECT_EQ(d.vendor, "ascend");
  EXPECT_EQ(d.model, "910B3");
  EXPECT_EQ(d.uuid, "ascend-card3-chip0");
  EXPECT_EQ(d.pci_bus_id, "0000:c1:00.0");
  EXPECT_EQ(d.memory_total_mib, 65536);
  EXPECT_EQ(d.memory_used_mib, 3000);
  EXPECT_EQ(d.utilization_pct, 12);
  EXPECT_EQ(d.temperature_c, 45);
  EXPECT_DOUBLE_EQ(d.power_w, 90.5);  // 905 tenths of a watt
  EXPECT_EQ(d.compute_units, 20);
  EXPECT_EQ(d.island, 0);
  EXPECT_TRUE(d.healthy);
  EXPECT_EQ(plugin.VisibleDevicesVar(), "ASCEND_RT_VISIBLE_DEVICES");
  // /dev/davinci4: the physical id, not the logic id 0.
  EXPECT_THAT(plugin.DeviceNodes({0}),
              ElementsAre("/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc", "/dev/davinci4"));
}

TEST(AscendPluginTest, SplitsEightChipsIntoTwoHccsIslands) {
  Script(EightChips());
  AscendPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<int> islands, indices;
  for (const DeviceInfo& d : *got) {
    islands.push_back(d.island);
    indices.push_back(d.index);
  }
  EXPECT_THAT(islands, ElementsAre(0, 0, 0, 0, 1, 1, 1, 1));
  EXPECT_THAT(indices, ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
}

TEST(AscendPluginTest, DevicesAreOrderedByLogicId) {
  // One card holding two chips whose logic ids run backwards.
  Script({{"cards", {{{"id", 0}, {"chips", {{{"logic_id", 1}, {"name", "A"}}, {{"logic_id", 0}, {"name", "B"}}}}}}}});
  AscendPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].index, 0);
  EXPECT_EQ((*got)[0].model, "B");
  EXPECT_EQ((*got)[1].index, 1);
  EXPECT_EQ((*got)[1].model, "A");
}

TEST(AscendPluginTest, MajorAlarmMakesChipUnhealthyMinorDoesNot) {
  json config = EightChips();
  config["cards"][1]["chips"][0]["health"] = 1;  // minor alarm
  config["cards"][2]["chips"][0]["health"] = 3;  // critical alarm
  Script(config);
  AscendPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceHealth>> health = plugin.CheckHealth();
  ASSERT_TRUE(health.ok()) << health.status();
  ASSERT_EQ(health->size(), 8u);
  EXPECT_TRUE((*health)[0].healthy);
  EXPECT_EQ((*health)[0].temperature_c, 40);  // the fake's default, read on the health path
  EXPECT_TRUE((*health)[1].healthy);
  EXPECT_FALSE((*health)[2].healthy);
  EXPECT_THAT((*health)[2].reason, HasSubstr("critical alarm"));
  EXPECT_EQ((*health)[2].index, 2);
}

TEST(AscendPluginTest, InitFailureMakesPluginUnavailableWithErrorCode) {
  Script({{"fail_init", -8005}});
  AscendPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("dcmi_init failed: DCMI error -8005"));
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok());
  EXPECT_TRUE(devices->empty());
}

TEST(AscendPluginTest, MissingRequiredSymbolMakesPluginUnavailableNamingIt) {
  Script(EightChips());
  AscendPlugin plugin = Loaded(FAKE_DCMI_NO_HEALTH_LIB);
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("dcmi_get_device_health"));
}

TEST(AscendPluginTest, MissingOptionalSymbolsFallBack) {
  // No HBM call: memory comes from dcmi_get_device_memory_info_v3 (DDR, as
  // on a 310P); no topology call: islands unknown; no logic ids: positions.
  json config = EightChips();
  config["cards"][0]["chips"][0]["ddr_total_mb"] = 24576;
  Script(config);
  AscendPlugin plugin = Loaded(FAKE_DCMI_MINIMAL_LIB);
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.available()) << plugin.unavailable_reason();
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 8u);
  EXPECT_EQ((*got)[0].memory_total_mib, 24576);
  EXPECT_EQ((*got)[0].island, -1);
  EXPECT_EQ((*got)[7].index, 7);
}

}  // namespace
}  // namespace icos::devices
