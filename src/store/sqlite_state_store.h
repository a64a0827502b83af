// SqliteStateStore: the embedded StateStore, one SQLite database file.
//
// Durability: WAL journal with synchronous=FULL, so a write method that returns
// OK has been fsync'ed. InsertJob group-commits: callers that arrive while a
// commit is in flight are batched into the next transaction, so N concurrent
// submits cost about one fsync, not N.
//
// Thread-safety: every method may be called concurrently. Writes go through one
// connection under a mutex; reads of a file database use a pool of separate
// read connections (WAL lets them run beside the writer). A ":memory:" database
// lives in a single connection, so its reads share the writer's mutex.
//
// Schema: versioned by PRAGMA user_version; Open applies the missing migrations
// in one transaction and refuses a database written by a newer icos.
#ifndef ICOS_STORE_SQLITE_STATE_STORE_H_
#define ICOS_STORE_SQLITE_STATE_STORE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "store/group_commit.h"
#include "store/records.h"
#include "store/state_store.h"

namespace icos::store {

namespace sqlite_internal {
class Connection;  // a sqlite3* with its prepared statements; sqlite_state_store.cc
}  // namespace sqlite_internal

struct SqliteOptions {
  // Database file, created if absent (its directory must exist). ":memory:" is a
  // private, non-durable database that lives as long as the store (tests).
  std::string path;
  // How long a write waits for another process's lock on the file before it
  // fails with "database is locked" (Unavailable). Milliseconds.
  int busy_timeout_ms = 5000;
  // Read connections kept open between reads (file databases only); more are
  // opened on demand under load and closed when returned beyond this many.
  int max_idle_readers = 4;
  // Most InsertJob calls one group commit carries, bounding transaction size.
  int max_group_commit = 1024;
};

class SqliteStateStore : public StateStore {
 public:
  // The schema version this code writes; Open migrates older databases to it.
  static constexpr int32_t kSchemaVersion = 9;

  // Opens (creating if needed) and migrates the database at options.path.
  // Errors: InvalidArgument for an empty path; FailedPrecondition for a file
  // that is not a database or whose schema is newer than kSchemaVersion;
  // DataLoss for a corrupt database; otherwise SQLite's own error, with the path.
  static absl::StatusOr<std::unique_ptr<SqliteStateStore>> Open(const SqliteOptions& options);

  SqliteStateStore(const SqliteStateStore&) = delete;
  SqliteStateStore& operator=(const SqliteStateStore&) = delete;
  ~SqliteStateStore() override;

  // job->id is ignored on input and assigned on success. A failed group commit
  // fails every InsertJob in that group; none of them is stored.
  absl::Status InsertJob(JobRecord* job) override;
  absl::Status InsertJobs(std::vector<JobRecord>* jobs) override;
  // Writes in field order (jobs, tasks, nodes, queues, deleted_queues, tokens,
  // events, usage, samples, then the sample prune), so a queue both upserted and deleted in one batch ends up deleted.
  // NotFound, with nothing applied, when a job or a task's job does not exist.
  absl::Status Apply(WriteBatch batch) override;

  absl::StatusOr<JobRecord> GetJob(int64_t id) override;
  absl::StatusOr<std::vector<JobRecord>> ListJobs(const JobQuery& query) override;
  absl::StatusOr<std::vector<TaskRecord>> ListTasks(int64_t job_id) override;
  absl::StatusOr<std::vector<TaskRecord>> ListActiveTasks() override;
  // Nodes, queues and tokens come in key order.
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

  // Leadership of a file database is an exclusive flock(2) on "<path>.leader"
  // (so a local filesystem: flock over NFS is not to be trusted), recorded
  // with its epoch in the leader table. Writes check the epoch inside their
  // BEGIN IMMEDIATE transaction, so no write of an old leader lands after a
  // takeover.
  absl::StatusOr<LeadResult> TryLead(const LeaderRecord& me) override;
  absl::Status CheckLeadership() override;
  absl::StatusOr<LeaderRecord> GetLeader() override;
  absl::StatusOr<std::string> ClusterId(const std::string& candidate) override;

 private:
  SqliteStateStore(SqliteOptions options, std::unique_ptr<sqlite_internal::Connection> writer, int32_t schema_version);

  // Inserts every job of `group` (and its Submitted event) in one transaction.
  absl::Status CommitInserts(const std::vector<JobRecord*>& group);
  // Records `me` as the leader with the next epoch; returns the new record.
  absl::StatusOr<LeaderRecord> BumpLeaderEpoch(const LeaderRecord& me, absl::string_view what);
  // OK unless this store led and another has taken over since (fencing);
  // runs inside the write transaction.
  absl::Status CheckFence(sqlite_internal::Connection& conn, absl::string_view what);
  // Runs `read` on a read connection: a pooled one for a file database, the
  // writer (under write_mu_) for an in-memory one.
  absl::Status WithReader(absl::FunctionRef<absl::Status(sqlite_internal::Connection&)> read);

  const SqliteOptions options_;
  const bool in_memory_;
  const int32_t schema_version_;

  std::mutex write_mu_;
  std::unique_ptr<sqlite_internal::Connection> writer_ ABSL_GUARDED_BY(write_mu_);

  // InsertJob callers queue here and commit in groups.
  GroupCommitQueue inserts_;
  // When expired idempotency keys were last deleted (submit_ms clock).
  int64_t last_key_prune_ms_ = 0;

  // Leadership: the locked file (-1: none) and the epoch taken (0: never led).
  std::mutex lead_mu_;
  int lock_fd_ ABSL_GUARDED_BY(lead_mu_) = -1;
  std::atomic<int64_t> fence_epoch_{0};

  std::mutex readers_mu_;
  std::vector<std::unique_ptr<sqlite_internal::Connection>> idle_readers_ ABSL_GUARDED_BY(readers_mu_);
};

}  // namespace icos::store

#endif  // ICOS_STORE_SQLITE_STATE_STORE_H_
