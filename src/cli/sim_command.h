// `icos sim`: replays a trace (Philly, Alibaba openb, Gavel, or Gavel's
// synthetic workload) on a simulated cluster through icos::core, once per
// policy, and reports JCT, queueing, makespan and utilisation side by side.
#ifndef ICOS_CLI_SIM_COMMAND_H_
#define ICOS_CLI_SIM_COMMAND_H_

#include <cstdint>
#include <ostream>
#include <string>

namespace icos::cli {

struct SimFlags {
  // philly[:CSV] | openb[:DIR] | gavel[:DIR] | synthetic[:RATE[:single]] (RATE in jobs/hour).
  std::string trace = "synthetic";
  // Cluster spec ("36xV100,36xP100,36xK80", "250x8xV100") or "openb[:CSV]";
  // empty: 250x8xV100 for philly, the openb GPU nodes for openb, Gavel's
  // 36 V100 + 36 P100 + 36 K80 otherwise.
  std::string cluster;
  std::string policy = "default";  // comma-separated names
  uint64_t seed = 1;
  int64_t jobs = 0;                  // first N jobs; 0: all (synthetic: 1000)
  bool json = false;                 // one JSON object per policy and line
  std::string out_dir;               // summary.json, CSV series per policy, SVG plots
  std::string traces_dir;            // default: $ICOS_TRACES, else ../shared/data/traces
  std::string estimator = "oracle";  // for policies not named NAME-learned
  double restore_delay_s = 30.0;
  double checkpoint_interval_s = 0;        // 0: perfect checkpoints (nothing lost at a stop)
  double min_run_s = 0;                    // every queue's minimum run time before a preemption
  int32_t max_interruptions_per_hour = 0;  // 0: no cap
  int64_t usage_half_life_s = 0;           // every queue's fair share over time; 0: off
  std::string window;                      // "FIRST:LAST": also report mean JCT of jobs FIRST..LAST-1
  // The fault model (sim::SimOptions::device_mtbf_h): device-hours between
  // failures, or "llama3" (sim::kLlama3DeviceMtbfH); empty: no faults.
  std::string device_mtbf;
  double repair_s = 3'600;
  std::string repair_times = "fixed";  // fixed | exp | lognormal[:SIGMA]
  int32_t rack_nodes = 0;              // --rack NODES:MTBF_HOURS
  double rack_mtbf_h = 0;
  std::string rack;
  uint64_t fault_seed = 1;
  int inflation_seeds = 0;     // >0: FGD's inflation experiment (openb) over this many seeds
  bool gpu_pods_only = false;  // inflation: leave out the CPU-only pods (FGD's artifact has them)
};

// Returns the process exit code: 0 on success, 1 on bad input or a violated invariant.
int RunSim(const SimFlags& flags, std::ostream& out, std::ostream& err);

}  // namespace icos::cli

#endif  // ICOS_CLI_SIM_COMMAND_H_
