// StateStore: the control plane's durable state. One interface, an embedded
// SQLite backend by default and a server backend (PostgreSQL) for high
// availability; every backend passes the same conformance suite
// (state_store_conformance.h).
//
// Thread-safety: every method may be called from any thread concurrently.
// Durability: when a write method returns OK, the write survives a crash of
// the process (and, for SQLite, of the machine).
#ifndef ICOS_STORE_STATE_STORE_H_
#define ICOS_STORE_STATE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/records.h"

namespace icos::store {

class StateStore {
 public:
  virtual ~StateStore() = default;

  // Inserts a new job (and a "Submitted" event), assigning job->id. Durable on
  // return. A backend may group-commit concurrent calls (SQLite does: many
  // submits share one fsync); see each backend's header.
  virtual absl::Status InsertJob(JobRecord* job) = 0;
  // Inserts `jobs` as one (all or none), in order: a job array. The first
  // must have starts_array set; the rest array_id kNewArray. Each gets its
  // id, and every one's array_id is the first's id. The idempotency key (of
  // the first) stands for the whole array: a replay inserts none of them and
  // sets the first's id and `replayed`.
  virtual absl::Status InsertJobs(std::vector<JobRecord>* jobs) = 0;
  // Applies every write of `batch` atomically; event ids are assigned.
  virtual absl::Status Apply(WriteBatch batch) = 0;

  // NotFoundError when absent.
  virtual absl::StatusOr<JobRecord> GetJob(int64_t id) = 0;
  // Ascending id order.
  virtual absl::StatusOr<std::vector<JobRecord>> ListJobs(const JobQuery& query) = 0;
  // Every attempt of the job's tasks, ordered by (attempt, group, replica).
  virtual absl::StatusOr<std::vector<TaskRecord>> ListTasks(int64_t job_id) = 0;
  // Tasks in state Assigned or Running, across jobs, ordered by key.
  virtual absl::StatusOr<std::vector<TaskRecord>> ListActiveTasks() = 0;
  virtual absl::StatusOr<std::vector<NodeRecord>> ListNodes() = 0;
  virtual absl::StatusOr<std::vector<QueueRecord>> ListQueues() = 0;
  virtual absl::StatusOr<std::vector<ServiceRecord>> ListServices() = 0;  // by id
  // NotFoundError when absent.
  virtual absl::StatusOr<TokenRecord> GetToken(const std::string& token_hash) = 0;
  virtual absl::StatusOr<std::vector<TokenRecord>> ListTokens() = 0;
  // Events of one job (job_id > 0) or all events (job_id == 0) with id > after_id, ascending, at most limit (0: all).
  virtual absl::StatusOr<std::vector<EventRecord>> ListEvents(int64_t job_id, int64_t after_id, int32_t limit) = 0;

  // Usage intervals that overlap [since_ms, until_ms): start_ms < until_ms and
  // (end_ms == 0 or end_ms > since_ms), ordered by key.
  virtual absl::StatusOr<std::vector<UsageRecord>> ListUsage(int64_t since_ms, int64_t until_ms) = 0;
  // Samples with since_s <= time_s < until_s, ascending.
  virtual absl::StatusOr<std::vector<UtilisationSample>> ListUtilisation(int64_t since_s, int64_t until_s) = 0;
  // Per (user, queue): jobs submitted in [since_ms, until_ms), and jobs that
  // ended in it by final state. Ordered by (user, queue); pairs with all zeros are left out.
  virtual absl::StatusOr<std::vector<JobCounts>> CountJobs(int64_t since_ms, int64_t until_ms) = 0;
  // Webhook messages due by now_ms (next_ms <= now_ms), soonest first, at
  // most limit (0: all).
  virtual absl::StatusOr<std::vector<NotificationRecord>> ListDueNotifications(int64_t now_ms, int32_t limit) = 0;
  // Number of jobs in each state (states with none are absent).
  virtual absl::StatusOr<std::vector<std::pair<JobState, int64_t>>> CountJobsByState() = 0;

  // The schema version this store is at (migrations applied).
  virtual int32_t SchemaVersion() = 0;

  // ---- Leadership: several controllers may share one store (high
  // availability); the one that leads schedules and serves, the others wait.
  //
  // TryLead claims the store for `me` (holder and url; epoch and since_ms are
  // set here) when no other store object holds it, and never waits. When it
  // succeeds the epoch grows by one, and from then on this object's writes are
  // fenced: InsertJob and Apply fail with FailedPrecondition, writing nothing,
  // once another object has taken over (its epoch is newer). The claim lasts
  // until this object is destroyed or its process dies; a second TryLead by
  // the holder just returns its record. Writes of an object that never led
  // are not fenced (tools and tests).
  virtual absl::StatusOr<LeadResult> TryLead(const LeaderRecord& me) = 0;
  // OK while this object still holds the claim it took; an error saying why
  // once it has lost it (its lock's connection or file is gone), or when it
  // never led. The leader checks every few seconds and stops on an error.
  virtual absl::Status CheckLeadership() = 0;
  // The latest leader as recorded (epoch 0 when none has led yet).
  virtual absl::StatusOr<LeaderRecord> GetLeader() = 0;

  // The cluster's id: made once, the first time any controller asks
  // (`candidate`, e.g. NewClusterId()), and the same for every controller
  // of this store from then on. Names what the cluster owns on shared hosts
  // (its agents' cgroups), so two clusters on one machine never meet.
  virtual absl::StatusOr<std::string> ClusterId(const std::string& candidate) = 0;
};

}  // namespace icos::store

#endif  // ICOS_STORE_STATE_STORE_H_
