// The job spec's meaning for the scheduler: its run-time estimate and its
// core::Job (job_spec.h). Apart from the parser so that each stays readable.
#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/job_spec.h"

namespace icos::api {

absl::StatusOr<Dependencies> ParseDependencyList(absl::string_view text) {
  Dependencies d;
  size_t count = 0;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    std::vector<absl::string_view> fields = absl::StrSplit(part, ':');
    std::vector<int64_t>* ids = nullptr;
    if (fields[0] == "afterok" || fields[0] == "after_ok") ids = &d.after_ok;
    if (fields[0] == "afterany" || fields[0] == "after_any") ids = &d.after_any;
    if (fields[0] == "afternotok" || fields[0] == "after_not_ok") ids = &d.after_not_ok;
    if (ids == nullptr || fields.size() < 2) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dependency '", part, "': use afterok:ID[:ID...], afterany:ID... or afternotok:ID..., comma-separated"));
    }
    for (size_t i = 1; i < fields.size(); ++i) {
      int64_t id = 0;
      if (!absl::SimpleAtoi(fields[i], &id) || id <= 0) {
        return absl::InvalidArgumentError(absl::StrCat("dependency '", part, "': '", fields[i], "' is not a job id"));
      }
      if (++count > kMaxDependencies) {
        return absl::InvalidArgumentError(absl::StrCat("more than ", kMaxDependencies, " dependencies"));
      }
      if (std::find(ids->begin(), ids->end(), id) == ids->end()) ids->push_back(id);
    }
  }
  return d;
}

void MergeDependencies(const Dependencies& more, Dependencies& into) {
  for (auto [from, to] : {std::pair{&more.after_ok, &into.after_ok},
                          {&more.after_any, &into.after_any},
                          {&more.after_not_ok, &into.after_not_ok}}) {
    for (int64_t id : *from) {
      if (std::find(to->begin(), to->end(), id) == to->end()) to->push_back(id);
    }
  }
}

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
