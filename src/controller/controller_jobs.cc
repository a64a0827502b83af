// Controller: the jobs API (submit, including arrays and dependencies; get,
// list, cancel, where a task's log lives).
#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/controller.h"
#include "engine/dependencies.h"

namespace icos::controller {

using nlohmann::json;
using store::JobState;
using store::TaskState;

// --- jobs -----------------------------------------------------------------------

absl::StatusOr<int64_t> Controller::Submit(const Principal& caller, const std::string& spec_text,
                                           const std::string& base_dir, const std::string& idempotency_key,
                                           bool* replayed) {
  return Submit(caller, spec_text, SubmitOptions{.base_dir = base_dir, .idempotency_key = idempotency_key}, replayed);
}

absl::StatusOr<int64_t> Controller::Submit(const Principal& caller, const std::string& spec_text,
                                           const SubmitOptions& options, bool* replayed) {
  if (absl::Status st = Authorize(caller, Action::kSubmitJob); !st.ok()) return st;
  const std::string& base_dir = options.base_dir;
  const std::string& idempotency_key = options.idempotency_key;
  if (replayed != nullptr) *replayed = false;
  if (idempotency_key.size() > 255 ||
      !std::all_of(idempotency_key.begin(), idempotency_key.end(), [](char ch) { return ch > 0x20 && ch < 0x7f; })) {
    return absl::InvalidArgumentError("Idempotency-Key must be 1-255 printable ASCII characters without spaces");
  }
  auto spec = AcceptSpec(caller, spec_text, base_dir);
  if (!spec.ok()) return spec.status();
  api::MergeDependencies(options.dependencies, spec->dependencies);
  if (!options.array.empty()) {
    if (spec->kind == api::JobKind::kService) {
      return absl::InvalidArgumentError("array: a service's copies are service.replicas, not an array");
    }
    auto array =
        api::ParseArrayIndices(options.array, options_.spec_limits.max_array_size, options_.spec_limits.max_array_text);
    if (!array.ok()) return absl::InvalidArgumentError(absl::StrCat("array: ", array.status().message()));
    api::SetArray(*array, *spec);
  }
  if (const api::Dependencies& d = spec->dependencies;
      d.after_ok.size() + d.after_any.size() + d.after_not_ok.size() > api::kMaxDependencies) {
    return absl::InvalidArgumentError(absl::StrCat("more than ", api::kMaxDependencies, " dependencies"));
  }
  // The jobs it depends on, as the store has them (only jobs the caller may
  // see; one that ended the wrong way can never let it start).
  // A dependency on an array's id is on every element, as Slurm's is: the
  // elements' own ids are added (the spec keeps them, so a restart needs
  // nothing more).
  std::map<int64_t, store::JobState> stored_deps;
  size_t elements_added = 0;
  for (auto* ids : {&spec->dependencies.after_ok, &spec->dependencies.after_any, &spec->dependencies.after_not_ok}) {
    std::vector<int64_t> elements;
    for (int64_t id : *ids) {
      auto dep = store_->GetJob(id);
      if (!dep.ok() && dep.status().code() != absl::StatusCode::kNotFound) return dep.status();
      if (!dep.ok() || !MaySeeJobsOf(caller, dep->user)) {
        return absl::InvalidArgumentError(absl::StrCat("dependencies: no job ", id));
      }
      stored_deps[id] = dep->state;
      if (dep->array_id != id) continue;
      auto all = store_->ListJobs(store::JobQuery{.array_id = id});
      if (!all.ok()) return all.status();
      for (const store::JobRecord& e : *all) {
        if (e.id == id || !stored_deps.emplace(e.id, e.state).second) continue;
        elements.push_back(e.id);
      }
    }
    elements_added += elements.size();
    if (elements_added > static_cast<size_t>(options_.spec_limits.max_array_size)) {
      return absl::InvalidArgumentError(absl::StrCat("dependencies: the arrays named have more than ",
                                                     options_.spec_limits.max_array_size, " elements in all"));
    }
    ids->insert(ids->end(), elements.begin(), elements.end());
  }
  if (!stored_deps.empty()) {
    const engine::DependencyCheck check = engine::CheckDependencies(
        spec->dependencies, [&](int64_t id) -> std::optional<JobState> { return stored_deps.at(id); });
    if (check.kind == engine::DependencyCheck::Kind::kNeverMet) {
      return absl::FailedPreconditionError(absl::StrCat("dependencies: ", check.reason));
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
  if (options.hold) r.hold = HoldKindOf(caller);
  r.submit_ms = clock_->NowMs();
  r.idempotency_key = idempotency_key;
  if (!idempotency_key.empty()) r.request_digest = Sha256Hex(r.spec_json);
  // One record, or one per element of an array, inserted as one (the key
  // stands for the whole array; its first element's id is the array's). A
  // service's replicas are such elements, numbered from 0: each is placed,
  // restarted and cancelled on its own, and the service's id cancels all.
  std::vector<int32_t> elements;
  if (!spec->array.empty()) {
    absl::StatusOr<api::ArrayIndices> array =
        api::ParseArrayIndices(spec->array, spec->array_count, spec->array.size());
    if (!array.ok()) return absl::InternalError(absl::StrCat("array: ", array.status().message()));
    elements = std::move(array->indices);
  }
  if (spec->kind == api::JobKind::kService) {
    elements.resize(spec->service.replicas);
    for (int32_t i = 0; i < spec->service.replicas; ++i) elements[i] = i;
  }
  ICOS_RETURN_IF_ERROR(CheckCopiesOfSpec(r.spec_json, elements.size()));
  std::vector<store::JobRecord> recs;
  if (elements.empty()) {
    recs.push_back(std::move(r));
  } else {
    recs.reserve(elements.size());
    for (size_t i = 0; i < elements.size(); ++i) {
      store::JobRecord e = r;
      if (i > 0) {  // the key's fields stand for the array, on its first element
        e.idempotency_key.clear();
        e.request_digest.clear();
      }
      e.array_index = elements[i];
      e.starts_array = i == 0;
      e.array_id = i == 0 ? 0 : store::kNewArray;
      recs.push_back(std::move(e));
    }
  }
  const int count = static_cast<int>(recs.size());
  // Counted as depended on before the insert: a dependency that ends
  // meanwhile leaves memory with its end state kept.
  JobEntry j;
  j.spec = *std::move(spec);
  if (!stored_deps.empty()) {
    WriteLock lock(*this);
    engine_.NoteDependencies(j, +count);
    for (const auto& [id, state] : stored_deps) {
      if (engine_.jobs().count(id)) continue;
      if (store::IsTerminal(state)) {
        engine_.NoteEnded(id, state);
        continue;
      }
      // Open when read but gone from memory now: it ended since (rare; read
      // again while nothing can leave memory unnoticed).
      if (auto again = store_->GetJob(id); again.ok() && store::IsTerminal(again->state)) {
        engine_.NoteEnded(id, again->state);
      }
    }
  }
  absl::Status inserted = count == 1 ? store_->InsertJob(&recs.front()) : store_->InsertJobs(&recs);
  const store::JobRecord& first = recs.front();
  if (!inserted.ok() || first.replayed) {
    WriteLock lock(*this);
    engine_.NoteDependencies(j, -count);
  }
  if (!inserted.ok()) return inserted;
  if (first.replayed) {  // a retry: the first submission made the job
    if (replayed != nullptr) *replayed = true;
    return first.id;
  }
  const int64_t id = first.id;
  {
    WriteLock lock(*this);
    if (j.spec.kind == api::JobKind::kService) StartService(caller, id, recs.front().spec_json, j.spec);
    AdmitJobs(j.spec, recs);
  }
  Wake();
  return id;
}

absl::Status Controller::CheckCopiesOfSpec(const std::string& spec_json, size_t copies) const {
  const int64_t bytes = static_cast<int64_t>(spec_json.size()) * static_cast<int64_t>(copies);
  if (copies <= 1 || bytes <= options_.spec_limits.max_array_spec_bytes) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("each of its ", copies, " elements would keep its ", spec_json.size(), "-byte spec (", bytes >> 20,
                   " MiB in all; this cluster's limit is ", options_.spec_limits.max_array_spec_bytes >> 20,
                   " MiB): make the spec smaller (env, dependencies: an array may depend on one job that depends on "
                   "another array) or split the array"));
}

void Controller::AdmitJobs(const api::JobSpec& spec, std::vector<store::JobRecord>& recs) {
  const int32_t devices = SpecDevices(spec);
  for (store::JobRecord& rec : recs) {
    JobEntry e;
    e.spec = spec;
    e.devices = devices;
    e.core = api::ToCoreJob(e.spec, JobId(rec.id), rec.user, rec.submit_ms);
    e.rec = std::move(rec);
    if (learning_) learning_->Submitted(e.rec.id, FactsOf(e.rec, e.devices));
    engine_.AddJob(std::move(e));
  }
}

absl::StatusOr<api::JobSpec> Controller::AcceptSpec(const Principal& caller, const std::string& spec_text,
                                                    const std::string& base_dir) const {
  auto spec = api::ParseJobSpec(spec_text, options_.spec_limits);
  if (!spec.ok()) return spec.status();
  if (!spec->notify.url.empty()) {
    // A job may make the controller call only hosts an admin allowed: else
    // any user could reach the controller's own network (SSRF).
    absl::StatusOr<api::WebhookUrl> url = api::ParseWebhookUrl(spec->notify.url);
    if (!url.ok()) return url.status();
    if (!api::WebhookAllowed(*url, options_.webhooks.allow)) {
      return absl::PermissionDeniedError(absl::StrCat(
          "notify: this cluster does not send webhooks to ", url->host, ":", url->port,
          options_.webhooks.allow.empty() ? "; it sends none for jobs until an admin allows hosts"
                                          : absl::StrCat("; allowed: ", absl::StrJoin(options_.webhooks.allow, ", ")),
          " (icos server --notify-allow HOST[:PORT])"));
    }
  }
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
    if (spec->queue != "default" && !engine_.queues().count(spec->queue)) {
      std::vector<std::string> names = {"default"};
      for (const auto& [n, q] : engine_.queues()) names.push_back(n);
      return absl::InvalidArgumentError(
          absl::StrCat("queue '", spec->queue, "' does not exist; queues: ", absl::StrJoin(names, ", ")));
    }
    for (const auto& [n, q] : engine_.queues()) {
      if (q.parent == spec->queue) {
        return absl::InvalidArgumentError(
            absl::StrCat("queue '", spec->queue, "' has child queues; submit to one of them (jobs go to leaf queues)"));
      }
    }
    if (absl::Status st = ResolvePriority(caller, *spec); !st.ok()) return st;
  }
  return spec;
}

absl::Status Controller::ResolvePriority(const Principal& caller, api::JobSpec& spec) const {
  auto q = engine_.queues().find(spec.queue);
  const core::Queue* queue = q != engine_.queues().end() ? &q->second : nullptr;
  std::string name = spec.priority_class;
  // A job that asks for neither gets the queue's default class, if any.
  if (name.empty() && spec.priority == 0 && queue != nullptr) name = queue->default_priority_class;
  if (name.empty()) return CheckQueuePriority(caller, spec.queue, spec.priority);
  const core::PriorityClass* c = nullptr;
  if (queue != nullptr) {
    if (auto it = queue->priority_classes.find(name); it != queue->priority_classes.end()) c = &it->second;
  }
  if (c == nullptr) {
    std::vector<std::string> names;
    if (queue != nullptr) {
      for (const auto& [n, pc] : queue->priority_classes) names.push_back(n);
    }
    return absl::InvalidArgumentError(
        absl::StrCat("queue '", spec.queue, "' has no priority class '", name, "'",
                     names.empty() ? "; it defines none (an admin adds them: priority_classes in the queue)"
                                   : absl::StrCat("; it has ", absl::StrJoin(names, ", "))));
  }
  if (spec.priority != 0 && spec.priority != c->priority) {
    return absl::InvalidArgumentError(absl::StrCat("give a priority or a priority_class, not both (class '", name,
                                                   "' is priority ", c->priority, ")"));
  }
  // The admin set the class's priority for this queue: no max_priority cap.
  spec.priority_class = name;
  spec.priority = c->priority;
  spec.preempts = spec.preempts && c->preempts;
  return absl::OkStatus();
}

absl::Status Controller::CheckQueuePriority(const Principal& caller, const std::string& queue, int32_t priority) const {
  // Priority decides who preempts whom in a queue: a user may ask only as
  // high as the queue allows (admins set that, and may ask for any).
  auto q = engine_.queues().find(queue);
  const int32_t max_priority = q != engine_.queues().end() ? q->second.max_priority : core::Queue().max_priority;
  if (MayExceedQueuePriority(caller) || priority <= max_priority) return absl::OkStatus();
  return absl::PermissionDeniedError(absl::StrCat("priority ", priority, " is above queue '", queue, "''s limit of ",
                                                  max_priority,
                                                  " for users; ask an admin to raise the queue's max_priority"));
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
    auto it = engine_.jobs().find(id);
    if (it != engine_.jobs().end()) {
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
  if (std::optional<std::string> owner = VisibleOwner(caller)) query.user = *std::move(owner);
  auto jobs = store_->ListJobs(query);
  if (!jobs.ok()) return jobs;
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& r : *jobs) {
    auto it = engine_.jobs().find(r.id);
    if (it != engine_.jobs().end()) r.reason = it->second.rec.reason;
  }
  return jobs;
}

absl::Status Controller::Cancel(const Principal& caller, int64_t id) {
  if (absl::Status st = Authorize(caller, Action::kControlJob); !st.ok()) return st;
  {
    WriteLock lock(*this);
    engine::Change c(clock_->NowMs());
    // A service's own id stops the service: every replica, and it makes no
    // more (one replica cancelled by its own id is replaced).
    if (auto service = services_.find(id);
        service != services_.end() && !service->second.stopped && MaySeeJobsOf(caller, service->second.user)) {
      ServiceState stopped = service->second;
      stopped.stopped = true;
      c.batch.services.push_back({.id = id, .state_json = ServiceStateToJson(stopped)});
      for (int64_t replica : ServiceReplicasOf(id)) {
        StageCancel(c, replica, absl::StrCat("service ", id, " cancelled by ", caller.name));
      }
      ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
      service->second = std::move(stopped);
    } else {
      if (absl::StatusOr<const JobEntry*> open = OpenJobFor(caller, id); !open.ok()) return open.status();
      StageCancel(c, id, absl::StrCat("cancelled by ", caller.name));
      ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
    }
    Prune();
  }
  Wake();
  return absl::OkStatus();
}

void Controller::StageCancel(engine::Change& c, int64_t id, const std::string& reason) {
  JobEntry& next = engine_.Stage(c, id);
  next.rec.state = JobState::kCancelled;
  next.rec.reason = reason;
  if (!engine::Engine::HasActiveTasks(next, false)) next.rec.end_ms = c.now_ms;
  c.batch.jobs.push_back(next.rec);
  c.Event(id, "", "Cancelled", next.rec.reason);
  if (next.rec.end_ms != 0) engine::Engine::NoteDeviceUse(next, c);  // else when its tasks have stopped
}

absl::StatusOr<LogLocation> Controller::LocateLog(const Principal& caller, int64_t job_id, int32_t task_index,
                                                  int32_t attempt_wanted) const {
  auto view = GetJob(caller, job_id);
  if (!view.ok()) return view.status();
  if (view->tasks.empty())
    return absl::FailedPreconditionError(absl::StrCat("job ", job_id, " has not started; no logs yet"));
  // The latest (or the asked) attempt's tasks, in (group, replica) order.
  int32_t attempt = 0;
  for (const auto& t : view->tasks) attempt = std::max(attempt, t.attempt);
  if (attempt_wanted > attempt) {
    return absl::InvalidArgumentError(
        absl::StrCat("job ", job_id, " has run attempts 0..", attempt, "; no attempt ", attempt_wanted));
  }
  if (attempt_wanted >= 0) attempt = attempt_wanted;
  std::vector<const store::TaskRecord*> current;
  for (const auto& t : view->tasks) {
    if (t.attempt == attempt) current.push_back(&t);
  }
  if (current.empty()) {
    return absl::NotFoundError(absl::StrCat("attempt ", attempt, " of job ", job_id, " never ran a task"));
  }
  if (task_index < 0 || task_index >= static_cast<int32_t>(current.size())) {
    return absl::InvalidArgumentError(absl::StrCat("job ", job_id, " has tasks 0..", current.size() - 1));
  }
  const store::TaskRecord& t = *current[task_index];
  LogLocation loc;
  loc.task_id = wire::TaskId(t.job_id, t.group, t.replica, t.attempt);
  loc.finished = store::IsTerminal(t.state);
  std::lock_guard<std::mutex> lock(mu_);
  auto it = engine_.nodes().find(t.node);
  if (it == engine_.nodes().end())
    return absl::UnavailableError(absl::StrCat("node '", t.node, "' of the task is unknown"));
  loc.agent_url = it->second.agent_url;
  return loc;
}

}  // namespace icos::controller
