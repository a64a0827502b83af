// The device-plugin interface: one implementation per vendor backend (NVML for
// NVIDIA, a simulated inventory for tests and demos, and later DCMI, CNDev,
// ROCm SMI, XPUML). The agent asks each plugin what it holds and turns the
// answers into the core::Node the scheduler sees.
#ifndef ICOS_DEVICES_DEVICE_PLUGIN_H_
#define ICOS_DEVICES_DEVICE_PLUGIN_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/cluster.h"
#include "devices/vendors.h"

namespace icos::devices {

// What a plugin reports about one accelerator. Values the backend could not
// read keep their "unknown" defaults (-1 or empty) rather than failing the
// whole enumeration: a missing temperature must not hide a usable device.
struct DeviceInfo {
  int32_t index = 0;       // as the vendor numbers it (CUDA_VISIBLE_DEVICES=0 means index 0)
  std::string vendor;      // "nvidia", "ascend", ...
  std::string model;       // product name as the vendor reports it
  std::string uuid;        // stable across reboots where the vendor has one
  std::string pci_bus_id;  // sysfs form, lower case: "0000:18:00.0"; empty if none
  int64_t memory_total_mib = 0;
  int64_t memory_used_mib = 0;
  int32_t utilization_pct = -1;  // compute utilisation, 0..100; -1 unknown
  int32_t temperature_c = -1;    // -1 unknown
  double power_w = -1;           // current draw in watts; -1 unknown
  int32_t numa_node = -1;        // host NUMA node id (sysfs numbering); -1 unknown
  // Interconnect island (NVLink / HCCS / MLU-Link component) local to this
  // plugin: devices with the same id talk at full bandwidth. -1 unknown.
  int32_t island = -1;
  int32_t pcie_switch = -1;  // devices with the same id share a PCIe switch; -1 unknown
  // SMs / AI cores / clusters. NVML offers no SM count, so NVIDIA reports
  // CUDA cores here (nvmlDeviceGetNumGpuCores); 0 unknown.
  int32_t compute_units = 0;
  bool healthy = true;
  std::string health_reason;  // why unhealthy; empty when healthy
};

// The cheap, frequent answer: is each device still usable.
struct DeviceHealth {
  int32_t index = 0;
  std::string uuid;
  bool healthy = true;
  std::string reason;          // empty when healthy
  int32_t temperature_c = -1;  // -1 unknown; for the agent's temperature limit
  // How busy the device is, for the controller's metrics (an allocated device
  // that idles is lost money): compute utilisation 0..100 and memory in use.
  int32_t utilization_pct = -1;  // -1 unknown
  int64_t memory_used_mib = -1;  // -1 unknown
};

// One vendor backend. A plugin whose vendor library is absent is not an
// error: it reports available() == false with a reason and zero devices, so
// one agent binary runs on every node whatever the vendor mix.
//
// Thread-safety: not thread-safe; one caller (the agent's discovery loop) at a
// time. Implementations must never crash or throw on a broken driver: every
// vendor failure becomes a Status, an unhealthy device or an unavailable plugin.
class DevicePlugin {
 public:
  virtual ~DevicePlugin() = default;

  // Short backend name, e.g. "nvml", "sim". Distinct from DeviceInfo::vendor
  // because one backend (sim) may report several vendors.
  virtual std::string_view name() const = 0;
  // The vendor whose devices this backend reports ("nvidia"); "mixed" for sim.
  virtual std::string_view vendor() const = 0;

  // Loads the vendor library and initialises it. Idempotent. Returns OK when
  // the plugin reached a definite state, available or not; an error only for
  // a mistake the operator must fix (e.g. a malformed sim inventory).
  virtual absl::Status Init() = 0;
  virtual bool available() const = 0;
  // Why available() is false ("libnvidia-ml.so.1 not found: ..."); empty otherwise.
  virtual std::string unavailable_reason() const = 0;

  // Every device with all fields the backend can read. An unavailable plugin
  // returns an empty list. REQUIRES: Init() was called.
  virtual absl::StatusOr<std::vector<DeviceInfo>> Enumerate() = 0;
  // Health of every device, cheaper than Enumerate (no topology walk).
  // REQUIRES: Init() was called.
  virtual absl::StatusOr<std::vector<DeviceHealth>> CheckHealth() = 0;

  // The environment variable that restricts a task to some devices, e.g.
  // "CUDA_VISIBLE_DEVICES"; its value is a comma-separated list of indices.
  // The vendor table's (devices/vendors.h) for vendor().
  std::string VisibleDevicesVar() const {
    return devices::VisibleDevicesVar(absl::string_view(vendor().data(), vendor().size()));
  }
  // The /dev files a task using these device indices must be allowed to open
  // (per-device nodes plus the vendor's shared control nodes). Empty for
  // backends without device files (sim).
  virtual std::vector<std::string> DeviceNodes(const std::vector<int>& indices) const = 0;
};

// The scheduler's view of a device. Island and NUMA ids are copied as they
// are; DiscoverNode (registry.h) renumbers them to be unique per node and
// valid indices into Node::numa_nodes. An unknown NUMA node (-1) becomes 0.
core::Device ToCoreDevice(const DeviceInfo& info);

// The health part of each device, for backends whose cheap health read is a
// device read without the topology walk.
std::vector<DeviceHealth> HealthOf(std::vector<DeviceInfo> devices);

// Interconnect islands as connected components: `links` are pairs of device
// positions (0..count-1) joined by a full-bandwidth link (HCCS, XGMI, ...).
// Returns one island id per device, numbered 0, 1, ... in order of each
// island's first device; a device without links is an island of its own.
std::vector<int32_t> IslandsFromLinks(int count, const std::vector<std::pair<int, int>>& links);

// "dddd:bb:dd.f" in lower case, the sysfs spelling of a PCI address.
std::string FormatPciBusId(unsigned domain, unsigned bus, unsigned device, unsigned function);

}  // namespace icos::devices

#endif  // ICOS_DEVICES_DEVICE_PLUGIN_H_
