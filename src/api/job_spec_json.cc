// A JobSpec as canonical JSON: what the store keeps and the API shows.
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "api/job_spec.h"
#include "api/quantity.h"
#include "nlohmann/json.hpp"

namespace icos::api {

using Json = nlohmann::ordered_json;
using detail::FormatCpu;
using detail::FormatDuration;
using detail::FormatMemory;

std::string JobSpecToJson(const JobSpec& spec) {
  Json job;
  job["name"] = spec.name;
  if (spec.kind == JobKind::kService) {  // absent for batch jobs: older specs keep their JSON
    job["kind"] = JobKindName(spec.kind);
    Json service = {{"replicas", spec.service.replicas}};
    for (const auto& [name, p] : spec.service.NamedProbes()) {
      if (p->type == ProbeSpec::Type::kNone) continue;
      Json probe;
      if (p->type == ProbeSpec::Type::kHttp) probe["http"] = p->http_path;
      if (p->type == ProbeSpec::Type::kTcp) probe["tcp"] = true;
      if (p->type == ProbeSpec::Type::kCommand) probe["command"] = p->command;
      probe["initial_delay"] = FormatDuration(p->initial_delay_s);
      probe["period"] = FormatDuration(p->period_s);
      probe["timeout"] = FormatDuration(p->timeout_s);
      probe["success_threshold"] = p->success_threshold;
      probe["failure_threshold"] = p->failure_threshold;
      service[name] = std::move(probe);
    }
    const RolloutSpec& u = spec.service.update;
    const auto bound = [](int32_t v, bool percent) { return percent ? Json(absl::StrCat(v, "%")) : Json(v); };
    service["update"] = {{"max_surge", bound(u.max_surge, u.max_surge_percent)},
                         {"max_unavailable", bound(u.max_unavailable, u.max_unavailable_percent)},
                         {"ready_timeout", FormatDuration(u.ready_timeout_s)}};
    if (const AutoscaleSpec& a = spec.service.autoscale; a.enabled()) {
      Json autoscale = {{"min", a.min}, {"max", a.max}};
      if (a.target_rps > 0) autoscale["target_rps"] = a.target_rps;
      if (a.target_concurrency > 0) autoscale["target_concurrency"] = a.target_concurrency;
      if (a.target_p90_ms > 0) autoscale["target_p90_ms"] = a.target_p90_ms;
      autoscale["window"] = FormatDuration(a.window_s);
      autoscale["scale_down_delay"] = FormatDuration(a.scale_down_delay_s);
      autoscale["cold_start_timeout"] = FormatDuration(a.cold_start_timeout_s);
      service["autoscale"] = std::move(autoscale);
    }
    job["service"] = std::move(service);
  }
  job["queue"] = spec.queue;
  job["priority"] = spec.priority;
  if (!spec.priority_class.empty()) job["priority_class"] = spec.priority_class;
  if (!spec.preempts) job["preempts"] = false;
  job["framework"] = FrameworkName(spec.framework);
  job["restart"] = {{"policy", RestartPolicyName(spec.restart)}, {"max_retries", spec.max_retries}};
  if (spec.time_limit_s != 0) job["time_limit"] = FormatDuration(spec.time_limit_s);
  if (spec.runtime_estimate_s != 0) job["runtime_estimate"] = FormatDuration(spec.runtime_estimate_s);
  if (spec.max_disconnect_s != 0) job["max_disconnect"] = FormatDuration(spec.max_disconnect_s);
  job["preemptible"] = spec.preemptible;
  if (!spec.env.empty()) job["env"] = spec.env;
  if (!spec.array.empty()) job["array"] = spec.array;
  if (const api::Dependencies& d = spec.dependencies; !d.empty()) {
    Json deps;
    if (!d.after_ok.empty()) deps["after_ok"] = d.after_ok;
    if (!d.after_any.empty()) deps["after_any"] = d.after_any;
    if (!d.after_not_ok.empty()) deps["after_not_ok"] = d.after_not_ok;
    deps["if_unmet"] = d.cancel_if_unmet ? "cancel" : "wait";
    job["dependencies"] = std::move(deps);
  }
  if (const CheckpointSpec& c = spec.checkpoint; c.enabled) {
    Json ckpt;
    ckpt["signal"] = CheckpointSignalName(c.signal) != nullptr ? CheckpointSignalName(c.signal) : "SIGUSR1";
    ckpt["grace"] = FormatDuration(c.grace_s);
    if (c.interval_s > 0) ckpt["interval"] = FormatDuration(c.interval_s);
    job["checkpoint"] = std::move(ckpt);
  }
  if (const NotifySpec& n = spec.notify; !n.url.empty()) {
    job["notify"] = {{"url", n.url}, {"on", NotifyEventNames(n.on)}};
    if (n.array_tasks) job["notify"]["array_tasks"] = true;  // absent when false: older specs keep their JSON
  }
  Json tasks = Json::array();
  for (const TaskSpec& t : spec.tasks) {
    Json task;
    task["name"] = t.name;
    task["replicas"] = t.replicas;
    task["min_available"] = t.min_available;
    task["command"] = t.command;
    if (!t.workdir.empty()) task["workdir"] = t.workdir;
    if (!t.env.empty()) task["env"] = t.env;
    Json resources;
    resources["cpu"] = FormatCpu(t.cpu_milli);
    resources["memory"] = FormatMemory(t.memory_mib);
    resources["devices"] = t.devices;
    if (t.device_percent != 0) resources["device_share"] = absl::StrCat(t.device_percent, "%");
    if (t.device_memory_mib != 0) resources["device_memory"] = FormatMemory(t.device_memory_mib);
    task["resources"] = std::move(resources);
    if (!t.device_wishes.empty()) {
      Json wishes = Json::array();
      for (const DeviceWish& w : t.device_wishes) {
        Json wish;
        wish["vendor"] = w.vendor;
        if (!w.model.empty()) wish["model"] = w.model;
        if (w.throughput != 0) wish["throughput"] = w.throughput;
        wishes.push_back(std::move(wish));
      }
      task["devices"] = std::move(wishes);
    }
    task["affinity"] = AffinityName(t.affinity);
    if (!t.node_selector.empty()) task["node_selector"] = t.node_selector;
    tasks.push_back(std::move(task));
  }
  job["tasks"] = std::move(tasks);
  return job.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace icos::api
