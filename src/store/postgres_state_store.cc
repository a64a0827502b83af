#include "store/postgres_state_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "store/postgres_connection.h"
#include "store/record_columns.h"

namespace icos::store {
namespace {

// Migrations, in order: kMigrations[i] takes the schema from version i to i+1.
// Released steps never change; a schema change is a new step at the end. The
// steps mirror SqliteStateStore's, version for version. "user" is quoted: it
// is a reserved word in PostgreSQL. Text keys and ordered text columns are
// COLLATE "C" so ORDER BY is bytewise, as in SQLite, whatever the database's
// locale.
constexpr const char* kMigrations[] = {
    // v1: the initial schema.
    R"sql(
CREATE TABLE jobs (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- a sequence: ids are never reused
  name TEXT NOT NULL,
  "user" TEXT COLLATE "C" NOT NULL,
  queue TEXT COLLATE "C" NOT NULL,
  priority INTEGER NOT NULL,
  state TEXT COLLATE "C" NOT NULL,
  spec_json TEXT NOT NULL,
  reason TEXT NOT NULL,
  submit_ms BIGINT NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL,
  attempt INTEGER NOT NULL
);
CREATE INDEX jobs_by_state ON jobs(state);
CREATE INDEX jobs_by_user ON jobs("user");
CREATE INDEX jobs_by_queue ON jobs(queue);

CREATE TABLE tasks (
  job_id BIGINT NOT NULL REFERENCES jobs(id),
  grp INTEGER NOT NULL,
  replica INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  node TEXT NOT NULL,
  placement_json TEXT NOT NULL,
  state TEXT COLLATE "C" NOT NULL,
  exit_code INTEGER NOT NULL,
  reason TEXT NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL,
  PRIMARY KEY (job_id, grp, replica, attempt)
);
CREATE INDEX tasks_by_state ON tasks(state);

CREATE TABLE nodes (
  name TEXT COLLATE "C" PRIMARY KEY,
  spec_json TEXT NOT NULL,
  state TEXT NOT NULL,
  address TEXT NOT NULL,
  registered_ms BIGINT NOT NULL,
  heartbeat_ms BIGINT NOT NULL
);

CREATE TABLE queues (
  name TEXT COLLATE "C" PRIMARY KEY,
  spec_json TEXT NOT NULL
);

CREATE TABLE tokens (
  token_hash TEXT COLLATE "C" PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  "user" TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  revoked BOOLEAN NOT NULL
);

CREATE TABLE events (
  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job_id BIGINT NOT NULL,  -- 0: a cluster event; no foreign key for that reason
  node TEXT NOT NULL,
  time_ms BIGINT NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL
);
CREATE INDEX events_by_job ON events(job_id, id);
)sql",
    // v2: usage accounting and utilisation history (issue 6).
    R"sql(
CREATE TABLE usage (
  job_id BIGINT NOT NULL REFERENCES jobs(id),
  grp INTEGER NOT NULL,
  replica INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  "user" TEXT NOT NULL,
  queue TEXT NOT NULL,
  node TEXT NOT NULL,
  start_ms BIGINT NOT NULL,
  end_ms BIGINT NOT NULL,  -- 0: still running
  cpu_milli BIGINT NOT NULL,
  devices_json TEXT NOT NULL,
  PRIMARY KEY (job_id, grp, replica, attempt)
);
CREATE INDEX usage_by_start ON usage(start_ms);

CREATE TABLE utilisation (
  time_s BIGINT PRIMARY KEY,
  sample_json TEXT NOT NULL
);

-- Job counts over a time window look jobs up by submit and end time.
CREATE INDEX jobs_by_submit ON jobs(submit_ms);
CREATE INDEX jobs_by_end ON jobs(end_ms);
)sql",
    // v3: which controller leads the store (high availability; state_store.h).
    R"sql(
CREATE TABLE leader (
  id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
  epoch BIGINT NOT NULL,
  holder TEXT NOT NULL,
  url TEXT NOT NULL,
  since_ms BIGINT NOT NULL
);
INSERT INTO leader(id, epoch, holder, url, since_ms) VALUES (1, 0, '', '', 0);
)sql",
    // v4: idempotency keys of submissions (issue 16): a retried submit finds its job.
    R"sql(
CREATE TABLE idempotency_keys (
  "user" TEXT COLLATE "C" NOT NULL,
  key TEXT COLLATE "C" NOT NULL,
  job_id BIGINT NOT NULL REFERENCES jobs(id),
  request_digest TEXT NOT NULL,
  created_ms BIGINT NOT NULL,
  PRIMARY KEY ("user", key)
);
CREATE INDEX idempotency_keys_by_created ON idempotency_keys(created_ms);

-- Unix identities pinned by tokens, for their jobs (issue 17); token expiry,
-- use and the node a node credential is bound to.
ALTER TABLE jobs ADD COLUMN run_uid BIGINT NOT NULL DEFAULT -1;
ALTER TABLE jobs ADD COLUMN run_gid BIGINT NOT NULL DEFAULT -1;
ALTER TABLE tokens ADD COLUMN uid BIGINT NOT NULL DEFAULT -1;
ALTER TABLE tokens ADD COLUMN gid BIGINT NOT NULL DEFAULT -1;
ALTER TABLE tokens ADD COLUMN expires_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN last_used_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN node TEXT COLLATE "C" NOT NULL DEFAULT '';

-- The cluster's own id (StateStore::ClusterId), made by the first controller.
CREATE TABLE cluster (
  id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
  cluster_id TEXT NOT NULL,
  created_ms BIGINT NOT NULL
);
)sql",
    // v5: jobs held back from scheduling (icos hold), and by whom; job arrays.
    R"sql(
ALTER TABLE jobs ADD COLUMN hold TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN array_id BIGINT NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN array_index INTEGER NOT NULL DEFAULT -1;
CREATE INDEX jobs_by_array ON jobs(array_id) WHERE array_id != 0;
)sql",
};
static_assert(std::size(kMigrations) == PostgresStateStore::kSchemaVersion,
              "kSchemaVersion must equal the number of migrations");

// Advisory lock keys ("icos", "icol" and "icom"): one serialises migrations of
// any schema in the database (CREATE SCHEMA IF NOT EXISTS races otherwise);
// the others, paired with the schema's hash, serialise id-taking writes of one
// store and, held for a session, mark the store's leader.
constexpr int32_t kWriteLockKey = 0x69636f73;
constexpr int32_t kLeaderLockKey = 0x69636f6c;
constexpr int64_t kMigrationLockKey = 0x69636f6d;

constexpr char kForeignKeyViolation[] = "23503";

using pg_internal::Connection;
using pg_internal::OneLine;
using pg_internal::Params;
using pg_internal::Result;
using pg_internal::Row;
using pg_internal::Transaction;

// Serialises transactions that take job or event ids, until they commit or
// roll back, so ids become visible in increasing order (see the header).
absl::Status LockForIds(Connection& conn, absl::string_view what) {
  Params params;
  params.Int(kWriteLockKey);
  return conn.Exec("SELECT pg_advisory_xact_lock($1::integer, hashtext(current_schema()))", params, what).status();
}

// The interface's limit (0: no limit) as a LIMIT parameter (NULL: no limit).
absl::Status AddLimit(Params& params, int32_t limit, absl::string_view what) {
  if (absl::Status s = CheckLimit(limit, what); !s.ok()) return s;
  if (limit == 0) {
    params.Null();
  } else {
    params.Int(limit);
  }
  return absl::OkStatus();
}

// Appends every row of `result` to `out` with `read`, which returns a record
// or StatusOr of one.
template <typename T, typename ReadFn>
absl::Status CollectRows(const Result& result, std::vector<T>* out, ReadFn read, absl::string_view what) {
  for (int i = 0; i < result.rows(); ++i) {
    const Row row{result, i};
    if constexpr (std::is_same_v<decltype(read(row)), T>) {
      out->push_back(read(row));
    } else {
      auto record = read(row);
      if (!record.ok()) return record.status();
      out->push_back(*std::move(record));
    }
  }
  if (result.malformed()) return absl::DataLossError(absl::StrCat(what, ": the server returned a malformed number"));
  return absl::OkStatus();
}

// Runs `sql` with `params` and collects its rows with `read`.
template <typename T, typename ReadFn>
absl::Status Query(Connection& conn, const std::string& sql, const Params& params, std::vector<T>* out, ReadFn read,
                   absl::string_view what) {
  absl::StatusOr<Result> result = conn.Exec(sql, params, what);
  if (!result.ok()) return result.status();
  return CollectRows(*result, out, read, what);
}

// The leader row; FOR SHARE inside a write transaction, so a takeover (which
// updates the row) waits for the write to commit, and a write that starts
// after the takeover sees the new epoch.
absl::StatusOr<LeaderRecord> ReadLeader(Connection& conn, bool for_share, absl::string_view what) {
  absl::StatusOr<Result> r =
      conn.Exec(for_share ? "SELECT epoch, holder, url, since_ms FROM leader WHERE id = 1 FOR SHARE"
                          : "SELECT epoch, holder, url, since_ms FROM leader WHERE id = 1",
                Params(), what);
  if (!r.ok()) return r.status();
  if (r->rows() != 1) return absl::DataLossError(absl::StrCat(what, ": the leader row is missing"));
  LeaderRecord out{.epoch = r->Int(0, 0), .holder = r->Text(0, 1), .url = r->Text(0, 2), .since_ms = r->Int(0, 3)};
  if (r->malformed()) return absl::DataLossError(absl::StrCat(what, ": the server returned a malformed number"));
  return out;
}

absl::StatusOr<int64_t> InsertEvent(Connection& conn, const EventRecord& event, absl::string_view what) {
  static const std::string sql =
      "INSERT INTO events(job_id, node, time_ms, kind, message) VALUES($1, $2, $3, $4, $5) RETURNING id";
  Params params;
  params.Int(event.job_id).Text(event.node).Int(event.time_ms).Text(event.kind).Text(event.message);
  absl::StatusOr<Result> result = conn.Exec(sql, params, what);
  if (!result.ok()) return result.status();
  return result->Int(0, 0);
}

// Creates the schema if asked and brings it to kSchemaVersion in one
// transaction; returns the version.
absl::StatusOr<int32_t> Migrate(Connection& conn, const PostgresOptions& options) {
  const std::string what = absl::StrCat("open PostgreSQL store",
                                        options.schema.empty() ? "" : absl::StrCat(" (schema ", options.schema, ")"));
  Transaction txn(conn, absl::StrCat(what, ": begin migration"));
  if (!txn.status().ok()) return txn.status();
  // Two controllers opening one old database at once migrate it once.
  Params lock;
  lock.Int(kMigrationLockKey);
  if (auto s = conn.Exec("SELECT pg_advisory_xact_lock($1::bigint)", lock, what); !s.ok()) return s.status();
  if (!options.schema.empty()) {
    // DDL takes no parameters; the name is quoted by libpq's own escaping.
    char* quoted = PQescapeIdentifier(conn.get(), options.schema.data(), options.schema.size());
    if (quoted == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": bad schema name: ", OneLine(PQerrorMessage(conn.get()))));
    }
    const std::string create = absl::StrCat("CREATE SCHEMA IF NOT EXISTS ", quoted);
    PQfreemem(quoted);
    if (absl::Status s = conn.ExecScript(create.c_str(), what); !s.ok()) return s;
  }
  if (absl::Status s =
          conn.ExecScript("CREATE TABLE IF NOT EXISTS schema_version ("
                          "  singleton BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),"  // one row at most
                          "  version INTEGER NOT NULL)",
                          what);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<Result> row = conn.Exec("SELECT version FROM schema_version", Params(), what);
  if (!row.ok()) return row.status();
  const int64_t version = row->rows() > 0 ? row->Int(0, 0) : 0;
  constexpr int32_t kLatest = PostgresStateStore::kSchemaVersion;
  if (absl::Status s = CheckSchemaVersion(version, kLatest, what); !s.ok()) return s;
  if (version == kLatest) return kLatest;
  for (int64_t v = version; v < kLatest; ++v) {
    if (absl::Status s = conn.ExecScript(kMigrations[v], absl::StrCat(what, ": migrate to schema v", v + 1)); !s.ok()) {
      return s;
    }
  }
  Params set;
  set.Int(kLatest);
  if (auto s = conn.Exec("INSERT INTO schema_version(singleton, version) VALUES(TRUE, $1) "
                         "ON CONFLICT (singleton) DO UPDATE SET version = excluded.version",
                         set, what);
      !s.ok()) {
    return s.status();
  }
  if (absl::Status s = txn.Commit(); !s.ok()) return s;
  return kLatest;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresStateStore>> PostgresStateStore::Open(const PostgresOptions& options) {
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open(options);
  if (!conn.ok()) return conn.status();
  absl::StatusOr<int32_t> version = Migrate(**conn, options);
  if (!version.ok()) return version.status();
  return std::unique_ptr<PostgresStateStore>(new PostgresStateStore(options, *std::move(conn), *version));
}

PostgresStateStore::PostgresStateStore(PostgresOptions options, std::unique_ptr<Connection> first,
                                       int32_t schema_version)
    : options_(std::move(options)), schema_version_(schema_version), inserts_(options_.max_group_commit) {
  absl::MutexLock lock(&pool_mu_);
  idle_.push_back(std::move(first));
}

PostgresStateStore::~PostgresStateStore() {
  {
    absl::MutexLock lock(&pool_mu_);
    idle_.clear();
  }
  absl::MutexLock lead(&lead_mu_);
  lock_conn_.reset();  // ends the session, which releases the leadership lock
}

absl::Status PostgresStateStore::CheckFence(Connection& conn, absl::string_view what) {
  const int64_t mine = fence_epoch_.load(std::memory_order_acquire);
  if (mine == 0) return absl::OkStatus();
  return CheckEpoch(mine, ReadLeader(conn, /*for_share=*/true, what), what);
}

absl::StatusOr<LeadResult> PostgresStateStore::TryLead(const LeaderRecord& me) {
  constexpr absl::string_view kWhat = "take the store's leadership";
  absl::MutexLock lead(&lead_mu_);
  if (lock_conn_ != nullptr) {
    absl::StatusOr<LeaderRecord> current = GetLeader();
    if (!current.ok()) return current.status();
    return LeadResult{.acquired = current->epoch == fence_epoch_.load(), .leader = *current};
  }
  // The claim is a session-level advisory lock on a connection of its own:
  // the server drops it the moment that session ends, whether the controller
  // exits, crashes or loses its machine (keepalives: within about 15 s).
  absl::StatusOr<std::unique_ptr<Connection>> conn = Connection::Open(options_, /*fail_fast=*/true);
  if (!conn.ok()) return conn.status();
  Params lock;
  lock.Int(kLeaderLockKey);
  absl::StatusOr<Result> got =
      (*conn)->Exec("SELECT pg_try_advisory_lock($1::integer, hashtext(current_schema()))", lock, kWhat);
  if (!got.ok()) return got.status();
  if (!got->Bool(0, 0)) {
    absl::StatusOr<LeaderRecord> current = ReadLeader(**conn, /*for_share=*/false, kWhat);
    if (!current.ok()) return current.status();
    return LeadResult{.acquired = false, .leader = *current};
  }
  Params set;
  set.Text(me.holder).Text(me.url).Int(me.since_ms);
  absl::StatusOr<Result> taken = (*conn)->Exec(
      "UPDATE leader SET epoch = epoch + 1, holder = $1, url = $2, since_ms = $3 WHERE id = 1 "
      "RETURNING epoch, holder, url, since_ms",
      set, kWhat);
  if (!taken.ok()) return taken.status();
  if (taken->rows() != 1) return absl::DataLossError(absl::StrCat(kWhat, ": the leader row is missing"));
  LeaderRecord record{
      .epoch = taken->Int(0, 0), .holder = taken->Text(0, 1), .url = taken->Text(0, 2), .since_ms = taken->Int(0, 3)};
  lock_conn_ = *std::move(conn);
  fence_epoch_.store(record.epoch, std::memory_order_release);
  return LeadResult{.acquired = true, .leader = record};
}

absl::Status PostgresStateStore::CheckLeadership() {
  constexpr absl::string_view kWhat = "check the store's leadership";
  absl::MutexLock lead(&lead_mu_);
  if (lock_conn_ == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(kWhat, ": this controller never took it"));
  }
  // The lock lives as long as its session: a round trip on that session
  // shows the session, and so the lock, is still there.
  absl::StatusOr<LeaderRecord> current = ReadLeader(*lock_conn_, /*for_share=*/false, kWhat);
  if (!current.ok()) {
    return absl::UnavailableError(
        absl::StrCat("lost the session that holds the leadership lock (", current.status().message(), ")"));
  }
  return CheckEpoch(fence_epoch_.load(), current, kWhat);
}

absl::StatusOr<LeaderRecord> PostgresStateStore::GetLeader() {
  absl::StatusOr<LeaderRecord> out;
  absl::Status status = WithConnection([&](Connection& conn) {
    out = ReadLeader(conn, /*for_share=*/false, "get leader");
    return out.status();
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::string> PostgresStateStore::ClusterId(const std::string& candidate) {
  static const std::string insert =
      "INSERT INTO cluster(id, cluster_id, created_ms) VALUES(1, $1, $2) ON CONFLICT(id) DO NOTHING";
  static const std::string select = "SELECT cluster_id FROM cluster WHERE id = 1";
  constexpr absl::string_view kWhat = "cluster id";
  std::string out;
  absl::Status status = WithConnection([&](Connection& conn) -> absl::Status {
    Params params;
    params.Text(candidate).Int(absl::ToUnixMillis(absl::Now()));
    if (auto inserted = conn.Exec(insert, params, kWhat); !inserted.ok()) return inserted.status();
    absl::StatusOr<Result> row = conn.Exec(select, Params(), kWhat);
    if (!row.ok()) return row.status();
    if (row->rows() != 1) return absl::InternalError("cluster id: no row after inserting one");
    out = row->Text(0, 0);
    return absl::OkStatus();
  });
  if (!status.ok()) return status;
  return out;
}

absl::Status PostgresStateStore::WithConnection(absl::FunctionRef<absl::Status(Connection&)> use) {
  std::unique_ptr<Connection> conn;
  {
    absl::MutexLock lock(&pool_mu_);
    if (!idle_.empty()) {
      conn = std::move(idle_.back());
      idle_.pop_back();
    }
  }
  const bool pooled = conn != nullptr;
  if (!pooled) {
    absl::StatusOr<std::unique_ptr<Connection>> opened = Connection::Open(options_);
    if (!opened.ok()) return opened.status();
    conn = *std::move(opened);
  }
  conn->ResetStatementCount();
  absl::Status status = use(*conn);
  if (!status.ok() && pooled && conn->Broken() && conn->statement_count() == 0) {
    // The server dropped an idle pooled connection (restart, failover) and the
    // call's first statement found out: nothing ran, so the call is retried
    // once on a new connection. The other idle ones are likely dead too.
    std::vector<std::unique_ptr<Connection>> stale;
    {
      absl::MutexLock lock(&pool_mu_);
      stale.swap(idle_);
    }
    stale.clear();  // closed outside the lock
    absl::StatusOr<std::unique_ptr<Connection>> opened = Connection::Open(options_);
    if (!opened.ok()) return opened.status();
    conn = *std::move(opened);
    status = use(*conn);
  }
  // A connection broken midway is closed here rather than pooled, so the next
  // call connects afresh. The call that broke fails with Unavailable: a
  // write's outcome is then unknown, and retrying it is the caller's decision.
  if (conn->Reusable()) {
    absl::MutexLock lock(&pool_mu_);
    if (idle_.size() < static_cast<size_t>(std::max(0, options_.max_idle_connections))) {
      idle_.push_back(std::move(conn));
    }
  }
  return status;  // `conn`, when not pooled, closes here, outside the lock
}

absl::Status PostgresStateStore::InsertJob(JobRecord* job) {
  if (job == nullptr) return absl::InvalidArgumentError("insert job: job is null");
  absl::Status st = inserts_.Insert(job, [this](const std::vector<JobRecord*>& group) { return CommitInserts(group); });
  return st.ok() ? InsertOutcome(*job) : st;
}

absl::Status PostgresStateStore::InsertJobs(std::vector<JobRecord>* jobs) {
  return inserts_.InsertArray(jobs, [this](const std::vector<JobRecord*>& group) { return CommitInserts(group); });
}

absl::Status PostgresStateStore::CommitInserts(const std::vector<JobRecord*>& group) {
  static const std::string insert_job =
      "INSERT INTO jobs(name, \"user\", queue, priority, state, spec_json, reason, submit_ms, start_ms, end_ms, "
      "attempt, run_uid, run_gid, hold, array_id, array_index) VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, "
      "$12, "
      "$13, $14, $15, $16) RETURNING id";
  static const std::string set_own_array = "UPDATE jobs SET array_id = id WHERE id = $1";
  static const std::string find_key =
      "SELECT job_id, request_digest FROM idempotency_keys WHERE \"user\" = $1 AND key = $2 AND created_ms >= $3";
  static const std::string put_key =
      "INSERT INTO idempotency_keys(\"user\", key, job_id, request_digest, created_ms) VALUES($1, $2, $3, $4, $5) "
      "ON CONFLICT(\"user\", key) DO UPDATE SET job_id = excluded.job_id, request_digest = excluded.request_digest, "
      "created_ms = excluded.created_ms";
  static const std::string prune_keys = "DELETE FROM idempotency_keys WHERE created_ms < $1";
  constexpr absl::string_view kWhat = "insert job";
  // The group commit queue runs one CommitInserts at a time, so
  // last_key_prune_ms_ needs no lock of its own.
  const int64_t newest = group.empty() ? 0 : group.back()->submit_ms;
  const bool prune = newest - last_key_prune_ms_ >= 60'000;
  std::vector<IdempotentOutcome> outcomes;
  absl::Status status = WithConnection([&](Connection& conn) -> absl::Status {
    outcomes.assign(group.size(), {});  // WithConnection may run this twice (a dead pooled connection)
    ArrayInsertWalk arrays;
    Transaction txn(conn, kWhat);
    if (!txn.status().ok()) return txn.status();
    if (absl::Status s = CheckFence(conn, kWhat); !s.ok()) return s;
    if (absl::Status s = LockForIds(conn, kWhat); !s.ok()) return s;
    for (size_t i = 0; i < group.size(); ++i) {
      const JobRecord& job = *group[i];
      if (!arrays.ShouldInsert(job)) continue;
      if (!job.idempotency_key.empty()) {
        Params params;
        params.Text(job.user).Text(job.idempotency_key).Int(job.submit_ms - kIdempotencyWindowMs);
        absl::StatusOr<Result> found = conn.Exec(find_key, params, kWhat);
        if (!found.ok()) return found.status();
        if (found->rows() > 0) {  // this key's job exists (maybe from earlier in this very group)
          outcomes[i] = {.id = found->Int(0, 0), .existing = true, .conflict = found->Text(0, 1) != job.request_digest};
          outcomes[i].array_id = job.starts_array ? outcomes[i].id : 0;
          arrays.Inserted(job, outcomes[i].id, /*replayed=*/true);
          continue;
        }
      }
      const JobRecord row = arrays.Row(job);
      Params params;
      columns::BindJobFields(params, row);
      absl::StatusOr<Result> inserted = conn.Exec(insert_job, params, kWhat);
      if (!inserted.ok()) return inserted.status();
      const int64_t id = inserted->Int(0, 0);
      outcomes[i].id = id;
      outcomes[i].array_id = job.starts_array ? id : row.array_id;
      arrays.Inserted(job, id, /*replayed=*/false);
      if (job.starts_array) {
        Params own;
        own.Int(id);
        if (auto set = conn.Exec(set_own_array, own, kWhat); !set.ok()) return set.status();
      }
      if (auto event = InsertEvent(conn, SubmittedEvent(job, id), kWhat); !event.ok()) return event.status();
      if (!job.idempotency_key.empty()) {
        Params key;
        key.Text(job.user).Text(job.idempotency_key).Int(id).Text(job.request_digest).Int(job.submit_ms);
        if (auto put = conn.Exec(put_key, key, kWhat); !put.ok()) return put.status();
      }
    }
    if (prune) {
      Params params;
      params.Int(newest - kIdempotencyWindowMs);
      if (auto pruned = conn.Exec(prune_keys, params, kWhat); !pruned.ok()) return pruned.status();
    }
    return txn.Commit();
  });
  if (!status.ok()) return status;
  if (prune) last_key_prune_ms_ = newest;
  // Ids are handed out only once durable, so a failed group leaves them as they were.
  ApplyOutcomes(group, outcomes);
  return absl::OkStatus();
}

absl::Status PostgresStateStore::Apply(WriteBatch batch) {
  static const std::string update_job =
      "UPDATE jobs SET name = $1, \"user\" = $2, queue = $3, priority = $4, state = $5, spec_json = $6, reason = $7, "
      "submit_ms = $8, start_ms = $9, end_ms = $10, attempt = $11, run_uid = $12, run_gid = $13, hold = $14, "
      "array_id = $15, array_index = $16 WHERE id = $17";
  static const std::string upsert_task = absl::StrCat(
      "INSERT INTO tasks(", columns::kTask,
      ") VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT(job_id, grp, replica, attempt) DO UPDATE "
      "SET node = excluded.node, placement_json = excluded.placement_json, state = excluded.state, "
      "exit_code = excluded.exit_code, reason = excluded.reason, start_ms = excluded.start_ms, "
      "end_ms = excluded.end_ms");
  static const std::string upsert_node =
      absl::StrCat("INSERT INTO nodes(", columns::kNode,
                   ") VALUES($1, $2, $3, $4, $5, $6) ON CONFLICT(name) DO UPDATE SET spec_json = excluded.spec_json, "
                   "state = excluded.state, address = excluded.address, registered_ms = excluded.registered_ms, "
                   "heartbeat_ms = excluded.heartbeat_ms");
  static const std::string upsert_queue =
      "INSERT INTO queues(name, spec_json) VALUES($1, $2) ON CONFLICT(name) DO UPDATE SET spec_json = "
      "excluded.spec_json";
  static const std::string delete_queue = "DELETE FROM queues WHERE name = $1";
  static const std::string upsert_token =
      absl::StrCat("INSERT INTO tokens(", columns::kToken,
                   ") VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT(token_hash) DO UPDATE SET "
                   "name = excluded.name, role = excluded.role, \"user\" = excluded.\"user\", "
                   "created_ms = excluded.created_ms, revoked = excluded.revoked, uid = excluded.uid, "
                   "gid = excluded.gid, expires_ms = excluded.expires_ms, last_used_ms = excluded.last_used_ms, "
                   "node = excluded.node");
  static const std::string upsert_usage = absl::StrCat(
      "INSERT INTO usage(", columns::kUsage,
      ") VALUES($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT(job_id, grp, replica, attempt) DO UPDATE "
      "SET \"user\" = excluded.\"user\", queue = excluded.queue, node = excluded.node, "
      "start_ms = excluded.start_ms, end_ms = excluded.end_ms, cpu_milli = excluded.cpu_milli, "
      "devices_json = excluded.devices_json");
  static const std::string upsert_sample =
      "INSERT INTO utilisation(time_s, sample_json) VALUES($1, $2) ON CONFLICT(time_s) DO UPDATE SET "
      "sample_json = excluded.sample_json";
  static const std::string prune_samples = "DELETE FROM utilisation WHERE time_s < $1";
  constexpr absl::string_view kWhat = "apply";

  if (batch.empty()) return absl::OkStatus();
  return WithConnection([&](Connection& conn) -> absl::Status {
    Transaction txn(conn, kWhat);
    if (!txn.status().ok()) return txn.status();
    if (absl::Status s = CheckFence(conn, kWhat); !s.ok()) return s;
    if (!batch.events.empty()) {
      if (absl::Status s = LockForIds(conn, kWhat); !s.ok()) return s;
    }
    for (const JobRecord& job : batch.jobs) {
      Params p;
      columns::BindJobFields(p, job).Int(job.id);
      absl::StatusOr<Result> r = conn.Exec(update_job, p, kWhat);
      if (!r.ok()) return r.status();
      if (r->Affected() == 0) return absl::NotFoundError(absl::StrCat("apply: job ", job.id, " does not exist"));
    }
    for (const TaskRecord& task : batch.tasks) {
      Params p;
      columns::BindTask(p, task);
      if (auto r = conn.Exec(upsert_task, p, kWhat); !r.ok()) {
        if (conn.last_sqlstate() == kForeignKeyViolation) {
          return absl::NotFoundError(absl::StrCat("apply: task (group ", task.group, ", replica ", task.replica,
                                                  ", attempt ", task.attempt, ") of job ", task.job_id,
                                                  ": job does not exist"));
        }
        return r.status();
      }
    }
    for (const NodeRecord& node : batch.nodes) {
      Params p;
      columns::BindNode(p, node);
      if (auto r = conn.Exec(upsert_node, p, kWhat); !r.ok()) return r.status();
    }
    for (const QueueRecord& queue : batch.queues) {
      Params p;
      p.Text(queue.name).Text(queue.spec_json);
      if (auto r = conn.Exec(upsert_queue, p, kWhat); !r.ok()) return r.status();
    }
    for (const std::string& name : batch.deleted_queues) {
      Params p;
      p.Text(name);
      if (auto r = conn.Exec(delete_queue, p, kWhat); !r.ok()) return r.status();
    }
    for (const TokenRecord& token : batch.tokens) {
      Params p;
      columns::BindToken(p, token);
      if (auto r = conn.Exec(upsert_token, p, kWhat); !r.ok()) return r.status();
    }
    for (const EventRecord& event : batch.events) {
      if (absl::StatusOr<int64_t> id = InsertEvent(conn, event, kWhat); !id.ok()) return id.status();
    }
    for (const UsageRecord& u : batch.usage) {
      Params p;
      columns::BindUsage(p, u);
      if (auto r = conn.Exec(upsert_usage, p, kWhat); !r.ok()) {
        if (conn.last_sqlstate() == kForeignKeyViolation) {
          return absl::NotFoundError(absl::StrCat("apply: usage of job ", u.job_id, ": job does not exist"));
        }
        return r.status();
      }
    }
    for (const UtilisationSample& sample : batch.samples) {
      Params p;
      p.Int(sample.time_s).Text(sample.sample_json);
      if (auto r = conn.Exec(upsert_sample, p, kWhat); !r.ok()) return r.status();
    }
    if (batch.prune_samples_before_s > 0) {
      Params p;
      p.Int(batch.prune_samples_before_s);
      if (auto r = conn.Exec(prune_samples, p, kWhat); !r.ok()) return r.status();
    }
    return txn.Commit();
  });
}

absl::StatusOr<JobRecord> PostgresStateStore::GetJob(int64_t id) {
  static const std::string sql = absl::StrCat("SELECT ", columns::kJob, " FROM jobs WHERE id = $1");
  constexpr absl::string_view kWhat = "get job";
  std::vector<JobRecord> jobs;
  Params params;
  params.Int(id);
  absl::Status status = WithConnection([&](Connection& conn) {
    return Query(
        conn, sql, params, &jobs, [&](const Row& r) { return columns::DecodeJob(r, kWhat); }, kWhat);
  });
  if (!status.ok()) return status;
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  return std::move(jobs.front());
}

absl::StatusOr<std::vector<JobRecord>> PostgresStateStore::ListJobs(const JobQuery& query) {
  constexpr absl::string_view kWhat = "list jobs";
  const std::vector<std::string> states = StateFilter(query);  // at most 2^5 SQL variants

  Params params;
  params.Int(query.after_id);
  int next = 2;
  std::string sql = absl::StrCat("SELECT ", columns::kJob, " FROM jobs WHERE id > $1");
  if (!states.empty()) {
    std::vector<std::string> placeholders;
    for (const std::string& state : states) {
      placeholders.push_back(absl::StrCat("$", next++));
      params.Text(state);
    }
    absl::StrAppend(&sql, " AND state IN (", absl::StrJoin(placeholders, ", "), ")");
  }
  if (!query.user.empty()) {
    absl::StrAppend(&sql, " AND \"user\" = $", next++);
    params.Text(query.user);
  }
  if (!query.queue.empty()) {
    absl::StrAppend(&sql, " AND queue = $", next++);
    params.Text(query.queue);
  }
  if (!query.name.empty()) {
    absl::StrAppend(&sql, " AND name = $", next++);
    params.Text(query.name);
  }
  if (query.array_id != 0) {
    absl::StrAppend(&sql, " AND array_id = $", next++);
    params.Int(query.array_id);
    if (query.array_index >= 0) {
      absl::StrAppend(&sql, " AND array_index = $", next++);
      params.Int(query.array_index);
    }
  }
  if (query.before_id > 0) {
    absl::StrAppend(&sql, " AND id < $", next++);
    params.Int(query.before_id);
  }
  absl::StrAppend(&sql, query.newest_first ? " ORDER BY id DESC LIMIT $" : " ORDER BY id LIMIT $", next++);
  if (absl::Status s = AddLimit(params, query.limit, kWhat); !s.ok()) return s;

  std::vector<JobRecord> jobs;
  absl::Status status = WithConnection([&](Connection& conn) {
    return Query(
        conn, sql, params, &jobs, [&](const Row& r) { return columns::DecodeJob(r, kWhat); }, kWhat);
  });
  if (!status.ok()) return status;
  return jobs;
}

absl::StatusOr<std::vector<TaskRecord>> PostgresStateStore::ListTasks(int64_t job_id) {
  static const std::string sql =
      absl::StrCat("SELECT ", columns::kTask, " FROM tasks WHERE job_id = $1 ORDER BY attempt, grp, replica");
  constexpr absl::string_view kWhat = "list tasks";
  std::vector<TaskRecord> tasks;
  Params params;
  params.Int(job_id);
  absl::Status status = WithConnection([&](Connection& conn) {
    return Query(
        conn, sql, params, &tasks, [&](const Row& r) { return columns::DecodeTask(r, kWhat); }, kWhat);
  });
  if (!status.ok()) return status;
  return tasks;
}

absl::StatusOr<std::vector<TaskRecord>> PostgresStateStore::ListActiveTasks() {
  static const std::string sql = absl::StrCat("SELECT ", columns::kTask, " FROM tasks WHERE state IN ($1, $2) ",
                                              "ORDER BY job_id, grp, replica, attempt");
  constexpr absl::string_view kWhat = "list active tasks";
  std::vector<TaskRecord> tasks;
  Params params;
  params.Text(TaskStateName(TaskState::kAssigned)).Text(TaskStateName(TaskState::kRunning));
  absl::Status status = WithConnection([&](Connection& conn) {
    return Query(
        conn, sql, params, &tasks, [&](const Row& r) { return columns::DecodeTask(r, kWhat); }, kWhat);
  });
  if (!status.ok()) return status;
  return tasks;
}

absl::StatusOr<std::vector<NodeRecord>> PostgresStateStore::ListNodes() {
  static const std::string sql = absl::StrCat("SELECT ", columns::kNode, " FROM nodes ORDER BY name");
  std::vector<NodeRecord> nodes;
  absl::Status status = WithConnection(
      [&](Connection& conn) { return Query(conn, sql, Params(), &nodes, columns::DecodeNode<Row>, "list nodes"); });
  if (!status.ok()) return status;
  return nodes;
}

absl::StatusOr<std::vector<QueueRecord>> PostgresStateStore::ListQueues() {
  static const std::string sql = "SELECT name, spec_json FROM queues ORDER BY name";
  std::vector<QueueRecord> queues;
  absl::Status status = WithConnection([&](Connection& conn) {
    return Query(
        conn, sql, Params(), &queues,
        [](const Row& r) { return QueueRecord{.name = r.Text(0), .spec_json = r.Text(1)}; }, "list queues");
  });
  if (!status.ok()) return status;
  return queues;
}

absl::StatusOr<TokenRecord> PostgresStateStore::GetToken(const std::string& token_hash) {
  static const std::string sql = absl::StrCat("SELECT ", columns::kToken, " FROM tokens WHERE token_hash = $1");
  std::vector<TokenRecord> tokens;
  Params params;
  params.Text(token_hash);
  absl::Status status = WithConnection(
      [&](Connection& conn) { return Query(conn, sql, params, &tokens, columns::DecodeToken<Row>, "get token"); });
  if (!status.ok()) return status;
  // The hash is a credential's fingerprint; it stays out of error messages.
  if (tokens.empty()) return absl::NotFoundError("token not found");
  return std::move(tokens.front());
}

absl::StatusOr<std::vector<TokenRecord>> PostgresStateStore::ListTokens() {
  static const std::string sql = absl::StrCat("SELECT ", columns::kToken, " FROM tokens ORDER BY token_hash");
  std::vector<TokenRecord> tokens;
  absl::Status status = WithConnection(
      [&](Connection& conn) { return Query(conn, sql, Params(), &tokens, columns::DecodeToken<Row>, "list tokens"); });
  if (!status.ok()) return status;
  return tokens;
}

absl::StatusOr<std::vector<EventRecord>> PostgresStateStore::ListEvents(int64_t job_id, int64_t after_id,
                                                                        int32_t limit) {
  static const std::string of_job =
      absl::StrCat("SELECT ", columns::kEvent, " FROM events WHERE job_id = $1 AND id > $2 ORDER BY id LIMIT $3");
  static const std::string of_all =
      absl::StrCat("SELECT ", columns::kEvent, " FROM events WHERE id > $1 ORDER BY id LIMIT $2");
  constexpr absl::string_view kWhat = "list events";
  if (job_id < 0) return absl::InvalidArgumentError(absl::StrCat("list events: job id ", job_id, " is negative"));
  Params params;
  if (job_id > 0) params.Int(job_id);
  params.Int(after_id);
  if (absl::Status s = AddLimit(params, limit, kWhat); !s.ok()) return s;
  std::vector<EventRecord> events;
  absl::Status status = WithConnection([&](Connection& conn) {
    return Query(conn, job_id > 0 ? of_job : of_all, params, &events, columns::DecodeEvent<Row>, kWhat);
  });
  if (!status.ok()) return status;
  return events;
}

absl::StatusOr<std::vector<UsageRecord>> PostgresStateStore::ListUsage(int64_t since_ms, int64_t until_ms) {
  static const std::string sql = absl::StrCat(
      "SELECT ", columns::kUsage,
      " FROM usage WHERE start_ms < $1 AND (end_ms = 0 OR end_ms > $2) ORDER BY job_id, grp, replica, attempt");
  std::vector<UsageRecord> out;
  Params params;
  params.Int(until_ms).Int(since_ms);
  absl::Status status = WithConnection(
      [&](Connection& conn) { return Query(conn, sql, params, &out, columns::DecodeUsage<Row>, "list usage"); });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<UtilisationSample>> PostgresStateStore::ListUtilisation(int64_t since_s, int64_t until_s) {
  static const std::string sql =
      "SELECT time_s, sample_json FROM utilisation WHERE time_s >= $1 AND time_s < $2 ORDER BY time_s";
  std::vector<UtilisationSample> out;
  Params params;
  params.Int(since_s).Int(until_s);
  absl::Status status = WithConnection([&](Connection& conn) {
    return Query(
        conn, sql, params, &out,
        [](const Row& r) { return UtilisationSample{.time_s = r.Int(0), .sample_json = r.Text(1)}; },
        "list utilisation");
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<JobCounts>> PostgresStateStore::CountJobs(int64_t since_ms, int64_t until_ms) {
  // $1 = since, $2 = until. A job counts as ended only once end_ms is set
  // (a failed job whose tasks still stop has end_ms 0).
  static const std::string sql = absl::StrCat(
      "SELECT \"user\", queue, COUNT(*) FILTER (WHERE submit_ms >= $1 AND submit_ms < $2), ",
      "COUNT(*) FILTER (WHERE state = 'Succeeded' AND end_ms >= $1 AND end_ms < $2 AND end_ms > 0), ",
      "COUNT(*) FILTER (WHERE state = 'Failed' AND end_ms >= $1 AND end_ms < $2 AND end_ms > 0), ",
      "COUNT(*) FILTER (WHERE state = 'Cancelled' AND end_ms >= $1 AND end_ms < $2 AND end_ms > 0) ",
      "FROM jobs WHERE (submit_ms >= $1 AND submit_ms < $2) OR (end_ms >= $1 AND end_ms < $2 AND end_ms > 0) ",
      "GROUP BY \"user\", queue ORDER BY \"user\", queue");
  std::vector<JobCounts> out;
  Params params;
  params.Int(since_ms).Int(until_ms);
  absl::Status status = WithConnection([&](Connection& conn) {
    return Query(
        conn, sql, params, &out,
        [](const Row& r) {
          return JobCounts{.user = r.Text(0),
                           .queue = r.Text(1),
                           .submitted = r.Int(2),
                           .succeeded = r.Int(3),
                           .failed = r.Int(4),
                           .cancelled = r.Int(5)};
        },
        "count jobs");
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<std::pair<JobState, int64_t>>> PostgresStateStore::CountJobsByState() {
  static const std::string sql = "SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state";
  std::vector<std::pair<JobState, int64_t>> out;
  absl::Status status = WithConnection([&](Connection& conn) {
    return Query(
        conn, sql, Params(), &out,
        [](const Row& r) -> absl::StatusOr<std::pair<JobState, int64_t>> {
          const std::string name = r.Text(0);
          std::optional<JobState> state = ParseJobState(name);
          if (!state) return absl::DataLossError(absl::StrCat("count jobs by state: unknown state '", name, "'"));
          return std::make_pair(*state, r.Int(1));
        },
        "count jobs by state");
  });
  if (!status.ok()) return status;
  return out;
}

}  // namespace icos::store
