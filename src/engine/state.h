// What the cluster engine keeps of each job, task and node: the durable
// record (what the store holds), the parsed spec, the scheduler's view and the
// memory-only bookkeeping around them. Plain data; the rules that move it are
// engine.h's.
#ifndef ICOS_ENGINE_STATE_H_
#define ICOS_ENGINE_STATE_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "api/job_spec.h"
#include "core/model/cluster.h"
#include "core/model/job.h"
#include "protocol/wire.h"
#include "store/records.h"

namespace icos::engine {

// How busy the devices a job holds were, from its agents' health checks
// (every 5 s): the basis for telling a user a job asks for more than it uses.
struct DeviceUse {
  double busy_pct_sum = 0;       // over samples: device compute utilisation, per cent
  int64_t samples = 0;           // device x report pairs with a known utilisation
  int64_t memory_peak_mib = -1;  // the most memory in use on any of its devices; -1 unknown
  int64_t memory_total_mib = 0;  // of that device
  bool shares = false;           // it holds a fractional slice (the figures include co-tenants)
  double BusyPct() const { return samples > 0 ? busy_pct_sum / static_cast<double>(samples) : -1; }
  // One line: the figures, and a right-sizing hint for whole devices left
  // mostly idle ("" while nothing was sampled).
  std::string Describe() const;
};

struct TaskEntry {
  store::TaskRecord rec;
  core::TaskPlacement placement;
  wire::Assignment assignment;
};

struct JobEntry {
  store::JobRecord rec;
  api::JobSpec spec;
  core::Job core;
  std::vector<TaskEntry> tasks;    // every attempt's, ordered
  std::vector<int64_t> waits_for;  // preempted jobs that must stop first
  double learned_estimate_s = 0;   // 0: none (learning off, too little history, or not estimated yet)
  double learned_log_sd = 0;
  int32_t devices = 0;  // whole devices, plus one per fractional slice (what the estimator keys on)
  // Moves on every change a pass must not miss between its snapshot and
  // its binds (a hold, an update): such a bind is stale.
  int64_t revision = 0;
  DeviceUse device_use;  // memory only: sampled since this controller started
};

struct NodeEntry {
  store::NodeRecord rec;
  core::Node node;
  std::string agent_url;
  std::string log_key;
  uint64_t version = 1;                  // assignments changed (watchers wake)
  uint64_t generation = 0;               // registrations: a pass's view of the node is stale after one
  bool drained = false;                  // an operator took it out of scheduling
  std::set<int32_t> drained_devices;     // device indices an operator took out
  std::string unhealthy_reason;          // the agent's health-check program failed
  std::vector<wire::DeviceUsage> usage;  // from the last heartbeat that carried it; memory only
  // Heartbeats in order (memory only): the agent process that sent the last
  // one applied, its number, and the processes it replaced. A heartbeat
  // that took long (a slow commit) can be overtaken by the agent's next
  // one; applied after it, its older task list would fail tasks started
  // in between as lost.
  std::string beat_instance;
  int64_t beat_seq = 0;
  std::vector<std::string> retired_instances;  // the last few
};

// What a job's tasks say about its runs so far, as the scheduler reads it:
// its attained device-seconds over every attempt (Tiresias' attained
// service, by which LAS orders and preempts), when its current run began (a
// restarted or preempted job's end counts from there), and its
// runtime_estimate_ms by the one estimate rule (core/estimates.h), pending
// or running.
struct JobRuns {
  double attained_device_s = 0;
  bool running = false;  // its current attempt has tasks (started or about to)
  int64_t run_start_ms = 0;
  int64_t running_estimate_ms = 0;
  int64_t pending_estimate_ms = 0;
  // Work done in its ended runs (fastest-type seconds, restores excluded):
  // for an ended job, all it did.
  double worked_s = 0;
  // Earlier runs that ended in the last hour (preempted, moved, failed,
  // requeued): SchedulerOptions::max_interruptions_per_hour caps them.
  int32_t interruptions_last_hour = 0;
};

}  // namespace icos::engine

#endif  // ICOS_ENGINE_STATE_H_
