// A stand-in for libnvidia-ml.so.1 that tests load through NvmlPlugin's
// library_path. It exports the NVML symbols NvmlPlugin uses with the same C
// ABI and answers from a JSON file named by FAKE_NVML_CONFIG, read at each
// nvmlInit_v2 so one test process can script many machines:
//
//   {"fail_init": 9,                       // optional: nvmlInit_v2 returns this
//    "devices": [{"name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-...",
//                 "bus_id": "00000000:18:00.0", "memory_total_mib": 81559,
//                 "memory_used_mib": 0, "utilization": 0, "temperature": 30,
//                 "power_mw": 70000, "cores": 16896, "minor": 0,
//                 "ecc_uncorrected": 0, "lost": false,
//                 "nvlinks": ["00000000:2a:00.0", ...]}]}   // remote end per active link
//
// Variants: FAKE_NVML_OMIT_GET_COUNT leaves out nvmlDeviceGetCount_v2 (a
// required symbol); FAKE_NVML_OMIT_OPTIONAL leaves out the NVLink, ECC and
// core-count calls (optional ones).
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

using nvmlReturn_t = int;
constexpr nvmlReturn_t kSuccess = 0;
constexpr nvmlReturn_t kUninitialized = 1;
constexpr nvmlReturn_t kInvalidArgument = 2;
constexpr nvmlReturn_t kNotSupported = 3;
constexpr nvmlReturn_t kInsufficientSize = 7;
constexpr nvmlReturn_t kGpuIsLost = 15;
constexpr nvmlReturn_t kUnknown = 999;

struct FakeDevice {
  std::string name, uuid, bus_id;
  unsigned long long memory_total_mib = 0, memory_used_mib = 0;
  unsigned utilization = 0, temperature = 0, power_mw = 0, cores = 0, minor = 0;
  unsigned long long ecc_uncorrected = 0;
  bool lost = false;
  std::vector<std::string> nvlinks;
};

struct PciInfo {
  char busIdLegacy[16];
  unsigned int domain, bus, device, pciDeviceId, pciSubSystemId;
  char busId[32];
};
struct Memory {
  unsigned long long total, free, used;
};
struct Utilization {
  unsigned int gpu, memory;
};

std::vector<FakeDevice> g_devices;
bool g_initialized = false;

nvmlReturn_t LoadConfig() {
  g_devices.clear();
  const char* path = std::getenv("FAKE_NVML_CONFIG");
  if (path == nullptr) return kSuccess;  // no config: a machine with no GPUs
  try {
    std::ifstream in(path);
    if (!in) return kUnknown;
    nlohmann::json config = nlohmann::json::parse(in);
    if (config.contains("fail_init")) return config["fail_init"].get<int>();
    for (const auto& d : config.value("devices", nlohmann::json::array())) {
      FakeDevice dev;
      dev.name = d.value("name", "NVIDIA Fake GPU");
      dev.uuid = d.value("uuid", "GPU-fake-" + std::to_string(g_devices.size()));
      dev.bus_id = d.value("bus_id", "");
      dev.memory_total_mib = d.value("memory_total_mib", 81559ULL);
      dev.memory_used_mib = d.value("memory_used_mib", 0ULL);
      dev.utilization = d.value("utilization", 0U);
      dev.temperature = d.value("temperature", 30U);
      dev.power_mw = d.value("power_mw", 70000U);
      dev.cores = d.value("cores", 0U);
      dev.minor = d.value("minor", static_cast<unsigned>(g_devices.size()));
      dev.ecc_uncorrected = d.value("ecc_uncorrected", 0ULL);
      dev.lost = d.value("lost", false);
      dev.nvlinks = d.value("nvlinks", std::vector<std::string>{});
      g_devices.push_back(std::move(dev));
    }
  } catch (...) {
    g_devices.clear();
    return kUnknown;
  }
  return kSuccess;
}

FakeDevice* Dev(void* handle) { return static_cast<FakeDevice*>(handle); }

nvmlReturn_t CopyString(const std::string& s, char* out, unsigned length) {
  if (out == nullptr) return kInvalidArgument;
  if (s.size() + 1 > length) return kInsufficientSize;
  std::memcpy(out, s.c_str(), s.size() + 1);
  return kSuccess;
}

void FillPci(const std::string& bus_id, PciInfo* pci) {
  std::memset(pci, 0, sizeof(*pci));
  std::strncpy(pci->busId, bus_id.c_str(), sizeof(pci->busId) - 1);
  // Like the real library: the legacy field holds the 4-digit-domain form.
  std::string legacy = bus_id.size() > 4 ? bus_id.substr(4) : bus_id;
  std::strncpy(pci->busIdLegacy, legacy.c_str(), sizeof(pci->busIdLegacy) - 1);
}

}  // namespace

extern "C" {

nvmlReturn_t nvmlInit_v2() {
  nvmlReturn_t rc = LoadConfig();
  g_initialized = rc == kSuccess;
  return rc;
}

nvmlReturn_t nvmlShutdown() {
  if (!g_initialized) return kUninitialized;
  g_initialized = false;
  return kSuccess;
}

const char* nvmlErrorString(nvmlReturn_t rc) {
  switch (rc) {
    case kSuccess:
      return "Success";
    case kUninitialized:
      return "Uninitialized";
    case kNotSupported:
      return "Not Supported";
    case 9:
      return "Driver Not Loaded";
    case kGpuIsLost:
      return "GPU is lost";
    case 18:
      return "RM has detected an NVML/RM version mismatch";
    default:
      return "Unknown Error";
  }
}

#ifndef FAKE_NVML_OMIT_GET_COUNT
nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* count) {
  if (!g_initialized) return kUninitialized;
  *count = static_cast<unsigned>(g_devices.size());
  return kSuccess;
}
#endif

nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (!g_initialized) return kUninitialized;
  if (index >= g_devices.size()) return kInvalidArgument;
  if (g_devices[index].lost) return kGpuIsLost;
  *device = &g_devices[index];
  return kSuccess;
}

nvmlReturn_t nvmlDeviceGetName(void* device, char* name, unsigned int length) {
  return CopyString(Dev(device)->name, name, length);
}

nvmlReturn_t nvmlDeviceGetUUID(void* device, char* uuid, unsigned int length) {
  return CopyString(Dev(device)->uuid, uuid, length);
}

nvmlReturn_t nvmlDeviceGetMemoryInfo(void* device, Memory* memory) {
  const FakeDevice& d = *Dev(device);
  memory->total = d.memory_total_mib << 20;
  memory->used = d.memory_used_mib << 20;
  memory->free = memory->total - memory->used;
  return kSuccess;
}

nvmlReturn_t nvmlDeviceGetUtilizationRates(void* device, Utilization* util) {
  util->gpu = Dev(device)->utilization;
  util->memory = 0;
  return kSuccess;
}

nvmlReturn_t nvmlDeviceGetTemperature(void* device, int sensor, unsigned int* temp) {
  if (sensor != 0) return kInvalidArgument;
  *temp = Dev(device)->temperature;
  return kSuccess;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(void* device, unsigned int* power) {
  *power = Dev(device)->power_mw;
  return kSuccess;
}

nvmlReturn_t nvmlDeviceGetMinorNumber(void* device, unsigned int* minor) {
  *minor = Dev(device)->minor;
  return kSuccess;
}

nvmlReturn_t nvmlDeviceGetPciInfo_v3(void* device, PciInfo* pci) {
  if (Dev(device)->bus_id.empty()) return kNotSupported;
  FillPci(Dev(device)->bus_id, pci);
  return kSuccess;
}

#ifndef FAKE_NVML_OMIT_OPTIONAL
nvmlReturn_t nvmlDeviceGetNumGpuCores(void* device, unsigned int* cores) {
  *cores = Dev(device)->cores;
  return kSuccess;
}

// Links beyond those listed are inactive; 18 exist as on Hopper.
nvmlReturn_t nvmlDeviceGetNvLinkState(void* device, unsigned int link, int* active) {
  if (link >= 18) return kInvalidArgument;
  *active = link < Dev(device)->nvlinks.size() ? 1 : 0;
  return kSuccess;
}

nvmlReturn_t nvmlDeviceGetNvLinkRemotePciInfo_v2(void* device, unsigned int link, PciInfo* pci) {
  if (link >= Dev(device)->nvlinks.size()) return kInvalidArgument;
  FillPci(Dev(device)->nvlinks[link], pci);
  return kSuccess;
}

nvmlReturn_t nvmlDeviceGetTotalEccErrors(void* device, int error_type, int counter_type, unsigned long long* count) {
  // Only uncorrected (1) volatile (0) errors are scripted; the rest read 0.
  *count = (error_type == 1 && counter_type == 0) ? Dev(device)->ecc_uncorrected : 0;
  return kSuccess;
}
#endif

}  // extern "C"
