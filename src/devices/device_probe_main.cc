// icos_device_probe: prints, as JSON, what device discovery finds on this
// machine: the host, every plugin (available or not, and why), every device
// field and the resulting core::Node. Built to be copied alone onto a GPU
// machine that has none of the build's dependencies.
//
//   icos_device_probe [--nvml-lib PATH] [--inventory FILE] [--sysfs-root DIR]
//                     [--proc-root DIR] [--node-name NAME]
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "devices/registry.h"

namespace {

using nlohmann::json;
using namespace icos::devices;

json ToJson(const DeviceInfo& d) {
  return {{"index", d.index},
          {"vendor", d.vendor},
          {"model", d.model},
          {"uuid", d.uuid},
          {"pci_bus_id", d.pci_bus_id},
          {"memory_total_mib", d.memory_total_mib},
          {"memory_used_mib", d.memory_used_mib},
          {"utilization_pct", d.utilization_pct},
          {"temperature_c", d.temperature_c},
          {"power_w", d.power_w},
          {"numa_node", d.numa_node},
          {"island", d.island},
          {"pcie_switch", d.pcie_switch},
          {"compute_units", d.compute_units},
          {"healthy", d.healthy},
          {"health_reason", d.health_reason}};
}

json ToJson(const icos::core::Node& n) {
  json devices = json::array();
  for (const auto& d : n.devices) {
    devices.push_back({{"vendor", d.vendor},
                       {"model", d.model},
                       {"memory_mib", d.memory_mib},
                       {"compute_units", d.compute_units},
                       {"healthy", d.healthy},
                       {"island", d.island},
                       {"numa_node", d.numa_node},
                       {"pcie_switch", d.pcie_switch}});
  }
  json numa = json::array();
  for (const auto& m : n.numa_nodes) numa.push_back({{"cpu_milli", m.cpu_milli}, {"memory_mib", m.memory_mib}});
  return {{"name", n.name},
          {"cpu_milli", n.cpu_milli},
          {"memory_mib", n.memory_mib},
          {"numa_nodes", numa},
          {"devices", devices}};
}

int Usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--nvml-lib PATH] [--dcmi-lib PATH] [--cndev-lib PATH] [--rocm-smi-lib PATH] [--inventory "
               "FILE] [--sysfs-root DIR] "
               "[--proc-root DIR] [--node-name NAME]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  PluginOptions plugin_options;
  DiscoverOptions discover_options;
  char hostname[256] = {};
  if (gethostname(hostname, sizeof(hostname) - 1) == 0) discover_options.node_name = hostname;
  for (int i = 1; i < argc; ++i) {
    std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") return Usage(argv[0]), 0;
    if (i + 1 >= argc) return Usage(argv[0]);
    std::string value = argv[++i];
    if (flag == "--nvml-lib") {
      plugin_options.nvml_library = value;
    } else if (flag == "--dcmi-lib") {
      plugin_options.dcmi_library = value;
    } else if (flag == "--cndev-lib") {
      plugin_options.cndev_library = value;
    } else if (flag == "--rocm-smi-lib") {
      plugin_options.rocm_smi_library = value;
    } else if (flag == "--inventory") {
      plugin_options.inventory_path = value;
    } else if (flag == "--sysfs-root") {
      plugin_options.sysfs_root = value;
      discover_options.host.sysfs_root = value;
    } else if (flag == "--proc-root") {
      discover_options.host.proc_root = value;
    } else if (flag == "--node-name") {
      discover_options.node_name = value;
    } else {
      std::fprintf(stderr, "unknown flag %s\n", argv[i - 1]);
      return Usage(argv[0]);
    }
  }

  std::vector<std::unique_ptr<DevicePlugin>> plugins = DefaultPlugins(plugin_options);
  absl::StatusOr<Discovery> discovery = Discover(discover_options, plugins);
  if (!discovery.ok()) {
    std::cout << json{{"error", discovery.status().ToString()}}.dump(2) << "\n";
    return 1;
  }
  json out;
  json numa = json::array();
  for (const HostNumaNode& n : discovery->host.numa_nodes) {
    numa.push_back({{"id", n.id}, {"cpus", n.cpus.size()}, {"memory_mib", n.memory_mib}});
  }
  out["host"] = {{"cpu_count", discovery->host.cpu_count},
                 {"core_count", discovery->host.core_count},
                 {"memory_mib", discovery->host.memory_mib},
                 {"numa_nodes", numa},
                 {"topology_source", discovery->topology_source}};
  out["plugins"] = json::array();
  for (size_t p = 0; p < discovery->plugins.size(); ++p) {
    const PluginReport& report = discovery->plugins[p];
    json devices = json::array();
    std::vector<int> indices;
    for (const DeviceInfo& d : report.devices) {
      devices.push_back(ToJson(d));
      indices.push_back(d.index);
    }
    json health = json::array();
    if (report.available) {
      absl::StatusOr<std::vector<DeviceHealth>> checked = plugins[p]->CheckHealth();
      if (checked.ok()) {
        for (const DeviceHealth& h : *checked) {
          health.push_back({{"index", h.index}, {"uuid", h.uuid}, {"healthy", h.healthy}, {"reason", h.reason}});
        }
      } else {
        health = checked.status().ToString();
      }
    }
    out["plugins"].push_back({{"name", report.name},
                              {"vendor", report.vendor},
                              {"available", report.available},
                              {"reason", report.reason},
                              {"visible_devices_var", report.visible_devices_var},
                              {"device_nodes", plugins[p]->DeviceNodes(indices)},
                              {"devices", devices},
                              {"health", health}});
  }
  out["node"] = ToJson(discovery->node);
  std::cout << out.dump(2) << "\n";
  return 0;
}
