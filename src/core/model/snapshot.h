// Input and output of one scheduling pass.
#ifndef ICOS_CORE_MODEL_SNAPSHOT_H_
#define ICOS_CORE_MODEL_SNAPSHOT_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "common/ids.h"
#include "core/model/cluster.h"
#include "core/model/job.h"
#include "core/model/queue.h"

namespace icos::core {

// Everything the scheduler knows at one instant. The caller owns it; the
// scheduler never keeps references past the call.
struct Snapshot {
  int64_t now_ms = 0;
  std::vector<Node> nodes;
  std::vector<Queue> queues;  // jobs name a queue; "default" is implied if absent
  std::vector<RunningJob> running;
  std::vector<Job> pending;
  // Fair share over time: per queue, its past usage as the steady amount that
  // would have given it (UsageHistory::Equivalent), added to what it holds now
  // when the drf order compares queues. Quotas and limits never see it.
  std::map<std::string, ResourceAmounts> past_usage;
};

// Start `job` now with these placements. `after_preemption` lists the jobs that
// must stop first (the caller launches once they are gone).
struct BindDecision {
  JobId job;
  std::string device_type;  // "vendor/model" chosen for its devices; empty if none
  std::vector<TaskPlacement> tasks;
  std::vector<JobId> after_preemption;
};

// Stop `victim` so that `preemptor` can start.
struct PreemptDecision {
  JobId victim;
  JobId preemptor;
  std::string reason;
};

// Move running `job` to `tasks` on a faster device type: the caller stops it
// (checkpoint) and starts it there, as after a preemption.
struct MigrateDecision {
  JobId job;
  std::string from_type;
  std::string device_type;
  std::vector<TaskPlacement> tasks;
  std::string reason;
};

// EASY-backfill reservation: `job` is expected to start at `start_ms` on
// `nodes`; jobs that would delay it are not started ahead of it.
struct ReserveDecision {
  JobId job;
  int64_t start_ms = 0;
  std::vector<int32_t> nodes;
};

// Why a job did not start in this pass.
enum class WaitKind {
  kResources,    // not enough free capacity of an acceptable kind right now
  kTopology,     // capacity exists but not in the shape asked for (island, node, rack)
  kQuota,        // the queue (or an ancestor) is at its limit
  kReservation,  // would delay a job holding a backfill reservation
  kOrder,        // strict ordering: an earlier job is blocked
  kNeverFits,    // the cluster as it is can never run it (fix the request)
  kInvalid,      // the job itself is malformed (fix the spec)
};

const char* WaitKindName(WaitKind kind);

struct WaitingJob {
  JobId job;
  WaitKind kind = WaitKind::kResources;
  std::string reason;  // one sentence a user can act on
};

struct PassStats {
  int64_t jobs_considered = 0;
  int64_t placement_attempts = 0;
  int64_t shape_cache_hits = 0;  // attempts skipped: an identical request already failed
  int64_t preemption_attempts = 0;
  int64_t nodes_scored = 0;
};

struct Decisions {
  std::vector<BindDecision> binds;
  std::vector<PreemptDecision> preemptions;
  std::vector<MigrateDecision> migrations;  // only with migrate_to_faster_type
  std::vector<ReserveDecision> reservations;
  std::vector<WaitingJob> waiting;
  PassStats stats;
};

}  // namespace icos::core

#endif  // ICOS_CORE_MODEL_SNAPSHOT_H_
