// Metrics of one simulation: job completion times, queueing, makespan,
// time-weighted device utilisation, and the invariants every run must keep.
#ifndef ICOS_SIM_METRICS_H_
#define ICOS_SIM_METRICS_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "nlohmann/json.hpp"
#include "sim/simulator.h"
#include "sim/trace.h"

namespace icos::sim {

// Averages are over jobs that finished; times in seconds.
struct Summary {
  std::string policy;
  int64_t jobs = 0;  // in the trace
  int64_t finished = 0;
  int64_t rejected = 0;  // could never fit the cluster
  double avg_jct_s = 0;
  double median_jct_s = 0;
  double p99_jct_s = 0;
  double avg_queue_s = 0;      // arrival to first start
  double makespan_s = 0;       // first arrival to last finish
  double avg_utilisation = 0;  // time-weighted allocated share of all devices over the makespan
  // Mean isolated duration of the finished jobs: no policy's average JCT can be lower.
  double lower_bound_jct_s = 0;
  // Finish-time fairness (Themis, Mahajan et al., NSDI'20): rho = JCT over the
  // job's isolated duration stretched by its contention, max(1, gpus x N / C),
  // where N is the average number of jobs in the system during the job's life
  // and C the cluster's devices (a job asking at most its 1/N share would run
  // as if alone). rho <= 1 is fair; mean and worst over finished jobs.
  double ftf_mean = 0;
  double ftf_worst = 0;
  // Runtime estimates made at arrival, over finished jobs that had one:
  // median |estimate - duration| and the share within a factor 2 of it.
  std::string estimator;
  int64_t estimated = 0;
  double est_median_abs_error_s = 0;
  double est_within_2x = 0;
  double est_final_within_2x = 0;  // the estimates last held (after burst revisions)
  int32_t models_trained = 0;
  double train_wall_s = 0;
  int64_t preemptions = 0;
  int64_t migrations = 0;
  // Allocated device-hours, and those of them that stops threw away (work
  // since the last checkpoint, restores): SimResult's.
  double gpu_hours_used = 0;
  double gpu_hours_lost = 0;
  // The fault model's (SimOptions::device_mtbf_h): node failures, the runs
  // they ended and the work those threw away (part of gpu_hours_lost).
  int64_t faults = 0;
  int64_t fault_stops = 0;
  double gpu_hours_lost_to_faults = 0;
  int64_t rack_faults = 0;
  double node_hours_down = 0;
  int64_t events = 0;
  int64_t passes = 0;
  double wall_s = 0;
};

Summary Summarize(const SimResult& result);

// Checks what every run must keep: every job finished or was rejected as never
// fitting; no job finished before arrival + isolated duration on its fastest
// allowed type; utilisation never above 1. The error names the first offender.
absl::Status CheckInvariants(const std::vector<SimJob>& jobs, const SimResult& result);

nlohmann::ordered_json ToJson(const Summary& s);

// `t_s,used_devices,utilisation` rows, one per change.
void WriteUtilisationCsv(const SimResult& result, std::ostream& out);
// `t_s,utilisation` rows: the time-weighted mean allocated share in each of
// `bins` equal slices of [first arrival, last finish], for plots.
void WriteUtilisationBinnedCsv(const SimResult& result, std::ostream& out, int bins = 600);
// `jct_s,cdf` rows: the empirical distribution of JCT over finished jobs,
// thinned to at most `points` rows (the last always the maximum).
void WriteJctCdfCsv(const SimResult& result, std::ostream& out, int points = 2'000);
// One row per job (what sacct shows): `id,arrival_s,gpus,duration_s,estimate_s,
// final_estimate_s,first_start_s,finish_s,jct_s,preemptions`; -1 where a job
// never started or finished or had no estimate.
void WriteJobsCsv(const SimResult& result, std::ostream& out);

// Average JCT of the finished jobs with first <= id < last (e.g. Gavel's jobs 4000-5000).
double AverageJct(const SimResult& result, int64_t first, int64_t last);

}  // namespace icos::sim

#endif  // ICOS_SIM_METRICS_H_
