// bench/parity.sh's driver: one trace through the simulator and through the
// live controller on a fake clock (parity/live_replay.h), per policy:
//   parity jobs=N policy=P identical=K/N max_jct_diff_s=D ...
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "core/policy_presets.h"
#include "parity/live_replay.h"
#include "sim/simulator.h"
#include "sim/trace.h"

using namespace icos;

int main(int argc, char** argv) {
  if (argc < 5) {
    std::cerr << "usage: icos_parity_bench TRACE CLUSTER JOBS POLICY[,POLICY...]\n"
                 "  TRACE: philly:PATH | synthetic:GAVEL_THROUGHPUTS_JSON (Gavel-style, 5.6 jobs/h)\n"
                 "         | mixed | mixed-heterogeneous (the CI test's traces, parity/live_replay.h)\n"
                 "  CLUSTER: as icos sim --cluster, e.g. 64x8xV100\n";
    return 2;
  }
  const std::string trace = argv[1];
  int32_t n = 0;
  if (!absl::SimpleAtoi(argv[3], &n) || n < 1) {
    std::cerr << "JOBS must be a positive number\n";
    return 2;
  }
  std::vector<sim::SimJob> jobs;
  if (trace.rfind("philly:", 0) == 0) {
    auto loaded = sim::LoadPhilly(trace.substr(7));
    if (!loaded.ok()) {
      std::cerr << loaded.status() << "\n";
      return 1;
    }
    jobs = *std::move(loaded);
    if (static_cast<int32_t>(jobs.size()) > n) jobs.resize(n);
  } else if (trace.rfind("synthetic:", 0) == 0) {
    auto tputs = sim::LoadGavelThroughputs(trace.substr(10));
    if (!tputs.ok()) {
      std::cerr << tputs.status() << "\n";
      return 1;
    }
    jobs = sim::GenerateGavelSynthetic({.seed = 1, .jobs = n, .jobs_per_hour = 5.6}, &*tputs);
  } else if (trace.rfind("mixed", 0) == 0) {
    jobs = parity::MixedTrace(n, 7, trace == "mixed-heterogeneous");
  } else {
    std::cerr << "unknown trace '" << trace << "'\n";
    return 2;
  }
  parity::PrepareForLive(jobs);
  auto nodes = sim::ParseClusterSpec(argv[2]);
  if (!nodes.ok()) {
    std::cerr << nodes.status() << "\n";
    return 2;
  }
  const bool verbose = std::getenv("PARITY_VERBOSE") != nullptr;
  int failures = 0;
  for (const std::string& policy : std::vector<std::string>(absl::StrSplit(argv[4], ','))) {
    auto preset = core::PolicyPreset(policy);
    if (!preset.ok()) {
      std::cerr << preset.status() << "\n";
      return 2;
    }
    sim::SimOptions so;
    so.policy = policy;
    so.scheduler = *preset;
    so.estimator = sim::EstimatorFor(policy, "oracle");
    auto simulated = sim::Simulate(*nodes, jobs, so);
    if (!simulated.ok()) {
      std::cerr << "sim " << policy << ": " << simulated.status() << "\n";
      return 1;
    }
    parity::ReplayOptions ro;
    ro.policy = policy;
    auto live = parity::ReplayLive(*nodes, jobs, ro);
    if (!live.ok()) {
      std::cerr << "live " << policy << ": " << live.status() << "\n";
      return 1;
    }
    const parity::ParityReport r = parity::Compare(*simulated, *live, 1.0);
    std::printf(
        "parity jobs=%lld policy=%s identical=%lld/%lld max_jct_diff_s=%.1f max_start_diff_s=%.1f "
        "placement_diffs=%lld sim_wall_s=%.2f\n",
        static_cast<long long>(r.jobs), policy.c_str(), static_cast<long long>(r.identical),
        static_cast<long long>(r.jobs), r.max_jct_diff_s, r.max_start_diff_s, static_cast<long long>(r.placement_diffs),
        simulated->wall_s);
    if (r.first_diff_job >= 0) std::printf("  first difference: %s\n", r.first_diff.c_str());
    if (verbose) {
      for (size_t i = 0; i < simulated->jobs.size(); ++i) {
        const sim::JobOutcome& a = simulated->jobs[i];
        const sim::JobOutcome& b = live->jobs[i];
        std::printf(
            "  job %zu arrive %.0f dur %.0f gpus %d | sim start %.0f end %.0f pre %d %s | live start %.0f end %.0f pre "
            "%d %s%s\n",
            i, a.arrival_s, a.duration_s, a.gpus, a.first_start_s, a.finish_s, a.preemptions, a.first_placement.c_str(),
            b.first_start_s, b.finish_s, b.preemptions, b.first_placement.c_str(),
            b.reason.empty() ? "" : (" | " + b.reason).c_str());
      }
    }
    std::fflush(stdout);
    if (r.identical != r.jobs) ++failures;
  }
  return failures == 0 ? 0 : 3;
}
