#include "sim/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace icos::sim {
namespace {

// Nearest-rank percentile of sorted values, q in [0, 1].
double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

Summary Summarize(const SimResult& r) {
  Summary s;
  s.policy = r.policy;
  s.jobs = static_cast<int64_t>(r.jobs.size());
  std::vector<double> jct;
  jct.reserve(r.jobs.size());
  double queue = 0, isolated = 0, first_arrival = INFINITY, last_finish = 0;
  for (const JobOutcome& o : r.jobs) {
    first_arrival = std::min(first_arrival, o.arrival_s);
    if (o.rejected) ++s.rejected;
    if (o.finish_s < 0) continue;
    jct.push_back(o.finish_s - o.arrival_s);
    queue += o.first_start_s - o.arrival_s;
    isolated += o.duration_s;
    last_finish = std::max(last_finish, o.finish_s);
  }
  s.finished = static_cast<int64_t>(jct.size());
  if (!jct.empty()) {
    double sum = 0;
    for (double x : jct) sum += x;
    const double n = static_cast<double>(jct.size());
    s.avg_jct_s = sum / n;
    s.avg_queue_s = queue / n;
    s.lower_bound_jct_s = isolated / n;
    std::sort(jct.begin(), jct.end());
    s.median_jct_s = Percentile(jct, 0.5);
    s.p99_jct_s = Percentile(jct, 0.99);
    s.makespan_s = last_finish - first_arrival;
  }
  // Time-weighted utilisation: each sample holds until the next one.
  if (s.makespan_s > 0 && r.total_devices > 0) {
    double area = 0;
    const auto& u = r.utilisation;
    for (size_t i = 0; i < u.size(); ++i) {
      const double from = std::max(u[i].t_s, first_arrival);
      const double to = i + 1 < u.size() ? u[i + 1].t_s : last_finish;
      if (to > from) area += u[i].used * (to - from);
    }
    s.avg_utilisation = area / (s.makespan_s * r.total_devices);
  }
  s.preemptions = r.preemptions;
  s.events = r.events;
  s.passes = r.passes;
  s.wall_s = r.wall_s;
  return s;
}

absl::Status CheckInvariants(const std::vector<SimJob>& jobs, const SimResult& r) {
  if (jobs.size() != r.jobs.size()) {
    return absl::InternalError(absl::StrCat("result has ", r.jobs.size(), " jobs, trace ", jobs.size()));
  }
  for (size_t i = 0; i < jobs.size(); ++i) {
    const JobOutcome& o = r.jobs[i];
    if (o.rejected) continue;
    if (o.finish_s < 0) {
      return absl::InternalError(absl::StrCat("job ", jobs[i].id, " never finished",
                                              o.reason.empty() ? "" : absl::StrCat(" (waiting: ", o.reason, ")")));
    }
    // 1 ms of slack: the simulator rounds times up to whole milliseconds.
    if (o.finish_s + 1e-3 < jobs[i].arrival_s + jobs[i].duration_s) {
      return absl::InternalError(absl::StrCat("job ", jobs[i].id, " finished at ", o.finish_s, " s, before arrival ",
                                              jobs[i].arrival_s, " s + isolated duration ", jobs[i].duration_s, " s"));
    }
    if (o.first_start_s < o.arrival_s - 1e-3) {
      return absl::InternalError(absl::StrCat("job ", jobs[i].id, " started at ", o.first_start_s,
                                              " s, before it arrived at ", jobs[i].arrival_s, " s"));
    }
  }
  for (const UtilSample& u : r.utilisation) {
    if (u.used > r.total_devices + 1e-6 || u.used < -1e-6) {
      return absl::InternalError(absl::StrCat("utilisation ", u.used, " of ", r.total_devices, " devices at t=", u.t_s, " s"));
    }
  }
  return absl::OkStatus();
}

nlohmann::ordered_json ToJson(const Summary& s) {
  return nlohmann::ordered_json{{"policy", s.policy},
                        {"jobs", s.jobs},
                        {"finished", s.finished},
                        {"rejected", s.rejected},
                        {"avg_jct_s", s.avg_jct_s},
                        {"median_jct_s", s.median_jct_s},
                        {"p99_jct_s", s.p99_jct_s},
                        {"avg_queue_s", s.avg_queue_s},
                        {"makespan_s", s.makespan_s},
                        {"avg_utilisation", s.avg_utilisation},
                        {"lower_bound_jct_s", s.lower_bound_jct_s},
                        {"preemptions", s.preemptions},
                        {"events", s.events},
                        {"passes", s.passes},
                        {"wall_s", s.wall_s}};
}

void WriteUtilisationCsv(const SimResult& r, std::ostream& out) {
  out << "t_s,used_devices,utilisation\n";
  for (const UtilSample& u : r.utilisation) {
    out << u.t_s << ',' << u.used << ',' << (r.total_devices > 0 ? u.used / r.total_devices : 0.0) << '\n';
  }
}

double AverageJct(const SimResult& r, int64_t first, int64_t last) {
  double sum = 0;
  int64_t n = 0;
  for (const JobOutcome& o : r.jobs) {
    if (o.id < first || o.id >= last || o.finish_s < 0) continue;
    sum += o.finish_s - o.arrival_s;
    ++n;
  }
  return n > 0 ? sum / static_cast<double>(n) : 0.0;
}

}  // namespace icos::sim
