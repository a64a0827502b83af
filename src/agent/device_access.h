// Which device nodes a task may use: the allow-list model the device
// controller enforces (cgroup v1 `devices` hierarchy, cgroup v2 eBPF program;
// see cgroups.h and device_filter.h), the defaults every task gets, and the
// table from a vendor's device numbers to its /dev nodes.
//
// A rule names a device by type and major:minor, as the kernel does, never by
// path: the kernel checks the numbers of the inode being opened, so a task
// that makes its own node (or finds a bind mount) for a device it was not
// given is still refused. Numbers therefore come from stat() of the host's
// nodes when the task starts, never from a table: NVIDIA's uvm and the DRM
// render nodes have majors the kernel assigns at module load.
//
// Thread-safety: every function here is safe to call from any thread.
#ifndef ICOS_AGENT_DEVICE_ACCESS_H_
#define ICOS_AGENT_DEVICE_ACCESS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace icos::agent {

enum class DeviceType : char { kChar = 'c', kBlock = 'b' };

// Access bits; the letters of devices.allow.
inline constexpr uint8_t kDeviceRead = 1;   // r
inline constexpr uint8_t kDeviceWrite = 2;  // w
inline constexpr uint8_t kDeviceMknod = 4;  // m
inline constexpr uint8_t kDeviceReadWrite = kDeviceRead | kDeviceWrite;
inline constexpr uint8_t kDeviceAllAccess = kDeviceRead | kDeviceWrite | kDeviceMknod;

// Matches every major (or minor) number: "*" in devices.allow.
inline constexpr int64_t kAnyDeviceNumber = -1;
// Linux device numbers are 12-bit majors and 20-bit minors (MAJOR/MINOR in
// include/linux/kdev_t.h), so both fit a signed 32-bit eBPF immediate.
inline constexpr int64_t kMaxDeviceMajor = (1 << 12) - 1;
inline constexpr int64_t kMaxDeviceMinor = (1 << 20) - 1;

// One allow-list entry. Everything not allowed by some rule is denied.
struct DeviceRule {
  DeviceType type = DeviceType::kChar;
  int64_t major = kAnyDeviceNumber;   // 0..kMaxDeviceMajor, or kAnyDeviceNumber
  int64_t minor = kAnyDeviceNumber;   // 0..kMaxDeviceMinor, or kAnyDeviceNumber
  uint8_t access = kDeviceReadWrite;  // non-empty subset of kDeviceAllAccess

  friend bool operator==(const DeviceRule&, const DeviceRule&) = default;
};

// InvalidArgument for numbers out of range or an empty/unknown access set.
absl::Status ValidateDeviceRule(const DeviceRule& rule);

// The devices.allow spelling: "c 195:0 rw", "c 136:* rwm".
std::string FormatDeviceRule(const DeviceRule& rule);
// The inverse of FormatDeviceRule (also accepts the access letters in any
// order). InvalidArgument for anything else, including type "a".
absl::StatusOr<DeviceRule> ParseDeviceRule(absl::string_view text);

// Reference semantics of an allow-list: true when some rule matches the type
// and numbers and grants every bit of `access`. The eBPF program and the v1
// controller implement exactly this; tests compare them against it.
bool DeviceRulesAllow(const std::vector<DeviceRule>& rules, DeviceType type, int64_t major, int64_t minor,
                      uint8_t access);

// What every task may use whatever devices it was given: runc's default
// allow-list (libcontainer/specconv AllowedDevices): /dev/null 1:3, zero 1:5,
// full 1:7, random 1:8, urandom 1:9, tty 5:0, console 5:1, ptmx 5:2 and the
// pseudo-terminals 136:*, all "rwm". runc's "mknod any device" rules
// (c *:* m, b *:* m) are left out: tasks run without CAP_MKNOD, and a node
// they could make would be refused on open anyway. Its /dev/net/tun (10:200)
// is left out too, as runc itself did from 1.2.
std::vector<DeviceRule> DefaultDeviceRules();

// A /dev node a vendor's runtime opens.
struct DeviceNodeSpec {
  std::string path;  // relative to the dev root: "nvidia0", "dri/renderD128"
  // Shared nodes that only some driver versions or configurations create
  // (/dev/nvidia-modeset, /dev/cambricon_ctl, /dev/mkfd, ...). A missing
  // optional node is reported in ResolvedDeviceNodes::missing; a missing
  // required one is an error.
  bool optional = false;
  // When true, `path` names a DRM render node ("dri/renderD129") and the spec
  // stands for the card node of the same PCI device, found through udev's
  // <dev root>/dri/by-path links (pci-<bdf>-render, pci-<bdf>-card). Card and
  // render numbers are not related: a BMC's VGA is often card0 with no render
  // node, so card<N> by arithmetic could name another device. Always optional.
  bool drm_card_of_render = false;

  friend bool operator==(const DeviceNodeSpec&, const DeviceNodeSpec&) = default;
};

// The vendor names of the project (DeviceInfo::vendor; frameworks::VisibleDevicesEnv in
// frameworks/frameworks.cc): "nvidia", "ascend", "cambricon", "amd", "hygon",
// "kunlunxin", "moorethreads". Matched case-insensitively.
//
// `numbers` are the N in the per-device node names, which are not always the
// index the vendor's runtime uses: NVIDIA's /dev/nvidia<N> is the minor number
// (nvmlDeviceGetMinorNumber), Ascend's /dev/davinci<N> the physical id
// (dcmi_get_device_phyid_from_logicid), AMD/Hygon's render node is
// renderD<128+N> with N = the DRM render minor - 128 (rsmi_dev_drm_render_minor_get).
// The plugins (nvml_plugin.cc, ascend_plugin.cc, rocm_plugin.cc) know those
// mappings; DeviceNodeSpecsFromPaths takes their DeviceNodes() output instead.
//
// The per-device nodes come first, in the order of `numbers`, then the shared
// ones. Empty `numbers`: no nodes (a task without devices of this vendor).
// InvalidArgument for an unknown vendor or a negative number.
//
// Sources, per vendor (the nodes the vendor's own container tooling passes):
//   nvidia        libnvidia-container / nvidia-container-toolkit: /dev/nvidia<minor>,
//                 /dev/nvidiactl, /dev/nvidia-uvm, /dev/nvidia-uvm-tools, /dev/nvidia-modeset
//                 (uvm-tools and modeset optional: created only when their modules load).
//   ascend        Ascend docker runtime (ascend-docker-runtime, "--device" lists of Ascend's
//                 container guides): /dev/davinci<phy id>, /dev/davinci_manager,
//                 /dev/devmm_svm, /dev/hisi_hdc.
//   cambricon     cambricon-k8s-device-plugin (mluDeviceName, mluMonitorDeviceName):
//                 /dev/cambricon_dev<N>, /dev/cambricon_ctl (optional: the plugin adds it only
//                 when present), /dev/cambricon_ipcm<N> (optional: MLU-Link IPC, MLU3xx and later).
//   amd           ROCm docker guide ("--device=/dev/kfd --device=/dev/dri"), narrowed to one
//                 card as the ROCm k8s device plugin does: /dev/kfd, /dev/dri/renderD<128+N>,
//                 and that device's /dev/dri/card* (optional, see drm_card_of_render: compute
//                 needs only kfd and the render node).
//   hygon         Hygon DTK container guides and its k8s device plugin: as amd plus
//                 /dev/mkfd (optional: newer DTK drivers only).
//   kunlunxin     Kunlunxin XRE guide / xpu device plugin: /dev/xpu<N>, /dev/xpuctrl.
//   moorethreads  mt-container-toolkit guides ("--device /dev/mtgpu.<N> --device /dev/dri"):
//                 /dev/mtgpu.<N>, /dev/dri/renderD<128+N> and its card (both optional: the
//                 toolkit passes all of /dev/dri and does not document how mtgpu.<N> maps to it).
absl::StatusOr<std::vector<DeviceNodeSpec>> VendorDeviceNodes(absl::string_view vendor,
                                                              const std::vector<int32_t>& numbers);

// Specs for absolute /dev paths as DevicePlugin::DeviceNodes() returns them
// ("/dev/nvidia3" -> "nvidia3"), for callers that take the plugin's mapping
// from vendor index to node number. A shared node the table above marks
// optional (nvidia-uvm-tools, nvidia-modeset, cambricon_ctl,
// cambricon_ipcm<N>, mkfd) stays optional; the rest are required.
// InvalidArgument for a path outside /dev or with "..".
absl::StatusOr<std::vector<DeviceNodeSpec>> DeviceNodeSpecsFromPaths(const std::vector<std::string>& paths);

struct ResolvedDeviceNodes {
  // One rule per node found: its type and numbers from stat(), access "rw".
  std::vector<DeviceRule> rules;
  std::vector<std::string> nodes;    // the paths found, under the dev root
  std::vector<std::string> missing;  // optional nodes that do not exist (for warnings)
};

// stat()s each node under `dev_root` (symlinks followed, as open() would).
// Errors: NotFound naming every missing required node; InvalidArgument for a
// path that exists but is not a character or block device.
absl::StatusOr<ResolvedDeviceNodes> ResolveDeviceNodes(const std::vector<DeviceNodeSpec>& specs,
                                                       const std::string& dev_root = "/dev");

// The devices one task was given, by vendor.
struct TaskDevices {
  std::string vendor;            // as VendorDeviceNodes
  std::vector<int32_t> numbers;  // as VendorDeviceNodes
};

struct DeviceAllowList {
  std::vector<DeviceRule> rules;      // DefaultDeviceRules() + the nodes' rules, duplicates dropped
  std::vector<std::string> warnings;  // one per missing optional node
};

// The complete allow-list for a task: the defaults plus the nodes of each
// vendor's devices, resolved under `dev_root`. Errors as VendorDeviceNodes
// and ResolveDeviceNodes.
absl::StatusOr<DeviceAllowList> TaskDeviceAllowList(const std::vector<TaskDevices>& devices,
                                                    const std::string& dev_root = "/dev");

}  // namespace icos::agent

#endif  // ICOS_AGENT_DEVICE_ACCESS_H_
