#include "devices/sim_plugin.h"

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace icos::devices {
namespace {

using nlohmann::json;

// Errors carry the field path so a user can find the line to fix.
class Context {
 public:
  explicit Context(std::string_view source) : source_(source) {}
  absl::Status Error(absl::string_view path, absl::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat(source_, ": ", path, ": ", what));
  }

 private:
  std::string source_;
};

absl::StatusOr<int64_t> MemoryField(const Context& ctx, const json& value, const std::string& path) {
  if (value.is_number_integer()) {
    if (value.get<int64_t>() < 0) return ctx.Error(path, "must not be negative");
    return value.get<int64_t>();
  }
  if (!value.is_string()) return ctx.Error(path, "expected a quantity like \"64Gi\" or a number of MiB");
  absl::StatusOr<int64_t> mib = ParseMemoryMib(value.get<std::string>());
  if (!mib.ok()) return ctx.Error(path, mib.status().message());
  return mib;
}

absl::StatusOr<int> IntField(const Context& ctx, const json& value, const std::string& path) {
  if (!value.is_number_integer()) return ctx.Error(path, "expected an integer");
  int64_t v = value.get<int64_t>();
  if (v < -1 || v > 1'000'000) return ctx.Error(path, "out of range");
  return static_cast<int>(v);
}

// "numa", "pcie_switch": one integer for every device, or one per device.
absl::StatusOr<std::vector<int>> PerDevice(const Context& ctx, const json& entry, const char* key, int count,
                                           int fallback, const std::string& path) {
  std::vector<int> out(count, fallback);
  if (!entry.contains(key)) return out;
  const json& value = entry[key];
  const std::string field = absl::StrCat(path, ".", key);
  if (value.is_array()) {
    if (static_cast<int>(value.size()) != count) {
      return ctx.Error(field, absl::StrCat("has ", value.size(), " entries, count is ", count));
    }
    for (int i = 0; i < count; ++i) {
      absl::StatusOr<int> v = IntField(ctx, value[i], absl::StrCat(field, "[", i, "]"));
      if (!v.ok()) return v.status();
      out[i] = *v;
    }
    return out;
  }
  absl::StatusOr<int> v = IntField(ctx, value, field);
  if (!v.ok()) return v.status();
  out.assign(count, *v);
  return out;
}

absl::StatusOr<HostResources> ParseHost(const Context& ctx, const json& host) {
  if (!host.is_object()) return ctx.Error("host", "expected an object");
  HostResources out;
  if (!host.contains("cpus")) return ctx.Error("host.cpus", "required");
  absl::StatusOr<int> cpus = IntField(ctx, host["cpus"], "host.cpus");
  if (!cpus.ok()) return cpus.status();
  if (*cpus <= 0) return ctx.Error("host.cpus", "must be positive");
  out.cpu_count = *cpus;
  if (!host.contains("memory")) return ctx.Error("host.memory", "required");
  absl::StatusOr<int64_t> memory = MemoryField(ctx, host["memory"], "host.memory");
  if (!memory.ok()) return memory.status();
  out.memory_mib = *memory;
  int nodes = 1;
  if (host.contains("numa_nodes")) {
    absl::StatusOr<int> n = IntField(ctx, host["numa_nodes"], "host.numa_nodes");
    if (!n.ok()) return n.status();
    if (*n <= 0 || *n > out.cpu_count) return ctx.Error("host.numa_nodes", "must be 1..cpus");
    nodes = *n;
  }
  // Equal shares per node, CPUs in contiguous blocks, as on common two-socket hosts.
  for (int n = 0; n < nodes; ++n) {
    HostNumaNode node{.id = n, .memory_mib = out.memory_mib / nodes};
    for (int c = n * out.cpu_count / nodes; c < (n + 1) * out.cpu_count / nodes; ++c) node.cpus.push_back(c);
    out.numa_nodes.push_back(std::move(node));
  }
  return out;
}

}  // namespace

absl::StatusOr<int64_t> ParseMemoryMib(std::string_view input) {
  const absl::string_view quantity(input.data(), input.size());
  absl::string_view q = absl::StripAsciiWhitespace(quantity);
  struct Suffix {
    absl::string_view text;
    long double bytes;
  };
  static constexpr Suffix kSuffixes[] = {
      {"Ki", 1024.0L}, {"Mi", 1048576.0L}, {"Gi", 1073741824.0L}, {"Ti", 1099511627776.0L},
      {"K", 1e3L},     {"M", 1e6L},        {"G", 1e9L},           {"T", 1e12L},
  };
  long double scale = 1;
  for (const Suffix& s : kSuffixes) {
    if (absl::ConsumeSuffix(&q, s.text)) {
      scale = s.bytes;
      break;
    }
  }
  double number = 0;
  if (q.empty() || !absl::SimpleAtod(q, &number) || !std::isfinite(number) || number < 0) {
    return absl::InvalidArgumentError(absl::StrCat("expected a quantity like \"64Gi\", got \"", quantity, "\""));
  }
  long double mib = number * scale / 1048576.0L;
  if (mib > 9e15L) return absl::InvalidArgumentError(absl::StrCat("quantity \"", quantity, "\" too large"));
  return static_cast<int64_t>(mib);
}

absl::StatusOr<SimInventory> ParseSimInventory(std::string_view text, std::string_view source_view) {
  const std::string source(source_view);
  const Context ctx(source);
  json root;
  try {
    root = json::parse(text);
  } catch (const json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid JSON: ", e.what()));
  }
  if (!root.is_object()) return ctx.Error("(root)", "expected an object with \"devices\"");
  SimInventory inventory;
  if (root.contains("host")) {
    absl::StatusOr<HostResources> host = ParseHost(ctx, root["host"]);
    if (!host.ok()) return host.status();
    inventory.host = *std::move(host);
  }
  if (!root.contains("devices")) return ctx.Error("devices", "required");
  const json& entries = root["devices"];
  if (!entries.is_array()) return ctx.Error("devices", "expected an array");

  std::map<std::string, int> next_index;  // per vendor
  int island_base = 0;
  for (size_t e = 0; e < entries.size(); ++e) {
    const json& entry = entries[e];
    const std::string path = absl::StrCat("devices[", e, "]");
    if (!entry.is_object()) return ctx.Error(path, "expected an object");
    for (const char* key : {"vendor", "model"}) {
      if (!entry.contains(key) || !entry[key].is_string() || entry[key].get<std::string>().empty()) {
        return ctx.Error(absl::StrCat(path, ".", key), "required, a non-empty string");
      }
    }
    const std::string vendor = absl::AsciiStrToLower(entry["vendor"].get<std::string>());
    int count = 1;
    if (entry.contains("count")) {
      absl::StatusOr<int> c = IntField(ctx, entry["count"], path + ".count");
      if (!c.ok()) return c.status();
      if (*c <= 0 || *c > 4096) return ctx.Error(path + ".count", "must be 1..4096");
      count = *c;
    }
    if (!entry.contains("memory")) return ctx.Error(path + ".memory", "required");
    absl::StatusOr<int64_t> memory = MemoryField(ctx, entry["memory"], path + ".memory");
    if (!memory.ok()) return memory.status();
    int compute_units = 0;
    if (entry.contains("compute_units")) {
      absl::StatusOr<int> cu = IntField(ctx, entry["compute_units"], path + ".compute_units");
      if (!cu.ok()) return cu.status();
      compute_units = std::max(*cu, 0);
    }
    absl::StatusOr<std::vector<int>> numa = PerDevice(ctx, entry, "numa", count, -1, path);
    if (!numa.ok()) return numa.status();
    absl::StatusOr<std::vector<int>> pcie = PerDevice(ctx, entry, "pcie_switch", count, -1, path);
    if (!pcie.ok()) return pcie.status();
    // What the devices are doing, as a vendor library would report it; the
    // file is re-read on each health check, so a test can make them busy.
    absl::StatusOr<std::vector<int>> utilization = PerDevice(ctx, entry, "utilization", count, -1, path);
    if (!utilization.ok()) return utilization.status();
    for (int u : *utilization) {
      if (u < -1 || u > 100) return ctx.Error(path + ".utilization", "must be 0..100 (per cent)");
    }

    std::vector<int> islands(count, -1);
    if (entry.contains("islands")) {
      const json& value = entry["islands"];
      if (value.is_number_integer()) {
        absl::StatusOr<int> groups = IntField(ctx, value, path + ".islands");
        if (!groups.ok()) return groups.status();
        if (*groups <= 0 || count % *groups != 0) {
          return ctx.Error(path + ".islands", absl::StrCat("must divide count (", count, ") into equal groups"));
        }
        for (int i = 0; i < count; ++i) islands[i] = i / (count / *groups);
      } else {
        absl::StatusOr<std::vector<int>> ids = PerDevice(ctx, entry, "islands", count, -1, path);
        if (!ids.ok()) return ids.status();
        islands = *std::move(ids);
      }
    }
    int max_island = -1;
    for (int& island : islands) {
      max_island = std::max(max_island, island);
      if (island >= 0) island += island_base;
    }
    island_base += max_island + 1;

    std::map<int, std::string> unhealthy;  // entry-local index -> reason
    if (entry.contains("unhealthy")) {
      const json& list = entry["unhealthy"];
      if (!list.is_array()) return ctx.Error(path + ".unhealthy", "expected an array");
      for (size_t u = 0; u < list.size(); ++u) {
        const std::string upath = absl::StrCat(path, ".unhealthy[", u, "]");
        const json& item = list[u];
        const json& index_value = item.is_object() && item.contains("index") ? item["index"] : item;
        absl::StatusOr<int> index = IntField(ctx, index_value, upath);
        if (!index.ok()) return index.status();
        if (*index < 0 || *index >= count) {
          return ctx.Error(upath, absl::StrCat("index ", *index, " outside 0..", count - 1));
        }
        std::string reason = "marked unhealthy in the inventory";
        if (item.is_object() && item.contains("reason") && item["reason"].is_string()) {
          reason = item["reason"].get<std::string>();
        }
        unhealthy[*index] = std::move(reason);
      }
    }

    for (int i = 0; i < count; ++i) {
      DeviceInfo d;
      d.index = next_index[vendor]++;
      d.vendor = vendor;
      d.model = entry["model"].get<std::string>();
      d.uuid = absl::StrCat("SIM-", vendor, "-", d.index);
      d.memory_total_mib = *memory;
      d.numa_node = (*numa)[i];
      d.island = islands[i];
      d.pcie_switch = (*pcie)[i];
      d.compute_units = compute_units;
      d.utilization_pct = (*utilization)[i];
      if (auto it = unhealthy.find(i); it != unhealthy.end()) {
        d.healthy = false;
        d.health_reason = it->second;
      }
      inventory.devices.push_back(std::move(d));
    }
  }
  return inventory;
}

SimPlugin::SimPlugin(SimPluginOptions options) : options_(std::move(options)) {}

absl::StatusOr<SimInventory> SimPlugin::Load() const {
  if (!options_.inventory_json.empty()) return ParseSimInventory(options_.inventory_json, "inventory");
  std::ifstream in(options_.inventory_path);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read inventory ", options_.inventory_path));
  std::stringstream text;
  text << in.rdbuf();
  return ParseSimInventory(text.str(), options_.inventory_path);
}

absl::Status SimPlugin::Init() {
  absl::StatusOr<SimInventory> inventory = Load();
  if (!inventory.ok()) {
    available_ = false;
    reason_ = std::string(inventory.status().message());
    return inventory.status();
  }
  std::set<std::string> vendors;
  for (const DeviceInfo& d : inventory->devices) vendors.insert(d.vendor);
  vendor_ = vendors.size() == 1 ? *vendors.begin() : "mixed";
  host_ = inventory->host;
  available_ = true;
  reason_.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::vector<DeviceInfo>> SimPlugin::Enumerate() {
  if (!available_) return std::vector<DeviceInfo>{};
  absl::StatusOr<SimInventory> inventory = Load();
  if (!inventory.ok()) return inventory.status();
  return std::move(inventory->devices);
}

absl::StatusOr<std::vector<DeviceHealth>> SimPlugin::CheckHealth() {
  absl::StatusOr<std::vector<DeviceInfo>> devices = Enumerate();
  if (!devices.ok()) return devices.status();
  return HealthOf(*std::move(devices));
}

std::vector<std::string> SimPlugin::DeviceNodes(const std::vector<int>&) const { return {}; }

}  // namespace icos::devices
