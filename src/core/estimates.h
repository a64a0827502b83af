// What the scheduler is told a job will still take (Job::runtime_estimate_ms),
// from its estimate and its runs so far. One rule, for the simulator and the
// live cluster alike: a policy measured in `icos sim` sees the same numbers in
// production.
//
// A stopped job (preempted, moved) is taken to resume from where it stopped
// (it checkpoints) and to pay SchedulerOptions::restore_cost_ms first. Policies
// that rank by time left (srtf, sjf, EASY backfill's shadow times) get the
// estimated work left; those that rank by the whole run (gittins:
// OrderPolicy::ranks_by_total_estimate) get the whole estimate, and the core
// accounts for the age itself.
//
// Thread-safety: pure functions.
#ifndef ICOS_CORE_ESTIMATES_H_
#define ICOS_CORE_ESTIMATES_H_

#include <cstdint>

namespace icos::core {

struct RunHistory {
  // The job's whole isolated run time on its fastest allowed type, seconds;
  // <= 0: unknown.
  double estimate_s = 0;
  // Isolated work done in its earlier runs (fastest-type seconds): each run's
  // working time (after its restore) times the relative speed of its type.
  double worked_s = 0;
  // Whether its next run (a pending job) or this one (a running job) began
  // by restoring: it ran before.
  bool restore = false;
};

// Work left, estimated: the estimate less the work done; for a job that
// outlived its estimate, as long again as it has worked (long jobs tend to run
// longer), at least 1 s, rather than nothing (which would make it look
// shortest of all). 0 when unknown.
double EstimatedLeftS(const RunHistory& h);

// The runtime_estimate_ms of a pending job; 0 when unknown.
int64_t PendingEstimateMs(const RunHistory& h, bool total, int64_t restore_cost_ms);

// The runtime_estimate_ms of a running job, counted from its run's start (the
// core adds it to RunningJob::start_ms): the restore, then the work left at
// `speed` (relative to the fastest type, <= 1). 0 when unknown.
int64_t RunningEstimateMs(const RunHistory& h, bool total, int64_t restore_cost_ms, double speed);

// Seconds to whole milliseconds, rounding up (a job never ends early).
int64_t SecondsToMs(double s);

}  // namespace icos::core

#endif  // ICOS_CORE_ESTIMATES_H_
