// PostgresStateStore: the server StateStore, on PostgreSQL through libpq, for
// a control plane whose state must outlive its machine (high availability).
//
// Durability: every write is one transaction committed with
// synchronous_commit=on (set on each connection, whatever the server's
// default), so a write method that returns OK is in the server's fsync'ed WAL.
// InsertJob group-commits as SqliteStateStore does: submits that arrive
// while a commit is in flight share the next transaction and its WAL flush.
//
// Ordering: job and event ids come from sequences, which hand out numbers at
// insert time, not commit time. So that a reader paging events by id never
// skips one that commits later with a smaller id, every transaction that takes
// ids first takes one transaction-scoped advisory lock: id order is commit
// order, across threads and across controller processes sharing the database.
//
// Thread-safety: every method may be called concurrently. Each call borrows a
// connection from a small pool (opened on demand; at most max_idle_connections
// kept between calls) guarded by a mutex; a connection is used by one thread
// at a time.
//
// Schema: versioned by a one-row table schema_version; Open applies the
// missing migrations in one transaction and refuses a database written by a
// newer icos. Columns mirror SqliteStateStore's (BIGINT for int64 fields, TEXT
// for text); text keys are COLLATE "C" so orders match SQLite's byte order
// whatever the database's locale.
#ifndef ICOS_STORE_POSTGRES_STATE_STORE_H_
#define ICOS_STORE_POSTGRES_STATE_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/group_commit.h"
#include "store/records.h"
#include "store/state_store.h"

namespace icos::store {

namespace pg_internal {
class Connection;  // a PGconn*; postgres_state_store.cc
}  // namespace pg_internal

struct PostgresOptions {
  // A libpq connection string or URI, e.g. "postgresql:///icos?host=/run/pg"
  // or "host=db.example dbname=icos user=icos". A password in it is never
  // echoed in error messages.
  std::string conninfo;
  // Schema (namespace) that holds the tables, created if absent; empty: the
  // server's default search_path (normally "public"). Lets several stores, or
  // tests, share one database.
  std::string schema;
  // Connections kept open between calls; more are opened under load and
  // closed when returned beyond this many.
  int max_idle_connections = 4;
  // How long opening a connection may take before it fails. Seconds.
  int connect_timeout_s = 10;
  // Most InsertJob calls one group commit carries, bounding transaction size.
  int max_group_commit = 1024;
};

class PostgresStateStore : public StateStore {
 public:
  // The schema version this code writes; Open migrates older databases to it.
  // Versions match SqliteStateStore's: the same tables at the same version.
  static constexpr int32_t kSchemaVersion = 9;

  // Connects, creates options.schema if needed and migrates it.
  // Errors: InvalidArgument for an empty or malformed conninfo; Unavailable
  // when the server cannot be reached (with libpq's message and the target,
  // password masked); PermissionDenied when the server refuses the login;
  // FailedPrecondition when the schema is newer than kSchemaVersion.
  static absl::StatusOr<std::unique_ptr<PostgresStateStore>> Open(const PostgresOptions& options);

  PostgresStateStore(const PostgresStateStore&) = delete;
  PostgresStateStore& operator=(const PostgresStateStore&) = delete;
  ~PostgresStateStore() override;

  // job->id is ignored on input and assigned on success (left as is on
  // failure). A failed group commit fails every InsertJob in that group.
  absl::Status InsertJob(JobRecord* job) override;
  absl::Status InsertJobs(std::vector<JobRecord>* jobs) override;
  // Writes in the same field order as SqliteStateStore::Apply. NotFound, with
  // nothing applied, when a job or a task's or usage record's job does not exist.
  absl::Status Apply(WriteBatch batch) override;

  absl::StatusOr<JobRecord> GetJob(int64_t id) override;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(const JobQuery& query) override;
  absl::StatusOr<std::vector<TaskRecord>> ListTasks(int64_t job_id) override;
  absl::StatusOr<std::vector<TaskRecord>> ListActiveTasks() override;
  // Nodes, queues and tokens come in key order (bytewise).
  absl::StatusOr<std::vector<NodeRecord>> ListNodes() override;
  absl::StatusOr<std::vector<QueueRecord>> ListQueues() override;
  absl::StatusOr<std::vector<ServiceRecord>> ListServices() override;
  absl::StatusOr<TokenRecord> GetToken(const std::string& token_hash) override;
  absl::StatusOr<std::vector<TokenRecord>> ListTokens() override;
  absl::StatusOr<std::vector<EventRecord>> ListEvents(int64_t job_id, int64_t after_id, int32_t limit) override;

  absl::StatusOr<std::vector<UsageRecord>> ListUsage(int64_t since_ms, int64_t until_ms) override;
  absl::StatusOr<std::vector<NotificationRecord>> ListDueNotifications(int64_t now_ms, int32_t limit) override;
  absl::StatusOr<std::vector<UtilisationSample>> ListUtilisation(int64_t since_s, int64_t until_s) override;
  absl::StatusOr<std::vector<JobCounts>> CountJobs(int64_t since_ms, int64_t until_ms) override;
  absl::StatusOr<std::vector<std::pair<JobState, int64_t>>> CountJobsByState() override;

  int32_t SchemaVersion() override { return schema_version_; }

  // Leadership is a session-level advisory lock (keyed by the schema) held on
  // a connection of its own, recorded with its epoch in the leader table.
  // Writes read the leader row FOR SHARE in their transaction: a takeover's
  // update waits for them, and any write after it sees the new epoch.
  absl::StatusOr<LeadResult> TryLead(const LeaderRecord& me) override;
  absl::Status CheckLeadership() override;
  absl::StatusOr<LeaderRecord> GetLeader() override;
  absl::StatusOr<std::string> ClusterId(const std::string& candidate) override;

 private:
  PostgresStateStore(PostgresOptions options, std::unique_ptr<pg_internal::Connection> first, int32_t schema_version);

  // Runs `use` on a pooled connection (opening one when none is idle). The
  // connection goes back to the pool only if it is still healthy and idle. A
  // pooled connection found dead before any statement ran is replaced and
  // `use` retried once, so a server restart costs no failed call.
  absl::Status WithConnection(absl::FunctionRef<absl::Status(pg_internal::Connection&)> use);

  // OK unless this store led and another has taken over since (fencing);
  // runs inside the write transaction.
  absl::Status CheckFence(pg_internal::Connection& conn, absl::string_view what);
  // Inserts every job of `group` (and its Submitted event) in one transaction.
  absl::Status CommitInserts(const std::vector<JobRecord*>& group);

  const PostgresOptions options_;
  const int32_t schema_version_;

  // Leadership: the session holding the lock (null: none) and the epoch
  // taken (0: never led).
  std::mutex lead_mu_;
  std::unique_ptr<pg_internal::Connection> lock_conn_ ABSL_GUARDED_BY(lead_mu_);
  std::atomic<int64_t> fence_epoch_{0};

  // InsertJob callers queue here and commit in groups.
  GroupCommitQueue inserts_;
  // When expired idempotency keys were last deleted (submit_ms clock).
  int64_t last_key_prune_ms_ = 0;

  std::mutex pool_mu_;
  std::vector<std::unique_ptr<pg_internal::Connection>> idle_ ABSL_GUARDED_BY(pool_mu_);
};

}  // namespace icos::store

#endif  // ICOS_STORE_POSTGRES_STATE_STORE_H_
