// Order policies: in which order a pass tries pending jobs.
#ifndef ICOS_CORE_POLICY_ORDER_H_
#define ICOS_CORE_POLICY_ORDER_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/snapshot.h"
#include "core/resources/quota.h"

namespace icos::core {

// What an order policy may look at besides the snapshot.
struct OrderInput {
  const Snapshot* snapshot = nullptr;
  const QuotaTracker* quota = nullptr;  // usage of running jobs already applied
  std::vector<int64_t> capacity;        // QuotaTracker::Capacity of the cluster
  std::vector<int32_t> queue_of;        // per pending job; -1 unknown queue
  std::vector<QuotaDelta> demand;       // per pending job, device type left open
};

class OrderPolicy {
 public:
  virtual ~OrderPolicy() = default;
  virtual std::string_view name() const = 0;
  // Indices into snapshot->pending, most urgent first. Must be deterministic and
  // contain every index exactly once.
  virtual std::vector<int32_t> Order(const OrderInput& in) const = 0;
  // Whether it wants each job's whole estimated run time (and reads its age
  // from attained service) rather than the time left (core/estimates.h).
  virtual bool ranks_by_total_estimate() const { return false; }
};

// Run time a job has had so far in ms, all runs together: its attained
// device-seconds over the devices it asks for.
double RunSoFarMs(const Job& job);

// The names MakeOrderPolicy knows ("tiresias" is also accepted, as "las").
const std::vector<std::string>& OrderPolicyNames();

// One of OrderPolicyNames(). An unknown name is an error listing the known ones.
// `las_thresholds_s`: LAS level boundaries in device-seconds (ascending);
// empty keeps Tiresias' two (1 h, 10 h).
absl::StatusOr<std::unique_ptr<OrderPolicy>> MakeOrderPolicy(std::string_view name,
                                                             std::vector<double> las_thresholds_s = {});

// First come, first served: submit time, then job id.
class FifoOrder final : public OrderPolicy {
 public:
  std::string_view name() const override { return "fifo"; }
  std::vector<int32_t> Order(const OrderInput& in) const override;
};

// Higher priority first, FIFO among equals (Slurm's priority/basic, K8s PriorityClass).
class PriorityOrder final : public OrderPolicy {
 public:
  std::string_view name() const override { return "priority"; }
  std::vector<int32_t> Order(const OrderInput& in) const override;
};

// Hierarchical Dominant Resource Fairness across the queue tree (Ghodsi et al.,
// NSDI'11; hierarchical form as in Mesos' DRF sorter and Volcano's drf plugin):
// at every level the child with the smallest weighted dominant share goes next;
// inside a queue, priority then FIFO. Shares are updated as if each job started.
class DrfOrder final : public OrderPolicy {
 public:
  std::string_view name() const override { return "drf"; }
  std::vector<int32_t> Order(const OrderInput& in) const override;
};

// Tiresias' discretized two-dimensional least-attained-service (Gu et al.,
// NSDI'19): jobs fall into levels by attained device-seconds; lower levels
// first, FIFO inside a level; explicit priority still dominates.
class LasOrder final : public OrderPolicy {
 public:
  // Level boundaries in device-seconds, ascending.
  explicit LasOrder(std::vector<double> thresholds = {3600.0, 36000.0}) : thresholds_(std::move(thresholds)) {}
  std::string_view name() const override { return "las"; }
  std::vector<int32_t> Order(const OrderInput& in) const override;
  int Level(double attained_device_s) const;

 private:
  std::vector<double> thresholds_;
};

// Shortest job first on the runtime estimate (the oracle baseline of the Alibaba
// PAI study, Weng et al., NSDI'22; SJF as in Slurm's job-size-aware schedulers):
// smallest runtime_estimate_ms first, jobs without an estimate (0) last, FIFO
// among equals. Priority is not looked at.
// With `preemptive` it is shortest-remaining-time-first (SRTF, the oracle
// baseline of Tiresias, Gu et al., NSDI'19): the same order, and a waiting job
// may also preempt jobs of its queue and priority expected to run much longer.
class SjfOrder final : public OrderPolicy {
 public:
  explicit SjfOrder(bool preemptive = false) : preemptive_(preemptive) {}
  std::string_view name() const override { return preemptive_ ? "srtf" : "sjf"; }
  std::vector<int32_t> Order(const OrderInput& in) const override;
  bool preemptive() const { return preemptive_; }

 private:
  bool preemptive_;
};

// Gittins-index order with run-time estimates that may be wrong (Gittins,
// 1979; for M/G/1 with known size distributions it minimises mean response
// time, Scully et al., SIGMETRICS'18). Each job's total run time is taken as
// log-normal around its estimate: median `runtime_estimate_ms`, spread
// `runtime_log_sd` (the default spread where a job has none). A job's rank is
// the least, over how much more it is run, of the expected time that costs
// divided by the chance the job ends within it. With a precise estimate the
// rank is the time left (SRTF); a job that outlives its estimate loses rank as
// the chance that it ends soon falls, as under LAS. Higher priority first, then
// lower rank; jobs without an estimate last. A waiting job may preempt jobs of
// its queue and priority whose rank is much worse (see Scheduler).
class GittinsOrder final : public OrderPolicy {
 public:
  explicit GittinsOrder(double default_log_sd = 1.0) : default_log_sd_(default_log_sd) {}
  std::string_view name() const override { return "gittins"; }
  bool ranks_by_total_estimate() const override { return true; }
  std::vector<int32_t> Order(const OrderInput& in) const override;
  // The rank in ms of `job` after `age_ms` of running (wall time, all its
  // devices at once); +infinity without an estimate.
  double RankMs(const Job& job, double age_ms) const;

  // The rank of a job whose run time is log-normal with median 1 and spread
  // `log_sd`, after running for exp(log_sd * z). Exposed for tests.
  static double NormalizedRank(double z, double log_sd);

 private:
  double default_log_sd_;
};

}  // namespace icos::core

#endif  // ICOS_CORE_POLICY_ORDER_H_
