// FGD's evaluation on the Alibaba openb trace (Weng et al., ATC'23), as its
// artifact runs it: pods never leave; the pod list (GPU and CPU-only pods) is
// shuffled and extended with random copies until GPU requests reach
// `inflation` x the cluster's GPUs; nodes are shuffled; pods arrive one at a
// time and one that does not fit is dropped. CPU-only pods take CPU (often on
// GPU nodes, stranding their GPUs) but do not count as arrived GPU demand. The
// figure is the share of GPU capacity left unallocated when the GPU requests
// of all pods that arrived so far equal the cluster's GPUs ("100% arrived"),
// and the fragmentation rate. Placement is icos::core's, through a
// SchedulingSession, per policy.
#ifndef ICOS_SIM_FGD_EXPERIMENT_H_
#define ICOS_SIM_FGD_EXPERIMENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/cluster.h"
#include "core/policy/placement.h"
#include "sim/trace.h"

namespace icos::sim {

struct InflationOptions {
  double inflation = 1.3;
  uint64_t seed = 1;
  // Nodes scored per pod; FGD's own simulator scores every node.
  int candidates = 2'000;
  // CPU-only pods arrive too (FGD's artifact); false: only GPU pods.
  bool cpu_pods = true;
};

// One point of the curve, read when arrived GPU demand crosses a 5% mark.
struct InflationPoint {
  double arrived_pct = 0;      // GPU requests so far, % of GPU capacity
  double unallocated_pct = 0;  // GPU capacity not allocated, %
  // FGD's fragmentation rate: the cluster's fragmented free GPU (against the
  // trace's task mix) over all free GPU, %; 0 when nothing is free.
  double frag_rate_pct = 0;
};

struct InflationResult {
  std::string policy;
  uint64_t seed = 0;
  double unallocated_pct_at_100 = 0;  // of all GPU capacity, at 100% arrived
  double frag_rate_pct_at_90 = 0;     // at 90% arrived (FGD reports it there)
  double arrived_pct_at_end = 0;
  int64_t pods_arrived = 0, pods_placed = 0;  // GPU pods
  int64_t cpu_pods_arrived = 0, cpu_pods_placed = 0;
  double wall_s = 0;
  std::vector<InflationPoint> curve;  // every 5% of arrival
};

// The task mix FGD measures fragmentation against: the GPU pods' shapes
// (GPUs, share, CPU), as few of the most frequent as cover `coverage` of them
// (FGD: 95%). Each shape weighs its count times the square root of its GPU
// request: fragmentation that strands a whole-GPU or multi-GPU request costs
// more than one that strands a small share (FGD weighs by count alone).
std::vector<core::TaskShape> TypicalShapes(const std::vector<SimJob>& pods, double coverage = 1.0);

// Policies: "fgd"; FGD's baselines "bestfit", "gpupacking", "random", "dotprod", "gpuclustering"
// (core::FgdBaselineScorer); icos' own "binpack" and "spread".
absl::StatusOr<InflationResult> RunInflation(const std::vector<core::Node>& nodes, const std::vector<SimJob>& pods,
                                             const std::string& policy, const InflationOptions& options);

}  // namespace icos::sim

#endif  // ICOS_SIM_FGD_EXPERIMENT_H_
