// The `sim` backend: devices declared in a node-inventory file instead of read
// from a driver, so tests, demos and the simulator can pretend to hold any mix
// of vendors and topologies (8 Ascend 910B in two HCCS islands, say) on a
// machine with none.
//
// Inventory (JSON):
//   {"host": {"cpus": 192, "memory": "2Ti", "numa_nodes": 2},        // optional
//    "devices": [
//      {"vendor": "ascend", "model": "910B", "count": 8, "memory": "64Gi",
//       "compute_units": 24,              // optional, default 0
//       "islands": 2,                     // optional: N equal contiguous groups,
//                                         //   or one island id per device
//       "numa": [0,0,0,0,1,1,1,1],        // optional: one id for all, or per device
//       "pcie_switch": [0,0,1,1,2,2,3,3], // optional, same forms as numa
//       "unhealthy": [3, {"index": 5, "reason": "HBM ECC"}]}]}  // optional
// Indices are numbered per vendor across entries in file order; "unhealthy"
// indices count within their entry. Island ids are made unique across entries.
// Memory is a quantity ("64Gi", "80G", "512Mi") or a plain number of MiB.
#ifndef ICOS_DEVICES_SIM_PLUGIN_H_
#define ICOS_DEVICES_SIM_PLUGIN_H_

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "devices/device_plugin.h"
#include "devices/host.h"

namespace icos::devices {

struct SimPluginOptions {
  // Inventory file, re-read on every Enumerate/CheckHealth so a demo can flip
  // a device's health by editing it.
  std::string inventory_path;
  // Inventory text, used instead of the file when non-empty (tests).
  std::string inventory_json;
};

// A parsed inventory.
struct SimInventory {
  std::vector<DeviceInfo> devices;
  std::optional<HostResources> host;  // set when the inventory declares "host"
};

// Parses an inventory; errors name the source and the field path
// ("inventory.json: devices[1].memory: ...").
absl::StatusOr<SimInventory> ParseSimInventory(std::string_view json, std::string_view source);

// Parses a memory quantity into MiB: binary (Ki, Mi, Gi, Ti) or decimal
// (K, M, G, T) suffixes, or a plain number of bytes.
absl::StatusOr<int64_t> ParseMemoryMib(std::string_view quantity);

// Thread-safety: not thread-safe (see DevicePlugin).
class SimPlugin : public DevicePlugin {
 public:
  explicit SimPlugin(SimPluginOptions options);

  std::string_view name() const override { return "sim"; }
  // The one vendor the inventory declares, or "mixed".
  std::string_view vendor() const override { return vendor_; }
  // Fails (InvalidArgument / NotFound) on an unreadable or malformed
  // inventory: the operator asked for it, so silence would mislead.
  absl::Status Init() override;
  bool available() const override { return available_; }
  std::string unavailable_reason() const override { return reason_; }
  absl::StatusOr<std::vector<DeviceInfo>> Enumerate() override;
  absl::StatusOr<std::vector<DeviceHealth>> CheckHealth() override;
  // The variable of the inventory's one vendor; empty for a mixed inventory.
  // Simulated devices have no device files.
  std::vector<std::string> DeviceNodes(const std::vector<int>& indices) const override;

  // The host the inventory declares, if any (after Init).
  const std::optional<HostResources>& host() const { return host_; }

 private:
  absl::StatusOr<SimInventory> Load() const;

  SimPluginOptions options_;
  bool available_ = false;
  std::string reason_ = "not initialised";
  std::string vendor_ = "mixed";
  std::optional<HostResources> host_;
};

}  // namespace icos::devices

#endif  // ICOS_DEVICES_SIM_PLUGIN_H_
