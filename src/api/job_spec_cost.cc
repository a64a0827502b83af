// What one accepted job costs the controller: its tasks and the bytes their
// assignments carry (job_spec.h, SpecLimits). Apart from the parser so that
// each stays readable.
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "api/job_spec.h"

namespace icos::api {

int64_t AssignmentBytes(const JobSpec& spec) {
  int64_t tasks = 0, job_env = 0;
  for (const TaskSpec& t : spec.tasks) tasks += t.replicas;
  for (const auto& [k, v] : spec.env) job_env += static_cast<int64_t>(k.size() + v.size() + 2);
  // Framework variables, devices, limits and the JSON around them.
  constexpr int64_t kPerTask = 1'024;
  // One entry of a rank list: a hostfile line, an endpoint, a TF_CONFIG
  // worker (about 32 bytes); a MindSpore rank-table device (about 96).
  const int64_t per_rank_entry = spec.framework == Framework::kMindSpore ? 96 : 32;
  const bool lists_ranks = spec.framework == Framework::kMpi || spec.framework == Framework::kDeepSpeed ||
                           spec.framework == Framework::kMindSpore || spec.framework == Framework::kPaddle ||
                           spec.framework == Framework::kTensorFlow;
  int64_t bytes = 0;
  for (const TaskSpec& t : spec.tasks) {
    int64_t one = kPerTask + job_env + static_cast<int64_t>(t.workdir.size());
    for (const std::string& a : t.command) one += static_cast<int64_t>(a.size() + 1);
    for (const auto& [k, v] : t.env) one += static_cast<int64_t>(k.size() + v.size() + 2);
    if (lists_ranks) one += tasks * per_rank_entry;
    bytes += one * t.replicas;
  }
  return bytes;
}

absl::Status CheckJobCost(const JobSpec& spec, const SpecLimits& limits) {
  int64_t tasks = 0;
  for (const TaskSpec& t : spec.tasks) tasks += t.replicas;
  if (tasks > limits.max_job_tasks) {
    return absl::InvalidArgumentError(
        absl::StrCat("tasks: ", tasks, " tasks (replicas across all task groups) is above this cluster's limit of ",
                     limits.max_job_tasks,
                     " per job; split the work (an array of jobs) or ask an admin to raise it "
                     "(icos server --max-job-tasks)"));
  }
  const int64_t bytes = AssignmentBytes(spec);
  if (bytes > limits.max_assignment_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("this job's ", tasks, " tasks would carry about ", (bytes + (1 << 20) - 1) >> 20,
                     " MiB of commands, environment", tasks > 1 ? " and rank lists" : "",
                     " in all, above this cluster's limit of ", limits.max_assignment_bytes >> 20,
                     " MiB per job; pass large data as files, not environment variables, or "
                     "ask an admin to raise it (icos server --max-job-mib)"));
  }
  return absl::OkStatus();
}

}  // namespace icos::api
