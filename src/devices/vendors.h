// The accelerator vendors icos knows and, for each, the environment variable
// its runtime reads to choose which devices a process sees. The one table of
// it: the device plugins report it, the controller sets it on tasks
// (frameworks/), the agent sets it at launch.
//
// Thread-safety: pure functions over a constant table.
#ifndef ICOS_DEVICES_VENDORS_H_
#define ICOS_DEVICES_VENDORS_H_

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/string_view.h"

namespace icos::devices {

// What a task is told whatever its vendor (and all it is told for a vendor
// not in the table).
inline constexpr char kNeutralVisibleDevicesVar[] = "ICOS_VISIBLE_DEVICES";

struct VendorInfo {
  std::string_view name;                 // as DeviceInfo::vendor says it, lower case
  std::string_view visible_devices_var;  // e.g. CUDA_VISIBLE_DEVICES
};

// Every vendor icos knows, by name.
std::span<const VendorInfo> KnownVendors();

// The variable `vendor`'s runtime reads (matched case-insensitively):
// nvidia CUDA_VISIBLE_DEVICES, amd/hygon HIP_VISIBLE_DEVICES, ascend
// ASCEND_RT_VISIBLE_DEVICES, ...; kNeutralVisibleDevicesVar for an unknown
// vendor.
std::string VisibleDevicesVar(absl::string_view vendor);

// The environment that makes exactly `indices` (the runtime's indices, comma
// joined in the given order) visible to a process, plus the vendor-neutral
// ICOS_VISIBLE_DEVICES. For amd the ROCm runtime filters twice: it gets
// ROCR_VISIBLE_DEVICES with the physical indices and HIP_VISIBLE_DEVICES
// with 0..n-1, because HIP indexes into what ROCR already filtered.
std::map<std::string, std::string> VisibleDevicesEnv(absl::string_view vendor, const std::vector<int32_t>& indices);

}  // namespace icos::devices

#endif  // ICOS_DEVICES_VENDORS_H_
