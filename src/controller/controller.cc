#include "controller/controller.h"

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <algorithm>
#include <chrono>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/frameworks.h"
#include "core/resources/cluster_state.h"

namespace icos::controller {
namespace {

using nlohmann::json;
using store::JobState;
using store::TaskState;

std::string Sha256Hex(const std::string& data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), digest, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

absl::StatusOr<std::string> NewSecret() {
  unsigned char bytes[24];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return absl::InternalError("no randomness for a token");
  static const char* kHex = "0123456789abcdef";
  std::string out = "icos_";
  for (unsigned char b : bytes) {
    out.push_back(kHex[b >> 4]);
    out.push_back(kHex[b & 15]);
  }
  return out;
}

bool Active(TaskState s) { return s == TaskState::kAssigned || s == TaskState::kRunning; }

}  // namespace

api::SpecLimits StoredSpecLimits() {
  // Stored specs are canonical JSON, which can be larger than the YAML a user sent.
  api::SpecLimits stored;
  stored.max_bytes = 64 << 20;
  // A job accepted under higher limits than today's must still load.
  stored.max_job_tasks = std::numeric_limits<int32_t>::max();
  stored.max_assignment_bytes = std::numeric_limits<int64_t>::max();
  return stored;
}


Controller::Controller(ControllerOptions options, store::StateStore* store, Clock* clock)
    : options_(std::move(options)),
      store_(store),
      clock_(clock),
      scheduler_(*core::Scheduler::Create(options_.scheduler)) {}

absl::StatusOr<std::unique_ptr<Controller>> Controller::Create(ControllerOptions options, store::StateStore* store,
                                                               Clock* clock) {
  if (auto s = core::Scheduler::Create(options.scheduler); !s.ok()) return s.status();
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
  if (absl::Status st = c->LoadRuntimeHistory(); !st.ok()) return st;
  return c;
}

Controller::~Controller() { Stop(); }

absl::Status Controller::Load() {
  std::lock_guard<std::mutex> lock(mu_);
  auto queues = store_->ListQueues();
  if (!queues.ok()) return queues.status();
  for (const auto& q : *queues) {
    auto parsed = wire::QueueFromJson(json::parse(q.spec_json, nullptr, false));
    if (!parsed.ok())
      return absl::DataLossError(absl::StrCat("stored queue '", q.name, "': ", parsed.status().message()));
    queues_[q.name] = *parsed;
  }
  auto tokens = store_->ListTokens();
  if (!tokens.ok()) return tokens.status();
  for (const auto& t : *tokens) tokens_[t.token_hash] = t;
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
    nodes_[n.name] = std::move(e);
  }
  store::JobQuery open;
  open.states = {JobState::kPending, JobState::kRunning};
  auto jobs = store_->ListJobs(open);
  if (!jobs.ok()) return jobs.status();
  const api::SpecLimits stored = StoredSpecLimits();
  for (const auto& r : *jobs) {
    auto spec = api::ParseJobSpec(r.spec_json, stored);
    if (!spec.ok()) return absl::DataLossError(absl::StrCat("stored job ", r.id, ": ", spec.status().message()));
    JobEntry j;
    j.rec = r;
    j.spec = *spec;
    j.core = api::ToCoreJob(j.spec, JobId(r.id), r.user, r.submit_ms);
    j.devices = SpecDevices(j.spec);
    jobs_[r.id] = std::move(j);
  }
  // Tasks still active may belong to jobs that already ended (being stopped).
  auto active = store_->ListActiveTasks();
  if (!active.ok()) return active.status();
  std::set<int64_t> with_tasks;
  for (const auto& t : *active) with_tasks.insert(t.job_id);
  for (int64_t id : with_tasks) {
    if (!jobs_.count(id)) {
      auto r = store_->GetJob(id);
      if (!r.ok()) return r.status();
      auto spec = api::ParseJobSpec(r->spec_json, stored);
      if (!spec.ok()) return absl::DataLossError(absl::StrCat("stored job ", id, ": ", spec.status().message()));
      JobEntry j;
      j.rec = *r;
      j.spec = *spec;
      j.core = api::ToCoreJob(j.spec, JobId(id), r->user, r->submit_ms);
      j.devices = SpecDevices(j.spec);
      jobs_[id] = std::move(j);
    }
  }
  for (auto& [id, j] : jobs_) {
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
  }
  return absl::OkStatus();
}

// --- auth ----------------------------------------------------------------------

absl::StatusOr<Principal> Controller::Authenticate(const std::string& token) {
  if (token.empty()) {
    return absl::UnauthenticatedError("no token: send 'Authorization: Bearer <token>' (see `icos token create`)");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = tokens_.find(Sha256Hex(token));
  if (it == tokens_.end() || it->second.revoked) {
    return absl::UnauthenticatedError("unknown or revoked token: ask an admin for a new one (`icos token create`)");
  }
  store::TokenRecord& t = it->second;
  auto role = ParseRole(t.role);
  if (!role) return absl::UnauthenticatedError("token has an unknown role");
  const int64_t now = clock_->NowMs();
  if (t.expires_ms > 0 && now >= t.expires_ms) {
    return absl::UnauthenticatedError("token expired: ask an admin for a new one (`icos token create --ttl`)");
  }
  // Kept to the minute: a write per request would cost more than it tells.
  if (now - t.last_used_ms >= 60'000) {
    t.last_used_ms = now;
    token_use_dirty_.insert(t.token_hash);
  }
  return Principal{t.name, *role, t.user, t.uid, t.gid, t.node};
}

absl::StatusOr<std::pair<store::TokenRecord, std::string>> Controller::NewToken(Role role, const std::string& user,
                                                                                const std::string& name,
                                                                                const TokenOptions& options) const {
  if (role == Role::kUser && user.empty()) return absl::InvalidArgumentError("a user token needs --user");
  if (options.gid >= 0 && options.uid < 0) return absl::InvalidArgumentError("--gid needs --uid");
  if (options.ttl_ms < 0) return absl::InvalidArgumentError("--ttl must not be negative");
  auto secret = NewSecret();
  if (!secret.ok()) return secret.status();
  store::TokenRecord t;
  t.token_hash = Sha256Hex(*secret);
  t.name = name.empty() ? absl::StrCat(RoleName(role), "-", user) : name;
  t.role = RoleName(role);
  t.user = role == Role::kAdmin && user.empty() ? "admin" : user;
  t.created_ms = clock_->NowMs();
  t.uid = options.uid;
  t.gid = options.uid >= 0 && options.gid < 0 ? options.uid : options.gid;
  t.expires_ms = options.ttl_ms > 0 ? t.created_ms + options.ttl_ms : 0;
  return std::make_pair(t, *secret);
}

absl::StatusOr<std::string> Controller::CreateToken(const Principal& caller, Role role, const std::string& user,
                                                    const std::string& name, const TokenOptions& options) {
  if (absl::Status st = Authorize(caller, Action::kManageTokens); !st.ok()) return st;
  if (role == Role::kNode) {
    return absl::InvalidArgumentError("node credentials are made when a node joins with a join token (role agent)");
  }
  auto made = NewToken(role, user, name, options);
  if (!made.ok()) return made.status();
  store::WriteBatch b;
  b.tokens.push_back(made->first);
  if (absl::Status st = store_->Apply(std::move(b)); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  tokens_[made->first.token_hash] = made->first;
  return made->second;
}

absl::StatusOr<std::vector<store::TokenRecord>> Controller::ListTokens(const Principal& caller) const {
  if (absl::Status st = Authorize(caller, Action::kManageTokens); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<store::TokenRecord> out;
  for (const auto& [hash, t] : tokens_) out.push_back(t);
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return std::tie(b.created_ms, b.token_hash) < std::tie(a.created_ms, a.token_hash);
  });
  return out;
}

absl::StatusOr<store::TokenRecord> Controller::RevokeToken(const Principal& caller, const std::string& which) {
  if (absl::Status st = Authorize(caller, Action::kManageTokens); !st.ok()) return st;
  if (which.empty()) return absl::InvalidArgumentError("name the token to revoke (its id or name; icos token list)");
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<store::TokenRecord*> found;
  for (auto& [hash, t] : tokens_) {
    if (t.revoked) continue;
    if ((which.size() >= 8 && hash.rfind(which, 0) == 0) || t.name == which) found.push_back(&t);
  }
  if (found.empty()) return absl::NotFoundError(absl::StrCat("no active token '", which, "' (icos token list)"));
  if (found.size() > 1) {
    std::vector<std::string> ids;
    for (const auto* t : found) ids.push_back(t->token_hash.substr(0, 12));
    return absl::FailedPreconditionError(
        absl::StrCat("'", which, "' names ", found.size(), " tokens; revoke one by its id: ", absl::StrJoin(ids, ", ")));
  }
  store::TokenRecord revoked = *found[0];
  revoked.revoked = true;
  store::WriteBatch b;
  b.tokens.push_back(revoked);
  if (absl::Status st = store_->Apply(std::move(b)); !st.ok()) return st;
  *found[0] = revoked;
  return revoked;
}

absl::Status Controller::FlushTokenUse() {
  std::lock_guard<std::mutex> lock(mu_);
  if (token_use_dirty_.empty()) return absl::OkStatus();
  store::WriteBatch b;
  for (const std::string& hash : token_use_dirty_) {
    if (auto it = tokens_.find(hash); it != tokens_.end()) b.tokens.push_back(it->second);
  }
  if (absl::Status st = store_->Apply(std::move(b)); !st.ok()) return st;
  token_use_dirty_.clear();
  return absl::OkStatus();
}

absl::StatusOr<std::string> Controller::BootstrapAdminToken(const TokenOptions& run_as) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [h, t] : tokens_) {
      if (t.role == "admin" && !t.revoked) return std::string();
    }
  }
  return CreateToken(Principal{"bootstrap", Role::kAdmin, "admin"}, Role::kAdmin, "admin", "admin", run_as);
}

// --- helpers (mu_ held) -------------------------------------------------------------

bool Controller::HasActiveTasks(const JobEntry& j, bool older_attempts_only) const {
  for (const auto& t : j.tasks) {
    if (Active(t.rec.state) && (!older_attempts_only || t.rec.attempt < j.rec.attempt)) return true;
  }
  return false;
}

int32_t Controller::Failures(const JobEntry& j) const {
  std::set<int32_t> failed;
  for (const auto& t : j.tasks) {
    if (t.rec.state == TaskState::kFailed) failed.insert(t.rec.attempt);
  }
  return static_cast<int32_t>(failed.size());
}

bool Controller::ShouldRun(const JobEntry& j, const TaskEntry& t) const {
  if (j.rec.state != JobState::kRunning || t.rec.attempt != j.rec.attempt) return false;
  for (int64_t victim : j.waits_for) {
    auto it = jobs_.find(victim);
    if (it != jobs_.end() && HasActiveTasks(it->second, false)) return false;
  }
  return true;
}

void Controller::Touch(const std::string& node) {
  auto it = nodes_.find(node);
  if (it != nodes_.end()) {
    ++it->second.version;
    if (assignment_listener_) assignment_listener_(node);
  }
  changed_.notify_all();
}

void Controller::SetAssignmentListener(std::function<void(const std::string& node)> listener) {
  std::lock_guard<std::mutex> lock(mu_);
  assignment_listener_ = std::move(listener);
}

void Controller::TouchJob(const JobEntry& j) {
  for (const auto& t : j.tasks) {
    if (Active(t.rec.state)) Touch(t.rec.node);
  }
}

void Controller::Event(store::WriteBatch& b, int64_t job, const std::string& node, const std::string& kind,
                       std::string msg) {
  store::EventRecord e;
  e.job_id = job;
  e.node = node;
  e.time_ms = clock_->NowMs();
  e.kind = kind;
  e.message = std::move(msg);
  b.events.push_back(std::move(e));
}

absl::Status Controller::Commit(store::WriteBatch batch) {
  if (batch.empty()) return absl::OkStatus();
  AddUsage(batch);
  return store_->Apply(std::move(batch));
}

// Moves a job forward after its tasks changed: success, failure with or
// without a gang restart, the end of a cancel or preemption. REQUIRES mu_.
void Controller::EvaluateJob(JobEntry& j, store::WriteBatch& b) {
  const int64_t now = clock_->NowMs();
  if (j.rec.state != JobState::kRunning) {
    if (store::IsTerminal(j.rec.state) && !HasActiveTasks(j, false) && j.rec.end_ms == 0) {
      j.rec.end_ms = now;
      b.jobs.push_back(j.rec);
      NoteDeviceUse(j, b);
    }
    return;
  }
  int32_t total = 0, succeeded = 0;
  const TaskEntry* failed = nullptr;
  for (const auto& t : j.tasks) {
    if (t.rec.attempt != j.rec.attempt) continue;
    ++total;
    if (t.rec.state == TaskState::kSucceeded) ++succeeded;
    if ((t.rec.state == TaskState::kFailed || t.rec.state == TaskState::kKilled) && failed == nullptr) failed = &t;
  }
  if (total > 0 && succeeded == total) {
    j.rec.state = JobState::kSucceeded;
    j.rec.end_ms = now;
    j.rec.reason = "all tasks succeeded";
    b.jobs.push_back(j.rec);
    Event(b, j.rec.id, "", "Succeeded", absl::StrCat(total, " tasks succeeded"));
    NoteDeviceUse(j, b);
    return;
  }
  if (failed == nullptr) return;
  const std::string why = absl::StrCat("task ", failed->rec.group, "/", failed->rec.replica, " ",
                                       store::TaskStateName(failed->rec.state), ": ", failed->rec.reason);
  if (j.spec.restart == api::RestartPolicy::kOnFailure && Failures(j) <= j.spec.max_retries) {
    // A failed rank restarts the whole gang (torchrun's and Volcano's rule).
    j.rec.state = JobState::kPending;
    ++j.rec.attempt;
    j.rec.reason = absl::StrCat("restarting (", Failures(j), " of ", j.spec.max_retries, " retries used) after ", why);
    b.jobs.push_back(j.rec);
    Event(b, j.rec.id, failed->rec.node, "Restarting", j.rec.reason);
  } else {
    j.rec.state = JobState::kFailed;
    j.rec.reason = why;
    if (!HasActiveTasks(j, false)) j.rec.end_ms = now;
    b.jobs.push_back(j.rec);
    Event(b, j.rec.id, failed->rec.node, "Failed", why);
    if (j.rec.end_ms != 0) NoteDeviceUse(j, b);  // else when its last task has stopped
  }
  TouchJob(j);
}

// --- jobs -----------------------------------------------------------------------

absl::StatusOr<int64_t> Controller::Submit(const Principal& caller, const std::string& spec_text,
                                           const std::string& base_dir, const std::string& idempotency_key,
                                           bool* replayed) {
  if (absl::Status st = Authorize(caller, Action::kSubmitJob); !st.ok()) return st;
  if (replayed != nullptr) *replayed = false;
  if (idempotency_key.size() > 255 ||
      !std::all_of(idempotency_key.begin(), idempotency_key.end(), [](char ch) { return ch > 0x20 && ch < 0x7f; })) {
    return absl::InvalidArgumentError("Idempotency-Key must be 1-255 printable ASCII characters without spaces");
  }
  auto spec = api::ParseJobSpec(spec_text, options_.spec_limits);
  if (!spec.ok()) return spec.status();
  if (!base_dir.empty() && base_dir[0] == '/') {
    for (api::TaskSpec& t : spec->tasks) {
      if (t.workdir.empty()) {
        t.workdir = base_dir;
      } else if (t.workdir[0] != '/') {
        t.workdir = absl::StrCat(base_dir, "/", t.workdir);
      }
    }
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (spec->queue != "default" && !queues_.count(spec->queue)) {
      std::vector<std::string> names = {"default"};
      for (const auto& [n, q] : queues_) names.push_back(n);
      return absl::InvalidArgumentError(
          absl::StrCat("queue '", spec->queue, "' does not exist; queues: ", absl::StrJoin(names, ", ")));
    }
    for (const auto& [n, q] : queues_) {
      if (q.parent == spec->queue) {
        return absl::InvalidArgumentError(
            absl::StrCat("queue '", spec->queue, "' has child queues; submit to one of them (jobs go to leaf queues)"));
      }
    }
    // Priority decides who preempts whom in a queue: a user may ask only as
    // high as the queue allows (admins set that, and may ask for any).
    auto qit = queues_.find(spec->queue);
    const int32_t max_priority = qit != queues_.end() ? qit->second.max_priority : core::Queue().max_priority;
    if (caller.role != Role::kAdmin && spec->priority > max_priority) {
      return absl::PermissionDeniedError(absl::StrCat("priority ", spec->priority, " is above queue '", spec->queue,
                                                      "''s limit of ", max_priority,
                                                      " for users; ask an admin to raise the queue's max_priority"));
    }
  }
  store::JobRecord r;
  r.name = spec->name;
  r.user = caller.user;
  r.run_uid = caller.uid;
  r.run_gid = caller.gid;
  r.queue = spec->queue;
  r.priority = spec->priority;
  r.state = JobState::kPending;
  r.spec_json = api::JobSpecToJson(*spec);
  r.reason = "waiting for the next scheduling pass";
  r.submit_ms = clock_->NowMs();
  r.idempotency_key = idempotency_key;
  if (!idempotency_key.empty()) r.request_digest = Sha256Hex(r.spec_json);
  if (absl::Status st = store_->InsertJob(&r); !st.ok()) return st;
  if (r.replayed) {  // a retry: the first submission made the job
    if (replayed != nullptr) *replayed = true;
    return r.id;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    JobEntry j;
    j.rec = r;
    j.spec = *std::move(spec);
    j.core = api::ToCoreJob(j.spec, JobId(r.id), r.user, r.submit_ms);
    j.devices = SpecDevices(j.spec);
    if (learning_) learning_->Submitted(r.id, FactsOf(r, j.devices));
    jobs_[r.id] = std::move(j);
  }
  Wake();
  return r.id;
}

absl::StatusOr<JobView> Controller::GetJob(const Principal& caller, int64_t id) const {
  if (absl::Status st = Authorize(caller, Action::kReadJobs); !st.ok()) return st;
  auto job = store_->GetJob(id);
  if (!job.ok()) {
    return job.status().code() == absl::StatusCode::kNotFound ? absl::NotFoundError(absl::StrCat("no job ", id))
                                                              : job.status();
  }
  if (!MaySeeJobsOf(caller, job->user)) return absl::NotFoundError(absl::StrCat("no job ", id));
  JobView v;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(id);
    if (it != jobs_.end()) {
      v.job = it->second.rec;  // memory has the freshest reason
      v.device_use = it->second.device_use;
      v.estimate = api::EstimateOf(it->second.spec, it->second.learned_estimate_s);
    }
  }
  if (v.job.id == 0) {  // ended: the store has it, and its estimate is what its spec gives
    v.job = *job;
    if (auto spec = api::ParseJobSpec(v.job.spec_json, StoredSpecLimits()); spec.ok()) {
      v.estimate = api::EstimateOf(*spec);
    }
  }
  auto tasks = store_->ListTasks(id);
  if (!tasks.ok()) return tasks.status();
  v.tasks = *std::move(tasks);
  auto events = store_->ListEvents(id, 0, 200);
  if (!events.ok()) return events.status();
  v.events = *std::move(events);
  return v;
}

absl::StatusOr<std::vector<store::JobRecord>> Controller::ListJobs(const Principal& caller,
                                                                   store::JobQuery query) const {
  if (absl::Status st = Authorize(caller, Action::kReadJobs); !st.ok()) return st;
  if (caller.role != Role::kAdmin) query.user = caller.user;
  auto jobs = store_->ListJobs(query);
  if (!jobs.ok()) return jobs;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& r : *jobs) {
    auto it = jobs_.find(r.id);
    if (it != jobs_.end()) r.reason = it->second.rec.reason;
  }
  return jobs;
}

absl::Status Controller::Cancel(const Principal& caller, int64_t id) {
  if (absl::Status st = Authorize(caller, Action::kCancelJob); !st.ok()) return st;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = jobs_.find(id);
    if (it == jobs_.end() || !MaySeeJobsOf(caller, it->second.rec.user)) {
      auto stored = store_->GetJob(id);
      if (stored.ok() && MaySeeJobsOf(caller, stored->user)) {
        return absl::FailedPreconditionError(
            absl::StrCat("job ", id, " already ended (", store::JobStateName(stored->state), ")"));
      }
      return absl::NotFoundError(absl::StrCat("no job ", id));
    }
    JobEntry& j = it->second;
    if (store::IsTerminal(j.rec.state)) {
      return absl::FailedPreconditionError(
          absl::StrCat("job ", id, " already ended (", store::JobStateName(j.rec.state), ")"));
    }
    store::WriteBatch b;
    JobEntry next = j;
    next.rec.state = JobState::kCancelled;
    next.rec.reason = absl::StrCat("cancelled by ", caller.name);
    if (!HasActiveTasks(next, false)) next.rec.end_ms = clock_->NowMs();
    b.jobs.push_back(next.rec);
    Event(b, id, "", "Cancelled", next.rec.reason);
    if (next.rec.end_ms != 0) NoteDeviceUse(next, b);  // else when its tasks have stopped
    if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
    j = std::move(next);
    TouchJob(j);
    Prune();
  }
  Wake();
  return absl::OkStatus();
}

absl::StatusOr<LogLocation> Controller::LocateLog(const Principal& caller, int64_t job_id, int32_t task_index) const {
  auto view = GetJob(caller, job_id);
  if (!view.ok()) return view.status();
  if (view->tasks.empty())
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " has not started; no logs yet"));
  // The latest attempt's tasks, in (group, replica) order.
  int32_t attempt = 0;
  for (const auto& t : view->tasks) attempt = std::max(attempt, t.attempt);
  std::vector<const store::TaskRecord*> current;
  for (const auto& t : view->tasks) {
    if (t.attempt == attempt) current.push_back(&t);
  }
  if (task_index < 0 || task_index >= static_cast<int32_t>(current.size())) {
    return absl::InvalidArgumentError(absl::StrCat("job ", job_id, " has tasks 0..", current.size() - 1));
  }
  const store::TaskRecord& t = *current[task_index];
  LogLocation loc;
  loc.task_id = wire::TaskId(t.job_id, t.group, t.replica, t.attempt);
  loc.finished = store::IsTerminal(t.state);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(t.node);
  if (it == nodes_.end()) return absl::UnavailableError(absl::StrCat("node '", t.node, "' of the task is unknown"));
  loc.agent_url = it->second.agent_url;
  return loc;
}

// --- queues and nodes -------------------------------------------------------------

absl::StatusOr<std::vector<QueueView>> Controller::ListQueues(const Principal& caller) const {
  if (absl::Status st = Authorize(caller, Action::kReadQueues); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  std::map<std::string, QueueView> out;
  out["default"].queue.name = "default";
  for (const auto& [n, q] : queues_) out[n].queue = q;
  for (const auto& [id, j] : jobs_) {
    auto it = out.find(j.rec.queue);
    if (it == out.end()) continue;
    if (j.rec.state == JobState::kPending) ++it->second.pending;
    if (j.rec.state == JobState::kRunning) ++it->second.running;
  }
  // Usage counts toward the queue and every ancestor, as quotas do.
  for (const auto& [id, j] : jobs_) {
    for (const auto& t : j.tasks) {
      if (!Active(t.rec.state)) continue;
      core::ResourceAmounts take{{"cpu", t.placement.cpu_milli}, {"memory", t.placement.memory_mib}};
      auto node = nodes_.find(t.rec.node);
      for (const auto& slice : t.placement.devices) {
        if (node == nodes_.end() || slice.device < 0 ||
            slice.device >= static_cast<int32_t>(node->second.node.devices.size())) {
          continue;
        }
        const core::Device& d = node->second.node.devices[slice.device];
        const int64_t milli = int64_t{slice.percent} * 10;  // 100% is one device, 1000 milli
        take["devices"] += milli;
        take[d.vendor] += milli;
        take[absl::StrCat(d.vendor, "/", d.model)] += milli;
      }
      std::string q = j.rec.queue.empty() ? "default" : j.rec.queue;
      for (int depth = 0; depth < 64 && !q.empty(); ++depth) {  // depth: a bad tree cannot loop
        auto it = out.find(q);
        if (it == out.end()) break;
        for (const auto& [k, v] : take) it->second.used[k] += v;
        q = it->second.queue.parent;
      }
    }
  }
  std::vector<QueueView> v;
  for (auto& [n, q] : out) v.push_back(std::move(q));
  return v;
}

absl::Status Controller::PutQueue(const Principal& caller, const core::Queue& queue) {
  if (absl::Status st = Authorize(caller, Action::kChangeQueues); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  if (!queue.parent.empty() && queue.parent != "default" && !queues_.count(queue.parent)) {
    return absl::InvalidArgumentError(absl::StrCat("parent queue '", queue.parent, "' does not exist"));
  }
  store::WriteBatch b;
  b.queues.push_back({queue.name, wire::QueueToJson(queue).dump()});
  if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
  queues_[queue.name] = queue;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<NodeView>> Controller::ListNodes(const Principal& caller) const {
  if (absl::Status st = Authorize(caller, Action::kReadNodes); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<NodeView> out;
  std::map<std::string, size_t> index;
  for (const auto& [name, n] : nodes_) {
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
  // One walk over the active tasks, not one per node.
  for (const auto& [id, j] : jobs_) {
    for (const auto& t : j.tasks) {
      if (!Active(t.rec.state)) continue;
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
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("no node '", name, "'"));
  NodeEntry& n = it->second;
  if (n.drained == drain) return absl::OkStatus();
  store::NodeRecord rec = n.rec;
  NodeEntry next = n;
  next.drained = drain;
  rec.spec_json = NodeSpecJson(next, n.node, n.agent_url, n.log_key);
  store::WriteBatch b;
  b.nodes.push_back(rec);
  // Running tasks stay (as `scontrol update state=drain` in Slurm); nothing new lands.
  Event(b, 0, name, drain ? "NodeDrained" : "NodeResumed",
        absl::StrCat(drain ? "drained" : "resumed", " by ", caller.name));
  if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
  n.rec = rec;
  n.drained = drain;
  ++n.generation;  // a pass in flight must not place onto it
  return absl::OkStatus();
}

absl::Status Controller::DrainDevice(const Principal& caller, const std::string& name, int32_t device, bool drain) {
  if (absl::Status st = Authorize(caller, Action::kChangeNodes); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = nodes_.find(name);
  if (it == nodes_.end()) return absl::NotFoundError(absl::StrCat("no node '", name, "'"));
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
  store::WriteBatch b;
  b.nodes.push_back(rec);
  const core::Device& d = n.node.devices[device];
  Event(b, 0, name, drain ? "DeviceDrained" : "DeviceResumed",
        absl::StrCat("device ", device, " (", d.vendor, "/", d.model, ") ", drain ? "drained" : "resumed", " by ",
                     caller.name));
  if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
  n.rec = rec;
  n.drained_devices = std::move(next.drained_devices);
  ++n.generation;  // a pass in flight must not place onto it
  return absl::OkStatus();
}

std::string Controller::AgentLogKey(const std::string& agent_url) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [name, n] : nodes_) {
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
  if (absl::Status st = Authorize(caller, caller.role == Role::kAgent ? Action::kJoinNode : Action::kSpeakForNode,
                                  node.name);
      !st.ok()) {
    return st;
  }
  if (node.name.empty()) return absl::InvalidArgumentError("node name is empty");
  {
    std::vector<core::Node> one = {node};
    if (auto st = core::ClusterState::Build(one); !st.ok()) return st.status();
  }
  // A node that joins with a join token gets a credential of its own, bound
  // to its name; a name that has one is not anyone else's to take.
  std::optional<std::pair<store::TokenRecord, std::string>> credential;
  if (caller.role == Role::kAgent) {
    auto made = NewToken(Role::kNode, "", absl::StrCat("node-", node.name), {});
    if (!made.ok()) return made.status();
    made->first.node = node.name;
    credential = *std::move(made);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (credential.has_value()) {
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
  NodeEntry& e = nodes_[node.name];
  const bool fresh = e.rec.name.empty();
  e.rec.name = node.name;
  const std::string was_unhealthy = e.unhealthy_reason;
  e.unhealthy_reason = unhealthy_reason;
  e.rec.spec_json = NodeSpecJson(e, node, agent_url, log_key);
  e.rec.state = "Ready";
  e.rec.address = address;
  if (fresh) e.rec.registered_ms = now;
  e.rec.heartbeat_ms = now;
  store::WriteBatch b;
  b.nodes.push_back(e.rec);
  if (credential.has_value()) b.tokens.push_back(credential->first);
  Event(b, 0, node.name, fresh ? "NodeJoined" : "NodeReregistered",
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
  for (const auto& [index, why] : sick) Event(b, 0, node.name, "DeviceUnhealthy", why);
  // The node's health-check program (Slurm's HealthCheckProgram): a failing
  // node keeps its running tasks but gets no new ones until it passes again.
  if (unhealthy_reason != was_unhealthy) {
    Event(b, 0, node.name, unhealthy_reason.empty() ? "NodeHealthy" : "NodeUnhealthy",
          unhealthy_reason.empty() ? "health check passed" : absl::StrCat("health check failed: ", unhealthy_reason));
  }
  std::map<int64_t, JobEntry> touched;
  for (auto& [id, job] : jobs_) {
    for (size_t t = 0; t < job.tasks.size() && !sick.empty(); ++t) {
      const TaskEntry& task = job.tasks[t];
      if (task.rec.node != node.name || !Active(task.rec.state)) continue;
      std::string why;
      for (const auto& slice : task.placement.devices) {
        if (auto it = sick.find(slice.device); it != sick.end()) why = it->second;
      }
      if (why.empty()) continue;
      auto jt = touched.find(id);
      if (jt == touched.end()) jt = touched.emplace(id, job).first;
      TaskEntry& failed = jt->second.tasks[t];
      failed.rec.state = TaskState::kFailed;
      failed.rec.exit_code = -1;
      failed.rec.reason = why;
      failed.rec.end_ms = now;
      b.tasks.push_back(failed.rec);
      Event(b, id, node.name, "TaskFailed", absl::StrCat(failed.assignment.task_id, ": ", why));
    }
  }
  for (auto& [id, job] : touched) EvaluateJob(job, b);
  if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
  if (credential.has_value()) tokens_[credential->first.token_hash] = credential->first;
  for (auto& [id, job] : touched) jobs_[id] = std::move(job);
  e.node = node;
  e.agent_url = agent_url;
  e.log_key = log_key;
  ++e.generation;
  Touch(node.name);
  return credential.has_value() ? credential->second : std::string();
}

absl::StatusOr<wire::HeartbeatReply> Controller::Heartbeat(const Principal& caller, const std::string& node,
                                                           const std::vector<wire::TaskStatus>& statuses,
                                                           const std::vector<wire::DeviceUsage>& devices) {
  if (absl::Status st = Authorize(caller, Action::kSpeakForNode, node); !st.ok()) return st;
  bool changed = false;
  wire::HeartbeatReply reply;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto nit = nodes_.find(node);
    if (nit == nodes_.end())
      return absl::NotFoundError(absl::StrCat("node '", node, "' is not registered; register first"));
    const int64_t now = clock_->NowMs();
    store::WriteBatch b;
    NodeEntry& n = nit->second;
    // Figures for another number of devices than the node registered (an
    // agent mid-change) are dropped; the task states are what must not be.
    const bool usage_fits = !devices.empty() && devices.size() == n.node.devices.size();
    if (usage_fits) n.usage = devices;
    if (n.rec.state != "Ready") {
      n.rec.state = "Ready";
      b.nodes.push_back(n.rec);
      Event(b, 0, node, "NodeReady", "agent is back");
      changed = true;
    }
    n.rec.heartbeat_ms = now;  // kept in memory; persisting every beat would cost a write per node per beat
    counters_.heartbeats.Inc({node});
    std::map<int64_t, JobEntry> touched;  // copies to commit
    for (const wire::TaskStatus& s : statuses) {
      int64_t job;
      int32_t g, r, a;
      if (!wire::ParseTaskId(s.task_id, &job, &g, &r, &a)) continue;
      auto jit = jobs_.find(job);
      if (jit == jobs_.end()) continue;  // an old job's task: nothing to track
      auto jt = touched.find(job);
      if (jt == touched.end()) jt = touched.emplace(job, jit->second).first;
      JobEntry& j = jt->second;
      for (auto& t : j.tasks) {
        if (t.rec.group != g || t.rec.replica != r || t.rec.attempt != a || t.rec.node != node) continue;
        auto state = store::ParseTaskState(s.state);
        // A task's end is final: a stale report (an attempt already ended,
        // say by a lost lease) changes nothing.
        if (!state || *state == t.rec.state || store::IsTerminal(t.rec.state)) break;
        t.rec.state = *state;
        t.rec.exit_code = s.exit_code;
        t.rec.reason = s.reason;
        if (s.start_ms > 0) t.rec.start_ms = s.start_ms;
        // An agent that does not say when the task started: it started by now (accounting needs a start).
        if (*state == TaskState::kRunning && t.rec.start_ms == 0) t.rec.start_ms = now;
        if (store::IsTerminal(*state)) t.rec.end_ms = s.end_ms > 0 ? s.end_ms : now;
        b.tasks.push_back(t.rec);
        Event(b, job, node, absl::StrCat("Task", s.state),
              absl::StrCat(s.task_id, store::IsTerminal(*state) ? absl::StrCat(" exit ", s.exit_code) : "",
                           s.reason.empty() ? "" : absl::StrCat(": ", s.reason)));
        changed = true;
        break;
      }
    }
    // A heartbeat lists every task the agent has a journal for, and the
    // agent keeps a journal until the task's end is acknowledged here. A
    // task running here that it no longer lists was lost on its side (its
    // state directory wiped, say): fail it rather than wait for it forever.
    std::set<std::string> reported;
    for (const wire::TaskStatus& s : statuses) reported.insert(s.task_id);
    for (auto& [id, job] : jobs_) {
      for (size_t i = 0; i < job.tasks.size(); ++i) {
        const TaskEntry& t = job.tasks[i];
        if (t.rec.node != node || t.rec.state != TaskState::kRunning || reported.count(t.assignment.task_id)) continue;
        auto jt = touched.find(id);
        if (jt == touched.end()) jt = touched.emplace(id, job).first;
        TaskEntry& lost = jt->second.tasks[i];
        lost.rec.state = TaskState::kFailed;
        lost.rec.exit_code = -1;
        lost.rec.reason = "lost: the agent no longer knows this task";
        lost.rec.end_ms = now;
        b.tasks.push_back(lost.rec);
        Event(b, id, node, "TaskLost", absl::StrCat(lost.assignment.task_id, ": the agent no longer knows it"));
        changed = true;
      }
    }
    for (auto& [id, j] : touched) EvaluateJob(j, b);
    if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
    for (auto& [id, j] : touched) {
      jobs_[id] = std::move(j);
      TouchJob(jobs_[id]);
    }
    // A watch answer computed before this commit may still list the tasks
    // that just ended; one computed after has a newer version.
    if (changed) Touch(node);
    if (usage_fits) SampleDeviceUse(node, devices);
    // Jobs waiting for preempted victims may run now.
    for (auto& [id, j] : jobs_) {
      if (!j.waits_for.empty()) TouchJob(j);
    }
    Prune();
    // Every reported end is durable now (or was before): acknowledge it.
    for (const wire::TaskStatus& s : statuses) {
      auto state = store::ParseTaskState(s.state);
      if (!state || !store::IsTerminal(*state)) continue;
      int64_t job;
      int32_t g, r, a;
      bool tracked_open = false;
      if (wire::ParseTaskId(s.task_id, &job, &g, &r, &a)) {
        if (auto jit = jobs_.find(job); jit != jobs_.end()) {
          for (const auto& t : jit->second.tasks) {
            if (t.rec.group == g && t.rec.replica == r && t.rec.attempt == a && t.rec.node == node) {
              tracked_open = !store::IsTerminal(t.rec.state);
            }
          }
        }
      }
      if (!tracked_open) reply.acked.push_back(s.task_id);
    }
    reply.version = n.version;
    reply.heartbeat_ms = AgentPaceLocked();
    reply.lease_ms = options_.node_lease_ms;
  }
  if (changed) Wake();
  return reply;
}

absl::StatusOr<Assignments> Controller::WatchAssignments(const Principal& caller, const std::string& node,
                                                         uint64_t since, int64_t wait_ms) {
  if (absl::Status st = Authorize(caller, Action::kSpeakForNode, node); !st.ok()) return st;
  std::unique_lock<std::mutex> lock(mu_);
  auto version = [&]() -> uint64_t {
    auto it = nodes_.find(node);
    return it == nodes_.end() ? 0 : it->second.version;
  };
  if (version() == 0) return absl::NotFoundError(absl::StrCat("node '", node, "' is not registered; register first"));
  changed_.wait_for(lock, std::chrono::milliseconds(std::max<int64_t>(0, wait_ms)),
                    [&] { return version() != since || stop_; });
  Assignments out;
  out.version = version();
  for (const auto& [id, j] : jobs_) {
    for (const auto& t : j.tasks) {
      if (t.rec.node != node || !Active(t.rec.state)) continue;
      const bool run = ShouldRun(j, t);
      // A task still waiting for its victims is not sent at all.
      if (!run && t.rec.state == TaskState::kAssigned && j.rec.state == JobState::kRunning &&
          t.rec.attempt == j.rec.attempt) {
        continue;
      }
      wire::Assignment a = t.assignment;
      a.run = run;
      a.started = t.rec.state == TaskState::kRunning;
      out.tasks.push_back(std::move(a));
    }
  }
  return out;
}

// --- scheduling ------------------------------------------------------------------------

absl::StatusOr<std::vector<Controller::TaskEntry>> Controller::MakeTasks(
    const api::JobSpec& spec, const TaskOwner& owner, int64_t job_id, int32_t attempt, const core::BindDecision& bind,
    const PassNodes& nodes, const std::vector<int64_t>& waits_for) const {
  const std::vector<std::string>& node_names = nodes.names;
  // Ranks in (group, replica) order; nodes numbered in order of first use.
  // Linear in the job's tasks (a 10,000-task gang binds in one pass): one
  // RankInfo is filled once and only its per-rank fields change per task.
  std::vector<core::TaskPlacement> placed = bind.tasks;
  std::sort(placed.begin(), placed.end(),
            [](const auto& a, const auto& b) { return std::tie(a.group, a.replica) < std::tie(b.group, b.replica); });
  std::map<std::string, int32_t> node_rank;  // node -> its index among the job's nodes
  std::map<std::string, int32_t> per_node;
  agent::RankInfo info;
  info.framework = api::FrameworkName(spec.framework);
  info.job_name = spec.name;
  info.job_id = job_id;
  info.world_size = static_cast<int32_t>(placed.size());
  info.master_port = options_.port_base + static_cast<int32_t>(job_id % 10'000);
  for (const auto& p : placed) {
    const std::string& name = node_names[p.node];
    node_rank.emplace(name, static_cast<int32_t>(node_rank.size()));
    ++per_node[name];
    info.rank_hosts.push_back(nodes.addresses[p.node]);
    info.rank_ports.push_back(info.master_port + 1 + static_cast<int32_t>(info.rank_ports.size()));
    std::vector<int32_t> devs;
    for (const auto& s : p.devices) devs.push_back(s.device);
    info.rank_devices.push_back(devs);
  }
  info.num_nodes = static_cast<int32_t>(node_rank.size());
  info.master_addr = info.rank_hosts.empty() ? "127.0.0.1" : info.rank_hosts[0];
  // The agent puts generated files in the task's own directory and
  // substitutes this placeholder with its path.
  info.files_dir = wire::kTaskDirPlaceholder;
  std::vector<TaskEntry> out;
  out.reserve(placed.size());
  std::map<std::string, int32_t> local_seen;
  for (int32_t rank = 0; rank < static_cast<int32_t>(placed.size()); ++rank) {
    const core::TaskPlacement& p = placed[rank];
    const std::string& node = node_names[p.node];
    const api::TaskSpec& ts = spec.tasks[p.group];
    TaskEntry e;
    e.placement = p;
    e.rec.job_id = job_id;
    e.rec.group = p.group;
    e.rec.replica = p.replica;
    e.rec.attempt = attempt;
    e.rec.node = node;
    e.rec.state = TaskState::kAssigned;
    wire::Assignment& a = e.assignment;
    a.task_id = wire::TaskId(job_id, p.group, p.replica, attempt);
    a.job_id = job_id;
    a.group = p.group;
    a.replica = p.replica;
    a.attempt = attempt;
    a.argv = ts.command;
    a.workdir = ts.workdir;
    a.cpu_milli = p.cpu_milli;
    a.memory_mib = p.memory_mib;
    a.numa_nodes = p.numa_nodes;
    a.time_limit_s = spec.time_limit_s;
    a.user = owner.user;
    a.uid = owner.uid;
    a.gid = owner.gid;
    a.grace_ms = options_.grace_ms;
    a.max_disconnect_ms = spec.max_disconnect_s > 0 ? spec.max_disconnect_s * 1000 : options_.node_lease_ms;
    for (const auto& [k, v] : spec.env) a.env[k] = v;
    for (const auto& [k, v] : ts.env) a.env[k] = v;
    info.rank = rank;
    info.local_rank = local_seen[node]++;
    info.local_world_size = per_node[node];
    info.node_rank = node_rank[node];
    const core::Node& where = (*nodes.nodes)[p.node];
    for (const auto& s : p.devices) {
      a.devices.push_back(s.device);
      if (s.device >= 0 && s.device < static_cast<int32_t>(where.devices.size())) {
        a.vendor = where.devices[s.device].vendor;
      }
    }
    info.vendor = a.vendor;
    auto setup = agent::SetupFramework(info);
    if (!setup.ok()) return setup.status();
    for (auto& [k, v] : setup->env) a.env[k] = std::move(v);
    for (auto& [k, v] : setup->default_env) a.env.emplace(k, std::move(v));  // the job's own choice wins
    a.files = std::move(setup->files);
    if (!a.devices.empty()) {
      for (const auto& [k, v] : agent::VisibleDevicesEnv(a.vendor, a.devices)) a.env[k] = v;
      if (p.devices[0].percent < core::kWholeDevicePercent) {
        // Device sharing (HAMi-style): the task is told its slice.
        a.env["ICOS_DEVICE_SHARE_PERCENT"] = absl::StrCat(p.devices[0].percent);
        a.env["ICOS_DEVICE_MEMORY_MIB"] = absl::StrCat(p.devices[0].memory_mib);
      }
    }
    e.rec.placement_json = json{
        {"placement", wire::PlacementToJson(p)},
        {"assignment", wire::AssignmentToJson(a)},
        {"waits_for",
         waits_for}}.dump();
    out.push_back(std::move(e));
  }
  return out;
}

absl::Status Controller::RunPass() {
  // One pass at a time; the lock on the cluster state is held only to take
  // the snapshot and to apply the decisions, never while icos::core thinks,
  // so submits, heartbeats and watches are not blocked by a pass.
  std::lock_guard<std::mutex> pass_lock(pass_mu_);
  // Real elapsed time for the latency histogram, whatever clock_ says (a FakeClock stands still).
  const auto pass_start = std::chrono::steady_clock::now();
  ApplyLearnedEstimates();
  const int64_t now = clock_->NowMs();
  core::Snapshot snap;
  snap.now_ms = now;
  PassNodes pass_nodes;
  pass_nodes.nodes = &snap.nodes;
  std::vector<std::string>& node_names = pass_nodes.names;
  std::vector<uint64_t> node_generation;
  std::map<int64_t, int32_t> pending_attempt;
  {
    std::lock_guard<std::mutex> lock(mu_);
    std::map<std::string, int32_t> node_index;
    for (const auto& [name, n] : nodes_) {
      if (n.rec.state != "Ready") continue;
      node_index[name] = static_cast<int32_t>(snap.nodes.size());
      node_names.push_back(name);
      pass_nodes.addresses.push_back(n.rec.address.empty() ? name : n.rec.address);
      node_generation.push_back(n.generation);
      snap.nodes.push_back(n.node);
      if (n.drained || !n.unhealthy_reason.empty()) snap.nodes.back().schedulable = false;
      for (int32_t d : n.drained_devices) {
        if (d >= 0 && d < static_cast<int32_t>(snap.nodes.back().devices.size())) {
          snap.nodes.back().devices[d].drained = true;
        }
      }
    }
    for (const auto& [name, q] : queues_) snap.queues.push_back(q);
    for (const auto& [id, j] : jobs_) {
      core::RunningJob rj;
      rj.job = j.core;
      rj.job.preemptible = j.spec.preemptible && j.rec.state == JobState::kRunning;
      // What the order policies read, from the tasks' own start and end times
      // (kept in the store, so a restarted controller sees the same): the
      // device-seconds the job has had over every attempt (Tiresias' attained
      // service, by which LAS orders and preempts), and when the current run
      // began (a restarted or preempted job's end estimate counts from there,
      // not from its first start).
      int64_t run_start = 0;
      for (const auto& t : j.tasks) {
        const bool active = Active(t.rec.state);
        if (t.rec.start_ms > 0) {
          const int64_t end = t.rec.end_ms > 0 ? t.rec.end_ms : active ? now : t.rec.start_ms;
          double share = 0;
          for (const core::DeviceSlice& d : t.placement.devices) share += d.percent / 100.0;
          rj.job.attained_device_s += share * static_cast<double>(std::max<int64_t>(0, end - t.rec.start_ms)) / 1000.0;
          if (active && t.rec.attempt == j.rec.attempt) {
            run_start = run_start == 0 ? t.rec.start_ms : std::min(run_start, t.rec.start_ms);
          }
        }
        if (!active) continue;
        auto ni = node_index.find(t.rec.node);
        if (ni == node_index.end()) continue;  // node not ready: its tasks are being failed
        core::TaskPlacement p = t.placement;
        p.node = ni->second;
        rj.tasks.push_back(p);
      }
      rj.start_ms = run_start > 0 ? run_start : j.rec.start_ms;
      const double attained = rj.job.attained_device_s;  // rj may be moved below
      if (!rj.tasks.empty()) snap.running.push_back(std::move(rj));
      // A job waits while tasks of an earlier attempt still run (never twice at once).
      if (j.rec.state == JobState::kPending && !HasActiveTasks(j, false)) {
        snap.pending.push_back(j.core);
        snap.pending.back().attained_device_s = attained;
        pending_attempt[id] = j.rec.attempt;
      }
    }
  }
  // Nothing waits: nothing to decide, unless running jobs may move to a
  // faster type that has freed.
  if (snap.pending.empty() && !options_.scheduler.migrate_to_faster_type) return absl::OkStatus();
  auto decisions = scheduler_.Schedule(snap);
  if (!decisions.ok()) return decisions.status();

  // Each rank's framework setup is computed outside the lock too: for a
  // large gang it is the costliest part of a bind. Specs never change after
  // submission, so a copy taken now is the one the decision was made for;
  // whether the job is still pending at that attempt is checked below.
  std::map<int64_t, absl::StatusOr<std::vector<TaskEntry>>> made;
  {
    std::map<int64_t, std::pair<api::JobSpec, TaskOwner>> bound;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (const auto& bind : decisions->binds) {
        auto it = jobs_.find(bind.job.value());
        if (it == jobs_.end()) continue;
        const store::JobRecord& r = it->second.rec;
        bound.emplace(it->first, std::make_pair(it->second.spec, TaskOwner{r.user, r.run_uid, r.run_gid}));
      }
    }
    for (const auto& bind : decisions->binds) {
      auto it = bound.find(bind.job.value());
      if (it == bound.end()) continue;
      std::vector<int64_t> waits_for;
      for (JobId v : bind.after_preemption) waits_for.push_back(v.value());
      made.emplace(it->first, MakeTasks(it->second.first, it->second.second, it->first, pending_attempt[it->first],
                                        bind, pass_nodes, waits_for));
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  // What changed while the core thought makes some decisions stale: a job
  // cancelled or restarted, a node lost or re-registered. Those are dropped
  // and the next pass decides again; capacity only grew otherwise.
  auto still_pending = [&](int64_t id) {
    auto it = jobs_.find(id);
    return it != jobs_.end() && it->second.rec.state == JobState::kPending &&
           it->second.rec.attempt == pending_attempt[id] && !HasActiveTasks(it->second, false);
  };
  auto node_unchanged = [&](int32_t index) {
    auto it = nodes_.find(node_names[index]);
    return it != nodes_.end() && it->second.rec.state == "Ready" && it->second.generation == node_generation[index];
  };
  bool stale = false;
  int64_t binds = 0, preemptions = 0;
  store::WriteBatch b;
  std::map<int64_t, JobEntry> next;  // changed copies, committed after the store write
  auto copy = [&](int64_t id) -> JobEntry& {
    auto it = next.find(id);
    return it != next.end() ? it->second : next.emplace(id, jobs_.at(id)).first->second;
  };
  // A move to a faster device type (the gavel policy's
  // migrate_to_faster_type) runs as the simulator models it, stop then
  // restart: the job's tasks are stopped like a preemption's (a job that
  // checkpoints resumes as after any preemption), and once they have, the
  // next pass places it, on the faster type that was free.
  for (const auto& m : decisions->migrations) {
    auto it = jobs_.find(m.job.value());
    if (it == jobs_.end() || it->second.rec.state != JobState::kRunning) {
      stale = true;
      continue;
    }
    JobEntry& j = copy(m.job.value());
    j.rec.state = JobState::kPending;
    ++j.rec.attempt;
    j.rec.reason = absl::StrCat("moving from ", m.from_type, " to ", m.device_type, ": ", m.reason);
    b.jobs.push_back(j.rec);
    Event(b, j.rec.id, "", "Migrating", j.rec.reason);
    ++preemptions;
  }
  for (const auto& p : decisions->preemptions) {
    auto vit = jobs_.find(p.victim.value());
    if (vit == jobs_.end() || vit->second.rec.state != JobState::kRunning || !still_pending(p.preemptor.value())) {
      stale = true;
      continue;
    }
    JobEntry& v = copy(p.victim.value());
    v.rec.state = JobState::kPending;
    ++v.rec.attempt;  // its current tasks are stopped; it is scheduled afresh later
    v.rec.reason = absl::StrCat("preempted: ", p.reason);
    b.jobs.push_back(v.rec);
    Event(b, v.rec.id, "", "Preempted", p.reason);
    ++preemptions;
  }
  for (const auto& bind : decisions->binds) {
    bool valid = still_pending(bind.job.value());
    for (const auto& t : bind.tasks) valid = valid && node_unchanged(t.node);
    if (!valid) {
      stale = true;
      continue;
    }
    auto made_it = made.find(bind.job.value());
    if (made_it == made.end()) {
      stale = true;
      continue;
    }
    JobEntry& j = copy(bind.job.value());
    std::vector<int64_t> waits_for;
    for (JobId v : bind.after_preemption) waits_for.push_back(v.value());
    absl::StatusOr<std::vector<TaskEntry>>& tasks_made = made_it->second;
    if (!tasks_made.ok()) {
      // The framework cannot be set up for this placement: a spec problem the user must fix.
      j.rec.state = JobState::kFailed;
      j.rec.end_ms = now;
      j.rec.reason =
          absl::StrCat("cannot set up ", api::FrameworkName(j.spec.framework), ": ", tasks_made.status().message());
      b.jobs.push_back(j.rec);
      Event(b, j.rec.id, "", "Failed", j.rec.reason);
      continue;
    }
    j.rec.state = JobState::kRunning;
    if (j.rec.start_ms == 0) j.rec.start_ms = now;
    j.rec.reason = bind.after_preemption.empty() ? "" : "waiting for preempted jobs to stop";
    j.waits_for = std::move(waits_for);
    std::vector<TaskEntry> tasks = *std::move(tasks_made);
    std::set<std::string> where;
    for (auto& t : tasks) {
      where.insert(t.rec.node);
      b.tasks.push_back(t.rec);
      j.tasks.push_back(std::move(t));
    }
    b.jobs.push_back(j.rec);
    ++binds;
    Event(b, j.rec.id, "", "Scheduled",
          absl::StrCat(bind.tasks.size(), " tasks on ", absl::StrJoin(where, ", "),
                       bind.device_type.empty() ? "" : absl::StrCat(" (", bind.device_type, ")")));
  }
  std::map<int64_t, std::string> reserved;
  for (const auto& r : decisions->reservations) {
    reserved[r.job.value()] =
        absl::StrCat("; reserved to start in about ", (r.start_ms - now + 59'999) / 60'000, " min");
  }
  if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
  counters_.binds.Inc({}, static_cast<double>(binds));
  counters_.preemptions.Inc({}, static_cast<double>(preemptions));
  // Waiting reasons are recomputed every pass: kept in memory (the API shows
  // them), not written, so a thousand waiting jobs cost no writes per pass.
  for (const auto& w : decisions->waiting) {
    auto it = jobs_.find(w.job.value());
    if (it == jobs_.end() || it->second.rec.state != JobState::kPending) continue;
    it->second.rec.reason = absl::StrCat(core::WaitKindName(w.kind), ": ", w.reason, reserved[w.job.value()]);
  }
  for (auto& [id, j] : next) {
    jobs_[id] = std::move(j);
    TouchJob(jobs_[id]);
  }
  Prune();
  if (stale) Wake();
  counters_.pass_duration.Observe({},
                                  std::chrono::duration<double>(std::chrono::steady_clock::now() - pass_start).count());
  return absl::OkStatus();
}

int64_t Controller::AgentPaceMs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return AgentPaceLocked();
}

int64_t Controller::AgentPaceLocked() const {
  const int64_t per_s = std::max<int64_t>(2, options_.max_agent_polls_per_s) / 2;
  const int64_t pace = std::max<int64_t>(1'000, static_cast<int64_t>(nodes_.size()) * 1'000 / per_s);
  // Several beats per lease, so one slow beat never costs a node its lease.
  return std::max<int64_t>(250, std::min(pace, options_.node_lease_ms / 4));
}

absl::Status Controller::CheckNodes() {
  std::lock_guard<std::mutex> lock(mu_);
  const int64_t now = clock_->NowMs();
  store::WriteBatch b;
  std::map<int64_t, JobEntry> touched;
  std::map<std::string, int64_t> silent;  // nodes past a lease or a task's max_disconnect, by silence
  for (auto& [name, n] : nodes_) {
    const int64_t quiet = now - n.rec.heartbeat_ms;
    if (quiet < api::kMinMaxDisconnectS * 1000) continue;
    silent[name] = quiet;
    if (n.rec.state != "Ready" || quiet <= options_.node_lease_ms) continue;
    n.rec.state = "NotReady";
    b.nodes.push_back(n.rec);
    Event(b, 0, name, "NodeLost",
          absl::StrCat("no heartbeat for ", quiet / 1000, " s; its tasks stop there once their max_disconnect passes"));
  }
  // A task is failed here only once its shim has certainly stopped it: its
  // max_disconnect after the last heartbeat (the shim kills it a margin
  // before that, counting from before the heartbeat was sent).
  if (!silent.empty()) {
    for (auto& [id, j] : jobs_) {
      for (size_t i = 0; i < j.tasks.size(); ++i) {
        const TaskEntry& task = j.tasks[i];
        auto quiet = silent.find(task.rec.node);
        if (quiet == silent.end() || !Active(task.rec.state)) continue;
        const int64_t limit =
            task.assignment.max_disconnect_ms > 0 ? task.assignment.max_disconnect_ms : options_.node_lease_ms;
        if (quiet->second <= limit) continue;
        auto it = touched.find(id);
        if (it == touched.end()) it = touched.emplace(id, j).first;
        TaskEntry& t = it->second.tasks[i];
        t.rec.state = TaskState::kFailed;
        t.rec.reason = absl::StrCat("node '", task.rec.node, "' lost: no contact for ", quiet->second / 1000,
                                    " s, so its agent stopped the task (max_disconnect ", limit / 1000, " s)");
        t.rec.end_ms = now;
        b.tasks.push_back(t.rec);
      }
    }
  }
  for (auto& [id, j] : touched) EvaluateJob(j, b);
  if (absl::Status st = Commit(std::move(b)); !st.ok()) return st;
  for (auto& [id, j] : touched) {
    jobs_[id] = std::move(j);
    TouchJob(jobs_[id]);
  }
  Prune();
  return absl::OkStatus();
}

void Controller::Prune() {
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if (store::IsTerminal(it->second.rec.state) && !HasActiveTasks(it->second, false)) {
      LearnFromEnd(it->second);
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
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
  if (loop_.joinable()) loop_.join();
}

void Controller::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> lock(loop_mu_);
      loop_cv_.wait_for(lock, std::chrono::milliseconds(options_.pass_interval_ms), [&] { return wake_ || stop_; });
      if (stop_) return;
      wake_ = false;
    }
    // Errors are kept for the next pass; the store or a bad snapshot must not stop the loop.
    (void)CheckNodes();
    (void)RunPass();
    (void)SampleUtilisation();
    (void)FlushTokenUse();
  }
}

}  // namespace icos::controller
