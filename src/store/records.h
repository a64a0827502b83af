// What the control plane persists. Plain values; specs travel as JSON text so
// the schema does not change each time a job spec gains a field.
#ifndef ICOS_STORE_RECORDS_H_
#define ICOS_STORE_RECORDS_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace icos::store {

enum class JobState { kPending, kRunning, kSucceeded, kFailed, kCancelled };
enum class TaskState { kAssigned, kRunning, kSucceeded, kFailed, kKilled };

const char* JobStateName(JobState s);    // "Pending", "Running", ...
const char* TaskStateName(TaskState s);  // "Assigned", "Running", ...
// Inverse of the above; nullopt for an unknown name.
std::optional<JobState> ParseJobState(const std::string& name);
std::optional<TaskState> ParseTaskState(const std::string& name);
bool IsTerminal(JobState s);
bool IsTerminal(TaskState s);
// Assigned or Running: the task holds its resources.
inline bool IsActive(TaskState s) { return s == TaskState::kAssigned || s == TaskState::kRunning; }

struct JobRecord {
  int64_t id = 0;  // assigned by the store, > 0
  std::string name;
  std::string user;
  std::string queue;
  int32_t priority = 0;
  JobState state = JobState::kPending;
  std::string spec_json;  // the accepted job spec, normalised
  std::string reason;     // why it waits / how it ended
  int64_t submit_ms = 0;
  int64_t start_ms = 0;  // 0: not started
  int64_t end_ms = 0;    // 0: not ended
  int32_t attempt = 0;   // gang restarts so far
  // The Unix identity its tasks run as when the submitting token pinned one
  // (icos token create --uid/--gid); -1: the account named `user` on each node.
  int64_t run_uid = -1;
  int64_t run_gid = -1;
  // Who holds the job back from scheduling (icos hold): "" none, "user" (its
  // owner may release it) or "admin" (only an admin may).
  std::string hold;
  // Job arrays (a spec's `array:`): every element is a job of its own.
  int64_t array_id = 0;      // the array's id (its first element's job id); 0: not in an array
  int32_t array_index = -1;  // the element's index (ICOS_ARRAY_INDEX); -1: not in an array
  // The checkpoint contract: when the job last reported a finished
  // checkpoint (0: never), and the device-milliseconds of work its
  // interruptions (preemptions, moves, lost nodes, failures) threw away.
  int64_t checkpoint_ms = 0;
  int64_t lost_device_ms = 0;
  // The longest a checkpoint took after a planned stop's signal (0: none
  // seen): the basis of the next stop's window (engine::CheckpointWindowMs).
  int64_t checkpoint_save_ms = 0;

  // InsertJobs only: the first element of a new array; the elements after
  // it in the same call carry array_id kNewArray and join its array.
  bool starts_array = false;

  // InsertJob only (not columns of the job). A client's key for retrying a
  // submission safely (the Idempotency-Key header) and a digest of what it
  // submitted. When the same user inserted a job under the same key within
  // kIdempotencyWindowMs before submit_ms, InsertJob inserts nothing and sets
  // `id` to that job: `replayed` when the digests match, else
  // `key_conflict` (the key was used for another request).
  std::string idempotency_key;
  std::string request_digest;
  bool replayed = false;
  bool key_conflict = false;
};

// InsertJobs: "the array the last starts_array job began".
inline constexpr int64_t kNewArray = -1;

// How long an idempotency key keeps standing for its job (docs/api.md).
inline constexpr int64_t kIdempotencyWindowMs = 24LL * 3600 * 1000;

// One task (replica) of one attempt of a job. Key: (job_id, group, replica, attempt).
struct TaskRecord {
  int64_t job_id = 0;
  int32_t group = 0;
  int32_t replica = 0;
  int32_t attempt = 0;
  std::string node;
  std::string placement_json;  // devices, CPU, memory, NUMA nodes, env the agent needs
  TaskState state = TaskState::kAssigned;
  int32_t exit_code = 0;
  std::string reason;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  // The peak resident memory of the task's largest process, KiB (getrusage's
  // ru_maxrss of everything the task's shim reaped; sacct's MaxRSS per task);
  // 0: not known (still running, or lost).
  int64_t max_rss_kib = 0;
};

struct NodeRecord {
  std::string name;       // key
  std::string spec_json;  // the node as the agent reported it (devices, topology)
  std::string state;      // "Ready", "NotReady", "Drained"
  std::string address;    // how tasks on other nodes reach it (for MASTER_ADDR)
  int64_t registered_ms = 0;
  int64_t heartbeat_ms = 0;
};

struct QueueRecord {
  std::string name;  // key
  std::string spec_json;
};

// A long-running service's desired state (issue #22): its revisions, the
// replicas it should have and the rollout under way, as the controller's
// JSON (controller/service_state.h). Key: the service's id (its first
// replica's job id).
struct ServiceRecord {
  int64_t id = 0;
  std::string state_json;
};

struct TokenRecord {
  std::string token_hash;  // key: SHA-256 hex of the secret; the secret is never stored
  std::string name;        // human label
  std::string role;        // "admin", "user", "agent" (a join token), "node" (one node's credential)
  std::string user;        // the user a "user" token acts as (also the Unix account its jobs run as)
  int64_t created_ms = 0;
  bool revoked = false;
  // A Unix identity pinned for the user's jobs instead of the account named
  // `user`; -1: none.
  int64_t uid = -1;
  int64_t gid = -1;
  int64_t expires_ms = 0;    // 0: never
  int64_t last_used_ms = 0;  // 0: never used (kept to the minute)
  std::string node;          // role "node": the only node it may speak for
};

struct EventRecord {
  int64_t id = 0;      // assigned by the store, increasing
  int64_t job_id = 0;  // 0: a cluster event (node joined, ...)
  std::string node;
  int64_t time_ms = 0;
  std::string kind;  // "Submitted", "Scheduled", "Preempted", "TaskFailed", ...
  std::string message;
};

// How long one task attempt held its resources: the durable source of usage
// accounting. Key: (job_id, group, replica, attempt), as TaskRecord's. Written
// in the same batch as the task's state change, so accounting can never
// disagree with the tasks table, and it survives controller restarts.
struct UsageRecord {
  int64_t job_id = 0;
  int32_t group = 0;
  int32_t replica = 0;
  int32_t attempt = 0;
  std::string user;
  std::string queue;
  std::string node;
  int64_t start_ms = 0;  // when the task started running
  int64_t end_ms = 0;    // 0: still running
  int64_t cpu_milli = 0;
  // [{"type": "nvidia/A100", "share": 0.5}, ...]: one entry per device slice
  // held; share is the fraction of the device (1 for a whole one).
  std::string devices_json;
};

// One utilisation sample of the cluster (the controller takes one every few
// seconds). sample_json: {"by_type": {"nvidia/A100": {"allocated": 3.5,
// "total": 8}}, "by_queue": {"default": 3.5}}.
struct UtilisationSample {
  int64_t time_s = 0;  // key: Unix seconds
  std::string sample_json;
};

// Jobs of one (user, queue) submitted or ended in a time window.
struct JobCounts {
  std::string user;
  std::string queue;
  int64_t submitted = 0;  // submit time in the window
  int64_t succeeded = 0;  // end time in the window, by final state
  int64_t failed = 0;
  int64_t cancelled = 0;
  // Device-ms of work lost to interruptions by the jobs that ended in the
  // window (JobRecord::lost_device_ms).
  int64_t lost_device_ms = 0;
};

// A webhook message waiting to be delivered (a job's or its queue's
// `notify:`; docs/api.md, "Webhooks"): the outbox. Written in the same batch
// as the change it reports, so a crash neither loses it nor sends one for a
// change that never committed; deleted once delivered or given up on.
struct NotificationRecord {
  int64_t id = 0;  // assigned by the store; in a WriteBatch, 0: a new one
  int64_t job_id = 0;
  std::string url;
  std::string body;      // the JSON message
  int32_t attempts = 0;  // deliveries tried so far
  int64_t next_ms = 0;   // when the next try is due
  std::string last_error;
};

// Everything one controller step writes, applied in one transaction.
struct WriteBatch {
  std::vector<JobRecord> jobs;      // upsert by id (id must exist)
  std::vector<TaskRecord> tasks;    // upsert by key
  std::vector<NodeRecord> nodes;    // upsert by name
  std::vector<QueueRecord> queues;  // upsert by name
  std::vector<std::string> deleted_queues;
  std::vector<ServiceRecord> services;     // upsert by id
  std::vector<TokenRecord> tokens;         // upsert by hash
  std::vector<EventRecord> events;         // appended; ids assigned
  std::vector<UsageRecord> usage;          // upsert by task key
  std::vector<UtilisationSample> samples;  // upsert by time_s
  int64_t prune_samples_before_s = 0;      // > 0: delete samples older than this
  // Id 0: inserted (ids assigned); else that row's attempts, next_ms and
  // last_error are updated (none changes when it is gone).
  std::vector<NotificationRecord> notifications;
  std::vector<int64_t> done_notifications;  // deleted by id
  bool empty() const {
    return jobs.empty() && tasks.empty() && nodes.empty() && queues.empty() && deleted_queues.empty() &&
           services.empty() && tokens.empty() && events.empty() && usage.empty() && samples.empty() &&
           prune_samples_before_s <= 0 && notifications.empty() && done_notifications.empty();
  }
};

// Which controller leads a store shared by several (high availability). One
// row per store; epoch 0 and an empty holder: no controller has led it yet.
struct LeaderRecord {
  int64_t epoch = 0;   // fencing token: grows by one at every takeover
  std::string holder;  // e.g. "host-a:4123" (host name and process id)
  std::string url;     // where the leader's API is reached
  int64_t since_ms = 0;
};

// What StateStore::TryLead found.
struct LeadResult {
  bool acquired = false;  // true: this store leads now, as `leader` says
  LeaderRecord leader;    // the new record when acquired, else the current one
};

struct JobQuery {
  std::vector<JobState> states;  // empty: any
  std::string user;              // empty: any
  std::string queue;             // empty: any
  std::string name;              // empty: any
  int64_t array_id = 0;          // 0: any; else only that array's elements
  int32_t array_index = -1;      // with array_id: only the element of this index; -1: any
  int64_t after_id = 0;          // paging: ids greater than this
  int64_t before_id = 0;         // paging: ids less than this; 0: no bound
  bool newest_first = false;     // descending ids (what was just submitted first)
  int32_t limit = 0;             // 0: no limit
};

// ---- Shared by the StateStore backends, so they write the same things ----

// What InsertJob did with one job of a group: inserted it as `id`, or found
// the job its idempotency key already stands for (`existing`), with a
// different request digest (`conflict`).
struct IdempotentOutcome {
  int64_t id = 0;
  int64_t array_id = 0;  // as stored
  bool existing = false;
  bool conflict = false;
};
// Which array each job of an insert group joins (StateStore::InsertJobs),
// walked in order by both backends' inserts.
class ArrayInsertWalk {
 public:
  // Whether to insert `job` (not when its array's first was a replay).
  bool ShouldInsert(const JobRecord& job) const { return !(skipping_ && job.array_id == kNewArray); }
  // `job` with the array id to store: an element's array's; the first's is
  // set by SetArrayIdOf once its own id is known (0 until then).
  JobRecord Row(const JobRecord& job) const;
  // After `job` was inserted as `id` (or found as a replay): the array it
  // starts is `id`, or is skipped.
  void Inserted(const JobRecord& job, int64_t id, bool replayed);

 private:
  int64_t current_ = 0;
  bool skipping_ = false;
};

// Hands a committed group's outcomes to its jobs (id, replayed, key_conflict).
void ApplyOutcomes(const std::vector<JobRecord*>& group, const std::vector<IdempotentOutcome>& outcomes);
// InsertJob's status for one job once its group committed: AlreadyExists
// when its key stands for another request.
absl::Status InsertOutcome(const JobRecord& job);

// A fresh cluster id: "c" and 16 random hex digits.
std::string NewClusterId();

// The "Submitted" event InsertJob appends for a job just given id `job_id`.
EventRecord SubmittedEvent(const JobRecord& job, int64_t job_id);

// OK for a list limit of 0 (no limit) or more; InvalidArgument, prefixed with
// `what`, for a negative one.
absl::Status CheckLimit(int32_t limit, absl::string_view what);

// The job states a query filters on, by name, distinct and sorted: the same
// filter always yields the same SQL text (statement caches stay small).
std::vector<std::string> StateFilter(const JobQuery& query);

// OK when a database at schema `version` can be brought to `latest` by
// migrating forward; FailedPrecondition, prefixed with `what`, for a newer
// schema (an older icos must not touch it) or an invalid one.
absl::Status CheckSchemaVersion(int64_t version, int32_t latest, absl::string_view what);

// Fencing: OK while the leader record `current` is still at epoch `mine`
// (the leadership this store took); `current`'s own error if it could not be
// read; FailedPrecondition naming the new leader once another has taken over.
absl::Status CheckEpoch(int64_t mine, const absl::StatusOr<LeaderRecord>& current, absl::string_view what);

}  // namespace icos::store

#endif  // ICOS_STORE_RECORDS_H_
