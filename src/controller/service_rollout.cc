// Controller: services' revisions, rolling updates, rollbacks and scale
// (issue #22). The desired state is a ServiceState in the store; each round
// (after the probes, on the prober's thread) PlanRollout says which
// replicas to make and stop, and this file does it: stops and the state in
// one commit, then the new replicas' rows.
//
// What if we crash here? The state is committed before the replicas it
// counts on are made (their indices are taken first), so a crash between
// leaves fewer replicas than wanted, never more, and the next round makes
// the rest. One round runs at a time, so no replica is made twice.
#include <algorithm>
#include <optional>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "controller/controller.h"

namespace icos::controller {

using store::JobState;

namespace {

// The spec of `revision` with `replicas` copies (so ICOS_REPLICAS tells
// the count now wanted).
absl::StatusOr<api::JobSpec> SpecOf(const ServiceRevision& revision, int32_t replicas, const api::SpecLimits& limits) {
  absl::StatusOr<api::JobSpec> spec = api::ParseJobSpec(revision.spec_json, limits);
  if (!spec.ok()) {
    return absl::DataLossError(absl::StrCat("revision ", revision.number, "'s spec: ", spec.status().message()));
  }
  spec->service.replicas = std::max(replicas, 1);
  return spec;
}

}  // namespace

absl::Status Controller::LoadServices() {
  auto stored = store_->ListServices();
  if (!stored.ok()) return stored.status();
  WriteLock lock(*this);
  for (const store::ServiceRecord& r : *stored) {
    absl::StatusOr<ServiceState> s = ServiceStateFromJson(r.id, r.state_json);
    if (!s.ok()) return s.status();
    services_[r.id] = *std::move(s);
  }
  return absl::OkStatus();
}

void Controller::StartService(const Principal& caller, int64_t id, const std::string& spec_json,
                              const api::JobSpec& spec) {
  ServiceState s;
  s.id = id;
  s.name = spec.name;
  s.user = caller.user;
  s.run_uid = caller.uid;
  s.run_gid = caller.gid;
  s.replicas = spec.service.replicas;
  s.next_index = spec.service.replicas;
  s.AddRevision({.spec_json = spec_json, .created_by = caller.name, .change = "submitted"}, clock_->NowMs());
  // Not stored: ReconcileServices adopts a service whose state it lacks
  // from its replicas, as it does one made before services had a state.
  if (absl::Status st = SaveService(std::move(s)); !st.ok()) log::Failure("store service", st, absl::StrCat(id));
}

absl::Status Controller::SaveService(ServiceState next) {
  return SaveService(std::move(next), engine::Change(clock_->NowMs()));
}

absl::Status Controller::SaveService(ServiceState next, engine::Change c) {
  c.batch.services.push_back({.id = next.id, .state_json = ServiceStateToJson(next)});
  ICOS_RETURN_IF_ERROR(Commit(std::move(c)));
  const int64_t id = next.id;
  services_[id] = std::move(next);
  return absl::OkStatus();
}

std::vector<int64_t> Controller::ServiceReplicasOf(int64_t id) const {
  std::vector<int64_t> out;
  for (int64_t replica : engine_.ServiceReplicas()) {
    const JobEntry* j = engine_.FindJob(replica);
    if (j != nullptr && j->rec.array_id == id && !store::IsTerminal(j->rec.state)) out.push_back(replica);
  }
  return out;
}

absl::StatusOr<ServiceState*> Controller::ServiceFor(const Principal& caller, int64_t id) {
  auto it = services_.find(id);
  if (it == services_.end() || !MaySeeJobsOf(caller, it->second.user)) {
    return absl::NotFoundError(absl::StrCat("no service ", id));
  }
  if (it->second.stopped) return absl::FailedPreconditionError(absl::StrCat("service ", id, " was cancelled"));
  return &it->second;
}

const api::JobSpec* Controller::CurrentSpec(const ServiceState& s) const {
  const ServiceRevision* current = s.Find(s.revision);
  ParsedRevision& p = parsed_revisions_[s.id];
  if (p.spec_json != current->spec_json || p.replicas != s.replicas) {
    absl::StatusOr<api::JobSpec> spec = SpecOf(*current, s.replicas, StoredSpecLimits());
    if (!spec.ok()) log::Failure("service spec", spec.status(), absl::StrCat("service=", s.id));
    p = ParsedRevision{.spec_json = current->spec_json, .replicas = s.replicas};
    if (spec.ok()) {
      p.replica_template = ReplicaTemplate(*spec);
      p.spec = *std::move(spec);
    }
  }
  return p.spec ? &*p.spec : nullptr;
}

std::string Controller::CurrentTemplate(const ServiceState& s) const {
  return CurrentSpec(s) != nullptr ? parsed_revisions_.at(s.id).replica_template : "";
}

bool Controller::RunsCurrent(const ServiceState& s, const JobEntry& replica, const std::string& current_template) {
  // Without a rollout every open replica runs the current revision: each
  // made since the last one completed was made of it.
  return s.rollout_started_ms == 0 || ReplicaTemplate(replica.spec) == current_template;
}

std::set<int64_t> Controller::AdoptUnrecordedServices(int64_t now) {
  std::set<int64_t> adopted;
  for (int64_t replica : engine_.ServiceReplicas()) {
    const JobEntry* j = engine_.FindJob(replica);
    if (j == nullptr || services_.count(j->rec.array_id) || store::IsTerminal(j->rec.state)) continue;
    ServiceState s;
    s.id = j->rec.array_id;
    s.name = j->spec.name;
    s.user = j->rec.user;
    s.run_uid = j->rec.run_uid;
    s.run_gid = j->rec.run_gid;
    s.replicas = j->spec.service.replicas;
    for (int64_t other : ServiceReplicasOf(s.id)) {
      s.next_index = std::max(s.next_index, engine_.FindJob(other)->rec.array_index + 1);
    }
    s.AddRevision({.spec_json = j->rec.spec_json, .created_by = "icos", .change = "adopted"}, now);
    adopted.insert(s.id);
    services_[s.id] = std::move(s);
  }
  return adopted;
}

std::optional<ServiceState> Controller::StepService(const ServiceState& was, const std::vector<int64_t>& replicas,
                                                    bool dirty, const std::optional<ServiceLoad>& load,
                                                    engine::Change& c, std::vector<ReplicasToMake>& makes) {
  const int64_t id = was.id;
  const api::JobSpec* spec = CurrentSpec(was);
  if (spec == nullptr) return std::nullopt;  // said once, when parsed
  ServiceState state = was;                  // with this round's count
  if (const api::AutoscaleSpec& a = spec->service.autoscale; a.enabled() && !state.stopped && load) {
    const ScaleDecision d = Autoscale(a, state.replicas, *load, c.now_ms, autoscale_[id]);
    if (d.replicas != state.replicas) {
      c.Event(id, "", "Autoscaled", d.why);
      state.replicas = d.replicas;
      spec = CurrentSpec(state);
      if (spec == nullptr) return std::nullopt;
      dirty = true;
    }
  }
  // Settled: no rollout, as many replicas as wanted, all of the current
  // revision (each made since its rollout completed is). Nothing to do.
  if (!state.stopped && state.rollout_started_ms == 0 && replicas.size() == static_cast<size_t>(state.replicas)) {
    return dirty ? std::optional<ServiceState>(std::move(state)) : std::nullopt;
  }
  const std::string want = CurrentTemplate(state);
  std::vector<LiveReplica> live;
  for (int64_t replica : replicas) {
    const JobEntry* j = engine_.FindJob(replica);
    const ServiceEndpoints::Replica r = ReplicaOf(j->rec, j);
    live.push_back({.job_id = replica,
                    .index = j->rec.array_index,
                    .current = RunsCurrent(state, *j, want),
                    .ready = r.ready,
                    .made_ms = j->rec.submit_ms,
                    .why = r.reason});
  }
  // Only a rollout away from a stable revision's template can fail: a
  // rollback, or a service's first revision, keeps trying.
  const ServiceRevision* stable = state.Find(state.stable);
  bool can_fail = false;
  if (stable != nullptr && state.stable != state.revision) {
    absl::StatusOr<api::JobSpec> stable_spec = api::ParseJobSpec(stable->spec_json, StoredSpecLimits());
    can_fail = stable_spec.ok() && ReplicaTemplate(*stable_spec) != want;
  }
  const RolloutPlan plan = PlanRollout(state, spec->service.update, can_fail, live, c.now_ms);
  ServiceState next = state;
  if (!plan.failed.empty()) {
    const std::string why = absl::StrCat("revision ", state.revision, " failed: ", plan.failed);
    next.Find(state.revision)->outcome = absl::StrCat("failed: ", plan.failed);
    next.AddRevision({.spec_json = stable->spec_json,
                      .created_by = "icos",
                      .change = absl::StrCat("automatic rollback to revision ", state.stable, ": ", why)},
                     c.now_ms);
    c.Event(id, "", "RolloutFailed", absl::StrCat(why, "; rolling back to revision ", state.stable));
    return next;  // the next round stops and makes replicas for the rollback
  }
  if (plan.complete) {
    next.Find(state.revision)->outcome = "complete";
    next.stable = state.revision;
    next.rollout_started_ms = 0;
    c.Event(id, "", "RolloutComplete",
            absl::StrCat("revision ", state.revision, ": ", state.replicas, " replicas ready"));
    dirty = true;
  }
  for (int64_t replica : plan.stop) {
    const bool old =
        std::any_of(live.begin(), live.end(), [&](const LiveReplica& r) { return r.job_id == replica && !r.current; });
    StageCancel(c, replica,
                state.stopped ? absl::StrCat("service ", id, " cancelled")
                : old         ? absl::StrCat("replaced by revision ", state.revision, " of service ", id)
                              : absl::StrCat("service ", id, " scaled to ", state.replicas, " replicas"));
  }
  if (plan.create > 0) {
    makes.push_back({.service = id,
                     .user = state.user,
                     .run_uid = state.run_uid,
                     .run_gid = state.run_gid,
                     .spec = *spec,
                     .first_index = next.next_index,
                     .count = plan.create});
    next.next_index += plan.create;  // taken before the rows exist: never two replicas with one index
    dirty = true;
  }
  return dirty ? std::optional<ServiceState>(std::move(next)) : std::nullopt;
}

void Controller::MakeReplicas(const ReplicasToMake& m) {
  store::JobRecord r;
  r.name = m.spec.name;
  r.user = m.user;
  r.run_uid = m.run_uid;
  r.run_gid = m.run_gid;
  r.queue = m.spec.queue;
  r.priority = m.spec.priority;
  r.state = JobState::kPending;
  r.spec_json = api::JobSpecToJson(m.spec);
  r.reason = "waiting for the next scheduling pass";
  r.submit_ms = clock_->NowMs();
  r.array_id = m.service;
  std::vector<store::JobRecord> recs(m.count, r);
  for (int32_t i = 0; i < m.count; ++i) recs[i].array_index = m.first_index + i;
  if (absl::Status st = store_->InsertJobs(&recs); !st.ok()) {
    log::Failure("service replicas", st, absl::StrCat("service=", m.service));
    return;  // its indices stay unused; the next round makes replicas again
  }
  WriteLock lock(*this);
  AdmitJobs(m.spec, recs);
}

void Controller::ReconcileServices() {
  std::lock_guard<std::mutex> one(reconcile_mu_);
  const int64_t now = clock_->NowMs();
  std::vector<ReplicasToMake> makes;
  // What the gateways measured of each open service this round: its
  // autoscaler reads it, and its traffic is charted.
  std::vector<std::pair<int64_t, ServiceLoad>> measured;
  {
    WriteLock lock(*this);
    engine::Change c(now);
    const std::set<int64_t> adopted = AdoptUnrecordedServices(c.now_ms);  // stored with this round's changes
    std::vector<ServiceState> changed;
    for (const auto& [id, was] : services_) {
      const std::vector<int64_t> replicas = ServiceReplicasOf(id);  // walked once a round
      if (was.stopped && replicas.empty()) {
        parsed_revisions_.erase(id);
        autoscale_.erase(id);
        traffic_.Forget(id);
        continue;
      }
      const std::optional<ServiceLoad> load = was.stopped ? std::nullopt : MeasuredLoad(id, c.now_ms);
      if (load) measured.emplace_back(id, *load);
      if (std::optional<ServiceState> next = StepService(was, replicas, adopted.count(id) > 0, load, c, makes)) {
        changed.push_back(*std::move(next));
      }
    }
    for (const ServiceState& s : changed) {
      c.batch.services.push_back({.id = s.id, .state_json = ServiceStateToJson(s)});
    }
    if (absl::Status st = Commit(std::move(c)); !st.ok()) {
      log::Failure("service rollout", st, "");
      return;  // nothing changed; the next round plans again
    }
    for (ServiceState& s : changed) services_[s.id] = std::move(s);
  }
  for (const ReplicasToMake& m : makes) MakeReplicas(m);
  if (!makes.empty()) Wake();
  for (const auto& [id, load] : measured) traffic_.Sample(id, load, now);
}

absl::StatusOr<int32_t> Controller::UpdateService(const Principal& caller, int64_t id, const std::string& spec_text,
                                                  const std::string& base_dir) {
  if (absl::Status st = Authorize(caller, Action::kControlJob); !st.ok()) return st;
  absl::StatusOr<api::JobSpec> spec = AcceptSpec(caller, spec_text, base_dir);
  if (!spec.ok()) return spec.status();
  if (spec->kind != api::JobKind::kService) {
    return absl::InvalidArgumentError("a service's new spec must say kind: service");
  }
  WriteLock lock(*this);
  absl::StatusOr<ServiceState*> found = ServiceFor(caller, id);
  if (!found.ok()) return found.status();
  ServiceState next = **found;
  if (spec->name != next.name) {
    return absl::InvalidArgumentError(absl::StrCat("name: service ", id, " is named ", next.name,
                                                   " (the gateway routes by it); submit a new service instead"));
  }
  const std::string spec_json = api::JobSpecToJson(*spec);
  // An autoscaled service keeps the count its autoscaler set (within the
  // new bounds); the spec's count is where it starts, as kubectl apply
  // without replicas leaves an HPA's.
  const api::AutoscaleSpec& a = spec->service.autoscale;
  next.replicas = a.enabled() ? std::clamp(next.replicas, a.min, a.max) : spec->service.replicas;
  ICOS_RETURN_IF_ERROR(CheckCopiesOfSpec(spec_json, static_cast<size_t>(next.replicas)));
  absl::StatusOr<api::JobSpec> current = SpecOf(*next.Find(next.revision), next.replicas, StoredSpecLimits());
  if (!current.ok()) return current.status();
  if (ReplicaTemplate(*current) == ReplicaTemplate(*spec)) {
    next.Find(next.revision)->spec_json = spec_json;  // the count or the rollout rule: no replica changes
  } else {
    next.AddRevision({.spec_json = spec_json, .created_by = caller.name, .change = "updated"}, clock_->NowMs());
  }
  const int32_t revision = next.revision;
  ICOS_RETURN_IF_ERROR(SaveService(std::move(next)));
  return revision;
}

absl::Status Controller::ScaleService(const Principal& caller, int64_t id, int32_t replicas) {
  if (absl::Status st = Authorize(caller, Action::kControlJob); !st.ok()) return st;
  if (replicas < 0 || replicas > options_.spec_limits.max_array_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("replicas must be between 0 and ", options_.spec_limits.max_array_size, ", not ", replicas));
  }
  WriteLock lock(*this);
  absl::StatusOr<ServiceState*> found = ServiceFor(caller, id);
  if (!found.ok()) return found.status();
  ServiceState next = **found;
  if (const api::JobSpec* spec = CurrentSpec(next); spec != nullptr && spec->service.autoscale.enabled()) {
    const api::AutoscaleSpec& a = spec->service.autoscale;
    return absl::FailedPreconditionError(
        absl::StrCat("service ", id, " autoscales between ", a.min, " and ", a.max,
                     " replicas; change its spec's service.autoscale (icos service update) instead"));
  }
  if (const ServiceRevision* current = next.Find(next.revision); current != nullptr) {
    ICOS_RETURN_IF_ERROR(CheckCopiesOfSpec(current->spec_json, static_cast<size_t>(replicas)));
  }
  next.replicas = replicas;
  return SaveService(std::move(next));
}

absl::StatusOr<int32_t> Controller::RollbackService(const Principal& caller, int64_t id, int32_t to) {
  if (absl::Status st = Authorize(caller, Action::kControlJob); !st.ok()) return st;
  WriteLock lock(*this);
  absl::StatusOr<ServiceState*> found = ServiceFor(caller, id);
  if (!found.ok()) return found.status();
  ServiceState next = **found;
  if (to == 0) {  // the last complete rollout, else the revision before this one
    to = next.stable != next.revision ? next.stable : 0;
    if (to == 0 && next.revisions.size() >= 2) to = next.revisions[next.revisions.size() - 2].number;
  }
  const ServiceRevision* target = next.Find(to);
  if (target == nullptr || to == next.revision) {
    return absl::FailedPreconditionError(
        to == 0 ? absl::StrCat("service ", id, " has no earlier revision to roll back to")
                : absl::StrCat("service ", id, to == next.revision ? " runs revision " : " keeps no revision ", to));
  }
  next.AddRevision({.spec_json = target->spec_json,
                    .created_by = caller.name,
                    .change = absl::StrCat("rolled back to revision ", to)},
                   clock_->NowMs());
  const int32_t revision = next.revision;
  ICOS_RETURN_IF_ERROR(SaveService(std::move(next)));
  return revision;
}

absl::Status Controller::PauseService(const Principal& caller, int64_t id, bool pause) {
  ICOS_RETURN_IF_ERROR(Authorize(caller, Action::kControlJob));
  WriteLock lock(*this);
  absl::StatusOr<ServiceState*> found = ServiceFor(caller, id);
  if (!found.ok()) return found.status();
  if ((found.value()->paused_ms != 0) == pause) return absl::OkStatus();
  ServiceState next = **found;
  const int64_t now = clock_->NowMs();
  next.paused_ms = pause ? now : 0;
  if (!pause) next.resumed_ms = now;
  engine::Change c(now);
  c.Event(id, "", pause ? "Paused" : "Resumed",
          pause ? absl::StrCat("by ", caller.name, ": nothing is made or stopped for it until icos service resume ", id)
                : absl::StrCat("by ", caller.name));
  return SaveService(std::move(next), std::move(c));
}

absl::StatusOr<std::vector<TrafficPoint>> Controller::ServiceTrafficOf(const Principal& caller, int64_t id) const {
  if (absl::StatusOr<ServiceState> seen = GetService(caller, id); !seen.ok()) return seen.status();
  return traffic_.Of(id);
}

absl::StatusOr<ServiceState> Controller::GetService(const Principal& caller, int64_t id) const {
  if (absl::Status st = Authorize(caller, Action::kReadJobs); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = services_.find(id);
  if (it == services_.end() || !MaySeeJobsOf(caller, it->second.user)) {
    return absl::NotFoundError(absl::StrCat("no service ", id));
  }
  return it->second;
}

}  // namespace icos::controller
