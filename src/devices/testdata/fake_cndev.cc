// A stand-in for Cambricon's libcndev.so that tests load through
// CambriconPlugin's library_path. Same symbol names and C signatures as
// cndev.h; answers from a JSON file named by FAKE_CNDEV_CONFIG, read at each
// cndevInit:
//
//   {"fail_init": 1,                        // optional: cndevInit returns this
//    "cards": [{"name": "MLU370-X8", "memory_total_mib": 49152,
//               "memory_used_mib": 0, "util": 0, "temp": 35, "power_w": 60,
//               "health": 1, "bus": "0000:3b:00.0", "lost": false}]}
//
// Variants: FAKE_CNDEV_OMIT_HEALTH leaves out cndevGetCardHealthState (a
// required symbol); FAKE_CNDEV_OMIT_OPTIONAL leaves out the name, power and
// PCIe calls (optional ones).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

constexpr int kSuccess = 0, kNoDriver = 1, kUninitialized = 4, kInvalidArgument = 5, kInvalidDeviceId = 6, kUnknown = 7;

struct Card {
  std::string name = "MLU370-X8", bus;
  int64_t memory_total_mib = 49152, memory_used_mib = 0;
  int util = 0, temp = 35, power_w = 60, health = 1;
  bool lost = false;
};
std::vector<Card> g_cards;
bool g_initialized = false;

int LoadConfig() {
  g_cards.clear();
  const char* path = std::getenv("FAKE_CNDEV_CONFIG");
  if (path == nullptr) return kNoDriver;
  try {
    std::ifstream in(path);
    if (!in) return kUnknown;
    nlohmann::json config = nlohmann::json::parse(in);
    if (config.contains("fail_init")) return config["fail_init"].get<int>();
    for (const auto& c : config.value("cards", nlohmann::json::array())) {
      Card card;
      card.name = c.value("name", card.name);
      card.bus = c.value("bus", "");
      card.memory_total_mib = c.value("memory_total_mib", card.memory_total_mib);
      card.memory_used_mib = c.value("memory_used_mib", card.memory_used_mib);
      card.util = c.value("util", card.util);
      card.temp = c.value("temp", card.temp);
      card.power_w = c.value("power_w", card.power_w);
      card.health = c.value("health", card.health);
      card.lost = c.value("lost", false);
      g_cards.push_back(card);
    }
  } catch (...) {
    g_cards.clear();
    return kUnknown;
  }
  return kSuccess;
}

// Every query struct begins with the caller's API version.
struct Versioned {
  int version;
};

}  // namespace

#define CARD_OR_FAIL(out, id)                                                        \
  if (!g_initialized) return kUninitialized;                                         \
  if ((out) == nullptr) return kInvalidArgument;                                     \
  if ((id) < 0 || (id) >= static_cast<int>(g_cards.size())) return kInvalidDeviceId; \
  Card& card = g_cards[id];                                                          \
  if (card.lost) return kUnknown;

extern "C" {

int cndevInit(int reserved) {
  if (reserved != 0) return kInvalidArgument;
  int rc = LoadConfig();
  g_initialized = rc == kSuccess;
  return rc;
}

int cndevRelease() {
  if (!g_initialized) return kUninitialized;
  g_initialized = false;
  return kSuccess;
}

const char* cndevGetErrorString(int rc) {
  switch (rc) {
    case kSuccess:
      return "CNDEV_SUCCESS";
    case kNoDriver:
      return "CNDEV_ERROR_NO_DRIVER";
    case 2:
      return "CNDEV_ERROR_LOW_DRIVER_VERSION";
    case kUninitialized:
      return "CNDEV_ERROR_UNINITIALIZED";
    default:
      return "CNDEV_ERROR_UNKNOWN";
  }
}

struct CardInfo {
  int version;
  unsigned number;
};
int cndevGetDeviceCount(CardInfo* info) {
  if (!g_initialized) return kUninitialized;
  info->number = static_cast<unsigned>(g_cards.size());
  return kSuccess;
}

int cndevGetDeviceHandleByIndex(int index, int* handle) {
  if (!g_initialized) return kUninitialized;
  if (index < 0 || index >= static_cast<int>(g_cards.size())) return kInvalidDeviceId;
  *handle = index;
  return kSuccess;
}

#ifndef FAKE_CNDEV_OMIT_HEALTH
struct HealthState {
  int version, health;
};
int cndevGetCardHealthState(HealthState* out, int dev) {
  CARD_OR_FAIL(out, dev);
  out->health = card.health;
  return kSuccess;
}
#endif

struct MemoryInfo {
  int version;
  int64_t total, used;
};
int cndevGetMemoryUsage(MemoryInfo* out, int dev) {
  CARD_OR_FAIL(out, dev);
  out->total = card.memory_total_mib;
  out->used = card.memory_used_mib;
  return kSuccess;
}

struct UtilInfo {
  int version, board, cores[32];
};
int cndevGetDeviceUtilizationInfo(UtilInfo* out, int dev) {
  CARD_OR_FAIL(out, dev);
  out->board = card.util;
  return kSuccess;
}

struct TempInfo {
  int version, board, cluster[8];
};
int cndevGetTemperatureInfo(TempInfo* out, int dev) {
  CARD_OR_FAIL(out, dev);
  out->board = card.temp;
  return kSuccess;
}

#ifndef FAKE_CNDEV_OMIT_OPTIONAL
const char* cndevGetCardNameStringByDevId(int dev) {
  if (dev < 0 || dev >= static_cast<int>(g_cards.size())) return "Unknown";
  return g_cards[dev].name.c_str();
}

struct PowerInfo {
  int version, usage, cap;
};
int cndevGetPowerInfo(PowerInfo* out, int dev) {
  CARD_OR_FAIL(out, dev);
  out->usage = card.power_w;
  return kSuccess;
}

struct PcieInfo {
  int version;
  unsigned subsystem_id, device_id;
  uint16_t vendor, subsystem_vendor;
  unsigned domain, bus, device, function;
  const char* slot;
  int slot_id;
};
int cndevGetPCIeInfo(PcieInfo* out, int dev) {
  CARD_OR_FAIL(out, dev);
  if (card.bus.empty()) return 10;  // CNDEV_ERROR_NOT_SUPPORTED
  unsigned domain = 0, bus = 0, device = 0, fn = 0;
  if (std::sscanf(card.bus.c_str(), "%x:%x:%x.%x", &domain, &bus, &device, &fn) != 4) return kInvalidArgument;
  out->vendor = 0xcabc;  // Cambricon
  out->domain = domain;
  out->bus = bus;
  out->device = device;
  out->function = fn;
  return kSuccess;
}
#endif

}  // extern "C"
