// The single `icos` binary. Subcommands parse their flags here (CLI11) and
// hand plain options structs to the libraries.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/checkpoint_dir.h"
#include "cli/client.h"
#include "cli/demo.h"
#include "cli/gateway_command.h"
#include "cli/sim_command.h"
#include "cli/tls_files.h"
#include "cli/up.h"
#include "common/log.h"
#include "core/policy/order.h"
#include "core/policy/placement.h"
#include "core/policy_presets.h"

namespace {

// /proc/<pid>/cmdline is readable by every local user, and the shims the
// agent forks carry its command line: overwrite the value of --token in
// place once it is parsed, so no secret stays there.
void HideSecretsFromCommandLine(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    char* arg = argv[i];
    char* value = nullptr;
    if (std::strcmp(arg, "--token") == 0 && i + 1 < argc) {
      value = argv[++i];
    } else if (std::strncmp(arg, "--token=", 8) == 0) {
      value = arg + 8;
    }
    if (value != nullptr && *value != '\0') {
      std::memset(value, 'x', std::strlen(value));
    }
  }
}

}  // namespace

// `icos checkpoint-done`: touches the marker the node agent watches in the
// task's own directory (agent/checkpoint_dir.h). Local, so a task needs no
// credential and no route to the controller to report a checkpoint.
int CheckpointDone(std::ostream& err) {
  const char* dir = std::getenv("ICOS_TASK_DIR");
  if (dir == nullptr || *dir == '\0') {
    err << "icos checkpoint-done: ICOS_TASK_DIR is not set; run it from inside an icos task\n";
    return 2;
  }
  const std::string marker = absl::StrCat(dir, "/", icos::agent::kCheckpointDoneFile);
  // Never through a link, never blocking on a FIFO left in its place.
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd < 0 || ::futimens(fd, nullptr) != 0) {
    err << "icos checkpoint-done: cannot touch " << marker << ": " << std::strerror(errno) << "\n";
    if (fd >= 0) ::close(fd);
    return 1;
  }
  ::close(fd);
  return 0;
}

int main(int argc, char** argv) {
  // What icos writes (its store, tokens, journals, logs) is its own; tasks
  // get the usual 022 back (agent/shim.cc).
  umask(077);
  CLI::App app{"icos: one computer out of a cluster of mixed AI accelerators"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("icos 0.1.0"));

  icos::cli::ServerFlags server;
  icos::cli::AgentFlags agent;
  auto server_flags = [&server](CLI::App* sub) {
    sub->add_option("--data-dir", server.data_dir,
                    "where the database and tokens live (default: $ICOS_HOME or ~/.icos)");
    sub->add_option("--store", server.store,
                    "PostgreSQL URI for the controller's state, e.g. 'postgresql:///icos?host=/run/postgresql' "
                    "(default: SQLite in the data directory)");
    sub->add_option("--host", server.host, "address the API listens on");
    sub->add_option("--port", server.port, "API port")->check(CLI::Range(0, 65535));
    sub->add_option("--gateway-port", server.gateway_port,
                    "serve every service's ready replicas at http://HOST:PORT/<service>/... (docs/services.md); "
                    "anyone who reaches the port reaches the services, as through an ingress (default: off)")
        ->check(CLI::Range(0, 65535));
    sub->add_option("--advertise-url", server.advertise_url,
                    "URL other machines reach this controller's API at, shown to standbys and in the join "
                    "hint (default: http://HOST:PORT, https:// with TLS; for --host 0.0.0.0 the address of this "
                    "machine's default route)");
    // Both or neither: up.cc's CheckTlsFlags says so in words.
    sub->add_option("--tls-cert", server.tls_cert_file,
                    "serve the API over HTTPS with this PEM certificate (chain); with --tls-key (`icos tls init` "
                    "makes both; docs/deploy.md)");
    sub->add_option("--tls-key", server.tls_key_file, "the PEM private key of --tls-cert");
    sub->add_option("--ca-cert", server.ca_cert,
                    "the CA that signed --tls-cert: written to the data directory's config.json for the CLI"
                    " (and, for icos up, trusted by the local agent)");
    sub->add_option("--policy", server.policy,
                    absl::StrCat("scheduling policy, as `icos sim --policy` means it: ",
                                 absl::StrJoin(icos::core::PolicyPresetNames(), ", "),
                                 "; NAME-learned with learned runtime estimates (default: default)"))
        ->check([](const std::string& name) {
          auto preset = icos::core::PolicyPreset(name);
          return preset.ok() ? std::string() : std::string(preset.status().message());
        });
    sub->add_option("--order", server.order, "scheduling order, overriding the policy's")
        ->check(CLI::IsMember(icos::core::OrderPolicyNames()));
    sub->add_option("--placement", server.placement, "node scoring, overriding the policy's")
        ->check(CLI::IsMember(icos::core::NodeScorerNames()));
    sub->add_option("--rate-limit", server.rate_limit, "API requests per second per token (0: no limit)")
        ->check(CLI::Range(0.0, 1e9));
    sub->add_flag("--metrics-auth", server.metrics_auth,
                  "GET /metrics needs a bearer token (default: open, as Prometheus expects)");
    sub->add_option("--utilisation-step", server.utilisation_step_s, "seconds between utilisation history samples")
        ->check(CLI::Range(int64_t{1}, int64_t{86'400}));
    sub->add_option("--node-lease", server.node_lease_s,
                    "seconds a node may be silent before it gets no new work; its tasks stop there and may run "
                    "elsewhere after their job's max_disconnect, this by default (docs/reliability.md)")
        ->check(CLI::Range(int64_t{10}, int64_t{86'400}));
    sub->add_option("--max-job-tasks", server.max_job_tasks,
                    "most tasks (replicas across task groups) one job may have (docs/api.md, Limits)")
        ->check(CLI::Range(1, 1'000'000));
    sub->add_option("--max-job-mib", server.max_job_mib,
                    "most MiB of commands, environment and rank lists one job's tasks may carry in all")
        ->check(CLI::Range(int64_t{1}, int64_t{65'536}));
    sub->add_option("--max-interruptions-per-hour", server.max_interruptions_per_hour,
                    "a job preempted (or moved, restarted) this often in the last hour is not preempted again "
                    "(0: no cap); queues set a minimum run time before preemption with min_run_s")
        ->check(CLI::Range(0, 1'000));
    sub->add_option("--max-checkpoint-window", server.max_checkpoint_window_s,
                    "most seconds a planned stop waits for a checkpoint when a job's earlier checkpoints took "
                    "longer than its checkpoint grace (never less than that grace)")
        ->check(CLI::Range(int64_t{1}, int64_t{86'400}));
    sub->add_option("--notify-allow", server.notify_allow,
                    "hosts jobs may send webhooks to (notify:): HOST, HOST:PORT, *.DOMAIN or * (repeat or "
                    "comma-separate; default none: job webhooks are refused; queue webhooks are admins' own)")
        ->delimiter(',');
    sub->add_option("--notify-secret-file", server.notify_secret_file,
                    "sign webhook messages with the key in this file (header Icos-Signature: sha256=HMAC of the "
                    "body)");
    sub->add_flag("!--no-learned-estimates", server.learn_runtimes,
                  "do not estimate run times from finished jobs (jobs without runtime_estimate then use their "
                  "time_limit, or none)");
    // Overload protection (docs/api.md "Limits"): connection caps, the
    // header deadline and the worker pools.
    sub->add_option("--max-connections", server.max_connections,
                    "open API connections in all; past it idle or slow ones are evicted (also kept below the "
                    "open-file limit)")
        ->check(CLI::Range(int64_t{16}, int64_t{10'000'000}));
    sub->add_option("--max-connections-per-address", server.max_connections_per_address,
                    "open API connections per client address (raise it where many agents share one, e.g. NAT)")
        ->check(CLI::Range(int64_t{4}, int64_t{10'000'000}));
    sub->add_option("--header-timeout", server.header_timeout_s,
                    "seconds a client has to send a request's whole header section")
        ->check(CLI::Range(0.1, 3'600.0));
    sub->add_option("--api-threads", server.api_threads, "worker threads for users' API calls")
        ->check(CLI::Range(1, 1'024));
    sub->add_option("--agent-threads", server.agent_threads,
                    "worker threads reserved for node agents (register, heartbeat, watch)")
        ->check(CLI::Range(1, 1'024));
  };
  auto agent_flags = [&agent](CLI::App* sub) {
    sub->add_option("--node-name", agent.node_name, "node name (default: hostname)");
    sub->add_option("--address", agent.address,
                    "address the controller and other nodes reach this node at (default: the one this machine's "
                    "traffic to the controller leaves from)");
    sub->add_option("--listen", agent.listen,
                    "HOST[:PORT] the agent's log server listens on (default: the --address, any free port; "
                    "0.0.0.0 for every address)");
    sub->add_option("--devices", agent.devices, "simulated devices, e.g. nvidia/A100-80G:8,ascend/910B:8");
    sub->add_option("--inventory", agent.inventory, "sim device inventory JSON (see src/devices/testdata)");
    sub->add_option("--nvml-lib", agent.nvml_library, "NVIDIA management library to load");
    sub->add_option("--dcmi-lib", agent.dcmi_library, "Huawei Ascend DCMI library to load");
    sub->add_option("--cndev-lib", agent.cndev_library, "Cambricon CNDev library to load");
    sub->add_option("--rocm-smi-lib", agent.rocm_smi_library, "ROCm SMI library to load (AMD, or Hygon's build)");
    sub->add_option("--work-dir", agent.work_dir, "where task logs and state live");
    sub->add_option("--cpus", agent.cpus, "CPUs to offer (default: all)");
    sub->add_option("--memory-mib", agent.memory_mib, "memory to offer in MiB (default: all)");
    sub->add_option("--labels", agent.labels, "node labels, e.g. zone=a,rack=r1");
    sub->add_flag("--no-cgroups", agent.no_cgroups, "run tasks without cgroups");
    sub->add_flag("--allow-root-tasks", agent.allow_root_tasks,
                  "run tasks whose owner is root (icos up run by root allows it for its own agent)");
    sub->add_option("--foreign-tasks", agent.foreign_tasks,
                    "an agent that is not root: run other users' tasks as itself, saying so, or refuse them")
        ->check(CLI::IsMember({"run-as-agent", "refuse"}));
    sub->add_option("--jobs-dir", agent.jobs_dir,
                    "where each task gets its private directory (default /var/tmp/icos-<cluster id>)");
    sub->add_option("--checkpoint-dir", agent.checkpoint_dir,
                    "where each job's checkpoint directory (ICOS_CHECKPOINT_DIR, kept across its attempts) is made, "
                    "as <dir>/<user>/job-<id>: a shared filesystem lets jobs resume on another node; one per "
                    "cluster (default <jobs-dir>-checkpoints)");
    sub->add_option("--checkpoint-retention", agent.checkpoint_retention_s,
                    "remove a job's checkpoint directory this many seconds after the job ended (default 7 days; "
                    "0: keep them until an admin removes them)")
        ->check(CLI::Range(int64_t{0}, int64_t{100} * 365 * 86'400));
    sub->add_option("--checkpoint-sweep-interval", agent.checkpoint_sweep_s,
                    "seconds between looks for checkpoint directories past their retention")
        ->check(CLI::Range(int64_t{1}, int64_t{86'400}));
    sub->add_option("--health-check-program", agent.health_check_program,
                    "run this periodically; a non-zero exit or timeout keeps the node out of scheduling, its first "
                    "output line is the reason (like Slurm's HealthCheckProgram)")
        ->check(CLI::ExistingFile);
    sub->add_option("--max-device-temperature", agent.max_device_temperature_c,
                    "a device hotter than this (deg C) is unhealthy: no new work, its tasks fail over (0: no limit)")
        ->check(CLI::Range(0, 200));
    sub->add_option("--health-check-interval", agent.health_check_interval_s,
                    "seconds between health checks (default 60; also the check's timeout, at most 60 s)")
        ->check(CLI::Range(0.1, 86400.0));
  };

  CLI::App* up = app.add_subcommand("up", "Start a controller and a local agent (a one-machine cluster)");
  server_flags(up);
  agent_flags(up);
  up->add_flag("--tls", server.tls,
               "serve HTTPS with a CA and server certificate made in <data dir>/tls on first start (kept after); "
               "the CLI's config.json and the join command name the CA");
  CLI::App* server_cmd = app.add_subcommand("server", "Start a controller only");
  server_flags(server_cmd);
  CLI::App* agent_cmd = app.add_subcommand("agent", "Join this machine to a cluster as a node");
  agent_cmd
      ->add_option("--server", agent.server,
                   "controller API, e.g. http://10.0.0.1:7070; with standby controllers, all of them, "
                   "comma-separated (the agent follows whichever leads)")
      ->required();
  agent_cmd->add_option("--ca-cert", agent.ca_cert,
                        "CA certificate (PEM) the controller's https:// certificate must chain to: the ca.crt of "
                        "`icos tls init` or <data dir>/tls/ca.crt of `icos up --tls` (default: the system's CAs)");
  CLI::Option* token_opt =
      agent_cmd->add_option("--token", agent.token, "agent token (agent.token in the server's data directory)");
  agent_cmd
      ->add_option("--token-file", agent.token_file,
                   "file whose first line is the agent token (keeps it out of `ps`; the systemd unit uses "
                   "/etc/icos/agent.token)")
      ->check(CLI::ExistingFile)
      ->excludes(token_opt);
  agent_flags(agent_cmd);

  icos::cli::DemoOptions demo;
  CLI::App* demo_cmd =
      app.add_subcommand("demo", "Schedule a generated mixed-vendor cluster with icos::core and print every decision");
  demo_cmd->add_option("--nodes", demo.nodes, "nodes in the generated cluster")->check(CLI::Range(1, 100'000));
  demo_cmd->add_option("--jobs", demo.jobs, "pending jobs to schedule")->check(CLI::Range(0, 1'000'000));
  demo_cmd->add_option("--running", demo.running, "jobs already running")->check(CLI::Range(0, 1'000'000));
  demo_cmd->add_option("--seed", demo.seed, "random seed of the workload");
  demo_cmd->add_option("--order", demo.order, "order policy")->check(CLI::IsMember(icos::core::OrderPolicyNames()));
  demo_cmd->add_option("--placement", demo.placement, "node scoring")
      ->check(CLI::IsMember(icos::core::NodeScorerNames()));
  demo_cmd->add_option("-o,--output", demo.output, "table or json")->check(CLI::IsMember({"table", "json"}));

  icos::cli::SimFlags sim;
  CLI::App* sim_cmd =
      app.add_subcommand("sim", "Replay a trace on a simulated cluster through icos::core and compare policies");
  sim_cmd->add_option("--trace", sim.trace,
                      "philly[:CSV] | openb[:DIR|PODS.csv] | gavel[:DIR] | synthetic[:RATE[:single][:uniform]]");
  sim_cmd->add_option("--cluster", sim.cluster,
                      "e.g. 36xV100,36xP100,36xK80 (nodes of 4), 250x8xV100, or openb[:CSV] (default: by trace)");
  sim_cmd->add_option(
      "--policy", sim.policy,
      absl::StrCat(
          "comma-separated: ", absl::StrJoin(icos::core::PolicyPresetNames(), ", "),
          " (openb: fgd, bestfit, gpupacking, random, dotprod, gpuclustering, binpack, spread); NAME-learned uses the "
          "learned runtime estimator"));
  sim_cmd->add_option("--seed", sim.seed, "random seed (synthetic trace)");
  sim_cmd->add_option("--jobs", sim.jobs, "use the first N jobs (synthetic: generate N; default 1000)")
      ->check(CLI::Range(int64_t{0}, int64_t{100'000'000}));
  sim_cmd->add_flag("--json", sim.json, "one JSON object per policy and line");
  sim_cmd->add_option("--out", sim.out_dir,
                      "directory for summary.json, <policy>_utilisation.csv, <policy>_jct_cdf.csv, <policy>_jobs.csv "
                      "and SVG plots (gnuplot)");
  sim_cmd->add_option("--traces", sim.traces_dir, "trace directory (default: $ICOS_TRACES or ../shared/data/traces)");
  sim_cmd->add_option("--estimator", sim.estimator, "runtime estimates for SJF and backfill")
      ->check(CLI::IsMember({"oracle", "learned", "none"}));
  sim_cmd->add_option("--restore-delay", sim.restore_delay_s, "seconds a preempted job pays to restore its checkpoint")
      ->check(CLI::Range(0.0, 1e9));
  sim_cmd
      ->add_option("--checkpoint-interval", sim.checkpoint_interval_s,
                   "seconds of work between a job's checkpoints; a stop loses the work since the last (default 0: "
                   "a perfect checkpoint at every stop)")
      ->check(CLI::Range(0.0, 1e9));
  sim_cmd->add_option("--min-run", sim.min_run_s, "seconds a run is safe from preemption and moves (every queue)")
      ->check(CLI::Range(0.0, 1e9));
  sim_cmd
      ->add_option("--max-interruptions-per-hour", sim.max_interruptions_per_hour,
                   "a job stopped this often in the last hour is not preempted again (default 0: no cap)")
      ->check(CLI::Range(0, 1'000'000));
  sim_cmd
      ->add_option("--usage-half-life", sim.usage_half_life_s,
                   "fair share over time: every queue's past usage counts in the drf order, halving every this "
                   "many seconds (default 0: off)")
      ->check(CLI::Range(int64_t{0}, int64_t{365} * 86'400));
  sim_cmd->add_option("--window", sim.window, "FIRST:LAST: also report the mean JCT of jobs FIRST..LAST-1");
  sim_cmd->add_option("--device-mtbf", sim.device_mtbf,
                      "node failures: device-hours between failures (a node of D devices fails D times as often), "
                      "or llama3 (Meta's published rate: 419 interruptions in 54 days on 16,384 GPUs); default none");
  sim_cmd->add_option("--repair-time", sim.repair_s, "seconds a failed node stays out (default 3600)")
      ->check(CLI::Range(0.0, 1e9));
  sim_cmd->add_option("--repair-times", sim.repair_times,
                      "how repair times spread around --repair-time: fixed (default), exp (exponential) or "
                      "lognormal[:SIGMA] (heavy-tailed; SIGMA in log space, default 1)");
  sim_cmd->add_option("--rack", sim.rack,
                      "correlated failures: NODES:MTBF_HOURS, racks of NODES consecutive nodes, each failing whole "
                      "every MTBF_HOURS on average (a switch, a power feed) and repaired as one");
  sim_cmd->add_option("--fault-seed", sim.fault_seed, "random seed of the node failures");
  sim_cmd
      ->add_option("--inflation-seeds", sim.inflation_seeds,
                   "run FGD's openb inflation experiment over N seeds (policies fgd, bestfit, gpupacking, random, "
                   "gpuclustering, "
                   "dotprod, binpack, spread)")
      ->check(CLI::Range(0, 100));
  sim_cmd->add_flag("--gpu-pods-only", sim.gpu_pods_only,
                    "inflation experiment without the trace's CPU-only pods (FGD's artifact includes them)");

  icos::cli::TlsInitOptions tls;
  std::string tls_hosts;
  CLI::App* tls_cmd = app.add_subcommand("tls", "Certificates for serving the API over HTTPS")->require_subcommand(1);
  CLI::App* tls_init = tls_cmd->add_subcommand(
      "init",
      "Make a CA (ca.crt, ca.key) and a server certificate it signs (server.crt, server.key) in --dir; with a CA "
      "already there, only a new server certificate (renewal). Never overwrites a file");
  tls_init->add_option("--dir", tls.dir, "directory for the four files (created if missing)")->required();
  tls_init
      ->add_option("--host", tls_hosts,
                   "every name and address clients reach the API by, comma-separated, e.g. "
                   "ctl.example.com,10.0.0.10 (IP addresses become IP entries)")
      ->required();
  tls_init->add_option("--days", tls.server_days, "days the server certificate is valid (the CA: 10 years)")
      ->check(CLI::Range(int64_t{1}, int64_t{3'650}));

  CLI::App* checkpoint_done = app.add_subcommand(
      "checkpoint-done",
      "From inside a task: say that the job has just finished a checkpoint (in $ICOS_CHECKPOINT_DIR), so that "
      "icos knows what a preemption would lose (docs/frameworks.md, \"Checkpoints\")");

  icos::cli::GatewayFlags gateway;
  CLI::App* gateway_cmd = icos::cli::AddGatewayCommand(app, gateway);

  icos::cli::ClientCommands* client = icos::cli::AddClientCommands(app);

  CLI11_PARSE(app, argc, argv);
  HideSecretsFromCommandLine(argc, argv);
  if (up->parsed()) {
    icos::log::Init("up");
    return icos::cli::RunUp(server, agent, std::cout, std::cerr);
  }
  if (server_cmd->parsed()) {
    icos::log::Init("controller");
    return icos::cli::RunServer(server, std::cout, std::cerr);
  }
  if (agent_cmd->parsed()) {
    icos::log::Init("agent");
    return icos::cli::RunAgent(agent, std::cout, std::cerr);
  }
  if (gateway_cmd->parsed()) {
    icos::log::Init("gateway");
    return icos::cli::RunGateway(gateway, std::cout, std::cerr);
  }
  if (demo_cmd->parsed()) return icos::cli::RunDemo(demo, std::cout, std::cerr);
  if (sim_cmd->parsed()) return icos::cli::RunSim(sim, std::cout, std::cerr);
  if (tls_init->parsed()) return icos::cli::RunTlsInit(tls, tls_hosts, std::cout, std::cerr);
  if (checkpoint_done->parsed()) return CheckpointDone(std::cerr);
  const int rc = icos::cli::RunClientCommand(client, std::cout, std::cerr);
  return rc < 0 ? 0 : rc;
}
