#include "controller/controller.h"

#include <time.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "core/resources/cluster_state.h"

namespace icos::controller {
namespace {

using nlohmann::json;
using store::JobState;
using store::TaskState;

}  // namespace

api::SpecLimits StoredSpecLimits() {
  // Stored specs are canonical JSON, which can be larger than the YAML a user sent.
  api::SpecLimits stored;
  stored.max_bytes = 64 << 20;
  // A job accepted under higher limits than today's must still load.
  stored.max_job_tasks = std::numeric_limits<int32_t>::max();
  stored.max_assignment_bytes = std::numeric_limits<int64_t>::max();
  stored.max_dependencies = std::numeric_limits<size_t>::max();
  stored.max_array_size = std::numeric_limits<int32_t>::max();
  // Arrays stored before their text was bounded (or written as runs only).
  stored.max_array_text = std::numeric_limits<size_t>::max();
  return stored;
}

Controller::Controller(ControllerOptions options, store::StateStore* store, Clock* clock)
    : options_(std::move(options)),
      store_(store),
      clock_(clock),
      scheduler_(*core::Scheduler::Create(options_.scheduler)),
      engine_(engine::EngineOptions{.restart_backoff_ms = options_.restart_backoff_ms,
                                    .restart_backoff_max_ms = options_.restart_backoff_max_ms,
                                    .node_lease_ms = options_.node_lease_ms,
                                    .grace_ms = options_.grace_ms,
                                    .port_base = options_.port_base,
                                    .port_span = options_.port_span,
                                    .restore_cost_ms = options_.scheduler.restore_cost_ms,
                                    // Its order wants whole-run estimates, not the time left (core/estimates.h).
                                    .total_estimates = scheduler_.order().ranks_by_total_estimate(),
                                    .max_checkpoint_window_ms = options_.max_checkpoint_window_ms}),
      webhooks_(std::make_unique<WebhookSender>(store_, clock_, options_.webhooks, &counters_.webhook_deliveries,
                                                // A queue's webhook is an admin's: not on the allow list.
                                                [this](const std::string& url) { return IsQueueWebhook(url); })),
      prober_(std::make_unique<ServiceProber>(
          clock_, [this] { return ProbeTargets(); },
          [this](int64_t job, int32_t attempt, const std::string& event, const std::string& why) {
            RestartDeadReplica(job, attempt, event, why);
          })) {
  prober_->AfterEachRound([this] { ReconcileServices(); });
}

bool Controller::IsQueueWebhook(const std::string& url) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, q] : engine_.queues()) {
    if (q.notify_url == url) return true;
  }
  return false;
}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Create(ControllerOptions options, store::StateStore* store,
                                                               Clock* clock) {
  if (auto s = core::Scheduler::Create(options.scheduler); !s.ok()) return s.status();
  if (options.port_base < 1 || options.port_span < 1 || options.port_base + int64_t{options.port_span} > 65'536) {
    return absl::InvalidArgumentError(
        absl::StrCat("task ports ", options.port_base, " + ", options.port_span, " do not fit in 1-65535"));
  }
  std::unique_ptr<Controller> c(new Controller(std::move(options), store, clock));
  if (c->options_.learning.enabled) {
    auto learning = RuntimeLearning::Create(c->options_.learning);
    if (!learning.ok()) return learning.status();
    c->learning_ = *std::move(learning);
  }
  auto cluster_id = store->ClusterId(store::NewClusterId());
  if (!cluster_id.ok()) return cluster_id.status();
  c->cluster_id_ = *cluster_id;
  if (absl::Status st = c->Load(); !st.ok()) return st;
  if (absl::Status st = c->LoadServices(); !st.ok()) return st;
  if (absl::Status st = c->LoadRuntimeHistory(); !st.ok()) return st;
  return c;
}

Controller::~Controller() { Stop(); }

absl::Status Controller::Load() {
  WriteLock lock(*this);
  auto queues = store_->ListQueues();
  if (!queues.ok()) return queues.status();
  for (const auto& q : *queues) {
    auto parsed = wire::QueueFromJson(json::parse(q.spec_json, nullptr, false));
    if (!parsed.ok())
      return absl::DataLossError(absl::StrCat("stored queue '", q.name, "': ", parsed.status().message()));
    engine_.queues()[q.name] = *parsed;
  }
  auto tokens = store_->ListTokens();
  if (!tokens.ok()) return tokens.status();
  {
    std::lock_guard<std::mutex> tokens_lock(tokens_mu_);
    for (const auto& t : *tokens) tokens_[t.token_hash] = t;
  }
  auto nodes = store_->ListNodes();
  if (!nodes.ok()) return nodes.status();
  for (const auto& n : *nodes) {
    json spec = json::parse(n.spec_json, nullptr, false);
    auto node = wire::NodeFromJson(spec.is_object() ? spec.value("node", json::object()) : json::object());
    if (!node.ok()) return absl::DataLossError(absl::StrCat("stored node '", n.name, "': ", node.status().message()));
    NodeEntry e;
    e.rec = n;
    e.node = *node;
    e.agent_url = spec.value("agent_url", "");
    e.log_key = spec.value("log_key", "");
    e.drained = spec.value("drained", false);
    e.drained_devices = spec.value("drained_devices", std::set<int32_t>{});
    e.unhealthy_reason = spec.value("unhealthy_reason", "");
    // Until its agent speaks again, a node is not ready but keeps its tasks:
    // the agent re-adopts them and reports their state (no task runs twice).
    e.rec.heartbeat_ms = clock_->NowMs();
    engine_.nodes()[n.name] = std::move(e);
  }
  store::JobQuery open;
  open.states = {JobState::kPending, JobState::kRunning};
  auto jobs = store_->ListJobs(open);
  if (!jobs.ok()) return jobs.status();
  const api::SpecLimits stored = StoredSpecLimits();
  // Open jobs, and ended ones whose tasks are still active (being stopped).
  std::map<int64_t, store::JobRecord> records;
  for (auto& r : *jobs) records.emplace(r.id, std::move(r));
  auto active = store_->ListActiveTasks();
  if (!active.ok()) return active.status();
  for (const auto& t : *active) {
    if (records.count(t.job_id)) continue;
    auto r = store_->GetJob(t.job_id);
    if (!r.ok()) return r.status();
    records.emplace(t.job_id, *std::move(r));
  }
  // An array's elements, stored one after another, share one spec: parsed
  // once (a 100,000-element array is not 100,000 YAML parses at start).
  std::string last_json;
  absl::StatusOr<api::JobSpec> spec = absl::UnknownError("no job parsed yet");
  for (auto& [id, r] : records) {
    if (r.spec_json != last_json || !spec.ok()) {
      spec = api::ParseJobSpec(r.spec_json, stored);
      last_json = r.spec_json;
    }
    if (!spec.ok()) return absl::DataLossError(absl::StrCat("stored job ", id, ": ", spec.status().message()));
    JobEntry j;
    j.spec = *spec;
    j.core = api::ToCoreJob(j.spec, JobId(id), r.user, r.submit_ms);
    j.devices = SpecDevices(j.spec);
    j.rec = std::move(r);
    auto tasks = store_->ListTasks(id);
    if (!tasks.ok()) return tasks.status();
    for (const auto& t : *tasks) {
      TaskEntry e;
      e.rec = t;
      json p = json::parse(t.placement_json, nullptr, false);
      if (p.is_object()) {
        if (auto pl = wire::PlacementFromJson(p.value("placement", json::object())); pl.ok()) e.placement = *pl;
        if (auto as = wire::AssignmentFromJson(p.value("assignment", json::object())); as.ok()) e.assignment = *as;
        j.waits_for = p.value("waits_for", std::vector<int64_t>{});
      }
      j.tasks.push_back(std::move(e));
    }
    engine_.NoteDependencies(j, +1);
    engine_.AddJob(std::move(j));
  }
  return LoadEndedDependencies();
}

// --- helpers (mu_ held) -------------------------------------------------------------

int64_t Controller::RestartBackoffMs(int32_t failures) const { return engine_.RestartBackoffMs(failures); }

void Controller::Touch(const std::string& node) {
  auto it = engine_.nodes().find(node);
  if (it != engine_.nodes().end()) {
    ++it->second.version;
    if (assignment_listener_) assignment_listener_(node);
  }
  changed_.notify_all();
}

void Controller::SetAssignmentListener(std::function<void(const std::string& node)> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  assignment_listener_ = std::move(listener);
}

Controller::WriteLock::WriteLock(Controller& c)
    : c_(c), writer_(c.write_mu_), state_(c.mu_), thread_(std::this_thread::get_id()) {
  c_.writer_.store(this);
}

Controller::WriteLock::~WriteLock() { c_.writer_.store(nullptr); }

absl::Status Controller::Commit(engine::Change change) {
  WriteLock* writer = writer_.load();
  if (writer == nullptr || writer->thread_ != std::this_thread::get_id() || !writer->state_.owns_lock()) {
    return absl::InternalError("a change was committed without the controller's write lock (a bug)");
  }
  absl::StatusOr<std::set<int64_t>> touched = outbox_.Add(change, engine_);
  if (!touched.ok()) return touched.status();  // nothing applied: the change is made again later
  const bool notify = !change.batch.notifications.empty();
  if (!change.batch.empty()) {
    AddUsage(change.batch);
    // Readers go on while the disk works; no writer can (write_mu_), so
    // the state this change was made from is the one it is adopted into.
    absl::Status st;
    {
      ReadersGo go(*writer);
      st = store_->Apply(std::move(change.batch));
    }
    if (!st.ok()) {
      outbox_.Settle(*touched, /*committed=*/false);  // counts that took in a change that did not happen
      return st;
    }
  }
  outbox_.Settle(*touched, /*committed=*/true);
  if (notify) webhooks_->Kick();
  for (const auto& [id, j] : change.jobs) {
    const engine::JobEntry* before = engine_.FindJob(id);
    const int64_t lost_ms = j.rec.lost_device_ms - (before != nullptr ? before->rec.lost_device_ms : 0);
    if (lost_ms > 0) counters_.lost_device_seconds.Inc({j.rec.queue}, static_cast<double>(lost_ms) / 1000.0);
  }
  for (const std::string& node : engine_.Adopt(std::move(change))) Touch(node);
  return absl::OkStatus();
}

// --- queues and nodes -------------------------------------------------------------

absl::StatusOr<std::vector<QueueView>> Controller::ListQueues(const Principal& caller) const {
  if (absl::Status st = Authorize(caller, Action::kReadQueues); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, QueueView> out;
  out["default"].queue.name = "default";
  for (const auto& [n, q] : engine_.queues()) out[n].queue = q;
  // The engine's index of each queue's own jobs: no walk over every job
  // under the lock. Usage counts toward the queue and every ancestor, as
  // quotas do.
  for (const auto& [name, load] : engine_.QueueLoads()) {
    auto own = out.find(name);
    if (own == out.end()) continue;  // a queue since deleted
    own->second.pending += load.pending;
    own->second.running += load.running;
    std::string q = name;
    for (int depth = 0; depth < 64 && !q.empty(); ++depth) {  // depth: a bad tree cannot loop
      auto it = out.find(q);
      if (it == out.end()) break;
      for (const auto& [k, v] : load.used) it->second.used[k] += v;
      q = it->second.queue.parent;
    }
  }
  std::vector<QueueView> v;
  for (auto& [n, q] : out) {
    if (!MaySeeQueueWebhook(caller) && !q.queue.notify_url.empty()) q.queue.notify_url = "(hidden)";
    v.push_back(std::move(q));
  }
  return v;
}

absl::Status Controller::PutQueue(const Principal& caller, const core::Queue& queue) {
  if (absl::Status st = Authorize(caller, Action::kChangeQueues); !st.ok()) return st;
  WriteLock lock(*this);
  if (!queue.parent.empty() && queue.parent != "default" && !engine_.queues().count(queue.parent)) {
    return absl::InvalidArgumentError(absl::StrCat("parent queue '", queue.parent, "' does not exist"));
  }
  if (!queue.notify_url.empty()) {
    if (auto url = api::ParseWebhookUrl(queue.notify_url); !url.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("queue notify: ", url.status().message()));
    }
  }
  engine::Change c(clock_->NowMs());
  c.batch.queues.push_back({queue.name, wire::QueueToJson(queue).dump()});
  if (absl::Status st = Commit(std::move(c)); !st.ok()) return st;
  engine_.queues()[queue.name] = queue;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NodeView>> Controller::ListNodes(const Principal& caller) const {
  if (absl::Status st = Authorize(caller, Action::kReadNodes); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<NodeView> out;
  std::map<std::string, size_t> index;
  for (const auto& [name, n] : engine_.nodes()) {
    NodeView v;
    v.record = n.rec;
    v.node = n.node;
    v.agent_url = n.agent_url;
    v.ready = n.rec.state == "Ready";
    v.drained = n.drained;
    index[name] = out.size();
    v.unhealthy_reason = n.unhealthy_reason;
    if (v.ready) v.usage = n.usage;
    v.slow_reason = slow_nodes_.Judge(name).reason;
    for (int32_t d : n.drained_devices) {
      if (d >= 0 && d < static_cast<int32_t>(v.node.devices.size())) v.node.devices[d].drained = true;
    }
    out.push_back(std::move(v));
  }
  // One walk over the active tasks, not one per node (nor over every open job).
  for (int64_t id : engine_.JobsWithActiveTasks()) {
    const JobEntry& j = *engine_.FindJob(id);
    for (const auto& t : j.tasks) {
      if (!store::IsActive(t.rec.state)) continue;
      auto it = index.find(t.rec.node);
      if (it == index.end()) continue;
      NodeView& v = out[it->second];
      ++v.tasks;
      // Users see that a device is taken, but whose job it is only for their own.
      const bool visible = MaySeeJobsOf(caller, j.rec.user);
      for (const auto& slice : t.placement.devices) {
        DeviceAllocation a{.device = slice.device, .percent = slice.percent, .memory_mib = slice.memory_mib};
        if (visible) {
          a.job_id = j.rec.id;
          a.job_name = j.rec.name;
          a.user = j.rec.user;
          a.task_id = wire::TaskId(t.rec.job_id, t.rec.group, t.rec.replica, t.rec.attempt);
        }
        v.allocations.push_back(std::move(a));
      }
    }
  }
  return out;
}

// --- agent protocol ------------------------------------------------------------------

std::string Controller::NodeSpecJson(const NodeEntry& e, const core::Node& node, const std::string& agent_url,
                                     const std::string& log_key) {
  return json{{"node", wire::NodeToJson(node)},
              {"agent_url", agent_url},
              {"log_key", log_key},
              {"drained", e.drained},
              {"drained_devices", e.drained_devices},
              {"unhealthy_reason", e.unhealthy_reason}}
      .dump();
}

absl::Status Controller::DrainNode(const Principal& caller, const std::string& name, bool drain) {
  if (absl::Status st = Authorize(caller, Action::kChangeNodes); !st.ok()) return st;
  WriteLock lock(*this);
  auto it = engine_.nodes().find(name);
  if (it == engine_.nodes().end()) return absl::NotFoundError(absl::StrCat("no node '", name, "'"));
  NodeEntry& n = it->second;
  if (n.drained == drain) return absl::OkStatus();
  store::NodeRecord rec = n.rec;
  NodeEntry next = n;
  next.drained = drain;
  rec.spec_json = NodeSpecJson(next, n.node, n.agent_url, n.log_key);
  engine::Change c(clock_->NowMs());
  c.batch.nodes.push_back(rec);
  // Running tasks stay (as `scontrol update state=drain` in Slurm); nothing new lands.
  c.Event(0, name, drain ? "NodeDrained" : "NodeResumed",
          absl::StrCat(drain ? "drained" : "resumed", " by ", caller.name));
  if (absl::Status st = Commit(std::move(c)); !st.ok()) return st;
  n.rec = rec;
  n.drained = drain;
  ++n.generation;  // a pass in flight must not place onto it
  return absl::OkStatus();
}

absl::Status Controller::DrainDevice(const Principal& caller, const std::string& name, int32_t device, bool drain) {
  if (absl::Status st = Authorize(caller, Action::kChangeNodes); !st.ok()) return st;
  WriteLock lock(*this);
  auto it = engine_.nodes().find(name);
  if (it == engine_.nodes().end()) return absl::NotFoundError(absl::StrCat("no node '", name, "'"));
  NodeEntry& n = it->second;
  if (device < 0 || device >= static_cast<int32_t>(n.node.devices.size())) {
    return absl::NotFoundError(
        absl::StrCat("node '", name, "' has no device ", device, " (it has ", n.node.devices.size(), ")"));
  }
  if (n.drained_devices.contains(device) == drain) return absl::OkStatus();
  NodeEntry next = n;
  if (drain) {
    next.drained_devices.insert(device);
  } else {
    next.drained_devices.erase(device);
  }
  store::NodeRecord rec = n.rec;
  rec.spec_json = NodeSpecJson(next, n.node, n.agent_url, n.log_key);
  engine::Change c(clock_->NowMs());
  c.batch.nodes.push_back(rec);
  const core::Device& d = n.node.devices[device];
  c.Event(0, name, drain ? "DeviceDrained" : "DeviceResumed",
          absl::StrCat("device ", device, " (", d.vendor, "/", d.model, ") ", drain ? "drained" : "resumed", " by ",
                       caller.name));
  if (absl::Status st = Commit(std::move(c)); !st.ok()) return st;
  n.rec = rec;
  n.drained_devices = std::move(next.drained_devices);
  ++n.generation;  // a pass in flight must not place onto it
  return absl::OkStatus();
}

std::string Controller::AgentLogKey(const std::string& agent_url) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, n] : engine_.nodes()) {
    if (n.agent_url == agent_url) return n.log_key;
  }
  return "";
}

absl::StatusOr<std::string> Controller::RegisterNode(const Principal& caller, const core::Node& node,
                                                     const std::string& address, const std::string& agent_url,
                                                     const std::string& log_key, const std::string& unhealthy_reason) {
  auto credential = DoRegisterNode(caller, node, address, agent_url, log_key, unhealthy_reason);
  if (credential.ok()) Wake();
  return credential;
}

absl::StatusOr<std::string> Controller::DoRegisterNode(const Principal& caller, const core::Node& node,
                                                       const std::string& address, const std::string& agent_url,
                                                       const std::string& log_key,
                                                       const std::string& unhealthy_reason) {
  // A join token joins new nodes; a node's credential re-registers only its own.
  const Action action = RegistrationAction(caller);
  if (absl::Status st = Authorize(caller, action, node.name); !st.ok()) return st;
  if (node.name.empty()) return absl::InvalidArgumentError("node name is empty");
  {
    std::vector<core::Node> one = {node};
    if (auto st = core::ClusterState::Build(one); !st.ok()) return st.status();
  }
  // A node that joins with a join token gets a credential of its own, bound
  // to its name; a name that has one is not anyone else's to take.
  std::optional<std::pair<store::TokenRecord, std::string>> credential;
  if (action == Action::kJoinNode) {
    auto made = NewToken(Role::kNode, "", absl::StrCat("node-", node.name), {});
    if (!made.ok()) return made.status();
    made->first.node = node.name;
    credential = *std::move(made);
  }
  WriteLock lock(*this);
  if (credential.has_value()) {
    std::lock_guard<std::mutex> tokens_lock(tokens_mu_);
    for (const auto& [hash, t] : tokens_) {
      if (t.role == "node" && t.node == node.name && !t.revoked) {
        return absl::PermissionDeniedError(absl::StrCat(
            "node '", node.name, "' has joined already and holds its own credential; a join token cannot take its ",
            "name (a restarted agent uses the credential in its work directory; to replace the node, revoke it: ",
            "icos token revoke ", hash.substr(0, 12), ")"));
      }
    }
  }
  const int64_t now = clock_->NowMs();
  NodeEntry& e = engine_.nodes()[node.name];
  const bool fresh = e.rec.name.empty();
  e.rec.name = node.name;
  const std::string was_unhealthy = e.unhealthy_reason;
  e.unhealthy_reason = unhealthy_reason;
  e.rec.spec_json = NodeSpecJson(e, node, agent_url, log_key);
  e.rec.state = "Ready";
  e.rec.address = address;
  if (fresh) e.rec.registered_ms = now;
  e.rec.heartbeat_ms = now;
  engine::Change c(clock_->NowMs());
  c.batch.nodes.push_back(e.rec);
  if (credential.has_value()) c.batch.tokens.push_back(credential->first);
  c.Event(0, node.name, fresh ? "NodeJoined" : "NodeReregistered",
          absl::StrCat(node.devices.size(), " devices, ", node.cpu_milli / 1000, " CPUs, agent ", agent_url));
  // Devices that turned unhealthy (or vanished) since the node last spoke:
  // the tasks on them fail at once with the reason, and their restart policy
  // moves them to healthy devices.
  std::map<int32_t, std::string> sick;
  for (size_t i = 0; i < e.node.devices.size(); ++i) {
    const core::Device& was = e.node.devices[i];
    if (i >= node.devices.size()) {
      sick[static_cast<int32_t>(i)] = absl::StrCat("device ", i, " (", was.vendor, "/", was.model, ") vanished");
    } else if (was.healthy && !node.devices[i].healthy) {
      sick[static_cast<int32_t>(i)] =
          absl::StrCat("device ", i, " (", was.vendor, "/", was.model, ") became unhealthy");
    }
  }
  for (const auto& [index, why] : sick) c.Event(0, node.name, "DeviceUnhealthy", why);
  // The node's health-check program (Slurm's HealthCheckProgram): a failing
  // node keeps its running tasks but gets no new ones until it passes again.
  if (unhealthy_reason != was_unhealthy) {
    c.Event(0, node.name, unhealthy_reason.empty() ? "NodeHealthy" : "NodeUnhealthy",
            unhealthy_reason.empty() ? "health check passed" : absl::StrCat("health check failed: ", unhealthy_reason));
  }
  engine_.FailTasksOnDevices(node.name, sick, c);
  ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
  if (credential.has_value()) {
    std::lock_guard<std::mutex> tokens_lock(tokens_mu_);
    tokens_[credential->first.token_hash] = credential->first;
  }
  e.node = node;
  e.agent_url = agent_url;
  e.log_key = log_key;
  ++e.generation;
  Touch(node.name);
  return credential.has_value() ? credential->second : std::string();
}

absl::StatusOr<std::vector<std::pair<int64_t, int64_t>>> Controller::EndedJobs(const Principal& caller,
                                                                               const std::string& node,
                                                                               const std::vector<int64_t>& jobs) {
  if (absl::Status st = Authorize(caller, Action::kSpeakForNode, node); !st.ok()) return st;
  if (jobs.size() > kMaxEndedJobsQuestion) {
    return absl::InvalidArgumentError(absl::StrCat("at most ", kMaxEndedJobsQuestion, " jobs per question"));
  }
  std::vector<int64_t> closed;  // not open here: the store says how they stand
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (int64_t id : jobs) {
      if (engine_.FindJob(id) == nullptr) closed.push_back(id);
    }
  }
  std::vector<std::pair<int64_t, int64_t>> ended;
  for (int64_t id : closed) {
    absl::StatusOr<store::JobRecord> j = store_->GetJob(id);
    if (absl::IsNotFound(j.status())) continue;
    if (!j.ok()) return j.status();
    if (store::IsTerminal(j->state) && j->end_ms > 0) ended.emplace_back(id, j->end_ms);
  }
  return ended;
}

namespace {

// Whether a heartbeat of agent process `instance` numbered `seq` was
// overtaken: a later one of the same process, or one of a process that
// replaced it, was applied. Else it becomes the node's latest.
bool OvertakenBeat(engine::NodeEntry& n, const std::string& instance, int64_t seq) {
  if (instance.empty()) return false;  // an older agent: in arrival order
  if (instance == n.beat_instance) {
    if (seq <= n.beat_seq) return true;
  } else {
    if (std::find(n.retired_instances.begin(), n.retired_instances.end(), instance) != n.retired_instances.end()) {
      return true;
    }
    if (!n.beat_instance.empty()) {
      n.retired_instances.push_back(n.beat_instance);
      if (n.retired_instances.size() > 8) n.retired_instances.erase(n.retired_instances.begin());
    }
    n.beat_instance = instance;
  }
  n.beat_seq = seq;
  return false;
}

}  // namespace

absl::StatusOr<wire::HeartbeatReply> Controller::Heartbeat(const Principal& caller, const std::string& node,
                                                           const std::vector<wire::TaskStatus>& statuses,
                                                           const std::vector<wire::DeviceUsage>& devices,
                                                           const std::string& instance, int64_t seq) {
  if (absl::Status st = Authorize(caller, Action::kSpeakForNode, node); !st.ok()) return st;
  bool changed = false;
  wire::HeartbeatReply reply;
  {
    WriteLock lock(*this);
    auto nit = engine_.nodes().find(node);
    if (nit == engine_.nodes().end())
      return absl::NotFoundError(absl::StrCat("node '", node, "' is not registered; register first"));
    const int64_t now = clock_->NowMs();
    engine::Change c(now);
    NodeEntry& n = nit->second;
    if (OvertakenBeat(n, instance, seq)) {
      // Its news is older than what was applied: nothing of it is, and
      // nothing is acknowledged (the agent reports ends until they are).
      counters_.overtaken_heartbeats.Inc({node});
      reply.version = n.version;
      reply.heartbeat_ms = AgentPaceLocked();
      reply.lease_ms = options_.node_lease_ms;
      return reply;
    }
    // Figures for another number of devices than the node registered (an
    // agent mid-change) are dropped; the task states are what must not be.
    const bool usage_fits = !devices.empty() && devices.size() == n.node.devices.size();
    if (usage_fits) n.usage = devices;
    if (n.rec.state != "Ready") {
      n.rec.state = "Ready";
      c.batch.nodes.push_back(n.rec);
      c.Event(0, node, "NodeReady", "agent is back");
      changed = true;
    }
    n.rec.heartbeat_ms = now;  // kept in memory; persisting every beat would cost a write per node per beat
    counters_.heartbeats.Inc({node});
    changed = engine_.ApplyTaskReports(node, statuses, c) || changed;
    ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
    // A watch answer computed before this commit may still list the tasks
    // that just ended; one computed after has a newer version.
    if (changed) Touch(node);
    if (usage_fits) engine_.SampleDeviceUse(node, devices);
    Prune();
    // Every reported end is durable now (or was before): acknowledge it.
    reply.acked = engine_.RecordedEnds(node, statuses);
    reply.version = n.version;
    reply.heartbeat_ms = AgentPaceLocked();
    reply.lease_ms = options_.node_lease_ms;
  }
  if (changed) Wake();
  // Its replicas' command probes: the prober folds them, for replicas of this node only.
  for (const wire::TaskStatus& s : statuses) {
    int64_t job;
    int32_t group, replica, attempt;
    if (s.probes.empty() || !wire::ParseTaskId(s.task_id, &job, &group, &replica, &attempt)) continue;
    prober_->ObserveCommandOutcomes(node, instance, job, attempt, s.probes);
  }
  return reply;
}

absl::StatusOr<Assignments> Controller::WatchAssignments(const Principal& caller, const std::string& node,
                                                         uint64_t since, int64_t wait_ms) {
  if (absl::Status st = Authorize(caller, Action::kSpeakForNode, node); !st.ok()) return st;
  std::unique_lock<std::mutex> lock(mu_);
  auto version = [&]() -> uint64_t {
    auto it = engine_.nodes().find(node);
    return it == engine_.nodes().end() ? 0 : it->second.version;
  };
  if (version() == 0) return absl::NotFoundError(absl::StrCat("node '", node, "' is not registered; register first"));
  changed_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(0, wait_ms)),
                    [&] { return version() != since || stop_; });
  Assignments out;
  out.version = version();
  out.tasks = engine_.AssignmentsOf(node);
  return out;
}

// --- loop ------------------------------------------------------------------------------

void Controller::Wake() {
  std::lock_guard<std::mutex> lock(loop_mu_);
  wake_ = true;
  loop_cv_.notify_all();
}

void Controller::Start() {
  std::lock_guard<std::mutex> lock(loop_mu_);
  if (loop_.joinable()) return;
  stop_ = false;
  loop_ = std::thread([this] { Loop(); });
  if (options_.forecast_interval_ms > 0) forecast_thread_ = std::thread([this] { ForecastLoop(); });
  webhooks_->Start();
  prober_->Start();
}

void Controller::Stop() {
  {
    std::lock_guard<std::mutex> lock(loop_mu_);
    stop_ = true;
    loop_cv_.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    changed_.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(forecast_mu_);
    forecast_cv_.notify_all();
  }
  if (loop_.joinable()) loop_.join();
  if (forecast_thread_.joinable()) forecast_thread_.join();
  webhooks_->Stop();
  prober_->Stop();
}

namespace {

// CPU time this thread has used: what a step cost, not what it waited for
// (a commit's fsync).
std::chrono::nanoseconds ThreadCpuTime() {
  struct timespec ts;
  if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return std::chrono::nanoseconds(0);
  return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

}  // namespace

void Controller::Loop() {
  // The CPU the last round of steps took, and when it ended. A woken round
  // first rests as long: with a long queue and submissions waking it all the
  // time, back-to-back passes would take a whole core from the submits,
  // heartbeats and reads that keep the cluster going; this way passes take
  // at most about half of one, and a short queue's pass waits well under a
  // millisecond.
  std::chrono::nanoseconds last_cost(0);
  auto last_end = std::chrono::steady_clock::now();
  while (true) {
    {
      std::unique_lock<std::mutex> lock(loop_mu_);
      loop_cv_.wait_for(lock, std::chrono::milliseconds(options_.pass_interval_ms), [&] { return wake_ || stop_; });
      if (stop_) return;
      loop_cv_.wait_until(lock, last_end + last_cost, [&] { return stop_.load(); });
      if (stop_) return;
      wake_ = false;
    }
    const std::chrono::nanoseconds cpu_start = ThreadCpuTime();
    // A failed step (the store away, a broken snapshot) is logged and
    // counted, and tried again next time: it must not stop the loop.
    auto step = [&](const char* name, const absl::Status& st) {
      if (st.ok()) return;
      counters_.loop_errors.Inc({name});
      log::Failure("controller loop step", st, absl::StrCat("step=", name));
    };
    step("check_nodes", CheckNodes());
    step("pass", RunPass());
    step("sample_utilisation", SampleUtilisation().status());
    step("flush_token_use", FlushTokenUse());
    last_cost = ThreadCpuTime() - cpu_start;
    last_end = std::chrono::steady_clock::now();
  }
}

}  // namespace icos::controller
