// The cluster as icos::core sees it: nodes, their devices, host topology and
// place in the network. Plain values with no behaviour; the scheduler builds its
// own indexed state (resources/cluster_state.h) from them.
#ifndef ICOS_CORE_MODEL_CLUSTER_H_
#define ICOS_CORE_MODEL_CLUSTER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace icos::core {

// Share capacity of a whole device, in the units a fractional request uses
// (HAMi-style: compute in per cent of the device, memory in MiB).
inline constexpr int32_t kWholeDevicePercent = 100;

// One accelerator. `vendor` is free text ("nvidia", "ascend", "cambricon",
// "hygon", "amd", "kunlunxin", "moorethreads", ...); `model` names the product
// ("A100-80G", "910B", "MLU370"). The scheduler treats vendor/model as the
// device type: a job may only land on types its selector allows.
struct Device {
  std::string vendor;
  std::string model;
  int64_t memory_mib = 0;     // device memory; the capacity fractional requests split
  int32_t compute_units = 0;  // SMs / AI cores / clusters; informational
  bool healthy = true;        // false: never scheduled, reported in reasons
  bool drained = false;       // operator took it out of scheduling
  // Interconnect island on its node (NVLink / HCCS / MLU-Link domain); devices
  // with the same island id talk at full bandwidth. -1: no island information,
  // each device is then treated as its own island.
  int32_t island = -1;
  int32_t numa_node = 0;     // index into Node::numa_nodes; host memory closest to the device
  int32_t pcie_switch = -1;  // devices under the same switch share PCIe bandwidth; -1 unknown
  // Whether fractional (shared) requests may use this device at all.
  bool shareable = true;
  // The index its vendor's runtime gives it (what CUDA_VISIBLE_DEVICES or
  // ASCEND_RT_VISIBLE_DEVICES name): on a node with several vendors it
  // differs from its index on the node. -1: unknown. Shown, never scheduled on.
  int32_t runtime_index = -1;
};

// A NUMA node of a host: its CPU capacity. Device locality refers to it by index.
struct NumaNode {
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
};

// One machine. `network_path` places it in the network from the widest group
// to the narrowest, e.g. {"superpod-1", "rack-07"}: any depth, and two nodes
// are "closer" the longer the common prefix of their paths. The last element is
// the rack / leaf switch used by same-rack placement wishes.
struct Node {
  std::string name;
  std::map<std::string, std::string> labels;
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  std::vector<Device> devices;
  std::vector<NumaNode> numa_nodes;  // may be empty: the host is then one NUMA node
  std::vector<std::string> network_path;
  bool schedulable = true;  // false: cordoned / drained / agent lost
};

}  // namespace icos::core

#endif  // ICOS_CORE_MODEL_CLUSTER_H_
