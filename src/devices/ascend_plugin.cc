#include "devices/ascend_plugin.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace icos::devices {
namespace {

// The DCMI ABI as documented in Huawei's DCMI API reference
// (dcmi_interface_api.h). Only what this file calls; layouts must match.
constexpr int kDcmiOk = 0;
constexpr int kMaxChipNameLen = 32;
constexpr int kMaxCards = 64;                     // "最大支持64个" per dcmi_get_card_list
constexpr int kUtilizationAiCore = 2;             // DCMI_UTILIZATION_RATE_AICORE
constexpr int kTopoHccs = 3;                      // DCMI_TOPO_TYPE_HCCS
constexpr int kTopoHccsSwitch = 7;                // DCMI_TOPO_TYPE_HCCS_SW
constexpr unsigned kHealthMajorAlarm = 2;         // 0 normal, 1 minor, 2 major, 3 critical
constexpr unsigned kHealthNoDevice = 0xFFFFFFFF;  // "该设备不存在"

struct dcmi_chip_info {
  unsigned char chip_type[kMaxChipNameLen];
  unsigned char chip_name[kMaxChipNameLen];
  unsigned char chip_ver[kMaxChipNameLen];
  unsigned int aicore_cnt;
};
struct dcmi_hbm_info {
  unsigned long long memory_size;  // MB
  unsigned int freq;
  unsigned long long memory_usage;  // MB
  int temp;
  unsigned int bandwith_util_rate;
};
struct dcmi_get_memory_info_stru {
  unsigned long long memory_size;       // MB
  unsigned long long memory_available;  // MB
  unsigned int freq;
  unsigned long hugepagesize;
  unsigned long hugepages_total;
  unsigned long hugepages_free;
  unsigned int utiliza;
  unsigned char reserve[60];
};
struct dcmi_pcie_info_all {
  unsigned int venderid;
  unsigned int subvenderid;
  unsigned int deviceid;
  unsigned int subdeviceid;
  int domain;
  unsigned int bdf_busid;
  unsigned int bdf_deviceid;
  unsigned int bdf_funcid;
  unsigned char reserve[32];
};
static_assert(sizeof(dcmi_pcie_info_all) == 64, "dcmi_pcie_info_all is 64 bytes per dcmi_interface_api.h");
static_assert(sizeof(dcmi_chip_info) == 100, "dcmi_chip_info must match dcmi_interface_api.h");

std::string CString(const unsigned char* text, size_t size) {
  const char* s = reinterpret_cast<const char*>(text);
  return std::string(s, strnlen(s, size));
}

}  // namespace

struct DcmiApi {
  // Required.
  int (*Init)() = nullptr;
  int (*GetCardList)(int*, int*, int) = nullptr;  // dcmi_get_card_list or the older dcmi_get_card_num_list
  int (*GetDeviceNumInCard)(int, int*) = nullptr;
  int (*GetDeviceHealth)(int, int, unsigned*) = nullptr;
  // Optional: a missing one leaves its fields unknown.
  int (*GetChipInfo)(int, int, dcmi_chip_info*) = nullptr;
  int (*GetHbmInfo)(int, int, dcmi_hbm_info*) = nullptr;
  int (*GetMemoryInfoV3)(int, int, dcmi_get_memory_info_stru*) = nullptr;
  int (*GetUtilizationRate)(int, int, int, unsigned*) = nullptr;
  int (*GetTemperature)(int, int, int*) = nullptr;
  int (*GetPowerInfo)(int, int, int*) = nullptr;  // 0.1 W
  int (*GetLogicId)(int*, int, int) = nullptr;
  int (*GetPhyIdFromLogicId)(unsigned, unsigned*) = nullptr;
  int (*GetPcieInfoV2)(int, int, dcmi_pcie_info_all*) = nullptr;
  int (*GetTopoInfo)(int, int, int, int, int*) = nullptr;
};

AscendPlugin::AscendPlugin(AscendPluginOptions options) : options_(std::move(options)) {}

AscendPlugin::~AscendPlugin() = default;  // DCMI has no shutdown call; dlclose is enough

absl::Status AscendPlugin::Init() {
  if (!OpenOnce(options_.library_path)) return absl::OkStatus();
  auto api = std::make_unique<Api>();
  if (!library_.Resolve("dcmi_get_card_list", api->GetCardList)) {
    library_.Resolve("dcmi_get_card_num_list", api->GetCardList);
  }
  if (LacksRequired(
          {
              {"dcmi_init", library_.Resolve("dcmi_init", api->Init)},
              {"dcmi_get_card_list (or dcmi_get_card_num_list)", api->GetCardList != nullptr},
              {"dcmi_get_device_num_in_card", library_.Resolve("dcmi_get_device_num_in_card", api->GetDeviceNumInCard)},
              {"dcmi_get_device_health", library_.Resolve("dcmi_get_device_health", api->GetDeviceHealth)},
          },
          "driver too old?")) {
    return absl::OkStatus();
  }
  library_.Resolve("dcmi_get_device_chip_info", api->GetChipInfo);
  library_.Resolve("dcmi_get_device_hbm_info", api->GetHbmInfo);
  library_.Resolve("dcmi_get_device_memory_info_v3", api->GetMemoryInfoV3);
  library_.Resolve("dcmi_get_device_utilization_rate", api->GetUtilizationRate);
  library_.Resolve("dcmi_get_device_temperature", api->GetTemperature);
  library_.Resolve("dcmi_get_device_power_info", api->GetPowerInfo);
  library_.Resolve("dcmi_get_device_logic_id", api->GetLogicId);
  library_.Resolve("dcmi_get_device_phyid_from_logicid", api->GetPhyIdFromLogicId);
  library_.Resolve("dcmi_get_device_pcie_info_v2", api->GetPcieInfoV2);
  library_.Resolve("dcmi_get_topo_info_by_device_id", api->GetTopoInfo);

  if (int rc = api->Init(); rc != kDcmiOk) {
    MakeUnavailable(absl::StrCat("dcmi_init failed: DCMI error ", rc));
    return absl::OkStatus();
  }
  MakeAvailable(std::move(api));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DeviceInfo>> AscendPlugin::ReadDevices(bool with_topology) {
  std::vector<DeviceInfo> out;
  if (!available()) return out;
  const Api& api = *api_;
  int card_count = 0;
  int cards[kMaxCards] = {};
  if (int rc = api.GetCardList(&card_count, cards, kMaxCards); rc != kDcmiOk) {
    return absl::UnavailableError(absl::StrCat("dcmi_get_card_list: DCMI error ", rc));
  }
  card_count = std::clamp(card_count, 0, kMaxCards);
  struct Chip {
    int card, device;
  };
  std::vector<Chip> chips;
  for (int c = 0; c < card_count; ++c) {
    int n = 0;
    if (int rc = api.GetDeviceNumInCard(cards[c], &n); rc != kDcmiOk) {
      return absl::UnavailableError(absl::StrCat("dcmi_get_device_num_in_card(", cards[c], "): DCMI error ", rc));
    }
    for (int d = 0; d < std::clamp(n, 0, 64); ++d) chips.push_back({cards[c], d});
  }

  phy_by_index_.clear();
  for (size_t i = 0; i < chips.size(); ++i) {
    const auto [card, dev] = chips[i];
    DeviceInfo info;
    info.vendor = "ascend";
    info.index = static_cast<int32_t>(i);
    int logic = -1;
    if (api.GetLogicId != nullptr && api.GetLogicId(&logic, card, dev) == kDcmiOk && logic >= 0) info.index = logic;
    unsigned phy = static_cast<unsigned>(info.index);
    if (api.GetPhyIdFromLogicId != nullptr) (void)api.GetPhyIdFromLogicId(static_cast<unsigned>(info.index), &phy);
    phy_by_index_[info.index] = phy;
    // DCMI has no UUID; card/device is stable for a board in a slot.
    info.uuid = absl::StrCat("ascend-card", card, "-chip", dev);

    unsigned health = 0;
    if (int rc = api.GetDeviceHealth(card, dev, &health); rc != kDcmiOk) {
      info.healthy = false;
      info.health_reason = absl::StrCat("dcmi_get_device_health: DCMI error ", rc);
    } else if (health == kHealthNoDevice) {
      info.healthy = false;
      info.health_reason = "DCMI reports the chip does not exist";
    } else if (health >= kHealthMajorAlarm) {
      // A minor alarm (1) keeps the chip usable; major (2) and critical (3) do not.
      info.healthy = false;
      info.health_reason =
          absl::StrCat(health == kHealthMajorAlarm ? "major" : "critical", " alarm (DCMI health ", health, ")");
    }

    dcmi_chip_info chip{};
    if (api.GetChipInfo != nullptr && api.GetChipInfo(card, dev, &chip) == kDcmiOk) {
      info.model = CString(chip.chip_name, sizeof(chip.chip_name));
      info.compute_units = static_cast<int32_t>(chip.aicore_cnt);
    }
    dcmi_hbm_info hbm{};
    if (api.GetHbmInfo != nullptr && api.GetHbmInfo(card, dev, &hbm) == kDcmiOk && hbm.memory_size > 0) {
      info.memory_total_mib = static_cast<int64_t>(hbm.memory_size);
      info.memory_used_mib = static_cast<int64_t>(hbm.memory_usage);
    } else {
      // Chips without HBM (Ascend 310P) report their DDR here instead.
      dcmi_get_memory_info_stru mem{};
      if (api.GetMemoryInfoV3 != nullptr && api.GetMemoryInfoV3(card, dev, &mem) == kDcmiOk) {
        info.memory_total_mib = static_cast<int64_t>(mem.memory_size);
        info.memory_used_mib = static_cast<int64_t>(mem.memory_size - std::min(mem.memory_available, mem.memory_size));
      }
    }
    dcmi_pcie_info_all pcie{};
    if (api.GetPcieInfoV2 != nullptr && api.GetPcieInfoV2(card, dev, &pcie) == kDcmiOk) {
      info.pci_bus_id =
          FormatPciBusId(static_cast<unsigned>(pcie.domain), pcie.bdf_busid, pcie.bdf_deviceid, pcie.bdf_funcid);
    }
    // Read on the health path too: an overheating chip is taken out of service.
    if (int t = 0; api.GetTemperature != nullptr && api.GetTemperature(card, dev, &t) == kDcmiOk)
      info.temperature_c = t;
    if (with_topology) {
      unsigned util = 0;
      if (api.GetUtilizationRate != nullptr &&
          api.GetUtilizationRate(card, dev, kUtilizationAiCore, &util) == kDcmiOk) {
        info.utilization_pct = static_cast<int32_t>(util);
      }
      int value = 0;
      if (api.GetPowerInfo != nullptr && api.GetPowerInfo(card, dev, &value) == kDcmiOk) info.power_w = value / 10.0;
    }
    out.push_back(std::move(info));
  }

  // HCCS islands: chips joined by a direct or switched HCCS link. DCMI
  // answers this only on 910B / 910_93 boards; elsewhere islands stay unknown.
  if (with_topology && api.GetTopoInfo != nullptr) {
    std::vector<std::pair<int, int>> links;
    bool answered = out.size() < 2;  // one device: its own island
    for (size_t i = 0; i < chips.size(); ++i) {
      for (size_t j = i + 1; j < chips.size(); ++j) {
        int type = -1;
        if (api.GetTopoInfo(chips[i].card, chips[i].device, chips[j].card, chips[j].device, &type) != kDcmiOk) {
          continue;
        }
        answered = true;
        if (type == kTopoHccs || type == kTopoHccsSwitch) links.emplace_back(static_cast<int>(i), static_cast<int>(j));
      }
    }
    if (answered) {
      std::vector<int32_t> islands = IslandsFromLinks(static_cast<int>(out.size()), links);
      for (size_t i = 0; i < out.size(); ++i) out[i].island = islands[i];
    }
  }
  std::stable_sort(out.begin(), out.end(), [](const DeviceInfo& a, const DeviceInfo& b) { return a.index < b.index; });
  return out;
}

absl::StatusOr<std::vector<DeviceInfo>> AscendPlugin::Enumerate() { return ReadDevices(true); }

absl::StatusOr<std::vector<DeviceHealth>> AscendPlugin::CheckHealth() {
  absl::StatusOr<std::vector<DeviceInfo>> devices = ReadDevices(false);
  if (!devices.ok()) return devices.status();
  return HealthOf(*std::move(devices));
}

std::vector<std::string> AscendPlugin::DeviceNodes(const std::vector<int>& indices) const {
  if (indices.empty()) return {};
  // The management and shared-memory nodes every Ascend process opens.
  std::vector<std::string> out = {"/dev/davinci_manager", "/dev/devmm_svm", "/dev/hisi_hdc"};
  for (int index : indices) {
    auto it = phy_by_index_.find(index);
    out.push_back(absl::StrCat("/dev/davinci", it != phy_by_index_.end() ? it->second : static_cast<unsigned>(index)));
  }
  return out;
}

}  // namespace icos::devices
