// Which plugins a node runs, and how their answers become the core::Node the
// scheduler sees.
#ifndef ICOS_DEVICES_REGISTRY_H_
#define ICOS_DEVICES_REGISTRY_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/cluster.h"
#include "devices/device_plugin.h"
#include "devices/host.h"
#include "devices/topology.h"

namespace icos::devices {

struct PluginOptions {
  // Vendor management libraries (dlopen names or paths).
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string dcmi_library = "libdcmi.so";
  std::string cndev_library = "libcndev.so";
  // AMD's build, or Hygon's (e.g. /opt/hyhal/lib/librocm_smi64.so).
  std::string rocm_smi_library = "librocm_smi64.so";
  std::string sysfs_root = "/sys";
  // A sim inventory file; empty: no sim plugin.
  std::string inventory_path;
};

// Every vendor backend always (each reports nothing where its driver is
// absent): NVML, DCMI (Ascend), CNDev (Cambricon), ROCm SMI (AMD, Hygon);
// plus sim when an inventory is given. Kunlunxin and the other vendors
// without a public management API are reached through the sim inventory.
std::vector<std::unique_ptr<DevicePlugin>> DefaultPlugins(const PluginOptions& options);

struct DiscoverOptions {
  std::string node_name;
  HostOptions host;
  // Read the host and device locality with hwloc (hwloc.xml_path: from an
  // XML export). Skipped when `host` points at another sysfs root, since the
  // caller then wants that tree read. On any hwloc failure the sysfs reader
  // is used instead.
  bool use_hwloc = true;
  HwlocOptions hwloc;
  // Used instead of reading the host (tests; sim inventories that declare one).
  std::optional<HostResources> host_override;
};

// What one plugin said, for reports and the probe.
struct PluginReport {
  std::string name;
  std::string vendor;
  bool available = false;
  std::string reason;
  std::string visible_devices_var;
  std::vector<DeviceInfo> devices;
};

struct Discovery {
  HostResources host;
  // Where host and locality came from: "hwloc", "sysfs" (with hwloc's error
  // when it was tried), "inventory" or "override".
  std::string topology_source;
  std::vector<PluginReport> plugins;  // in plugin order
  core::Node node;
  // node.devices[i] is plugins[origin[i].first].devices[origin[i].second]:
  // the launcher needs the vendor index back from a scheduled device.
  std::vector<std::pair<int, int>> origin;
};

// Initialises every plugin (Init is idempotent), reads the host and every
// available plugin's devices, fills each device's NUMA node and PCIe switch
// from the host topology (by PCI bus id) where its plugin left them unknown,
// and builds the node: devices grouped by plugin
// in vendor index order; island and PCIe switch ids renumbered so they are
// unique on the node (-1 stays -1); NUMA ids mapped to indices into node.numa_nodes (an unknown
// or absent id becomes 0). An error from any plugin fails the discovery, since
// a silently missing device is worse than a loud agent.
absl::StatusOr<Discovery> Discover(const DiscoverOptions& options,
                                   const std::vector<std::unique_ptr<DevicePlugin>>& plugins);

// What a health check found about one device of a node.
struct DeviceState {
  bool healthy = true;
  std::string reason;            // why unhealthy; empty when healthy
  int32_t utilization_pct = -1;  // -1 unknown (or the plugin did not answer this time)
  int64_t memory_used_mib = -1;  // -1 unknown
  bool operator==(const DeviceState&) const = default;
};

// The current state of discovery.node.devices (same order), asking every
// available plugin's CheckHealth. A device its plugin no
// longer lists is unhealthy ("no longer reported by nvml"). A plugin whose
// health query fails keeps its devices' answers from `last` (the previous
// call's result; empty: as discovered), since a transient error or an inventory
// caught mid-edit must neither fail every task nor revive a sick device.
// A device hotter than `max_temperature_c` (> 0) is unhealthy too.
// Usage figures are this call's only: a plugin that did not answer leaves
// them unknown rather than repeating stale ones.
std::vector<DeviceState> CheckNodeHealth(const Discovery& discovery,
                                         const std::vector<std::unique_ptr<DevicePlugin>>& plugins,
                                         const std::vector<DeviceState>& last = {}, int32_t max_temperature_c = 0);

// Discover(...).node.
absl::StatusOr<core::Node> DiscoverNode(const DiscoverOptions& options,
                                        const std::vector<std::unique_ptr<DevicePlugin>>& plugins);

}  // namespace icos::devices

#endif  // ICOS_DEVICES_REGISTRY_H_
