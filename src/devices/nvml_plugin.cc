#include "devices/nvml_plugin.h"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "devices/dl_library.h"
#include "devices/topology.h"

namespace icos::devices {
namespace {

// The NVML ABI as documented in NVIDIA's nvml.h (NVML API Reference). Only
// what this file calls; layouts must match the real library byte for byte.
using nvmlReturn_t = int;  // C enum
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr nvmlReturn_t NVML_SUCCESS = 0;
constexpr nvmlReturn_t NVML_ERROR_GPU_IS_LOST = 15;
constexpr int NVML_TEMPERATURE_GPU = 0;                // nvmlTemperatureSensors_t
constexpr int NVML_FEATURE_ENABLED = 1;                // nvmlEnableState_t
constexpr int NVML_MEMORY_ERROR_TYPE_UNCORRECTED = 1;  // nvmlMemoryErrorType_t
constexpr int NVML_VOLATILE_ECC = 0;                   // nvmlEccCounterType_t: since driver load
constexpr unsigned NVML_NVLINK_MAX_LINKS = 18;
// Buffer sizes: NVML_DEVICE_NAME_V2_BUFFER_SIZE and NVML_DEVICE_UUID_V2_BUFFER_SIZE.
constexpr unsigned kNameBufferSize = 96;
constexpr unsigned kUuidBufferSize = 96;

struct nvmlMemory_t {
  unsigned long long total;  // bytes
  unsigned long long free;
  unsigned long long used;
};
struct nvmlUtilization_t {
  unsigned int gpu;     // per cent of time a kernel was running
  unsigned int memory;  // per cent of time memory was read or written
};
struct nvmlPciInfo_t {
  char busIdLegacy[16];  // NVML_DEVICE_PCI_BUS_ID_BUFFER_V2_SIZE
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pciDeviceId;
  unsigned int pciSubSystemId;
  char busId[32];  // NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE
};
static_assert(sizeof(nvmlPciInfo_t) == 68, "nvmlPciInfo_t must match nvml.h");

}  // namespace

struct NvmlApi {
  // Required: without these the plugin cannot say what it holds.
  nvmlReturn_t (*Init)() = nullptr;
  nvmlReturn_t (*Shutdown)() = nullptr;
  const char* (*ErrorString)(nvmlReturn_t) = nullptr;
  nvmlReturn_t (*GetCount)(unsigned int*) = nullptr;
  nvmlReturn_t (*GetHandleByIndex)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*GetName)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*GetUUID)(nvmlDevice_t, char*, unsigned int) = nullptr;
  nvmlReturn_t (*GetMemoryInfo)(nvmlDevice_t, nvmlMemory_t*) = nullptr;
  // Optional: a missing one leaves its fields unknown.
  nvmlReturn_t (*GetPciInfo)(nvmlDevice_t, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*GetUtilizationRates)(nvmlDevice_t, nvmlUtilization_t*) = nullptr;
  nvmlReturn_t (*GetTemperature)(nvmlDevice_t, int, unsigned int*) = nullptr;
  nvmlReturn_t (*GetPowerUsage)(nvmlDevice_t, unsigned int*) = nullptr;  // milliwatts
  nvmlReturn_t (*GetNumGpuCores)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*GetMinorNumber)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*GetNvLinkState)(nvmlDevice_t, unsigned int, int*) = nullptr;
  nvmlReturn_t (*GetNvLinkRemotePciInfo)(nvmlDevice_t, unsigned int, nvmlPciInfo_t*) = nullptr;
  nvmlReturn_t (*GetTotalEccErrors)(nvmlDevice_t, int, int, unsigned long long*) = nullptr;

  std::string Error(nvmlReturn_t rc) const {
    const char* text = ErrorString != nullptr ? ErrorString(rc) : nullptr;
    return text != nullptr ? absl::StrCat(text, " (", rc, ")") : absl::StrCat("NVML error ", rc);
  }
};

namespace {

// Disjoint sets over PCI bus ids: GPUs and the NVSwitches they link to. Two
// GPUs behind the same switch end up in one set, as they should.
class BusUnion {
 public:
  int Id(const std::string& bus) {
    auto [it, inserted] = ids_.try_emplace(bus, static_cast<int>(parent_.size()));
    if (inserted) parent_.push_back(it->second);
    return it->second;
  }
  int Find(int x) {
    while (parent_[x] != x) x = parent_[x] = parent_[parent_[x]];
    return x;
  }
  void Union(int a, int b) { parent_[Find(a)] = Find(b); }

 private:
  std::map<std::string, int> ids_;
  std::vector<int> parent_;
};

std::string BusIdOf(const nvmlPciInfo_t& pci) {
  std::string_view id(pci.busId, strnlen(pci.busId, sizeof(pci.busId)));
  if (id.empty()) id = std::string_view(pci.busIdLegacy, strnlen(pci.busIdLegacy, sizeof(pci.busIdLegacy)));
  return NormalizePciBusId(id);
}

}  // namespace

std::string NormalizePciBusId(std::string_view bus_id) {
  std::string id = absl::AsciiStrToLower(absl::StripAsciiWhitespace(absl::string_view(bus_id.data(), bus_id.size())));
  // NVML writes the domain with 8 digits; sysfs with 4.
  size_t colon = id.find(':');
  if (colon == 8 && absl::StartsWith(id, "0000")) id.erase(0, 4);
  return id;
}

NvmlPlugin::NvmlPlugin(NvmlPluginOptions options) : options_(std::move(options)) {}

NvmlPlugin::~NvmlPlugin() {
  if (available() && api_ != nullptr) api_->Shutdown();
}

absl::Status NvmlPlugin::Init() {
  if (!OpenOnce(options_.library_path)) return absl::OkStatus();
  auto api = std::make_unique<Api>();
  if (LacksRequired(
          {
              {"nvmlInit_v2", library_.Resolve("nvmlInit_v2", api->Init)},
              {"nvmlShutdown", library_.Resolve("nvmlShutdown", api->Shutdown)},
              {"nvmlErrorString", library_.Resolve("nvmlErrorString", api->ErrorString)},
              {"nvmlDeviceGetCount_v2", library_.Resolve("nvmlDeviceGetCount_v2", api->GetCount)},
              {"nvmlDeviceGetHandleByIndex_v2",
               library_.Resolve("nvmlDeviceGetHandleByIndex_v2", api->GetHandleByIndex)},
              {"nvmlDeviceGetName", library_.Resolve("nvmlDeviceGetName", api->GetName)},
              {"nvmlDeviceGetUUID", library_.Resolve("nvmlDeviceGetUUID", api->GetUUID)},
              {"nvmlDeviceGetMemoryInfo", library_.Resolve("nvmlDeviceGetMemoryInfo", api->GetMemoryInfo)},
          },
          "driver too old?")) {
    return absl::OkStatus();
  }
  library_.Resolve("nvmlDeviceGetPciInfo_v3", api->GetPciInfo);
  library_.Resolve("nvmlDeviceGetUtilizationRates", api->GetUtilizationRates);
  library_.Resolve("nvmlDeviceGetTemperature", api->GetTemperature);
  library_.Resolve("nvmlDeviceGetPowerUsage", api->GetPowerUsage);
  library_.Resolve("nvmlDeviceGetNumGpuCores", api->GetNumGpuCores);
  library_.Resolve("nvmlDeviceGetMinorNumber", api->GetMinorNumber);
  // NVLink islands need both halves; one without the other is useless.
  if (!library_.Resolve("nvmlDeviceGetNvLinkState", api->GetNvLinkState) ||
      !library_.Resolve("nvmlDeviceGetNvLinkRemotePciInfo_v2", api->GetNvLinkRemotePciInfo)) {
    api->GetNvLinkState = nullptr;
    api->GetNvLinkRemotePciInfo = nullptr;
  }
  library_.Resolve("nvmlDeviceGetTotalEccErrors", api->GetTotalEccErrors);

  nvmlReturn_t rc = api->Init();
  if (rc != NVML_SUCCESS) {
    std::string reason = absl::StrCat("nvmlInit_v2 failed: ", api->Error(rc));
    MakeUnavailable(std::move(reason));
    return absl::OkStatus();
  }
  MakeAvailable(std::move(api));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DeviceInfo>> NvmlPlugin::ReadDevices(bool with_topology) {
  std::vector<DeviceInfo> out;
  if (!available()) return out;
  const Api& api = *api_;
  unsigned count = 0;
  if (nvmlReturn_t rc = api.GetCount(&count); rc != NVML_SUCCESS) {
    return absl::UnavailableError(absl::StrCat("nvmlDeviceGetCount_v2: ", api.Error(rc)));
  }
  std::vector<nvmlDevice_t> handles(count, nullptr);
  minor_by_index_.clear();
  for (unsigned i = 0; i < count; ++i) {
    DeviceInfo info;
    info.index = static_cast<int32_t>(i);
    info.vendor = "nvidia";
    auto unhealthy = [&info](std::string why) {
      if (info.healthy) info.health_reason = std::move(why);
      info.healthy = false;
    };
    if (nvmlReturn_t rc = api.GetHandleByIndex(i, &handles[i]); rc != NVML_SUCCESS) {
      // Still report the slot: a lost GPU must show up as unhealthy, not vanish.
      handles[i] = nullptr;
      unhealthy(absl::StrCat("nvmlDeviceGetHandleByIndex_v2: ", api.Error(rc)));
      out.push_back(std::move(info));
      continue;
    }
    nvmlDevice_t dev = handles[i];
    char buf[kNameBufferSize > kUuidBufferSize ? kNameBufferSize : kUuidBufferSize];
    if (api.GetName(dev, buf, kNameBufferSize) == NVML_SUCCESS) {
      info.model = std::string(buf, strnlen(buf, kNameBufferSize));
    }
    if (api.GetUUID(dev, buf, kUuidBufferSize) == NVML_SUCCESS) {
      info.uuid = std::string(buf, strnlen(buf, kUuidBufferSize));
    }
    nvmlMemory_t mem{};
    if (nvmlReturn_t rc = api.GetMemoryInfo(dev, &mem); rc == NVML_SUCCESS) {
      info.memory_total_mib = static_cast<int64_t>(mem.total >> 20);
      info.memory_used_mib = static_cast<int64_t>(mem.used >> 20);
    } else {
      unhealthy(absl::StrCat("nvmlDeviceGetMemoryInfo: ", api.Error(rc)));
    }
    if (api.GetTotalEccErrors != nullptr) {
      unsigned long long errors = 0;
      // Volatile uncorrected errors: memory the driver could not repair since
      // it loaded. Jobs on such a GPU die or compute garbage until a reset.
      if (api.GetTotalEccErrors(dev, NVML_MEMORY_ERROR_TYPE_UNCORRECTED, NVML_VOLATILE_ECC, &errors) == NVML_SUCCESS &&
          errors > 0) {
        unhealthy(absl::StrCat(errors, " uncorrected ECC error(s) since the driver loaded"));
      }
    }
    if (api.GetPciInfo != nullptr) {
      nvmlPciInfo_t pci{};
      if (nvmlReturn_t rc = api.GetPciInfo(dev, &pci); rc == NVML_SUCCESS) {
        info.pci_bus_id = BusIdOf(pci);
      } else if (rc == NVML_ERROR_GPU_IS_LOST) {
        unhealthy(absl::StrCat("nvmlDeviceGetPciInfo_v3: ", api.Error(rc)));
      }
    }
    unsigned value = 0;
    // Read on the health path too: an overheating GPU is taken out of service.
    if (api.GetTemperature != nullptr && api.GetTemperature(dev, NVML_TEMPERATURE_GPU, &value) == NVML_SUCCESS) {
      info.temperature_c = static_cast<int32_t>(value);
    }
    if (api.GetMinorNumber != nullptr && api.GetMinorNumber(dev, &value) == NVML_SUCCESS) {
      minor_by_index_[info.index] = value;
    }
    if (with_topology) {
      nvmlUtilization_t util{};
      if (api.GetUtilizationRates != nullptr && api.GetUtilizationRates(dev, &util) == NVML_SUCCESS) {
        info.utilization_pct = static_cast<int32_t>(util.gpu);
      }
      if (api.GetPowerUsage != nullptr && api.GetPowerUsage(dev, &value) == NVML_SUCCESS) {
        info.power_w = value / 1000.0;
      }
      if (api.GetNumGpuCores != nullptr && api.GetNumGpuCores(dev, &value) == NVML_SUCCESS) {
        info.compute_units = static_cast<int32_t>(value);
      }
      if (!info.pci_bus_id.empty()) info.numa_node = SysfsPciLocality(options_.sysfs_root, info.pci_bus_id).numa_node;
    }
    out.push_back(std::move(info));
  }
  if (!with_topology) return out;

  // PCIe switches: number the distinct upstream ports in device order.
  std::map<std::string, int> switch_ids;
  for (DeviceInfo& info : out) {
    if (info.pci_bus_id.empty()) continue;
    std::string key = SysfsPciLocality(options_.sysfs_root, info.pci_bus_id).switch_key;
    if (key.empty()) continue;
    auto [it, inserted] = switch_ids.try_emplace(key, static_cast<int>(switch_ids.size()));
    info.pcie_switch = it->second;
  }

  // NVLink islands: connected components over active links. The remote end
  // may be another GPU or an NVSwitch; both are nodes of the graph.
  if (api.GetNvLinkState == nullptr) return out;
  BusUnion sets;
  for (size_t i = 0; i < out.size(); ++i) {
    DeviceInfo& info = out[i];
    // A GPU without a bus id (lost, or no PCI query) still gets its own island.
    std::string self = info.pci_bus_id.empty() ? absl::StrCat("#gpu", i) : info.pci_bus_id;
    int self_id = sets.Id(self);
    if (handles[i] == nullptr) continue;
    for (unsigned link = 0; link < NVML_NVLINK_MAX_LINKS; ++link) {
      int active = 0;
      if (api.GetNvLinkState(handles[i], link, &active) != NVML_SUCCESS) continue;
      if (active != NVML_FEATURE_ENABLED) continue;
      nvmlPciInfo_t remote{};
      if (api.GetNvLinkRemotePciInfo(handles[i], link, &remote) != NVML_SUCCESS) continue;
      std::string peer = BusIdOf(remote);
      if (!peer.empty()) sets.Union(self_id, sets.Id(peer));
    }
  }
  std::map<int, int> island_of_root;
  for (size_t i = 0; i < out.size(); ++i) {
    DeviceInfo& info = out[i];
    std::string self = info.pci_bus_id.empty() ? absl::StrCat("#gpu", i) : info.pci_bus_id;
    int root = sets.Find(sets.Id(self));
    auto [it, inserted] = island_of_root.try_emplace(root, static_cast<int>(island_of_root.size()));
    info.island = it->second;
  }
  return out;
}

absl::StatusOr<std::vector<DeviceInfo>> NvmlPlugin::Enumerate() { return ReadDevices(true); }

absl::StatusOr<std::vector<DeviceHealth>> NvmlPlugin::CheckHealth() {
  absl::StatusOr<std::vector<DeviceInfo>> devices = ReadDevices(false);
  if (!devices.ok()) return devices.status();
  return HealthOf(*std::move(devices));
}

std::vector<std::string> NvmlPlugin::DeviceNodes(const std::vector<int>& indices) const {
  if (indices.empty()) return {};  // a task without GPUs needs no NVIDIA nodes
  // The control nodes every CUDA process opens, whichever GPUs it uses.
  std::vector<std::string> out = {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"};
  for (int index : indices) {
    auto it = minor_by_index_.find(index);
    unsigned minor = it != minor_by_index_.end() ? it->second : static_cast<unsigned>(index);
    out.push_back(absl::StrCat("/dev/nvidia", minor));
  }
  return out;
}

}  // namespace icos::devices
