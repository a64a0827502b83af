// The StateStore backends' SQL, written once for SQLite and PostgreSQL: the
// schema migrations and every query and write both backends run. A change to
// the schema or to a query is made here, in one place, for both.
//
// Internal to src/store: only backends include it. A query is built as a
// Query: SQL text with a placeholder for each parameter in the backend's
// style (?N for SQLite, $N for PostgreSQL) and the parameter values recorded
// in order; a backend prepares sql() and binds params() with its own
// statement type (BindTo). What stays in a backend is what only it has:
// SQLite's PRAGMAs and file lock, PostgreSQL's advisory locks, schema_version
// table and session settings, and how each reports rows changed or a foreign
// key violated.
#ifndef ICOS_STORE_SQL_QUERIES_H_
#define ICOS_STORE_SQL_QUERIES_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "store/records.h"

namespace icos::store::sql {

enum class Dialect { kSqlite, kPostgres };

// One recorded parameter value.
struct Param {
  enum class Kind { kInt, kText, kBool, kNull };
  Kind kind = Kind::kNull;
  int64_t int_value = 0;  // kInt; kBool as 0 or 1
  std::string text;       // kText
};

// SQL text and its parameters, built left to right. Placeholders are
// numbered in both dialects (?1 or $1), so a value may be named again with
// BindInt's placeholder. Int, Text and Bool make Query a Binder for
// record_columns.h.
class Query {
 public:
  explicit Query(Dialect dialect) : dialect_(dialect) {}

  // Appends SQL text as is (pieces are concatenated).
  template <typename... Pieces>
  Query& Sql(const Pieces&... pieces) {
    absl::StrAppend(&sql_, pieces...);
    return *this;
  }

  // Each appends a placeholder for a new parameter with this value.
  Query& Int(int64_t value) { return Append(Param{.kind = Param::Kind::kInt, .int_value = value}); }
  Query& Bool(bool value) { return Append(Param{.kind = Param::Kind::kBool, .int_value = value ? 1 : 0}); }
  Query& Text(absl::string_view value) { return Append(Param{.kind = Param::Kind::kText, .text = std::string(value)}); }
  Query& Null() { return Append(Param{.kind = Param::Kind::kNull}); }
  // The placeholder for LIMIT `limit`, the interface's (0: no limit; the
  // caller has checked it with CheckLimit): SQLite takes -1 for no limit,
  // PostgreSQL NULL.
  Query& Limit(int32_t limit);

  // Records a parameter without appending anything; returns its placeholder,
  // for SQL that names the value more than once.
  std::string BindInt(int64_t value);

  // Appends "(p1, p2, ...)": a placeholder for each value `bind` adds to the
  // List it is given (a Binder, e.g. columns::BindTask's).
  template <typename BindFn>
  Query& Values(BindFn bind) {
    sql_ += '(';
    List list(*this);
    bind(list);
    sql_ += ')';
    return *this;
  }

  Dialect dialect() const { return dialect_; }
  const std::string& sql() const { return sql_; }
  const std::vector<Param>& params() const { return params_; }

  // Binds every parameter, in order, onto a backend's binder (Int(int64_t),
  // Text(string_view), Bool(bool), Null()).
  template <typename Binder>
  Binder& BindTo(Binder& b) const {
    for (const Param& p : params_) {
      switch (p.kind) {
        case Param::Kind::kInt:
          b.Int(p.int_value);
          break;
        case Param::Kind::kText:
          b.Text(p.text);
          break;
        case Param::Kind::kBool:
          b.Bool(p.int_value != 0);
          break;
        case Param::Kind::kNull:
          b.Null();
          break;
      }
    }
    return b;
  }

 private:
  // A comma-separated run of placeholders (Values).
  class List {
   public:
    explicit List(Query& q) : q_(q) {}
    List& Int(int64_t value) {
      return Next([&] { q_.Int(value); });
    }
    List& Bool(bool value) {
      return Next([&] { q_.Bool(value); });
    }
    List& Text(absl::string_view value) {
      return Next([&] { q_.Text(value); });
    }

   private:
    template <typename Fn>
    List& Next(Fn add) {
      if (!first_) q_.sql_ += ", ";
      first_ = false;
      add();
      return *this;
    }
    Query& q_;
    bool first_ = true;
  };

  std::string Placeholder(size_t n) const;
  Query& Append(Param param);

  Dialect dialect_;
  std::string sql_;
  std::vector<Param> params_;
};

// ---- Schema ----

// The number of migrations: Migration(d, v) for v in 1..kMigrationCount.
inline constexpr int32_t kMigrationCount = 9;
// The step from schema version v - 1 to v, in `d`'s DDL (one or more
// statements, no parameters).
std::string Migration(Dialect d, int32_t v);

// ---- Reads ----

Query GetJob(Dialect d, int64_t id);
// InvalidArgument (prefixed "list jobs") for a bad limit.
absl::StatusOr<Query> ListJobs(Dialect d, const JobQuery& query);
Query ListTasks(Dialect d, int64_t job_id);
Query ListActiveTasks(Dialect d);
Query ListNodes(Dialect d);
Query ListQueues(Dialect d);    // name, spec_json
Query ListServices(Dialect d);  // id, state_json
Query GetToken(Dialect d, const std::string& token_hash);
Query ListTokens(Dialect d);
// InvalidArgument (prefixed "list events") for a negative job id or a bad limit.
absl::StatusOr<Query> ListEvents(Dialect d, int64_t job_id, int64_t after_id, int32_t limit);
Query ListUsage(Dialect d, int64_t since_ms, int64_t until_ms);
// InvalidArgument (prefixed "list notifications") for a bad limit.
absl::StatusOr<Query> ListDueNotifications(Dialect d, int64_t now_ms, int32_t limit);
Query ListUtilisation(Dialect d, int64_t since_s, int64_t until_s);  // time_s, sample_json
// user, queue, submitted, succeeded, failed, cancelled.
Query CountJobs(Dialect d, int64_t since_ms, int64_t until_ms);
Query CountJobsByState(Dialect d);  // state, count

// ---- Leadership and the cluster id ----

// epoch, holder, url, since_ms. `lock_row`: read inside a write transaction,
// so that a takeover waits for the write (PostgreSQL's FOR SHARE; SQLite's
// write transaction already holds the whole database).
Query ReadLeader(Dialect d, bool lock_row);
// Takes the next epoch for `me`; returns the row as ReadLeader reads it.
Query TakeLeader(Dialect d, const LeaderRecord& me);
// Sets the cluster id unless one is set.
Query InsertClusterId(Dialect d, const std::string& candidate, int64_t now_ms);
Query GetClusterId(Dialect d);  // cluster_id

// ---- Writes ----

// Each INSERT of a row with a database-assigned id returns the id (RETURNING).
Query InsertJob(Dialect d, const JobRecord& job);
Query SetOwnArray(Dialect d, int64_t job_id);  // the job is its array's first
Query InsertEvent(Dialect d, const EventRecord& event);
// job_id, request_digest of the key, if made at or after since_ms.
Query FindIdempotencyKey(Dialect d, const std::string& user, const std::string& key, int64_t since_ms);
Query PutIdempotencyKey(Dialect d, const std::string& user, const std::string& key, int64_t job_id,
                        const std::string& request_digest, int64_t created_ms);
Query PruneIdempotencyKeys(Dialect d, int64_t before_ms);

// Every field of the job with id job.id; no row changes when it is absent.
Query UpdateJob(Dialect d, const JobRecord& job);
Query UpsertTask(Dialect d, const TaskRecord& task);
Query UpsertNode(Dialect d, const NodeRecord& node);
Query UpsertQueue(Dialect d, const QueueRecord& queue);
Query DeleteQueue(Dialect d, const std::string& name);
Query UpsertService(Dialect d, const ServiceRecord& service);
Query UpsertToken(Dialect d, const TokenRecord& token);
Query UpsertUsage(Dialect d, const UsageRecord& usage);
Query UpsertSample(Dialect d, const UtilisationSample& sample);
Query PruneSamples(Dialect d, int64_t before_s);
// A NotificationRecord of a WriteBatch: inserted (id 0; returns the id) or
// its attempts, next_ms and last_error updated.
Query InsertNotification(Dialect d, const NotificationRecord& n);
Query UpdateNotification(Dialect d, const NotificationRecord& n);
Query DeleteNotification(Dialect d, int64_t id);

}  // namespace icos::store::sql

#endif  // ICOS_STORE_SQL_QUERIES_H_
