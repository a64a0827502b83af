// AMD Instinct and Hygon DCU backend over the ROCm SMI library
// (librocm_smi64.so; Hygon ships its own build of it with the DCU driver),
// loaded with dlopen: a node without ROCm reports no such devices. Only the
// entry points used here are declared, with the C signatures of rocm_smi.h.
// Tasks select GPUs with HIP_VISIBLE_DEVICES, whose numbers are ROCm SMI's
// device indices. A device is "hygon" when its PCI vendor id is Hygon's
// (0x1d94) or its name says DCU, "amd" otherwise.
#ifndef ICOS_DEVICES_ROCM_PLUGIN_H_
#define ICOS_DEVICES_ROCM_PLUGIN_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "devices/device_plugin.h"
#include "devices/dl_plugin.h"

namespace icos::devices {

struct RocmPluginOptions {
  // dlopen name or path of ROCm SMI; tests point it at a fake library.
  std::string library_path = "librocm_smi64.so";
};

struct RocmSmiApi;  // the resolved ROCm SMI entry points; defined in the .cc

// Thread-safety: not thread-safe (see DevicePlugin).
class RocmPlugin : public DlPlugin<RocmSmiApi> {
 public:
  explicit RocmPlugin(RocmPluginOptions options = {});
  ~RocmPlugin() override;
  RocmPlugin(const RocmPlugin&) = delete;
  RocmPlugin& operator=(const RocmPlugin&) = delete;

  std::string_view name() const override { return "rocm_smi"; }
  // "amd" until devices were read; then "hygon" if the first device is a DCU.
  std::string_view vendor() const override { return vendor_; }
  absl::Status Init() override;
  absl::StatusOr<std::vector<DeviceInfo>> Enumerate() override;
  absl::StatusOr<std::vector<DeviceHealth>> CheckHealth() override;
  // /dev/kfd and /dev/dri/renderD<minor> per device (minor as ROCm SMI last
  // reported it; 128 + index otherwise).
  std::vector<std::string> DeviceNodes(const std::vector<int>& indices) const override;

  using Api = RocmSmiApi;

 private:
  absl::StatusOr<std::vector<DeviceInfo>> ReadDevices(bool with_topology);

  RocmPluginOptions options_;
  std::string vendor_ = "amd";
  std::map<int, unsigned> render_minor_by_index_;
};

}  // namespace icos::devices

#endif  // ICOS_DEVICES_ROCM_PLUGIN_H_
