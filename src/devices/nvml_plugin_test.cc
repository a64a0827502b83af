#include "devices/nvml_plugin.h"

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

// Bus id of GPU i in NVML's 8-digit-domain form.
std::string Bus(int i) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "00000000:%02X:00.0", 0x18 + i);
  return buf;
}

json Gpu(int i) {
  return {{"name", "NVIDIA H100 80GB HBM3"},
          {"uuid", "GPU-" + std::to_string(i)},
          {"bus_id", Bus(i)},
          {"memory_total_mib", 81559}};
}

// Writes the fake library's script and points it there.
void Script(const json& config) {
  auto path = ScratchDir("nvml") / "fake_nvml.json";
  WriteFile(path, config.dump());
  setenv("FAKE_NVML_CONFIG", path.c_str(), 1);
}

NvmlPlugin Loaded(const char* library = FAKE_NVML_LIB, std::string sysfs = "/nonexistent") {
  return NvmlPlugin({.library_path = library, .sysfs_root = std::move(sysfs)});
}

TEST(NormalizePciBusIdTest, ShortensEightDigitDomainAndLowersCase) {
  EXPECT_EQ(NormalizePciBusId("00000000:1A:00.0"), "0000:1a:00.0");
  EXPECT_EQ(NormalizePciBusId("0000:1A:00.0"), "0000:1a:00.0");
}

TEST(NvmlPluginTest, MissingLibraryMeansZeroDevicesNotAnError) {
  NvmlPlugin plugin = Loaded("/nonexistent/libnvidia-ml.so.1");
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("cannot load /nonexistent/libnvidia-ml.so.1"));
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok()) << devices.status();
  EXPECT_TRUE(devices->empty());
}

TEST(NvmlPluginTest, EnumeratesEveryField) {
  json gpu = Gpu(0);
  gpu.update(
      {{"memory_used_mib", 1024}, {"utilization", 37}, {"temperature", 41}, {"power_mw", 123500}, {"cores", 16896}});
  Script({{"devices", {gpu}}});
  auto sysfs = ScratchDir("sys");
  WriteFile(sysfs / "bus/pci/devices/0000:18:00.0/numa_node", "1\n");
  NvmlPlugin plugin = Loaded(FAKE_NVML_LIB, sysfs.string());
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.available()) << plugin.unavailable_reason();

  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok()) << devices.status();
  ASSERT_EQ(devices->size(), 1u);
  const DeviceInfo& d = (*devices)[0];
  EXPECT_EQ(d.index, 0);
  EXPECT_EQ(d.vendor, "nvidia");
  EXPECT_EQ(d.model, "NVIDIA H100 80GB HBM3");
  EXPECT_EQ(d.uuid, "GPU-0");
  EXPECT_EQ(d.pci_bus_id, "0000:18:00.0");
  EXPECT_EQ(d.memory_total_mib, 81559);
  EXPECT_EQ(d.memory_used_mib, 1024);
  EXPECT_EQ(d.utilization_pct, 37);
  EXPECT_EQ(d.temperature_c, 41);
  EXPECT_DOUBLE_EQ(d.power_w, 123.5);  // 123500 mW
  EXPECT_EQ(d.compute_units, 16896);
  EXPECT_EQ(d.numa_node, 1);
  EXPECT_EQ(d.island, 0);  // no links: its own island
  EXPECT_TRUE(d.healthy);
}

TEST(NvmlPluginTest, SplitsEightGpusIntoTwoNvLinkIslands) {
  // GPUs 0-3 link to each other, as do 4-7; nothing crosses the groups.
  json devices = json::array();
  for (int i = 0; i < 8; ++i) {
    json gpu = Gpu(i);
    int base = i < 4 ? 0 : 4;
    for (int peer = base; peer < base + 4; ++peer) {
      if (peer != i) gpu["nvlinks"].push_back(Bus(peer));
    }
    devices.push_back(gpu);
  }
  Script({{"devices", devices}});
  NvmlPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  std::vector<int> islands;
  for (const DeviceInfo& d : *got) islands.push_back(d.island);
  EXPECT_THAT(islands, ElementsAre(0, 0, 0, 0, 1, 1, 1, 1));
}

TEST(NvmlPluginTest, GpusBehindOneNvSwitchShareAnIsland) {
  // HGX-style: every link ends at an NVSwitch, never at a peer GPU; GPU 2 has
  // no active link at all.
  json a = Gpu(0), b = Gpu(1), c = Gpu(2);
  a["nvlinks"] = {"00000000:A0:00.0"};
  b["nvlinks"] = {"00000000:A0:00.0"};
  Script({{"devices", {a, b, c}}});
  NvmlPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].island, 0);
  EXPECT_EQ((*got)[1].island, 0);
  EXPECT_EQ((*got)[2].island, 1);
}

TEST(NvmlPluginTest, UncorrectedEccErrorsMakeDeviceUnhealthy) {
  json bad = Gpu(1);
  bad["ecc_uncorrected"] = 2;
  Script({{"devices", {Gpu(0), bad}}});
  NvmlPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_TRUE((*got)[0].healthy);
  EXPECT_FALSE((*got)[1].healthy);
  EXPECT_THAT((*got)[1].health_reason, HasSubstr("2 uncorrected ECC error"));
}

TEST(NvmlPluginTest, CheckHealthReportsEveryDevice) {
  json bad = Gpu(1);
  bad["ecc_uncorrected"] = 1;
  Script({{"devices", {Gpu(0), bad}}});
  NvmlPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceHealth>> health = plugin.CheckHealth();
  ASSERT_TRUE(health.ok()) << health.status();
  ASSERT_EQ(health->size(), 2u);
  EXPECT_TRUE((*health)[0].healthy);
  EXPECT_EQ((*health)[1].uuid, "GPU-1");
  EXPECT_FALSE((*health)[1].healthy);
  EXPECT_THAT((*health)[1].reason, HasSubstr("ECC"));
}

TEST(NvmlPluginTest, LostGpuStaysListedAsUnhealthy) {
  json lost = Gpu(1);
  lost["lost"] = true;
  Script({{"devices", {Gpu(0), lost}}});
  NvmlPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[1].index, 1);
  EXPECT_FALSE((*got)[1].healthy);
  EXPECT_THAT((*got)[1].health_reason, HasSubstr("GPU is lost"));
}

TEST(NvmlPluginTest, InitFailureMakesPluginUnavailableWithErrorText) {
  Script({{"fail_init", 9}});  // NVML_ERROR_DRIVER_NOT_LOADED
  NvmlPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("nvmlInit_v2 failed: Driver Not Loaded"));
  absl::StatusOr<std::vector<DeviceInfo>> devices = plugin.Enumerate();
  ASSERT_TRUE(devices.ok());
  EXPECT_TRUE(devices->empty());
}

TEST(NvmlPluginTest, MissingRequiredSymbolMakesPluginUnavailableNamingIt) {
  Script({{"devices", {Gpu(0)}}});
  NvmlPlugin plugin = Loaded(FAKE_NVML_NO_COUNT_LIB);
  ASSERT_TRUE(plugin.Init().ok());
  EXPECT_FALSE(plugin.available());
  EXPECT_THAT(plugin.unavailable_reason(), HasSubstr("nvmlDeviceGetCount_v2"));
}

TEST(NvmlPluginTest, MissingOptionalSymbolsLeaveTheirFieldsUnknown) {
  json gpu = Gpu(0);
  gpu["nvlinks"] = {Bus(1)};
  gpu["ecc_uncorrected"] = 5;  // unreadable without nvmlDeviceGetTotalEccErrors
  Script({{"devices", {gpu, Gpu(1)}}});
  NvmlPlugin plugin = Loaded(FAKE_NVML_MINIMAL_LIB);
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.available()) << plugin.unavailable_reason();
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_EQ(got->size(), 2u);
  EXPECT_EQ((*got)[0].island, -1);
  EXPECT_EQ((*got)[0].compute_units, 0);
  EXPECT_TRUE((*got)[0].healthy);
}

TEST(NvmlPluginTest, DeviceNodesUseMinorNumbers) {
  json gpu = Gpu(0);
  gpu["minor"] = 3;  // index 0 need not be /dev/nvidia0
  Script({{"devices", {gpu}}});
  NvmlPlugin plugin = Loaded();
  ASSERT_TRUE(plugin.Init().ok());
  ASSERT_TRUE(plugin.Enumerate().ok());
  EXPECT_THAT(plugin.DeviceNodes({0}),
              ElementsAre("/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools", "/dev/nvidia3"));
}

TEST(NvmlPluginTest, PcieSwitchFromSysfsTopology) {
  // GPUs 0 and 1 sit under one switch (upstream port 0000:01:00.0); GPU 2
  // hangs off its root port directly.
  auto sysfs = ScratchDir("sys");
  const std::string root = "devices/pci0000:00/0000:00:01.0";
  std::filesystem::create_directories(sysfs / root / "0000:01:00.0/0000:02:00.0/0000:18:00.0");
  std::filesystem::create_directories(sysfs / root / "0000:01:00.0/0000:02:01.0/0000:19:00.0");
  std::filesystem::create_directories(sysfs / "devices/pci0000:00/0000:00:02.0/0000:1a:00.0");
  std::filesystem::create_directories(sysfs / "bus/pci/devices");
  std::filesystem::create_symlink("../../../" + root + "/0000:01:00.0/0000:02:00.0/0000:18:00.0",
                                  sysfs / "bus/pci/devices/0000:18:00.0");
  std::filesystem::create_symlink("../../../" + root + "/0000:01:00.0/0000:02:01.0/0000:19:00.0",
                                  sysfs / "bus/pci/devices/0000:19:00.0");
  std::filesystem::create_symlink("../../../devices/pci0000:00/0000:00:02.0/0000:1a:00.0",
                                  sysfs / "bus/pci/devices/0000:1a:00.0");
  Script({{"devices", {Gpu(0), Gpu(1), Gpu(2)}}});
  NvmlPlugin plugin = Loaded(FAKE_NVML_LIB, sysfs.string());
  ASSERT_TRUE(plugin.Init().ok());
  absl::StatusOr<std::vector<DeviceInfo>> got = plugin.Enumerate();
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)[0].pcie_switch, 0);
  EXPECT_EQ((*got)[1].pcie_switch, 0);
  EXPECT_EQ((*got)[2].pcie_switch, -1);
}

}  // namespace
}  // namespace icos::devices
