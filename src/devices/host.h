// The host's own resources: CPUs, memory and NUMA layout, read from procfs and
// sysfs. This is the whole machine as the kernel sees it; cgroup limits of the
// agent's own process are deliberately ignored, since the agent places tasks
// in their own cgroups.
#ifndef ICOS_DEVICES_HOST_H_
#define ICOS_DEVICES_HOST_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace icos::devices {

struct HostNumaNode {
  int32_t id = 0;         // kernel's node number (node<id> in sysfs)
  std::vector<int> cpus;  // logical CPU ids on this node
  int64_t memory_mib = 0;
};

struct HostResources {
  int32_t cpu_count = 0;                 // online logical CPUs
  int32_t core_count = 0;                // physical cores; 0 unknown (the sysfs reader leaves it)
  int64_t memory_mib = 0;                // MemTotal
  std::vector<HostNumaNode> numa_nodes;  // ascending id; empty when sysfs shows none
};

struct HostOptions {
  std::string proc_root = "/proc";
  std::string sysfs_root = "/sys";
};

// Reads the host. CPUs come from <sysfs>/devices/system/cpu/online, falling
// back to sysconf when that file is absent; memory from <proc>/meminfo, which
// must exist; NUMA nodes from <sysfs>/devices/system/node/node*/{cpulist,meminfo}.
absl::StatusOr<HostResources> ReadHost(const HostOptions& options = {});

// Parses a kernel CPU list such as "0-3,8,10-11" into ids.
absl::StatusOr<std::vector<int>> ParseCpuList(std::string_view text);

}  // namespace icos::devices

#endif  // ICOS_DEVICES_HOST_H_
