// The job spec's meaning for the scheduler: its run-time estimate and its
// core::Job (job_spec.h). Apart from the parser so that each stays readable.
#include <cmath>
#include <string>

#include "api/job_spec.h"

namespace icos::api {

RuntimeEstimate EstimateOf(const JobSpec& spec, double learned_s) {
  if (spec.runtime_estimate_s > 0) return {static_cast<double>(spec.runtime_estimate_s), "user"};
  if (learned_s > 0) {
    // The time limit is a promise: an estimate beyond it is wrong by construction.
    const double s = spec.time_limit_s > 0 ? std::min(learned_s, static_cast<double>(spec.time_limit_s)) : learned_s;
    return {s, "learned"};
  }
  if (spec.time_limit_s > 0) return {static_cast<double>(spec.time_limit_s), "time_limit"};
  return {};
}

core::Job ToCoreJob(const JobSpec& spec, JobId id, const std::string& user, int64_t submit_ms) {
  core::Job job;
  job.id = id;
  job.user = user;
  job.queue = spec.queue;
  job.priority = spec.priority;
  job.submit_ms = submit_ms;
  // The controller may replace it with a learned estimate below the limit.
  job.runtime_estimate_ms = std::llround(EstimateOf(spec).seconds * 1000);
  job.preemptible = spec.preemptible;
  for (const TaskSpec& t : spec.tasks) {
    core::TaskGroup g;
    g.name = t.name;
    g.replicas = t.replicas;
    g.min_available = t.min_available;
    g.request.cpu_milli = t.cpu_milli;
    g.request.memory_mib = t.memory_mib;
    g.request.devices = t.devices;
    g.request.device_percent = t.device_percent;
    g.request.device_memory_mib = t.device_memory_mib;
    for (const DeviceWish& w : t.device_wishes) g.device_choices.push_back({w.vendor, w.model, w.throughput});
    g.affinity = t.affinity;
    g.node_selector = t.node_selector;
    job.groups.push_back(std::move(g));
  }
  return job;
}

}  // namespace icos::api
