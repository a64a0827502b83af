// Host topology: NUMA nodes, cores, and where each PCI device sits (its NUMA
// node and the PCIe switch above it). Read with hwloc (libhwloc) where the
// build has it, with the sysfs reader of host.h as the fallback.
#ifndef ICOS_DEVICES_TOPOLOGY_H_
#define ICOS_DEVICES_TOPOLOGY_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "devices/host.h"

namespace icos::devices {

// Where one PCI device sits.
struct PciLocality {
  int32_t numa_node = -1;  // kernel NUMA node id; -1 unknown (attached to several)
  // Identifies the PCIe switch directly above the device (its upstream
  // port); empty when the device hangs off a root port without a switch.
  std::string switch_key;
};

struct HostTopology {
  HostResources host;
  // PCI bus id (sysfs form, "0000:18:00.0") -> locality, for every PCI
  // device hwloc saw.
  std::map<std::string, PciLocality> pci;
};

struct HwlocOptions {
  // An hwloc XML export to read instead of this machine (tests; a topology
  // captured with `lstopo machine.xml`). Empty: the live machine.
  std::string xml_path;
};

// Loads the topology with hwloc. The whole machine is read, ignoring the
// agent's own cgroup (as ReadHost does). Unimplemented when built without
// hwloc (icos_device_probe); any hwloc failure is an error with its reason.
absl::StatusOr<HostTopology> LoadHwlocTopology(const HwlocOptions& options = {});

// The sysfs fallback for one device: <sysfs>/bus/pci/devices/<bus>/numa_node
// and the path of the device below its root bus (a switch when the device is
// at least four hops below it: root port, switch up, switch down, device).
PciLocality SysfsPciLocality(const std::string& sysfs_root, const std::string& bus_id);

}  // namespace icos::devices

#endif  // ICOS_DEVICES_TOPOLOGY_H_
