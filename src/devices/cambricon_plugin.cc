#include "devices/cambricon_plugin.h"

#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace icos::devices {
namespace {

// The CNDev ABI as documented in Cambricon's cndev.h. Every query struct
// starts with `int version` (the caller's API version), and the library may
// write a longer struct for a newer version than the one this file knows. So
// each query goes through a zeroed buffer far larger than any known layout,
// of which only the documented leading fields are read.
using cndevRet_t = int;  // C enum
constexpr cndevRet_t CNDEV_SUCCESS = 0;
constexpr int CNDEV_VERSION_5 = 5;

struct cndevCardInfo_t {
  int version;
  unsigned number;
};
struct cndevMemoryInfo_t {  // leading fields
  int version;
  int64_t physicalMemoryTotal;  // MiB
  int64_t physicalMemoryUsed;   // MiB
};
struct cndevUtilizationInfo_t {  // leading fields
  int version;
  int averageCoreUtilization;  // per cent, the whole card
};
struct cndevTemperatureInfo_t {  // leading fields
  int version;
  int board;  // deg C
};
struct cndevPowerInfo_t {  // leading fields
  int version;
  int usage;  // W
};
struct cndevCardHealthState_t {  // leading fields
  int version;
  int health;  // 1 healthy, 0 sick
};
struct cndevPCIeInfo_t {  // leading fields
  int version;
  unsigned int subsystemId;
  unsigned int deviceId;
  uint16_t vendor;
  uint16_t subsystemVendor;
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int function;
};

// A query struct with room for whatever a newer library writes after it.
template <typename T>
struct Padded {
  union {
    T value;
    unsigned char room[8192];
  };
  Padded() {
    std::memset(room, 0, sizeof(room));
    value.version = CNDEV_VERSION_5;
  }
};

}  // namespace

struct CndevApi {
  // Required.
  cndevRet_t (*Init)(int) = nullptr;
  cndevRet_t (*GetDeviceCount)(cndevCardInfo_t*) = nullptr;
  cndevRet_t (*GetCardHealthState)(cndevCardHealthState_t*, int) = nullptr;
  // Optional. The int argument is the device handle (cndevDevice_t, an int;
  // older releases call it devId).
  cndevRet_t (*Release)() = nullptr;
  const char* (*GetErrorString)(cndevRet_t) = nullptr;
  cndevRet_t (*GetDeviceHandleByIndex)(int, int*) = nullptr;  // cndevDevice_t is an int handle
  const char* (*GetCardNameStringByDevId)(int) = nullptr;
  cndevRet_t (*GetMemoryUsage)(cndevMemoryInfo_t*, int) = nullptr;
  cndevRet_t (*GetDeviceUtilizationInfo)(cndevUtilizationInfo_t*, int) = nullptr;
  cndevRet_t (*GetTemperatureInfo)(cndevTemperatureInfo_t*, int) = nullptr;
  cndevRet_t (*GetPowerInfo)(cndevPowerInfo_t*, int) = nullptr;
  cndevRet_t (*GetPCIeInfo)(cndevPCIeInfo_t*, int) = nullptr;

  std::string Error(cndevRet_t rc) const {
    const char* text = GetErrorString != nullptr ? GetErrorString(rc) : nullptr;
    return text != nullptr ? absl::StrCat(text, " (", rc, ")") : absl::StrCat("CNDev error ", rc);
  }
};

CambriconPlugin::CambriconPlugin(CambriconPluginOptions options) : options_(std::move(options)) {}

CambriconPlugin::~CambriconPlugin() {
  if (available() && api_ != nullptr && api_->Release != nullptr) api_->Release();
}

absl::Status CambriconPlugin::Init() {
  if (!OpenOnce(options_.library_path)) return absl::OkStatus();
  auto api = std::make_unique<Api>();
  if (LacksRequired(
          {
              {"cndevInit", library_.Resolve("cndevInit", api->Init)},
              {"cndevGetDeviceCount", library_.Resolve("cndevGetDeviceCount", api->GetDeviceCount)},
              {"cndevGetCardHealthState", library_.Resolve("cndevGetCardHealthState", api->GetCardHealthState)},
          },
          "driver too old?")) {
    return absl::OkStatus();
  }
  library_.Resolve("cndevRelease", api->Release);
  library_.Resolve("cndevGetErrorString", api->GetErrorString);
  library_.Resolve("cndevGetDeviceHandleByIndex", api->GetDeviceHandleByIndex);
  library_.Resolve("cndevGetCardNameStringByDevId", api->GetCardNameStringByDevId);
  library_.Resolve("cndevGetMemoryUsage", api->GetMemoryUsage);
  library_.Resolve("cndevGetDeviceUtilizationInfo", api->GetDeviceUtilizationInfo);
  library_.Resolve("cndevGetTemperatureInfo", api->GetTemperatureInfo);
  library_.Resolve("cndevGetPowerInfo", api->GetPowerInfo);
  library_.Resolve("cndevGetPCIeInfo", api->GetPCIeInfo);

  // The argument is reserved and must be 0.
  if (cndevRet_t rc = api->Init(0); rc != CNDEV_SUCCESS) {
    std::string reason = absl::StrCat("cndevInit failed: ", api->Error(rc));
    MakeUnavailable(std::move(reason));
    return absl::OkStatus();
  }
  MakeAvailable(std::move(api));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DeviceInfo>> CambriconPlugin::ReadDevices(bool with_topology) {
  std::vector<DeviceInfo> out;
  if (!available()) return out;
  const Api& api = *api_;
  cndevCardInfo_t cards{};
  cards.version = CNDEV_VERSION_5;
  if (cndevRet_t rc = api.GetDeviceCount(&cards); rc != CNDEV_SUCCESS) {
    return absl::UnavailableError(absl::StrCat("cndevGetDeviceCount: ", api.Error(rc)));
  }
  for (unsigned i = 0; i < std::min(cards.number, 1024u); ++i) {
    DeviceInfo info;
    info.index = static_cast<int32_t>(i);
    info.vendor = "cambricon";
    int handle = static_cast<int>(i);
    if (api.GetDeviceHandleByIndex != nullptr) {
      if (cndevRet_t rc = api.GetDeviceHandleByIndex(static_cast<int>(i), &handle); rc != CNDEV_SUCCESS) {
        info.healthy = false;
        info.health_reason = absl::StrCat("cndevGetDeviceHandleByIndex: ", api.Error(rc));
        out.push_back(std::move(info));
        continue;
      }
    }
    Padded<cndevCardHealthState_t> health;
    if (cndevRet_t rc = api.GetCardHealthState(&health.value, handle); rc != CNDEV_SUCCESS) {
      info.healthy = false;
      info.health_reason = absl::StrCat("cndevGetCardHealthState: ", api.Error(rc));
    } else if (health.value.health != 1) {
      info.healthy = false;
      info.health_reason = "CNDev reports the card sick (health state 0)";
    }
    Padded<cndevPCIeInfo_t> pci;
    if (api.GetPCIeInfo != nullptr && api.GetPCIeInfo(&pci.value, handle) == CNDEV_SUCCESS) {
      info.pci_bus_id = FormatPciBusId(pci.value.domain, pci.value.bus, pci.value.device, pci.value.function);
    }
    info.uuid = absl::StrCat("MLU-", info.pci_bus_id.empty() ? absl::StrCat(i) : info.pci_bus_id);
    if (api.GetCardNameStringByDevId != nullptr) {
      const char* name = api.GetCardNameStringByDevId(handle);
      if (name != nullptr) info.model = std::string(name, strnlen(name, 256));
    }
    Padded<cndevMemoryInfo_t> mem;
    if (api.GetMemoryUsage != nullptr && api.GetMemoryUsage(&mem.value, handle) == CNDEV_SUCCESS) {
      info.memory_total_mib = mem.value.physicalMemoryTotal;
      info.memory_used_mib = mem.value.physicalMemoryUsed;
    }
    // Read on the health path too: an overheating card is taken out of service.
    Padded<cndevTemperatureInfo_t> temp;
    if (api.GetTemperatureInfo != nullptr && api.GetTemperatureInfo(&temp.value, handle) == CNDEV_SUCCESS) {
      info.temperature_c = temp.value.board;
    }
    if (with_topology) {
      Padded<cndevUtilizationInfo_t> util;
      if (api.GetDeviceUtilizationInfo != nullptr &&
          api.GetDeviceUtilizationInfo(&util.value, handle) == CNDEV_SUCCESS) {
        info.utilization_pct = util.value.averageCoreUtilization;
      }
      Padded<cndevPowerInfo_t> power;
      if (api.GetPowerInfo != nullptr && api.GetPowerInfo(&power.value, handle) == CNDEV_SUCCESS) {
        info.power_w = power.value.usage;
      }
    }
    out.push_back(std::move(info));
  }
  return out;
}

absl::StatusOr<std::vector<DeviceInfo>> CambriconPlugin::Enumerate() { return ReadDevices(true); }

absl::StatusOr<std::vector<DeviceHealth>> CambriconPlugin::CheckHealth() {
  absl::StatusOr<std::vector<DeviceInfo>> devices = ReadDevices(false);
  if (!devices.ok()) return devices.status();
  return HealthOf(*std::move(devices));
}

std::vector<std::string> CambriconPlugin::DeviceNodes(const std::vector<int>& indices) const {
  if (indices.empty()) return {};
  std::vector<std::string> out = {"/dev/cambricon_ctl"};
  for (int index : indices) out.push_back(absl::StrCat("/dev/cambricon_dev", index));
  return out;
}

}  // namespace icos::devices
