#include "devices/device_plugin.h"

#include <algorithm>

namespace icos::devices {

core::Device ToCoreDevice(const DeviceInfo& info) {
  core::Device d;
  d.vendor = info.vendor;
  d.model = info.model;
  d.memory_mib = info.memory_total_mib;
  d.compute_units = info.compute_units;
  d.healthy = info.healthy;
  d.island = info.island;
  d.numa_node = std::max(info.numa_node, 0);
  d.pcie_switch = info.pcie_switch;
  return d;
}

std::string VisibleDevicesVarFor(std::string_view vendor) {
  // Each runtime reads its own variable; these are the ones the vendors'
  // container toolkits set.
  if (vendor == "nvidia" || vendor == "iluvatar") return "CUDA_VISIBLE_DEVICES";
  if (vendor == "ascend") return "ASCEND_RT_VISIBLE_DEVICES";
  if (vendor == "cambricon") return "MLU_VISIBLE_DEVICES";
  if (vendor == "hygon" || vendor == "amd") return "HIP_VISIBLE_DEVICES";
  if (vendor == "kunlunxin") return "XPU_VISIBLE_DEVICES";
  if (vendor == "moorethreads") return "MUSA_VISIBLE_DEVICES";
  if (vendor == "metax") return "MACA_VISIBLE_DEVICES";
  return "";
}

}  // namespace icos::devices
