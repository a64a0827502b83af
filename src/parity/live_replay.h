// The live half of the parity check (issue #18): a trace run through the real
// controller — its store, scheduling loop body, bind and preemption paths —
// on a fake clock, with simulated agents whose tasks run for the trace's
// durations. Compare its outcome with sim::Simulate on the same trace and
// policy: what differs is where the cluster and the simulator disagree.
//
// The agents behave as `icos agent` does towards the controller (start every
// assigned task at once, stop every task no longer assigned, report each
// heartbeat every task they hold) but take no time: a task starts the instant
// it is assigned. A task's run time follows the simulator's model exactly:
// remaining isolated work over the relative speed of its device type, plus
// the restore delay after a stop.
//
// What this does not exercise: HTTP (the calls are in-process), real
// processes, a clock that moves during a pass.
//
// Thread-safety: ReplayLive is a pure function of its arguments (it makes its
// own store, clock and controller).
#ifndef ICOS_PARITY_LIVE_REPLAY_H_
#define ICOS_PARITY_LIVE_REPLAY_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/cluster.h"
#include "core/model/job.h"
#include "sim/simulator.h"
#include "sim/trace.h"

namespace icos::parity {

struct ReplayOptions {
  std::string policy = "default";  // core::PolicyPreset name, as `icos server --policy`
  double restore_delay_s = 30.0;   // as sim::SimOptions::restore_delay_s
  // Scheduling passes at one instant while they still change something
  // (the simulator's max_passes_per_instant).
  int max_passes_per_instant = 8;
};

// Runs `jobs` (ids 0..n-1, sorted by arrival) on `nodes` through a
// Controller. The result has the simulator's shape (sim::JobOutcome per job,
// times in seconds since the trace's start) so the two compare field by field.
absl::StatusOr<sim::SimResult> ReplayLive(const std::vector<core::Node>& nodes, const std::vector<sim::SimJob>& jobs,
                                          const ReplayOptions& options);

// The spec (JSON) the live run submits for `job`, the simulator's view of a
// trace job (sim::ToCoreJob): the same groups, requests and device choices,
// named `name`, with `estimate_s` as its runtime_estimate (0: none).
std::string SpecFor(const core::Job& job, const std::string& name, int64_t estimate_s);

// Makes `jobs` submittable: a live job says which queue it is in and asks for
// CPU and memory, which traces often leave out. Jobs without them get the
// queue "default" and a core and 1 GiB per device (per job without devices).
// Run times are rounded up to whole seconds, as a spec's runtime_estimate is.
// Jobs get a user and a name where they have none, and their submission time
// is the fake clock's (what a run-time estimator learns from).
// Run both sides on the prepared trace.
void PrepareForLive(std::vector<sim::SimJob>& jobs);

// A small trace that exercises a policy: n jobs of 1-8 devices, 1 min to 2 h
// long, arriving faster than they finish (so jobs queue, backfill and, for
// the preempting policies, preempt), from seed. Heterogeneous: Gavel-style
// throughputs on V100, P100 and K80, every job on every type at its own speed.
std::vector<sim::SimJob> MixedTrace(int n, uint64_t seed, bool heterogeneous);

// How two runs of one trace compare.
struct ParityReport {
  int64_t jobs = 0;
  int64_t identical = 0;  // same first start, same first placement, same finish (within tolerance)
  double max_start_diff_s = 0;
  double max_jct_diff_s = 0;
  int64_t placement_diffs = 0;
  int64_t first_diff_job = -1;  // the earliest-arriving job that differs; -1: none
  std::string first_diff;       // what differs about it
};
ParityReport Compare(const sim::SimResult& simulated, const sim::SimResult& live, double tolerance_s);

}  // namespace icos::parity

#endif  // ICOS_PARITY_LIVE_REPLAY_H_
