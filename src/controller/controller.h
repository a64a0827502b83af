// The controller: the only writer of cluster state. It accepts jobs, keeps the
// cluster's state in memory backed by a StateStore, runs the scheduling loop
// (snapshot -> icos::core -> decisions -> store -> agents), and answers agents'
// registrations, heartbeats and assignment watches.
//
// This class knows nothing about HTTP: http_server.h maps routes onto it, and
// tests call it directly.
//
// Invariants:
//   - a job is durable (in the store) before Submit returns;
//   - every state change is written to the store before memory shows it;
//   - a task attempt runs at most once: new attempts of a job are scheduled
//     only after every task of earlier attempts has ended;
//   - a task only runs while its job is Running at that attempt; anything else
//     is sent to its agent as "stop".
// Thread-safety: all public methods are thread-safe. mu_ guards the cluster
// state (the engine, services, queues). A command that changes it holds a
// WriteLock: write_mu_ first (one writer at a time), then mu_, which Commit
// lets go of while the store writes, and a pass while the engine takes its
// snapshot and applies its decisions (both only read the state). Readers (lists, GETs, watches,
// authentication) take mu_ alone, so they never wait for the disk; they see
// jobs as before a change until it is durable and adopted (a node's record,
// which registrations and lease checks edit in place before they commit,
// may show the change a moment early), and no writer can run meanwhile.
// Lock order: pass_mu_, reconcile_mu_, write_mu_, mu_, tokens_mu_.
#ifndef ICOS_CONTROLLER_CONTROLLER_H_
#define ICOS_CONTROLLER_CONTROLLER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "api/job_spec.h"
#include "common/clock.h"
#include "common/status_macros.h"
#include "controller/accounting.h"
#include "controller/authz.h"
#include "controller/gateway_loads.h"
#include "controller/metrics.h"
#include "controller/runtime_learning.h"
#include "controller/service_autoscale.h"
#include "controller/service_probes.h"
#include "controller/service_state.h"
#include "controller/service_traffic.h"
#include "controller/slow_nodes.h"
#include "controller/webhook_outbox.h"
#include "controller/webhooks.h"
#include "core/forecast.h"
#include "core/forecast_calibration.h"
#include "core/scheduler.h"
#include "engine/engine.h"
#include "protocol/wire.h"
#include "store/state_store.h"

namespace icos::controller {

// Limits for parsing the specs the store holds (canonical JSON, which can be
// larger than the YAML a user sent).
api::SpecLimits StoredSpecLimits();

struct ControllerOptions {
  core::SchedulerOptions scheduler;
  // What a submitted spec may ask for, and what one job may cost
  // (api::SpecLimits; docs/api.md "Limits").
  api::SpecLimits spec_limits;
  // A pass runs at once after a change (submit, task end, node join) and at
  // least this often otherwise (to refresh waiting reasons and time).
  int64_t pass_interval_ms = 2'000;
  // A job restarted after a failure (restart: OnFailure) waits this long
  // after its failed attempt ended, doubling with each failure up to the
  // cap (Kubernetes' CrashLoopBackOff: 10 s to 5 min), so a job that fails at
  // once does not spin through its retries in seconds. 0: no back-off.
  int64_t restart_backoff_ms = 10'000;
  int64_t restart_backoff_max_ms = 300'000;
  // The node lease (docs/reliability.md): a node whose agent has not
  // heartbeated for this long is NotReady and gets no new work. Its tasks
  // run on until their job's max_disconnect (this lease by default) has
  // passed since the last heartbeat: the agent's shims stop them before
  // that, and only then are they failed here and retried elsewhere, so a
  // task never runs twice at once. 60 s rides out what real networks do
  // (switch failovers and routing reconvergence take tens of seconds, a
  // controller restart or HA failover a few) while a lost node idles a
  // gang for at most a minute. The agent pace is kept at a quarter of it.
  int64_t node_lease_ms = 60'000;
  // How many routine agent calls per second the controller invites, across
  // the cluster: heartbeats, and watches that could not wait (each half).
  // Agents call every second while nodes <= half this; past that the pace
  // slows in proportion (as Nomad scales its heartbeat TTL), so 10,000 nodes
  // call every 10 s, not every second. Task exits are still reported at once.
  int64_t max_agent_polls_per_s = 2'000;
  int64_t grace_ms = 10'000;  // SIGTERM -> SIGKILL for cancelled / preempted tasks
  // engine::EngineOptions::max_checkpoint_window_ms: the most a planned stop
  // waits for a checkpoint that took longer before than its spec's grace.
  int64_t max_checkpoint_window_ms = 30 * 60'000;
  // Tasks' ports (each rank's, and the rendezvous port MASTER_ADDR:MASTER_PORT)
  // are booked per node from [port_base, port_base + port_span): the lowest
  // that no active task on the node holds (engine/port_book.h).
  int32_t port_base = 29'500;
  int32_t port_span = 10'000;
  // Utilisation history: one sample per this many seconds (aligned to
  // multiples of it), kept this long.
  int64_t utilisation_step_s = 15;
  int64_t utilisation_retention_s = 30 * 86'400;
  // Run-time estimates learned from finished jobs, for jobs submitted without
  // one (runtime_learning.h).
  RuntimeLearningOptions learning;
  // Start-time forecasts of pending jobs (core/forecast.h): refreshed from a
  // scheduling pass's snapshot this often (within 2 s when a job waits that
  // has none yet), on a thread of their own so that passes never wait for
  // them. 0: none.
  int64_t forecast_interval_ms = 30'000;
  core::ForecastOptions forecast;
  // Forecasts are calibrated by what became of earlier ones
  // (core/forecast_calibration.h); min_observations larger than window: never.
  core::CalibrationOptions forecast_calibration;
  // What one refresh may cost, in passes the size of the last one: its
  // forecast.max_passes is cut so that samples x passes x (the last pass's
  // decide time) stays within this, and jobs further back than that reach
  // are forecast "later". 2 s every 30 s: at most ~7% of one core.
  int64_t forecast_budget_ms = 2'000;
  // Webhooks (controller/webhooks.h): who users may notify, and how.
  WebhookOptions webhooks;
};

using engine::DeviceUse;

// A job as the API shows it.
struct JobView {
  store::JobRecord job;
  api::RuntimeEstimate estimate;  // as of now; for an ended job, as its spec gives it
  DeviceUse device_use;           // while the job is open (an ended job has it as a "DeviceUse" event)
  std::vector<store::TaskRecord> tasks;
  std::vector<store::EventRecord> events;
};

// A service's replicas and where each takes traffic (issue #22).
struct ServiceEndpoints {
  struct Replica {
    int32_t index = 0;
    int64_t job_id = 0;
    int32_t attempt = 0;
    std::string state;    // the replica job's: Pending, Running, ...
    std::string node;     // empty until it runs
    std::string address;  // host:port, while its task runs
    bool ready = false;
    int64_t since_ms = 0;  // when `ready` last changed
    std::string reason;    // why it is (not) ready, or why it waits
    bool current = false;  // runs the revision the service should run (else an older one)
  };
  int64_t id = 0;  // the service's (its first replica's) id
  std::string name, user;
  int32_t replicas = 0;       // how many it should have
  int32_t revision = 0;       // the revision they should run
  std::string rollout;        // "complete", "rolling out revision 3", "stopped"
  std::vector<Replica> list;  // by index
};

// One task's hold on one device (the dashboard's cluster map shows it).
struct DeviceAllocation {
  int32_t device = 0;  // index into core::Node::devices
  int64_t job_id = 0;  // 0 (and the names empty): a job the caller may not see
  std::string job_name, user, task_id;
  int32_t percent = 100;  // of the device; < 100 for a shared slice
  int64_t memory_mib = 0;
};

struct NodeView {
  store::NodeRecord record;
  core::Node node;
  std::string agent_url;
  int32_t tasks = 0;
  bool ready = false;
  bool drained = false;
  std::vector<DeviceAllocation> allocations;  // of active tasks, by device index
  // What each device (node.devices order) is doing, from the agent's last
  // heartbeat; empty until one has carried it (or when the node is not Ready).
  std::vector<wire::DeviceUsage> usage;
  // Why the node's health-check program failed; empty while healthy. An
  // unhealthy node gets no new work, like a drained one.
  std::string unhealthy_reason;
  // Set when the jobs that ran here alone lately took clearly longer against
  // their run-time estimates than the cluster's (slow_nodes.h); empty otherwise.
  std::string slow_reason;
};

struct QueueView {
  core::Queue queue;
  int64_t pending = 0, running = 0;
  // What active tasks of the queue and its descendants hold now, in the keys
  // and milli-units of core::ResourceAmounts.
  core::ResourceAmounts used;
};

// Where a task's log lives.
struct LogLocation {
  std::string agent_url;
  std::string task_id;
  bool finished = false;  // the task has ended: the log will not grow
};

// What /metrics shows about the cluster's state at one moment.
struct DeviceMetric {
  std::string node;
  int32_t index = 0;
  std::string vendor, model;
  double allocated = 0;     // share of the device held by active tasks, 0..1
  wire::DeviceUsage usage;  // unknown (-1) until the agent reports it
  bool healthy = true;
  bool drained = false;  // the device or its node is drained
};
struct QueueMetric {
  core::Queue queue;
  double devices = 0;    // devices held by active tasks (shares count their fraction)
  double cpu_cores = 0;  // cores held by active tasks
  int64_t pending = 0, running = 0;
};
struct NodeMetric {
  std::string name;
  std::string state;  // Ready, NotReady
  bool drained = false;
  double heartbeat_age_s = 0;
  // Median run time / estimate of its recent jobs over the cluster's; < 0
  // while it has had too few jobs to say.
  double runtime_ratio = -1;
};
struct ClusterMetrics {
  RuntimeLearning::Stats learning;  // zeros when learning is off
  std::vector<DeviceMetric> devices;
  std::vector<QueueMetric> queues;
  std::vector<NodeMetric> nodes;
  std::map<std::string, int64_t> jobs_by_state;  // every state, 0 when none
  // The store's leadership as recorded (the controller serving leads it).
  int64_t leader_epoch = 0;
  int64_t leader_since_ms = 0;
};

// Event counters the controller keeps for /metrics. Thread-safe.
struct ControllerCounters {
  metrics::HistogramFamily pass_duration{
      "icos_scheduler_pass_duration_seconds",
      "Wall time of scheduling passes that had pending jobs (snapshot, decide, commit).",
      {},
      metrics::HistogramFamily::LatencyBounds()};
  metrics::CounterFamily binds{
      "icos_scheduler_binds_total", "Jobs the scheduler placed (bind decisions committed).", {}};
  metrics::CounterFamily preemptions{
      "icos_scheduler_preemptions_total", "Running jobs preempted by the scheduler.", {}};
  metrics::CounterFamily heartbeats{"icos_agent_heartbeats_total", "Heartbeats received from node agents.", {"node"}};
  metrics::CounterFamily overtaken_heartbeats{
      "icos_agent_heartbeats_overtaken_total",
      "Heartbeats not applied: the same agent's later one (or a newer agent process's) was applied first.",
      {"node"}};
  metrics::CounterFamily lost_device_seconds{
      "icos_work_lost_device_seconds_total",
      "Device-seconds of work thrown away by tasks that ended early (preemption, moves, lost nodes, sick "
      "devices, failures): their devices times the time since their job's last checkpoint, by queue.",
      {"queue"}};
  metrics::CounterFamily loop_errors{
      "icos_controller_loop_errors_total",
      "Failed steps of the controller's loop (each also logged), by step: check_nodes, pass, "
      "sample_utilisation, flush_token_use.",
      {"step"}};
  metrics::CounterFamily webhook_deliveries{
      "icos_webhook_deliveries_total",
      "Tries of webhook messages (notify:), by outcome: delivered, retried (the try failed; another follows), "
      "given_up (the last try failed: a NotifyFailed event on the job).",
      {"outcome"}};
  metrics::HistogramFamily estimate_ratio{
      "icos_runtime_estimate_ratio",
      "Run time / learned estimate of jobs that succeeded with a learned estimate (1: exact).",
      {},
      {0.125, 0.25, 0.5, 1, 2, 4, 8}};
};

// Writes every controller metric family (docs/metrics.md) in base units.
void RenderMetrics(const ClusterMetrics& m, const ControllerCounters& c, metrics::ExpositionWriter& w);

// Utilisation history as the API returns it.
struct UtilisationHistory {
  int64_t step_s = 0;
  std::vector<store::UtilisationSample> samples;  // sample_json as documented in store::UtilisationSample
};

struct UsageReport {
  UsageBy by = UsageBy::kUser;
  int64_t since_ms = 0, until_ms = 0;
  std::vector<UsageRow> rows;
};

// Options of a new token (Controller::CreateToken).
struct TokenOptions {
  // A Unix identity its jobs run as instead of the account named `user`
  // (gid defaults to uid); -1: none.
  int64_t uid = -1, gid = -1;
  int64_t ttl_ms = 0;  // expires this long after creation; 0: never
};

// How a job is submitted besides its spec (Controller::Submit).
struct SubmitOptions {
  // Relative task working directories (and empty ones) are resolved against
  // this, the directory the user submitted from, when given.
  std::string base_dir;
  // Optional; 1-255 printable ASCII characters: a retry of a submission
  // with the same key and spec within store::kIdempotencyWindowMs returns
  // the job the first one made instead of making a second; the same key
  // with another spec is AlreadyExists.
  std::string idempotency_key;
  bool hold = false;  // held from the start (icos submit --hold)
  // Added to the spec's own (icos submit --dependency afterok:12).
  api::Dependencies dependencies;
  // A job array's indices in place of the spec's own (icos submit --array
  // 0-99%8; api::ParseArrayIndices); empty: the spec's.
  std::string array;
};

// What `icos update` changes in a job; unset fields stay.
struct JobUpdate {
  std::optional<int32_t> priority;            // pending or running; within the queue's limit for users
  std::optional<int64_t> time_limit_s;        // pending only; 0: none
  std::optional<int64_t> runtime_estimate_s;  // pending only; 0: none
};

struct Assignments {
  uint64_t version = 0;
  std::vector<wire::Assignment> tasks;
};

class Controller {
 public:
  // Loads the state from `store` (which must outlive the controller).
  static absl::StatusOr<std::unique_ptr<Controller>> Create(ControllerOptions options, store::StateStore* store,
                                                            Clock* clock);
  ~Controller();

  // Starts / stops the scheduling and node-monitor thread.
  void Start();
  void Stop();

  // --- auth ------------------------------------------------------------------
  // Unauthenticated for a missing / unknown / revoked / expired token. Notes
  // the token's use (stored at most once a minute per token, by the loop).
  absl::StatusOr<Principal> Authenticate(const std::string& token);
  // Creates a token and returns its secret (shown once; only a hash is kept).
  // Admin only. role "user" needs `user`.
  absl::StatusOr<std::string> CreateToken(const Principal& caller, Role role, const std::string& user,
                                          const std::string& name, const TokenOptions& options = {});
  // Every token, newest first, without secrets (admin only).
  absl::StatusOr<std::vector<store::TokenRecord>> ListTokens(const Principal& caller) const;
  // Revokes the token whose id (the first 12 hex digits of its hash, as
  // ListTokens shows) or name is `which`; an ambiguous name is an error
  // listing the ids. Admin only. Its next request is refused (401).
  absl::StatusOr<store::TokenRecord> RevokeToken(const Principal& caller, const std::string& which);
  // Writes the last-used times noted since the last call (the loop calls it).
  absl::Status FlushTokenUse();
  // Creates the first admin token if the store has none; returns "" otherwise.
  // The token is the user "admin"; `run_as` (uid, gid; -1: none) is the
  // Unix identity its jobs run as (the one who started the controller).
  absl::StatusOr<std::string> BootstrapAdminToken(const TokenOptions& run_as = {});

  // --- jobs -------------------------------------------------------------------
  // Relative task working directories (and empty ones) are resolved against
  // `base_dir`, the directory the user submitted from, when given.
  // `idempotency_key` (optional; 1-255 printable ASCII characters): a retry
  // of a submission with the same key and spec within
  // store::kIdempotencyWindowMs returns the job the first one made (and sets
  // *replayed) instead of making a second; the same key with another spec is
  // AlreadyExists.
  absl::StatusOr<int64_t> Submit(const Principal& caller, const std::string& spec_text,
                                 const std::string& base_dir = "", const std::string& idempotency_key = "",
                                 bool* replayed = nullptr);
  // The same, with every option (SubmitOptions). A spec's dependencies must
  // name jobs the caller may see, and ones that have already ended the other
  // way (after_ok on a failed job) are refused.
  absl::StatusOr<int64_t> Submit(const Principal& caller, const std::string& spec_text, const SubmitOptions& options,
                                 bool* replayed = nullptr);
  absl::StatusOr<JobView> GetJob(const Principal& caller, int64_t id) const;
  // The open replicas of service `id` (its id or any replica's) with their
  // readiness, and its revision and rollout; NotFound for an id that is not a service the caller may see.
  absl::StatusOr<ServiceEndpoints> Endpoints(const Principal& caller, int64_t id) const;
  // Every service with a replica not ended that the caller may see, by id,
  // with its open replicas (the dashboard's services page).
  absl::StatusOr<std::vector<ServiceEndpoints>> ListServices(const Principal& caller) const;
  // The ready replicas' host:port of the running service `service` (its id,
  // or its name when one running service has it) and how long a request
  // may wait for one when none is (a service at zero), for the gateway, which
  // serves anyone who can reach it: NotFound when none runs,
  // FailedPrecondition when several share the name.
  absl::StatusOr<ServiceRoute> Route(const std::string& service) const;
  // The same for a standalone gateway (`icos gateway`): its token's role
  // must be gateway (or admin).
  absl::StatusOr<ServiceRoute> Route(const Principal& caller, const std::string& service) const;
  // A standalone gateway's counts since it started, by service id, under
  // its own `instance` id (GatewayLoads): what the autoscaler reads beside
  // the in-process gateway's. Ids that are no service are ignored.
  absl::Status ReportGatewayLoad(const Principal& caller, const std::string& instance,
                                 const std::map<int64_t, ServiceLoad>& loads);
  // Where the autoscaler reads each service's load (the in-process
  // gateway's counts), beside what standalone gateways report
  // (ReportGatewayLoad); while neither measures it, autoscaled services
  // keep their count. Before Start.
  void SetServiceLoadSource(std::function<ServiceLoad(int64_t service_id)> source) { load_source_ = std::move(source); }
  // Service `id`'s request rate and latency over the last hour, a point
  // every ServiceTraffic::kStepMs (the dashboard's charts); empty while no
  // gateway measures it. Readable by whoever may read the service.
  absl::StatusOr<std::vector<TrafficPoint>> ServiceTrafficOf(const Principal& caller, int64_t id) const;
  // One round of readiness probes, now, on this thread (the prober's own
  // thread runs one every 250 ms once Start is called, each followed by
  // ReconcileServices; tests call these).
  void ProbeServices() { prober_->Round(); }
  // --- services' revisions, rollouts and scale (service_rollout.cc) --------
  // Moves each service's replicas one step toward its desired state
  // (PlanRollout): makes and stops replicas, completes or fails rollouts
  // (a failed one rolls back by itself).
  void ReconcileServices();
  // A new spec for service `id` (`icos service update`): a new revision,
  // rolled out as its `service.update` says; a spec that changes only the
  // count of replicas, the rollout rule or the autoscaling changes the
  // current revision.
  // Returns the revision. The name and kind stay.
  absl::StatusOr<int32_t> UpdateService(const Principal& caller, int64_t id, const std::string& spec_text,
                                        const std::string& base_dir = "");
  // How many replicas service `id` should have (0 allowed).
  absl::Status ScaleService(const Principal& caller, int64_t id, int32_t replicas);
  // Rolls service `id` back to revision `to` (0: the last one that rolled
  // out completely, or the one before the current): a new revision with
  // its spec. Returns the new revision.
  absl::StatusOr<int32_t> RollbackService(const Principal& caller, int64_t id, int32_t to);
  // Pauses service `id`'s rollouts and scaling (nothing is made or stopped
  // for it) or resumes them (`icos service pause/resume`, as kubectl
  // rollout pause/resume). Pausing a paused service, or resuming one that
  // runs, changes nothing.
  absl::Status PauseService(const Principal& caller, int64_t id, bool pause);
  // Service `id`'s desired state and history.
  absl::StatusOr<ServiceState> GetService(const Principal& caller, int64_t id) const;
  absl::StatusOr<std::vector<store::JobRecord>> ListJobs(const Principal& caller, store::JobQuery query) const;
  absl::Status Cancel(const Principal& caller, int64_t id);
  // --- control of queued work (controller_queued.cc) -----------------------
  // Holds a pending job back from scheduling, or releases it (Slurm's
  // scontrol hold / release). A user's hold is released by the user or an
  // admin, an admin's by an admin only. Holding a held job, or releasing one
  // that is not, is FailedPrecondition.
  absl::Status Hold(const Principal& caller, int64_t id, bool hold);
  // Stops a running job's tasks (SIGTERM, grace, SIGKILL) and puts it back
  // in its queue as a new attempt, no retry spent (scontrol requeue);
  // `hold`: held there until released (requeuehold).
  absl::Status RequeueJob(const Principal& caller, int64_t id, bool hold);
  // Changes a job's priority, time limit or run-time estimate (scontrol
  // update), with the spec's own rules (estimate <= time limit, priority
  // within the queue's limit for users).
  absl::Status Update(const Principal& caller, int64_t id, const JobUpdate& update);

  // task_index: position in the job's current attempt (0-based, as `icos job` lists them).
  // `attempt` < 0: the latest attempt's task.
  absl::StatusOr<LogLocation> LocateLog(const Principal& caller, int64_t job_id, int32_t task_index,
                                        int32_t attempt = -1) const;

  // --- queues and nodes ------------------------------------------------------
  absl::StatusOr<std::vector<QueueView>> ListQueues(const Principal& caller) const;
  // Admin only. Creates or replaces a queue.
  absl::Status PutQueue(const Principal& caller, const core::Queue& queue);
  absl::StatusOr<std::vector<NodeView>> ListNodes(const Principal& caller) const;

  // --- agent protocol -------------------------------------------------------
  // Agent or admin. Re-registering an existing node updates it.
  // `log_key` is the secret the agent wants on log requests (the controller
  // fetches logs from agents on users' behalf).
  // `unhealthy_reason`: the agent's health-check program failed with this
  // reason (empty: healthy); the node then gets no new work until it passes.
  // A join token (role agent) may register a node that has no credential
  // yet; the answer is then that node's new credential (a token of role
  // node, good for that node only), which the agent uses from then on. A
  // node's credential re-registers its own node; the answer is "". A name
  // that already has a credential is refused to a join token.
  absl::StatusOr<std::string> RegisterNode(const Principal& caller, const core::Node& node, const std::string& address,
                                           const std::string& agent_url, const std::string& log_key,
                                           const std::string& unhealthy_reason = "");
  // Admin only. A drained node keeps its running tasks but gets no new ones;
  // survives restarts of controller and agent.
  absl::Status DrainNode(const Principal& caller, const std::string& name, bool drain);
  // Admin only. The same for one device (its index in the node's device
  // list, as `icos devices` shows it): tasks on it stay, nothing new lands.
  absl::Status DrainDevice(const Principal& caller, const std::string& name, int32_t device, bool drain);
  // The log key of the agent at `agent_url`; "" if unknown.
  std::string AgentLogKey(const std::string& agent_url) const;
  // `devices`: what each device is doing, in node.devices order (empty: the
  // agent did not say; a list of another length is ignored, the tasks' states
  // are applied all the same).
  // The reply acknowledges the reported task ends that are now durable, so
  // the agent may forget them (it reports them until then).
  // `instance` and `seq` order an agent's heartbeats (a process's random id
  // and its count of beats; empty and 0 from older agents: applied as they
  // come): one older than a beat already applied, or from an agent process
  // a later one replaced, is answered but not applied.
  absl::StatusOr<wire::HeartbeatReply> Heartbeat(const Principal& caller, const std::string& node,
                                                 const std::vector<wire::TaskStatus>& tasks,
                                                 const std::vector<wire::DeviceUsage>& devices = {},
                                                 const std::string& instance = "", int64_t seq = 0);
  // For an agent's checkpoint retention (NodeAgentOptions::
  // checkpoint_retention_ms): which of `jobs` have ended, with when (Unix
  // ms). Open jobs and those the store does not know are left out, so their
  // directories stay. At most kMaxEndedJobsQuestion ids.
  static constexpr size_t kMaxEndedJobsQuestion = 500;
  absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> EndedJobs(const Principal& caller, const std::string& node,
                                                                     const std::vector<int64_t>& jobs);
  // How often each agent should heartbeat, and ask again after a watch that
  // could not wait: max(1 s, nodes / (max_agent_polls_per_s / 2)), at most
  // a quarter of the node lease.
  int64_t AgentPaceMs() const;
  // Blocks up to wait_ms until the node's assignments change past `since`.
  absl::StatusOr<Assignments> WatchAssignments(const Principal& caller, const std::string& node, uint64_t since,
                                               int64_t wait_ms);
  // Calls `listener(node)` whenever a node's assignment version moves (what
  // WatchAssignments waits for), so a server can answer watches without a
  // thread blocked in WatchAssignments each. It runs with the controller's
  // lock held: it must be quick and must not call back into the Controller.
  // One listener; a later call replaces it, nullptr removes it.
  void SetAssignmentListener(std::function<void(const std::string& node)> listener);

  // --- observability (controller_observe.cc) -------------------------------
  // The cluster's state for /metrics.
  absl::StatusOr<ClusterMetrics> CollectMetrics() const;
  const ControllerCounters& counters() const { return counters_; }
  // The controller's clock (API defaults such as "until now").
  int64_t NowMs() const { return clock_->NowMs(); }
  // How long a job restarted after `failures` failures waits
  // (ControllerOptions::restart_backoff_ms, doubling, capped).
  int64_t RestartBackoffMs(int32_t failures) const;
  // The cluster's id (StateStore::ClusterId): agents scope what they make on
  // a host (cgroups) by it. Fixed after Create().
  const std::string& cluster_id() const { return cluster_id_; }
  // Takes a utilisation sample if the clock has entered a new step since the
  // last one (the loop calls it; tests call it with a FakeClock). Returns
  // whether it sampled. Samples older than the retention are pruned.
  absl::StatusOr<bool> SampleUtilisation();
  // Samples with since_s <= t < until_s (Unix seconds). Any role.
  absl::StatusOr<UtilisationHistory> Utilisation(const Principal& caller, int64_t since_s, int64_t until_s) const;
  // Usage over [since_ms, until_ms). A user sees only its own jobs' usage;
  // agents may not ask.
  absl::StatusOr<UsageReport> Usage(const Principal& caller, int64_t since_ms, int64_t until_ms, UsageBy by) const;

  // Runs one scheduling pass now (tests; the loop calls it too).
  absl::Status RunPass();

  // --- start-time forecasts (controller_forecast.cc) ------------------------
  // When each of `ids` should start, as last forecast (a job without one:
  // absent; held jobs and those waiting for dependencies get none).
  std::map<int64_t, core::StartForecast> Forecasts(const std::vector<int64_t>& ids) const;
  // When the forecasts in use were made (controller clock, ms); 0: never.
  int64_t ForecastsMadeMs() const;
  // Forecasts from the snapshot the last due pass kept, now, on this thread
  // (tests; the forecast thread does the same). False when none was kept.
  absl::StatusOr<bool> RefreshForecasts();
  // Marks nodes silent for a lease NotReady, and fails the tasks of silent
  // nodes once their max_disconnect has passed (the loop calls it).
  absl::Status CheckNodes();

 private:
  using TaskEntry = engine::TaskEntry;
  using JobEntry = engine::JobEntry;
  using NodeEntry = engine::NodeEntry;

  Controller(ControllerOptions options, store::StateStore* store, Clock* clock);
  absl::Status Load();
  // AgentPaceMs with mu_ held.
  int64_t AgentPaceLocked() const;
  // Feeds the run times of jobs that succeeded before this start to the
  // estimator (the most recent estimator-window of them), then the open jobs.
  absl::Status LoadRuntimeHistory();
  // Hands the learned estimates made since the last call to their jobs. Runs
  // outside mu_ (the estimator may retrain); takes it to apply them.
  void ApplyLearnedEstimates();
  void Loop();
  void Wake();

  // All below REQUIRE mu_ held.
  // Moves the node's assignment version (watchers and the listener wake).
  void Touch(const std::string& node);
  // What the store keeps of a node: `e` with `node`, `agent_url` and
  // `log_key` as given (a registration stores new ones before applying them).
  static std::string NodeSpecJson(const NodeEntry& e, const core::Node& node, const std::string& agent_url,
                                  const std::string& log_key);
  // Writes a change (with its usage records) and, once it is durable, hands
  // it to the engine and wakes the nodes whose assignments it moved. A failed
  // write leaves memory as it was. REQUIRES a WriteLock on this thread: mu_
  // is let go while the store writes (readers go on; writers wait on
  // write_mu_) and held again when it returns.
  absl::Status Commit(engine::Change change);
  // Forgets jobs that ended and hold no tasks (the store keeps them), and
  // learns from them.
  void Prune();
  // PermissionDenied when `caller` may not ask for `priority` in `queue`
  // (above its max_priority, for users): Submit's and Update's one rule.
  absl::Status CheckQueuePriority(const Principal& caller, const std::string& queue, int32_t priority) const;
  // Sets spec's priority (and preempts) from its priority_class, or from its
  // queue's default class when it names neither a class nor a priority;
  // else CheckQueuePriority. REQUIRES: mu_.
  absl::Status ResolvePriority(const Principal& caller, api::JobSpec& spec) const;
  // The open job `id` as `caller` may act on it; NotFound for one it may not
  // see, FailedPrecondition naming the state of one that ended.
  absl::StatusOr<const JobEntry*> OpenJobFor(const Principal& caller, int64_t id);
  // A spec as submitted by `caller` (Submit, UpdateService): parsed, its
  // webhook allowed, its workdirs under `base_dir`, its queue a leaf the
  // caller may use at its priority.
  absl::StatusOr<api::JobSpec> AcceptSpec(const Principal& caller, const std::string& spec_text,
                                          const std::string& base_dir) const;
  // InvalidArgument when `copies` elements (an array's, a service's
  // replicas) each keeping `spec_json` pass SpecLimits::max_array_spec_bytes.
  absl::Status CheckCopiesOfSpec(const std::string& spec_json, size_t copies) const;
  // Puts inserted job rows of `spec` into memory. REQUIRES: mu_.
  void AdmitJobs(const api::JobSpec& spec, std::vector<store::JobRecord>& recs);
  // Stages job `id`'s cancellation for `reason`. REQUIRES: mu_.
  void StageCancel(engine::Change& c, int64_t id, const std::string& reason);
  // The end states of the jobs that open jobs depend on but memory no longer
  // holds (a controller start).
  absl::Status LoadEndedDependencies();
  // What a job that ended teaches: its run time to the estimator (a success)
  // or that it is gone (otherwise), and its pace against its estimate to the
  // slow-node detector (controller_learning.cc).
  void LearnFromEnd(const JobEntry& j);
  absl::StatusOr<std::string> DoRegisterNode(const Principal& caller, const core::Node& node,
                                             const std::string& address, const std::string& agent_url,
                                             const std::string& log_key, const std::string& unhealthy_reason);
  // A new token record and its secret (not yet stored).
  absl::StatusOr<std::pair<store::TokenRecord, std::string>> NewToken(Role role, const std::string& user,
                                                                      const std::string& name,
                                                                      const TokenOptions& options) const;
  // Adds a usage record for every task of `b` that has started running, so
  // accounting changes in the same transaction as the task (controller_observe.cc).
  void AddUsage(store::WriteBatch& b) const;
  // Whether `url` is some queue's webhook (set by an admin, so not held to
  // the allow list when delivered). Takes mu_.
  bool IsQueueWebhook(const std::string& url) const;
  // Device share held per (node, device index), and devices / CPU per queue,
  // by active tasks on Ready nodes (controller_observe.cc).
  struct Allocation {
    std::map<std::pair<std::string, int32_t>, double> device;
    std::map<std::string, std::pair<double, double>> queue;  // devices, cpu cores
  };
  Allocation Allocated() const;

  const ControllerOptions options_;
  store::StateStore* const store_;
  std::string cluster_id_;
  Clock* const clock_;
  core::Scheduler scheduler_;
  std::unique_ptr<RuntimeLearning> learning_;  // null when options_.learning.enabled is false
  SlowNodeDetector slow_nodes_;                // guarded by mu_

  std::mutex pass_mu_;  // one scheduling pass at a time
  // What a command that changes the cluster state holds (see the class
  // comment): write_mu_, then mu_.
  class WriteLock {
   public:
    explicit WriteLock(Controller& c);
    ~WriteLock();
    WriteLock(const WriteLock&) = delete;
    WriteLock& operator=(const WriteLock&) = delete;

   private:
    friend class Controller;
    Controller& c_;
    std::unique_lock<std::mutex> writer_;
    std::unique_lock<std::mutex> state_;  // on mu_; let go of by ReadersGo
    std::thread::id thread_;
  };
  // While it lives, a WriteLock's holder lets go of mu_ and takes it again
  // at the end: readers go on while the holder writes to the store or
  // reads the state without changing anything they read (a pass's
  // snapshot); no writer can run meanwhile (write_mu_ is still held).
  class ReadersGo {
   public:
    explicit ReadersGo(WriteLock& lock) : lock_(lock) { lock_.state_.unlock(); }
    ~ReadersGo() { lock_.state_.lock(); }
    ReadersGo(const ReadersGo&) = delete;
    ReadersGo& operator=(const ReadersGo&) = delete;

   private:
    WriteLock& lock_;
  };
  std::mutex write_mu_;
  std::atomic<WriteLock*> writer_{nullptr};  // the WriteLock held now; set and cleared under write_mu_
  mutable std::mutex mu_;
  std::condition_variable changed_;                                   // node versions moved (assignment watchers)
  std::function<void(const std::string& node)> assignment_listener_;  // told the same; guarded by mu_
  // The job lifecycle: jobs, tasks, nodes, queues and their rules.
  // Guarded by mu_; a WriteLock's holder also reads it with mu_ let go
  // (ReadersGo), changing only what no const method reads.
  engine::Engine engine_;
  // The API's tokens, apart from the cluster state: every request reads
  // them (Authenticate). Nothing else is locked while tokens_mu_ is held.
  mutable std::mutex tokens_mu_;
  std::map<std::string, store::TokenRecord> tokens_;  // by hash; guarded by tokens_mu_
  std::set<std::string> token_use_dirty_;             // hashes whose last_used_ms is not stored yet; ditto
  ControllerCounters counters_;
  // Delivers the webhook outbox; started and stopped with the loop.
  std::unique_ptr<WebhookSender> webhooks_;
  // Probes services' replicas (controller_services.cc); started and stopped
  // with the loop.
  std::vector<ProbeTarget> ProbeTargets() const;  // takes mu_
  // Stops a replica whose liveness or startup probe failed, to run again (a
  // requeue that spends nothing, told by `event`), unless it moved on
  // since. Takes mu_.
  void RestartDeadReplica(int64_t job_id, int32_t attempt, const std::string& event, const std::string& why);
  // A replica as `rec` has it, and, with its job in memory (`j`), where its
  // running task serves and whether it is ready. REQUIRES: mu_.
  ServiceEndpoints::Replica ReplicaOf(const store::JobRecord& rec, const engine::JobEntry* j) const;
  std::unique_ptr<ServiceProber> prober_;
  // Services' desired states, by id (the store's services table). Guarded by mu_.
  std::map<int64_t, ServiceState> services_;
  std::mutex reconcile_mu_;     // one ReconcileServices at a time: none makes a replica twice
  absl::Status LoadServices();  // at start: services_ from the store
  // Records service `id`'s first revision, as submitted. REQUIRES: mu_.
  void StartService(const Principal& caller, int64_t id, const std::string& spec_json, const api::JobSpec& spec);
  // The live (not ended) replicas of service `id`. REQUIRES: mu_.
  std::vector<int64_t> ServiceReplicasOf(int64_t id) const;
  // Service `id` as `caller` may change it (not stopped). REQUIRES: mu_.
  absl::StatusOr<ServiceState*> ServiceFor(const Principal& caller, int64_t id);
  // Stores `next` as its service's state, then keeps it. REQUIRES: mu_.
  absl::Status SaveService(ServiceState next);
  // ... committed with `c` (its events).
  absl::Status SaveService(ServiceState next, engine::Change c);
  // The spec of the revision service `s` should run, with its count of
  // replicas, parsed once per spec (a cache); nullptr when it does not
  // parse. REQUIRES: mu_.
  const api::JobSpec* CurrentSpec(const ServiceState& s) const;
  // Its template (ReplicaTemplate); empty when the spec does not parse. REQUIRES: mu_.
  std::string CurrentTemplate(const ServiceState& s) const;
  // Whether `replica` of service `s` runs its current revision, whose
  // template is `current_template` (CurrentTemplate).
  static bool RunsCurrent(const ServiceState& s, const JobEntry& replica, const std::string& current_template);
  // ReconcileServices' parts. Replicas of a service to insert once the
  // round's state is committed.
  struct ReplicasToMake {
    int64_t service = 0;
    std::string user;
    int64_t run_uid = -1, run_gid = -1;
    api::JobSpec spec;
    int32_t first_index = 0, count = 0;
  };
  // Services with open replicas but no state: adopted from their replicas;
  // returns their ids. REQUIRES: mu_.
  std::set<int64_t> AdoptUnrecordedServices(int64_t now);
  // One step of service `was`, whose open replicas are `replicas` and whose
  // gateways measured `load` this round (autoscaling, then PlanRollout):
  // stops staged in `c`, replicas to make added to `makes`; the service's
  // next state when it changed (or `dirty`). REQUIRES: mu_.
  std::optional<ServiceState> StepService(const ServiceState& was, const std::vector<int64_t>& replicas, bool dirty,
                                          const std::optional<ServiceLoad>& load, engine::Change& c,
                                          std::vector<ReplicasToMake>& makes);
  // Inserts them and puts them in memory (outside mu_; takes it).
  void MakeReplicas(const ReplicasToMake& m);
  struct ParsedRevision {
    std::string spec_json;
    int32_t replicas = 0;
    std::optional<api::JobSpec> spec;
    std::string replica_template;
  };
  mutable std::map<int64_t, ParsedRevision> parsed_revisions_;  // by service id; guarded by mu_
  std::function<ServiceLoad(int64_t)> load_source_;
  GatewayLoads gateway_loads_;
  ServiceTraffic traffic_;  // sampled by ReconcileServices
  // Service `id`'s load as every gateway saw it (the in-process one and
  // those reporting); nullopt when none measures it (autoscaling then
  // leaves the count alone).
  std::optional<ServiceLoad> MeasuredLoad(int64_t id, int64_t now_ms) const;
  std::map<int64_t, AutoscaleMemory> autoscale_;  // by service id; guarded by mu_ (reconcile thread)
  // The webhook messages each commit owes (webhook_outbox.h). Commit's
  // alone: guarded by write_mu_.
  WebhookOutbox outbox_{store_};
  std::mutex sample_mu_;
  int64_t last_sample_slot_ = -1;  // guarded by sample_mu_

  // Start-time forecasts: a due pass leaves its snapshot in forecast_input_
  // for the forecast thread.
  void ForecastLoop();
  // Feeds calibrator_ with the first forecasts of jobs `input` shows started,
  // and calibrates `made` (the raw forecasts from `input`).
  void Calibrate(const core::Snapshot& input, std::vector<core::StartForecast>& made);
  // Called by RunPass with its snapshot: kept when a refresh is due.
  void OfferForecastInput(const core::Snapshot& snap);
  mutable std::mutex forecast_mu_;
  std::condition_variable forecast_cv_;
  std::shared_ptr<const core::Snapshot> forecast_input_;  // guarded by forecast_mu_
  int64_t forecast_input_ms_ = -1;                        // when the last input was kept; guarded by forecast_mu_
  std::map<int64_t, core::StartForecast> forecasts_;      // guarded by forecast_mu_ (calibrated)
  int64_t forecasts_made_ms_ = 0;                         // guarded by forecast_mu_
  std::thread forecast_thread_;
  // Pending jobs' first raw forecasts, and what those of the started ones
  // taught. Guarded by calibration_mu_ (RefreshForecasts runs on the
  // forecast thread, or a test's).
  std::mutex calibration_mu_;
  core::ForecastCalibrator calibrator_{options_.forecast_calibration};
  std::atomic<double> last_decide_s_{0};  // the last pass's scheduler time (forecast budget)

  std::mutex loop_mu_;
  std::condition_variable loop_cv_;
  bool wake_ = false;
  std::atomic<bool> stop_{false};
  std::thread loop_;
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_CONTROLLER_H_
