// JSON forms of what crosses the wire between controller, agents and clients:
// node descriptions, task assignments and task status reports. One definition
// used by both ends, so the two can never disagree on a field name.
#ifndef ICOS_PROTOCOL_WIRE_H_
#define ICOS_PROTOCOL_WIRE_H_

#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "core/model/cluster.h"
#include "core/model/job.h"
#include "core/model/queue.h"

namespace icos::wire {

// Stands for the task's own directory on its node in assignment env values
// and file paths; the agent substitutes the real path. Absolute so framework
// adapters that need an absolute directory accept it.
inline constexpr char kTaskDirPlaceholder[] = "/${ICOS_TASK_DIR}";

// The stable name of one task attempt: "j<job>-g<group>-r<replica>-a<attempt>".
std::string TaskId(int64_t job, int32_t group, int32_t replica, int32_t attempt);

nlohmann::json NodeToJson(const core::Node& node);
// InvalidArgument naming the bad field.
absl::StatusOr<core::Node> NodeFromJson(const nlohmann::json& j);

nlohmann::json PlacementToJson(const core::TaskPlacement& p);
absl::StatusOr<core::TaskPlacement> PlacementFromJson(const nlohmann::json& j);

// What an agent must run (or stop) on its node.
// A service replica's probe that its agent runs (api::ProbeSpec kCommand):
// `argv` in the replica's context every period_ms once initial_delay_ms has
// passed since it started, killed after timeout_ms. The agent only runs it
// and reports each outcome (ProbeOutcome); the controller's prober judges.
struct CommandProbe {
  std::string kind;  // "readiness", "liveness" or "startup"
  std::vector<std::string> argv;
  int64_t initial_delay_ms = 0;
  int64_t period_ms = 5'000;
  int64_t timeout_ms = 1'000;
  bool operator==(const CommandProbe&) const = default;
};

// The probe kinds, as CommandProbe::kind names them; true for one of them.
bool IsProbeKind(const std::string& kind);

// One run of a CommandProbe, as its agent reports it. `seq` counts the
// runs of this probe by this agent process (the heartbeat's instance), so
// a report sent again after a lost answer is not counted twice.
struct ProbeOutcome {
  std::string kind;
  int64_t seq = 0;
  bool passed = false;
  std::string message;  // why it failed: its first line of output, or how it ended
  bool operator==(const ProbeOutcome&) const = default;
};

// How many outcomes of one probe a report may carry: the runs of about two
// minutes at the fastest period. Older ones are dropped by the agent (only
// the last runs in a row decide anything, and thresholds are at most 100).
inline constexpr size_t kMaxProbeOutcomes = 128;

struct Assignment {
  std::string task_id;
  int64_t job_id = 0;
  int32_t group = 0, replica = 0, attempt = 0;
  bool run = true;  // false: stop it if it runs
  std::vector<std::string> argv;
  std::string workdir;
  std::map<std::string, std::string> env;    // framework, visible devices, user env
  std::map<std::string, std::string> files;  // relative path in the task dir -> content (hostfile, rank table)
  int64_t cpu_milli = 0, memory_mib = 0;
  std::vector<int32_t> numa_nodes;
  std::vector<int32_t> devices;  // device indices on the node
  std::string vendor;            // of those devices
  // TCP ports the task holds on its node: its rank's port, and for the first
  // rank also the job's rendezvous port (engine/port_book.h).
  std::vector<int32_t> ports;
  // A service replica's own port among them (ICOS_PORT), which its agent
  // checks is free before starting it; 0: not a service's.
  int32_t serve_port = 0;
  int64_t time_limit_s = 0;
  int64_t grace_ms = 10'000;
  // Whose task it is: the job's user, the Unix account it runs as on the
  // node; uid/gid >= 0 when the submitting token pinned an identity instead.
  std::string user;
  int64_t uid = -1, gid = -1;
  // How long the task may run while its node cannot reach the controller:
  // the agent's shim stops it before that much silence, and only then may
  // the controller run it elsewhere (docs/reliability.md). 0: no limit.
  int64_t max_disconnect_ms = 0;
  // Set by the controller when it sends the assignment: it has seen the
  // task run. An agent with no journal for such a task must not start it
  // (its journal was lost; the task is lost, not new).
  bool started = false;
  // The checkpoint contract (api::CheckpointSpec): a planned stop (a run=false
  // with checkpoint_first, the time limit, the node shutting down) first
  // sends checkpoint_signal and waits checkpoint_grace_ms for the task to
  // end before SIGTERM. 0: the job does not checkpoint.
  int32_t checkpoint_signal = 0;
  int64_t checkpoint_grace_ms = 0;
  bool checkpoint_first = false;  // set with run=false when the job will run again
  // A service replica's probes its agent runs (none for other tasks).
  std::vector<CommandProbe> command_probes;
};

nlohmann::json AssignmentToJson(const Assignment& a);
absl::StatusOr<Assignment> AssignmentFromJson(const nlohmann::json& j);

// An agent's report on one task it knows.
struct TaskStatus {
  std::string task_id;
  std::string state;  // "Running", "Succeeded", "Failed", "Killed"
  int32_t exit_code = 0;
  std::string reason;
  int64_t start_ms = 0, end_ms = 0;
  // The task ended because its node shut down, not by anything the job did:
  // the controller requeues the job instead of counting a failure.
  bool requeue = false;
  // When the task last reported a finished checkpoint (icos checkpoint-done),
  // Unix ms by the agent's clock; 0: never.
  int64_t checkpoint_ms = 0;
  // After a planned stop that asked for a checkpoint first: how long the
  // checkpoint took from the signal (0: unknown), or, with checkpoint_cut,
  // the window it had and did not finish in.
  int64_t checkpoint_save_ms = 0;
  bool checkpoint_cut = false;
  // An ended task's peak memory (store::TaskRecord::max_rss_kib); 0: unknown.
  int64_t max_rss_kib = 0;
  // Outcomes of its command probes not yet acknowledged, oldest first.
  std::vector<ProbeOutcome> probes;
};

nlohmann::json TaskStatusToJson(const TaskStatus& s);

// The controller's answer to a heartbeat.
struct HeartbeatReply {
  // Reported task ids whose end the controller has recorded durably (or
  // that it no longer tracks): the agent may forget them.
  std::vector<std::string> acked;
  // The node's assignment version once those ends were recorded: a watch
  // answer older than this may still list them.
  uint64_t version = 0;
  int64_t heartbeat_ms = 0;  // the pace the controller asks for
  int64_t lease_ms = 0;      // the node's lease (docs/reliability.md)
};

nlohmann::json HeartbeatReplyToJson(const HeartbeatReply& r);
absl::StatusOr<HeartbeatReply> HeartbeatReplyFromJson(const nlohmann::json& j);
absl::StatusOr<TaskStatus> TaskStatusFromJson(const nlohmann::json& j);

// What one device of a node is doing, as the agent's last health check read
// it from the vendor library; heartbeats carry one per node device, in order.
struct DeviceUsage {
  int32_t utilization_pct = -1;  // compute, 0..100; -1 unknown
  int64_t memory_used_mib = -1;  // -1 unknown
  bool operator==(const DeviceUsage&) const = default;
};

nlohmann::json DeviceUsageToJson(const DeviceUsage& u);
// Out-of-range figures (utilisation above 100, negative memory) are errors.
absl::StatusOr<DeviceUsage> DeviceUsageFromJson(const nlohmann::json& j);

// Queues as users write them: devices and CPU in whole units (2.5 = 2,500
// milli), memory in MiB: {"name": "team-a", "parent": "org", "weight": 2,
// "guaranteed": {"nvidia": 8, "cpu": 64}, "limit": {"devices": 16},
// "lend_idle": true, "may_borrow": true}.
nlohmann::json QueueToJson(const core::Queue& q);
// Amounts in the users' units (as QueueToJson writes guaranteed and limit).
nlohmann::json AmountsToJson(const core::ResourceAmounts& amounts);
absl::StatusOr<core::Queue> QueueFromJson(const nlohmann::json& j);

// Parses "j<job>-g<group>-r<replica>-a<attempt>"; false if malformed.
bool ParseTaskId(const std::string& id, int64_t* job, int32_t* group, int32_t* replica, int32_t* attempt);

}  // namespace icos::wire

#endif  // ICOS_PROTOCOL_WIRE_H_
