// Jobs as icos::core sees them: gangs of task groups with per-replica requests,
// device selectors and placement wishes, plus what is running where.
#ifndef ICOS_CORE_MODEL_JOB_H_
#define ICOS_CORE_MODEL_JOB_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/ids.h"

namespace icos::core {

// One acceptable device type for a task group. An empty `model` accepts every
// model of the vendor; an empty `vendor` accepts any device at all.
// `throughput` is this job's relative speed on that type (any unit, compared
// only within one job); 0 means "unknown", treated as 1.
struct DeviceChoice {
  std::string vendor;
  std::string model;
  double throughput = 0.0;
};

// Where the replicas of one task group should sit relative to each other.
enum class Affinity {
  kNone,        // anywhere; topology-aware placement still prefers compact
  kSameIsland,  // each replica's devices within one interconnect island
  kSameNode,    // all replicas on one node
  kSameRack,    // all replicas under one leaf of the network path
  kSpread,      // at most one replica per node
};

// What one replica (one task, one process group) asks for.
// Either `devices` whole devices, or a share of ONE device
// (`device_percent` in 1..99 and/or `device_memory_mib`), never both.
struct TaskRequest {
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  int32_t devices = 0;
  int32_t device_percent = 0;
  int64_t device_memory_mib = 0;

  bool IsFractional() const { return devices == 0 && (device_percent > 0 || device_memory_mib > 0); }
  bool NeedsDevices() const { return devices > 0 || IsFractional(); }
};

// A set of identical replicas. A job is a gang of one or more task groups:
// every group gets at least `min_available` replicas or the job gets nothing.
struct TaskGroup {
  std::string name;
  int32_t replicas = 1;
  int32_t min_available = 0;  // 0 means "all replicas" (a plain gang)
  TaskRequest request;
  std::vector<DeviceChoice> device_choices;  // empty: any device type
  Affinity affinity = Affinity::kNone;
  std::map<std::string, std::string> node_selector;  // all must match node labels

  int32_t MinReplicas() const { return min_available > 0 ? min_available : replicas; }
};

// A job, pending or running. Times are milliseconds on the caller's clock.
struct Job {
  JobId id;
  std::string user;
  std::string queue;
  int32_t priority = 0;  // higher runs first and may preempt lower
  int64_t submit_ms = 0;
  // Expected run time; 0 = unknown. Backfill only trusts jobs that have one.
  int64_t runtime_estimate_ms = 0;
  // How far off that estimate may be: the standard deviation of log(actual /
  // estimate). 0 = unknown (the gittins order assumes its default).
  double runtime_log_sd = 0.0;
  bool preemptible = true;
  // false: it never preempts (or reclaims from) running jobs; it waits for
  // capacity instead (Kubernetes' preemptionPolicy: Never).
  bool preempts = true;
  // Device-seconds of service received so far (Tiresias' attained service).
  double attained_device_s = 0.0;
  // When the job last reported a finished checkpoint, on the caller's clock
  // (0: never). Preempting it loses the work since then, or since its run
  // started if that is later: what the victim choice weighs.
  int64_t checkpoint_ms = 0;
  // It meets the checkpoint contract (its spec's `checkpoint:`; the
  // simulator's --checkpoint-interval): what a stop loses is known, and a
  // time-based preemption (srtf, gittins) must save more than that.
  bool checkpoints = false;
  // How often it was interrupted (preempted, moved, restarted) in the last
  // hour: SchedulerOptions::max_interruptions_per_hour caps it.
  int32_t recent_interruptions = 0;
  std::vector<TaskGroup> groups;
};

// The share of one device a task holds: whole devices hold 100 per cent and all
// of their memory.
struct DeviceSlice {
  int32_t device = 0;  // index into Node::devices
  int32_t percent = 0;
  int64_t memory_mib = 0;
};

// One placed replica: where it runs and what it holds.
struct TaskPlacement {
  int32_t group = 0;    // index into Job::groups
  int32_t replica = 0;  // 0..replicas-1
  int32_t node = 0;     // index into Snapshot::nodes
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  std::vector<DeviceSlice> devices;
  // NUMA nodes whose CPUs the task should be bound to (those of its devices).
  std::vector<int32_t> numa_nodes;
};

// A job that holds resources now.
struct RunningJob {
  Job job;
  int64_t start_ms = 0;
  std::vector<TaskPlacement> tasks;
};

}  // namespace icos::core

#endif  // ICOS_CORE_MODEL_JOB_H_
