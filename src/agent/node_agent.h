// NodeAgent: one per node. Registers the node with the controller, watches
// its assignments (long poll), launches and stops tasks through TaskLauncher,
// reports their state in heartbeats, enforces time limits, and serves task
// logs to the controller. It speaks the same REST API users do.
//
// An agent restart does not kill running tasks: Start() re-adopts them from
// the launcher's state directory and reports them as before.
//
// Exactly once (docs/reliability.md): the agent starts a task only when the
// controller assigns it, has never seen it run, and the launcher has no
// journal for it; it reports each end in every heartbeat until the
// controller acknowledges it, then forgets it (the launcher's journal too).
// Each successful heartbeat renews the node's lease file; should the node
// lose the controller, the shims stop its tasks before the lease runs out.
// Thread-safety: Start/Stop from one thread; internally three threads
// (watch, heartbeat, log server) share the launcher under a mutex.
#ifndef ICOS_AGENT_NODE_AGENT_H_
#define ICOS_AGENT_NODE_AGENT_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "agent/command_probes.h"
#include "agent/exit_waiter.h"
#include "agent/launcher.h"
#include "agent/task_identity.h"
#include "common/clock.h"
#include "core/model/cluster.h"
#include "protocol/wire.h"

namespace httplib {
class Server;
}

namespace icos::agent {

// One device's answer to a health check.
struct DeviceCheck {
  bool healthy = true;
  std::string reason;  // why unhealthy
  wire::DeviceUsage usage;
};

struct NodeAgentOptions {
  std::string server_url;  // controller, e.g. http://127.0.0.1:7070 or https://...
  std::string token;       // agent (or admin) token
  // CA (PEM) an https:// controller's certificate must chain to; empty: the
  // system's CAs (ApiClientOptions::ca_cert_file).
  std::string ca_cert_file;
  core::Node node;  // what this node offers
  // vendor_index[i]: the index node.devices[i] has for its vendor's runtime
  // (CUDA_VISIBLE_DEVICES etc.); empty means the same as i.
  std::vector<int32_t> vendor_index;
  // device_nodes[i]: the /dev files a task given node.devices[i] may open
  // (its node and its vendor's control nodes); empty: none (simulated). A
  // task may open only its devices' files and the harmless defaults
  // (device_access.h), whatever it sets *_VISIBLE_DEVICES to.
  std::vector<std::vector<std::string>> device_nodes;
  // Whose identity tasks take (task_identity.h).
  IdentityPolicy identity;
  // Where each task's private directory is made (owned by the task's user,
  // 0700; removed once its end is recorded). Empty: /var/tmp/icos-<cluster id>.
  std::string jobs_dir;
  // Where each job's checkpoint directory (ICOS_CHECKPOINT_DIR) is made,
  // <dir>/<user>/job-<id>, kept across the job's attempts; a shared
  // filesystem lets a job resume on another node. Empty: <jobs_dir>-checkpoints.
  std::string checkpoint_dir;
  // The retention rule: a job's checkpoint directory is removed once the
  // job ended this long ago, as the controller says (0: kept until an
  // admin removes it). Looked for every checkpoint_sweep_ms.
  int64_t checkpoint_retention_ms = 7 * 86'400'000LL;
  int64_t checkpoint_sweep_ms = 600'000;
  // How the controller and tasks on other nodes reach this node: rank
  // rendezvous addresses, and the log server's URL unless listen_host names
  // another address. Its interface is the one tasks' collective libraries use.
  std::string address = "127.0.0.1";
  // Where the log server listens: empty for `address` (a node listens where
  // it advertises); a wildcard (0.0.0.0, ::) for every address, advertised
  // as `address`.
  std::string listen_host;
  int listen_port = 0;   // 0: any free port
  std::string work_dir;  // state/, logs/, tasks/ live here
  CgroupOptions cgroups;
  int64_t heartbeat_ms = 1'000;
  // Device health and usage, one entry per node.devices[i]; called every
  // health_ms. Null: devices are never re-checked.
  std::function<std::vector<DeviceCheck>()> check_health;
  int64_t health_ms = 5'000;
  // Slurm-style node health check (agent/health_check.h): run every
  // health_check_interval_ms, killed after health_check_timeout_ms. Empty: none.
  // While it fails the node registers as unhealthy with the program's reason
  // and gets no new work; it is run once before the first registration.
  std::string health_check_program;
  int64_t health_check_interval_ms = 60'000;
  int64_t health_check_timeout_ms = 60'000;
  int64_t watch_ms = 20'000;
};

class NodeAgent {
 public:
  explicit NodeAgent(NodeAgentOptions options, icos::Clock* clock = icos::RealClock::Default());
  ~NodeAgent();

  // Adopts surviving tasks, starts the log server, registers (retrying until
  // the controller answers or Stop), then starts watching and heartbeating.
  absl::Status Start();
  // Stops the agent's threads. Running tasks keep running (a new agent adopts them).
  void Stop();
  // Stops every task (SIGTERM, grace, SIGKILL) and waits up to grace_ms; for `icos up` on exit.
  void StopAllTasks(int64_t grace_ms);

  // Where the controller fetches logs: http://ADDRESS:PORT, or the listen host when it names one.
  std::string agent_url() const;
  // The address this node advertises (NodeAgentOptions::address).
  const std::string& address() const { return options_.address; }

 private:
  struct Known {
    wire::TaskStatus status;
    int64_t started_ms = 0;
    int64_t time_limit_s = 0;
    // The job's checkpoint contract (wire::Assignment), for the stops the
    // agent itself decides: the time limit.
    CheckpointFirst checkpoint;
    bool stopping = false;
    std::string stop_reason;
    // What the launch had to say (whose user it ran as, limits not
    // applied): kept in the end's reason too, since a short task's start
    // and end often go out in one report.
    std::string launch_note;
    // A stop that asked for a checkpoint first, once the task ended
    // (TaskExit's fields): how long the checkpoint took is reported from them.
    int64_t checkpoint_asked_ms = 0;
    int64_t checkpoint_window_ms = 0;
    bool checkpoint_window_ran_out = false;
  };

  // Re-checks device health; on a change re-registers the node so the
  // controller stops scheduling on a sick device and moves its tasks.
  void CheckHealth();
  // Runs the health-check program now; on a changed verdict re-registers
  // (unless `register_change` is false: the first run, before registering).
  void RunHealthCheck(bool register_change);
  void HealthCheckLoop();
  void WatchLoop();
  void BeatLoop();
  // Registers with the node's credential, or the join token when it has
  // none (or the credential was revoked), keeping a credential it is given.
  absl::Status Register();
  absl::Status RegisterWith(const std::string& token);
  // What the agent speaks with: the node's credential, else the join token.
  std::string Token() const;
  std::string CredentialPath() const;
  // Takes the cluster id the controller answered a registration with: the
  // first one (checked against the work directory's), later ones must match.
  absl::Status AdoptClusterId(const std::string& id);
  void Reconcile(uint64_t version, const std::vector<wire::Assignment>& tasks);
  // Forgets the acknowledged ends (REQUIRES mu_).
  void ForgetAcknowledged(const wire::HeartbeatReply& reply);
  // Records a contact with the controller that began at `boot_ms`
  // (shim::BootTimeMs) in the lease file the shims read.
  void RenewLease(int64_t boot_ms);
  // Starts new tasks, several at once (Reconcile's, without mu_).
  void LaunchAll(const std::vector<const wire::Assignment*>& tasks);
  static constexpr size_t kParallelLaunches = 8;
  // How often BeatLoop samples the tasks' resident memory (TaskLauncher::SampleMemory).
  static constexpr int64_t kMemorySampleMs = 1'000;
  // Starts a task; takes mu_ only at its end.
  void Launch(const wire::Assignment& a);
  // The environment a task of `a` runs with (and its command probes).
  std::map<std::string, std::string> TaskEnvironment(const wire::Assignment& a, const TaskIdentity& who,
                                                     const std::string& task_dir, const std::string& checkpoints) const;
  // Has a service replica's command probes run in its context (command_probes.h).
  void StartProbes(const wire::Assignment& a, const TaskIdentity& who, const std::string& workdir,
                   const std::map<std::string, std::string>& env, int64_t started_ms);
  // StartProbes for a running replica this agent process did not launch.
  void ResumeProbes(const wire::Assignment& a, const Known& k);
  // Runs the command probes as they fall due; a changed outcome wakes the heartbeat.
  void ProbeLoop();
  // Where tasks' directories go (options_.jobs_dir or its default).
  std::string JobsDir() const;
  // The device files the task may open: the defaults and its devices' nodes.
  absl::StatusOr<std::vector<DeviceRule>> DeviceRulesFor(const wire::Assignment& a) const;
  // Records tasks that ended; true if any did (or a launch happened) since the last call.
  bool CollectExits();
  // Once an ended task's stop had asked for a checkpoint: how long the
  // checkpoint took from the signal to its marker, or that the window ran
  // out first (wire::TaskStatus::checkpoint_save_ms).
  static void NoteCheckpointSave(Known& k);
  // <checkpoint_dir>, or <jobs_dir>-checkpoints.
  std::string CheckpointRoot() const;
  // The retention rule: removes the checkpoint directories of jobs that
  // ended checkpoint_retention_ms ago or more (the controller says which
  // have ended, and when). A job it does not know of is kept.
  void SweepCheckpoints();
  void CheckpointSweepLoop();

  const NodeAgentOptions options_;
  icos::Clock* const clock_;
  std::string log_key_;
  // This process's heartbeats in order (Controller::Heartbeat): a random id
  // of the process and the beats it sent.
  const std::string beat_instance_;
  int64_t beat_seq_ = 0;  // BeatLoop only
  // From the first registration, before the loops start; never changes
  // after (AdoptClusterId refuses another), so the loops read it freely.
  std::string cluster_id_;
  std::mutex checkpoint_claim_mu_;
  bool checkpoint_root_claimed_ = false;  // ClaimCheckpointRoot done (guarded by checkpoint_claim_mu_)
  mutable std::mutex token_mu_;
  std::string credential_;  // the node's own credential; "" until it has one (guarded by token_mu_)
  std::unique_ptr<TaskLauncher> launcher_;
  std::unique_ptr<httplib::Server> logs_;
  int log_port_ = 0;

  std::mutex mu_;
  std::map<std::string, Known> known_;  // task id -> what we know
  // Acknowledged and forgotten task ids -> the assignment version from
  // which watch answers no longer list them. An older answer (in flight
  // while the end was acknowledged) must not start such a task again.
  std::map<std::string, uint64_t> forgotten_;
  uint64_t last_version_ = 0;  // of the last watch answer
  std::atomic<bool> stop_{false};
  core::Node node_;  // options_.node with current device health (guarded by mu_)
  int64_t last_health_ms_ = 0;
  std::vector<wire::DeviceUsage> usage_;  // from the last health check (guarded by mu_)
  bool usage_fresh_ = false;              // not yet sent (guarded by mu_)
  std::string unhealthy_reason_;          // the health-check program's verdict (guarded by mu_)
  bool launched_ = false;                 // a launch since the last report (guarded by mu_)
  bool stopping_all_ = false;             // StopAllTasks began (guarded by mu_)
  int64_t stop_all_grace_ms_ = 0;         // its grace (guarded by mu_)
  ExitWaiter exits_;                      // wakes BeatLoop at a launch or a shim's exit
  std::unique_ptr<CommandProbes> probes_;
  std::thread watch_, beat_, serve_, health_check_, checkpoint_sweep_, probe_;
};

}  // namespace icos::agent

#endif  // ICOS_AGENT_NODE_AGENT_H_
