// A stand-in for librocm_smi64.so that tests load through RocmPlugin's
// library_path. Same symbol names and C signatures as rocm_smi.h; answers
// from a JSON file named by FAKE_RSMI_CONFIG, read at each rsmi_init:
//
//   {"fail_init": 8,                         // optional: rsmi_init returns this
//    "devices": [{"name": "AMD Instinct MI300X", "vendor_id": 4098,
//                 "unique_id": 1234, "memory_total_mib": 196592,
//                 "memory_used_mib": 0, "busy": 0, "temp_mc": 40000,
//                 "power_uw": 140000000, "bus": "0000:0c:00.0", "numa": 0,
//                 "xgmi": 0,                  // devices with one id are XGMI-linked
//                 "ecc_uncorrectable": 0, "render_minor": 128, "lost": false}]}
//
// Variants: FAKE_RSMI_OMIT_MEMORY_TOTAL leaves out rsmi_dev_memory_total_get
// (a required symbol); FAKE_RSMI_OMIT_OPTIONAL leaves out the topology, ECC
// and name calls (optional ones).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

constexpr int kSuccess = 0, kInvalidArgs = 1, kNotSupported = 2, kNotFound = 4, kInitError = 8, kUnexpectedData = 11,
              kUnknown = -1;

struct Device {
  std::string name = "AMD Instinct MI300X", bus;
  unsigned vendor_id = 0x1002;
  uint64_t unique_id = 0, memory_total_mib = 196592, memory_used_mib = 0, power_uw = 0, ecc_uncorrectable = 0;
  unsigned busy = 0, render_minor = 0;
  int64_t temp_mc = 40000;
  int numa = -1, xgmi = -1;
  bool lost = false;
};
std::vector<Device> g_devices;
bool g_initialized = false;

int LoadConfig() {
  g_devices.clear();
  const char* path = std::getenv("FAKE_RSMI_CONFIG");
  if (path == nullptr) return kSuccess;
  try {
    std::ifstream in(path);
    if (!in) return kInitError;
    nlohmann::json config = nlohmann::json::parse(in);
    if (config.contains("fail_init")) return config["fail_init"].get<int>();
    for (const auto& d : config.value("devices", nlohmann::json::array())) {
      Device dev;
      dev.name = d.value("name", dev.name);
      dev.bus = d.value("bus", "");
      dev.vendor_id = d.value("vendor_id", dev.vendor_id);
      dev.unique_id = d.value("unique_id", static_cast<uint64_t>(g_devices.size() + 1));
      dev.memory_total_mib = d.value("memory_total_mib", dev.memory_total_mib);
      dev.memory_used_mib = d.value("memory_used_mib", dev.memory_used_mib);
      dev.power_uw = d.value("power_uw", dev.power_uw);
      dev.ecc_uncorrectable = d.value("ecc_uncorrectable", dev.ecc_uncorrectable);
      dev.busy = d.value("busy", dev.busy);
      dev.render_minor = d.value("render_minor", 128u + static_cast<unsigned>(g_devices.size()));
      dev.temp_mc = d.value("temp_mc", dev.temp_mc);
      dev.numa = d.value("numa", dev.numa);
      dev.xgmi = d.value("xgmi", dev.xgmi);
      dev.lost = d.value("lost", false);
      g_devices.push_back(dev);
    }
  } catch (...) {
    g_devices.clear();
    return kInitError;
  }
  return kSuccess;
}

}  // namespace

#define DEV_OR_FAIL(index, out)                         \
  if (!g_initialized) return kInitError;                \
  if ((out) == nullptr) return kInvalidArgs;            \
  if ((index) >= g_devices.size()) return kInvalidArgs; \
  Device& dev = g_devices[index];                       \
  if (dev.lost) return kUnexpectedData;

extern "C" {

int rsmi_init(uint64_t flags) {
  (void)flags;
  int rc = LoadConfig();
  g_initialized = rc == kSuccess;
  return rc;
}

int rsmi_shut_down() {
  g_initialized = false;
  return kSuccess;
}

int rsmi_status_string(int status, const char** text) {
  if (text == nullptr) return kInvalidArgs;
  switch (status) {
    case kSuccess:
      *text = "RSMI_STATUS_SUCCESS: The function has been executed successfully.";
      break;
    case kNotSupported:
      *text = "RSMI_STATUS_NOT_SUPPORTED";
      break;
    case kInitError:
      *text = "RSMI_STATUS_INIT_ERROR";
      break;
    case kUnexpectedData:
      *text = "RSMI_STATUS_UNEXPECTED_DATA";
      break;
    default:
      *text = "RSMI_STATUS_UNKNOWN_ERROR";
  }
  return kSuccess;
}

int rsmi_num_monitor_devices(uint32_t* count) {
  if (!g_initialized) return kInitError;
  *count = static_cast<uint32_t>(g_devices.size());
  return kSuccess;
}

#ifndef FAKE_RSMI_OMIT_MEMORY_TOTAL
int rsmi_dev_memory_total_get(uint32_t index, int type, uint64_t* total) {
  DEV_OR_FAIL(index, total);
  if (type != 0) return kNotSupported;
  *total = dev.memory_total_mib << 20;
  return kSuccess;
}
#endif

int rsmi_dev_memory_usage_get(uint32_t index, int type, uint64_t* used) {
  DEV_OR_FAIL(index, used);
  if (type != 0) return kNotSupported;
  *used = dev.memory_used_mib << 20;
  return kSuccess;
}

int rsmi_dev_vendor_id_get(uint32_t index, uint16_t* id) {
  DEV_OR_FAIL(index, id);
  *id = static_cast<uint16_t>(dev.vendor_id);
  return kSuccess;
}

int rsmi_dev_unique_id_get(uint32_t index, uint64_t* id) {
  DEV_OR_FAIL(index, id);
  *id = dev.unique_id;
  return kSuccess;
}

int rsmi_dev_busy_percent_get(uint32_t index, uint32_t* busy) {
  DEV_OR_FAIL(index, busy);
  *busy = dev.busy;
  return kSuccess;
}

int rsmi_dev_temp_metric_get(uint32_t index, uint32_t sensor, int metric, int64_t* temp) {
  DEV_OR_FAIL(index, temp);
  if (sensor != 0 || metric != 0) return kNotSupported;
  *temp = dev.temp_mc;
  return kSuccess;
}

int rsmi_dev_power_ave_get(uint32_t index, uint32_t sensor, uint64_t* power) {
  DEV_OR_FAIL(index, power);
  if (sensor != 0) return kNotSupported;
  *power = dev.power_uw;
  return kSuccess;
}

int rsmi_dev_pci_id_get(uint32_t index, uint64_t* bdfid) {
  DEV_OR_FAIL(index, bdfid);
  unsigned domain = 0, bus = 0, device = 0, fn = 0;
  if (dev.bus.empty()) return kNotSupported;
  if (std::sscanf(dev.bus.c_str(), "%x:%x:%x.%x", &domain, &bus, &device, &fn) != 4) return kUnexpectedData;
  *bdfid = (static_cast<uint64_t>(domain) << 32) | (bus << 8) | (device << 3) | fn;
  return kSuccess;
}

int rsmi_dev_drm_render_minor_get(uint32_t index, uint32_t* minor) {
  DEV_OR_FAIL(index, minor);
  *minor = dev.render_minor;
  return kSuccess;
}

#ifndef FAKE_RSMI_OMIT_OPTIONAL
int rsmi_dev_name_get(uint32_t index, char* name, size_t len) {
  DEV_OR_FAIL(index, name);
  if (len == 0) return kInvalidArgs;
  std::strncpy(name, dev.name.c_str(), len - 1);
  name[len - 1] = '\0';
  return kSuccess;
}

int rsmi_topo_get_numa_node_number(uint32_t index, uint32_t* numa) {
  DEV_OR_FAIL(index, numa);
  if (dev.numa < 0) return kNotSupported;
  *numa = static_cast<uint32_t>(dev.numa);
  return kSuccess;
}

int rsmi_topo_get_link_type(uint32_t a, uint32_t b, uint64_t* hops, int* type) {
  if (!g_initialized) return kInitError;
  if (hops == nullptr || type == nullptr || a >= g_devices.size() || b >= g_devices.size()) return kInvalidArgs;
  const bool xgmi = g_devices[a].xgmi >= 0 && g_devices[a].xgmi == g_devices[b].xgmi;
  *type = xgmi ? 2 : 1;  // XGMI, else PCIe
  *hops = xgmi ? 1 : 2;
  return kSuccess;
}

struct ErrorCount {
  uint64_t correctable_err, uncorrectable_err;
};
int rsmi_dev_ecc_count_get(uint32_t index, uint64_t block, ErrorCount* ec) {
  DEV_OR_FAIL(index, ec);
  ec->correctable_err = 0;
  ec->uncorrectable_err = block == 1 ? dev.ecc_uncorrectable : 0;
  return kSuccess;
}
#endif

}  // extern "C"
