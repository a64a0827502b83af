#include "store/sql_queries.h"

#include <cstdint>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "store/record_columns.h"

namespace icos::store::sql {
namespace {

// Migrations, in order: kMigrations[i] takes the schema from version i to
// i + 1. Released steps never change; a schema change is a new step at the
// end, written once for both databases with these words for what differs:
//
//   {id}             the id column of a table whose rows the database numbers;
//                    ids are never reused (SQLite: AUTOINCREMENT; PostgreSQL:
//                    an identity, i.e. a sequence)
//   {int64}          a 64-bit integer: SQLite's INTEGER is one; PostgreSQL's
//                    is 32 bits, so BIGINT. (Plain INTEGER is 32 bits there.)
//   {bool}           SQLite has no BOOLEAN in a STRICT table: INTEGER 0 or 1
//   {bytewise_text}  text that is a key or ordered by: PostgreSQL's is
//                    COLLATE "C" so that ORDER BY compares bytes, as SQLite's
//                    default (BINARY) does, whatever the database's locale
//   {strict}, {strict_without_rowid}
//                    after a CREATE TABLE's closing parenthesis: STRICT makes
//                    SQLite reject a value of the wrong type instead of storing
//                    it, so what is read back is what was written; a table with
//                    a primary key other than an integer id needs no rowid
//   {events_by_job}  the columns of events_by_job: SQLite appends the rowid
//                    (events.id) to every index itself
//
// For v1..v5 each dialect's expansion is the DDL its backend carried on its
// own before, but for comments and SQLite's "user" now quoted (the same
// column): databases made before and after have the same schema.
constexpr const char* kMigrations[] = {
    // v1: the initial schema.
    R"sql(
CREATE TABLE jobs (
  id {id},  -- ids are never reused
  name TEXT NOT NULL,
  "user" {bytewise_text} NOT NULL,
  queue {bytewise_text} NOT NULL,
  priority INTEGER NOT NULL,
  state {bytewise_text} NOT NULL,
  spec_json TEXT NOT NULL,
  reason TEXT NOT NULL,
  submit_ms {int64} NOT NULL,
  start_ms {int64} NOT NULL,
  end_ms {int64} NOT NULL,
  attempt INTEGER NOT NULL
){strict};
CREATE INDEX jobs_by_state ON jobs(state);
CREATE INDEX jobs_by_user ON jobs("user");
CREATE INDEX jobs_by_queue ON jobs(queue);

CREATE TABLE tasks (
  job_id {int64} NOT NULL REFERENCES jobs(id),
  grp INTEGER NOT NULL,
  replica INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  node TEXT NOT NULL,
  placement_json TEXT NOT NULL,
  state {bytewise_text} NOT NULL,
  exit_code INTEGER NOT NULL,
  reason TEXT NOT NULL,
  start_ms {int64} NOT NULL,
  end_ms {int64} NOT NULL,
  PRIMARY KEY (job_id, grp, replica, attempt)
){strict_without_rowid};
CREATE INDEX tasks_by_state ON tasks(state);

CREATE TABLE nodes (
  name {bytewise_text} PRIMARY KEY,
  spec_json TEXT NOT NULL,
  state TEXT NOT NULL,
  address TEXT NOT NULL,
  registered_ms {int64} NOT NULL,
  heartbeat_ms {int64} NOT NULL
){strict_without_rowid};

CREATE TABLE queues (
  name {bytewise_text} PRIMARY KEY,
  spec_json TEXT NOT NULL
){strict_without_rowid};

CREATE TABLE tokens (
  token_hash {bytewise_text} PRIMARY KEY,
  name TEXT NOT NULL,
  role TEXT NOT NULL,
  "user" TEXT NOT NULL,
  created_ms {int64} NOT NULL,
  revoked {bool} NOT NULL
){strict_without_rowid};

CREATE TABLE events (
  id {id},
  job_id {int64} NOT NULL,  -- 0: a cluster event; no foreign key for that reason
  node TEXT NOT NULL,
  time_ms {int64} NOT NULL,
  kind TEXT NOT NULL,
  message TEXT NOT NULL
){strict};
CREATE INDEX events_by_job ON events({events_by_job});
)sql",
    // v2: usage accounting and utilisation history (issue 6).
    R"sql(
CREATE TABLE usage (
  job_id {int64} NOT NULL REFERENCES jobs(id),
  grp INTEGER NOT NULL,
  replica INTEGER NOT NULL,
  attempt INTEGER NOT NULL,
  "user" TEXT NOT NULL,
  queue TEXT NOT NULL,
  node TEXT NOT NULL,
  start_ms {int64} NOT NULL,
  end_ms {int64} NOT NULL,  -- 0: still running
  cpu_milli {int64} NOT NULL,
  devices_json TEXT NOT NULL,
  PRIMARY KEY (job_id, grp, replica, attempt)
){strict_without_rowid};
CREATE INDEX usage_by_start ON usage(start_ms);

CREATE TABLE utilisation (
  time_s {int64} PRIMARY KEY,
  sample_json TEXT NOT NULL
){strict};

-- Job counts over a time window look jobs up by submit and end time.
CREATE INDEX jobs_by_submit ON jobs(submit_ms);
CREATE INDEX jobs_by_end ON jobs(end_ms);
)sql",
    // v3: which controller leads the store (high availability; state_store.h).
    R"sql(
CREATE TABLE leader (
  id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
  epoch {int64} NOT NULL,
  holder TEXT NOT NULL,
  url TEXT NOT NULL,
  since_ms {int64} NOT NULL
){strict};
INSERT INTO leader(id, epoch, holder, url, since_ms) VALUES (1, 0, '', '', 0);
)sql",
    // v4: idempotency keys of submissions (issue 16): a retried submit finds its job.
    R"sql(
CREATE TABLE idempotency_keys (
  "user" {bytewise_text} NOT NULL,
  key {bytewise_text} NOT NULL,
  job_id {int64} NOT NULL REFERENCES jobs(id),
  request_digest TEXT NOT NULL,
  created_ms {int64} NOT NULL,
  PRIMARY KEY ("user", key)
){strict_without_rowid};
CREATE INDEX idempotency_keys_by_created ON idempotency_keys(created_ms);

-- Unix identities pinned by tokens, for their jobs (issue 17); token expiry,
-- use and the node a node credential is bound to.
ALTER TABLE jobs ADD COLUMN run_uid {int64} NOT NULL DEFAULT -1;
ALTER TABLE jobs ADD COLUMN run_gid {int64} NOT NULL DEFAULT -1;
ALTER TABLE tokens ADD COLUMN uid {int64} NOT NULL DEFAULT -1;
ALTER TABLE tokens ADD COLUMN gid {int64} NOT NULL DEFAULT -1;
ALTER TABLE tokens ADD COLUMN expires_ms {int64} NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN last_used_ms {int64} NOT NULL DEFAULT 0;
ALTER TABLE tokens ADD COLUMN node {bytewise_text} NOT NULL DEFAULT '';

-- The cluster's own id (StateStore::ClusterId), made by the first controller.
CREATE TABLE cluster (
  id INTEGER PRIMARY KEY CHECK (id = 1),  -- one row
  cluster_id TEXT NOT NULL,
  created_ms {int64} NOT NULL
){strict};
)sql",
    // v5: jobs held back from scheduling (icos hold), and by whom; job arrays.
    R"sql(
ALTER TABLE jobs ADD COLUMN hold {bytewise_text} NOT NULL DEFAULT '';
ALTER TABLE jobs ADD COLUMN array_id {int64} NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN array_index INTEGER NOT NULL DEFAULT -1;
CREATE INDEX jobs_by_array ON jobs(array_id) WHERE array_id != 0;
)sql",
    // v6: the checkpoint contract (issue #20): each job's last finished
    // checkpoint and the device-time its interruptions threw away.
    R"sql(
ALTER TABLE jobs ADD COLUMN checkpoint_ms {int64} NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN lost_device_ms {int64} NOT NULL DEFAULT 0;
)sql",
    // v7 (issue #19): the outbox of webhook messages still to deliver; each
    // task's peak memory.
    R"sql(
ALTER TABLE tasks ADD COLUMN max_rss_kib {int64} NOT NULL DEFAULT 0;
CREATE TABLE notifications (
  id {id},
  job_id {int64} NOT NULL,
  url TEXT NOT NULL,
  body TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  next_ms {int64} NOT NULL,
  last_error TEXT NOT NULL
){strict};
CREATE INDEX notifications_by_due ON notifications(next_ms);
)sql",
    // v8 (issue #20): how long a job's checkpoint took after a stop's
    // signal, which sizes the window of its next planned stop.
    R"sql(
ALTER TABLE jobs ADD COLUMN checkpoint_save_ms {int64} NOT NULL DEFAULT 0;
)sql",
    // v9 (issue #22): each service's desired state (revisions, replicas,
    // rollout), kept apart from its replicas' job rows.
    R"sql(
CREATE TABLE services (
  id {int64} PRIMARY KEY,
  state_json TEXT NOT NULL
){strict_without_rowid};
)sql",
};
static_assert(std::size(kMigrations) == kMigrationCount, "kMigrationCount must equal the number of migrations");

// "c = excluded.c, ..." for every column of `columns` (a columns:: list) after
// its first `key_count`: an upsert's update of the non-key columns.
std::string SetFromExcluded(absl::string_view columns, int key_count) {
  std::vector<std::string> sets;
  int i = 0;
  for (absl::string_view column : absl::StrSplit(columns, ", ")) {
    if (i++ >= key_count) sets.push_back(absl::StrCat(column, " = excluded.", column));
  }
  return absl::StrJoin(sets, ", ");
}

}  // namespace

Query& Query::Append(Param param) {
  params_.push_back(std::move(param));
  sql_ += Placeholder(params_.size());
  return *this;
}

std::string Query::Placeholder(size_t n) const { return absl::StrCat(dialect_ == Dialect::kSqlite ? "?" : "$", n); }

std::string Query::BindInt(int64_t value) {
  params_.push_back(Param{.kind = Param::Kind::kInt, .int_value = value});
  return Placeholder(params_.size());
}

Query& Query::Limit(int32_t limit) {
  if (limit != 0) return Int(limit);
  return dialect_ == Dialect::kSqlite ? Int(-1) : Null();
}

std::string Migration(Dialect d, int32_t v) {
  const bool lite = d == Dialect::kSqlite;
  const std::vector<std::pair<absl::string_view, absl::string_view>> words = {
      {"{id}", lite ? "INTEGER PRIMARY KEY AUTOINCREMENT" : "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"},
      {"{int64}", lite ? "INTEGER" : "BIGINT"},
      {"{bool}", lite ? "INTEGER" : "BOOLEAN"},
      {"{bytewise_text}", lite ? "TEXT" : "TEXT COLLATE \"C\""},
      {"{strict}", lite ? " STRICT" : ""},
      {"{strict_without_rowid}", lite ? " STRICT, WITHOUT ROWID" : ""},
      {"{events_by_job}", lite ? "job_id" : "job_id, id"},
  };
  return absl::StrReplaceAll(kMigrations[v - 1], words);
}

// ---- Reads ----

Query GetJob(Dialect d, int64_t id) {
  Query q(d);
  q.Sql("SELECT ", columns::kJob, " FROM jobs WHERE id = ").Int(id);
  return q;
}

absl::StatusOr<Query> ListJobs(Dialect d, const JobQuery& query) {
  if (absl::Status s = CheckLimit(query.limit, "list jobs"); !s.ok()) return s;
  Query q(d);
  q.Sql("SELECT ", columns::kJob, " FROM jobs WHERE id > ").Int(query.after_id);
  // At most 2^5 variants of the text, as StateFilter sorts the states.
  if (const std::vector<std::string> states = StateFilter(query); !states.empty()) {
    q.Sql(" AND state IN ").Values([&](auto& list) {
      for (const std::string& state : states) list.Text(state);
    });
  }
  if (!query.user.empty()) q.Sql(" AND \"user\" = ").Text(query.user);
  if (!query.queue.empty()) q.Sql(" AND queue = ").Text(query.queue);
  if (!query.name.empty()) q.Sql(" AND name = ").Text(query.name);
  if (query.array_id != 0) {
    q.Sql(" AND array_id = ").Int(query.array_id);
    if (query.array_index >= 0) q.Sql(" AND array_index = ").Int(query.array_index);
  }
  if (query.before_id > 0) q.Sql(" AND id < ").Int(query.before_id);
  q.Sql(query.newest_first ? " ORDER BY id DESC LIMIT " : " ORDER BY id LIMIT ").Limit(query.limit);
  return q;
}

Query ListTasks(Dialect d, int64_t job_id) {
  Query q(d);
  q.Sql("SELECT ", columns::kTask, " FROM tasks WHERE job_id = ").Int(job_id);
  q.Sql(" ORDER BY attempt, grp, replica");
  return q;
}

Query ListActiveTasks(Dialect d) {
  Query q(d);
  q.Sql("SELECT ", columns::kTask, " FROM tasks WHERE state IN ").Values([](auto& list) {
    list.Text(TaskStateName(TaskState::kAssigned)).Text(TaskStateName(TaskState::kRunning));
  });
  q.Sql(" ORDER BY job_id, grp, replica, attempt");
  return q;
}

Query ListNodes(Dialect d) {
  Query q(d);
  q.Sql("SELECT ", columns::kNode, " FROM nodes ORDER BY name");
  return q;
}

Query ListServices(Dialect d) {
  Query q(d);
  q.Sql("SELECT id, state_json FROM services ORDER BY id");
  return q;
}

Query ListQueues(Dialect d) {
  Query q(d);
  q.Sql("SELECT name, spec_json FROM queues ORDER BY name");
  return q;
}

Query GetToken(Dialect d, const std::string& token_hash) {
  Query q(d);
  q.Sql("SELECT ", columns::kToken, " FROM tokens WHERE token_hash = ").Text(token_hash);
  return q;
}

Query ListTokens(Dialect d) {
  Query q(d);
  q.Sql("SELECT ", columns::kToken, " FROM tokens ORDER BY token_hash");
  return q;
}

absl::StatusOr<Query> ListEvents(Dialect d, int64_t job_id, int64_t after_id, int32_t limit) {
  if (job_id < 0) return absl::InvalidArgumentError(absl::StrCat("list events: job id ", job_id, " is negative"));
  if (absl::Status s = CheckLimit(limit, "list events"); !s.ok()) return s;
  Query q(d);
  q.Sql("SELECT ", columns::kEvent, " FROM events WHERE ");
  if (job_id > 0) q.Sql("job_id = ").Int(job_id).Sql(" AND ");
  q.Sql("id > ").Int(after_id).Sql(" ORDER BY id LIMIT ").Limit(limit);
  return q;
}

absl::StatusOr<Query> ListDueNotifications(Dialect d, int64_t now_ms, int32_t limit) {
  if (absl::Status s = CheckLimit(limit, "list notifications"); !s.ok()) return s;
  Query q(d);
  q.Sql("SELECT ", columns::kNotification, " FROM notifications WHERE next_ms <= ").Int(now_ms);
  q.Sql(" ORDER BY next_ms, id LIMIT ").Limit(limit);
  return q;
}

Query ListUsage(Dialect d, int64_t since_ms, int64_t until_ms) {
  Query q(d);
  q.Sql("SELECT ", columns::kUsage, " FROM usage WHERE start_ms < ").Int(until_ms);
  q.Sql(" AND (end_ms = 0 OR end_ms > ").Int(since_ms).Sql(") ORDER BY job_id, grp, replica, attempt");
  return q;
}

Query ListUtilisation(Dialect d, int64_t since_s, int64_t until_s) {
  Query q(d);
  q.Sql("SELECT time_s, sample_json FROM utilisation WHERE time_s >= ").Int(since_s);
  q.Sql(" AND time_s < ").Int(until_s).Sql(" ORDER BY time_s");
  return q;
}

Query CountJobs(Dialect d, int64_t since_ms, int64_t until_ms) {
  Query q(d);
  const std::string since = q.BindInt(since_ms);
  const std::string until = q.BindInt(until_ms);
  // A job counts as ended only once end_ms is set (a failed job whose tasks
  // still stop has end_ms 0). FILTER: SQLite has it since 3.30.
  const std::string submitted = absl::StrCat("submit_ms >= ", since, " AND submit_ms < ", until);
  const std::string ended = absl::StrCat("end_ms >= ", since, " AND end_ms < ", until, " AND end_ms > 0");
  q.Sql("SELECT \"user\", queue, COUNT(*) FILTER (WHERE ", submitted, "), ");
  q.Sql("COUNT(*) FILTER (WHERE state = 'Succeeded' AND ", ended, "), ");
  q.Sql("COUNT(*) FILTER (WHERE state = 'Failed' AND ", ended, "), ");
  q.Sql("COUNT(*) FILTER (WHERE state = 'Cancelled' AND ", ended, "), ");
  q.Sql("COALESCE(SUM(lost_device_ms) FILTER (WHERE ", ended, "), 0) ");
  q.Sql("FROM jobs WHERE (", submitted, ") OR (", ended, ") GROUP BY \"user\", queue ORDER BY \"user\", queue");
  return q;
}

Query CountJobsByState(Dialect d) {
  Query q(d);
  q.Sql("SELECT state, COUNT(*) FROM jobs GROUP BY state ORDER BY state");
  return q;
}

// ---- Leadership and the cluster id ----

Query ReadLeader(Dialect d, bool lock_row) {
  Query q(d);
  q.Sql("SELECT epoch, holder, url, since_ms FROM leader WHERE id = 1");
  if (lock_row && d == Dialect::kPostgres) q.Sql(" FOR SHARE");
  return q;
}

Query TakeLeader(Dialect d, const LeaderRecord& me) {
  Query q(d);
  q.Sql("UPDATE leader SET epoch = epoch + 1, holder = ").Text(me.holder).Sql(", url = ").Text(me.url);
  q.Sql(", since_ms = ").Int(me.since_ms).Sql(" WHERE id = 1 RETURNING epoch, holder, url, since_ms");
  return q;
}

Query InsertClusterId(Dialect d, const std::string& candidate, int64_t now_ms) {
  Query q(d);
  q.Sql("INSERT INTO cluster(id, cluster_id, created_ms) VALUES(1, ").Text(candidate).Sql(", ").Int(now_ms);
  q.Sql(") ON CONFLICT(id) DO NOTHING");
  return q;
}

Query GetClusterId(Dialect d) {
  Query q(d);
  q.Sql("SELECT cluster_id FROM cluster WHERE id = 1");
  return q;
}

// ---- Writes ----

Query InsertJob(Dialect d, const JobRecord& job) {
  Query q(d);
  q.Sql("INSERT INTO jobs(", columns::kJobFields, ") VALUES").Values([&](auto& list) {
    columns::BindJobFields(list, job);
  });
  q.Sql(" RETURNING id");
  return q;
}

Query SetOwnArray(Dialect d, int64_t job_id) {
  Query q(d);
  q.Sql("UPDATE jobs SET array_id = id WHERE id = ").Int(job_id);
  return q;
}

Query InsertEvent(Dialect d, const EventRecord& event) {
  Query q(d);
  q.Sql("INSERT INTO events(job_id, node, time_ms, kind, message) VALUES").Values([&](auto& list) {
    list.Int(event.job_id).Text(event.node).Int(event.time_ms).Text(event.kind).Text(event.message);
  });
  q.Sql(" RETURNING id");
  return q;
}

Query FindIdempotencyKey(Dialect d, const std::string& user, const std::string& key, int64_t since_ms) {
  Query q(d);
  q.Sql("SELECT job_id, request_digest FROM idempotency_keys WHERE \"user\" = ").Text(user);
  q.Sql(" AND key = ").Text(key).Sql(" AND created_ms >= ").Int(since_ms);
  return q;
}

Query PutIdempotencyKey(Dialect d, const std::string& user, const std::string& key, int64_t job_id,
                        const std::string& request_digest, int64_t created_ms) {
  Query q(d);
  q.Sql("INSERT INTO idempotency_keys(\"user\", key, job_id, request_digest, created_ms) VALUES")
      .Values([&](auto& list) { list.Text(user).Text(key).Int(job_id).Text(request_digest).Int(created_ms); });
  q.Sql(" ON CONFLICT(\"user\", key) DO UPDATE SET job_id = excluded.job_id, ",
        "request_digest = excluded.request_digest, created_ms = excluded.created_ms");
  return q;
}

Query PruneIdempotencyKeys(Dialect d, int64_t before_ms) {
  Query q(d);
  q.Sql("DELETE FROM idempotency_keys WHERE created_ms < ").Int(before_ms);
  return q;
}

Query UpdateJob(Dialect d, const JobRecord& job) {
  // A row value assigns the columns in list order (SQLite since 3.15).
  Query q(d);
  q.Sql("UPDATE jobs SET (", columns::kJobFields, ") = ").Values([&](auto& list) {
    columns::BindJobFields(list, job);
  });
  q.Sql(" WHERE id = ").Int(job.id);
  return q;
}

Query UpsertTask(Dialect d, const TaskRecord& task) {
  static const std::string set = SetFromExcluded(columns::kTask, 4);
  Query q(d);
  q.Sql("INSERT INTO tasks(", columns::kTask, ") VALUES").Values([&](auto& list) { columns::BindTask(list, task); });
  q.Sql(" ON CONFLICT(job_id, grp, replica, attempt) DO UPDATE SET ", set);
  return q;
}

Query UpsertNode(Dialect d, const NodeRecord& node) {
  static const std::string set = SetFromExcluded(columns::kNode, 1);
  Query q(d);
  q.Sql("INSERT INTO nodes(", columns::kNode, ") VALUES").Values([&](auto& list) { columns::BindNode(list, node); });
  q.Sql(" ON CONFLICT(name) DO UPDATE SET ", set);
  return q;
}

Query UpsertQueue(Dialect d, const QueueRecord& queue) {
  Query q(d);
  q.Sql("INSERT INTO queues(name, spec_json) VALUES").Values([&](auto& list) {
    list.Text(queue.name).Text(queue.spec_json);
  });
  q.Sql(" ON CONFLICT(name) DO UPDATE SET spec_json = excluded.spec_json");
  return q;
}

Query UpsertService(Dialect d, const ServiceRecord& service) {
  Query q(d);
  q.Sql("INSERT INTO services(id, state_json) VALUES").Values([&](auto& list) {
    list.Int(service.id).Text(service.state_json);
  });
  q.Sql(" ON CONFLICT(id) DO UPDATE SET state_json = excluded.state_json");
  return q;
}

Query DeleteQueue(Dialect d, const std::string& name) {
  Query q(d);
  q.Sql("DELETE FROM queues WHERE name = ").Text(name);
  return q;
}

Query UpsertToken(Dialect d, const TokenRecord& token) {
  static const std::string set = SetFromExcluded(columns::kToken, 1);
  Query q(d);
  q.Sql("INSERT INTO tokens(", columns::kToken, ") VALUES").Values([&](auto& list) {
    columns::BindToken(list, token);
  });
  q.Sql(" ON CONFLICT(token_hash) DO UPDATE SET ", set);
  return q;
}

Query UpsertUsage(Dialect d, const UsageRecord& usage) {
  static const std::string set = SetFromExcluded(columns::kUsage, 4);
  Query q(d);
  q.Sql("INSERT INTO usage(", columns::kUsage, ") VALUES").Values([&](auto& list) { columns::BindUsage(list, usage); });
  q.Sql(" ON CONFLICT(job_id, grp, replica, attempt) DO UPDATE SET ", set);
  return q;
}

Query UpsertSample(Dialect d, const UtilisationSample& sample) {
  Query q(d);
  q.Sql("INSERT INTO utilisation(time_s, sample_json) VALUES").Values([&](auto& list) {
    list.Int(sample.time_s).Text(sample.sample_json);
  });
  q.Sql(" ON CONFLICT(time_s) DO UPDATE SET sample_json = excluded.sample_json");
  return q;
}

Query PruneSamples(Dialect d, int64_t before_s) {
  Query q(d);
  q.Sql("DELETE FROM utilisation WHERE time_s < ").Int(before_s);
  return q;
}

Query InsertNotification(Dialect d, const NotificationRecord& n) {
  Query q(d);
  q.Sql("INSERT INTO notifications(job_id, url, body, attempts, next_ms, last_error) VALUES").Values([&](auto& list) {
    list.Int(n.job_id).Text(n.url).Text(n.body).Int(n.attempts).Int(n.next_ms).Text(n.last_error);
  });
  q.Sql(" RETURNING id");
  return q;
}

Query UpdateNotification(Dialect d, const NotificationRecord& n) {
  Query q(d);
  q.Sql("UPDATE notifications SET attempts = ").Int(n.attempts).Sql(", next_ms = ").Int(n.next_ms);
  q.Sql(", last_error = ").Text(n.last_error).Sql(" WHERE id = ").Int(n.id);
  return q;
}

Query DeleteNotification(Dialect d, int64_t id) {
  Query q(d);
  q.Sql("DELETE FROM notifications WHERE id = ").Int(id);
  return q;
}

}  // namespace icos::store::sql
