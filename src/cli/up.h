// `icos up` (controller + local agent in one process), `icos server`
// (controller only) and `icos agent` (a node joins).
#ifndef ICOS_CLI_UP_H_
#define ICOS_CLI_UP_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>

#include "absl/status/statusor.h"
#include "agent/node_agent.h"
#include "core/model/cluster.h"

namespace icos::cli {

struct ServerFlags {
  std::string data_dir;  // default $ICOS_HOME
  // Where the controller keeps its state: empty for the embedded SQLite file
  // in data_dir, or a PostgreSQL URI (postgresql://...). Tokens stay in data_dir.
  std::string store;
  std::string host = "127.0.0.1";
  int port = 7070;
  // The URL other machines reach this controller's API at, recorded when it
  // leads so that standbys can name the leader. Default http(s)://host:port.
  std::string advertise_url;
  // HTTPS: the certificate (chain) and private key the API serves, PEM;
  // both or neither. Without them the API is plain HTTP.
  std::string tls_cert_file, tls_key_file;
  // `icos up --tls`: make a CA and a server certificate in <data dir>/tls on
  // first start (cli/tls_files.h) and serve with them. Excludes the files above.
  bool tls = false;
  // The CA clients on this machine trust the API's certificate by: written
  // to config.json as ca_cert, and (icos up) given to the local agent. With
  // `tls`, <data dir>/tls/ca.crt.
  std::string ca_cert;
  // A policy of core/policy_presets.h; `order`/`placement`, when set, override its.
  std::string policy = "default";
  std::string order, placement;
  // A job stopped this often in the last hour is not preempted again (0: no cap).
  int32_t max_interruptions_per_hour = 0;
  // Webhooks: hosts users' jobs may notify (controller::WebhookOptions::allow),
  // and a file holding the key their messages are signed with.
  std::vector<std::string> notify_allow;
  std::string notify_secret_file;
  double rate_limit = 5'000;                // requests/s per token; 0: none
  bool metrics_auth = false;                // GET /metrics needs a token
  int64_t utilisation_step_s = 15;          // utilisation history resolution
  bool learn_runtimes = true;               // learned run-time estimates for jobs that give none
  int64_t node_lease_s = 60;                // ControllerOptions::node_lease_ms
  int64_t max_checkpoint_window_s = 1'800;  // ControllerOptions::max_checkpoint_window_ms
  int32_t max_job_tasks = 4'096;            // api::SpecLimits::max_job_tasks
  int64_t max_job_mib = 48;                 // api::SpecLimits::max_assignment_bytes, in MiB
  // Overload protection (controller::HttpServerOptions, net::Limits).
  int64_t max_connections = 20'000;
  int64_t max_connections_per_address = 512;
  double header_timeout_s = 10;
  int api_threads = 32;
  int agent_threads = 16;
  // The service gateway's port on `host` (gateway/gateway.h); 0: none.
  int gateway_port = 0;
};

struct AgentFlags {
  std::string server;   // for `icos agent`
  std::string ca_cert;  // CA of an https:// server (NodeAgentOptions::ca_cert_file)
  std::string token;
  std::string token_file;  // the token's file, instead of `token`
  std::string node_name;   // default: hostname
  // The address other machines reach this node at (rendezvous, logs).
  // Empty: the one its traffic to the (first) controller leaves from.
  std::string address;
  // Where the log server listens, HOST[:PORT]: empty for the address (any
  // free port); 0.0.0.0 for every address.
  std::string listen;
  std::string devices;    // "nvidia/A100-80G:8,ascend/910B:8" sim devices
  std::string inventory;  // sim inventory JSON (src/devices/sim_plugin.h)
  std::string nvml_library = "libnvidia-ml.so.1";
  std::string dcmi_library = "libdcmi.so";
  std::string cndev_library = "libcndev.so";
  std::string rocm_smi_library = "librocm_smi64.so";
  std::string work_dir;    // default: <data_dir>/agent-<node>
  double cpus = 0;         // 0: this machine's
  int64_t memory_mib = 0;  // 0: this machine's
  std::string labels;      // "zone=a,rack=r1"
  bool no_cgroups = false;
  // Tasks whose owner is root may run (a root agent); `icos up` allows it
  // when started by root, `icos agent` only with --allow-root-tasks.
  bool allow_root_tasks = false;
  std::string foreign_tasks = "run-as-agent";   // a non-root agent: run-as-agent | refuse
  std::string jobs_dir;                         // tasks' private directories; default /var/tmp/icos-<cluster>
  std::string checkpoint_dir;                   // jobs' checkpoint directories; default <jobs_dir>-checkpoints
  int64_t checkpoint_retention_s = 7 * 86'400;  // NodeAgentOptions::checkpoint_retention_ms; 0: kept
  int64_t checkpoint_sweep_s = 600;             // NodeAgentOptions::checkpoint_sweep_ms
  std::string health_check_program;             // Slurm-style HealthCheckProgram; empty: none
  double health_check_interval_s = 60;
  int32_t max_device_temperature_c = 0;  // a hotter device is unhealthy; 0: no limit
};

int RunUp(const ServerFlags& server, const AgentFlags& agent, std::ostream& out, std::ostream& err);

// Stop signals of the long-running commands (up, server, agent, gateway):
// after CatchStopSignals, SIGINT and SIGTERM end SleepUnlessStopped's
// sleep of up to `ms` early, and it returns false from then on.
void CatchStopSignals();
bool SleepUnlessStopped(int64_t ms);
// The first line of a token file (--token-file), trimmed; "" when it has none.
std::string ReadTokenFile(const std::string& path);
int RunServer(const ServerFlags& server, std::ostream& out, std::ostream& err);
int RunAgent(const AgentFlags& agent, std::ostream& out, std::ostream& err);

// The node this machine offers: its CPUs, memory and NUMA nodes, every
// device the vendor plugins find (NVML, a sim inventory), plus quick sim
// devices from --devices; flags override CPUs and memory.
struct LocalNodeInfo {
  core::Node node;
  // For node.devices[i], the index its vendor's runtime uses (what goes into
  // CUDA_VISIBLE_DEVICES and friends).
  std::vector<int32_t> vendor_index;
  // For node.devices[i], the /dev files a task given it must be allowed to
  // open (its own node and its vendor's shared control nodes); empty for a
  // simulated device.
  std::vector<std::vector<std::string>> device_nodes;
  // Current health and usage of node.devices (same order); from the vendor plugins.
  std::function<std::vector<agent::DeviceCheck>()> check_health;
};
absl::StatusOr<LocalNodeInfo> LocalNode(const AgentFlags& flags);

}  // namespace icos::cli

#endif  // ICOS_CLI_UP_H_
