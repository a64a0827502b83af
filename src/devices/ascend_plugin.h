// Huawei Ascend backend over DCMI (libdcmi.so, shipped with the Ascend NPU
// driver), loaded with dlopen: a node without the driver runs the same binary
// and reports no Ascend devices. Only the DCMI entry points used here are
// declared, with the C signatures of Huawei's dcmi_interface_api.h.
//
// DCMI numbers a chip by (card id, device id in card). Tasks select chips by
// logic id in ASCEND_RT_VISIBLE_DEVICES, so DeviceInfo::index is the logic id
// (dcmi_get_device_logic_id), and the /dev/davinciN node is the physical id.
#ifndef ICOS_DEVICES_ASCEND_PLUGIN_H_
#define ICOS_DEVICES_ASCEND_PLUGIN_H_

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "devices/device_plugin.h"
#include "devices/dl_plugin.h"

namespace icos::devices {

struct AscendPluginOptions {
  // dlopen name or path of DCMI; tests point it at a fake library.
  std::string library_path = "libdcmi.so";
};

struct DcmiApi;  // the resolved DCMI entry points; defined in the .cc

// Thread-safety: not thread-safe (see DevicePlugin).
class AscendPlugin : public DlPlugin<DcmiApi> {
 public:
  explicit AscendPlugin(AscendPluginOptions options = {});
  ~AscendPlugin() override;
  AscendPlugin(const AscendPlugin&) = delete;
  AscendPlugin& operator=(const AscendPlugin&) = delete;

  std::string_view name() const override { return "dcmi"; }
  std::string_view vendor() const override { return "ascend"; }
  absl::Status Init() override;
  absl::StatusOr<std::vector<DeviceInfo>> Enumerate() override;
  absl::StatusOr<std::vector<DeviceHealth>> CheckHealth() override;
  // /dev/davinci_manager, /dev/devmm_svm, /dev/hisi_hdc and /dev/davinciN per
  // chip, N its physical id as DCMI last reported it (the index otherwise).
  std::vector<std::string> DeviceNodes(const std::vector<int>& indices) const override;

  using Api = DcmiApi;

 private:
  absl::StatusOr<std::vector<DeviceInfo>> ReadDevices(bool with_topology);

  AscendPluginOptions options_;
  std::map<int, unsigned> phy_by_index_;  // from the last ReadDevices
};

}  // namespace icos::devices

#endif  // ICOS_DEVICES_ASCEND_PLUGIN_H_
