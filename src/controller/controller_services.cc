// Controller: services (issue #22): which replicas run where, and which are
// ready for traffic (service_probes.h decides).
#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"
#include "controller/controller.h"

namespace icos::controller {

using store::JobState;
using store::TaskState;

namespace {

// Where other machines reach a task on `node`: the address it registered
// with (its name without one).
std::string HostOf(const engine::Engine& engine, const std::string& node) {
  auto it = engine.nodes().find(node);
  return it != engine.nodes().end() && !it->second.rec.address.empty() ? it->second.rec.address : node;
}

// A service's desired state as the API lists it (its replicas added after).
ServiceEndpoints ServiceOf(const ServiceState& s) {
  return ServiceEndpoints{.id = s.id,
                          .name = s.name,
                          .user = s.user,
                          .replicas = s.replicas,
                          .revision = s.revision,
                          .rollout = RolloutStatus(s)};
}

}  // namespace

std::vector<ProbeTarget> Controller::ProbeTargets() const {
  std::vector<ProbeTarget> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (int64_t id : engine_.ServiceReplicas()) {
    const engine::JobEntry* j = engine_.FindJob(id);
    if (j == nullptr || j->rec.state != JobState::kRunning) continue;
    for (const engine::TaskEntry& t : j->tasks) {
      if (t.rec.attempt != j->rec.attempt || t.rec.state != TaskState::kRunning || t.assignment.serve_port == 0) {
        continue;
      }
      ProbeTarget& p = out.emplace_back();
      p.job_id = id;
      p.attempt = t.rec.attempt;
      p.node = t.rec.node;
      p.host = HostOf(engine_, t.rec.node);
      p.port = t.assignment.serve_port;
      p.probe = j->spec.service.readiness;
      p.liveness = j->spec.service.liveness;
      p.startup = j->spec.service.startup;
      p.started_ms = t.rec.start_ms;
    }
  }
  return out;
}

ServiceEndpoints::Replica Controller::ReplicaOf(const store::JobRecord& rec, const engine::JobEntry* j) const {
  ServiceEndpoints::Replica r;
  r.index = rec.array_index;
  r.job_id = rec.id;
  r.attempt = rec.attempt;
  r.state = store::JobStateName(rec.state);
  r.reason = rec.reason;
  if (j == nullptr) return r;
  for (const engine::TaskEntry& t : j->tasks) {
    if (t.rec.attempt != j->rec.attempt || t.assignment.serve_port == 0) continue;
    r.node = t.rec.node;
    if (t.rec.state != TaskState::kRunning) return r;
    const std::string host = HostOf(engine_, t.rec.node);
    const bool v6 = host.find(':') != std::string::npos;
    r.address = absl::StrCat(v6 ? "[" : "", host, v6 ? "]:" : ":", t.assignment.serve_port);
    if (store::IsTerminal(rec.state)) return r;  // stopping: no traffic, whatever its last probe said
    if (std::optional<Readiness> ready = prober_->Of(j->rec.id, j->rec.attempt)) {
      r.ready = ready->ready;
      r.since_ms = ready->since_ms;
      r.reason = ready->reason;
    } else {
      r.reason = "running; not probed yet";
    }
    return r;
  }
  return r;
}

void Controller::RestartDeadReplica(int64_t job_id, int32_t attempt, const std::string& event, const std::string& why) {
  {
    WriteLock lock(*this);
    const engine::JobEntry* j = engine_.FindJob(job_id);
    if (j == nullptr || j->rec.state != JobState::kRunning || j->rec.attempt != attempt) return;
    // As a requeue: its task is told to stop (SIGTERM, the grace period,
    // SIGKILL) and the next attempt starts once it has, after the
    // crash-loop back-off its short runs earned.
    engine::Change c(clock_->NowMs());
    engine::JobEntry& next = engine_.Stage(c, job_id);
    ++next.revision;
    engine_.Requeue(next, "", absl::StrCat("restarting: ", why), event.c_str(), c);
    if (absl::Status st = Commit(std::move(c)); !st.ok()) {
      log::Failure("liveness restart", st, absl::StrCat("job=", job_id));
      return;
    }
  }
  Wake();
}

absl::StatusOr<ServiceRoute> Controller::Route(const Principal& caller, const std::string& service) const {
  ICOS_RETURN_IF_ERROR(Authorize(caller, Action::kRouteServices));
  return Route(service);
}

absl::Status Controller::ReportGatewayLoad(const Principal& caller, const std::string& instance,
                                           const std::map<int64_t, ServiceLoad>& loads) {
  ICOS_RETURN_IF_ERROR(Authorize(caller, Action::kRouteServices));
  std::map<int64_t, ServiceLoad> known;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, load] : loads) {
      if (services_.contains(id)) known.emplace(id, load);
    }
  }
  gateway_loads_.Report(instance, known, clock_->NowMs());
  return absl::OkStatus();
}

std::optional<ServiceLoad> Controller::MeasuredLoad(int64_t id, int64_t now_ms) const {
  std::optional<ServiceLoad> remote = gateway_loads_.Of(id, now_ms);
  if (!load_source_) return remote;
  ServiceLoad load = load_source_(id);
  if (remote) {
    load.requests += remote->requests;
    load.in_flight += remote->in_flight;
    for (size_t i = 0; i < load.latency.size(); ++i) load.latency[i] += remote->latency[i];
  }
  return load;
}

absl::StatusOr<ServiceRoute> Controller::Route(const std::string& service) const {
  int64_t id = 0;
  const bool by_id = absl::SimpleAtoi(service, &id);
  std::lock_guard<std::mutex> lock(mu_);
  std::set<int64_t> services;  // the open services `service` names (one at 0 replicas too)
  for (const auto& [sid, state] : services_) {
    if (!state.stopped && (by_id ? sid == id : state.name == service)) services.insert(sid);
  }
  std::vector<std::string> ready;
  for (int64_t replica : engine_.ServiceReplicas()) {
    const engine::JobEntry* j = engine_.FindJob(replica);
    if (j == nullptr || store::IsTerminal(j->rec.state)) continue;
    if (by_id ? j->rec.array_id != id : j->spec.name != service) continue;
    services.insert(j->rec.array_id);
    if (ServiceEndpoints::Replica r = ReplicaOf(j->rec, j); r.ready) ready.push_back(r.address);
  }
  if (services.empty()) return absl::NotFoundError(absl::StrCat("no running service ", service));
  if (services.size() > 1) {
    return absl::FailedPreconditionError(absl::StrCat(services.size(), " running services are named ", service,
                                                      " (ids ", absl::StrJoin(services, ", "), "); address one by id"));
  }
  ServiceRoute route{.id = *services.begin(), .ready = std::move(ready)};
  if (auto it = services_.find(route.id); it != services_.end()) {
    if (const api::JobSpec* spec = CurrentSpec(it->second); spec != nullptr) {
      const api::AutoscaleSpec& a = spec->service.autoscale;
      if (a.enabled() && a.min == 0) route.cold_start_ms = a.cold_start_timeout_s * 1000;
    }
  }
  return route;
}

absl::StatusOr<std::vector<ServiceEndpoints>> Controller::ListServices(const Principal& caller) const {
  if (absl::Status st = Authorize(caller, Action::kReadJobs); !st.ok()) return st;
  std::map<int64_t, ServiceEndpoints> by_id;
  std::map<int64_t, std::string> templates;  // what the current revision's replicas are made of
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [id, state] : services_) {
    if (state.stopped || !MaySeeJobsOf(caller, state.user)) continue;
    by_id[id] = ServiceOf(state);
    if (state.rollout_started_ms != 0) templates[id] = CurrentTemplate(state);  // else RunsCurrent needs none
  }
  for (int64_t replica : engine_.ServiceReplicas()) {
    const engine::JobEntry* j = engine_.FindJob(replica);
    if (j == nullptr || store::IsTerminal(j->rec.state) || !MaySeeJobsOf(caller, j->rec.user)) continue;
    ServiceEndpoints& s = by_id[j->rec.array_id];
    if (s.id == 0) {  // not adopted yet (ReconcileServices)
      s.id = j->rec.array_id;
      s.name = j->spec.name;
      s.user = j->rec.user;
      s.replicas = j->spec.service.replicas;
    }
    ServiceEndpoints::Replica& r = s.list.emplace_back(ReplicaOf(j->rec, j));
    auto state = services_.find(s.id);
    r.current = state == services_.end() || RunsCurrent(state->second, *j, templates[s.id]);
  }
  std::vector<ServiceEndpoints> out;
  for (auto& [id, s] : by_id) {
    std::sort(s.list.begin(), s.list.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
    out.push_back(std::move(s));
  }
  return out;
}

absl::StatusOr<ServiceEndpoints> Controller::Endpoints(const Principal& caller, int64_t id) const {
  if (absl::Status st = Authorize(caller, Action::kReadJobs); !st.ok()) return st;
  const absl::Status none = absl::NotFoundError(absl::StrCat("no service ", id));
  auto job = store_->GetJob(id);
  if (!job.ok()) return job.status().code() == absl::StatusCode::kNotFound ? none : job.status();
  if (!MaySeeJobsOf(caller, job->user) || job->array_id == 0) return none;
  auto spec = api::ParseJobSpec(job->spec_json, StoredSpecLimits());
  if (!spec.ok() || spec->kind != api::JobKind::kService) return none;
  ServiceEndpoints out;
  out.id = job->array_id;
  out.name = job->name;
  out.user = job->user;
  out.replicas = spec->service.replicas;
  std::lock_guard<std::mutex> lock(mu_);
  auto state = services_.find(out.id);
  std::string want;
  if (state != services_.end()) {
    out = ServiceOf(state->second);
    if (state->second.rollout_started_ms != 0) want = CurrentTemplate(state->second);  // else RunsCurrent needs none
  }
  // The open replicas; the replaced, scaled away or cancelled ones are
  // history (icos jobs).
  for (int64_t replica : ServiceReplicasOf(out.id)) {
    const engine::JobEntry* j = engine_.FindJob(replica);
    ServiceEndpoints::Replica& r = out.list.emplace_back(ReplicaOf(j->rec, j));
    r.current = state == services_.end() || RunsCurrent(state->second, *j, want);
  }
  std::sort(out.list.begin(), out.list.end(), [](const auto& a, const auto& b) { return a.index < b.index; });
  return out;
}

}  // namespace icos::controller
