#include "devices/vendors.h"

#include <map>
#include <set>
#include <string>

#include "absl/strings/ascii.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::devices {
namespace {

using ::testing::ElementsAre;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

TEST(VendorsTest, NamesEachVendorsVariable) {
  const std::map<std::string, std::string> expected = {
      {"nvidia", "CUDA_VISIBLE_DEVICES"},       {"amd", "HIP_VISIBLE_DEVICES"},
      {"hygon", "HIP_VISIBLE_DEVICES"},         {"ascend", "ASCEND_RT_VISIBLE_DEVICES"},
      {"cambricon", "MLU_VISIBLE_DEVICES"},     {"kunlunxin", "XPU_VISIBLE_DEVICES"},
      {"moorethreads", "MUSA_VISIBLE_DEVICES"}, {"enflame", "TOPS_VISIBLE_DEVICES"},
      {"iluvatar", "CUDA_VISIBLE_DEVICES"},     {"metax", "MACA_VISIBLE_DEVICES"},
      {"biren", "BR_VISIBLE_DEVICES"},          {"quantum-abacus", "ICOS_VISIBLE_DEVICES"},
  };
  for (const auto& [vendor, var] : expected) EXPECT_EQ(VisibleDevicesVar(vendor), var) << vendor;
}

TEST(VendorsTest, VendorIsCaseInsensitive) { EXPECT_EQ(VisibleDevicesVar("NVIDIA"), "CUDA_VISIBLE_DEVICES"); }

TEST(VendorsTest, EnvJoinsIndicesAndSetsNeutralVariable) {
  EXPECT_THAT(VisibleDevicesEnv("ascend", {2, 3}),
              UnorderedElementsAre(Pair("ASCEND_RT_VISIBLE_DEVICES", "2,3"), Pair("ICOS_VISIBLE_DEVICES", "2,3")));
}

TEST(VendorsTest, AmdFiltersInRocrAndRenumbersForHip) {
  // ROCR keeps physical GPUs 2 and 5, which HIP then sees as 0 and 1.
  EXPECT_THAT(VisibleDevicesEnv("amd", {2, 5}),
              UnorderedElementsAre(Pair("ROCR_VISIBLE_DEVICES", "2,5"), Pair("HIP_VISIBLE_DEVICES", "0,1"),
                                   Pair("ICOS_VISIBLE_DEVICES", "2,5")));
}

TEST(VendorsTest, UnknownVendorGetsOnlyNeutralVariable) {
  EXPECT_THAT(VisibleDevicesEnv("quantum-abacus", {0}), ElementsAre(Pair("ICOS_VISIBLE_DEVICES", "0")));
}

TEST(VendorsTest, TableNamesEachVendorOnceInLowerCase) {
  std::set<std::string> seen;
  for (const VendorInfo& v : KnownVendors()) {
    const std::string name(v.name);
    EXPECT_TRUE(seen.insert(name).second) << name;
    EXPECT_EQ(absl::AsciiStrToLower(name), name);
    EXPECT_EQ(VisibleDevicesVar(name), v.visible_devices_var);
  }
  EXPECT_GE(seen.size(), 7u);  // the seven vendors the project names (device_access.h)
}

}  // namespace
}  // namespace icos::devices
