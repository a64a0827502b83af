#include "store/sqlite_state_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "store/record_columns.h"
#include "store/sql_queries.h"
#include "store/sqlite_connection.h"

namespace icos::store {
namespace {

// The schema's migrations and every query are sql_queries.h's, in SQLite's words.
constexpr sql::Dialect kDialect = sql::Dialect::kSqlite;
static_assert(sql::kMigrationCount == SqliteStateStore::kSchemaVersion,
              "kSchemaVersion must equal the number of migrations");

using sqlite_internal::Connection;
using sqlite_internal::SqliteError;
using sqlite_internal::Stmt;
using sqlite_internal::Transaction;

// The row a Stmt stands on, as record_columns.h's decoders read rows.
struct StmtRow {
  const Stmt& st;
  int64_t Int(int i) const { return st.ColumnInt(i); }
  int32_t Int32(int i) const { return st.ColumnInt32(i); }
  std::string Text(int i) const { return st.ColumnText(i); }
  bool Bool(int i) const { return st.ColumnInt(i) != 0; }
};

// Runs an INSERT .. RETURNING id to its end; returns the id.
absl::StatusOr<int64_t> InsertReturningId(Connection& conn, const sql::Query& query, absl::string_view what) {
  Stmt st(conn, query, what);
  absl::StatusOr<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError(absl::StrCat(what, ": no id returned"));
  const int64_t id = st.ColumnInt(0);
  if (absl::Status s = st.Run(); !s.ok()) return s;  // SQLITE_DONE: the statement is complete
  return id;
}

absl::StatusOr<int64_t> InsertEvent(Connection& conn, const EventRecord& event, absl::string_view what) {
  return InsertReturningId(conn, sql::InsertEvent(kDialect, event), what);
}

// Collects every row of `st` into `out` with `read`, which returns a record or
// StatusOr of one.
template <typename T, typename ReadFn>
absl::Status CollectRows(Stmt& st, std::vector<T>* out, ReadFn read) {
  while (true) {
    absl::StatusOr<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
    if constexpr (std::is_same_v<decltype(read(st)), T>) {
      out->push_back(read(st));
    } else {
      auto record = read(st);
      if (!record.ok()) return record.status();
      out->push_back(*std::move(record));
    }
  }
}

// Opens `path` and sets the connection up as the store's writer: WAL, fsync
// on every commit, foreign keys enforced.
absl::StatusOr<std::unique_ptr<Connection>> OpenWriter(const SqliteOptions& options, bool in_memory) {
  const std::string what = absl::StrCat("open ", options.path);
  absl::StatusOr<std::unique_ptr<Connection>> conn =
      Connection::Open(options.path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options.busy_timeout_ms);
  if (!conn.ok()) return conn.status();

  // The first statement to read the file: a non-database fails here.
  const std::string journal_what = absl::StrCat(what, ": set WAL journal mode");
  Stmt journal(**conn, "PRAGMA journal_mode=WAL", journal_what);
  absl::StatusOr<bool> row = journal.Step();
  if (!row.ok()) return row.status();
  const std::string mode = *row ? journal.ColumnText(0) : "";
  // An in-memory database reports "memory"; a file must really be in WAL, or
  // readers would block the writer and commits would cost two fsyncs.
  if (!in_memory && mode != "wal") {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": cannot use WAL journal mode (got '", mode, "'); put the database on a local filesystem"));
  }
  if (absl::Status s = (*conn)->Exec("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;", what); !s.ok()) return s;
  return conn;
}

// Brings the schema to kSchemaVersion in one transaction; returns the version.
absl::StatusOr<int32_t> Migrate(Connection& conn, const std::string& path) {
  const std::string what = absl::StrCat("open ", path);
  // IMMEDIATE: two processes opening an old database at once migrate it once.
  Transaction txn(conn, absl::StrCat(what, ": begin migration"));
  if (!txn.status().ok()) return txn.status();

  Stmt version_st(conn, "PRAGMA user_version", what);
  absl::StatusOr<bool> row = version_st.Step();
  if (!row.ok()) return row.status();
  const int64_t version = *row ? version_st.ColumnInt(0) : 0;
  constexpr int32_t kLatest = SqliteStateStore::kSchemaVersion;
  if (absl::Status s = CheckSchemaVersion(version, kLatest, what); !s.ok()) return s;
  if (version == kLatest) return kLatest;

  for (int64_t v = version; v < kLatest; ++v) {
    const std::string step = sql::Migration(kDialect, static_cast<int32_t>(v + 1));
    if (absl::Status s = conn.Exec(step.c_str(), absl::StrCat(what, ": migrate to schema v", v + 1)); !s.ok()) {
      return s;
    }
  }
  // user_version lives in the file header and is part of the transaction, so
  // a crash leaves either the old schema and version or the new ones.
  const std::string set_version = absl::StrCat("PRAGMA user_version = ", kLatest);
  if (absl::Status s = conn.Exec(set_version.c_str(), what); !s.ok()) return s;
  if (absl::Status s = txn.Commit(); !s.ok()) return s;
  return kLatest;
}

// The leader row; inside a write transaction when `in_write`.
absl::StatusOr<LeaderRecord> ReadLeader(Connection& conn, bool in_write, absl::string_view what) {
  Stmt st(conn, sql::ReadLeader(kDialect, /*lock_row=*/in_write), what);
  absl::StatusOr<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::DataLossError(absl::StrCat(what, ": the leader row is missing"));
  return columns::DecodeLeader(StmtRow{st});
}

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStateStore>> SqliteStateStore::Open(const SqliteOptions& options) {
  if (options.path.empty()) {
    return absl::InvalidArgumentError("open: SqliteOptions.path is empty; give a file path or \":memory:\"");
  }
  const bool in_memory = options.path == ":memory:";
  absl::StatusOr<std::unique_ptr<Connection>> writer = OpenWriter(options, in_memory);
  if (!writer.ok()) return writer.status();
  absl::StatusOr<int32_t> version = Migrate(**writer, options.path);
  if (!version.ok()) return version.status();
  return std::unique_ptr<SqliteStateStore>(new SqliteStateStore(options, *std::move(writer), *version));
}

SqliteStateStore::SqliteStateStore(SqliteOptions options, std::unique_ptr<Connection> writer, int32_t schema_version)
    : options_(std::move(options)),
      in_memory_(options_.path == ":memory:"),
      schema_version_(schema_version),
      writer_(std::move(writer)),
      inserts_(options_.max_group_commit) {}

SqliteStateStore::~SqliteStateStore() {
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    idle_readers_.clear();
  }
  {
    std::lock_guard<std::mutex> lock(write_mu_);
    // Refreshes the planner's statistics where they are stale; cheap when not.
    writer_->Exec("PRAGMA optimize", "close").IgnoreError();
    writer_.reset();
  }
  std::lock_guard<std::mutex> lead(lead_mu_);  // taken before write_mu_ elsewhere, never inside it
  if (lock_fd_ >= 0) ::close(lock_fd_);        // releases the leadership
}

absl::Status SqliteStateStore::CheckFence(Connection& conn, absl::string_view what) {
  const int64_t mine = fence_epoch_.load(std::memory_order_acquire);
  if (mine == 0) return absl::OkStatus();
  return CheckEpoch(mine, ReadLeader(conn, /*in_write=*/true, what), what);
}

absl::StatusOr<LeadResult> SqliteStateStore::TryLead(const LeaderRecord& me) {
  constexpr absl::string_view kWhat = "take the store's leadership";
  std::lock_guard<std::mutex> lead(lead_mu_);
  if (fence_epoch_.load() != 0) {
    absl::StatusOr<LeaderRecord> current = GetLeader();
    if (!current.ok()) return current.status();
    return LeadResult{.acquired = current->epoch == fence_epoch_.load(), .leader = *current};
  }
  // A file database is claimed with an exclusive flock on a file beside it:
  // the kernel drops the lock when the process dies, however it dies. (A
  // ":memory:" database has one store object by nature.)
  int fd = -1;
  if (!in_memory_) {
    const std::string lock_path = options_.path + ".leader";
    fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return absl::UnavailableError(absl::StrCat(kWhat, ": cannot open ", lock_path, ": ", strerror(errno)));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err != EWOULDBLOCK) {
        return absl::UnavailableError(absl::StrCat(kWhat, ": cannot lock ", lock_path, ": ", strerror(err)));
      }
      absl::StatusOr<LeaderRecord> current = GetLeader();
      if (!current.ok()) return current.status();
      return LeadResult{.acquired = false, .leader = *current};
    }
  }
  absl::StatusOr<LeaderRecord> taken = BumpLeaderEpoch(me, kWhat);
  if (!taken.ok()) {
    if (fd >= 0) ::close(fd);
    return taken.status();
  }
  lock_fd_ = fd;
  fence_epoch_.store(taken->epoch, std::memory_order_release);
  return LeadResult{.acquired = true, .leader = *taken};
}

absl::StatusOr<LeaderRecord> SqliteStateStore::BumpLeaderEpoch(const LeaderRecord& me, absl::string_view what) {
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& conn = *writer_;
  Transaction txn(conn, what);
  if (!txn.status().ok()) return txn.status();
  LeaderRecord taken;
  {
    Stmt st(conn, sql::TakeLeader(kDialect, me), what);
    absl::StatusOr<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (!*row) return absl::DataLossError(absl::StrCat(what, ": the leader row is missing"));
    taken = columns::DecodeLeader(StmtRow{st});
    if (absl::Status s = st.Run(); !s.ok()) return s;  // SQLITE_DONE: the statement is complete
  }
  if (absl::Status s = txn.Commit(); !s.ok()) return s;
  return taken;
}

absl::Status SqliteStateStore::CheckLeadership() {
  constexpr absl::string_view kWhat = "check the store's leadership";
  std::lock_guard<std::mutex> lead(lead_mu_);
  const int64_t mine = fence_epoch_.load();
  if (mine == 0) return absl::FailedPreconditionError(absl::StrCat(kWhat, ": this controller never took it"));
  if (lock_fd_ >= 0) {
    // Removing or replacing the lock file would let another process lock a
    // new file of the same name: then this claim no longer excludes anyone.
    const std::string lock_path = options_.path + ".leader";
    struct stat held = {}, named = {};
    if (::fstat(lock_fd_, &held) != 0 || ::stat(lock_path.c_str(), &named) != 0 || held.st_ino != named.st_ino ||
        held.st_dev != named.st_dev) {
      return absl::UnavailableError(absl::StrCat(kWhat, ": the lock file ", lock_path,
                                                 " was removed or replaced, so it no longer excludes "
                                                 "another controller"));
    }
  }
  return CheckEpoch(mine, GetLeader(), kWhat);
}

absl::StatusOr<LeaderRecord> SqliteStateStore::GetLeader() {
  absl::StatusOr<LeaderRecord> out;
  absl::Status status = WithReader([&](Connection& conn) {
    out = ReadLeader(conn, /*in_write=*/false, "get leader");
    return out.status();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::string> SqliteStateStore::ClusterId(const std::string& candidate) {
  constexpr absl::string_view kWhat = "cluster id";
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& conn = *writer_;
  {
    Stmt st(conn, sql::InsertClusterId(kDialect, candidate, absl::ToUnixMillis(absl::Now())), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  Stmt st(conn, sql::GetClusterId(kDialect), kWhat);
  absl::StatusOr<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::InternalError("cluster id: no row after inserting one");
  return st.ColumnText(0);
}

absl::Status SqliteStateStore::InsertJob(JobRecord* job) {
  if (job == nullptr) return absl::InvalidArgumentError("insert job: job is null");
  absl::Status st = inserts_.Insert(job, [this](const std::vector<JobRecord*>& group) { return CommitInserts(group); });
  return st.ok() ? InsertOutcome(*job) : st;
}

absl::Status SqliteStateStore::InsertJobs(std::vector<JobRecord>* jobs) {
  return inserts_.InsertArray(jobs, [this](const std::vector<JobRecord*>& group) { return CommitInserts(group); });
}

absl::Status SqliteStateStore::CommitInserts(const std::vector<JobRecord*>& group) {
  constexpr absl::string_view kWhat = "insert job";

  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& conn = *writer_;
  Transaction txn(conn, kWhat);
  if (!txn.status().ok()) return txn.status();
  if (absl::Status s = CheckFence(conn, kWhat); !s.ok()) return s;
  std::vector<IdempotentOutcome> outcomes(group.size());
  ArrayInsertWalk arrays;
  for (size_t i = 0; i < group.size(); ++i) {
    const JobRecord& job = *group[i];
    if (!arrays.ShouldInsert(job)) continue;
    if (!job.idempotency_key.empty()) {
      Stmt st(conn,
              sql::FindIdempotencyKey(kDialect, job.user, job.idempotency_key, job.submit_ms - kIdempotencyWindowMs),
              kWhat);
      absl::StatusOr<bool> row = st.Step();
      if (!row.ok()) return row.status();
      if (*row) {  // this key's job exists (maybe from earlier in this very group)
        outcomes[i] = {.id = st.ColumnInt(0), .existing = true, .conflict = st.ColumnText(1) != job.request_digest};
        outcomes[i].array_id = job.starts_array ? outcomes[i].id : 0;
        arrays.Inserted(job, outcomes[i].id, /*replayed=*/true);
        continue;
      }
    }
    const JobRecord row = arrays.Row(job);
    absl::StatusOr<int64_t> inserted = InsertReturningId(conn, sql::InsertJob(kDialect, row), kWhat);
    if (!inserted.ok()) return inserted.status();
    const int64_t id = *inserted;
    outcomes[i].id = id;
    outcomes[i].array_id = job.starts_array ? id : row.array_id;
    arrays.Inserted(job, id, /*replayed=*/false);
    if (job.starts_array) {
      Stmt st(conn, sql::SetOwnArray(kDialect, id), kWhat);
      if (absl::Status s = st.Run(); !s.ok()) return s;
    }
    if (absl::StatusOr<int64_t> event = InsertEvent(conn, SubmittedEvent(job, id), kWhat); !event.ok()) {
      return event.status();
    }
    if (!job.idempotency_key.empty()) {
      Stmt st(conn,
              sql::PutIdempotencyKey(kDialect, job.user, job.idempotency_key, id, job.request_digest, job.submit_ms),
              kWhat);
      if (absl::Status s = st.Run(); !s.ok()) return s;
    }
  }
  // Keys past their window go at most once a minute, in the same commit.
  const int64_t newest = group.empty() ? 0 : group.back()->submit_ms;
  if (newest - last_key_prune_ms_ >= 60'000) {
    Stmt st(conn, sql::PruneIdempotencyKeys(kDialect, newest - kIdempotencyWindowMs), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  if (absl::Status s = txn.Commit(); !s.ok()) return s;
  if (newest - last_key_prune_ms_ >= 60'000) last_key_prune_ms_ = newest;
  // Ids are handed out only once durable, so a failed group leaves them at 0.
  ApplyOutcomes(group, outcomes);
  return absl::OkStatus();
}

absl::Status SqliteStateStore::Apply(WriteBatch batch) {
  constexpr absl::string_view kWhat = "apply";

  if (batch.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(write_mu_);
  Connection& conn = *writer_;
  Transaction txn(conn, kWhat);
  if (!txn.status().ok()) return txn.status();
  if (absl::Status s = CheckFence(conn, kWhat); !s.ok()) return s;

  for (const JobRecord& job : batch.jobs) {
    Stmt st(conn, sql::UpdateJob(kDialect, job), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
    if (sqlite3_changes(conn.db()) == 0) {
      return absl::NotFoundError(absl::StrCat("apply: job ", job.id, " does not exist"));
    }
  }
  for (const TaskRecord& task : batch.tasks) {
    Stmt st(conn, sql::UpsertTask(kDialect, task), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) {
      if (st.rc() == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return absl::NotFoundError(absl::StrCat("apply: task (group ", task.group, ", replica ", task.replica,
                                                ", attempt ", task.attempt, ") of job ", task.job_id,
                                                ": job does not exist"));
      }
      return s;
    }
  }
  for (const NodeRecord& node : batch.nodes) {
    Stmt st(conn, sql::UpsertNode(kDialect, node), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const QueueRecord& queue : batch.queues) {
    Stmt st(conn, sql::UpsertQueue(kDialect, queue), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const std::string& name : batch.deleted_queues) {
    Stmt st(conn, sql::DeleteQueue(kDialect, name), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const ServiceRecord& service : batch.services) {
    Stmt st(conn, sql::UpsertService(kDialect, service), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const TokenRecord& token : batch.tokens) {
    Stmt st(conn, sql::UpsertToken(kDialect, token), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const EventRecord& event : batch.events) {
    if (absl::StatusOr<int64_t> id = InsertEvent(conn, event, kWhat); !id.ok()) return id.status();
  }
  for (const UsageRecord& u : batch.usage) {
    Stmt st(conn, sql::UpsertUsage(kDialect, u), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) {
      if (st.rc() == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return absl::NotFoundError(absl::StrCat("apply: usage of job ", u.job_id, ": job does not exist"));
      }
      return s;
    }
  }
  for (const UtilisationSample& sample : batch.samples) {
    Stmt st(conn, sql::UpsertSample(kDialect, sample), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  if (batch.prune_samples_before_s > 0) {
    Stmt st(conn, sql::PruneSamples(kDialect, batch.prune_samples_before_s), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const NotificationRecord& n : batch.notifications) {
    if (n.id == 0) {
      if (absl::StatusOr<int64_t> id = InsertReturningId(conn, sql::InsertNotification(kDialect, n), kWhat); !id.ok()) {
        return id.status();
      }
      continue;
    }
    Stmt st(conn, sql::UpdateNotification(kDialect, n), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (int64_t id : batch.done_notifications) {
    Stmt st(conn, sql::DeleteNotification(kDialect, id), kWhat);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  return txn.Commit();
}

absl::Status SqliteStateStore::WithReader(absl::FunctionRef<absl::Status(Connection&)> read) {
  if (in_memory_) {
    // An in-memory database exists only inside the writer's connection.
    std::lock_guard<std::mutex> lock(write_mu_);
    return read(*writer_);
  }
  std::unique_ptr<Connection> conn;
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    if (!idle_readers_.empty()) {
      conn = std::move(idle_readers_.back());
      idle_readers_.pop_back();
    }
  }
  if (conn == nullptr) {
    absl::StatusOr<std::unique_ptr<Connection>> opened =
        Connection::Open(options_.path, SQLITE_OPEN_READWRITE, options_.busy_timeout_ms);
    if (!opened.ok()) return opened.status();
    conn = *std::move(opened);
    // Read-write so WAL's shared memory works without the files' write
    // permission subtleties; query_only keeps a bug from writing through it.
    if (absl::Status s = conn->Exec("PRAGMA query_only=1", absl::StrCat("open reader ", options_.path)); !s.ok()) {
      return s;
    }
  }
  absl::Status status = read(*conn);
  {
    std::lock_guard<std::mutex> lock(readers_mu_);
    if (idle_readers_.size() < static_cast<size_t>(std::max(0, options_.max_idle_readers))) {
      idle_readers_.push_back(std::move(conn));
    }
  }
  return status;  // `conn`, when not pooled, closes here, outside the lock
}

absl::StatusOr<JobRecord> SqliteStateStore::GetJob(int64_t id) {
  constexpr absl::string_view kWhat = "get job";
  absl::StatusOr<JobRecord> job = absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  absl::Status status = WithReader([&](Connection& conn) -> absl::Status {
    Stmt st(conn, sql::GetJob(kDialect, id), kWhat);
    absl::StatusOr<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (*row) job = columns::DecodeJob(StmtRow{st}, kWhat);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return job;
}

absl::StatusOr<std::vector<JobRecord>> SqliteStateStore::ListJobs(const JobQuery& query) {
  constexpr absl::string_view kWhat = "list jobs";
  absl::StatusOr<sql::Query> q = sql::ListJobs(kDialect, query);
  if (!q.ok()) return q.status();
  std::vector<JobRecord> jobs;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, *q, kWhat);
    return CollectRows(st, &jobs, [&](const Stmt& row) { return columns::DecodeJob(StmtRow{row}, kWhat); });
  });
  if (!status.ok()) return status;
  return jobs;
}

absl::StatusOr<std::vector<TaskRecord>> SqliteStateStore::ListTasks(int64_t job_id) {
  constexpr absl::string_view kWhat = "list tasks";
  std::vector<TaskRecord> tasks;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::ListTasks(kDialect, job_id), kWhat);
    return CollectRows(st, &tasks, [&](const Stmt& row) { return columns::DecodeTask(StmtRow{row}, kWhat); });
  });
  if (!status.ok()) return status;
  return tasks;
}

absl::StatusOr<std::vector<TaskRecord>> SqliteStateStore::ListActiveTasks() {
  constexpr absl::string_view kWhat = "list active tasks";
  std::vector<TaskRecord> tasks;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::ListActiveTasks(kDialect), kWhat);
    return CollectRows(st, &tasks, [&](const Stmt& row) { return columns::DecodeTask(StmtRow{row}, kWhat); });
  });
  if (!status.ok()) return status;
  return tasks;
}

absl::StatusOr<std::vector<NodeRecord>> SqliteStateStore::ListNodes() {
  std::vector<NodeRecord> nodes;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::ListNodes(kDialect), "list nodes");
    return CollectRows(st, &nodes, [](const Stmt& row) { return columns::DecodeNode(StmtRow{row}); });
  });
  if (!status.ok()) return status;
  return nodes;
}

absl::StatusOr<std::vector<QueueRecord>> SqliteStateStore::ListQueues() {
  std::vector<QueueRecord> queues;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::ListQueues(kDialect), "list queues");
    return CollectRows(st, &queues, [](const Stmt& row) {
      return QueueRecord{.name = row.ColumnText(0), .spec_json = row.ColumnText(1)};
    });
  });
  if (!status.ok()) return status;
  return queues;
}

absl::StatusOr<std::vector<ServiceRecord>> SqliteStateStore::ListServices() {
  std::vector<ServiceRecord> services;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::ListServices(kDialect), "list services");
    return CollectRows(st, &services, [](const Stmt& row) {
      return ServiceRecord{.id = row.ColumnInt(0), .state_json = row.ColumnText(1)};
    });
  });
  if (!status.ok()) return status;
  return services;
}

absl::StatusOr<TokenRecord> SqliteStateStore::GetToken(const std::string& token_hash) {
  // The hash is a credential's fingerprint; it stays out of error messages.
  absl::StatusOr<TokenRecord> token = absl::NotFoundError("token not found");
  absl::Status status = WithReader([&](Connection& conn) -> absl::Status {
    Stmt st(conn, sql::GetToken(kDialect, token_hash), "get token");
    absl::StatusOr<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (*row) token = columns::DecodeToken(StmtRow{st});
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return token;
}

absl::StatusOr<std::vector<TokenRecord>> SqliteStateStore::ListTokens() {
  std::vector<TokenRecord> tokens;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::ListTokens(kDialect), "list tokens");
    return CollectRows(st, &tokens, [](const Stmt& row) { return columns::DecodeToken(StmtRow{row}); });
  });
  if (!status.ok()) return status;
  return tokens;
}

absl::StatusOr<std::vector<EventRecord>> SqliteStateStore::ListEvents(int64_t job_id, int64_t after_id, int32_t limit) {
  absl::StatusOr<sql::Query> q = sql::ListEvents(kDialect, job_id, after_id, limit);
  if (!q.ok()) return q.status();
  std::vector<EventRecord> events;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, *q, "list events");
    return CollectRows(st, &events, [](const Stmt& row) { return columns::DecodeEvent(StmtRow{row}); });
  });
  if (!status.ok()) return status;
  return events;
}

absl::StatusOr<std::vector<NotificationRecord>> SqliteStateStore::ListDueNotifications(int64_t now_ms, int32_t limit) {
  absl::StatusOr<sql::Query> q = sql::ListDueNotifications(kDialect, now_ms, limit);
  if (!q.ok()) return q.status();
  std::vector<NotificationRecord> out;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, *q, "list notifications");
    return CollectRows(st, &out, [](const Stmt& row) { return columns::DecodeNotification(StmtRow{row}); });
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<UsageRecord>> SqliteStateStore::ListUsage(int64_t since_ms, int64_t until_ms) {
  std::vector<UsageRecord> out;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::ListUsage(kDialect, since_ms, until_ms), "list usage");
    return CollectRows(st, &out, [](const Stmt& row) { return columns::DecodeUsage(StmtRow{row}); });
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<UtilisationSample>> SqliteStateStore::ListUtilisation(int64_t since_s, int64_t until_s) {
  std::vector<UtilisationSample> out;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::ListUtilisation(kDialect, since_s, until_s), "list utilisation");
    return CollectRows(st, &out, [](const Stmt& row) {
      return UtilisationSample{.time_s = row.ColumnInt(0), .sample_json = row.ColumnText(1)};
    });
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<JobCounts>> SqliteStateStore::CountJobs(int64_t since_ms, int64_t until_ms) {
  std::vector<JobCounts> out;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::CountJobs(kDialect, since_ms, until_ms), "count jobs");
    return CollectRows(st, &out, [](const Stmt& row) {
      return JobCounts{.user = row.ColumnText(0),
                       .queue = row.ColumnText(1),
                       .submitted = row.ColumnInt(2),
                       .succeeded = row.ColumnInt(3),
                       .failed = row.ColumnInt(4),
                       .cancelled = row.ColumnInt(5),
                       .lost_device_ms = row.ColumnInt(6)};
    });
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<std::pair<JobState, int64_t>>> SqliteStateStore::CountJobsByState() {
  std::vector<std::pair<JobState, int64_t>> out;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql::CountJobsByState(kDialect), "count jobs by state");
    return CollectRows(st, &out, [](const Stmt& row) -> absl::StatusOr<std::pair<JobState, int64_t>> {
      const std::string name = row.ColumnText(0);
      std::optional<JobState> state = ParseJobState(name);
      if (!state) return absl::DataLossError(absl::StrCat("count jobs by state: unknown state '", name, "'"));
      return std::make_pair(*state, row.ColumnInt(1));
    });
  });
  if (!status.ok()) return status;
  return out;
}

}  // namespace icos::store
