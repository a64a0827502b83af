// FGD's evaluation on the Alibaba openb trace (Weng et al., ATC'23): pods
// never leave; the pod list is shuffled and extended with random copies until
// GPU requests reach `inflation` x the cluster's GPUs; nodes are shuffled;
// pods arrive one at a time and one that does not fit is dropped. The figure
// is the share of GPU capacity left unallocated when the GPU requests of all
// pods that arrived so far equal the cluster's GPUs ("100% arrived").
// Placement is icos::core's, through a SchedulingSession, per policy.
#ifndef ICOS_SIM_FGD_EXPERIMENT_H_
#define ICOS_SIM_FGD_EXPERIMENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/cluster.h"
#include "sim/trace.h"

namespace icos::sim {

struct InflationOptions {
  double inflation = 1.3;
  uint64_t seed = 1;
  // Nodes scored per pod; FGD's own simulator scores every node.
  int candidates = 2'000;
};

struct InflationResult {
  std::string policy;
  uint64_t seed = 0;
  double unallocated_pct_at_100 = 0;  // of all GPU capacity, at 100% arrived
  double arrived_pct_at_end = 0;
  int64_t pods_arrived = 0, pods_placed = 0;
  double wall_s = 0;
  // (arrived %, unallocated %) every 5% of arrival.
  std::vector<std::pair<double, double>> curve;
};

// Policies: "bestfit" (binpack, also for shared GPUs), "fgd", "spread".
absl::StatusOr<InflationResult> RunInflation(const std::vector<core::Node>& nodes, const std::vector<SimJob>& pods,
                                             const std::string& policy, const InflationOptions& options);

}  // namespace icos::sim

#endif  // ICOS_SIM_FGD_EXPERIMENT_H_
