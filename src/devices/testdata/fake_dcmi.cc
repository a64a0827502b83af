// A stand-in for Huawei's libdcmi.so that tests load through AscendPlugin's
// library_path. It exports the DCMI symbols AscendPlugin uses with the same C
// ABI and answers from a JSON file named by FAKE_DCMI_CONFIG, read at each
// dcmi_init:
//
//   {"fail_init": -8005,                       // optional: dcmi_init returns this
//    "cards": [{"id": 0, "chips": [{"name": "910B3", "aicore": 20,
//        "hbm_total_mb": 65536, "hbm_used_mb": 3000, "ddr_total_mb": 0,
//        "util": 12, "temp": 45, "power_dw": 905, "health": 0,
//        "logic_id": 0, "phy_id": 0, "bus": "0000:c1:00.0",
//        "hccs": 0}]}]}                        // chips with one "hccs" id are HCCS-linked
//
// Variants: FAKE_DCMI_OMIT_HEALTH leaves out dcmi_get_device_health (a
// required symbol); FAKE_DCMI_OMIT_OPTIONAL leaves out the HBM, topology and
// logic-id calls (optional ones).
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

struct Chip {
  std::string name = "910B3";
  unsigned aicore = 20;
  unsigned long long hbm_total_mb = 65536, hbm_used_mb = 0, ddr_total_mb = 0;
  unsigned util = 0;
  int temp = 40, power_dw = 900;
  unsigned health = 0;
  int logic_id = -1, phy_id = -1, hccs = -1;
  std::string bus;
};
struct Card {
  int id = 0;
  std::vector<Chip> chips;
};

std::vector<Card> g_cards;
bool g_initialized = false;
constexpr int kErrInvalidParam = -8001;
constexpr int kErrInvalidDeviceId = -8007;
constexpr int kErrUninitialized = -8005;

int LoadConfig() {
  g_cards.clear();
  const char* path = std::getenv("FAKE_DCMI_CONFIG");
  if (path == nullptr) return 0;
  try {
    std::ifstream in(path);
    if (!in) return -8020;
    nlohmann::json config = nlohmann::json::parse(in);
    if (config.contains("fail_init")) return config["fail_init"].get<int>();
    int next_logic = 0;
    for (const auto& c : config.value("cards", nlohmann::json::array())) {
      Card card;
      card.id = c.value("id", static_cast<int>(g_cards.size()));
      for (const auto& x : c.value("chips", nlohmann::json::array())) {
        Chip chip;
        chip.name = x.value("name", chip.name);
        chip.aicore = x.value("aicore", chip.aicore);
        chip.hbm_total_mb = x.value("hbm_total_mb", chip.hbm_total_mb);
        chip.hbm_used_mb = x.value("hbm_used_mb", chip.hbm_used_mb);
        chip.ddr_total_mb = x.value("ddr_total_mb", chip.ddr_total_mb);
        chip.util = x.value("util", chip.util);
        chip.temp = x.value("temp", chip.temp);
        chip.power_dw = x.value("power_dw", chip.power_dw);
        chip.health = x.value("health", chip.health);
        chip.logic_id = x.value("logic_id", next_logic);
        chip.phy_id = x.value("phy_id", chip.logic_id);
        chip.hccs = x.value("hccs", chip.hccs);
        chip.bus = x.value("bus", "");
        ++next_logic;
        card.chips.push_back(chip);
      }
      g_cards.push_back(card);
    }
  } catch (...) {
    g_cards.clear();
    return -8020;
  }
  return 0;
}

Chip* Find(int card_id, int device_id) {
  for (Card& c : g_cards) {
    if (c.id == card_id && device_id >= 0 && device_id < static_cast<int>(c.chips.size())) return &c.chips[device_id];
  }
  return nullptr;
}

struct ChipInfo {
  unsigned char chip_type[32], chip_name[32], chip_ver[32];
  unsigned int aicore_cnt;
};
struct HbmInfo {
  unsigned long long memory_size;
  unsigned int freq;
  unsigned long long memory_usage;
  int temp;
  unsigned int bandwith_util_rate;
};
struct MemoryInfo {
  unsigned long long memory_size, memory_available;
  unsigned int freq;
  unsigned long hugepagesize, hugepages_total, hugepages_free;
  unsigned int utiliza;
  unsigned char reserve[60];
};
struct PcieInfoAll {
  unsigned int venderid, subvenderid, deviceid, subdeviceid;
  int domain;
  unsigned int bdf_busid, bdf_deviceid, bdf_funcid;
  unsigned char reserve[32];
};

int CardList(int* card_num, int* card_list, int list_len) {
  if (!g_initialized) return kErrUninitialized;
  if (card_num == nullptr || card_list == nullptr) return kErrInvalidParam;
  *card_num = 0;
  for (const Card& c : g_cards) {
    if (*card_num >= list_len) break;
    card_list[(*card_num)++] = c.id;
  }
  return 0;
}

}  // namespace

#define CHIP_OR_FAIL(card, dev)                 \
  if (!g_initialized) return kErrUninitialized; \
  Chip* chip = Find(card, dev);                 \
  if (chip == nullptr) return kErrInvalidDeviceId;

extern "C" {

int dcmi_init(void) {
  int rc = LoadConfig();
  g_initialized = rc == 0;
  return rc;
}

int dcmi_get_card_list(int* card_num, int* card_list, int list_len) { return CardList(card_num, card_list, list_len); }
int dcmi_get_card_num_list(int* card_num, int* card_list, int list_len) {
  return CardList(card_num, card_list, list_len);
}

int dcmi_get_device_num_in_card(int card_id, int* device_num) {
  if (!g_initialized) return kErrUninitialized;
  for (const Card& c : g_cards) {
    if (c.id == card_id) {
      *device_num = static_cast<int>(c.chips.size());
      return 0;
    }
  }
  return kErrInvalidDeviceId;
}

#ifndef FAKE_DCMI_OMIT_HEALTH
int dcmi_get_device_health(int card_id, int device_id, unsigned int* health) {
  CHIP_OR_FAIL(card_id, device_id);
  *health = chip->health;
  return 0;
}
#endif

int dcmi_get_device_chip_info(int card_id, int device_id, ChipInfo* info) {
  CHIP_OR_FAIL(card_id, device_id);
  std::memset(info, 0, sizeof(*info));
  std::strncpy(reinterpret_cast<char*>(info->chip_type), "Ascend", sizeof(info->chip_type) - 1);
  std::strncpy(reinterpret_cast<char*>(info->chip_name), chip->name.c_str(), sizeof(info->chip_name) - 1);
  std::strncpy(reinterpret_cast<char*>(info->chip_ver), "V1", sizeof(info->chip_ver) - 1);
  info->aicore_cnt = chip->aicore;
  return 0;
}

int dcmi_get_device_memory_info_v3(int card_id, int device_id, MemoryInfo* info) {
  CHIP_OR_FAIL(card_id, device_id);
  std::memset(info, 0, sizeof(*info));
  info->memory_size = chip->ddr_total_mb;
  info->memory_available = chip->ddr_total_mb;
  return 0;
}

int dcmi_get_device_utilization_rate(int card_id, int device_id, int input_type, unsigned int* rate) {
  CHIP_OR_FAIL(card_id, device_id);
  if (input_type != 2) return -8255;  // only AI Core is scripted
  *rate = chip->util;
  return 0;
}

int dcmi_get_device_temperature(int card_id, int device_id, int* temperature) {
  CHIP_OR_FAIL(card_id, device_id);
  *temperature = chip->temp;
  return 0;
}

int dcmi_get_device_power_info(int card_id, int device_id, int* power) {
  CHIP_OR_FAIL(card_id, device_id);
  *power = chip->power_dw;
  return 0;
}

int dcmi_get_device_pcie_info_v2(int card_id, int device_id, PcieInfoAll* info) {
  CHIP_OR_FAIL(card_id, device_id);
  if (chip->bus.empty()) return -8255;
  std::memset(info, 0, sizeof(*info));
  unsigned domain = 0, bus = 0, dev = 0, fn = 0;
  if (std::sscanf(chip->bus.c_str(), "%x:%x:%x.%x", &domain, &bus, &dev, &fn) != 4) return kErrInvalidParam;
  info->venderid = 0x19e5;  // Huawei
  info->deviceid = 0xd802;
  info->domain = static_cast<int>(domain);
  info->bdf_busid = bus;
  info->bdf_deviceid = dev;
  info->bdf_funcid = fn;
  return 0;
}

int dcmi_get_device_phyid_from_logicid(unsigned int logicid, unsigned int* phyid) {
  if (!g_initialized) return kErrUninitialized;
  for (const Card& c : g_cards) {
    for (const Chip& chip : c.chips) {
      if (chip.logic_id == static_cast<int>(logicid)) {
        *phyid = static_cast<unsigned>(chip.phy_id);
        return 0;
      }
    }
  }
  return kErrInvalidDeviceId;
}

#ifndef FAKE_DCMI_OMIT_OPTIONAL
int dcmi_get_device_hbm_info(int card_id, int device_id, HbmInfo* info) {
  CHIP_OR_FAIL(card_id, device_id);
  std::memset(info, 0, sizeof(*info));
  info->memory_size = chip->hbm_total_mb;
  info->memory_usage = chip->hbm_used_mb;
  return 0;
}

int dcmi_get_device_logic_id(int* logic_id, int card_id, int device_id) {
  CHIP_OR_FAIL(card_id, device_id);
  *logic_id = chip->logic_id;
  return 0;
}

int dcmi_get_topo_info_by_device_id(int card1, int dev1, int card2, int dev2, int* topo_type) {
  if (!g_initialized) return kErrUninitialized;
  Chip* a = Find(card1, dev1);
  Chip* b = Find(card2, dev2);
  if (a == nullptr || b == nullptr) return kErrInvalidDeviceId;
  if (a == b) {
    *topo_type = 0;  // SELF
  } else if (a->hccs >= 0 && a->hccs == b->hccs) {
    *topo_type = 3;  // HCCS
  } else {
    *topo_type = 1;  // SYS
  }
  return 0;
}
#endif

}  // extern "C"
