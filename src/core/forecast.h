// When will pending jobs start? Start-time forecasts made by running this
// very scheduler forward from a snapshot: each sample draws every job's run
// time from its estimate's error distribution (log-normal around the
// estimate, with the job's runtime_log_sd: the learned estimator's error,
// or a default when unknown), then applies the scheduler's own decisions
// pass after pass, advancing to the next job end, until the jobs asked about
// have started. The spread of their start times over samples gives P10, P50
// and P90. Work still to come is taken to be like the recent past
// (ForecastOptions::arrival_window_ms), or none at all (as Slurm's squeue
// --start assumes, whose single point uses every running job's time limit).
//
// Pure: the randomness comes from the caller (Noise; learn/seeded_noise.h
// is a seeded one), so a forecast is deterministic for its draws.
// Thread-safe as far as the Noise given is.
#ifndef ICOS_CORE_FORECAST_H_
#define ICOS_CORE_FORECAST_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/snapshot.h"
#include "core/scheduler.h"

namespace icos::core {

struct ForecastOptions {
  int32_t samples = 8;  // 1 with runtime_log_sd 0 everywhere: a point forecast
  // The error of an estimate whose job gives none (runtime_log_sd 0): a user's
  // own estimate or a time limit is often off by a factor of two or more.
  double default_log_sd = 0.7;
  // No error at all (every job ends at its estimate): the point forecast a
  // Slurm-style planner makes.
  bool exact_estimates = false;
  // A job without an estimate runs about this long in a forecast.
  int64_t unknown_runtime_ms = 3'600'000;
  // Stop a sample this far past the snapshot or after this many passes; a job
  // not started by then has no start in that sample.
  int64_t horizon_ms = 14LL * 86'400'000;
  int32_t max_passes = 5'000;
  // Work still to come: each job of the snapshot (pending or running) that
  // was submitted within this window before it is taken to come again one
  // window later, and every window after, as a new job (the recent past
  // repeats). Under a fair-share or shortest-first order later work can go
  // first; without it forecasts are early. 0: nothing more arrives.
  int64_t arrival_window_ms = 0;
};

// Where a forecast's draws come from: the core owns no randomness.
class Noise {
 public:
  virtual ~Noise() = default;
  virtual double Normal() = 0;       // standard normal
  virtual double Exponential() = 0;  // mean 1
};

struct StartForecast {
  JobId job;
  // Start times (the snapshot's clock, ms) at these quantiles of the samples
  // in which it started; -1 when it started in fewer than half of them.
  int64_t p10_ms = -1, p50_ms = -1, p90_ms = -1;
  int32_t started = 0;  // samples in which it started within the horizon
  int32_t samples = 0;
};

// Forecasts for `targets` (pending jobs of `snapshot`; all of them when
// empty), in that order, drawing from `noise` (unused with
// exact_estimates). Fails only when the scheduler fails on a snapshot.
absl::StatusOr<std::vector<StartForecast>> ForecastStarts(const Scheduler& scheduler, const Snapshot& snapshot,
                                                          std::vector<JobId> targets, const ForecastOptions& options,
                                                          Noise& noise);

}  // namespace icos::core

#endif  // ICOS_CORE_FORECAST_H_
