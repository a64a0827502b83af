#include "agent/node_agent.h"

#include <httplib.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "agent/checkpoint_dir.h"
#include "agent/health_check.h"
#include "agent/program_run.h"
#include "agent/shim.h"
#include "agent/sys_util.h"
#include "agent/task_identity.h"
#include "common/log.h"
#include "devices/vendors.h"
#include "frameworks/frameworks.h"
#include "net/net_util.h"
#include "protocol/http_client.h"

namespace icos::agent {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::string RandomKey() {
  unsigned char bytes[16];
  RAND_bytes(bytes, sizeof(bytes));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

// CPU ids of a NUMA node, from sysfs ("0-3,8-11"); empty when unknown.
std::vector<int32_t> NumaCpus(int32_t numa) {
  std::ifstream f(absl::StrCat("/sys/devices/system/node/node", numa, "/cpulist"));
  std::string list;
  std::vector<int32_t> out;
  if (!(f >> list)) return out;
  std::stringstream ss(list);
  std::string part;
  while (std::getline(ss, part, ',')) {
    int a = 0, b = 0;
    const auto dash = part.find('-');
    if (dash == std::string::npos) {
      if (absl::SimpleAtoi(part, &a)) out.push_back(a);
    } else if (absl::SimpleAtoi(part.substr(0, dash), &a) && absl::SimpleAtoi(part.substr(dash + 1), &b)) {
      for (int c = a; c <= b; ++c) out.push_back(c);
    }
  }
  return out;
}

std::string LeasePath(const std::string& work_dir) { return work_dir + "/lease"; }

// The agent's calls to the controller. No keep-alive by default
// (http_client.h): between calls the connection would hold a server thread.
ApiClientOptions ClientOptions(const NodeAgentOptions& o, int64_t timeout_ms, bool keep_alive = false) {
  return {.timeout_ms = timeout_ms, .keep_alive = keep_alive, .ca_cert_file = o.ca_cert_file};
}

std::string StateOf(TaskExitKind kind, int exit_code) {
  switch (kind) {
    case TaskExitKind::kExited:
      return exit_code == 0 ? "Succeeded" : "Failed";
    case TaskExitKind::kCancelled:
    case TaskExitKind::kNodeShutdown:
      return "Killed";
    default:
      return "Failed";
  }
}

}  // namespace

NodeAgent::NodeAgent(NodeAgentOptions options, icos::Clock* clock)
    : options_(std::move(options)),
      clock_(clock),
      log_key_(RandomKey()),
      beat_instance_(RandomKey().substr(0, 16)),
      node_(options_.node),
      probes_(std::make_unique<CommandProbes>(clock)) {}

NodeAgent::~NodeAgent() { Stop(); }

std::string NodeAgent::agent_url() const {
  const std::string& host = net::IsWildcardHost(options_.listen_host) ? options_.address : options_.listen_host;
  return absl::StrCat("http://", net::UrlHost(host), ":", log_port_);
}

absl::Status NodeAgent::Start() {
  // Journals, logs, the lease and the node's credential: the agent's alone.
  if (absl::Status st = MakeDirs(options_.work_dir, 0700); !st.ok()) return st;
  if (chmod(options_.work_dir.c_str(), 0700) != 0) return ErrnoError(errno, absl::StrCat("chmod ", options_.work_dir));
  logs_ = std::make_unique<httplib::Server>();
  logs_->set_tcp_nodelay(true);
  const std::string log_dir = options_.work_dir + "/logs";
  const std::string key = log_key_;
  logs_->Get(R"(/v1/logs/([A-Za-z0-9._-]+))",
             [this, log_dir, key](const httplib::Request& req, httplib::Response& res) {
               if (req.get_header_value("Authorization") != absl::StrCat("Bearer ", key)) {
                 res.status = 401;
                 res.set_content("bad log key\n", "text/plain");
                 return;
               }
               const std::string id = req.matches[1].str();
               std::ifstream f(absl::StrCat(log_dir, "/", id, ".log"), std::ios::binary);
               if (!f) {
                 res.status = 404;
                 return;
               }
               int64_t offset = 0;
               if (req.has_param("offset") && !absl::SimpleAtoi(req.get_param_value("offset"), &offset)) {
                 res.status = 400;
                 res.set_content("offset must be a whole number of bytes\n", "text/plain");
                 return;
               }
               f.seekg(0, std::ios::end);
               const int64_t size = f.tellg();
               offset = std::clamp<int64_t>(offset, 0, size);
               const int64_t n = std::min<int64_t>(size - offset, 1 << 20);
               std::string buf(static_cast<size_t>(n), '\0');
               f.seekg(offset);
               f.read(buf.data(), n);
               bool running;
               {
                 std::lock_guard<std::mutex> lock(mu_);
                 auto it = known_.find(id);
                 running = it != known_.end() && it->second.status.state == "Running";
               }
               res.set_header("X-Icos-Eof", offset + n == size && !running ? "1" : "0");
               // Where the read ended: an offset past the end is clamped to it,
               // so a reader learns the log's size (to start at its tail).
               res.set_header("X-Icos-Offset", std::to_string(offset + n));
               res.set_content(buf, "text/plain");
             });
  const std::string& listen = options_.listen_host.empty() ? options_.address : options_.listen_host;
  log_port_ = options_.listen_port == 0
                  ? logs_->bind_to_any_port(listen)
                  : (logs_->bind_to_port(listen, options_.listen_port) ? options_.listen_port : -1);
  if (log_port_ <= 0) {
    return absl::UnavailableError(absl::StrCat("agent cannot listen on ", net::UrlHost(listen), ":",
                                               options_.listen_port, " (--listen; by default the --address)"));
  }
  serve_ = std::thread([this] { logs_->listen_after_bind(); });

  // A node that joined before speaks with its own credential.
  if (absl::StatusOr<std::string> kept = ReadFile(CredentialPath()); kept.ok()) {
    std::lock_guard<std::mutex> lock(token_mu_);
    credential_ = std::string(absl::StripAsciiWhitespace(*kept));
  }
  // Register, retrying while the controller is not up yet.
  if (!options_.health_check_program.empty()) RunHealthCheck(false);
  int64_t contact = shim::BootTimeMs();
  absl::Status st = Register();
  for (int i = 0; !st.ok() && st.code() == absl::StatusCode::kUnavailable && i < 100 && !stop_; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    contact = shim::BootTimeMs();
    st = Register();
  }
  if (!st.ok()) return st;
  RenewLease(contact);

  // The launcher comes after registration: its cgroups are scoped by the
  // cluster's id, which the controller gave.
  TaskLauncherOptions lo;
  lo.state_dir = options_.work_dir + "/state";
  lo.log_dir = options_.work_dir + "/logs";
  lo.cgroups = options_.cgroups;
  lo.cgroups.cluster_id = cluster_id_;
  lo.lease_path = LeasePath(options_.work_dir);
  auto launcher = TaskLauncher::Create(lo);
  if (!launcher.ok()) return launcher.status();
  {
    std::lock_guard<std::mutex> lock(mu_);
    launcher_ = *std::move(launcher);
    // Tasks that outlived a previous agent keep running and are reported again.
    for (const std::string& id : launcher_->Adopt()) {
      Known k;
      k.status.task_id = id;
      k.status.state = "Running";
      known_[id] = k;
    }
  }
  watch_ = std::thread([this] { WatchLoop(); });
  beat_ = std::thread([this] { BeatLoop(); });
  if (!options_.health_check_program.empty()) health_check_ = std::thread([this] { HealthCheckLoop(); });
  if (options_.checkpoint_retention_ms > 0) checkpoint_sweep_ = std::thread([this] { CheckpointSweepLoop(); });
  probe_ = std::thread([this] { ProbeLoop(); });
  return absl::OkStatus();
}

std::string NodeAgent::Token() const {
  std::lock_guard<std::mutex> lock(token_mu_);
  return credential_.empty() ? options_.token : credential_;
}

std::string NodeAgent::CredentialPath() const { return options_.work_dir + "/node.credential"; }

absl::Status NodeAgent::Register() {
  absl::Status st = RegisterWith(Token());
  if (!absl::IsUnauthenticated(st)) return st;
  // The node's credential was revoked (or the store that knew it is gone):
  // join afresh with the join token, if this agent was given one.
  std::string revoked;
  {
    std::lock_guard<std::mutex> lock(token_mu_);
    if (credential_.empty() || options_.token.empty() || credential_ == options_.token) return st;
    revoked.swap(credential_);
  }
  unlink(CredentialPath().c_str());
  spdlog::warn("msg={} error={}", log::Field("the node's credential was refused; joining again"),
               log::Field(st.message()));
  return RegisterWith(options_.token);
}

absl::Status NodeAgent::RegisterWith(const std::string& token) {
  ApiClient api(options_.server_url, token, ClientOptions(options_, 10'000, /*keep_alive=*/true));
  core::Node node;
  std::string unhealthy;
  {
    std::lock_guard<std::mutex> lock(mu_);
    node = node_;
    unhealthy = unhealthy_reason_;
  }
  json body = {{"node", wire::NodeToJson(node)},
               {"address", options_.address},
               {"agent_url", agent_url()},
               {"log_key", log_key_},
               {"unhealthy_reason", unhealthy}};
  auto r = api.Json("POST", "/api/v1/nodes/register", body.dump());
  if (!r.ok()) return r.status();
  if (absl::Status st = AdoptClusterId(r->value("cluster_id", "")); !st.ok()) return st;
  // Joined with a join token: from now on this node speaks with a credential
  // of its own, kept where only the agent can read it.
  if (const std::string credential = r->value("credential", ""); !credential.empty()) {
    if (absl::Status st = WriteFileAtomically(CredentialPath(), credential + "\n"); !st.ok()) {
      return absl::Status(st.code(), absl::StrCat("cannot keep the node's credential: ", st.message()));
    }
    std::lock_guard<std::mutex> lock(token_mu_);
    credential_ = credential;
  }
  return absl::OkStatus();
}

absl::Status NodeAgent::AdoptClusterId(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  if (id.empty()) return absl::FailedPreconditionError("the controller did not say its cluster id (an older icos?)");
  if (!cluster_id_.empty()) {
    if (id == cluster_id_) return absl::OkStatus();
    return absl::FailedPreconditionError(absl::StrCat("the controller now belongs to cluster ", id,
                                                      ", not this agent's ", cluster_id_,
                                                      "; restart the agent with another --work-dir to join it"));
  }
  // A work directory serves one cluster: its journals and cgroups are that
  // cluster's, and tasks of another must never be mistaken for them.
  const std::string path = options_.work_dir + "/cluster_id";
  absl::StatusOr<std::string> kept = ReadFile(path);
  if (kept.ok() && absl::StripAsciiWhitespace(*kept) != id) {
    return absl::FailedPreconditionError(absl::StrCat("work directory ", options_.work_dir, " belongs to cluster ",
                                                      absl::StripAsciiWhitespace(*kept), ", but the controller is ",
                                                      "cluster ", id, "; give this agent another --work-dir"));
  }
  if (!kept.ok()) {
    if (absl::Status st = WriteFileAtomically(path, id + "\n"); !st.ok()) return st;
  }
  cluster_id_ = id;
  return absl::OkStatus();
}

void NodeAgent::Stop() {
  stop_ = true;
  if (logs_) logs_->stop();
  if (serve_.joinable()) serve_.join();
  if (watch_.joinable()) watch_.join();
  if (beat_.joinable()) beat_.join();
  if (health_check_.joinable()) health_check_.join();
  if (checkpoint_sweep_.joinable()) checkpoint_sweep_.join();
  if (probe_.joinable()) probe_.join();
}

void NodeAgent::StopAllTasks(int64_t grace_ms) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!launcher_) return;
    stopping_all_ = true;  // a task starting now is stopped as it joins (Launch)
    stop_all_grace_ms_ = grace_ms;
    for (const std::string& id : launcher_->Running()) {
      log::Failure("stop task", launcher_->Stop(id, grace_ms, /*node_shutdown=*/true),
                   absl::StrCat("task=", log::Field(id)));
    }
  }
  const int64_t deadline = clock_->NowMs() + grace_ms + 2'000;
  while (clock_->NowMs() < deadline) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      launcher_->Poll();  // shutting down: the exits are not reported any more
      if (launcher_->Running().empty()) return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void NodeAgent::WatchLoop() {
  // No keep-alive (http_client.h): between watches the connection would hold a server thread.
  std::string token = Token();
  auto api =
      std::make_unique<ApiClient>(options_.server_url, token, ClientOptions(options_, options_.watch_ms + 10'000));
  uint64_t version = 0;
  while (!stop_) {
    if (Token() != token) {  // re-joined with a new credential
      token = Token();
      api =
          std::make_unique<ApiClient>(options_.server_url, token, ClientOptions(options_, options_.watch_ms + 10'000));
    }
    // A short wait first so Stop() is noticed quickly; then long polls.
    auto r =
        api->Json("GET", absl::StrCat("/api/v1/nodes/", options_.node.name, "/assignments?since=", version,
                                      "&wait_ms=", version == 0 ? 0 : std::min<int64_t>(options_.watch_ms, 2'000)));
    if (!r.ok()) {
      // The controller lost us, or our credential: join again.
      if (absl::IsNotFound(r.status()) || absl::IsUnauthenticated(r.status())) log::Failure("register", Register());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
      continue;
    }
    std::vector<wire::Assignment> tasks;
    for (const auto& t : (*r)["tasks"]) {
      auto a = wire::AssignmentFromJson(t);
      if (a.ok()) tasks.push_back(*std::move(a));
    }
    version = (*r)["version"].get<uint64_t>();
    Reconcile(version, tasks);
    // A busy controller answered without waiting: ask again after the time it said.
    if (const int64_t retry = r->value("retry_ms", int64_t{0}); retry > 0) {
      for (int64_t slept = 0; slept < std::min<int64_t>(retry, 60'000) && !stop_; slept += 50) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    }
  }
}

void NodeAgent::Reconcile(uint64_t version, const std::vector<wire::Assignment>& tasks) {
  // New tasks start after the lock is let go (Launch), so that reports of
  // other tasks' exits need not wait for them.
  std::vector<const wire::Assignment*> to_launch;
  std::unique_lock<std::mutex> lock(mu_);
  // A lower version is another controller (a restart or failover): it
  // loaded every end from the store, so nothing it lists has ended.
  if (version < last_version_) forgotten_.clear();
  last_version_ = version;
  // Answers from this version on no longer list what was forgotten before it.
  for (auto it = forgotten_.begin(); it != forgotten_.end();) {
    it = version >= it->second ? forgotten_.erase(it) : std::next(it);
  }
  std::set<std::string> listed;
  for (const auto& a : tasks) {
    if (forgotten_.count(a.task_id) > 0) continue;  // a stale answer: this task has ended
    listed.insert(a.task_id);
    auto it = known_.find(a.task_id);
    if (a.run && it == known_.end()) {
      // Seen running by the controller but unknown here: our journal of it
      // is gone, so it may have run; starting it again could run it twice.
      // Not reporting it tells the controller it is lost.
      // Once every task is being stopped (the node shuts down) nothing new
      // starts: the assignment waits for the agent's next run.
      if (!a.started && !stopping_all_ && !launcher_->Knows(a.task_id)) to_launch.push_back(&a);
    } else if (a.run && it->second.status.state == "Running" && !it->second.stopping && !a.command_probes.empty() &&
               !probes_->Has(a.task_id)) {
      ResumeProbes(a, it->second);
    } else if (!a.run && it != known_.end() && it->second.status.state == "Running" && !it->second.stopping) {
      it->second.stopping = true;
      it->second.stop_reason = "stopped by the controller";
      // A planned stop of a job that checkpoints: its signal first (a preemption, a move).
      const CheckpointFirst checkpoint =
          a.checkpoint_first ? CheckpointFirst{a.checkpoint_signal, a.checkpoint_grace_ms} : CheckpointFirst{};
      if (a.checkpoint_first) it->second.stop_reason = "stopped by the controller after a checkpoint signal";
      log::Failure("stop task", launcher_->Stop(a.task_id, a.grace_ms, false, checkpoint),
                   absl::StrCat("task=", log::Field(a.task_id)));
    }
  }
  // A running task the controller no longer lists has ended there (failed on
  // a sick device, lost, its job gone): it must not keep running here.
  for (auto& [id, k] : known_) {
    if (k.status.state == "Running" && !k.stopping && !listed.count(id)) {
      k.stopping = true;
      k.stop_reason = "no longer assigned to this node";
      log::Failure("stop task", launcher_->Stop(id, -1), absl::StrCat("task=", log::Field(id)));
    }
  }
  // Ended tasks stay (and are reported) until a heartbeat acknowledges them.
  lock.unlock();
  LaunchAll(to_launch);
}

void NodeAgent::LaunchAll(const std::vector<const wire::Assignment*>& tasks) {
  // A start mostly waits (a journal's fsync, the shim's exec, the task's
  // fork), so the tasks of different jobs start side by side; one job's
  // start in order, since they share its checkpoint directory.
  std::map<int64_t, std::vector<const wire::Assignment*>> by_job;
  for (const wire::Assignment* a : tasks) by_job[a->job_id].push_back(a);
  std::vector<const std::vector<const wire::Assignment*>*> jobs;
  for (const auto& [job, its] : by_job) jobs.push_back(&its);
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < jobs.size();) {
      for (const wire::Assignment* a : *jobs[i]) Launch(*a);
    }
  };
  std::vector<std::thread> helpers;
  for (size_t t = 1; t < std::min(jobs.size(), kParallelLaunches); ++t) helpers.emplace_back(work);
  work();
  for (std::thread& t : helpers) t.join();
}

void NodeAgent::ForgetAcknowledged(const wire::HeartbeatReply& reply) {
  for (const std::string& id : reply.acked) {
    auto it = known_.find(id);
    if (it == known_.end() || it->second.status.state == "Running") continue;
    // A launch that failed before the fork left no journal: NotFound is fine.
    if (absl::Status st = launcher_->Forget(id); !st.ok() && !absl::IsNotFound(st)) continue;
    known_.erase(it);
    forgotten_[id] = reply.version;
    // The task's directory is scratch, like a pod's emptyDir: its processes
    // are gone (their cgroup was killed), and remove_all follows no links.
    std::error_code ec;
    fs::remove_all(absl::StrCat(JobsDir(), "/", id), ec);
  }
}

std::string NodeAgent::JobsDir() const {
  return options_.jobs_dir.empty() ? absl::StrCat("/var/tmp/icos-", cluster_id_) : options_.jobs_dir;
}

absl::StatusOr<std::vector<DeviceRule>> NodeAgent::DeviceRulesFor(const wire::Assignment& a) const {
  std::vector<std::string> paths;
  for (int32_t d : a.devices) {
    if (d < 0 || d >= static_cast<int32_t>(options_.device_nodes.size())) continue;
    for (const std::string& p : options_.device_nodes[d]) {
      if (std::find(paths.begin(), paths.end(), p) == paths.end()) paths.push_back(p);
    }
  }
  std::vector<DeviceRule> rules = DefaultDeviceRules();
  if (paths.empty()) return rules;
  absl::StatusOr<std::vector<DeviceNodeSpec>> specs = DeviceNodeSpecsFromPaths(paths);
  if (!specs.ok()) return specs.status();
  absl::StatusOr<ResolvedDeviceNodes> nodes = ResolveDeviceNodes(*specs);
  if (!nodes.ok()) return nodes.status();
  for (const DeviceRule& r : nodes->rules) {
    if (std::find(rules.begin(), rules.end(), r) == rules.end()) rules.push_back(r);
  }
  return rules;
}

void NodeAgent::RenewLease(int64_t boot_ms) {
  // Not durable: after a reboot the tasks are gone and the lease is moot.
  // A lease that cannot be renewed runs out: the shims then stop the tasks,
  // which is safe, but the operator must learn why.
  log::Failure("renew the node lease",
               WriteFileAtomically(LeasePath(options_.work_dir), absl::StrCat(boot_ms, "\n"), /*durable=*/false),
               absl::StrCat("path=", log::Field(LeasePath(options_.work_dir))));
}

std::map<std::string, std::string> NodeAgent::TaskEnvironment(const wire::Assignment& a, const TaskIdentity& who,
                                                              const std::string& task_dir,
                                                              const std::string& checkpoints) const {
  // A clean environment: the basics of its user, then the job's and the
  // framework's variables; nothing of the agent's own.
  std::map<std::string, std::string> env = TaskBaseEnvironment(who);
  // The task's directory and this node's own network interface (frameworks.h).
  const absl::StatusOr<net::InterfaceAddress> nic =
      net::InterfaceHolding(options_.address, net::LocalInterfaceAddresses());
  for (auto& [key, value] :
       net::ExpandPlaceholders(a.env, {{wire::kTaskDirPlaceholder, task_dir},
                                       {frameworks::kNodeInterfacePlaceholder, nic.ok() ? nic->name : ""},
                                       {frameworks::kNodeIpPlaceholder, nic.ok() ? nic->ip : ""}})) {
    env[key] = std::move(value);
  }
  env["ICOS_TASK_DIR"] = task_dir;
  env["ICOS_CHECKPOINT_DIR"] = checkpoints;
  if (const char* name = a.checkpoint_signal > 0 ? sigabbrev_np(a.checkpoint_signal) : nullptr; name != nullptr) {
    env["ICOS_CHECKPOINT_SIGNAL"] = absl::StrCat("SIG", name);  // as a trap or Python's signal module names it
  }
  if (!a.devices.empty()) {
    // The scheduler numbers a node's devices across vendors; each vendor's
    // runtime numbers its own. The agent knows the mapping.
    std::vector<int32_t> vendor_indices;
    for (int32_t d : a.devices) {
      const bool known = d >= 0 && d < static_cast<int32_t>(options_.vendor_index.size());
      vendor_indices.push_back(known ? options_.vendor_index[d] : d);
    }
    for (const auto& [key, value] : devices::VisibleDevicesEnv(a.vendor, vendor_indices)) env[key] = value;
  }
  env["ICOS_TASK_ID"] = a.task_id;
  return env;
}

void NodeAgent::Launch(const wire::Assignment& a) {
  // On the watch thread (or a helper of LaunchAll), without mu_: starting a task takes milliseconds
  // (its directories, cgroup, journal, the shim's fork). Its record joins
  // known_ under mu_ at the end, where the launcher hands it over (Accept),
  // so no exit of it can be collected before it is known. Reconcile left
  // out what the launcher knows already (journaled before a crash: reported
  // from the journal, never started again).
  Known k;
  k.status.task_id = a.task_id;
  k.started_ms = clock_->NowMs();
  k.time_limit_s = a.time_limit_s;
  k.checkpoint = {.signal = a.checkpoint_signal, .window_ms = a.checkpoint_grace_ms};
  auto fail = [&](int exit_code, absl::string_view why) {
    k.status.state = "Failed";
    k.status.exit_code = exit_code;
    k.status.reason = std::string(why);
    k.status.end_ms = clock_->NowMs();
    std::lock_guard<std::mutex> lock(mu_);
    known_[a.task_id] = k;
    launched_ = true;
    exits_.Wake();  // report it now
  };
  // Whose task it is, and so what it may reach (task_identity.h).
  absl::StatusOr<TaskIdentity> who = ResolveTaskIdentity(a.user, a.uid, a.gid, options_.identity, geteuid());
  if (!who.ok()) return fail(126, who.status().message());
  // A service's port must be free on this node: a process icos does not
  // know (another program, a task of an agent that was replaced) may hold
  // it, and the replica would only fail on its bind, again at every
  // restart. Found here it is the infrastructure's failure, said so, and
  // the next attempt is booked another port.
  if (a.serve_port > 0 && PortInUse(a.serve_port)) {
    return fail(-1, absl::StrCat("port ", a.serve_port, " (ICOS_PORT) is held by another process on this node"));
  }
  // A directory left by a launch that crashed before its journal: that
  // attempt never ran (the launcher has no journal of it), so start afresh.
  std::error_code gone;
  fs::remove_all(absl::StrCat(JobsDir(), "/", a.task_id), gone);
  absl::StatusOr<std::string> dir = MakeTaskDirectory(JobsDir(), a.task_id, *who);
  if (!dir.ok()) return fail(126, absl::StrCat("cannot make the task's directory: ", dir.status().message()));
  const std::string& task_dir = *dir;
  TaskLaunch launch;
  launch.task_id = a.task_id;
  launch.argv = a.argv;
  launch.workdir = a.workdir.empty() ? task_dir : a.workdir;
  if (who->switch_user) launch.user = TaskUser{.uid = who->uid, .gid = who->gid, .groups = who->groups};
  // The job's checkpoints outlive this attempt (checkpoint_dir.h).
  // Once per agent: the root serves this cluster alone (checkpoint_dir.h).
  {
    std::lock_guard<std::mutex> claim(checkpoint_claim_mu_);
    if (!checkpoint_root_claimed_) {
      if (absl::Status st = ClaimCheckpointRoot(CheckpointRoot(), cluster_id_); !st.ok()) {
        return fail(126, absl::StrCat("cannot use the checkpoint directory: ", st.message()));
      }
      checkpoint_root_claimed_ = true;
    }
  }
  absl::StatusOr<std::string> checkpoints = MakeCheckpointDirectory(CheckpointRoot(), a.job_id, *who);
  if (!checkpoints.ok()) {
    return fail(126, absl::StrCat("cannot make the job's checkpoint directory: ", checkpoints.status().message()));
  }
  launch.clean_env = true;
  launch.env = TaskEnvironment(a, *who, task_dir, *checkpoints);
  launch.cpu_milli = a.cpu_milli;
  launch.memory_mib = a.memory_mib;
  launch.max_disconnect_ms = a.max_disconnect_ms;
  launch.lease_grace_ms = a.grace_ms;
  absl::StatusOr<std::vector<DeviceRule>> rules = DeviceRulesFor(a);
  if (!rules.ok()) return fail(126, rules.status().message());
  launch.device_rules = *std::move(rules);
  // Bind only to NUMA nodes this host has: a sim inventory may declare more
  // than the machine running it (cpuset.mems rejects a missing node).
  for (int32_t numa : a.numa_nodes) {
    const std::vector<int32_t> cpus = NumaCpus(numa);
    if (cpus.empty()) continue;
    launch.cpus.insert(launch.cpus.end(), cpus.begin(), cpus.end());
    launch.mems.push_back(numa);
  }
  // Generated files (hostfiles, rank tables) go into the task's directory
  // only, and belong to the task's user.
  for (const auto& [path, content] : a.files) {
    std::string target = absl::StrReplaceAll(path, {{wire::kTaskDirPlaceholder, task_dir}});
    if (target.empty() || target[0] != '/') target = absl::StrCat(task_dir, "/", target);
    if (!absl::StartsWith(target, task_dir + "/") || absl::StrContains(target, "/../")) {
      return fail(126, absl::StrCat("refusing to write ", target, " outside the task's directory"));
    }
    if (absl::Status st = WriteFileAtomically(target, content, /*durable=*/false); !st.ok()) {
      return fail(126, absl::StrCat("cannot write ", target, ": ", st.message()));
    }
    if (geteuid() == 0 && chown(target.c_str(), who->uid, who->gid) != 0) {
      return fail(126, absl::StrCat("cannot give ", target, " to the task's user"));
    }
  }
  auto started = launcher_->StartHeld(launch);
  if (absl::IsAlreadyExists(started.status())) return;              // journaled already: reported from the journal
  if (!started.ok()) return fail(127, started.status().message());  // a typo in the command: at once, with the reason
  std::lock_guard<std::mutex> lock(mu_);
  launcher_->Accept(a.task_id);
  k.status.state = "Running";
  k.status.start_ms = k.started_ms;
  std::vector<std::string> notes = started->warnings;
  if (!who->note.empty()) notes.insert(notes.begin(), who->note);
  if (!notes.empty()) k.status.reason = k.launch_note = absl::StrJoin(notes, "; ");
  known_[a.task_id] = k;
  launched_ = true;
  exits_.Watch(started->shim_pid);  // its exit wakes the report loop
  if (stopping_all_) {              // the node began to shut down while this one started
    known_[a.task_id].stopping = true;
    log::Failure("stop task", launcher_->Stop(a.task_id, stop_all_grace_ms_, /*node_shutdown=*/true),
                 absl::StrCat("task=", log::Field(a.task_id)));
    return;
  }
  if (!a.command_probes.empty()) StartProbes(a, *who, launch.workdir, launch.env, k.started_ms);
}

void NodeAgent::StartProbes(const wire::Assignment& a, const TaskIdentity& who, const std::string& workdir,
                            const std::map<std::string, std::string>& env, int64_t started_ms) {
  ProgramRun context;
  context.env.emplace();
  for (const auto& [key, value] : env) context.env->push_back(absl::StrCat(key, "=", value));
  if (!env.count("PATH")) context.env->push_back(absl::StrCat("PATH=", kDefaultCommandPath));
  context.workdir = workdir;
  if (who.switch_user) context.user = TaskUser{.uid = who.uid, .gid = who.gid, .groups = who.groups};
  // In the replica's cgroup, when it has one: its limits and device rules bound the probe too.
  if (const CgroupManager* cg = launcher_->cgroups(); cg != nullptr && PathExists(cg->GroupDir(a.task_id))) {
    context.procs_files = cg->ProcsFiles(a.task_id);
  }
  probes_->Set(a.task_id, a.command_probes, std::move(context), started_ms);
}

void NodeAgent::ResumeProbes(const wire::Assignment& a, const Known& k) {
  // A replica adopted from an earlier agent process: its context is made
  // again as its launch made it (its directories exist by now).
  absl::StatusOr<TaskIdentity> who = ResolveTaskIdentity(a.user, a.uid, a.gid, options_.identity, geteuid());
  const std::string task_dir = absl::StrCat(JobsDir(), "/", a.task_id);
  absl::StatusOr<std::string> checkpoints =
      who.ok() ? MakeCheckpointDirectory(CheckpointRoot(), a.job_id, *who) : who.status();
  if (!checkpoints.ok()) {
    log::Failure("resume command probes", checkpoints.status(), absl::StrCat("task=", log::Field(a.task_id)));
    return;
  }
  StartProbes(a, *who, a.workdir.empty() ? task_dir : a.workdir, TaskEnvironment(a, *who, task_dir, *checkpoints),
              k.started_ms);
}

void NodeAgent::NoteCheckpointSave(Known& k) {
  if (k.checkpoint_asked_ms <= 0 || k.status.checkpoint_save_ms > 0) return;
  // The marker's time is the task's to set (touch -d): no later than the
  // task's end, so a save cannot be claimed longer than the stop lasted.
  const int64_t done = k.status.end_ms > 0 ? std::min(k.status.checkpoint_ms, k.status.end_ms) : 0;
  if (done >= k.checkpoint_asked_ms) {
    // Both times are this node's wall clock: the signal's and the marker's.
    k.status.checkpoint_save_ms = std::max<int64_t>(1, done - k.checkpoint_asked_ms);
  } else if (k.checkpoint_window_ran_out) {
    k.status.checkpoint_save_ms = k.checkpoint_window_ms;
    k.status.checkpoint_cut = true;
  }
}

bool NodeAgent::CollectExits() {
  bool changed = launched_;  // report "Running" promptly too
  launched_ = false;
  for (const TaskExit& e : launcher_->Poll()) {
    changed = true;
    Known& k = known_[e.task_id];
    k.status.task_id = e.task_id;
    k.status.state = StateOf(e.kind, e.exit_code);
    k.status.exit_code = e.exit_code;
    k.status.reason =
        k.stopping && !k.stop_reason.empty() && e.kind == TaskExitKind::kCancelled ? k.stop_reason : e.reason;
    if (e.kind == TaskExitKind::kOOMKilled) {
      k.status.reason = "OOMKilled";  // as the controller and users match it
    } else if (!k.launch_note.empty()) {
      k.status.reason = absl::StrCat(k.status.reason, "; ", k.launch_note);
    }
    k.status.requeue = e.kind == TaskExitKind::kNodeShutdown;
    k.status.end_ms = e.end_unix_ms > 0 ? e.end_unix_ms : clock_->NowMs();
    k.status.max_rss_kib = e.max_rss_kib;
    k.checkpoint_asked_ms = e.checkpoint_asked_unix_ms;
    k.checkpoint_window_ms = e.checkpoint_window_ms;
    k.checkpoint_window_ran_out = e.checkpoint_window_ran_out;
  }
  // Time limits: SIGTERM, then SIGKILL after the grace period. A job that
  // checkpoints gets its signal its checkpoint window before the limit
  // (Slurm's --signal=USR1@WINDOW), so SIGTERM still comes at the limit.
  const int64_t now = clock_->NowMs();
  for (auto& [id, k] : known_) {
    if (k.status.state != "Running") continue;
    if (k.stopping || k.time_limit_s <= 0 || k.started_ms == 0) continue;
    const int64_t window = k.checkpoint.signal > 0 ? std::min(k.checkpoint.window_ms, k.time_limit_s * 1000) : 0;
    if (now - k.started_ms >= k.time_limit_s * 1000 - window) {
      k.stopping = true;
      k.stop_reason = absl::StrCat("TimeLimit: ran longer than ", k.time_limit_s, " s");
      CheckpointFirst checkpoint = k.checkpoint;
      checkpoint.window_ms = window;
      log::Failure("stop task", launcher_->Stop(id, -1, false, checkpoint), absl::StrCat("task=", log::Field(id)));
    }
  }
  return changed;
}

void NodeAgent::CheckHealth() {
  if (!options_.check_health || clock_->NowMs() - last_health_ms_ < options_.health_ms) return;
  last_health_ms_ = clock_->NowMs();
  const std::vector<DeviceCheck> health = options_.check_health();
  bool changed = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    usage_.assign(node_.devices.size(), wire::DeviceUsage{});  // devices the check skipped: unknown
    usage_fresh_ = true;
    for (size_t i = 0; i < health.size() && i < node_.devices.size(); ++i) {
      usage_[i] = health[i].usage;
      if (node_.devices[i].healthy != health[i].healthy) {
        node_.devices[i].healthy = health[i].healthy;
        changed = true;
      }
    }
  }
  if (changed) log::Failure("register", Register());
}

void NodeAgent::RunHealthCheck(bool register_change) {
  const HealthCheckResult result =
      RunHealthCheckProgram(options_.health_check_program, options_.health_check_timeout_ms);
  bool changed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed = unhealthy_reason_ != result.reason;
    unhealthy_reason_ = result.reason;
  }
  if (changed && register_change) log::Failure("register", Register());
}

std::string NodeAgent::CheckpointRoot() const {
  return options_.checkpoint_dir.empty() ? absl::StrCat(JobsDir(), "-checkpoints") : options_.checkpoint_dir;
}

void NodeAgent::ProbeLoop() {
  // Its own thread: a probe may take its whole timeout, and heartbeats must not wait.
  while (!stop_) {
    if (probes_->RunDue()) exits_.Wake();  // a replica became (un)ready: say so now
    const int64_t wait = std::clamp<int64_t>(probes_->NextDueMs() - clock_->NowMs(), 1, 100);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait));
  }
}

void NodeAgent::CheckpointSweepLoop() {
  // Its own thread: a large directory tree on a shared filesystem may take
  // long to remove, and nothing else must wait for it.
  int64_t last = clock_->NowMs();
  while (!stop_) {
    if (clock_->NowMs() - last >= options_.checkpoint_sweep_ms) {
      SweepCheckpoints();
      last = clock_->NowMs();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void NodeAgent::SweepCheckpoints() {
  std::string root, cluster;
  {
    std::lock_guard<std::mutex> lock(mu_);
    root = CheckpointRoot();
    cluster = cluster_id_;
  }
  if (!IsDirectory(root)) return;  // no job has checkpointed here yet
  // Only this cluster's controller can say which of these jobs ended.
  if (absl::Status st = ClaimCheckpointRoot(root, cluster); !st.ok() || cluster.empty()) {
    if (!st.ok()) log::Failure("sweep checkpoint directories", st);
    return;
  }
  const std::vector<CheckpointDirectory> dirs = ListCheckpointDirectories(root);
  ApiClient api(options_.server_url, Token(), ClientOptions(options_, 30'000));
  constexpr size_t kPerCall = 500;  // the controller's limit per question
  for (size_t from = 0; from < dirs.size() && !stop_; from += kPerCall) {
    const size_t to = std::min(dirs.size(), from + kPerCall);
    json ids = json::array();
    for (size_t i = from; i < to; ++i) ids.push_back(dirs[i].job_id);
    auto r =
        api.Json("POST", absl::StrCat("/api/v1/nodes/", options_.node.name, "/ended-jobs"), json{{"jobs", ids}}.dump());
    if (!r.ok()) {
      log::Failure("ask which jobs ended", r.status());
      return;  // the next sweep asks again
    }
    std::map<int64_t, int64_t> ended;  // job -> end, Unix ms
    for (const json& e : r->value("ended", json::array())) {
      if (e.is_object()) ended[e.value("id", int64_t{0})] = e.value("end_ms", int64_t{0});
    }
    const int64_t now = UnixMillis();
    for (size_t i = from; i < to; ++i) {
      auto it = ended.find(dirs[i].job_id);
      if (it == ended.end() || it->second <= 0 || now - it->second < options_.checkpoint_retention_ms) continue;
      const absl::Status st = RemoveCheckpointDirectory(root, dirs[i]);
      if (!st.ok()) {
        log::Failure("remove a checkpoint directory", st, absl::StrCat("job=", dirs[i].job_id));
        continue;
      }
      spdlog::info("msg={} job={} owner={} ended_s_ago={}", log::Field("removed an ended job's checkpoint directory"),
                   dirs[i].job_id, log::Field(dirs[i].owner), (now - it->second) / 1000);
    }
  }
}

void NodeAgent::HealthCheckLoop() {
  // Its own thread: the program may take up to its timeout, and heartbeats
  // and task exits must not wait for it.
  int64_t last = clock_->NowMs();
  while (!stop_) {
    if (clock_->NowMs() - last >= options_.health_check_interval_ms) {
      RunHealthCheck(true);
      last = clock_->NowMs();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

void NodeAgent::BeatLoop() {
  // Exits are reported at once (a finished task frees its devices for the
  // next job): a shim's exit, or a launch that failed, wakes the loop (exit_waiter.h), and
  // it looks every 10 ms anyway (adopted tasks, time limits, stop
  // deadlines); otherwise a heartbeat goes out every heartbeat_ms.
  std::string token = Token();
  auto api = std::make_unique<ApiClient>(options_.server_url, token, ClientOptions(options_, 10'000));
  int64_t last_sent = 0;
  int64_t heartbeat_ms = options_.heartbeat_ms;  // the controller may slow it
  std::string last_problem;                      // said once (below)
  int64_t last_memory_sample_ms = 0;
  while (!stop_) {
    json tasks = json::array(), devices = json::array();
    std::map<std::string, std::vector<wire::ProbeOutcome>> probes_sent;  // what this beat carries
    bool changed;
    {
      std::lock_guard<std::mutex> lock(mu_);
      changed = CollectExits();
      if (changed || clock_->NowMs() - last_sent >= heartbeat_ms) {
        for (auto& [id, k] : known_) {
          // A finished checkpoint the task reported (checkpoint_dir.h): read
          // per report, not per loop; an ended task's directory stays until
          // its end is acknowledged, so a checkpoint made just before it
          // exited still goes out.
          k.status.checkpoint_ms = std::max(k.status.checkpoint_ms, LastCheckpointMs(absl::StrCat(JobsDir(), "/", id)));
          NoteCheckpointSave(k);
          // A replica that ended or is stopping is probed no more.
          if (k.status.state != "Running" || k.stopping) probes_->Remove(id);
          k.status.probes = probes_->Pending(id);
          if (!k.status.probes.empty()) probes_sent[id] = k.status.probes;
          tasks.push_back(wire::TaskStatusToJson(k.status));
        }
        // Each check's figures go out once: the controller keeps the last
        // ones and samples jobs' usage per report, not per heartbeat.
        if (usage_fresh_) {
          for (const wire::DeviceUsage& u : usage_) devices.push_back(wire::DeviceUsageToJson(u));
          usage_fresh_ = false;
        }
      }
    }
    if (changed || clock_->NowMs() - last_sent >= heartbeat_ms) {
      json body = {{"tasks", tasks}, {"instance", beat_instance_}, {"seq", ++beat_seq_}};
      if (!devices.empty()) body["devices"] = devices;  // only after a new health check
      // The lease counts from before the request left: the controller's
      // view of this beat is never earlier than ours.
      const int64_t contact = shim::BootTimeMs();
      if (Token() != token) {  // re-joined with a new credential
        token = Token();
        api = std::make_unique<ApiClient>(options_.server_url, token, ClientOptions(options_, 10'000));
      }
      auto r = api->Json("POST", absl::StrCat("/api/v1/nodes/", options_.node.name, "/heartbeat"), body.dump());
      if (!r.ok() && (absl::IsNotFound(r.status()) || absl::IsUnauthenticated(r.status()))) {
        log::Failure("register", Register());
      }
      // A controller whose certificate this agent no longer trusts (renewed
      // by another CA, expired) will not be reached again by retrying: say
      // why, once per new reason, or the node just goes silent.
      const std::string problem =
          !r.ok() && absl::IsFailedPrecondition(r.status()) ? std::string(r.status().message()) : "";
      if (problem != last_problem && !problem.empty()) log::Failure("heartbeat", r.status());
      last_problem = problem;
      if (r.ok()) {
        auto reply = wire::HeartbeatReplyFromJson(*r);
        if (reply.ok()) {
          RenewLease(contact);
          for (const auto& [id, sent] : probes_sent) probes_->Acknowledge(id, sent);
          std::lock_guard<std::mutex> lock(mu_);
          ForgetAcknowledged(*reply);
          // A large cluster asks its agents to call less often (ControllerOptions::max_agent_polls_per_s).
          if (reply->heartbeat_ms > 0) heartbeat_ms = std::min<int64_t>(reply->heartbeat_ms, 60'000);
        }
      }
      last_sent = clock_->NowMs();
    }
    CheckHealth();
    // Tasks' memory, all their processes together (sacct's MaxRSS).
    if (const int64_t now = clock_->NowMs(); now - last_memory_sample_ms >= kMemorySampleMs) {
      launcher_->SampleMemory();
      last_memory_sample_ms = now;
    }
    exits_.Wait(10);
  }
}

}  // namespace icos::agent
