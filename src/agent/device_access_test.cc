#include "agent/device_access.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::icos::agent::testing::Spit;
using ::icos::agent::testing::TempDir;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

DeviceRule C(int64_t major, int64_t minor, uint8_t access = kDeviceReadWrite) {
  return {.type = DeviceType::kChar, .major = major, .minor = minor, .access = access};
}

std::vector<std::string> Paths(const std::vector<DeviceNodeSpec>& specs) {
  std::vector<std::string> out;
  for (const DeviceNodeSpec& spec : specs) out.push_back(spec.path + (spec.optional ? "?" : ""));
  return out;
}

// ---------------------------------------------------------------------------
// Rules.
// ---------------------------------------------------------------------------

TEST(DeviceRuleTest, FormatsAsDevicesAllow) {
  EXPECT_EQ(FormatDeviceRule(C(195, 0)), "c 195:0 rw");
  EXPECT_EQ(FormatDeviceRule(C(136, kAnyDeviceNumber, kDeviceAllAccess)), "c 136:* rwm");
  EXPECT_EQ(FormatDeviceRule({.type = DeviceType::kBlock, .major = 8, .minor = 0, .access = kDeviceRead}), "b 8:0 r");
}

TEST(DeviceRuleTest, ParseIsTheInverseOfFormat) {
  for (const DeviceRule& rule : DefaultDeviceRules()) {
    absl::StatusOr<DeviceRule> parsed = ParseDeviceRule(FormatDeviceRule(rule));
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, rule) << FormatDeviceRule(rule);
  }
  absl::StatusOr<DeviceRule> any = ParseDeviceRule("b *:* mr");
  ASSERT_TRUE(any.ok()) << any.status();
  EXPECT_EQ(*any, (DeviceRule{.type = DeviceType::kBlock, .access = kDeviceRead | kDeviceMknod}));
}

TEST(DeviceRuleTest, RejectsWhatTheKernelWouldNot) {
  for (const char* bad :
       {"a *:* rwm", "c 1:3", "c 1:3 rwx", "c 1:3 rr", "c 4096:0 rw", "c 1:1048576 rw", "c -1:0 rw", "c 1 3 rw", ""}) {
    EXPECT_EQ(ParseDeviceRule(bad).status().code(), absl::StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_FALSE(ValidateDeviceRule(C(1, 3, 0)).ok());
  EXPECT_FALSE(ValidateDeviceRule(C(1, 3, 8)).ok());
  EXPECT_FALSE(ValidateDeviceRule(C(-2, 3)).ok());
}

TEST(DeviceRuleTest, AllowNeedsEveryRequestedBit) {
  const std::vector<DeviceRule> rules = {C(1, 3, kDeviceRead), C(136, kAnyDeviceNumber)};
  EXPECT_TRUE(DeviceRulesAllow(rules, DeviceType::kChar, 1, 3, kDeviceRead));
  EXPECT_FALSE(DeviceRulesAllow(rules, DeviceType::kChar, 1, 3, kDeviceReadWrite));
  EXPECT_FALSE(DeviceRulesAllow(rules, DeviceType::kBlock, 1, 3, kDeviceRead));
  EXPECT_TRUE(DeviceRulesAllow(rules, DeviceType::kChar, 136, 42, kDeviceWrite));
  EXPECT_FALSE(DeviceRulesAllow(rules, DeviceType::kChar, 136, 42, kDeviceMknod));
  EXPECT_FALSE(DeviceRulesAllow({}, DeviceType::kChar, 1, 3, kDeviceRead));
}

TEST(DeviceRuleTest, DefaultsAreRuncsAllowList) {
  std::vector<std::string> formatted;
  for (const DeviceRule& rule : DefaultDeviceRules()) formatted.push_back(FormatDeviceRule(rule));
  EXPECT_THAT(formatted, ElementsAre("c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm",
                                     "c 5:1 rwm", "c 5:2 rwm", "c 136:* rwm"));
  // No wildcard that would let a task reach an accelerator.
  EXPECT_FALSE(DeviceRulesAllow(DefaultDeviceRules(), DeviceType::kChar, 195, 0, kDeviceRead));
}

// ---------------------------------------------------------------------------
// The vendor table.
// ---------------------------------------------------------------------------

TEST(DeviceNodeTableTest, Nvidia) {
  absl::StatusOr<std::vector<DeviceNodeSpec>> specs = VendorDeviceNodes("nvidia", {0, 3});
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_THAT(Paths(*specs),
              ElementsAre("nvidia0", "nvidia3", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools?", "nvidia-modeset?"));
}

TEST(DeviceNodeTableTest, Ascend) {
  absl::StatusOr<std::vector<DeviceNodeSpec>> specs = VendorDeviceNodes("ascend", {4});
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_THAT(Paths(*specs), ElementsAre("davinci4", "davinci_manager", "devmm_svm", "hisi_hdc"));
}

TEST(DeviceNodeTableTest, Cambricon) {
  absl::StatusOr<std::vector<DeviceNodeSpec>> specs = VendorDeviceNodes("cambricon", {1});
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_THAT(Paths(*specs), ElementsAre("cambricon_dev1", "cambricon_ipcm1?", "cambricon_ctl?"));
}

TEST(DeviceNodeTableTest, AmdAndHygonUseRenderNodes) {
  absl::StatusOr<std::vector<DeviceNodeSpec>> amd = VendorDeviceNodes("amd", {1});
  ASSERT_TRUE(amd.ok()) << amd.status();
  // renderD129 itself, then the card of the same PCI device (optional), then kfd.
  EXPECT_THAT(Paths(*amd), ElementsAre("dri/renderD129", "dri/renderD129?", "kfd"));
  EXPECT_TRUE((*amd)[1].drm_card_of_render);
  absl::StatusOr<std::vector<DeviceNodeSpec>> hygon = VendorDeviceNodes("Hygon", {0});
  ASSERT_TRUE(hygon.ok()) << hygon.status();
  EXPECT_THAT(Paths(*hygon), ElementsAre("dri/renderD128", "dri/renderD128?", "kfd", "mkfd?"));
}

TEST(DeviceNodeTableTest, KunlunxinAndMooreThreads) {
  absl::StatusOr<std::vector<DeviceNodeSpec>> xpu = VendorDeviceNodes("kunlunxin", {2});
  ASSERT_TRUE(xpu.ok()) << xpu.status();
  EXPECT_THAT(Paths(*xpu), ElementsAre("xpu2", "xpuctrl"));
  absl::StatusOr<std::vector<DeviceNodeSpec>> mt = VendorDeviceNodes("moorethreads", {0});
  ASSERT_TRUE(mt.ok()) << mt.status();
  EXPECT_THAT(Paths(*mt), ElementsAre("mtgpu.0", "dri/renderD128?", "dri/renderD128?"));
}

TEST(DeviceNodeTableTest, NoDevicesNoNodes) {
  absl::StatusOr<std::vector<DeviceNodeSpec>> specs = VendorDeviceNodes("nvidia", {});
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_THAT(*specs, IsEmpty());
}

TEST(DeviceNodeTableTest, UnknownVendorAndNegativeNumbersAreInvalid) {
  EXPECT_EQ(VendorDeviceNodes("sim", {0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VendorDeviceNodes("nvidia", {-1}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(DeviceNodeTableTest, SpecsFromPluginPaths) {
  absl::StatusOr<std::vector<DeviceNodeSpec>> specs =
      DeviceNodeSpecsFromPaths({"/dev/nvidiactl", "/dev/nvidia-uvm-tools", "/dev/nvidia3", "/dev/dri/renderD136"});
  ASSERT_TRUE(specs.ok()) << specs.status();
  EXPECT_THAT(Paths(*specs), ElementsAre("nvidiactl", "nvidia-uvm-tools?", "nvidia3", "dri/renderD136"));
  EXPECT_FALSE(DeviceNodeSpecsFromPaths({"/etc/passwd"}).ok());
  EXPECT_FALSE(DeviceNodeSpecsFromPaths({"/dev/../etc/shadow"}).ok());
}

// ---------------------------------------------------------------------------
// Resolving nodes with stat(). Device nodes can only be made by root.
// ---------------------------------------------------------------------------

class DeviceNodeResolveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "making fake device nodes (mknod) needs root";
    dev_ = tmp_.Sub("dev");
    std::filesystem::create_directories(dev_ + "/dri/by-path");
  }
  void Node(const std::string& name, int major_number, int minor_number, mode_t type = S_IFCHR) {
    ASSERT_EQ(mknod((dev_ + "/" + name).c_str(), type | 0666, makedev(major_number, minor_number)), 0) << name;
  }

  TempDir tmp_;  // removed with the nodes in it, pass or fail
  std::string dev_;
};

TEST_F(DeviceNodeResolveTest, NumbersComeFromStat) {
  Node("nvidia0", 195, 0);
  Node("nvidiactl", 195, 255);
  Node("nvidia-uvm", 508, 0);  // a dynamic major, as on real hosts
  Node("nvidia-uvm-tools", 508, 1);
  absl::StatusOr<std::vector<DeviceNodeSpec>> specs = VendorDeviceNodes("nvidia", {0});
  ASSERT_TRUE(specs.ok());
  absl::StatusOr<ResolvedDeviceNodes> resolved = ResolveDeviceNodes(*specs, dev_);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_THAT(resolved->rules, ElementsAre(C(195, 0), C(195, 255), C(508, 0), C(508, 1)));
  // nvidia-modeset is optional: reported, not an error.
  EXPECT_THAT(resolved->missing, ElementsAre(dev_ + "/nvidia-modeset"));
}

TEST_F(DeviceNodeResolveTest, MissingRequiredNodeIsAnError) {
  Node("nvidiactl", 195, 255);
  absl::StatusOr<std::vector<DeviceNodeSpec>> specs = VendorDeviceNodes("nvidia", {1});
  ASSERT_TRUE(specs.ok());
  absl::StatusOr<ResolvedDeviceNodes> resolved = ResolveDeviceNodes(*specs, dev_);
  EXPECT_EQ(resolved.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(resolved.status().message(), HasSubstr(dev_ + "/nvidia1"));
  EXPECT_THAT(resolved.status().message(), HasSubstr(dev_ + "/nvidia-uvm"));
}

TEST_F(DeviceNodeResolveTest, RegularFileIsNotADevice) {
  Spit(dev_ + "/xpu0", "not a device");
  Node("xpuctrl", 243, 128);
  absl::StatusOr<std::vector<DeviceNodeSpec>> specs = VendorDeviceNodes("kunlunxin", {0});
  ASSERT_TRUE(specs.ok());
  EXPECT_EQ(ResolveDeviceNodes(*specs, dev_).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(DeviceNodeResolveTest, BlockDevicesKeepTheirType) {
  Node("blk", 8, 16, S_IFBLK);
  absl::StatusOr<ResolvedDeviceNodes> resolved = ResolveDeviceNodes({{.path = "blk"}}, dev_);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  EXPECT_THAT(resolved->rules, ElementsAre(DeviceRule{.type = DeviceType::kBlock, .major = 8, .minor = 16}));
}

TEST_F(DeviceNodeResolveTest, DrmCardIsFoundThroughByPathNotByNumber) {
  // A BMC's VGA is card0 with no render node; the GPU is card1 + renderD128.
  Node("dri/card0", 226, 0);
  Node("dri/card1", 226, 1);
  Node("dri/renderD128", 226, 128);
  Node("kfd", 510, 0);
  std::filesystem::create_symlink("../card0", dev_ + "/dri/by-path/pci-0000:02:00.0-card");
  std::filesystem::create_symlink("../card1", dev_ + "/dri/by-path/pci-0000:c1:00.0-card");
  std::filesystem::create_symlink("../renderD128", dev_ + "/dri/by-path/pci-0000:c1:00.0-render");
  absl::StatusOr<DeviceAllowList> list = TaskDeviceAllowList({{.vendor = "amd", .numbers = {0}}}, dev_);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(list->rules, Contains(C(226, 128)));
  EXPECT_THAT(list->rules, Contains(C(226, 1)));
  EXPECT_THAT(list->rules, Not(Contains(C(226, 0))));
  EXPECT_THAT(list->rules, Contains(C(510, 0)));
  EXPECT_THAT(list->warnings, IsEmpty());
}

TEST_F(DeviceNodeResolveTest, AllowListIsDefaultsPlusTheTasksNodes) {
  Node("davinci3", 236, 3);
  Node("davinci_manager", 237, 0);
  Node("devmm_svm", 238, 0);
  Node("hisi_hdc", 239, 0);
  absl::StatusOr<DeviceAllowList> list = TaskDeviceAllowList({{.vendor = "ascend", .numbers = {3}}}, dev_);
  ASSERT_TRUE(list.ok()) << list.status();
  std::vector<DeviceRule> expected = DefaultDeviceRules();
  for (const DeviceRule& rule : {C(236, 3), C(237, 0), C(238, 0), C(239, 0)}) expected.push_back(rule);
  EXPECT_EQ(list->rules, expected);
  EXPECT_THAT(list->warnings, IsEmpty());
}

TEST_F(DeviceNodeResolveTest, MissingOptionalNodesBecomeWarnings) {
  Node("cambricon_dev0", 240, 0);
  absl::StatusOr<DeviceAllowList> list = TaskDeviceAllowList({{.vendor = "cambricon", .numbers = {0}}}, dev_);
  ASSERT_TRUE(list.ok()) << list.status();
  EXPECT_THAT(list->warnings, ElementsAre(HasSubstr("cambricon_ipcm0"), HasSubstr("cambricon_ctl")));
}

}  // namespace
}  // namespace icos::agent
