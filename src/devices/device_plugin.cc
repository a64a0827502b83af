#include "devices/device_plugin.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <numeric>

namespace icos::devices {

core::Device ToCoreDevice(const DeviceInfo& info) {
  core::Device d;
  d.vendor = info.vendor;
  d.model = info.model;
  d.memory_mib = info.memory_total_mib;
  d.compute_units = info.compute_units;
  d.healthy = info.healthy;
  d.island = info.island;
  d.numa_node = std::max(info.numa_node, 0);
  d.pcie_switch = info.pcie_switch;
  return d;
}

std::vector<int32_t> IslandsFromLinks(int count, const std::vector<std::pair<int, int>>& links) {
  std::vector<int> parent(std::max(count, 0));
  std::iota(parent.begin(), parent.end(), 0);
  auto find = [&parent](int x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  };
  for (const auto& [a, b] : links) {
    if (a < 0 || b < 0 || a >= count || b >= count) continue;
    parent[find(a)] = find(b);
  }
  std::vector<int32_t> out(parent.size());
  std::map<int, int32_t> id_of_root;
  for (int i = 0; i < count; ++i) {
    auto [it, inserted] = id_of_root.try_emplace(find(i), static_cast<int32_t>(id_of_root.size()));
    out[i] = it->second;
  }
  return out;
}

std::string FormatPciBusId(unsigned domain, unsigned bus, unsigned device, unsigned function) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%04x:%02x:%02x.%x", domain & 0xffff, bus & 0xff, device & 0x1f, function & 0x7);
  return buf;
}

std::vector<DeviceHealth> HealthOf(std::vector<DeviceInfo> devices) {
  std::vector<DeviceHealth> out;
  out.reserve(devices.size());
  for (DeviceInfo& d : devices) {
    out.push_back({.index = d.index,
                   .uuid = std::move(d.uuid),
                   .healthy = d.healthy,
                   .reason = std::move(d.health_reason),
                   .temperature_c = d.temperature_c,
                   .utilization_pct = d.utilization_pct,
                   .memory_used_mib = d.memory_total_mib > 0 ? d.memory_used_mib : -1});
  }
  return out;
}

}  // namespace icos::devices
