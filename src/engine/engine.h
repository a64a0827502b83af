// The cluster engine: the job lifecycle, written once. It owns the open jobs
// with their attempts and tasks, the nodes with their drains and health, the
// queues, and the rules that move them: what a task report, a lost node or
// an unhealthy device does to a job (restart policy with back-off, requeue,
// success, failure), what the scheduler is told about each job (attained
// service, the start of its current run, its estimate), which tasks an agent
// should run, and how a pass's decisions are applied with their stale checks.
//
// It is synchronous and I/O-free: no store, no clock, no threads, no locks.
// Commands take the time and return a Change (the records to write and the
// new versions of the jobs they touched); the caller makes the records
// durable and then hands the change back to Adopt. A change that is never
// adopted (its commit failed) leaves the engine as it was.
//
// Thread-safety: none; the controller holds it under its lock. MakeTasks
// alone reads nothing but its arguments and the options, so a pass calls it
// without the lock.
#ifndef ICOS_ENGINE_ENGINE_H_
#define ICOS_ENGINE_ENGINE_H_

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/model/queue.h"
#include "core/model/snapshot.h"
#include "core/resources/usage_history.h"
#include "engine/port_book.h"
#include "engine/state.h"

namespace icos::engine {

// The exit code of a task the infrastructure ended, not the task itself: its
// node was lost, a device it used turned unhealthy, its agent lost it.
inline constexpr int32_t kInfrastructureExit = -1;

// A job that checkpoints, or restarts on failure, is started again after
// this many infrastructure failures at most (then it fails): a job that
// brings its nodes down must not go round the cluster forever.
inline constexpr int32_t kMaxInfrastructureRestarts = 20;

struct EngineOptions {
  // A job restarted after a failure waits restart_backoff_ms, doubling with
  // each failure up to restart_backoff_max_ms (0: at once).
  int64_t restart_backoff_ms = 10'000;
  int64_t restart_backoff_max_ms = 300'000;
  // A node silent this long is NotReady; a task there fails once its own
  // max_disconnect (this, unless the spec says) has passed.
  int64_t node_lease_ms = 60'000;
  int64_t grace_ms = 10'000;  // SIGTERM -> SIGKILL, told to each task
  // Task ports are booked per node from [port_base, port_base + port_span).
  int32_t port_base = 29'500;
  int32_t port_span = 10'000;
  // core::SchedulerOptions::restore_cost_ms, and whether the order wants
  // whole-run estimates (core/estimates.h): what RunsOf tells the scheduler.
  int64_t restore_cost_ms = 0;
  bool total_estimates = false;
  // The most a planned stop waits for a checkpoint when the job's history
  // asks for more than its spec's grace (CheckpointWindowMs).
  int64_t max_checkpoint_window_ms = 30 * 60'000;
};

// What one command changes: the records to write (events included) and the
// new versions of the jobs it touched, by id.
struct Change {
  explicit Change(int64_t now) : now_ms(now) {}
  int64_t now_ms;
  store::WriteBatch batch;
  std::map<int64_t, JobEntry> jobs;
  // An event at now_ms (job 0: a node's; node "": a job's).
  void Event(int64_t job, const std::string& node, const std::string& kind, std::string message);
};

// Jobs' new waiting reasons, by id.
using Reasons = std::vector<std::pair<int64_t, std::string>>;

// The nodes of one scheduling pass, indexed as its snapshot's, and what its
// decisions are checked against when they are applied.
struct PassInput {
  core::Snapshot snap;
  std::vector<std::string> node_names;
  std::vector<std::string> node_addresses;  // what other nodes reach each at
  std::vector<uint64_t> node_generation;
  absl::flat_hash_map<int64_t, int32_t> pending_attempt;
  absl::flat_hash_map<int64_t, int64_t> pending_revision;
  absl::flat_hash_map<int64_t, int32_t> running_attempt;  // jobs whose current attempt runs
  // Pending jobs whose dependencies can never be met and whose spec says to
  // cancel them, with the reason: CancelUnmet.
  std::vector<std::pair<int64_t, std::string>> unmet;
  // Pending jobs the pass leaves out though they may fit, with why (held,
  // a dependency, an array's throttle), where that is news: SetReasons.
  Reasons held_back;
};

// A pass's binds and moves, each with the tasks it makes (MakeTasks).
struct BindWork {
  struct Item {
    core::BindDecision bind;
    bool move = false;  // a running job's move to a faster type (its next attempt)
    int32_t attempt = 0;
    api::JobSpec spec;  // as submitted, with the array element's env
    std::string user;
    int64_t uid = -1, gid = -1;
    int64_t checkpoint_window_ms = 0;  // CheckpointWindowMs, for the stops the agent decides
    absl::StatusOr<std::vector<TaskEntry>> tasks = std::vector<TaskEntry>{};
  };
  std::vector<Item> items;  // moves first, then binds, each in decision order
  PortBook ports{1, 1};     // the ports active tasks hold when the pass began
};

struct PassOutcome {
  explicit PassOutcome(int64_t now) : change(now) {}
  Change change;
  int64_t binds = 0;
  int64_t preemptions = 0;  // migrations included
  bool stale = false;       // some decision was dropped: pass again soon
};

class Engine {
 public:
  explicit Engine(EngineOptions options) : options_(options) {}

  const EngineOptions& options() const { return options_; }

  // --- state -------------------------------------------------------------------
  // Open jobs, plus ended ones whose tasks are still stopping.
  const std::map<int64_t, JobEntry>& jobs() const { return jobs_; }
  const JobEntry* FindJob(int64_t id) const;
  // For what memory alone keeps (learned estimates): its tasks, state and
  // record change only through a Change. nullptr when not open.
  JobEntry* MutableJob(int64_t id);
  // Registration, drains and heartbeats edit node entries in place: a node
  // carries no lifecycle of its own beyond what CheckNodes does.
  std::map<std::string, NodeEntry>& nodes() { return nodes_; }
  const std::map<std::string, NodeEntry>& nodes() const { return nodes_; }
  std::map<std::string, core::Queue>& queues() { return queues_; }
  const std::map<std::string, core::Queue>& queues() const { return queues_; }
  // The ids of open jobs with active tasks on `node` (an index: no scan of
  // every job per heartbeat or watch).
  std::vector<int64_t> JobsOnNode(const std::string& node) const;
  // The jobs with active tasks (an index: what listings of nodes and
  // allocations walk instead of every open job).
  const std::set<int64_t>& JobsWithActiveTasks() const { return with_active_tasks_; }
  // The open jobs that are a service's replicas (what readiness probes visit).
  const std::set<int64_t>& ServiceReplicas() const { return service_replicas_; }
  // Each queue's own jobs, as jobs name it ("" is "default"): pending and
  // running ones, and what their active tasks hold, in the keys and
  // milli-units of core::ResourceAmounts (cpu, memory, devices, each vendor
  // and vendor/model). An index: kept as jobs change, not summed per call.
  struct QueueLoad {
    int64_t pending = 0, running = 0;
    core::ResourceAmounts used;
  };
  const std::map<std::string, QueueLoad>& QueueLoads() const { return queue_loads_; }

  // A job just submitted or loaded (its dependencies are counted by
  // NoteDependencies, separately: a submission counts them before it is stored).
  void AddJob(JobEntry job);
  // Counts (delta +1 / -1) the jobs `j` depends on as remembered: their end
  // states are kept while some open job names them.
  void NoteDependencies(const JobEntry& j, int delta);
  // The jobs that open jobs depend on but memory does not hold (after a
  // load: their end states are the store's, given back by NoteEnded).
  std::vector<int64_t> UnknownDependencies() const;
  void NoteEnded(int64_t id, store::JobState state) { ended_deps_[id] = state; }

  // `c`'s version of job `id`, copied from the current one on first use.
  // REQUIRES: the job is open (jobs() has it).
  JobEntry& Stage(Change& c, int64_t id) const;
  // Installs a committed change's jobs; returns the nodes whose assignments
  // may have moved: where the changed jobs have active tasks, and, when one
  // of their tasks ended, where jobs waiting for preempted victims do.
  std::set<std::string> Adopt(Change&& c);
  // Forgets jobs that ended and hold no tasks (the store keeps them) and
  // returns them, keeping the end state of those a remembered job depends on.
  std::vector<JobEntry> Prune();

  // --- rules ---------------------------------------------------------------------
  static bool HasActiveTasks(const JobEntry& j, bool older_attempts_only);
  // Attempts that failed (the back-off counts them all).
  static int32_t Failures(const JobEntry& j);
  // ... of which the job's own doing: a task that exited or crashed, not one
  // the infrastructure ended (kInfrastructureExit). Retries count these.
  static int32_t RetriesUsed(const JobEntry& j);
  // Attempts the infrastructure ended (a lost node, a sick device).
  static int32_t InfrastructureFailures(const JobEntry& j);
  // How long a job restarted after `failures` failures waits.
  int64_t RestartBackoffMs(int32_t failures) const;
  // When a restarted job may start again: its last failed task's end plus
  // RestartBackoffMs (0: at once).
  int64_t RetryAtMs(const JobEntry& j) const;
  // A service replica's ended attempts in a row, newest first, that ran
  // less than kStableRunMs (or never started): what its back-off doubles by.
  static int32_t CrashLoopRestarts(const JobEntry& j);
  static constexpr int64_t kStableRunMs = 10 * 60 * 1000;  // Kubernetes' reset of CrashLoopBackOff
  void RestartReplica(JobEntry& j, const TaskEntry& ended, Change& c) const;
  // Whether an agent should run task `t` of `j` now (false: stop it, or for
  // an assigned task still waiting for preempted victims, do not send it).
  bool ShouldRun(const JobEntry& j, const TaskEntry& t) const;
  JobRuns RunsOf(const JobEntry& j, int64_t now) const;
  // How job `id` stands, as a dependency: open, ended and remembered, or
  // unknown (nullopt).
  std::optional<store::JobState> DependencyState(int64_t id) const;
  // Why a pending job may not be scheduled yet though it would fit: held, or
  // waiting for a dependency ("" when it may). Sets *unmet (the reason) when
  // a dependency can never be met and the spec says to cancel it.
  std::string HeldBackReason(const JobEntry& j, std::string* unmet) const;
  // What node `node`'s agent should hold: every active task there, each
  // with run set by ShouldRun; tasks still waiting for victims are left out.
  std::vector<wire::Assignment> AssignmentsOf(const std::string& node) const;
  // Of reported task ends, those the engine has recorded (or no longer
  // tracks): the agent may forget them.
  std::vector<std::string> RecordedEnds(const std::string& node, const std::vector<wire::TaskStatus>& statuses) const;

  // --- commands ----------------------------------------------------------------
  // Moves a job forward after its tasks changed: success, failure with or
  // without a gang restart, the end of a cancel or preemption.
  void EvaluateJob(JobEntry& j, Change& c) const;
  // A running job goes back to pending, its next attempt, no retry spent,
  // saying `reason` in an `event` (on `node`, "" for none): its node shut
  // down under it, an operator requeued it, a service replica failed its
  // liveness probe. Does nothing to a job not running.
  void Requeue(JobEntry& j, const std::string& node, std::string reason, const char* event, Change& c) const;
  // Applies an agent's task reports, fails running tasks it no longer lists,
  // and moves their jobs on. Returns whether any task changed.
  bool ApplyTaskReports(const std::string& node, const std::vector<wire::TaskStatus>& statuses, Change& c) const;
  // Fails the active tasks on `node` that use one of `sick` (device index ->
  // why), and moves their jobs on (their restart policy takes them elsewhere).
  void FailTasksOnDevices(const std::string& node, const std::map<int32_t, std::string>& sick, Change& c) const;
  // Marks nodes silent past the lease NotReady (in place, with their record
  // in c.batch) and fails the tasks of nodes silent past the tasks'
  // max_disconnect.
  void CheckNodes(Change& c);
  // Cancels the pending jobs whose dependencies can never be met, saying why.
  void CancelUnmet(const std::vector<std::pair<int64_t, std::string>>& unmet, Change& c) const;
  // The checkpoint contract. A task of `j` that ended early threw away its
  // devices' work since the job's last checkpoint (or its start): counted in
  // j.rec.lost_device_ms. A reported checkpoint (the agent's time, never
  // ahead of now) moves j.rec.checkpoint_ms forward.
  static void NoteLostWork(JobEntry& j, const TaskEntry& t, Change& c);
  static void NoteCheckpoint(JobEntry& j, int64_t checkpoint_ms, const std::string& node, Change& c);
  // A task's report of how long its checkpoint took after a stop's signal
  // (or that its window ran out first): the longest is kept, in
  // j.rec.checkpoint_save_ms.
  void NoteCheckpointSave(JobEntry& j, const wire::TaskStatus& s, const std::string& node, Change& c) const;
  // How long a planned stop of `j` waits for its checkpoint before SIGTERM:
  // its spec's grace, or more where its saves took longer (1.5 x the
  // longest + 5 s, at most options().max_checkpoint_window_ms).
  int64_t CheckpointWindowMs(const JobEntry& j) const;
  // Adds one report of `node`'s devices to the jobs running there.
  void SampleDeviceUse(const std::string& node, const std::vector<wire::DeviceUsage>& devices);
  // The "DeviceUse" event of a job that just ended, if anything was sampled.
  static void NoteDeviceUse(const JobEntry& j, Change& c);

  // --- a scheduling pass (engine_pass.cc) ----------------------------------------
  // The snapshot the scheduler decides on: ready nodes (drains and health
  // applied), queues, running jobs with their runs, and the pending jobs
  // that may start (not held, not waiting for dependencies, back-off or
  // their old tasks, within their array's throttle), and why the others
  // are held back. It changes nothing a const method reads (only what it
  // keeps between passes), so the caller may let readers in while it runs.
  PassInput BeginPass(int64_t now);
  // Gives a pass's input back when the pass is over: the next BeginPass
  // fills it again in place (its copies of the jobs keep their memory).
  void RecyclePass(PassInput&& in) { spare_pass_ = std::move(in); }
  // Copies what each bind and move needs (spec, owner, the ports in use),
  // so that MakeTasks can run without the lock.
  BindWork PrepareBinds(const PassInput& in, const core::Decisions& decisions) const;
  // Each item's tasks: ranks, framework env and files, devices, ports.
  void MakeTasks(const PassInput& in, BindWork& work) const;
  // Applies the decisions whose jobs and nodes are as the pass saw them:
  // moves, preemptions, binds. The others are dropped (outcome.stale).
  PassOutcome ApplyPass(const PassInput& in, const core::Decisions& decisions, BindWork&& work, int64_t now) const;
  // Why each job the decisions leave waiting waits, where it differs from
  // what the job shows now; reads only, so readers may run beside it.
  Reasons WaitingReasons(const core::Decisions& decisions, int64_t now) const;
  // Shows them (BeginPass' held_back, WaitingReasons): memory only, so a
  // hundred thousand waiting jobs cost no writes per pass.
  void SetReasons(const Reasons& reasons);
  // Drops what BeginPass keeps between passes (tests: a pass from scratch
  // must see what the incremental one does).
  void ForgetPassViews() { pass_views_.clear(); }

 private:
  // What BeginPass derives from one version of a job, kept until the job
  // changes (AddJob, MutableJob, Prune) or the ready nodes do, so that a
  // pass over a long queue recomputes only what moved. The time enters only
  // where PassRuns evaluates it.
  struct PassView {
    // RunsOf depends on the time beyond what is kept here (tasks of an
    // earlier attempt still stopping, or device speeds looked up on the
    // nodes): it is called at every pass instead.
    bool every_pass = false;
    JobRuns runs;  // the fields that do not move with the time
    // Each task's part of the attained service, in task order (a sum in
    // another order could differ in its last bit, and LAS compares them).
    struct Served {
      double share;
      int64_t start_ms, end_ms;  // end 0: still running
    };
    std::vector<Served> served;
    int64_t first_start_ms = std::numeric_limits<int64_t>::max();  // of the current run's started tasks
    bool unstarted = false;  // the current run has a task assigned but not started
    std::vector<int64_t> earlier_run_ends;
    bool active_tasks = false;               // HasActiveTasks(j, false)
    int64_t retry_at_ms = 0;                 // RetryAtMs
    std::vector<core::TaskPlacement> tasks;  // its active tasks on ready nodes, indexed as the pass's nodes
  };
  PassView MakePassView(const JobEntry& j, const std::map<std::string, int32_t>& node_index) const;
  // RunsOf(j, now), from the view.
  JobRuns PassRuns(const JobEntry& j, const PassView& v, int64_t now) const;

  // One bind's tasks (MakeTasks' body); books their ports in `ports`.
  absl::StatusOr<std::vector<TaskEntry>> TasksOf(const PassInput& in, const BindWork::Item& item,
                                                 PortBook& ports) const;
  void Index(const JobEntry& j);
  void Unindex(const JobEntry& j);

  const EngineOptions options_;
  std::map<int64_t, JobEntry> jobs_;
  std::map<std::string, NodeEntry> nodes_;
  std::map<std::string, core::Queue> queues_;
  std::map<std::string, std::set<int64_t>> active_on_node_;  // node -> jobs with active tasks there
  std::set<int64_t> service_replicas_;                       // jobs in memory of kind service
  std::set<int64_t> with_active_tasks_;
  std::set<int64_t> ended_;  // jobs in memory that ended (Prune's candidates)
  std::map<std::string, QueueLoad> queue_loads_;
  // What each job's active tasks added to its queue's load (the device
  // types as they were then: a node that registers again with other
  // devices does not change what is taken back).
  absl::flat_hash_map<int64_t, core::ResourceAmounts> job_holds_;
  std::map<int64_t, int32_t> depended_on_;         // job id -> open jobs naming it as a dependency
  std::map<int64_t, store::JobState> ended_deps_;  // end states of those that left jobs_
  // Each queue's decayed past usage (memory only: a restarted controller
  // starts it afresh).
  core::UsageHistory usage_history_;
  absl::flat_hash_map<int64_t, PassView> pass_views_;
  std::vector<std::string> pass_nodes_;  // the ready nodes the views index, in order
  size_t last_pass_running_ = 0, last_pass_pending_ = 0;
  PassInput spare_pass_;  // RecyclePass's
};

}  // namespace icos::engine

#endif  // ICOS_ENGINE_ENGINE_H_
