#include "store/postgres_state_store.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
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
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "store/postgres_connection.h"
#include "store/record_columns.h"
#include "store/sql_queries.h"

namespace icos::store {
namespace {

// The schema's migrations and every query are sql_queries.h's, in PostgreSQL's
// words; they mirror SqliteStateStore's, version for version.
constexpr sql::Dialect kDialect = sql::Dialect::kPostgres;
static_assert(sql::kMigrationCount == PostgresStateStore::kSchemaVersion,
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

// Runs `query` and collects its rows with `read`.
template <typename T, typename ReadFn>
absl::Status QueryRows(Connection& conn, const sql::Query& query, std::vector<T>* out, ReadFn read,
                       absl::string_view what) {
  absl::StatusOr<Result> result = conn.Exec(query, what);
  if (!result.ok()) return result.status();
  return CollectRows(*result, out, read, what);
}

// The leader row; FOR SHARE inside a write transaction, so a takeover (which
// updates the row) waits for the write to commit, and a write that starts
// after the takeover sees the new epoch.
absl::StatusOr<LeaderRecord> ReadLeader(Connection& conn, bool for_share, absl::string_view what) {
  absl::StatusOr<Result> r = conn.Exec(sql::ReadLeader(kDialect, /*lock_row=*/for_share), what);
  if (!r.ok()) return r.status();
  if (r->rows() != 1) return absl::DataLossError(absl::StrCat(what, ": the leader row is missing"));
  LeaderRecord out = columns::DecodeLeader(Row{*r, 0});
  if (r->malformed()) return absl::DataLossError(absl::StrCat(what, ": the server returned a malformed number"));
  return out;
}

absl::StatusOr<int64_t> InsertEvent(Connection& conn, const EventRecord& event, absl::string_view what) {
  absl::StatusOr<Result> result = conn.Exec(sql::InsertEvent(kDialect, event), what);
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
    const std::string step = sql::Migration(kDialect, static_cast<int32_t>(v + 1));
    if (absl::Status s = conn.ExecScript(step.c_str(), absl::StrCat(what, ": migrate to schema v", v + 1)); !s.ok()) {
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
  std::lock_guard<std::mutex> lock(pool_mu_);
  idle_.push_back(std::move(first));
}

PostgresStateStore::~PostgresStateStore() {
  {
    std::lock_guard<std::mutex> lock(pool_mu_);
    idle_.clear();
  }
  std::lock_guard<std::mutex> lead(lead_mu_);
  lock_conn_.reset();  // ends the session, which releases the leadership lock
}

absl::Status PostgresStateStore::CheckFence(Connection& conn, absl::string_view what) {
  const int64_t mine = fence_epoch_.load(std::memory_order_acquire);
  if (mine == 0) return absl::OkStatus();
  return CheckEpoch(mine, ReadLeader(conn, /*for_share=*/true, what), what);
}

absl::StatusOr<LeadResult> PostgresStateStore::TryLead(const LeaderRecord& me) {
  constexpr absl::string_view kWhat = "take the store's leadership";
  std::lock_guard<std::mutex> lead(lead_mu_);
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
  absl::StatusOr<Result> taken = (*conn)->Exec(sql::TakeLeader(kDialect, me), kWhat);
  if (!taken.ok()) return taken.status();
  if (taken->rows() != 1) return absl::DataLossError(absl::StrCat(kWhat, ": the leader row is missing"));
  const LeaderRecord record = columns::DecodeLeader(Row{*taken, 0});
  lock_conn_ = *std::move(conn);
  fence_epoch_.store(record.epoch, std::memory_order_release);
  return LeadResult{.acquired = true, .leader = record};
}

absl::Status PostgresStateStore::CheckLeadership() {
  constexpr absl::string_view kWhat = "check the store's leadership";
  std::lock_guard<std::mutex> lead(lead_mu_);
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
  constexpr absl::string_view kWhat = "cluster id";
  std::string out;
  absl::Status status = WithConnection([&](Connection& conn) -> absl::Status {
    const sql::Query insert = sql::InsertClusterId(kDialect, candidate, absl::ToUnixMillis(absl::Now()));
    if (auto inserted = conn.Exec(insert, kWhat); !inserted.ok()) return inserted.status();
    absl::StatusOr<Result> row = conn.Exec(sql::GetClusterId(kDialect), kWhat);
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
    std::lock_guard<std::mutex> lock(pool_mu_);
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
      std::lock_guard<std::mutex> lock(pool_mu_);
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
    std::lock_guard<std::mutex> lock(pool_mu_);
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
        absl::StatusOr<Result> found = conn.Exec(
            sql::FindIdempotencyKey(kDialect, job.user, job.idempotency_key, job.submit_ms - kIdempotencyWindowMs),
            kWhat);
        if (!found.ok()) return found.status();
        if (found->rows() > 0) {  // this key's job exists (maybe from earlier in this very group)
          outcomes[i] = {.id = found->Int(0, 0), .existing = true, .conflict = found->Text(0, 1) != job.request_digest};
          outcomes[i].array_id = job.starts_array ? outcomes[i].id : 0;
          arrays.Inserted(job, outcomes[i].id, /*replayed=*/true);
          continue;
        }
      }
      const JobRecord row = arrays.Row(job);
      absl::StatusOr<Result> inserted = conn.Exec(sql::InsertJob(kDialect, row), kWhat);
      if (!inserted.ok()) return inserted.status();
      const int64_t id = inserted->Int(0, 0);
      outcomes[i].id = id;
      outcomes[i].array_id = job.starts_array ? id : row.array_id;
      arrays.Inserted(job, id, /*replayed=*/false);
      if (job.starts_array) {
        if (auto set = conn.Exec(sql::SetOwnArray(kDialect, id), kWhat); !set.ok()) return set.status();
      }
      if (auto event = InsertEvent(conn, SubmittedEvent(job, id), kWhat); !event.ok()) return event.status();
      if (!job.idempotency_key.empty()) {
        const sql::Query put_key =
            sql::PutIdempotencyKey(kDialect, job.user, job.idempotency_key, id, job.request_digest, job.submit_ms);
        if (auto put = conn.Exec(put_key, kWhat); !put.ok()) return put.status();
      }
    }
    if (prune) {
      const sql::Query prune_keys = sql::PruneIdempotencyKeys(kDialect, newest - kIdempotencyWindowMs);
      if (auto pruned = conn.Exec(prune_keys, kWhat); !pruned.ok()) return pruned.status();
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
      absl::StatusOr<Result> r = conn.Exec(sql::UpdateJob(kDialect, job), kWhat);
      if (!r.ok()) return r.status();
      if (r->Affected() == 0) return absl::NotFoundError(absl::StrCat("apply: job ", job.id, " does not exist"));
    }
    for (const TaskRecord& task : batch.tasks) {
      if (auto r = conn.Exec(sql::UpsertTask(kDialect, task), kWhat); !r.ok()) {
        if (conn.last_sqlstate() == kForeignKeyViolation) {
          return absl::NotFoundError(absl::StrCat("apply: task (group ", task.group, ", replica ", task.replica,
                                                  ", attempt ", task.attempt, ") of job ", task.job_id,
                                                  ": job does not exist"));
        }
        return r.status();
      }
    }
    for (const NodeRecord& node : batch.nodes) {
      if (auto r = conn.Exec(sql::UpsertNode(kDialect, node), kWhat); !r.ok()) return r.status();
    }
    for (const QueueRecord& queue : batch.queues) {
      if (auto r = conn.Exec(sql::UpsertQueue(kDialect, queue), kWhat); !r.ok()) return r.status();
    }
    for (const std::string& name : batch.deleted_queues) {
      if (auto r = conn.Exec(sql::DeleteQueue(kDialect, name), kWhat); !r.ok()) return r.status();
    }
    for (const ServiceRecord& service : batch.services) {
      if (auto r = conn.Exec(sql::UpsertService(kDialect, service), kWhat); !r.ok()) return r.status();
    }
    for (const TokenRecord& token : batch.tokens) {
      if (auto r = conn.Exec(sql::UpsertToken(kDialect, token), kWhat); !r.ok()) return r.status();
    }
    for (const EventRecord& event : batch.events) {
      if (absl::StatusOr<int64_t> id = InsertEvent(conn, event, kWhat); !id.ok()) return id.status();
    }
    for (const UsageRecord& u : batch.usage) {
      if (auto r = conn.Exec(sql::UpsertUsage(kDialect, u), kWhat); !r.ok()) {
        if (conn.last_sqlstate() == kForeignKeyViolation) {
          return absl::NotFoundError(absl::StrCat("apply: usage of job ", u.job_id, ": job does not exist"));
        }
        return r.status();
      }
    }
    for (const UtilisationSample& sample : batch.samples) {
      if (auto r = conn.Exec(sql::UpsertSample(kDialect, sample), kWhat); !r.ok()) return r.status();
    }
    if (batch.prune_samples_before_s > 0) {
      const sql::Query prune = sql::PruneSamples(kDialect, batch.prune_samples_before_s);
      if (auto r = conn.Exec(prune, kWhat); !r.ok()) return r.status();
    }
    for (const NotificationRecord& n : batch.notifications) {
      const sql::Query q = n.id == 0 ? sql::InsertNotification(kDialect, n) : sql::UpdateNotification(kDialect, n);
      if (auto r = conn.Exec(q, kWhat); !r.ok()) return r.status();
    }
    for (int64_t id : batch.done_notifications) {
      if (auto r = conn.Exec(sql::DeleteNotification(kDialect, id), kWhat); !r.ok()) return r.status();
    }
    return txn.Commit();
  });
}

absl::StatusOr<JobRecord> PostgresStateStore::GetJob(int64_t id) {
  constexpr absl::string_view kWhat = "get job";
  std::vector<JobRecord> jobs;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(
        conn, sql::GetJob(kDialect, id), &jobs, [&](const Row& r) { return columns::DecodeJob(r, kWhat); }, kWhat);
  });
  if (!status.ok()) return status;
  if (jobs.empty()) return absl::NotFoundError(absl::StrCat("job ", id, " not found"));
  return std::move(jobs.front());
}

absl::StatusOr<std::vector<JobRecord>> PostgresStateStore::ListJobs(const JobQuery& query) {
  constexpr absl::string_view kWhat = "list jobs";
  absl::StatusOr<sql::Query> q = sql::ListJobs(kDialect, query);
  if (!q.ok()) return q.status();
  std::vector<JobRecord> jobs;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(
        conn, *q, &jobs, [&](const Row& r) { return columns::DecodeJob(r, kWhat); }, kWhat);
  });
  if (!status.ok()) return status;
  return jobs;
}

absl::StatusOr<std::vector<TaskRecord>> PostgresStateStore::ListTasks(int64_t job_id) {
  constexpr absl::string_view kWhat = "list tasks";
  std::vector<TaskRecord> tasks;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(
        conn, sql::ListTasks(kDialect, job_id), &tasks, [&](const Row& r) { return columns::DecodeTask(r, kWhat); },
        kWhat);
  });
  if (!status.ok()) return status;
  return tasks;
}

absl::StatusOr<std::vector<TaskRecord>> PostgresStateStore::ListActiveTasks() {
  constexpr absl::string_view kWhat = "list active tasks";
  std::vector<TaskRecord> tasks;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(
        conn, sql::ListActiveTasks(kDialect), &tasks, [&](const Row& r) { return columns::DecodeTask(r, kWhat); },
        kWhat);
  });
  if (!status.ok()) return status;
  return tasks;
}

absl::StatusOr<std::vector<NodeRecord>> PostgresStateStore::ListNodes() {
  std::vector<NodeRecord> nodes;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(conn, sql::ListNodes(kDialect), &nodes, columns::DecodeNode<Row>, "list nodes");
  });
  if (!status.ok()) return status;
  return nodes;
}

absl::StatusOr<std::vector<ServiceRecord>> PostgresStateStore::ListServices() {
  std::vector<ServiceRecord> services;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(
        conn, sql::ListServices(kDialect), &services,
        [](const Row& r) { return ServiceRecord{.id = r.Int(0), .state_json = r.Text(1)}; }, "list services");
  });
  if (!status.ok()) return status;
  return services;
}

absl::StatusOr<std::vector<QueueRecord>> PostgresStateStore::ListQueues() {
  std::vector<QueueRecord> queues;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(
        conn, sql::ListQueues(kDialect), &queues,
        [](const Row& r) { return QueueRecord{.name = r.Text(0), .spec_json = r.Text(1)}; }, "list queues");
  });
  if (!status.ok()) return status;
  return queues;
}

absl::StatusOr<TokenRecord> PostgresStateStore::GetToken(const std::string& token_hash) {
  std::vector<TokenRecord> tokens;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(conn, sql::GetToken(kDialect, token_hash), &tokens, columns::DecodeToken<Row>, "get token");
  });
  if (!status.ok()) return status;
  // The hash is a credential's fingerprint; it stays out of error messages.
  if (tokens.empty()) return absl::NotFoundError("token not found");
  return std::move(tokens.front());
}

absl::StatusOr<std::vector<TokenRecord>> PostgresStateStore::ListTokens() {
  std::vector<TokenRecord> tokens;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(conn, sql::ListTokens(kDialect), &tokens, columns::DecodeToken<Row>, "list tokens");
  });
  if (!status.ok()) return status;
  return tokens;
}

absl::StatusOr<std::vector<EventRecord>> PostgresStateStore::ListEvents(int64_t job_id, int64_t after_id,
                                                                        int32_t limit) {
  absl::StatusOr<sql::Query> q = sql::ListEvents(kDialect, job_id, after_id, limit);
  if (!q.ok()) return q.status();
  std::vector<EventRecord> events;
  absl::Status status = WithConnection(
      [&](Connection& conn) { return QueryRows(conn, *q, &events, columns::DecodeEvent<Row>, "list events"); });
  if (!status.ok()) return status;
  return events;
}

absl::StatusOr<std::vector<NotificationRecord>> PostgresStateStore::ListDueNotifications(int64_t now_ms,
                                                                                         int32_t limit) {
  absl::StatusOr<sql::Query> q = sql::ListDueNotifications(kDialect, now_ms, limit);
  if (!q.ok()) return q.status();
  std::vector<NotificationRecord> out;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(conn, *q, &out, columns::DecodeNotification<Row>, "list notifications");
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<UsageRecord>> PostgresStateStore::ListUsage(int64_t since_ms, int64_t until_ms) {
  std::vector<UsageRecord> out;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(conn, sql::ListUsage(kDialect, since_ms, until_ms), &out, columns::DecodeUsage<Row>, "list usage");
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<UtilisationSample>> PostgresStateStore::ListUtilisation(int64_t since_s, int64_t until_s) {
  std::vector<UtilisationSample> out;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(
        conn, sql::ListUtilisation(kDialect, since_s, until_s), &out,
        [](const Row& r) { return UtilisationSample{.time_s = r.Int(0), .sample_json = r.Text(1)}; },
        "list utilisation");
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<JobCounts>> PostgresStateStore::CountJobs(int64_t since_ms, int64_t until_ms) {
  std::vector<JobCounts> out;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(
        conn, sql::CountJobs(kDialect, since_ms, until_ms), &out,
        [](const Row& r) {
          return JobCounts{.user = r.Text(0),
                           .queue = r.Text(1),
                           .submitted = r.Int(2),
                           .succeeded = r.Int(3),
                           .failed = r.Int(4),
                           .cancelled = r.Int(5),
                           .lost_device_ms = r.Int(6)};
        },
        "count jobs");
  });
  if (!status.ok()) return status;
  return out;
}

absl::StatusOr<std::vector<std::pair<JobState, int64_t>>> PostgresStateStore::CountJobsByState() {
  std::vector<std::pair<JobState, int64_t>> out;
  absl::Status status = WithConnection([&](Connection& conn) {
    return QueryRows(
        conn, sql::CountJobsByState(kDialect), &out,
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
