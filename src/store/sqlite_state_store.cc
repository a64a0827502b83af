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
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "store/record_columns.h"
#include "store/sqlite_connection.h"

namespace icos::store {
namespace {

// Migrations, in order: kMigrations[i] takes the schema from version i to i+1.
// Released steps never change; a schema change is a new step at the end.
//
// STRICT tables make SQLite reject a value of the wrong type instead of
// silently storing it, so what is read back is what was written.
constexpr const char* kMigrations[] = {
    // v1: the initial schema.
    R"sql(
CREATE TABLE jobs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids are never reused
  name TEXT NOT NULL,
  user TEXT NOT NULL,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL,
  state TEXT NOT NULL,
  spec_json TEXT NOT NULL,
  reason TEXT NOT NULL,
  submit_ms INTEGER NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  attempt INTEGER NOT NULL
) STRICT;
CREATE INDEX jobs_by_state ON jobs(state);
CREATE INDEX jobs_by_user ON jobs(user);
CREATE INDEX jobs_by_queue ON jobs(queue);

CREATE TABLE tasks (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  grp INTEGER NOT NULL,
  replica INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  node TEXT NOT NULL,
  placement_json TEXT NOT NULL,
  state TEXT NOT NULL,
  exit_code INTEGER NOT NULL,
  reason TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,
  PRIMARY KEY (job_id, grp, replica, attempt)
) STRICT, WITHOUT ROWID;
CREATE INDEX tasks_by_state ON tasks(state);

CREATE TABLE nodes (
  name TEXT PRIMARY KEY,
  spec_json TEXT NOT NULL,
  state TEXT NOT NULL,
  address TEXT NOT NULL,
  registered_ms INTEGER NOT NULL,
  heartbeat_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE queues (
  name TEXT PRIMARY KEY,
  spec_json TEXT NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE tokens (
  token_hash TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  user TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  revoked INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_id INTEGER NOT NULL,  -- 0: a cluster event; no foreign key for that reason
  node TEXT NOT NULL,
  time_ms INTEGER NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL
) STRICT;
CREATE INDEX events_by_job ON events(job_id);
)sql",
    // v2: usage accounting and utilisation history (issue 6).
    R"sql(
CREATE TABLE usage (
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  grp INTEGER NOT NULL,
  replica INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  user TEXT NOT NULL,
  queue TEXT NOT NULL,
  node TEXT NOT NULL,
  start_ms INTEGER NOT NULL,
  end_ms INTEGER NOT NULL,  -- 0: still running
  cpu_milli INTEGER NOT NULL,
  devices_json TEXT NOT NULL,
  PRIMARY KEY (job_id, grp, replica, attempt)
) STRICT, WITHOUT ROWID;
CREATE INDEX usage_by_start ON usage(start_ms);

CREATE TABLE utilisation (
  time_s INTEGER PRIMARY KEY,
  sample_json TEXT NOT NULL
) STRICT;

-- Job counts over a time window look jobs up by submit and end time.
CREATE INDEX jobs_by_submit ON jobs(submit_ms);
CREATE INDEX jobs_by_end ON jobs(end_ms);
)sql",
    // v3: which controller leads the store (high availability; state_store.h).
    R"sql(
CREATE TABLE leader (
  id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
  epoch INTEGER NOT NULL,
  holder TEXT NOT NULL,
  url TEXT NOT NULL,
  since_ms INTEGER NOT NULL
) STRICT;
INSERT INTO leader(id, epoch, holder, url, since_ms) VALUES (1, 0, '', '', 0);
)sql",
    // v4: idempotency keys of submissions (issue 16): a retried submit finds its job.
    R"sql(
CREATE TABLE idempotency_keys (
  user TEXT NOT NULL,
  key TEXT NOT NULL,
  job_id INTEGER NOT NULL REFERENCES jobs(id),
  request_digest TEXT NOT NULL,
  created_ms INTEGER NOT NULL,
  PRIMARY KEY (user, key)
) STRICT, WITHOUT ROWID;
CREATE INDEX idempotency_keys_by_created ON idempotency_keys(created_ms);

-- Unix identities pinned by tokens, for their jobs (issue 17); token expiry,
-- use and the node a node credential is bound to.
ALTER TABLE jobs ADD COLUMN run_uid INTEGER NOT NULL DEFAULT -1;
ALTER TABLE jobs ADD COLUMN run_gid INTEGER NOT NULL DEFAULT -1;
ALTER TABLE tokens ADD COLUMN uid INTEGER NOT NULL DEFAULT -1;
ALTER TABLE tokens ADD COLUMN gid INTEGER NOT NULL DEFAULT -1;
ALTER TABLE tokens ADD COLUMN expires_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN last_used_ms INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN node TEXT NOT NULL DEFAULT '';

-- The cluster's own id (StateStore::ClusterId), made by the first controller.
CREATE TABLE cluster (
  id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
  cluster_id TEXT NOT NULL,
  created_ms INTEGER NOT NULL
) STRICT;
)sql",
    // v5: jobs held back from scheduling (icos hold), and by whom; job arrays.
    R"sql(
ALTER TABLE jobs ADD COLUMN hold TEXT NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN array_id INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN array_index INTEGER NOT NULL DEFAULT -1;
CREATE INDEX jobs_by_array ON jobs(array_id) WHERE array_id != 0;
)sql",
};
static_assert(std::size(kMigrations) == SqliteStateStore::kSchemaVersion,
              "kSchemaVersion must equal the number of migrations");

using sqlite_internal::Connection;
using sqlite_internal::SqliteError;
using sqlite_internal::Stmt;
using sqlite_internal::Transaction;

// The interface's limit (0: no limit) as SQLite's LIMIT (negative: no limit).
absl::StatusOr<int64_t> SqlLimit(int32_t limit, absl::string_view what) {
  if (absl::Status s = CheckLimit(limit, what); !s.ok()) return s;
  return limit == 0 ? -1 : limit;
}

// The row a Stmt stands on, as record_columns.h's decoders read rows.
struct StmtRow {
  const Stmt& st;
  int64_t Int(int i) const { return st.ColumnInt(i); }
  int32_t Int32(int i) const { return st.ColumnInt32(i); }
  std::string Text(int i) const { return st.ColumnText(i); }
  bool Bool(int i) const { return st.ColumnInt(i) != 0; }
};

absl::StatusOr<int64_t> InsertEvent(Connection& conn, const EventRecord& event, absl::string_view what) {
  static const std::string sql = "INSERT INTO events(job_id, node, time_ms, kind, message) VALUES(?, ?, ?, ?, ?)";
  Stmt st(conn, sql, what);
  st.Int(event.job_id).Text(event.node).Int(event.time_ms).Text(event.kind).Text(event.message);
  if (absl::Status s = st.Run(); !s.ok()) return s;
  return sqlite3_last_insert_rowid(conn.db());
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
    if (absl::Status s = conn.Exec(kMigrations[v], absl::StrCat(what, ": migrate to schema v", v + 1)); !s.ok()) {
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

absl::StatusOr<LeaderRecord> ReadLeader(Connection& conn, absl::string_view what) {
  static const std::string sql = "SELECT epoch, holder, url, since_ms FROM leader WHERE id = 1";
  Stmt st(conn, sql, what);
  absl::StatusOr<bool> row = st.Step();
  if (!row.ok()) return row.status();
  if (!*row) return absl::DataLossError(absl::StrCat(what, ": the leader row is missing"));
  return LeaderRecord{
      .epoch = st.ColumnInt(0), .holder = st.ColumnText(1), .url = st.ColumnText(2), .since_ms = st.ColumnInt(3)};
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
    absl::MutexLock lock(&readers_mu_);
    idle_readers_.clear();
  }
  {
    absl::MutexLock lock(&write_mu_);
    // Refreshes the planner's statistics where they are stale; cheap when not.
    writer_->Exec("PRAGMA optimize", "close").IgnoreError();
    writer_.reset();
  }
  absl::MutexLock lead(&lead_mu_);       // taken before write_mu_ elsewhere, never inside it
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the leadership
}

absl::Status SqliteStateStore::CheckFence(Connection& conn, absl::string_view what) {
  const int64_t mine = fence_epoch_.load(std::memory_order_acquire);
  if (mine == 0) return absl::OkStatus();
  return CheckEpoch(mine, ReadLeader(conn, what), what);
}

absl::StatusOr<LeadResult> SqliteStateStore::TryLead(const LeaderRecord& me) {
  constexpr absl::string_view kWhat = "take the store's leadership";
  absl::MutexLock lead(&lead_mu_);
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
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(conn, what);
  if (!txn.status().ok()) return txn.status();
  Stmt st(conn, "UPDATE leader SET epoch = epoch + 1, holder = ?, url = ?, since_ms = ? WHERE id = 1", what);
  st.Text(me.holder).Text(me.url).Int(me.since_ms);
  if (absl::Status s = st.Run(); !s.ok()) return s;
  absl::StatusOr<LeaderRecord> taken = ReadLeader(conn, what);
  if (!taken.ok()) return taken.status();
  if (absl::Status s = txn.Commit(); !s.ok()) return s;
  return taken;
}

absl::Status SqliteStateStore::CheckLeadership() {
  constexpr absl::string_view kWhat = "check the store's leadership";
  absl::MutexLock lead(&lead_mu_);
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
    out = ReadLeader(conn, "get leader");
    return out.status();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::string> SqliteStateStore::ClusterId(const std::string& candidate) {
  static const std::string insert =
      "INSERT INTO cluster(id, cluster_id, created_ms) VALUES(1, ?, ?) ON CONFLICT(id) DO NOTHING";
  static const std::string select = "SELECT cluster_id FROM cluster WHERE id = 1";
  constexpr absl::string_view kWhat = "cluster id";
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  {
    Stmt st(conn, insert, kWhat);
    st.Text(candidate).Int(absl::ToUnixMillis(absl::Now()));
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  Stmt st(conn, select, kWhat);
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
  static const std::string insert_job =
      "INSERT INTO jobs(name, user, queue, priority, state, spec_json, reason, submit_ms, start_ms, end_ms, "
      "attempt, run_uid, run_gid, hold, array_id, array_index) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
  static const std::string set_own_array = "UPDATE jobs SET array_id = id WHERE id = ?";
  static const std::string find_key =
      "SELECT job_id, request_digest FROM idempotency_keys WHERE user = ? AND key = ? AND created_ms >= ?";
  static const std::string put_key =
      "INSERT INTO idempotency_keys(user, key, job_id, request_digest, created_ms) VALUES(?, ?, ?, ?, ?) "
      "ON CONFLICT(user, key) DO UPDATE SET job_id = excluded.job_id, request_digest = excluded.request_digest, "
      "created_ms = excluded.created_ms";
  static const std::string prune_keys = "DELETE FROM idempotency_keys WHERE created_ms < ?";
  constexpr absl::string_view kWhat = "insert job";

  absl::MutexLock lock(&write_mu_);
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
      Stmt st(conn, find_key, kWhat);
      st.Text(job.user).Text(job.idempotency_key).Int(job.submit_ms - kIdempotencyWindowMs);
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
    {
      Stmt st(conn, insert_job, kWhat);
      columns::BindJobFields(st, row);
      if (absl::Status s = st.Run(); !s.ok()) return s;
    }
    const int64_t id = sqlite3_last_insert_rowid(conn.db());
    outcomes[i].id = id;
    outcomes[i].array_id = job.starts_array ? id : row.array_id;
    arrays.Inserted(job, id, /*replayed=*/false);
    if (job.starts_array) {
      Stmt st(conn, set_own_array, kWhat);
      st.Int(id);
      if (absl::Status s = st.Run(); !s.ok()) return s;
    }
    if (absl::StatusOr<int64_t> event = InsertEvent(conn, SubmittedEvent(job, id), kWhat); !event.ok()) {
      return event.status();
    }
    if (!job.idempotency_key.empty()) {
      Stmt st(conn, put_key, kWhat);
      st.Text(job.user).Text(job.idempotency_key).Int(id).Text(job.request_digest).Int(job.submit_ms);
      if (absl::Status s = st.Run(); !s.ok()) return s;
    }
  }
  // Keys past their window go at most once a minute, in the same commit.
  const int64_t newest = group.empty() ? 0 : group.back()->submit_ms;
  if (newest - last_key_prune_ms_ >= 60'000) {
    Stmt st(conn, prune_keys, kWhat);
    st.Int(newest - kIdempotencyWindowMs);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  if (absl::Status s = txn.Commit(); !s.ok()) return s;
  if (newest - last_key_prune_ms_ >= 60'000) last_key_prune_ms_ = newest;
  // Ids are handed out only once durable, so a failed group leaves them at 0.
  ApplyOutcomes(group, outcomes);
  return absl::OkStatus();
}

absl::Status SqliteStateStore::Apply(WriteBatch batch) {
  static const std::string update_job =
      "UPDATE jobs SET name = ?, user = ?, queue = ?, priority = ?, state = ?, spec_json = ?, reason = ?, "
      "submit_ms = ?, start_ms = ?, end_ms = ?, attempt = ?, run_uid = ?, run_gid = ?, hold = ?, array_id = ?, "
      "array_index = ? WHERE id = ?";
  static const std::string upsert_task =
      absl::StrCat("INSERT INTO tasks(", columns::kTask,
                   ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id, grp, replica, attempt) DO UPDATE SET "
                   "node = excluded.node, placement_json = excluded.placement_json, state = excluded.state, "
                   "exit_code = excluded.exit_code, reason = excluded.reason, start_ms = excluded.start_ms, "
                   "end_ms = excluded.end_ms");
  static const std::string upsert_node =
      absl::StrCat("INSERT INTO nodes(", columns::kNode,
                   ") VALUES(?, ?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET spec_json = excluded.spec_json, "
                   "state = excluded.state, address = excluded.address, registered_ms = excluded.registered_ms, "
                   "heartbeat_ms = excluded.heartbeat_ms");
  static const std::string upsert_queue =
      "INSERT INTO queues(name, spec_json) VALUES(?, ?) ON CONFLICT(name) DO UPDATE SET spec_json = "
      "excluded.spec_json";
  static const std::string delete_queue = "DELETE FROM queues WHERE name = ?";
  static const std::string upsert_token = absl::StrCat(
      "INSERT INTO tokens(", columns::kToken,
      ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(token_hash) DO UPDATE SET name = excluded.name, "
      "role = excluded.role, user = excluded.user, created_ms = excluded.created_ms, revoked = excluded.revoked, "
      "uid = excluded.uid, gid = excluded.gid, expires_ms = excluded.expires_ms, "
      "last_used_ms = excluded.last_used_ms, node = excluded.node");
  static const std::string upsert_usage =
      absl::StrCat("INSERT INTO usage(", columns::kUsage,
                   ") VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(job_id, grp, replica, attempt) DO UPDATE SET "
                   "user = excluded.user, queue = excluded.queue, node = excluded.node, start_ms = excluded.start_ms, "
                   "end_ms = excluded.end_ms, cpu_milli = excluded.cpu_milli, devices_json = excluded.devices_json");
  static const std::string upsert_sample =
      "INSERT INTO utilisation(time_s, sample_json) VALUES(?, ?) ON CONFLICT(time_s) DO UPDATE SET "
      "sample_json = excluded.sample_json";
  static const std::string prune_samples = "DELETE FROM utilisation WHERE time_s < ?";
  constexpr absl::string_view kWhat = "apply";

  if (batch.empty()) return absl::OkStatus();
  absl::MutexLock lock(&write_mu_);
  Connection& conn = *writer_;
  Transaction txn(conn, kWhat);
  if (!txn.status().ok()) return txn.status();
  if (absl::Status s = CheckFence(conn, kWhat); !s.ok()) return s;

  for (const JobRecord& job : batch.jobs) {
    Stmt st(conn, update_job, kWhat);
    columns::BindJobFields(st, job).Int(job.id);
    if (absl::Status s = st.Run(); !s.ok()) return s;
    if (sqlite3_changes(conn.db()) == 0) {
      return absl::NotFoundError(absl::StrCat("apply: job ", job.id, " does not exist"));
    }
  }
  for (const TaskRecord& task : batch.tasks) {
    Stmt st(conn, upsert_task, kWhat);
    columns::BindTask(st, task);
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
    Stmt st(conn, upsert_node, kWhat);
    columns::BindNode(st, node);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const QueueRecord& queue : batch.queues) {
    Stmt st(conn, upsert_queue, kWhat);
    st.Text(queue.name).Text(queue.spec_json);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const std::string& name : batch.deleted_queues) {
    Stmt st(conn, delete_queue, kWhat);
    st.Text(name);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const TokenRecord& token : batch.tokens) {
    Stmt st(conn, upsert_token, kWhat);
    columns::BindToken(st, token);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  for (const EventRecord& event : batch.events) {
    if (absl::StatusOr<int64_t> id = InsertEvent(conn, event, kWhat); !id.ok()) return id.status();
  }
  for (const UsageRecord& u : batch.usage) {
    Stmt st(conn, upsert_usage, kWhat);
    columns::BindUsage(st, u);
    if (absl::Status s = st.Run(); !s.ok()) {
      if (st.rc() == SQLITE_CONSTRAINT_FOREIGNKEY) {
        return absl::NotFoundError(absl::StrCat("apply: usage of job ", u.job_id, ": job does not exist"));
      }
      return s;
    }
  }
  for (const UtilisationSample& sample : batch.samples) {
    Stmt st(conn, upsert_sample, kWhat);
    st.Int(sample.time_s).Text(sample.sample_json);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  if (batch.prune_samples_before_s > 0) {
    Stmt st(conn, prune_samples, kWhat);
    st.Int(batch.prune_samples_before_s);
    if (absl::Status s = st.Run(); !s.ok()) return s;
  }
  return txn.Commit();
}

absl::Status SqliteStateStore::WithReader(absl::FunctionRef<absl::Status(Connection&)> read) {
  if (in_memory_) {
    // An in-memory database exists only inside the writer's connection.
    absl::MutexLock lock(&write_mu_);
    return read(*writer_);
  }
  std::unique_ptr<Connection> conn;
  {
    absl::MutexLock lock(&readers_mu_);
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
    absl::MutexLock lock(&readers_mu_);
    if (idle_readers_.size() < static_cast<size_t>(std::max(0, options_.max_idle_readers))) {
      idle_readers_.push_back(std::move(conn));
    }
  }
  return status;  // `conn`, when not pooled, closes here, outside the lock
}

absl::StatusOr<JobRecord> SqliteStateStore::GetJob(int64_t id) {
  static const std::string sql = absl::StrCat("SELECT ", columns::kJob, " FROM jobs WHERE id = ?");
  constexpr absl::string_view kWhat = "get job";
  absl::StatusOr<JobRecord> job = absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  absl::Status status = WithReader([&](Connection& conn) -> absl::Status {
    Stmt st(conn, sql, kWhat);
    st.Int(id);
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
  absl::StatusOr<int64_t> limit = SqlLimit(query.limit, kWhat);
  if (!limit.ok()) return limit.status();
  const std::vector<std::string> states = StateFilter(query);  // at most 2^5 SQL variants

  std::string sql = absl::StrCat("SELECT ", columns::kJob, " FROM jobs WHERE id > ?");
  if (!states.empty()) {
    absl::StrAppend(&sql, " AND state IN (", absl::StrJoin(std::vector<std::string>(states.size(), "?"), ", "), ")");
  }
  if (!query.user.empty()) absl::StrAppend(&sql, " AND user = ?");
  if (!query.queue.empty()) absl::StrAppend(&sql, " AND queue = ?");
  if (!query.name.empty()) absl::StrAppend(&sql, " AND name = ?");
  if (query.array_id != 0) absl::StrAppend(&sql, " AND array_id = ?");
  if (query.array_id != 0 && query.array_index >= 0) absl::StrAppend(&sql, " AND array_index = ?");
  if (query.before_id > 0) absl::StrAppend(&sql, " AND id < ?");
  absl::StrAppend(&sql, query.newest_first ? " ORDER BY id DESC LIMIT ?" : " ORDER BY id LIMIT ?");

  std::vector<JobRecord> jobs;
  absl::Status status = WithReader([&](Connection& conn) {
    jobs.clear();
    Stmt st(conn, sql, kWhat);
    st.Int(query.after_id);
    for (const std::string& state : states) st.Text(state);
    if (!query.user.empty()) st.Text(query.user);
    if (!query.queue.empty()) st.Text(query.queue);
    if (!query.name.empty()) st.Text(query.name);
    if (query.array_id != 0) st.Int(query.array_id);
    if (query.array_id != 0 && query.array_index >= 0) st.Int(query.array_index);
    if (query.before_id > 0) st.Int(query.before_id);
    st.Int(*limit);
    return CollectRows(st, &jobs, [&](const Stmt& row) { return columns::DecodeJob(StmtRow{row}, kWhat); });
  });
  if (!status.ok()) return status;
  return jobs;
}

absl::StatusOr<std::vector<TaskRecord>> SqliteStateStore::ListTasks(int64_t job_id) {
  static const std::string sql =
      absl::StrCat("SELECT ", columns::kTask, " FROM tasks WHERE job_id = ? ORDER BY attempt, grp, replica");
  constexpr absl::string_view kWhat = "list tasks";
  std::vector<TaskRecord> tasks;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql, kWhat);
    st.Int(job_id);
    return CollectRows(st, &tasks, [&](const Stmt& row) { return columns::DecodeTask(StmtRow{row}, kWhat); });
  });
  if (!status.ok()) return status;
  return tasks;
}

absl::StatusOr<std::vector<TaskRecord>> SqliteStateStore::ListActiveTasks() {
  static const std::string sql = absl::StrCat("SELECT ", columns::kTask, " FROM tasks WHERE state IN (?, ?) ",
                                              "ORDER BY job_id, grp, replica, attempt");
  constexpr absl::string_view kWhat = "list active tasks";
  std::vector<TaskRecord> tasks;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql, kWhat);
    st.Text(TaskStateName(TaskState::kAssigned)).Text(TaskStateName(TaskState::kRunning));
    return CollectRows(st, &tasks, [&](const Stmt& row) { return columns::DecodeTask(StmtRow{row}, kWhat); });
  });
  if (!status.ok()) return status;
  return tasks;
}

absl::StatusOr<std::vector<NodeRecord>> SqliteStateStore::ListNodes() {
  static const std::string sql = absl::StrCat("SELECT ", columns::kNode, " FROM nodes ORDER BY name");
  std::vector<NodeRecord> nodes;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql, "list nodes");
    return CollectRows(st, &nodes, [](const Stmt& row) { return columns::DecodeNode(StmtRow{row}); });
  });
  if (!status.ok()) return status;
  return nodes;
}

absl::StatusOr<std::vector<QueueRecord>> SqliteStateStore::ListQueues() {
  static const std::string sql = "SELECT name, spec_json FROM queues ORDER BY name";
  std::vector<QueueRecord> queues;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql, "list queues");
    return CollectRows(st, &queues, [](const Stmt& row) {
      return QueueRecord{.name = row.ColumnText(0), .spec_json = row.ColumnText(1)};
    });
  });
  if (!status.ok()) return status;
  return queues;
}

absl::StatusOr<TokenRecord> SqliteStateStore::GetToken(const std::string& token_hash) {
  static const std::string sql = absl::StrCat("SELECT ", columns::kToken, " FROM tokens WHERE token_hash = ?");
  // The hash is a credential's fingerprint; it stays out of error messages.
  absl::StatusOr<TokenRecord> token = absl::NotFoundError("token not found");
  absl::Status status = WithReader([&](Connection& conn) -> absl::Status {
    Stmt st(conn, sql, "get token");
    st.Text(token_hash);
    absl::StatusOr<bool> row = st.Step();
    if (!row.ok()) return row.status();
    if (*row) token = columns::DecodeToken(StmtRow{st});
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return token;
}

absl::StatusOr<std::vector<TokenRecord>> SqliteStateStore::ListTokens() {
  static const std::string sql = absl::StrCat("SELECT ", columns::kToken, " FROM tokens ORDER BY token_hash");
  std::vector<TokenRecord> tokens;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql, "list tokens");
    return CollectRows(st, &tokens, [](const Stmt& row) { return columns::DecodeToken(StmtRow{row}); });
  });
  if (!status.ok()) return status;
  return tokens;
}

absl::StatusOr<std::vector<EventRecord>> SqliteStateStore::ListEvents(int64_t job_id, int64_t after_id, int32_t limit) {
  static const std::string of_job =
      absl::StrCat("SELECT ", columns::kEvent, " FROM events WHERE job_id = ? AND id > ? ORDER BY id LIMIT ?");
  static const std::string of_all =
      absl::StrCat("SELECT ", columns::kEvent, " FROM events WHERE id > ? ORDER BY id LIMIT ?");
  constexpr absl::string_view kWhat = "list events";
  if (job_id < 0) return absl::InvalidArgumentError(absl::StrCat("list events: job id ", job_id, " is negative"));
  absl::StatusOr<int64_t> sql_limit = SqlLimit(limit, kWhat);
  if (!sql_limit.ok()) return sql_limit.status();
  std::vector<EventRecord> events;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, job_id > 0 ? of_job : of_all, kWhat);
    if (job_id > 0) st.Int(job_id);
    st.Int(after_id).Int(*sql_limit);
    return CollectRows(st, &events, [](const Stmt& row) { return columns::DecodeEvent(StmtRow{row}); });
  });
  if (!status.ok()) return status;
  return events;
}

absl::StatusOr<std::vector<UsageRecord>> SqliteStateStore::ListUsage(int64_t since_ms, int64_t until_ms) {
  static const std::string sql = absl::StrCat(
      "SELECT ", columns::kUsage,
      " FROM usage WHERE start_ms < ? AND (end_ms = 0 OR end_ms > ?) ORDER BY job_id, grp, replica, attempt");
  std::vector<UsageRecord> out;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql, "list usage");
    st.Int(until_ms).Int(since_ms);
    return CollectRows(st, &out, [](const Stmt& row) { return columns::DecodeUsage(StmtRow{row}); });
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<UtilisationSample>> SqliteStateStore::ListUtilisation(int64_t since_s, int64_t until_s) {
  static const std::string sql =
      "SELECT time_s, sample_json FROM utilisation WHERE time_s >= ? AND time_s < ? ORDER BY time_s";
  std::vector<UtilisationSample> out;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql, "list utilisation");
    st.Int(since_s).Int(until_s);
    return CollectRows(st, &out, [](const Stmt& row) {
      return UtilisationSample{.time_s = row.ColumnInt(0), .sample_json = row.ColumnText(1)};
    });
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<JobCounts>> SqliteStateStore::CountJobs(int64_t since_ms, int64_t until_ms) {
  // ?1 = since, ?2 = until. A job counts as ended only once end_ms is set
  // (a failed job whose tasks still stop has end_ms 0).
  static const std::string sql = absl::StrCat(
      "SELECT user, queue, SUM(submit_ms >= ?1 AND submit_ms < ?2), ",
      "SUM(state = 'Succeeded' AND end_ms >= ?1 AND end_ms < ?2 AND end_ms > 0), ",
      "SUM(state = 'Failed' AND end_ms >= ?1 AND end_ms < ?2 AND end_ms > 0), ",
      "SUM(state = 'Cancelled' AND end_ms >= ?1 AND end_ms < ?2 AND end_ms > 0) ",
      "FROM jobs WHERE (submit_ms >= ?1 AND submit_ms < ?2) OR (end_ms >= ?1 AND end_ms < ?2 AND end_ms > 0) ",
      "GROUP BY user, queue ORDER BY user, queue");
  std::vector<JobCounts> out;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql, "count jobs");
    st.Int(since_ms).Int(until_ms);
    return CollectRows(st, &out, [](const Stmt& row) {
      return JobCounts{.user = row.ColumnText(0),
                       .queue = row.ColumnText(1),
                       .submitted = row.ColumnInt(2),
                       .succeeded = row.ColumnInt(3),
                       .failed = row.ColumnInt(4),
                       .cancelled = row.ColumnInt(5)};
    });
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<std::pair<JobState, int64_t>>> SqliteStateStore::CountJobsByState() {
  static const std::string sql = "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state";
  std::vector<std::pair<JobState, int64_t>> out;
  absl::Status status = WithReader([&](Connection& conn) {
    Stmt st(conn, sql, "count jobs by state");
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
