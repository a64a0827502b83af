// How each record maps onto its table's columns, shared by the StateStore
// backends (SQLite, PostgreSQL) so that they cannot drift apart: the column
// lists in SELECT order, decoding a result row into a record, and binding a
// record's fields as statement parameters in column order.
//
// Internal to src/store: only backends include it. The templates take the
// backend's own row and parameter types:
//   Row:    Int(col) -> int64_t, Int32(col) -> int32_t, Text(col) -> std::string, Bool(col) -> bool
//   Binder: Int(int64_t), Text(string_view), Bool(bool), each returning Binder&
#ifndef ICOS_STORE_RECORD_COLUMNS_H_
#define ICOS_STORE_RECORD_COLUMNS_H_

#include <optional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "store/records.h"

namespace icos::store::columns {

// "user" is quoted: a reserved word in PostgreSQL, a plain identifier in SQLite.
inline constexpr char kJob[] =
    "id, name, \"user\", queue, priority, state, spec_json, reason, submit_ms, start_ms, end_ms, attempt, run_uid, "
    "run_gid, hold, array_id, array_index, checkpoint_ms, lost_device_ms, checkpoint_save_ms";
// kJob but id, which the database assigns: what an INSERT or UPDATE writes.
inline constexpr char kJobFields[] =
    "name, \"user\", queue, priority, state, spec_json, reason, submit_ms, start_ms, end_ms, attempt, run_uid, "
    "run_gid, hold, array_id, array_index, checkpoint_ms, lost_device_ms, checkpoint_save_ms";
static_assert(std::string_view(kJob).substr(4) == kJobFields && std::string_view(kJob).substr(0, 4) == "id, ");
inline constexpr char kTask[] =
    "job_id, grp, replica, attempt, node, placement_json, state, exit_code, reason, start_ms, end_ms, max_rss_kib";
inline constexpr char kNode[] = "name, spec_json, state, address, registered_ms, heartbeat_ms";
inline constexpr char kToken[] =
    "token_hash, name, role, \"user\", created_ms, revoked, uid, gid, expires_ms, last_used_ms, node";
inline constexpr char kEvent[] = "id, job_id, node, time_ms, kind, message";
inline constexpr char kNotification[] = "id, job_id, url, body, attempts, next_ms, last_error";
inline constexpr char kUsage[] =
    "job_id, grp, replica, attempt, \"user\", queue, node, start_ms, end_ms, cpu_milli, devices_json";
// A table's key columns come first in its list: an upsert updates the rest
// (sql_queries.cc).

// ---- Rows (in the order of the lists above) to records ----

template <typename Row>
absl::StatusOr<JobRecord> DecodeJob(const Row& r, absl::string_view what) {
  JobRecord job;
  job.id = r.Int(0);
  job.name = r.Text(1);
  job.user = r.Text(2);
  job.queue = r.Text(3);
  job.priority = r.Int32(4);
  const std::string state = r.Text(5);
  std::optional<JobState> parsed = ParseJobState(state);
  if (!parsed.has_value()) {
    return absl::DataLossError(absl::StrCat(what, ": job ", job.id, " has unknown state '", state, "'"));
  }
  job.state = *parsed;
  job.spec_json = r.Text(6);
  job.reason = r.Text(7);
  job.submit_ms = r.Int(8);
  job.start_ms = r.Int(9);
  job.end_ms = r.Int(10);
  job.attempt = r.Int32(11);
  job.run_uid = r.Int(12);
  job.run_gid = r.Int(13);
  job.hold = r.Text(14);
  job.array_id = r.Int(15);
  job.array_index = r.Int32(16);
  job.checkpoint_ms = r.Int(17);
  job.lost_device_ms = r.Int(18);
  job.checkpoint_save_ms = r.Int(19);
  return job;
}

template <typename Row>
absl::StatusOr<TaskRecord> DecodeTask(const Row& r, absl::string_view what) {
  TaskRecord task;
  task.job_id = r.Int(0);
  task.group = r.Int32(1);
  task.replica = r.Int32(2);
  task.attempt = r.Int32(3);
  task.node = r.Text(4);
  task.placement_json = r.Text(5);
  const std::string state = r.Text(6);
  std::optional<TaskState> parsed = ParseTaskState(state);
  if (!parsed.has_value()) {
    return absl::DataLossError(absl::StrCat(what, ": task of job ", task.job_id, " has unknown state '", state, "'"));
  }
  task.state = *parsed;
  task.exit_code = r.Int32(7);
  task.reason = r.Text(8);
  task.start_ms = r.Int(9);
  task.end_ms = r.Int(10);
  task.max_rss_kib = r.Int(11);
  return task;
}

template <typename Row>
NodeRecord DecodeNode(const Row& r) {
  return NodeRecord{.name = r.Text(0),
                    .spec_json = r.Text(1),
                    .state = r.Text(2),
                    .address = r.Text(3),
                    .registered_ms = r.Int(4),
                    .heartbeat_ms = r.Int(5)};
}

template <typename Row>
TokenRecord DecodeToken(const Row& r) {
  return TokenRecord{.token_hash = r.Text(0),
                     .name = r.Text(1),
                     .role = r.Text(2),
                     .user = r.Text(3),
                     .created_ms = r.Int(4),
                     .revoked = r.Bool(5),
                     .uid = r.Int(6),
                     .gid = r.Int(7),
                     .expires_ms = r.Int(8),
                     .last_used_ms = r.Int(9),
                     .node = r.Text(10)};
}

template <typename Row>
EventRecord DecodeEvent(const Row& r) {
  return EventRecord{.id = r.Int(0),
                     .job_id = r.Int(1),
                     .node = r.Text(2),
                     .time_ms = r.Int(3),
                     .kind = r.Text(4),
                     .message = r.Text(5)};
}

template <typename Row>
NotificationRecord DecodeNotification(const Row& r) {
  return NotificationRecord{.id = r.Int(0),
                            .job_id = r.Int(1),
                            .url = r.Text(2),
                            .body = r.Text(3),
                            .attempts = static_cast<int32_t>(r.Int(4)),
                            .next_ms = r.Int(5),
                            .last_error = r.Text(6)};
}

// epoch, holder, url, since_ms (sql::ReadLeader, sql::TakeLeader).
template <typename Row>
LeaderRecord DecodeLeader(const Row& r) {
  return LeaderRecord{.epoch = r.Int(0), .holder = r.Text(1), .url = r.Text(2), .since_ms = r.Int(3)};
}

template <typename Row>
UsageRecord DecodeUsage(const Row& r) {
  return UsageRecord{.job_id = r.Int(0),
                     .group = r.Int32(1),
                     .replica = r.Int32(2),
                     .attempt = r.Int32(3),
                     .user = r.Text(4),
                     .queue = r.Text(5),
                     .node = r.Text(6),
                     .start_ms = r.Int(7),
                     .end_ms = r.Int(8),
                     .cpu_milli = r.Int(9),
                     .devices_json = r.Text(10)};
}

// ---- Records to parameters, in column order ----

// Every job column but id (which the database assigns, or a WHERE names).
template <typename Binder>
Binder& BindJobFields(Binder& b, const JobRecord& job) {
  b.Text(job.name).Text(job.user).Text(job.queue).Int(job.priority).Text(JobStateName(job.state));
  b.Text(job.spec_json).Text(job.reason).Int(job.submit_ms).Int(job.start_ms).Int(job.end_ms).Int(job.attempt);
  b.Int(job.run_uid).Int(job.run_gid).Text(job.hold).Int(job.array_id).Int(job.array_index);
  return b.Int(job.checkpoint_ms).Int(job.lost_device_ms).Int(job.checkpoint_save_ms);
}

template <typename Binder>
Binder& BindTask(Binder& b, const TaskRecord& task) {
  b.Int(task.job_id).Int(task.group).Int(task.replica).Int(task.attempt).Text(task.node);
  b.Text(task.placement_json).Text(TaskStateName(task.state)).Int(task.exit_code).Text(task.reason);
  return b.Int(task.start_ms).Int(task.end_ms).Int(task.max_rss_kib);
}

template <typename Binder>
Binder& BindNode(Binder& b, const NodeRecord& node) {
  b.Text(node.name).Text(node.spec_json).Text(node.state).Text(node.address).Int(node.registered_ms);
  return b.Int(node.heartbeat_ms);
}

template <typename Binder>
Binder& BindToken(Binder& b, const TokenRecord& token) {
  b.Text(token.token_hash).Text(token.name).Text(token.role).Text(token.user).Int(token.created_ms);
  b.Bool(token.revoked).Int(token.uid).Int(token.gid).Int(token.expires_ms).Int(token.last_used_ms);
  return b.Text(token.node);
}

template <typename Binder>
Binder& BindUsage(Binder& b, const UsageRecord& u) {
  b.Int(u.job_id).Int(u.group).Int(u.replica).Int(u.attempt).Text(u.user).Text(u.queue).Text(u.node);
  return b.Int(u.start_ms).Int(u.end_ms).Int(u.cpu_milli).Text(u.devices_json);
}

}  // namespace icos::store::columns

#endif  // ICOS_STORE_RECORD_COLUMNS_H_
