#include "devices/cambricon_plugin.h"

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
  auto path = ScratchDir("cndev") / "fake_cndev.json";
  WriteFile(path, config.dump());
  setenv("FAKE_CNDEV_CONFIG", path.c_str(), 1);
}

json Card(int i) {
  char bus[32];
  std::snprintf(bus, sizeof(bus), "0000:%02x:00.0", 0x3b + i);
  return {{"name", "MLU370-X8"}, {"memory_total_mib", 49152}, {"bus", bus}};
}

CambriconPlugin Loaded(const char* library = FAKE_CNDEV_LIB) { return CambriconPlugin({.library_path = library}); }

TEST(CambriconPluginTest, MissingLibraryMeansZeroDevicesNotAnError) {
  CambriconPlugin plugin = Loaded("/nonexistent/libcndev.so");
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("cannot load /nonexistent/libcndev.so"));
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok()) << devices.status();
  EXPECT_TRUE(devices->empty());
}

TEST(CambriconPluginTest, EnumeratesEveryField) {
  json card = Card(0);
  card.update({{"memory_used_mib", 2048}, {"util", 55}, {"temp", 47}, {"power_w", 150}});
  Script({{"cards", {card, Card(1), Card(2), Card(3)}}});
  CambriconPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.available()) << plugin.unavailable_reason();
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 4u);
  const DeviceInfo& d = (*devices)[0];
  EXPECT_EQ(d.index, 0);
  EXPECT_EQ(d.vendor, "cambricon");
  EXPECT_EQ(d.model, "MLU370-X8");
  EXPECT_EQ(d.uuid, "MLU-0000:3b:00.0");
  EXPECT_EQ(d.pci_bus_id, "0000:3b:00.0");
  EXPECT_EQ(d.memory_total_mib, 49152);
  EXPECT_EQ(d.memory_used_mib, 2048);
  EXPECT_EQ(d.utilization_pct, 55);
  EXPECT_EQ(d.temperature_c, 47);
  EXPECT_DOUBLE_EQ(d.power_w, 150);
  EXPECT_TRUE(d.healthy);
  EXPECT_EQ((*devices)[3].index, 3);
  EXPECT_EQ((*devices)[3].pci_bus_id, "0000:3e:00.0");
  EXPECT_EQ(plugin.VisibleDevicesVar(), "MLU_VISIBLE_DEVICES");
  EXPECT_THAT(plugin.DeviceNodes({1, 3}),
              ElementsAre("/dev/cambricon_ctl", "/dev/cambricon_dev1", "/dev/cambricon_dev3"));
}

TEST(CambriconPluginTest, SickAndLostCardsAreUnhealthy) {
  json sick = Card(1), lost = Card(2);
  sick["health"] = 0;
  lost["lost"] = true;
  Script({{"cards", {Card(0), sick, lost}}});
  CambriconPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceHealth>> health = plugin.CheckHealth();
  ASSERT_TRUE(health.ok()) << health.status();
  ASSERT_EQ(health->size(), 3u);
  EXPECT_TRUE((*health)[0].healthy);
  EXPECT_EQ((*health)[0].temperature_c, 35);  // the fake's default board temperature
  EXPECT_FALSE((*health)[1].healthy);
  EXPECT_THAT((*health)[1].reason, HasSubstr("sick"));
  EXPECT_FALSE((*health)[2].healthy);
  EXPECT_THAT((*health)[2].reason, HasSubstr("cndevGetCardHealthState: CNDEV_ERROR_UNKNOWN"));
}

TEST(CambriconPluginTest, InitFailureMakesPluginUnavailableWithErrorText) {
  Script({{"fail_init", 2}});  // CNDEV_ERROR_LOW_DRIVER_VERSION
  CambriconPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("cndevInit failed: CNDEV_ERROR_LOW_DRIVER_VERSION (2)"));
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok());
  EXPECT_TRUE(devices->empty());
}

TEST(CambriconPluginTest, MissingRequiredSymbolMakesPluginUnavailableNamingIt) {
  Script({{"cards", {Card(0)}}});
  CambriconPlugin plugin = Loaded(FAKE_CNDEV_NO_HEALTH_LIB);
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("cndevGetCardHealthState"));
}

TEST(CambriconPluginTest, MissingOptionalSymbolsLeaveTheirFieldsUnknown) {
  Script({{"cards", {Card(0)}}});
  CambriconPlugin plugin = Loaded(FAKE_CNDEV_MINIMAL_LIB);
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.available()) << plugin.unavailable_reason();
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 1u);
  EXPECT_EQ((*got)[0].model, "");
  EXPECT_EQ((*got)[0].pci_bus_id, "");
  EXPECT_DOUBLE_EQ((*got)[0].power_w, -1);
  EXPECT_EQ((*got)[0].memory_total_mib, 49152);
  EXPECT_TRUE((*got)[0].healthy);
}

}  // namespace
}  // namespace icos::devices
