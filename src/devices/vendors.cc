#include "devices/vendors.h"

#include <algorithm>
#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"

namespace icos::devices {
namespace {

// The variables the vendors' container toolkits set.
constexpr std::array kVendors = {
    VendorInfo{"amd", "HIP_VISIBLE_DEVICES"},
    VendorInfo{"ascend", "ASCEND_RT_VISIBLE_DEVICES"},
    VendorInfo{"biren", "BR_VISIBLE_DEVICES"},
    VendorInfo{"cambricon", "MLU_VISIBLE_DEVICES"},
    VendorInfo{"enflame", "TOPS_VISIBLE_DEVICES"},
    VendorInfo{"hygon", "HIP_VISIBLE_DEVICES"},
    VendorInfo{"iluvatar", "CUDA_VISIBLE_DEVICES"},
    VendorInfo{"kunlunxin", "XPU_VISIBLE_DEVICES"},
    // MetaX's MACA runtime reads MACA_VISIBLE_DEVICES; it ignores
    // CUDA_VISIBLE_DEVICES even though its PyTorch is CUDA-API-compatible.
    VendorInfo{"metax", "MACA_VISIBLE_DEVICES"},
    VendorInfo{"moorethreads", "MUSA_VISIBLE_DEVICES"},
    VendorInfo{"nvidia", "CUDA_VISIBLE_DEVICES"},
};

}  // namespace

std::span<const VendorInfo> KnownVendors() { return kVendors; }

std::string VisibleDevicesVar(absl::string_view vendor) {
  const std::string lower = absl::AsciiStrToLower(vendor);
  auto it = std::find_if(kVendors.begin(), kVendors.end(), [&](const VendorInfo& v) { return v.name == lower; });
  return std::string(it == kVendors.end() ? std::string_view(kNeutralVisibleDevicesVar) : it->visible_devices_var);
}

std::map<std::string, std::string> VisibleDevicesEnv(absl::string_view vendor, const std::vector<int32_t>& indices) {
  std::map<std::string, std::string> env;
  const std::string list = absl::StrJoin(indices, ",");
  env[kNeutralVisibleDevicesVar] = list;
  if (absl::AsciiStrToLower(vendor) == "amd") {
    std::vector<int32_t> renumbered;
    for (size_t i = 0; i < indices.size(); ++i) renumbered.push_back(static_cast<int32_t>(i));
    env["ROCR_VISIBLE_DEVICES"] = list;
    env["HIP_VISIBLE_DEVICES"] = absl::StrJoin(renumbered, ",");
  } else {
    env[VisibleDevicesVar(vendor)] = list;
  }
  return env;
}

}  // namespace icos::devices
