// icos::core's entry point: one scheduling pass over a snapshot.
//
// A pass builds an indexed ClusterState and QuotaTracker from the snapshot,
// orders the pending jobs with the OrderPolicy, and for each job in turn:
//   1. rejects at once what can never run (more devices than any node or the
//      cluster has, a queue cap below the request, an invalid spec);
//   2. checks queue limits and borrowing;
//   3. plans the whole gang (all task groups, all replicas, or at least
//      min_available of each) on one device type at a time, best type first,
//      topology-aware: replicas share nodes, then racks; devices share islands;
//   4. if it does not fit, tries preemption (reclaim borrowed quota first, then
//      lower priority in the same queue; fewest victims; only if the job then
//      fits for certain);
//   5. if still blocked, gives it an EASY-backfill reservation (up to
//      reservation_depth jobs): later jobs may start only if they end before
//      the reservation or stay off its nodes.
// Every job left waiting gets a reason a user can read.
//
// Pure: no I/O, clocks, threads or randomness; the same snapshot and options
// always give the same decisions.
#ifndef ICOS_CORE_SCHEDULER_H_
#define ICOS_CORE_SCHEDULER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/snapshot.h"
#include "core/policy/order.h"
#include "core/policy/placement.h"

namespace icos::core {

enum class BackfillMode {
  kNone,    // skip blocked jobs, start anything that fits (may starve big gangs)
  kStrict,  // stop at the first blocked job of the order (no job overtakes)
  kEasy,    // EASY backfill: reservations for the first blocked jobs
};

struct SchedulerOptions {
  // Order: "fifo", "priority", "drf" (hierarchical, default), "las", "sjf",
  // "srtf", "gittins" (the last two preempt; see policy/order.h).
  std::string order = "drf";
  // LAS level boundaries in device-seconds, ascending; empty: Tiresias' 1 h
  // and 10 h. More levels come closer to continuous least-attained-service.
  std::vector<double> las_thresholds_s;
  // Node scoring: "binpack" (default), "spread", "fgd".
  std::string placement = "binpack";
  // Fractional (shared-device) requests use FGD when true, whatever `placement` is.
  bool fgd_for_fractional = true;
  // Pack gangs onto the fewest nodes and racks and devices onto the fewest islands.
  bool topology_aware = true;
  // Rank a job's acceptable device types by Gavel-style normalized throughput.
  bool heterogeneity_aware = true;
  // Earliest finish over placing at once: a one-device job with a runtime
  // estimate waits for a faster type when a device of it frees soon enough
  // that the job would still finish earlier there (each freeing device is
  // promised to one waiting job per pass). Off by default: it needs estimates.
  bool wait_for_faster_type = false;
  // ... and only when it finishes at least this share earlier there. 0.25 was
  // the best of 0.1, 0.25 and 0.5 on Gavel's synthetic trace (docs/results.md).
  double faster_type_min_gain = 0.25;
  // Upgrade migration (Gavel re-places jobs across types every round): a
  // running one-device job with an estimate moves to a free device of a faster
  // type when, counting `restore_cost_ms` for checkpoint and restore, it
  // would finish at least faster_type_min_gain sooner there. Jobs waiting in
  // the queue are placed first; migration only takes what they left free.
  // Off by default: it needs estimates and jobs that checkpoint.
  bool migrate_to_faster_type = false;
  // What restarting a stopped job costs before it works again (restoring its
  // checkpoint): a move pays it, and so does every run after a preemption,
  // which the estimates the scheduler is given count (core/estimates.h).
  int64_t restore_cost_ms = 30'000;
  int max_migrations_per_pass = 16;
  BackfillMode backfill = BackfillMode::kEasy;
  // Blocked jobs that get a reservation per pass (Slurm bf_max_job_test-like).
  int reservation_depth = 1;
  bool preemption = true;
  // Preemption searches per pass; each may scan the running jobs.
  int max_preemption_attempts = 16;
  int max_victims = 64;
  // A job interrupted this often in the last hour (Job::recent_interruptions)
  // is not preempted again; 0: no cap.
  int32_t max_interruptions_per_hour = 0;
  // A single replica is placed after this many feasible nodes were scored
  // (K8s percentageOfNodesToScore); gangs look further to find a compact set.
  int min_feasible_nodes = 16;
  int gang_feasible_nodes = 256;
  // Fractional requests: nodes scored per replica (FGD is O(devices x shapes) each).
  int fractional_candidates = 64;
  // Task mix for FGD; empty: taken from the pass's pending jobs.
  std::vector<TaskShape> workload;
};

// A parsed, ready-to-run set of policies. Cheap to keep; one per controller.
class Scheduler {
 public:
  // Fails on an unknown policy name or nonsensical option.
  static absl::StatusOr<Scheduler> Create(SchedulerOptions options);

  Scheduler(Scheduler&&) noexcept;
  Scheduler& operator=(Scheduler&&) noexcept;
  ~Scheduler();

  // One pass. Fails only on a structurally broken snapshot (running tasks that
  // over-allocate a node, references to missing nodes, a bad queue tree);
  // problems of single pending jobs become WaitKind::kInvalid entries.
  absl::StatusOr<Decisions> Schedule(const Snapshot& snapshot) const;

  const SchedulerOptions& options() const { return options_; }
  // The order policy the options name (its estimate semantics: core/estimates.h).
  const OrderPolicy& order() const { return *order_; }

 private:
  friend class Pass;
  explicit Scheduler(SchedulerOptions options);
  SchedulerOptions options_;
  std::unique_ptr<OrderPolicy> order_;
  std::unique_ptr<NodeScorer> scorer_;
  std::unique_ptr<TypeRanker> ranker_;
};

// A pass that stays open: after RunPass() (or instead of it) newly arrived
// jobs can be placed one at a time against the same indexed state, which is
// how the controller answers a submit without rebuilding 10,000 nodes.
// REQUIRES: `snapshot` and `scheduler` outlive the session.
class SchedulingSession {
 public:
  static absl::StatusOr<SchedulingSession> Begin(const Scheduler& scheduler, const Snapshot& snapshot);
  SchedulingSession(SchedulingSession&&) noexcept;
  SchedulingSession& operator=(SchedulingSession&&) noexcept;
  ~SchedulingSession();

  // The full pass over snapshot.pending. Call at most once.
  Decisions RunPass();
  // Places one job now if it fits without preemption and without delaying a
  // reservation made by RunPass(); otherwise returns it as waiting. A placed
  // job keeps its resources for later calls.
  Decisions PlaceOne(const Job& job);

 private:
  explicit SchedulingSession(std::unique_ptr<class Pass> pass);
  std::unique_ptr<class Pass> pass_;
};

// Checks one job spec for mistakes a user must fix; empty when fine.
std::string ValidateJob(const Job& job);

}  // namespace icos::core

#endif  // ICOS_CORE_SCHEDULER_H_
