// NVIDIA backend over NVML (libnvidia-ml.so.1), loaded with dlopen so that a
// node without the driver runs the same binary and simply reports no NVIDIA
// devices. Only the handful of NVML entry points used here are looked up, with
// their C signatures declared locally: no NVIDIA headers are needed to build.
#ifndef ICOS_DEVICES_NVML_PLUGIN_H_
#define ICOS_DEVICES_NVML_PLUGIN_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "devices/device_plugin.h"
#include "devices/dl_plugin.h"

namespace icos::devices {

struct NvmlPluginOptions {
  // dlopen name or path of NVML; tests point it at a fake library.
  std::string library_path = "libnvidia-ml.so.1";
  // Root of sysfs, read for each GPU's NUMA node and PCIe switch.
  std::string sysfs_root = "/sys";
};

// Normalises a PCI bus id to the sysfs form: lower case, 4-digit domain
// ("00000000:1A:00.0" -> "0000:1a:00.0"). NVML uses an 8-digit domain.
std::string NormalizePciBusId(std::string_view bus_id);

struct NvmlApi;  // the resolved NVML entry points; defined in the .cc

// Thread-safety: not thread-safe (see DevicePlugin). Holds the library open
// and NVML initialised from a successful Init() until destruction.
class NvmlPlugin : public DlPlugin<NvmlApi> {
 public:
  explicit NvmlPlugin(NvmlPluginOptions options = {});
  ~NvmlPlugin() override;
  NvmlPlugin(const NvmlPlugin&) = delete;
  NvmlPlugin& operator=(const NvmlPlugin&) = delete;

  std::string_view name() const override { return "nvml"; }
  std::string_view vendor() const override { return "nvidia"; }
  absl::Status Init() override;
  absl::StatusOr<std::vector<DeviceInfo>> Enumerate() override;
  absl::StatusOr<std::vector<DeviceHealth>> CheckHealth() override;
  // /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools and /dev/nvidiaN per
  // device, N being the device's minor number as NVML last reported it (the
  // index when it could not be read). Empty for no indices.
  std::vector<std::string> DeviceNodes(const std::vector<int>& indices) const override;

  using Api = NvmlApi;

 private:
  // Reads every device; `with_topology` adds the NVLink walk, NUMA and PCIe
  // switch lookups that only Enumerate needs.
  absl::StatusOr<std::vector<DeviceInfo>> ReadDevices(bool with_topology);

  NvmlPluginOptions options_;
  std::map<int, unsigned> minor_by_index_;  // from the last ReadDevices
};

}  // namespace icos::devices

#endif  // ICOS_DEVICES_NVML_PLUGIN_H_
