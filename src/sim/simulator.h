// A deterministic discrete-event simulator that drives icos::core, the very
// scheduler the controller runs, with a simulated clock.
//
// Events are arrivals, completions and preemption re-queues. All events of one
// timestamp are applied first; then, if anything can have changed (a job
// arrived or was re-queued, or capacity was freed, and jobs are pending), one
// scheduling pass runs on a core::Snapshot that the simulator keeps up to date
// incrementally (nodes and queues are built once; running and pending jobs are
// moved in and out as they change). Binds start jobs at once; a job's run time
// on a device model is its remaining work divided by its relative speed there
// (from the trace's throughputs; 1 everywhere without them). A preempted (or
// moved) job goes back to the queue and pays `restore_delay_s` when it starts
// again. By default it keeps all its progress (a perfect checkpoint); with
// `checkpoint_interval_s` it keeps only the work up to its run's last
// checkpoint, and the rest is reported as lost device time. With
// `device_mtbf_h`, nodes also fail and come back (the fault model): their
// jobs stop as if preempted, but with no signal to checkpoint on.
//
// Thread-safety: Simulate() is a pure function of its arguments.
#ifndef ICOS_SIM_SIMULATOR_H_
#define ICOS_SIM_SIMULATOR_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/cluster.h"
#include "core/policy_presets.h"
#include "core/scheduler.h"
#include "learn/runtime_estimator.h"
#include "sim/trace.h"

namespace icos::sim {

// A cluster of nvidia devices from a spec: comma-separated items, each
// `GPUSxMODEL` (GPUS devices in nodes of 4) or `NODESxPER_NODExMODEL`,
// e.g. "36xV100,36xP100,36xK80" or "250x8xV100". Nodes get one interconnect
// island each, racks of 32 nodes, 96 cores and 768 GiB. Model order is kept
// (it is the selector order a heterogeneity-agnostic policy tries).
absl::StatusOr<std::vector<core::Node>> ParseClusterSpec(absl::string_view spec);

// Policy names are core::PolicyPreset's (core/policy_presets.h), the same
// table `icos server --policy` reads.
// The estimator a policy name asks for: "learned" for a "-learned" name, else `fallback`.
std::string EstimatorFor(absl::string_view policy, const std::string& fallback);

// Meta's Llama 3 405B pre-training: 419 unexpected interruptions in 54 days
// on 16,384 H100s (Llama 3 paper, section 3.3.4): one per 50,677 GPU-hours.
// Every cause counts (GPUs, memory, network, software, hosts), as each
// stopped the job.
inline constexpr double kLlama3DeviceMtbfH = 16'384.0 * 54 * 24 / 419;

struct SimOptions {
  std::string policy = "default";  // name from core::PolicyPreset, for reports
  core::SchedulerOptions scheduler;
  // "oracle": runtime estimates are the true remaining isolated run time;
  // "none": no estimates (backfill then never trusts a job to end in time).
  // "learned": learn::RuntimeEstimator, estimating each job at its arrival
  // from the jobs finished before it and retrained as jobs finish.
  std::string estimator = "oracle";
  learn::EstimatorOptions learned;
  double restore_delay_s = 30.0;  // checkpoint-restore after a preemption
  // A running job finishes a checkpoint every this many seconds of work (from
  // its run's start after the restore); a stop loses the work since the
  // run's last one. The core sees it as Job::checkpoint_ms. 0: a perfect
  // checkpoint at every stop (nothing lost but the restore).
  double checkpoint_interval_s = 0;
  // Queue::min_run_ms of every queue of the snapshot (given in `queues` or
  // made per SimJob::queue, and the default queue): a run this young is not
  // preempted or moved. 0: no minimum.
  double min_run_s = 0;
  // core::SchedulerOptions::max_interruptions_per_hour, overriding the one in
  // `scheduler`; the simulator counts each job's stops (Job::recent_interruptions).
  // 0: no cap (or whatever `scheduler` says).
  int32_t max_interruptions_per_hour = 0;
  // Queue::usage_half_life_s of every queue (as min_run_s): fair share over
  // time, the same core::UsageHistory the live engine keeps. 0: off (unless
  // `queues` set it).
  int64_t usage_half_life_s = 0;
  // The fault model: each node fails at random times, at a rate of its
  // device count / device_mtbf_h per hour (a Poisson process drawn from
  // fault_seed), and is back repair_s later. Its running jobs stop at once
  // and keep only the work up to their run's last checkpoint (none without
  // checkpoint_interval_s: no signal warns of a fault), then wait in the
  // queue and pay restore_delay_s. 0: no faults. kLlama3DeviceMtbfH is the
  // published rate of a large training cluster.
  double device_mtbf_h = 0;
  double repair_s = 3'600;
  // How long repairs take, with mean repair_s: all the same (kFixed), drawn
  // exponentially, or log-normally with repair_sigma (log-space spread):
  // most repairs are quick and a few take days, as field studies of GPU
  // clusters find. A draw is at most 100 x the mean.
  enum class RepairTimes { kFixed, kExponential, kLogNormal };
  RepairTimes repair_times = RepairTimes::kFixed;
  double repair_sigma = 1.0;
  // Correlated failures: the nodes, in order, form failure domains of
  // rack_nodes each (a rack, a leaf switch, a power feed), each failing as
  // a Poisson process every rack_mtbf_h hours; all its nodes go down at
  // once and come back after one repair (drawn as above). Independent of
  // the nodes' own failures (a node down for either is down). 0: none.
  int32_t rack_nodes = 0;
  double rack_mtbf_h = 0;
  uint64_t fault_seed = 1;
  // Queues of the snapshot; empty: one flat queue per distinct SimJob::queue.
  std::vector<core::Queue> queues;
  // Passes at one timestamp (re-queued victims trigger another); bounds livelock.
  int max_passes_per_instant = 8;
  bool record_utilisation = true;
  // Called at each instant at which jobs arrived, before that instant's
  // pass, with the snapshot the pass is about to see (the arrivals pending in
  // it) and the arrivals' ids: what a forecast made at submission sees
  // (bench/forecast.sh). It must not keep references past the call.
  std::function<void(const core::Snapshot&, const std::vector<JobId>&)> on_arrivals;
};

// What happened to one job.
struct JobOutcome {
  int64_t id = 0;
  double arrival_s = 0;
  double duration_s = 0;  // isolated, on its fastest allowed type
  int32_t gpus = 0;
  double gpu_share = 0;  // devices held while running (0.46 for a 460-milli pod)
  double first_start_s = -1;
  double finish_s = -1;  // -1: did not finish
  int32_t preemptions = 0;
  int32_t fault_stops = 0;  // runs a node failure ended (SimOptions::device_mtbf_h)
  // Device-seconds its stops threw away: device share x (work since the last
  // checkpoint at each stop + restore delays paid).
  double lost_gpu_s = 0;
  // Run-time estimate made at arrival (isolated seconds); the duration itself
  // for the oracle, -1 without estimates.
  double estimate_s = -1;
  double final_estimate_s = -1;  // the last one held: revised when a job of its burst finished
  // Where it first started: DescribePlacement of its tasks then.
  std::string first_placement;
  bool rejected = false;  // the core said it can never fit this cluster
  std::string reason;     // why it was rejected
};

// Allocated device share at a time (from `t_s` until the next sample).
struct UtilSample {
  double t_s = 0;
  double used = 0;  // devices, fractional shares counted as such
};

struct SimResult {
  std::string policy;
  std::string estimator;
  std::vector<JobOutcome> jobs;  // by SimJob id
  std::vector<UtilSample> utilisation;
  double total_devices = 0;
  int64_t events = 0;  // arrivals + completions + re-queues applied
  int64_t passes = 0;  // scheduling passes run
  int64_t binds = 0;
  int64_t preemptions = 0;
  int64_t migrations = 0;               // running jobs moved to a faster type
  double gpu_hours_used = 0;            // allocated device-hours, all runs
  double gpu_hours_lost = 0;            // of those, thrown away by stops (JobOutcome::lost_gpu_s)
  int64_t faults = 0;                   // node failures (SimOptions::device_mtbf_h), a rack's nodes included
  int64_t rack_faults = 0;              // failures of whole racks (SimOptions::rack_mtbf_h)
  double node_hours_down = 0;           // nodes x hours out of service, repairs ended by the last event
  int64_t fault_stops = 0;              // runs they ended
  double gpu_hours_lost_to_faults = 0;  // work those runs threw away (part of gpu_hours_lost)
  double wall_s = 0;                    // real seconds the simulation took
  int32_t models_trained = 0;           // learned estimator: models fitted during the run
  double train_wall_s = 0;              // ... and real seconds spent fitting them
};

// The core's view of a trace job, as the simulator schedules it: one task
// group; whole devices in one task if a node holds them, else the fewest equal
// tasks that each fit a node of `max_per_node` devices; a share of one device
// for gpu_milli < 1000; device choices in `cluster_models` order (the order an
// agnostic policy tries), then models the cluster lacks, with the trace's
// throughputs. No estimate (the caller sets runtime_estimate_ms).
core::Job ToCoreJob(const SimJob& job, const std::vector<std::string>& cluster_models, int32_t max_per_node);

// Where tasks run, in a form two runs of one trace can compare: each task's
// "node:device,device" (node names, device indices on the node), sorted and
// joined with ";". Whatever placed them (the simulator, the live cluster), the
// same placement reads the same.
std::string DescribePlacement(const std::vector<core::Node>& nodes, const std::vector<core::TaskPlacement>& tasks);

// Runs `jobs` (sorted by arrival, ids 0..n-1 as the loaders give them) on
// `nodes`. Fails on a broken snapshot or an invalid job (a converter bug), never
// for jobs that merely cannot fit (those are marked rejected).
absl::StatusOr<SimResult> Simulate(const std::vector<core::Node>& nodes, const std::vector<SimJob>& jobs,
                                   const SimOptions& options);

}  // namespace icos::sim

#endif  // ICOS_SIM_SIMULATOR_H_
