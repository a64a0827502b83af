// Placement policies: which node and which devices a replica gets.
//
// A placement policy has two small parts:
//   - a NodeScorer ranks candidate nodes (and, for a share of a device, the
//     device) for one replica: binpack, spread, or FGD's fragmentation gradient;
//   - a TypeRanker orders the device types a job accepts: as listed, or by
//     Gavel-style normalized throughput.
// Topology (islands, NUMA, racks) is handled by the gang planner in
// scheduler.cc for every scorer, when SchedulerOptions::topology_aware is set.
#ifndef ICOS_CORE_POLICY_PLACEMENT_H_
#define ICOS_CORE_POLICY_PLACEMENT_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/job.h"
#include "core/resources/cluster_state.h"

namespace icos::core {

// A kind of task the cluster typically runs, with its share of all tasks; FGD
// measures fragmentation against this mix.
struct TaskShape {
  int32_t devices = 0;         // whole devices; 0 with percent > 0 means a share of one
  int32_t device_percent = 0;  // share of one device, 1..99
  int64_t cpu_milli = 0;
  double weight = 1.0;
  // The device models it may use (Device::model; any vendor); empty: any.
  // FGD counts a node's free devices of another model as fragmented for
  // it: the "gpuspec" workloads, where some tasks may run on some models only.
  std::vector<std::string> models;
};

// A shape's model list as TaskShape keeps it: sorted, each once (two shapes
// that allow the same models are one shape).
std::vector<std::string> NormalizedModels(std::vector<std::string> models);

class NodeScorer {
 public:
  virtual ~NodeScorer() = default;
  virtual std::string_view name() const = 0;
  // Walk the free-device index fullest-first (spreading) rather than tightest-first.
  virtual bool MostFreeFirst() const { return false; }
  // Cost of putting one replica asking `req` on node n using `devices` of
  // type t (already chosen). Lower is better. REQUIRES: it fits.
  virtual double Score(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                       const std::vector<int32_t>& devices) const = 0;
  // Scores a fractional `req` on each of `devices` of node n (one device each);
  // scores[i] belongs to devices[i]. Scorers override it to share work
  // between the candidates of one node.
  virtual void ScoreShares(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                           const std::vector<int32_t>& devices, std::vector<double>& scores) const;
};

// Most-allocated first: fill nodes and devices that are already in use so
// whole nodes stay free for large gangs (Slurm cons_tres best fit, K8s MostAllocated).
class BinpackScorer final : public NodeScorer {
 public:
  std::string_view name() const override { return "binpack"; }
  double Score(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
               const std::vector<int32_t>& devices) const override;
};

// Least-allocated first: spread load for latency-sensitive services (K8s LeastAllocated).
class SpreadScorer final : public NodeScorer {
 public:
  std::string_view name() const override { return "spread"; }
  bool MostFreeFirst() const override { return true; }
  double Score(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
               const std::vector<int32_t>& devices) const override;
};

// Fragmentation Gradient Descent (Weng et al., "Beware of Fragmentation",
// USENIX ATC'23): choose the node and device whose fragmentation, measured
// against the typical task mix, grows least. Scored as FGD's kube-scheduler
// plugin scores (whole points 0..100, a stable pseudo-random pick among ties).
class FgdScorer final : public NodeScorer {
 public:
  explicit FgdScorer(std::vector<TaskShape> workload) { set_workload(std::move(workload)); }
  std::string_view name() const override { return "fgd"; }
  double Score(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
               const std::vector<int32_t>& devices) const override;
  void ScoreShares(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                   const std::vector<int32_t>& devices, std::vector<double>& scores) const override;
  // Expected free milli-devices of node n that the task mix could not use
  // (free_percent: the node's devices, all of its first device's model).
  double Fragmentation(const ClusterState& cluster, int32_t n, const std::vector<int32_t>& free_percent) const;
  // The same with the node's free CPU given (after a placement takes some),
  // for free devices of `model` (nullptr: unknown, or of several models;
  // then the shapes' model constraints are not applied).
  double Fragmentation(const std::vector<int32_t>& free_percent, int64_t free_cpu_milli,
                       const std::string* model = nullptr) const;
  void set_workload(std::vector<TaskShape> workload);
  const std::vector<TaskShape>& workload() const { return workload_; }

 private:
  static constexpr DeviceTypeId kAnyType = -2;
  // Free share of each usable device of type t (kAnyType: of every type) on node n, per cent.
  static void FreeShares(const ClusterState& cluster, int32_t n, DeviceTypeId t, std::vector<int32_t>& free,
                         std::vector<int32_t>& index);
  std::vector<TaskShape> workload_;
  std::vector<double> share_;  // weight of each shape over the total weight
  // The models shapes name (empty: no shape is constrained), and each
  // shape's as a bit mask over them (0: any model), so a score compares no
  // strings per shape.
  std::vector<std::string> models_;
  std::vector<uint64_t> allowed_;
  // The bit of `model` in models_ (0 when no shape names it).
  uint64_t ModelBit(const std::string& model) const;
};

// The baselines FGD compares itself with (Weng et al., ATC'23, section 6),
// scored as the score plugins of its artifact score them: whole points
// 0..100 per node, higher better, ties broken as FgdScorer breaks them (for
// kube-scheduler's random pick among the best), and a share of a device on
// the device with least left that fits (the artifact's "best" GPU choice).
//   random      a feasible node at random (RandomScore), a share's device
//               at random too (the artifact's "random" GPU choice)
//   bestfit     least left after the placement: 100 x (1 - (cpu_left/128
//               cores + gpu_left/8 GPUs) / 2) (BestFitScore)
//   gpupacking  a partly used device first, then a used node's free devices,
//               then an idle node (GpuPackingScore)
//   dotprod     the smallest dot product of what is free (a partly used
//               device's share, or the idle devices) and the request, both
//               over 128 cores and 8 GPUs (DotProductScore; its own device
//               choice)
//   gpuclustering  tasks that ask alike together (the same whole-device
//               count, or a share): a node holding only tasks of the
//               request's kind (75..100), one holding that kind among
//               others (50..75), an idle node (25..50), a node of other
//               kinds only (0..25); within a band 25 x used/8 GPUs
//               (GpuClusteringScore)
// Not the same as "binpack" (icos' own: the type's free whole devices, CPU
// only breaking ties).
class FgdBaselineScorer final : public NodeScorer {
 public:
  enum class Kind { kRandom, kBestFit, kGpuPacking, kDotProduct, kGpuClustering };
  explicit FgdBaselineScorer(Kind kind) : kind_(kind) {}
  std::string_view name() const override;
  double Score(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
               const std::vector<int32_t>& devices) const override;
  void ScoreShares(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                   const std::vector<int32_t>& devices, std::vector<double>& scores) const override;
  // The plugin's points for putting `req` on node n (on `device` for a
  // share: the device its score assumes).
  int64_t Points(const ClusterState& cluster, int32_t n, const TaskRequest& req, int32_t device) const;

 private:
  Kind kind_;
};

// "binpack", "spread", "fgd", "random", "bestfit", "gpupacking",
// "dotprod", "gpuclustering" (workload may be empty: the scheduler fills it
// from the pending jobs of each pass).
absl::StatusOr<std::unique_ptr<NodeScorer>> MakeNodeScorer(std::string_view name);
// The names MakeNodeScorer knows.
const std::vector<std::string>& NodeScorerNames();

// One device type a task group may use, with the job's throughput on it.
struct TypeOption {
  DeviceTypeId type = 0;
  double throughput = 1.0;
};

class TypeRanker {
 public:
  virtual ~TypeRanker() = default;
  virtual std::string_view name() const = 0;
  // Reorders `options` (the job's acceptable types) best first. `market[t]` is
  // the mean relative throughput that the pass's jobs get on type t (1 if no
  // job says). Must be deterministic.
  virtual void Rank(std::vector<TypeOption>& options, const std::vector<double>& market) const = 0;
};

// The order the job's selector lists them in.
class ListedOrderRanker final : public TypeRanker {
 public:
  std::string_view name() const override { return "listed"; }
  void Rank(std::vector<TypeOption>&, const std::vector<double>&) const override {}
};

// Heterogeneity-aware (Gavel, Narayanan et al., OSDI'20): a job goes first to
// the type where its throughput, normalized to its own best and to what the
// other jobs get there, is highest, so each type serves the jobs it speeds up
// most (comparative advantage) instead of every job queueing for the fastest.
class HeterogeneityRanker final : public TypeRanker {
 public:
  std::string_view name() const override { return "gavel"; }
  void Rank(std::vector<TypeOption>& options, const std::vector<double>& market) const override;
};

}  // namespace icos::core

#endif  // ICOS_CORE_POLICY_PLACEMENT_H_
