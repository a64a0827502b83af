// A service's desired state and the rule that moves its replicas toward it
// (issue #22): which revision they should run, how many of them, and the
// rolling update under way (Kubernetes' Deployment, written small).
//
// The state lives in the store (store::ServiceRecord, as JSON) beside the
// replicas' job rows; the replicas themselves are the facts. PlanRollout is
// pure: given the state and what each live replica is, it says which
// replicas to make and which to stop this round. Run it again after any
// crash and it picks up where the last round left off, since it keeps
// nothing of its own.
#ifndef ICOS_CONTROLLER_SERVICE_STATE_H_
#define ICOS_CONTROLLER_SERVICE_STATE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/job_spec.h"

namespace icos::controller {

// One revision: a spec the service's replicas ran or run.
struct ServiceRevision {
  int32_t number = 0;
  std::string spec_json;  // the canonical job spec (api::JobSpecToJson)
  int64_t created_ms = 0;
  std::string created_by;
  std::string change;   // how it came: "submitted", "updated", "rolled back to revision 1", ...
  std::string outcome;  // "" while rolling out or current; "complete", "failed: why", "superseded"
};

struct ServiceState {
  int64_t id = 0;  // the service's id (its first replica's job id)
  std::string name, user;
  int64_t run_uid = -1, run_gid = -1;  // as its submitter's token pinned them (store::JobRecord)
  int32_t replicas = 0;                // how many it should have
  int32_t revision = 0;                // the revision they should run
  int32_t stable = 0;                  // the last revision whose rollout completed; 0: none yet
  int64_t rollout_started_ms = 0;      // 0: no rollout under way
  int32_t next_index = 0;              // the index the next replica made gets (ICOS_REPLICA)
  bool stopped = false;                // cancelled: no replica is made again
  // `icos service pause`: nothing is made or stopped for it until resumed
  // (a replica still restarts on its own). 0: not paused.
  int64_t paused_ms = 0;
  // The last resume: a replica's ready_timeout counts from here at the
  // earliest (the pause is not held against it).
  int64_t resumed_ms = 0;
  std::vector<ServiceRevision> revisions;  // oldest first, at most kKeptRevisions

  // The revision numbered `number`; nullptr when it is not kept.
  const ServiceRevision* Find(int32_t number) const;
  ServiceRevision* Find(int32_t number);
  // Adds a revision after the newest and makes it the one to roll out.
  void AddRevision(ServiceRevision r, int64_t now_ms);
};

// "stopped", "rolling out revision 3", "complete", or either of the last
// two after "paused: ".
std::string RolloutStatus(const ServiceState& s);

// How many revisions a service keeps for history and rollback.
inline constexpr size_t kKeptRevisions = 10;

std::string ServiceStateToJson(const ServiceState& state);
absl::StatusOr<ServiceState> ServiceStateFromJson(int64_t id, const std::string& text);

// What of a spec makes a replica: everything but the count of replicas,
// how a rollout proceeds and how the count is autoscaled. Two revisions with the same template need no
// replica replaced (a scale, or a rollback to what still runs).
std::string ReplicaTemplate(api::JobSpec spec);

// A live (not ended) replica as PlanRollout sees it.
struct LiveReplica {
  int64_t job_id = 0;
  int32_t index = 0;
  bool current = false;  // runs the revision to roll out (its template)
  bool ready = false;    // takes traffic
  int64_t made_ms = 0;   // when it was submitted
  std::string why;       // why it is not ready (for a failed revision's reason)
};

struct RolloutPlan {
  int32_t create = 0;         // replicas of the current revision to make
  std::vector<int64_t> stop;  // replicas to cancel (old revisions', or beyond the count)
  std::string failed;         // non-empty: the revision failed (why); roll back instead of the above
  bool complete = false;      // every replica runs the current revision and is ready
};

// One round of the rollout of `state` with `live` replicas at `now_ms`:
//   - make replicas of the current revision while fewer than `replicas`
//     run it, up to max_surge above `replicas` in all;
//   - stop old revisions' replicas that are not ready at once, and ready
//     ones while at least replicas - max_unavailable stay ready;
//   - stop the current revision's replicas beyond `replicas` (a scale down),
//     those not ready first;
//   - fail the revision when one of its replicas is not ready
//     ready_timeout after it was made, during a rollout from a stable
//     revision with another template (a rollback cannot fail again).
// A stopped service stops every replica; a paused one makes and stops
// none, and fails nothing.
RolloutPlan PlanRollout(const ServiceState& state, const api::RolloutSpec& update, bool can_fail,
                        const std::vector<LiveReplica>& live, int64_t now_ms);

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_SERVICE_STATE_H_
