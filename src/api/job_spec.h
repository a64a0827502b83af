// The job spec users submit (YAML or JSON), its validation, and its mapping to
// the scheduler's core::Job. This is the one place that knows the spec format;
// the CLI, the API server and the dashboard all go through it.
//
// Example (YAML):
//   name: ddp-mnist
//   queue: default            # optional; "default"
//   priority: 0               # optional
//   # priority_class: serving # optional, instead of priority: a named one its
//                             # queue defines (docs/scheduling.md, "Priority classes")
//   preempts: true            # optional; false: never preempt others, wait
//   framework: pytorch        # none | pytorch | mpi | deepspeed | mindspore | paddle | tensorflow
//   restart:                  # optional
//     policy: OnFailure       # Never | OnFailure
//     max_retries: 2
//   time_limit: 2h            # optional; s, m, h, d suffixes or plain seconds
//   runtime_estimate: 10m     # optional; helps backfill
//   preemptible: true         # optional
//   max_disconnect: 10m       # optional; how long tasks keep running on a node
//                             # the controller cannot reach (default: the
//                             # cluster's node lease; docs/reliability.md)
//   env: {LOG_LEVEL: info}    # optional; for every task
//   array: 0-9%4              # optional; a job array: one job per index (also
//                             # "1,3,5-9", "0-98:2"), at most 4 running at once
//   dependencies:             # optional; start only once other jobs ended so
//     after_ok: [12, 13]      #   these succeeded
//     after_any: [14]         #   these ended, however
//     after_not_ok: [15]      #   these failed or were cancelled
//     if_unmet: cancel        #   cancel (default) | wait: a dependency that can
//                             #   no longer be met (after_ok on a failed job)
//   notify:                   # optional; a webhook (docs/api.md, "Webhooks"),
//     url: http://hooks.example:8080/icos   # or just `notify: URL`
//     on: [start, end, fail, preempt]     # optional; default all
//     array_tasks: false      # optional; true: each array element's own messages
//   tasks:
//     - name: worker
//       replicas: 2
//       min_available: 2      # optional; elastic jobs start with fewer
//       command: ["python3", "train.py", "--epochs", "3"]
//       workdir: examples/pytorch-ddp   # optional; relative to the spec file's directory (icos submit -D DIR: DIR)
//       env: {FOO: bar}
//       resources:
//         cpu: 1              # cores; "500m" for millicores
//         memory: 2Gi         # Ki, Mi, Gi, Ti (binary) or K, M, G, T (decimal) or bytes
//         devices: 1          # whole devices per task, or instead a share of one:
//         # device_share: 50% # percent of one device (not with devices)
//         # device_memory: 4Gi
//       devices:              # optional any-of list; empty: any device type
//         - {vendor: nvidia, model: A100-80G, throughput: 1.0}
//         - {vendor: ascend}
//       affinity: same-node   # none | same-island | same-node | same-rack | spread
//       node_selector: {zone: a}
#ifndef ICOS_API_JOB_SPEC_H_
#define ICOS_API_JOB_SPEC_H_

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/job.h"

namespace icos::api {

enum class Framework { kNone, kPyTorch, kMpi, kDeepSpeed, kMindSpore, kPaddle, kTensorFlow };
// Always: a service's replicas, which restart however they end (with a
// back-off) until they are cancelled; batch jobs may not ask for it.
enum class RestartPolicy { kNever, kOnFailure, kAlways };
// A batch job runs to an end; a service runs until cancelled (docs/services.md).
enum class JobKind { kBatch, kService };

const char* FrameworkName(Framework f);          // "none", "pytorch", ...
const char* RestartPolicyName(RestartPolicy p);  // "Never", "OnFailure", "Always"
const char* JobKindName(JobKind k);              // "batch", "service"
const char* AffinityName(core::Affinity a);      // "none", "same-node", ...

struct DeviceWish {
  std::string vendor;
  std::string model;
  double throughput = 0.0;

  bool operator==(const DeviceWish&) const = default;
};

// When a job may start, by how earlier jobs ended (Slurm's --dependency).
// Every id names a job submitted before this one, so no chain is a cycle.
struct Dependencies {
  std::vector<int64_t> after_ok;      // each succeeded
  std::vector<int64_t> after_any;     // each ended, whatever its end
  std::vector<int64_t> after_not_ok;  // each failed or was cancelled
  // One that can no longer be met (after_ok on a job that failed) cancels
  // the job, saying why (Slurm's kill_invalid_depend); false: the job stays
  // pending as DependencyNeverSatisfied until someone cancels it.
  bool cancel_if_unmet = true;

  bool empty() const { return after_ok.empty() && after_any.empty() && after_not_ok.empty(); }
  bool operator==(const Dependencies&) const = default;
};

// The checkpoint contract (docs/frameworks.md, "Checkpoints"). Every job gets
// ICOS_CHECKPOINT_DIR, which outlives its attempts; a job that declares
// `checkpoint:` is also told before a planned stop (preemption, a move, a
// drain, its time limit, its node shutting down) by `signal`, and has
// `grace_s` to finish a checkpoint before SIGTERM. It reports each finished
// checkpoint with `icos checkpoint-done`, so the scheduler knows what a
// stop would lose.
struct CheckpointSpec {
  bool enabled = false;
  int32_t signal = 10;  // SIGUSR1 (checked against <csignal> in job_spec.cc)
  int64_t grace_s = 60;
  // How often it checkpoints, as the user expects: a hint (0: unknown).
  int64_t interval_s = 0;

  bool operator==(const CheckpointSpec&) const = default;
};

// The signals a checkpoint may ask for, by name; nullptr for another.
const char* CheckpointSignalName(int32_t signal);

// How the controller decides that a service's replica may take traffic
// (Kubernetes' readinessProbe): an HTTP GET of `http_path` on the replica's
// port answered 2xx or 3xx, a TCP connect to it, or `command` exiting 0 (run
// by the replica's agent on its node as the replica's user, in its cgroup,
// directory and environment: Kubernetes' exec probe), within `timeout_s`. Not
// ready until `success_threshold` probes in a row pass after
// `initial_delay_s`; ready until `failure_threshold` in a row fail. Without
// a probe a running replica counts as ready.
struct ProbeSpec {
  enum class Type { kNone, kHttp, kTcp, kCommand };
  Type type = Type::kNone;
  std::string http_path;             // kHttp: "/healthz"
  std::vector<std::string> command;  // kCommand: the program and its arguments
  int64_t initial_delay_s = 0;
  int64_t period_s = 5;
  int64_t timeout_s = 1;
  int32_t success_threshold = 1;
  int32_t failure_threshold = 3;

  bool operator==(const ProbeSpec&) const = default;
};

// A service (kind: service): `replicas` copies of its one task group, each
// placed and restarted on its own, each given a port of its node
// (ICOS_PORT), listed with their readiness (`icos endpoints`).
// How `icos service update` replaces a service's replicas with a new
// revision's (Kubernetes' RollingUpdate): at most max_surge replicas above
// `replicas` at once, at most max_unavailable of them not ready; a new
// replica not ready ready_timeout_s after it was made fails the revision,
// which rolls back by itself.
// Either bound may be a percentage of `replicas` ("25%"), resolved as
// Kubernetes does: surge rounded up, unavailable down, and when both come
// to 0, one replica may be unavailable.
struct RolloutSpec {
  int32_t max_surge = 1;
  int32_t max_unavailable = 0;
  bool max_surge_percent = false;  // max_surge is a percentage of replicas
  bool max_unavailable_percent = false;
  int64_t ready_timeout_s = 300;

  // The two bounds for a service of `replicas` replicas.
  int32_t SurgeFor(int32_t replicas) const;
  int32_t UnavailableFor(int32_t replicas) const;
  bool operator==(const RolloutSpec&) const = default;
};

// How the controller sets a service's replicas from the load its gateway
// sees (docs/services.md, "Autoscaling"): the fewest replicas that keep
// one target per replica, averaged over `window_s`; up at once, down only
// when every decision of the last scale_down_delay_s allowed it
// (Kubernetes HPA's stabilisation). min 0: no replica while idle, and the
// gateway holds a request up to cold_start_timeout_s while one starts.
struct AutoscaleSpec {
  int32_t min = 1;
  int32_t max = 0;  // 0: no autoscaling
  // Exactly one target: requests per second per replica, requests in
  // flight per replica, or the 90th percentile of the gateway's latency.
  int32_t target_rps = 0;
  int32_t target_concurrency = 0;
  int32_t target_p90_ms = 0;
  int64_t window_s = 10;
  int64_t scale_down_delay_s = 60;
  int64_t cold_start_timeout_s = 60;

  bool enabled() const { return max > 0; }
  bool operator==(const AutoscaleSpec&) const = default;
};

struct ServiceSpec {
  int32_t replicas = 1;
  RolloutSpec update;
  AutoscaleSpec autoscale;
  ProbeSpec readiness;
  // Restarts a replica after failure_threshold failures in a row, once
  // initial_delay_s has passed since it started (Kubernetes' livenessProbe).
  ProbeSpec liveness;
  // Until it passes once, readiness and liveness are not probed; after
  // failure_threshold failures in a row the replica is restarted
  // (Kubernetes' startupProbe: a model that loads for minutes is given
  // failure_threshold x period to start, and then a quick liveness probe).
  ProbeSpec startup;

  // The three probes under the names specs, the store's JSON and agents
  // (wire::CommandProbe::kind) give them.
  std::array<std::pair<const char*, const ProbeSpec*>, 3> NamedProbes() const {
    return {{{"readiness", &readiness}, {"liveness", &liveness}, {"startup", &startup}}};
  }
  bool operator==(const ServiceSpec&) const = default;
};

// Webhooks: the changes of a job the controller POSTs to `url` (a job's
// `notify:`, or its queue's). Bits of NotifySpec::on.
enum NotifyEvent : uint32_t {
  kNotifyStart = 1,    // the job started (or started again)
  kNotifyEnd = 2,      // it ended: succeeded, failed or cancelled
  kNotifyFail = 4,     // it failed
  kNotifyPreempt = 8,  // it stopped to run again later: preempted, moved, requeued, restarting
};
inline constexpr uint32_t kNotifyAll = kNotifyStart | kNotifyEnd | kNotifyFail | kNotifyPreempt;
// The names of the events in `on` ("start", "end", "fail", "preempt", in
// that order): how specs and queues write them.
std::vector<std::string> NotifyEventNames(uint32_t on);
// The event named `name`; 0 for none.
uint32_t NotifyEventByName(absl::string_view name);

struct NotifySpec {
  std::string url;  // http(s)://host[:port]/path (ParseWebhookUrl); empty: none
  uint32_t on = kNotifyAll;
  // An array's elements: false (Slurm's default) tells of the array as a
  // whole: "started" when its first element starts, one end message when
  // its last ends; true (Slurm's --mail-type=ARRAY_TASKS) of each element.
  bool array_tasks = false;

  bool operator==(const NotifySpec&) const = default;
};

// A webhook URL taken apart: what the controller connects to, and asks for.
struct WebhookUrl {
  std::string scheme;          // "http" or "https"
  std::string host;            // lowercase; an IPv6 address keeps its brackets
  int32_t port = 0;            // as given, or the scheme's
  std::string target;          // path and query, starting with '/'
  std::string Origin() const;  // "https://host:port"
};
// InvalidArgument saying what is wrong: only http and https, no user or
// password (the URL is shown with the job), no spaces, commas or control
// characters, at most 2,048 characters.
absl::StatusOr<WebhookUrl> ParseWebhookUrl(absl::string_view url);
// Whether the cluster lets users send webhooks to `url` (`icos server
// --notify-allow`): each entry a host ("hooks.corp"), a host and port
// ("10.0.0.5:8080"), a domain's hosts ("*.corp.example") or "*" (anywhere).
// Hosts compare without case.
bool WebhookAllowed(const WebhookUrl& url, const std::vector<std::string>& allow);

// At most this many dependency ids per job.
inline constexpr size_t kMaxDependencies = 1'000;
// The longest a submitted job array's shortest text may be (FormatArrayIndices).
inline constexpr size_t kMaxArrayText = 512;

struct TaskSpec {
  std::string name;
  int32_t replicas = 1;
  int32_t min_available = 0;
  std::vector<std::string> command;  // argv; command[0] is looked up in PATH
  std::string workdir;
  std::map<std::string, std::string> env;
  int64_t cpu_milli = 1'000;
  int64_t memory_mib = 1'024;
  int32_t devices = 0;
  int32_t device_percent = 0;
  int64_t device_memory_mib = 0;
  std::vector<DeviceWish> device_wishes;
  core::Affinity affinity = core::Affinity::kNone;
  std::map<std::string, std::string> node_selector;

  bool operator==(const TaskSpec&) const = default;
};

struct JobSpec {
  std::string name;
  JobKind kind = JobKind::kBatch;
  ServiceSpec service;  // kind kService only
  std::string queue = "default";
  int32_t priority = 0;
  // A named priority of the queue (core::PriorityClass); the controller sets
  // `priority` and `preempts` from it at submission.
  std::string priority_class;
  bool preempts = true;  // false: it never preempts running jobs
  Framework framework = Framework::kNone;
  RestartPolicy restart = RestartPolicy::kNever;
  int32_t max_retries = 0;
  int64_t time_limit_s = 0;        // 0: none
  int64_t runtime_estimate_s = 0;  // 0: unknown
  bool preemptible = true;
  // How long tasks may run on a node cut off from the controller before its
  // agent stops them; the controller starts the job elsewhere only after
  // that. 0: the cluster's node lease.
  int64_t max_disconnect_s = 0;
  std::map<std::string, std::string> env;
  Dependencies dependencies;
  CheckpointSpec checkpoint;
  NotifySpec notify;
  // A job array (Slurm's --array): one job per index, each told its index
  // (ICOS_ARRAY_INDEX). Kept as its shortest text (FormatArrayIndices:
  // "0-99999%8"), not expanded: every element of an array holds the spec,
  // and 100,000 copies of a list of 100,000 indices do not fit in memory.
  // ParseArrayIndices(array) gives the indices. Empty: a single job.
  std::string array;
  int32_t array_count = 0;     // its indices
  int32_t array_throttle = 0;  // at most this many elements run at once; 0: no limit
  std::vector<TaskSpec> tasks;

  bool operator==(const JobSpec&) const = default;
};

// The longest duration a spec may give: beyond ten years is a typo, and
// `* 1000` stays far from overflow.
inline constexpr int64_t kMaxDurationS = 3650LL * 86'400;

// The shortest max_disconnect a spec may ask for.
inline constexpr int64_t kMinMaxDisconnectS = 10;

// Limits on what a spec may ask for; anything above is refused as absurd.
struct SpecLimits {
  size_t max_bytes = 1 << 20;
  int32_t max_tasks = 64;          // task groups
  int32_t max_replicas = 100'000;  // per group
  // Bounds on what one accepted job costs the controller (docs/api.md,
  // "Limits"): its tasks across groups, and AssignmentBytes() of it. Binding
  // a 4,096-task gang holds the controller's state for well under 100 ms
  // (bench/large_job_bench); 48 MiB keeps one job's assignments inside the
  // ~50 MB a single request may cost. Admins raise both per cluster.
  int32_t max_job_tasks = 4'096;
  int64_t max_assignment_bytes = 48LL << 20;
  int64_t max_cpu_milli = 1'024'000;
  int64_t max_memory_mib = 64LL * 1024 * 1024;
  int32_t max_devices = 1'024;  // per task
  int32_t max_priority = 1'000'000;
  int32_t max_array_size = 100'000;       // elements of one job array
  size_t max_array_text = kMaxArrayText;  // an array's shortest text (ParseArrayIndices)
  // Each element of an array (each replica of a service) keeps the spec:
  // its stored JSON times its elements may be at most this much, so one
  // submission cannot fill the controller's memory and store (100,000
  // elements of a 1 KiB spec: ~98 MiB).
  int64_t max_array_spec_bytes = 128LL << 20;
  // Ids a spec's dependencies may name (a stored spec may hold more: a
  // dependency on an array is on each of its elements).
  size_t max_dependencies = kMaxDependencies;
};

// The highest index a job array may have.
inline constexpr int32_t kMaxArrayIndex = 10'000'000;

// A job array's indices as Slurm writes them: "0-999", "1,3,5-9", "0-98:2"
// (a step), optionally ending "%N" (at most N running at once). Sorted and
// each index once; InvalidArgument quoting the part it cannot read, when
// there are more than `max_size`, or when their shortest text is longer
// than `max_text` (each element keeps it).
struct ArrayIndices {
  std::vector<int32_t> indices;
  int32_t throttle = 0;
};
absl::StatusOr<ArrayIndices> ParseArrayIndices(absl::string_view text, int32_t max_size,
                                               size_t max_text = kMaxArrayText);
// The shortest text of `indices` in that form ("0-3,7%2").
std::string FormatArrayIndices(const std::vector<int32_t>& indices, int32_t throttle);
// Makes `spec` the job array `a` (array, array_count, array_throttle).
void SetArray(const ArrayIndices& a, JobSpec& spec);

// Parses YAML (a superset of JSON, so JSON specs parse too). Unknown fields,
// wrong types, negative or absurd quantities and unknown enum values are
// InvalidArgument errors that name the field path and, for YAML, the line:
//   "tasks[0].resources.memory (line 12): '2Gx' is not a quantity; use e.g. 512Mi or 2Gi"
// Rules beyond the example above:
//   - only `tasks` and each task's `command` (a list, not a string) are
//     required; a field set to null (`workdir:` or `~`) counts as not given;
//   - names (job, task, queue) are DNS labels: [a-z0-9]([-a-z0-9]*[a-z0-9])?,
//     at most 63 characters; the job name defaults to the first program's
//     basename made into one ("/usr/bin/Train.py" gives "train-py"), a task's
//     to "task<i>"; task names are unique;
//   - memory and device_memory given as a bare number are bytes and must be at
//     least 1Mi (a bare "512" is surely a slip); quantities round up;
//   - devices and device_share/device_memory exclude each other; a devices
//     list needs a device request; min_available is 0 (all) to replicas;
//     max_retries needs policy OnFailure; runtime_estimate <= time_limit;
//   - a service (kind: service) has one task group of one replica (the
//     copies are service.replicas), restarts Always (the only policy it may
//     give, and one batch jobs may not), and none of a batch job's ends:
//     array, dependencies, time_limit, runtime_estimate, checkpoint. Its
//     block, after the fields above:
//       kind: service
//       service:
//         replicas: 2
//         readiness: {http: /healthz, initial_delay: 5s, period: 2s,
//                     timeout: 1s, success_threshold: 1, failure_threshold: 3}
//         # or readiness: {tcp: true}
//         liveness: {http: /healthz, initial_delay: 30s}  # same fields
//   - env values and command arguments are text: numbers and booleans keep
//     the text as written ("1.50" stays "1.50");
//   - input is one UTF-8 document of at most max_bytes, nested at most 64
//     levels, whose aliases expand it at most 4 times.
absl::StatusOr<JobSpec> ParseJobSpec(const std::string& text, const SpecLimits& limits = {});

// About how many bytes the assignments of all of a job's tasks carry: each
// task's command and environment (job and task level) plus, for frameworks
// whose every rank gets the list of all ranks (mpi, deepspeed, mindspore,
// paddle, tensorflow), that list. What the controller keeps and sends per
// task grows with it.
int64_t AssignmentBytes(const JobSpec& spec);

// What one job may cost the controller (SpecLimits::max_job_tasks and
// max_assignment_bytes): InvalidArgument saying what to do when above.
absl::Status CheckJobCost(const JobSpec& spec, const SpecLimits& limits);

// `text` (a trace's job name, a command's file name) as a job name accepts
// it: lowercase letters and digits, each other run of characters one '-', at
// most 63, no '-' at either end ("Recommendation (batch size 2048)" ->
// "recommendation-batch-size-2048"). Empty when nothing usable is left.
std::string ToJobName(absl::string_view text);
// Whether `s` is a valid name for a job, a queue's priority class and the
// like: a DNS label (lowercase letters, digits and '-', at most 63).
bool IsValidName(absl::string_view s);

// Canonical JSON of a spec (what the store keeps and the API returns); parses
// back with ParseJobSpec to an equal spec. Every field is written except
// zero durations, shares and device memory and empty workdir/env/devices/
// node_selector; quantities as text in their shortest exact form ("1500m",
// "2Gi", "90s", "50%"). The JSON can be longer than the YAML it came from, so
// re-parse it with limits.max_bytes of at least its size.
std::string JobSpecToJson(const JobSpec& spec);

// Slurm's --dependency text as Dependencies: "afterok:12:13,afterany:14,
// afternotok:15" (after_ok and the like spelled as in the spec also do; ids
// separated by ':'). InvalidArgument naming the part it cannot read.
absl::StatusOr<Dependencies> ParseDependencyList(absl::string_view text);

// Adds `more`'s ids to `into` (each once).
void MergeDependencies(const Dependencies& more, Dependencies& into);

// The run time icos::core schedules a job with, and where it came from.
struct RuntimeEstimate {
  double seconds = 0;  // 0: unknown (backfill does not trust the job to end in time)
  // "user" (the spec's runtime_estimate), "learned" (from similar finished
  // jobs, capped by the time limit), "time_limit", or "" when unknown.
  std::string source;
};

// The first of: the spec's runtime_estimate; `learned_s` (> 0: an estimate
// learned from similar jobs) capped by the time limit; the time limit (it
// bounds the run, as the agent stops the job there, which is all backfill
// needs: Slurm's rule); none.
RuntimeEstimate EstimateOf(const JobSpec& spec, double learned_s = 0);

// The scheduler's view of the spec (its estimate: EstimateOf(spec)).
core::Job ToCoreJob(const JobSpec& spec, JobId id, const std::string& user, int64_t submit_ms);

// Quantity parsers shared with other inputs (node inventories, queue specs).
absl::StatusOr<int64_t> ParseCpuMilli(const std::string& text);   // "2", "0.5", "500m"
absl::StatusOr<int64_t> ParseMemoryMib(const std::string& text);  // "512Mi", "2Gi", "1G", "1048576"
absl::StatusOr<int64_t> ParseDurationS(const std::string& text);  // "90", "90s", "10m", "2h", "1d"

}  // namespace icos::api

#endif  // ICOS_API_JOB_SPEC_H_
