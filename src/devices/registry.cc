#include "devices/registry.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "devices/ascend_plugin.h"
#include "devices/cambricon_plugin.h"
#include "devices/nvml_plugin.h"
#include "devices/rocm_plugin.h"
#include "devices/sim_plugin.h"

namespace icos::devices {

std::vector<std::unique_ptr<DevicePlugin>> DefaultPlugins(const PluginOptions& options) {
  std::vector<std::unique_ptr<DevicePlugin>> plugins;
  plugins.push_back(std::make_unique<NvmlPlugin>(
      NvmlPluginOptions{.library_path = options.nvml_library, .sysfs_root = options.sysfs_root}));
  plugins.push_back(std::make_unique<AscendPlugin>(AscendPluginOptions{.library_path = options.dcmi_library}));
  plugins.push_back(std::make_unique<CambriconPlugin>(CambriconPluginOptions{.library_path = options.cndev_library}));
  plugins.push_back(std::make_unique<RocmPlugin>(RocmPluginOptions{.library_path = options.rocm_smi_library}));
  if (!options.inventory_path.empty()) {
    plugins.push_back(std::make_unique<SimPlugin>(SimPluginOptions{.inventory_path = options.inventory_path}));
  }
  return plugins;
}

absl::StatusOr<Discovery> Discover(const DiscoverOptions& options,
                                   const std::vector<std::unique_ptr<DevicePlugin>>& plugins) {
  Discovery out;
  for (const auto& plugin : plugins) {
    if (absl::Status s = plugin->Init(); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("device plugin ", std::string(plugin->name()), ": ", s.message()));
    }
  }
  // The topology read with hwloc (or nothing): host resources and, by PCI
  // bus id, where each device sits.
  std::optional<HostTopology> topology;
  std::string hwloc_error;
  const bool live_sysfs = options.host.sysfs_root == "/sys";
  if (options.use_hwloc && (live_sysfs || !options.hwloc.xml_path.empty())) {
    absl::StatusOr<HostTopology> loaded = LoadHwlocTopology(options.hwloc);
    if (loaded.ok()) {
      topology = *std::move(loaded);
    } else {
      hwloc_error = std::string(loaded.status().message());
    }
  }
  if (options.host_override.has_value()) {
    out.host = *options.host_override;
    out.topology_source = "override";
  } else {
    // A sim inventory that declares a host stands in for the real one, so a
    // demo node looks like the machine it pretends to be.
    const SimPlugin* sim_host = nullptr;
    for (const auto& plugin : plugins) {
      const auto* sim = dynamic_cast<const SimPlugin*>(plugin.get());
      if (sim != nullptr && sim->host().has_value()) sim_host = sim;
    }
    if (sim_host != nullptr) {
      out.host = *sim_host->host();
      out.topology_source = "inventory";
    } else if (topology.has_value()) {
      out.host = topology->host;
      out.topology_source = "hwloc";
    } else {
      absl::StatusOr<HostResources> host = ReadHost(options.host);
      if (!host.ok()) return host.status();
      out.host = *std::move(host);
      out.topology_source = hwloc_error.empty() ? "sysfs" : absl::StrCat("sysfs (hwloc: ", hwloc_error, ")");
    }
  }
  auto locate = [&](const std::string& bus_id) -> PciLocality {
    if (topology.has_value()) {
      auto it = topology->pci.find(bus_id);
      return it != topology->pci.end() ? it->second : PciLocality{};
    }
    return SysfsPciLocality(options.host.sysfs_root, bus_id);
  };

  core::Node& node = out.node;
  node.name = options.node_name;
  node.cpu_milli = int64_t{out.host.cpu_count} * 1000;
  node.memory_mib = out.host.memory_mib;
  std::map<int, int> numa_index;  // kernel node id -> index in node.numa_nodes
  for (const HostNumaNode& n : out.host.numa_nodes) {
    numa_index[n.id] = static_cast<int>(node.numa_nodes.size());
    node.numa_nodes.push_back({.cpu_milli = static_cast<int64_t>(n.cpus.size()) * 1000, .memory_mib = n.memory_mib});
  }

  int island_base = 0;
  int switch_base = 0;
  for (const auto& plugin : plugins) {
    PluginReport report{.name = std::string(plugin->name()),
                        .vendor = std::string(plugin->vendor()),
                        .available = plugin->available(),
                        .reason = plugin->unavailable_reason(),
                        .visible_devices_var = plugin->VisibleDevicesVar()};
    if (plugin->available()) {
      absl::StatusOr<std::vector<DeviceInfo>> devices = plugin->Enumerate();
      if (!devices.ok()) {
        return absl::Status(devices.status().code(), absl::StrCat("device plugin ", std::string(plugin->name()), ": ",
                                                                  devices.status().message()));
      }
      report.devices = *std::move(devices);
    }
    // Locality the vendor library did not give: from the host topology. A
    // switch gets an id after the plugin's own, one per distinct upstream port.
    int next_switch = 0;
    for (const DeviceInfo& info : report.devices) next_switch = std::max(next_switch, info.pcie_switch + 1);
    std::map<std::string, int> switch_ids;
    for (DeviceInfo& info : report.devices) {
      if (info.pci_bus_id.empty() || (info.numa_node >= 0 && info.pcie_switch >= 0)) continue;
      const PciLocality loc = locate(info.pci_bus_id);
      if (info.numa_node < 0) info.numa_node = loc.numa_node;
      if (info.pcie_switch < 0 && !loc.switch_key.empty()) {
        auto [it, inserted] = switch_ids.try_emplace(loc.switch_key, next_switch);
        if (inserted) ++next_switch;
        info.pcie_switch = it->second;
      }
    }
    const int plugin_index = static_cast<int>(out.plugins.size());
    int max_island = -1;
    int max_switch = -1;
    for (size_t i = 0; i < report.devices.size(); ++i) {
      const DeviceInfo& info = report.devices[i];
      core::Device device = ToCoreDevice(info);
      if (info.island >= 0) {
        device.island = island_base + info.island;
        max_island = std::max(max_island, info.island);
      }
      if (info.pcie_switch >= 0) {
        device.pcie_switch = switch_base + info.pcie_switch;
        max_switch = std::max(max_switch, info.pcie_switch);
      }
      auto it = numa_index.find(info.numa_node);
      device.numa_node = it != numa_index.end() ? it->second : 0;
      node.devices.push_back(std::move(device));
      out.origin.emplace_back(plugin_index, static_cast<int>(i));
    }
    island_base += max_island + 1;
    switch_base += max_switch + 1;
    out.plugins.push_back(std::move(report));
  }
  return out;
}

std::vector<DeviceState> CheckNodeHealth(const Discovery& discovery,
                                         const std::vector<std::unique_ptr<DevicePlugin>>& plugins,
                                         const std::vector<DeviceState>& last, int32_t max_temperature_c) {
  // Until a plugin answers, a device is as it was last seen (at discovery first).
  std::vector<DeviceState> health;
  // (plugin, device key) -> position in node.devices. The key is the UUID where
  // there is one: one plugin (a mixed sim inventory) may hold several vendors
  // whose indices repeat (nvidia 3 and ascend 3).
  auto key = [](const std::string& uuid, int32_t index) { return uuid.empty() ? absl::StrCat("#", index) : uuid; };
  std::map<std::pair<int, std::string>, size_t> where;
  for (size_t i = 0; i < discovery.origin.size(); ++i) {
    const auto& [plugin, pos] = discovery.origin[i];
    const DeviceInfo& info = discovery.plugins[plugin].devices[pos];
    where[{plugin, key(info.uuid, info.index)}] = i;
    health.push_back({.healthy = info.healthy, .reason = info.health_reason});
  }
  if (last.size() == health.size()) {
    for (size_t i = 0; i < health.size(); ++i) health[i] = {.healthy = last[i].healthy, .reason = last[i].reason};
  }
  for (size_t p = 0; p < plugins.size() && p < discovery.plugins.size(); ++p) {
    if (!plugins[p]->available()) continue;
    absl::StatusOr<std::vector<DeviceHealth>> reports = plugins[p]->CheckHealth();
    if (!reports.ok()) continue;
    std::set<std::string> seen;
    for (const DeviceHealth& r : *reports) {
      const std::string k = key(r.uuid, r.index);
      seen.insert(k);
      auto it = where.find({static_cast<int>(p), k});
      if (it == where.end()) continue;
      DeviceState& d = health[it->second];
      d = {.healthy = r.healthy,
           .reason = r.reason,
           .utilization_pct = r.utilization_pct,
           .memory_used_mib = r.memory_used_mib};
      if (r.healthy && max_temperature_c > 0 && r.temperature_c > max_temperature_c) {
        d.healthy = false;
        d.reason = absl::StrCat("temperature ", r.temperature_c, " C is above the limit of ", max_temperature_c, " C");
      }
    }
    for (const auto& [k, i] : where) {
      if (k.first == static_cast<int>(p) && !seen.contains(k.second)) {
        health[i] = {.healthy = false,
                     .reason = absl::StrCat("no longer reported by ", std::string(plugins[p]->name()))};
      }
    }
  }
  return health;
}

absl::StatusOr<core::Node> DiscoverNode(const DiscoverOptions& options,
                                        const std::vector<std::unique_ptr<DevicePlugin>>& plugins) {
  absl::StatusOr<Discovery> discovery = Discover(options, plugins);
  if (!discovery.ok()) return discovery.status();
  return std::move(discovery->node);
}

}  // namespace icos::devices
