#include "controller/service_state.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"

namespace icos::controller {

using nlohmann::json;

const ServiceRevision* ServiceState::Find(int32_t number) const {
  for (const ServiceRevision& r : revisions) {
    if (r.number == number) return &r;
  }
  return nullptr;
}

ServiceRevision* ServiceState::Find(int32_t number) {
  return const_cast<ServiceRevision*>(static_cast<const ServiceState&>(*this).Find(number));
}

void ServiceState::AddRevision(ServiceRevision r, int64_t now_ms) {
  r.number = revisions.empty() ? 1 : revisions.back().number + 1;
  r.created_ms = now_ms;
  if (ServiceRevision* was = Find(revision); was != nullptr && was->outcome.empty()) was->outcome = "superseded";
  revision = r.number;
  rollout_started_ms = now_ms;
  revisions.push_back(std::move(r));
  // The oldest go, but never the stable one (the rollback target).
  while (revisions.size() > kKeptRevisions) {
    auto victim = std::find_if(revisions.begin(), revisions.end(),
                               [&](const ServiceRevision& x) { return x.number != stable && x.number != revision; });
    revisions.erase(victim);
  }
}

std::string RolloutStatus(const ServiceState& s) {
  if (s.stopped) return "stopped";
  return absl::StrCat(s.paused_ms != 0 ? "paused: " : "",
                      s.rollout_started_ms != 0 ? absl::StrCat("rolling out revision ", s.revision) : "complete");
}

std::string ServiceStateToJson(const ServiceState& s) {
  json revisions = json::array();
  for (const ServiceRevision& r : s.revisions) {
    revisions.push_back({{"number", r.number},
                         {"spec", json::parse(r.spec_json, nullptr, false)},
                         {"created_ms", r.created_ms},
                         {"created_by", r.created_by},
                         {"change", r.change},
                         {"outcome", r.outcome}});
  }
  return json{{"name", s.name},
              {"user", s.user},
              {"run_uid", s.run_uid},
              {"run_gid", s.run_gid},
              {"replicas", s.replicas},
              {"revision", s.revision},
              {"stable", s.stable},
              {"rollout_started_ms", s.rollout_started_ms},
              {"paused_ms", s.paused_ms},
              {"resumed_ms", s.resumed_ms},
              {"next_index", s.next_index},
              {"stopped", s.stopped},
              {"revisions", std::move(revisions)}}
      .dump();
}

absl::StatusOr<ServiceState> ServiceStateFromJson(int64_t id, const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  const auto bad = [&](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("stored service ", id, ": ", why));
  };
  if (!j.is_object() || !j.contains("revisions") || !j["revisions"].is_array()) return bad("not a service's state");
  try {
    ServiceState s;
    s.id = id;
    s.name = j.at("name").get<std::string>();
    s.user = j.at("user").get<std::string>();
    s.run_uid = j.at("run_uid").get<int64_t>();
    s.run_gid = j.at("run_gid").get<int64_t>();
    s.replicas = j.at("replicas").get<int32_t>();
    s.revision = j.at("revision").get<int32_t>();
    s.stable = j.at("stable").get<int32_t>();
    s.rollout_started_ms = j.at("rollout_started_ms").get<int64_t>();
    s.next_index = j.at("next_index").get<int32_t>();
    s.stopped = j.at("stopped").get<bool>();
    // Absent in states an icos before pausing stored.
    s.paused_ms = j.value("paused_ms", int64_t{0});
    s.resumed_ms = j.value("resumed_ms", int64_t{0});
    for (const json& r : j["revisions"]) {
      s.revisions.push_back(ServiceRevision{.number = r.at("number").get<int32_t>(),
                                            .spec_json = r.at("spec").dump(),
                                            .created_ms = r.at("created_ms").get<int64_t>(),
                                            .created_by = r.at("created_by").get<std::string>(),
                                            .change = r.at("change").get<std::string>(),
                                            .outcome = r.at("outcome").get<std::string>()});
    }
    if (s.Find(s.revision) == nullptr) return bad(absl::StrCat("its revision ", s.revision, " is not kept"));
    return s;
  } catch (const json::exception& e) {
    return bad(e.what());
  }
}

std::string ReplicaTemplate(api::JobSpec spec) {
  spec.service.replicas = 1;
  spec.service.update = api::RolloutSpec();
  spec.service.autoscale = api::AutoscaleSpec();
  return api::JobSpecToJson(spec);
}

RolloutPlan PlanRollout(const ServiceState& state, const api::RolloutSpec& update, bool can_fail,
                        const std::vector<LiveReplica>& live, int64_t now_ms) {
  RolloutPlan plan;
  if (state.stopped) {
    for (const LiveReplica& r : live) plan.stop.push_back(r.job_id);
    return plan;
  }
  if (state.paused_ms != 0) return plan;
  std::vector<const LiveReplica*> current, old;
  for (const LiveReplica& r : live) (r.current ? current : old).push_back(&r);
  if (can_fail && state.rollout_started_ms != 0) {
    for (const LiveReplica* r : current) {
      if (!r->ready && now_ms - std::max(r->made_ms, state.resumed_ms) > update.ready_timeout_s * 1000) {
        plan.failed = absl::StrCat("replica ", r->index, " was not ready ", update.ready_timeout_s,
                                   "s after it was made", r->why.empty() ? "" : absl::StrCat(" (", r->why, ")"));
        return plan;
      }
    }
  }
  // Not ready first, then the highest index: the newest, least proven.
  auto stop_order = [](const LiveReplica* a, const LiveReplica* b) {
    return a->ready != b->ready ? !a->ready : a->index > b->index;
  };
  std::sort(old.begin(), old.end(), stop_order);
  std::sort(current.begin(), current.end(), stop_order);
  const int32_t n = state.replicas;
  const auto total = static_cast<int32_t>(live.size());
  const auto count_ready = [](const std::vector<const LiveReplica*>& v) {
    return static_cast<int32_t>(std::count_if(v.begin(), v.end(), [](const LiveReplica* r) { return r->ready; }));
  };
  int32_t ready = count_ready(current) + count_ready(old);
  const int32_t have = static_cast<int32_t>(current.size());
  plan.create = std::max(0, std::min(n - have, n + update.SurgeFor(n) - total));
  const int32_t min_ready = n - update.UnavailableFor(n);
  for (const LiveReplica* r : old) {
    if (r->ready) {
      if (ready - 1 < min_ready) break;  // the rest are ready too (sorted)
      --ready;
    }
    plan.stop.push_back(r->job_id);
  }
  for (int32_t i = 0; i + n < have; ++i) plan.stop.push_back(current[i]->job_id);
  plan.complete = state.rollout_started_ms != 0 && old.empty() && have == n && count_ready(current) == n;
  return plan;
}

}  // namespace icos::controller
