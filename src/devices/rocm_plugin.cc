#include "devices/rocm_plugin.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace icos::devices {
namespace {

// The ROCm SMI ABI as documented in AMD's rocm_smi.h. Only what this file
// calls; enums are passed as the ints they are.
using rsmi_status_t = int;
constexpr rsmi_status_t RSMI_STATUS_SUCCESS = 0;
constexpr rsmi_status_t RSMI_STATUS_NOT_SUPPORTED = 2;
constexpr int RSMI_MEM_TYPE_VRAM = 0;
constexpr uint32_t RSMI_TEMP_TYPE_EDGE = 0;  // sensor index
constexpr int RSMI_TEMP_CURRENT = 0;         // rsmi_temperature_metric_t
constexpr int RSMI_IOLINK_TYPE_XGMI = 2;     // RSMI_IO_LINK_TYPE
// rsmi_gpu_block_t: the memory controller. The enum holds 64-bit values
// (RSMI_GPU_BLOCK_RESERVED = 1 << 63), so it is passed as a 64-bit integer.
constexpr uint64_t RSMI_GPU_BLOCK_UMC = 1;
constexpr uint16_t kHygonVendorId = 0x1d94;

// rsmi_error_count_t begins with these two counters; newer releases append
// more, so it is read through a larger zeroed buffer.
struct rsmi_error_count_t {
  uint64_t correctable_err;
  uint64_t uncorrectable_err;
};
struct PaddedErrorCount {
  rsmi_error_count_t value;
  uint64_t room[32];
};

}  // namespace

struct RocmSmiApi {
  // Required.
  rsmi_status_t (*Init)(uint64_t) = nullptr;
  rsmi_status_t (*NumMonitorDevices)(uint32_t*) = nullptr;
  rsmi_status_t (*MemoryTotalGet)(uint32_t, int, uint64_t*) = nullptr;  // bytes
  // Optional.
  rsmi_status_t (*ShutDown)() = nullptr;
  rsmi_status_t (*StatusString)(rsmi_status_t, const char**) = nullptr;
  rsmi_status_t (*NameGet)(uint32_t, char*, size_t) = nullptr;
  rsmi_status_t (*VendorIdGet)(uint32_t, uint16_t*) = nullptr;
  rsmi_status_t (*UniqueIdGet)(uint32_t, uint64_t*) = nullptr;
  rsmi_status_t (*MemoryUsageGet)(uint32_t, int, uint64_t*) = nullptr;  // bytes
  rsmi_status_t (*BusyPercentGet)(uint32_t, uint32_t*) = nullptr;
  rsmi_status_t (*TempMetricGet)(uint32_t, uint32_t, int, int64_t*) = nullptr;  // millidegrees C
  rsmi_status_t (*PowerAveGet)(uint32_t, uint32_t, uint64_t*) = nullptr;        // microwatts
  rsmi_status_t (*PciIdGet)(uint32_t, uint64_t*) = nullptr;
  rsmi_status_t (*NumaNodeGet)(uint32_t, uint32_t*) = nullptr;
  rsmi_status_t (*LinkTypeGet)(uint32_t, uint32_t, uint64_t*, int*) = nullptr;
  rsmi_status_t (*EccCountGet)(uint32_t, uint64_t, rsmi_error_count_t*) = nullptr;
  rsmi_status_t (*RenderMinorGet)(uint32_t, uint32_t*) = nullptr;

  std::string Error(rsmi_status_t rc) const {
    const char* text = nullptr;
    if (StatusString != nullptr && StatusString(rc, &text) == RSMI_STATUS_SUCCESS && text != nullptr) {
      return absl::StrCat(text, " (", rc, ")");
    }
    return absl::StrCat("ROCm SMI error ", rc);
  }
};

RocmPlugin::RocmPlugin(RocmPluginOptions options) : options_(std::move(options)) {}

RocmPlugin::~RocmPlugin() {
  if (available() && api_ != nullptr && api_->ShutDown != nullptr) api_->ShutDown();
}

absl::Status RocmPlugin::Init() {
  if (!OpenOnce(options_.library_path)) return absl::OkStatus();
  auto api = std::make_unique<Api>();
  if (LacksRequired(
          {
              {"rsmi_init", library_.Resolve("rsmi_init", api->Init)},
              {"rsmi_num_monitor_devices", library_.Resolve("rsmi_num_monitor_devices", api->NumMonitorDevices)},
              {"rsmi_dev_memory_total_get", library_.Resolve("rsmi_dev_memory_total_get", api->MemoryTotalGet)},
          },
          "ROCm too old?")) {
    return absl::OkStatus();
  }
  library_.Resolve("rsmi_shut_down", api->ShutDown);
  library_.Resolve("rsmi_status_string", api->StatusString);
  library_.Resolve("rsmi_dev_name_get", api->NameGet);
  library_.Resolve("rsmi_dev_vendor_id_get", api->VendorIdGet);
  library_.Resolve("rsmi_dev_unique_id_get", api->UniqueIdGet);
  library_.Resolve("rsmi_dev_memory_usage_get", api->MemoryUsageGet);
  library_.Resolve("rsmi_dev_busy_percent_get", api->BusyPercentGet);
  library_.Resolve("rsmi_dev_temp_metric_get", api->TempMetricGet);
  library_.Resolve("rsmi_dev_power_ave_get", api->PowerAveGet);
  library_.Resolve("rsmi_dev_pci_id_get", api->PciIdGet);
  library_.Resolve("rsmi_topo_get_numa_node_number", api->NumaNodeGet);
  library_.Resolve("rsmi_topo_get_link_type", api->LinkTypeGet);
  library_.Resolve("rsmi_dev_ecc_count_get", api->EccCountGet);
  library_.Resolve("rsmi_dev_drm_render_minor_get", api->RenderMinorGet);

  if (rsmi_status_t rc = api->Init(0); rc != RSMI_STATUS_SUCCESS) {
    std::string reason = absl::StrCat("rsmi_init failed: ", api->Error(rc));
    MakeUnavailable(std::move(reason));
    return absl::OkStatus();
  }
  MakeAvailable(std::move(api));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DeviceInfo>> RocmPlugin::ReadDevices(bool with_topology) {
  std::vector<DeviceInfo> out;
  if (!available()) return out;
  const Api& api = *api_;
  uint32_t count = 0;
  if (rsmi_status_t rc = api.NumMonitorDevices(&count); rc != RSMI_STATUS_SUCCESS) {
    return absl::UnavailableError(absl::StrCat("rsmi_num_monitor_devices: ", api.Error(rc)));
  }
  count = std::min<uint32_t>(count, 1024);
  render_minor_by_index_.clear();
  for (uint32_t i = 0; i < count; ++i) {
    DeviceInfo info;
    info.index = static_cast<int32_t>(i);
    auto unhealthy = [&info](std::string why) {
      if (info.healthy) info.health_reason = std::move(why);
      info.healthy = false;
    };
    char name[256] = {};
    if (api.NameGet != nullptr && api.NameGet(i, name, sizeof(name)) == RSMI_STATUS_SUCCESS) {
      info.model = std::string(name, strnlen(name, sizeof(name)));
    }
    uint16_t vendor_id = 0;
    if (api.VendorIdGet != nullptr) (void)api.VendorIdGet(i, &vendor_id);
    const std::string lower = absl::AsciiStrToLower(info.model);
    info.vendor = vendor_id == kHygonVendorId || absl::StrContains(lower, "dcu") || absl::StrContains(lower, "hygon")
                      ? "hygon"
                      : "amd";
    uint64_t value = 0;
    if (rsmi_status_t rc = api.MemoryTotalGet(i, RSMI_MEM_TYPE_VRAM, &value); rc == RSMI_STATUS_SUCCESS) {
      info.memory_total_mib = static_cast<int64_t>(value >> 20);
    } else {
      // A GPU that cannot say how much memory it has has fallen off the bus.
      unhealthy(absl::StrCat("rsmi_dev_memory_total_get: ", api.Error(rc)));
    }
    if (api.MemoryUsageGet != nullptr && api.MemoryUsageGet(i, RSMI_MEM_TYPE_VRAM, &value) == RSMI_STATUS_SUCCESS) {
      info.memory_used_mib = static_cast<int64_t>(value >> 20);
    }
    if (api.EccCountGet != nullptr) {
      PaddedErrorCount errors{};
      // Uncorrectable memory (UMC) errors: data on the card is corrupt.
      if (api.EccCountGet(i, RSMI_GPU_BLOCK_UMC, &errors.value) == RSMI_STATUS_SUCCESS &&
          errors.value.uncorrectable_err > 0) {
        unhealthy(absl::StrCat(errors.value.uncorrectable_err, " uncorrectable ECC error(s) in HBM"));
      }
    }
    if (api.UniqueIdGet != nullptr && api.UniqueIdGet(i, &value) == RSMI_STATUS_SUCCESS) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(value));
      info.uuid = buf;
    }
    if (api.PciIdGet != nullptr && api.PciIdGet(i, &value) == RSMI_STATUS_SUCCESS) {
      // BDFID: domain << 32 | bus << 8 | device << 3 | function (bits 28-31: partition).
      info.pci_bus_id = FormatPciBusId(static_cast<unsigned>(value >> 32), static_cast<unsigned>((value >> 8) & 0xff),
                                       static_cast<unsigned>((value >> 3) & 0x1f), static_cast<unsigned>(value & 0x7));
    }
    if (info.uuid.empty()) info.uuid = info.pci_bus_id.empty() ? absl::StrCat("rocm-", i) : info.pci_bus_id;
    uint32_t small = 0;
    if (api.RenderMinorGet != nullptr && api.RenderMinorGet(i, &small) == RSMI_STATUS_SUCCESS) {
      render_minor_by_index_[info.index] = small;
    }
    // Read on the health path too: an overheating GPU is taken out of service.
    int64_t milli_c = 0;
    if (api.TempMetricGet != nullptr &&
        api.TempMetricGet(i, RSMI_TEMP_TYPE_EDGE, RSMI_TEMP_CURRENT, &milli_c) == RSMI_STATUS_SUCCESS) {
      info.temperature_c = static_cast<int32_t>(milli_c / 1000);
    }
    if (with_topology) {
      if (api.BusyPercentGet != nullptr && api.BusyPercentGet(i, &small) == RSMI_STATUS_SUCCESS) {
        info.utilization_pct = static_cast<int32_t>(small);
      }
      if (api.PowerAveGet != nullptr && api.PowerAveGet(i, 0, &value) == RSMI_STATUS_SUCCESS) {
        info.power_w = value / 1e6;
      }
      if (api.NumaNodeGet != nullptr && api.NumaNodeGet(i, &small) == RSMI_STATUS_SUCCESS) {
        info.numa_node = static_cast<int32_t>(small);
      }
    }
    out.push_back(std::move(info));
  }
  if (!out.empty()) vendor_ = out.front().vendor;

  // XGMI islands: GPUs joined by an XGMI link (one hop or through others).
  if (with_topology && api.LinkTypeGet != nullptr) {
    std::vector<std::pair<int, int>> links;
    bool answered = out.size() < 2;  // one device: its own island
    for (uint32_t a = 0; a < count; ++a) {
      for (uint32_t b = a + 1; b < count; ++b) {
        uint64_t hops = 0;
        int type = 0;
        rsmi_status_t rc = api.LinkTypeGet(a, b, &hops, &type);
        if (rc == RSMI_STATUS_NOT_SUPPORTED || rc != RSMI_STATUS_SUCCESS) continue;
        answered = true;
        if (type == RSMI_IOLINK_TYPE_XGMI) links.emplace_back(static_cast<int>(a), static_cast<int>(b));
      }
    }
    if (answered) {
      std::vector<int32_t> islands = IslandsFromLinks(static_cast<int>(out.size()), links);
      for (size_t i = 0; i < out.size(); ++i) out[i].island = islands[i];
    }
  }
  return out;
}

absl::StatusOr<std::vector<DeviceInfo>> RocmPlugin::Enumerate() { return ReadDevices(true); }

absl::StatusOr<std::vector<DeviceHealth>> RocmPlugin::CheckHealth() {
  absl::StatusOr<std::vector<DeviceInfo>> devices = ReadDevices(false);
  if (!devices.ok()) return devices.status();
  return HealthOf(*std::move(devices));
}

std::vector<std::string> RocmPlugin::DeviceNodes(const std::vector<int>& indices) const {
  if (indices.empty()) return {};
  std::vector<std::string> out = {"/dev/kfd"};
  for (int index : indices) {
    auto it = render_minor_by_index_.find(index);
    out.push_back(absl::StrCat("/dev/dri/renderD",
                               it != render_minor_by_index_.end() ? it->second : 128u + static_cast<unsigned>(index)));
  }
  return out;
}

}  // namespace icos::devices
