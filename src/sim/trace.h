// Trace loaders for the simulator: Microsoft Philly (job CSV), Alibaba's 2023
// GPU-sharing trace "openb" (node and pod CSVs), Gavel's heterogeneity data
// (throughput JSON and the Philly-derived msr traces), and a synthetic
// generator of Gavel's published job distribution.
//
// Every loader reads the whole input, never crashes on bad data and returns an
// error naming the file and the 1-based line (for CSV / TSV) of the first
// malformed row. A trace is a vector of SimJob sorted by arrival (stable on
// input order), with ids 0..n-1 in that order.
#ifndef ICOS_SIM_TRACE_H_
#define ICOS_SIM_TRACE_H_

#include <cstdint>
#include <istream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/model/cluster.h"

namespace icos::sim {

// One job of a trace, independent of any cluster.
struct SimJob {
  int64_t id = 0;          // position in the arrival-sorted trace
  std::string name;        // as the trace names it (pod name, job type), may be empty
  double arrival_s = 0.0;  // seconds since the first job of the trace
  // Isolated run time in seconds on the reference type: the fastest allowed type
  // when `throughput` is set, any type otherwise.
  double duration_s = 0.0;
  int32_t gpus = 1;          // devices; 0: the job needs no accelerator
  int32_t gpu_milli = 1000;  // share of each device, 1000 = whole (openb: < 1000 with gpus == 1)
  int64_t cpu_milli = 0;     // whole job (openb); 0: not constrained
  int64_t memory_mib = 0;
  // Allowed device models (e.g. "V100M16"); empty: any.
  std::vector<std::string> models;
  // Gavel: the job's throughput (steps/s) on each model it may use; empty: the
  // job runs equally fast everywhere. Run time on model m is
  // duration_s * max(throughput) / throughput[m].
  std::map<std::string, double> throughput;
  std::string queue;  // virtual cluster / tenant; empty: default
  std::string user;   // empty where the trace has none
  // Wall-clock submission time (Unix seconds, UTC) where the trace has one;
  // the learned runtime estimator reads hour of day and day of week from it.
  double submit_unix_s = -1;
};

// Where the public traces are: $ICOS_TRACES if set, else the first
// shared/data/traces found beside the current directory or one of its
// parents (the layout of a checkout next to ../shared); "" when none is.
std::string FindTracesDir();

// --- Philly -----------------------------------------------------------------------
// `timestamp,duration,num_gpus,gpu_time,cluster`; arrival = seconds since the
// earliest timestamp. `source` names the input in errors.
absl::StatusOr<std::vector<SimJob>> ParsePhilly(std::istream& in, absl::string_view source);
absl::StatusOr<std::vector<SimJob>> LoadPhilly(const std::string& path);

// --- Alibaba openb ----------------------------------------------------------------
// Node list `sn,cpu_milli,memory_mib,gpu,model` as core nodes of nvidia/<model>
// devices (CPU-only rows give nodes without devices), racks of 32 nodes.
absl::StatusOr<std::vector<core::Node>> ParseOpenbNodes(std::istream& in, absl::string_view source);
absl::StatusOr<std::vector<core::Node>> LoadOpenbNodes(const std::string& path);
// Pod list; arrival = creation_time, duration = deletion_time - scheduled_time
// (deletion - creation for pods never scheduled); gpu_spec "A|B" -> models.
// The header names any subset of FGD's columns (name, cpu_milli,
// memory_mib, num_gpu, gpu_milli, gpu_spec, qos, pod_phase, creation_time,
// deletion_time, scheduled_time), in any order, as FGD's workload variants
// ship them; an unknown column is an error. Absent ones take defaults (0;
// gpu_milli 1000 for GPU pods; no model constraint; no duration without
// deletion_time), and `defaulted` gets their names (pod_phase, unused, is
// never listed).
absl::StatusOr<std::vector<SimJob>> ParseOpenbPods(std::istream& in, absl::string_view source,
                                                   std::vector<std::string>* defaulted = nullptr);
absl::StatusOr<std::vector<SimJob>> LoadOpenbPods(const std::string& path,
                                                  std::vector<std::string>* defaulted = nullptr);

// --- Gavel ---------------------------------------------------------------------------
// Isolated throughput (steps/s) by device model ("K80", "P100", "V100"), then
// (job type, scale = GPUs) as in simulation_throughputs.json.
using GavelThroughputs = std::map<std::string, std::map<std::pair<std::string, int32_t>, double>>;
absl::StatusOr<GavelThroughputs> ParseGavelThroughputs(absl::string_view json, absl::string_view source);
absl::StatusOr<GavelThroughputs> LoadGavelThroughputs(const std::string& path);
// One msr-seed0/<vc>.trace: tab-separated `job_type, command, working_dir_arg,
// needs_data_dir, total_steps, arrival_s, scale_factor`. Appends to `jobs`
// (unsorted, ids unset) with queue = `queue`. A job type/scale missing from
// `tputs` on every model is an error.
absl::Status ParseGavelTrace(std::istream& in, absl::string_view source, const std::string& queue,
                             const GavelThroughputs& tputs, std::vector<SimJob>& jobs);
// All *.trace files of `dir` (by name; the file stem is the queue), sorted by arrival.
absl::StatusOr<std::vector<SimJob>> LoadGavelTraceDir(const std::string& dir, const GavelThroughputs& tputs);

// --- synthetic -------------------------------------------------------------------------
// Gavel's synthetic jobs (Narayanan et al., OSDI'20, §7): duration
// 60*10^U(1.5,3) s with probability 0.8, else 60*10^U(3,4) s; 1/2/4/8 GPUs at
// 70/10/15/5 % (or all 1 GPU); Poisson arrivals at `jobs_per_hour`. With
// throughputs, each job gets a job type drawn uniformly from those measured at
// its scale. The drawn run time is on the V100, Gavel's reference type (its job
// has run time x V100 throughput steps); `duration_s` is then the run time on
// the job's fastest model, shorter where another model beats the V100.
// Deterministic for a seed.
struct SyntheticSpec {
  uint64_t seed = 0;
  int32_t jobs = 1000;
  double jobs_per_hour = 4.0;  // 0: all jobs arrive at time 0 (a static trace)
  bool single_gpu = false;
};
std::vector<SimJob> GenerateGavelSynthetic(const SyntheticSpec& spec, const GavelThroughputs* tputs = nullptr);

// Sorts by arrival (stable) and assigns ids 0..n-1; arrivals shifted so the first is 0
// when `rebase` is true.
void FinalizeTrace(std::vector<SimJob>& jobs, bool rebase);

}  // namespace icos::sim

#endif  // ICOS_SIM_TRACE_H_
