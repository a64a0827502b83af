#include "devices/topology.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "devices/device_plugin.h"

#ifdef ICOS_HAVE_HWLOC
#include <hwloc.h>
#endif

namespace icos::devices {

#ifdef ICOS_HAVE_HWLOC
namespace {

struct TopologyDeleter {
  void operator()(hwloc_topology* t) const { hwloc_topology_destroy(t); }
};

std::string BusIdOf(const hwloc_obj_t obj) {
  if (obj->type == HWLOC_OBJ_PCI_DEVICE) {
    const auto& p = obj->attr->pcidev;
    return FormatPciBusId(p.domain, p.bus, p.dev, p.func);
  }
  const auto& p = obj->attr->bridge.upstream.pci;
  return FormatPciBusId(p.domain, p.bus, p.dev, p.func);
}

}  // namespace

absl::StatusOr<HostTopology> LoadHwlocTopology(const HwlocOptions& options) {
  hwloc_topology_t raw = nullptr;
  if (hwloc_topology_init(&raw) != 0) return absl::InternalError("hwloc_topology_init failed");
  std::unique_ptr<hwloc_topology, TopologyDeleter> topo(raw);
  // The whole machine, not just what the agent's cgroup may use: tasks get
  // cgroups of their own.
  hwloc_topology_set_flags(raw, HWLOC_TOPOLOGY_FLAG_INCLUDE_DISALLOWED);
  // Keep every PCI device and bridge: accelerators of unusual PCI classes
  // (processing accelerators, 0x12) and the switches above them matter here.
  hwloc_topology_set_type_filter(raw, HWLOC_OBJ_PCI_DEVICE, HWLOC_TYPE_FILTER_KEEP_ALL);
  hwloc_topology_set_type_filter(raw, HWLOC_OBJ_BRIDGE, HWLOC_TYPE_FILTER_KEEP_ALL);
  if (!options.xml_path.empty() && hwloc_topology_set_xml(raw, options.xml_path.c_str()) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("hwloc cannot use topology file ", options.xml_path, ": ", std::strerror(errno)));
  }
  if (hwloc_topology_load(raw) != 0) {
    return absl::UnavailableError(absl::StrCat("hwloc could not load the topology",
                                               options.xml_path.empty() ? "" : absl::StrCat(" from ", options.xml_path),
                                               ": ", std::strerror(errno)));
  }

  HostTopology out;
  HostResources& host = out.host;
  host.cpu_count = hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_PU);
  host.core_count = hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_CORE);
  host.memory_mib = static_cast<int64_t>(hwloc_get_root_obj(raw)->total_memory >> 20);
  const int numa_count = hwloc_get_nbobjs_by_type(raw, HWLOC_OBJ_NUMANODE);
  for (int i = 0; i < numa_count; ++i) {
    hwloc_obj_t numa = hwloc_get_obj_by_type(raw, HWLOC_OBJ_NUMANODE, i);
    HostNumaNode node;
    node.id = static_cast<int32_t>(numa->os_index);
    node.memory_mib = static_cast<int64_t>(numa->attr->numanode.local_memory >> 20);
    // cpuset bits are the PUs' OS indices, the kernel's CPU numbers.
    for (int cpu = hwloc_bitmap_first(numa->cpuset); cpu >= 0; cpu = hwloc_bitmap_next(numa->cpuset, cpu)) {
      node.cpus.push_back(cpu);
    }
    host.numa_nodes.push_back(std::move(node));
  }
  std::sort(host.numa_nodes.begin(), host.numa_nodes.end(),
            [](const HostNumaNode& a, const HostNumaNode& b) { return a.id < b.id; });
  if (host.cpu_count <= 0) return absl::DataLossError("hwloc found no processing units");

  for (hwloc_obj_t dev = hwloc_get_next_pcidev(raw, nullptr); dev != nullptr; dev = hwloc_get_next_pcidev(raw, dev)) {
    PciLocality loc;
    hwloc_obj_t anchor = hwloc_get_non_io_ancestor_obj(raw, dev);
    // A device attached above several NUMA nodes (the machine) has no single home.
    if (anchor != nullptr && anchor->nodeset != nullptr && hwloc_bitmap_weight(anchor->nodeset) == 1) {
      loc.numa_node = hwloc_bitmap_first(anchor->nodeset);
    }
    // PCI-to-PCI bridges above the device, nearest first: a switch's
    // downstream port, its upstream port, then the root port.
    std::vector<hwloc_obj_t> bridges;
    for (hwloc_obj_t p = dev->parent; p != nullptr && p->type == HWLOC_OBJ_BRIDGE; p = p->parent) {
      if (p->attr->bridge.upstream_type == HWLOC_OBJ_BRIDGE_PCI) bridges.push_back(p);
    }
    if (bridges.size() >= 3) loc.switch_key = BusIdOf(bridges[1]);
    out.pci[BusIdOf(dev)] = std::move(loc);
  }
  return out;
}

#else  // !ICOS_HAVE_HWLOC

absl::StatusOr<HostTopology> LoadHwlocTopology(const HwlocOptions&) {
  return absl::UnimplementedError("built without hwloc");
}

#endif

PciLocality SysfsPciLocality(const std::string& sysfs_root, const std::string& bus_id) {
  PciLocality loc;
  const std::string dir = absl::StrCat(sysfs_root, "/bus/pci/devices/", bus_id);
  std::ifstream in(dir + "/numa_node");
  std::string text;
  int node = -1;
  if (in >> text && absl::SimpleAtoi(text, &node) && node >= 0) loc.numa_node = node;
  std::error_code ec;
  std::filesystem::path real = std::filesystem::canonical(dir, ec);
  if (ec) return loc;
  std::vector<std::string> parts;
  for (const auto& part : real) parts.push_back(part.string());
  size_t root = parts.size();
  for (size_t i = 0; i < parts.size(); ++i) {
    if (absl::StartsWith(parts[i], "pci")) root = i;
  }
  // .../pci0000:00/<root port>/<switch up>/<switch down>/<device>
  if (root == parts.size() || parts.size() - root - 1 < 4) return loc;
  std::filesystem::path key;
  for (size_t i = 0; i + 2 < parts.size(); ++i) key /= parts[i];
  loc.switch_key = key.string();
  return loc;
}

}  // namespace icos::devices
