// Synthetic clusters and workloads, deterministic for a seed. Used by the
// benchmarks, the demo of the `icos` binary and the property tests; the trace
// simulator will use it when no trace is given.
#ifndef ICOS_SIM_SYNTHETIC_H_
#define ICOS_SIM_SYNTHETIC_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/model/snapshot.h"

namespace icos::sim {

struct ClusterSpec {
  int32_t nodes = 16;
  int32_t devices_per_node = 8;
  int32_t islands_per_node = 2;  // devices split evenly into islands
  int32_t numa_per_node = 2;
  int32_t nodes_per_rack = 32;
  int32_t racks_per_superpod = 8;
  int64_t cpu_milli = 128'000;
  int64_t memory_mib = 1'024 * 1'024;
  // Device types (vendor, model); node i holds only types[i % size].
  std::vector<std::pair<std::string, std::string>> types = {
      {"nvidia", "A100-80G"},  {"nvidia", "H100"},      {"ascend", "910B"}, {"ascend", "910C"},
      {"cambricon", "MLU370"}, {"cambricon", "MLU590"}, {"hygon", "K100"},  {"hygon", "Z100"}};
  int64_t device_memory_mib = 65'536;
};

std::vector<core::Node> MakeCluster(const ClusterSpec& spec);

struct WorkloadSpec {
  uint64_t seed = 1;
  int32_t jobs = 100;
  int64_t first_id = 1;
  int64_t submit_ms = 0;             // all jobs submitted at or after this
  int32_t max_devices = 64;          // largest job (whole devices); >8 spans nodes in tasks of 8
  double fractional_share = 0.0;     // share of jobs asking for part of one device
  double heterogeneous_share = 0.3;  // share of jobs accepting two models with throughputs
  std::vector<std::string> queues = {"default"};
  int32_t priorities = 3;  // priorities drawn from 0..priorities-1
};

// Pending jobs whose selectors name the vendors of `cluster`.
std::vector<core::Job> MakeJobs(const ClusterSpec& cluster, const WorkloadSpec& spec);

// Fills `nodes` with `count` running jobs of 1..8 devices placed directly on
// free devices (not through the scheduler), for benchmarks that need a busy
// cluster. Stops early when nothing more fits.
std::vector<core::RunningJob> MakeRunning(const ClusterSpec& cluster, const std::vector<core::Node>& nodes,
                                          int32_t count, uint64_t seed, int64_t first_id, int64_t now_ms);

}  // namespace icos::sim

#endif  // ICOS_SIM_SYNTHETIC_H_
