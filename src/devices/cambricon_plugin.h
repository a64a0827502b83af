// Cambricon MLU backend over CNDev (libcndev.so, shipped with the MLU
// driver), loaded with dlopen: a node without the driver reports no MLUs.
// Only the CNDev entry points used here are declared, with the C signatures
// of Cambricon's cndev.h. Tasks select cards with MLU_VISIBLE_DEVICES, whose
// numbers are CNDev's device indices.
#ifndef ICOS_DEVICES_CAMBRICON_PLUGIN_H_
#define ICOS_DEVICES_CAMBRICON_PLUGIN_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "devices/device_plugin.h"
#include "devices/dl_plugin.h"

namespace icos::devices {

struct CambriconPluginOptions {
  // dlopen name or path of CNDev; tests point it at a fake library.
  std::string library_path = "libcndev.so";
};

struct CndevApi;  // the resolved CNDev entry points; defined in the .cc

// Thread-safety: not thread-safe (see DevicePlugin).
class CambriconPlugin : public DlPlugin<CndevApi> {
 public:
  explicit CambriconPlugin(CambriconPluginOptions options = {});
  ~CambriconPlugin() override;
  CambriconPlugin(const CambriconPlugin&) = delete;
  CambriconPlugin& operator=(const CambriconPlugin&) = delete;

  std::string_view name() const override { return "cndev"; }
  std::string_view vendor() const override { return "cambricon"; }
  absl::Status Init() override;
  absl::StatusOr<std::vector<DeviceInfo>> Enumerate() override;
  absl::StatusOr<std::vector<DeviceHealth>> CheckHealth() override;
  // /dev/cambricon_ctl and /dev/cambricon_devN per card.
  std::vector<std::string> DeviceNodes(const std::vector<int>& indices) const override;

  using Api = CndevApi;

 private:
  absl::StatusOr<std::vector<DeviceInfo>> ReadDevices(bool with_topology);

  CambriconPluginOptions options_;
};

}  // namespace icos::devices

#endif  // ICOS_DEVICES_CAMBRICON_PLUGIN_H_
