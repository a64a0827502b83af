// The job spec's meaning for the scheduler: its run-time estimate and its
// core::Job (job_spec.h). Apart from the parser so that each stays readable.
#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/job_spec.h"

namespace icos::api {

absl::StatusOr<Dependencies> ParseDependencyList(absl::string_view text) {
  Dependencies d;
  size_t count = 0;
  for (absl::string_view part : absl::StrSplit(text, ',', absl::SkipWhitespace())) {
    part = absl::StripAsciiWhitespace(part);
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

absl::StatusOr<ArrayIndices> ParseArrayIndices(absl::string_view text, int32_t max_size, size_t max_text) {
  ArrayIndices out;
  auto bad = [&](absl::string_view part, absl::string_view why) {
    return absl::InvalidArgumentError(absl::StrCat("'", part.empty() ? text : part, "' ", why,
                                                   "; use e.g. 0-99, 1,3,5-9 or 0-98:2, optionally ending %N"));
  };
  absl::string_view list = text;
  if (const size_t pct = list.find('%'); pct != absl::string_view::npos) {
    if (!absl::SimpleAtoi(list.substr(pct + 1), &out.throttle) || out.throttle < 1) {
      return bad(list.substr(pct), "is not a limit of 1 or more running at once");
    }
    list = list.substr(0, pct);
  }
  std::vector<int64_t> all;
  for (absl::string_view part : absl::StrSplit(list, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int64_t first = 0, last = 0, step = 1;
    absl::string_view range = part;
    if (const size_t colon = part.find(':'); colon != absl::string_view::npos) {
      if (!absl::SimpleAtoi(part.substr(colon + 1), &step) || step < 1) return bad(part, "has a bad step");
      range = part.substr(0, colon);
    }
    if (const size_t dash = range.find('-'); dash != absl::string_view::npos && dash > 0) {
      if (!absl::SimpleAtoi(range.substr(0, dash), &first) || !absl::SimpleAtoi(range.substr(dash + 1), &last)) {
        return bad(part, "is not a range of indices");
      }
    } else if (!absl::SimpleAtoi(range, &first)) {
      return bad(part, "is not an index");
    } else {
      last = first;
    }
    if (first < 0 || last > kMaxArrayIndex || first > last) {
      return bad(part, absl::StrCat("is out of order or outside 0-", kMaxArrayIndex));
    }
    for (int64_t i = first; i <= last; i += step) {
      all.push_back(i);
      if (all.size() > static_cast<size_t>(max_size) * 2 + 1) break;  // counted properly below
    }
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  if (all.empty()) return bad("", "has no indices");
  if (all.size() > static_cast<size_t>(max_size)) {
    return absl::InvalidArgumentError(absl::StrCat("'", text, "' has more than this cluster's limit of ", max_size,
                                                   " elements; split it or ask an admin to raise it"));
  }
  out.indices.assign(all.begin(), all.end());
  if (const size_t length = FormatArrayIndices(out.indices, out.throttle).size(); length > max_text) {
    return absl::InvalidArgumentError(absl::StrCat("'", text.substr(0, 64), text.size() > 64 ? "...'" : "'", " takes ",
                                                   length, " characters written as ranges (at most ", max_text,
                                                   "); split it into several arrays"));
  }
  return out;
}

void SetArray(const ArrayIndices& a, JobSpec& spec) {
  spec.array = FormatArrayIndices(a.indices, a.throttle);
  spec.array_count = static_cast<int32_t>(a.indices.size());
  spec.array_throttle = a.throttle;
}

std::string FormatArrayIndices(const std::vector<int32_t>& indices, int32_t throttle) {
  std::string out;
  // Greedy: from each index, the longest run with one step; runs of step 1
  // as "a-b", of at least three with a larger step as "a-b:step".
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    if (i + 1 < indices.size()) {
      const int32_t step = indices[i + 1] - indices[i];
      while (j + 1 < indices.size() && indices[j + 1] - indices[j] == step) ++j;
      if (step > 1 && j - i < 2) j = i;  // "0,2" is no longer than "0-2:2"
    }
    absl::StrAppend(&out, out.empty() ? "" : ",", indices[i]);
    if (j > i) absl::StrAppend(&out, "-", indices[j]);
    if (j > i && indices[i + 1] - indices[i] > 1) absl::StrAppend(&out, ":", indices[i + 1] - indices[i]);
    i = j + 1;
  }
  if (throttle > 0) absl::StrAppend(&out, "%", throttle);
  return out;
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
  job.preempts = spec.preempts;
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
