#include "sim/metrics.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace icos::sim {
namespace {

// Nearest-rank percentile of sorted values, q in [0, 1].
double Percentile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

// Finish-time fairness, see Summary::ftf_mean. The number of jobs in the
// system is a step function of time; its running integral at every arrival
// and finish gives each job's average contention by two binary searches.
void Fairness(const SimResult& r, Summary& s) {
  std::vector<std::pair<double, int>> steps;  // (time, +1 arrival / -1 finish)
  for (const JobOutcome& o : r.jobs) {
    if (o.finish_s < 0) continue;
    steps.push_back({o.arrival_s, +1});
    steps.push_back({o.finish_s, -1});
  }
  if (steps.empty() || r.total_devices <= 0) return;
  std::sort(steps.begin(), steps.end());
  std::vector<double> t, area;  // area[k] = integral of active jobs up to t[k]
  t.reserve(steps.size());
  area.reserve(steps.size());
  int active = 0;
  for (const auto& [time, delta] : steps) {
    if (t.empty()) {
      t.push_back(time);
      area.push_back(0);
    } else if (time > t.back()) {
      area.push_back(area.back() + active * (time - t.back()));
      t.push_back(time);
    }
    active += delta;
  }
  auto integral = [&](double x) {  // of active jobs from t[0] to x, x within [t.front(), t.back()]
    const size_t k = static_cast<size_t>(std::upper_bound(t.begin(), t.end(), x) - t.begin()) - 1;
    if (k + 1 >= t.size()) return area.back();
    const double rate = (area[k + 1] - area[k]) / (t[k + 1] - t[k]);
    return area[k] + rate * (x - t[k]);
  };
  double sum = 0;
  int64_t n = 0;
  for (const JobOutcome& o : r.jobs) {
    if (o.finish_s < 0 || o.duration_s <= 0) continue;
    const double life = o.finish_s - o.arrival_s;
    const double contenders = life > 0 ? (integral(o.finish_s) - integral(o.arrival_s)) / life : 1.0;
    const double stretch = std::max(1.0, std::max(o.gpu_share, 1e-9) * contenders / r.total_devices);
    const double rho = life / (o.duration_s * stretch);
    sum += rho;
    s.ftf_worst = std::max(s.ftf_worst, rho);
    ++n;
  }
  if (n > 0) s.ftf_mean = sum / static_cast<double>(n);
}

void EstimateErrors(const SimResult& r, Summary& s) {
  s.estimator = r.estimator;
  s.models_trained = r.models_trained;
  s.train_wall_s = r.train_wall_s;
  std::vector<double> err;
  int64_t within = 0, final_within = 0;
  auto near = [](double estimate, double truth) {
    const double lo = std::max(truth, 1.0) / 2, hi = std::max(truth, 1.0) * 2;
    return estimate >= lo && estimate <= hi;
  };
  for (const JobOutcome& o : r.jobs) {
    if (o.finish_s < 0 || o.estimate_s < 0) continue;
    err.push_back(std::abs(o.estimate_s - o.duration_s));
    within += near(o.estimate_s, o.duration_s);
    final_within += near(o.final_estimate_s, o.duration_s);
  }
  s.estimated = static_cast<int64_t>(err.size());
  if (err.empty()) return;
  std::sort(err.begin(), err.end());
  s.est_median_abs_error_s = Percentile(err, 0.5);
  s.est_within_2x = static_cast<double>(within) / static_cast<double>(err.size());
  s.est_final_within_2x = static_cast<double>(final_within) / static_cast<double>(err.size());
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
  Fairness(r, s);
  EstimateErrors(r, s);
  s.preemptions = r.preemptions;
  s.migrations = r.migrations;
  s.gpu_hours_used = r.gpu_hours_used;
  s.gpu_hours_lost = r.gpu_hours_lost;
  s.faults = r.faults;
  s.fault_stops = r.fault_stops;
  s.gpu_hours_lost_to_faults = r.gpu_hours_lost_to_faults;
  s.rack_faults = r.rack_faults;
  s.node_hours_down = r.node_hours_down;
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
      return absl::InternalError(
          absl::StrCat("utilisation ", u.used, " of ", r.total_devices, " devices at t=", u.t_s, " s"));
    }
  }
  return absl::OkStatus();
}

nlohmann::ordered_json ToJson(const Summary& s) {
  return nlohmann::ordered_json{
      {"policy", s.policy},
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
      {"jct_over_lower_bound", s.lower_bound_jct_s > 0 ? s.avg_jct_s / s.lower_bound_jct_s : 0.0},
      {"ftf_mean", s.ftf_mean},
      {"ftf_worst", s.ftf_worst},
      {"estimator", s.estimator},
      {"estimated", s.estimated},
      {"est_median_abs_error_s", s.est_median_abs_error_s},
      {"est_within_2x", s.est_within_2x},
      {"est_final_within_2x", s.est_final_within_2x},
      {"models_trained", s.models_trained},
      {"train_wall_s", s.train_wall_s},
      {"preemptions", s.preemptions},
      {"migrations", s.migrations},
      {"gpu_hours_used", s.gpu_hours_used},
      {"gpu_hours_lost", s.gpu_hours_lost},
      {"gpu_hours_lost_share", s.gpu_hours_used > 0 ? s.gpu_hours_lost / s.gpu_hours_used : 0.0},
      {"faults", s.faults},
      {"fault_stops", s.fault_stops},
      {"gpu_hours_lost_to_faults", s.gpu_hours_lost_to_faults},
      {"rack_faults", s.rack_faults},
      {"node_hours_down", s.node_hours_down},
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

void WriteUtilisationBinnedCsv(const SimResult& r, std::ostream& out, int bins) {
  out << "t_s,utilisation\n";
  const auto& u = r.utilisation;
  if (u.empty() || r.total_devices <= 0 || bins < 1) return;
  double first = INFINITY, last = 0;
  for (const JobOutcome& o : r.jobs) {
    first = std::min(first, o.arrival_s);
    if (o.finish_s >= 0) last = std::max(last, o.finish_s);
  }
  if (!(last > first)) return;
  const double width = (last - first) / bins;
  std::vector<double> area(static_cast<size_t>(bins), 0.0);
  for (size_t i = 0; i < u.size(); ++i) {
    double from = std::max(u[i].t_s, first);
    const double to = std::min(i + 1 < u.size() ? u[i + 1].t_s : last, last);
    // Spread the sample over the bins it covers. Bins advance by index, not
    // by recomputing from the time, so rounding cannot stall the walk.
    int b = std::clamp(static_cast<int>((from - first) / width), 0, bins - 1);
    while (from < to) {
      const double bin_end = b == bins - 1 ? INFINITY : first + (b + 1) * width;
      if (bin_end <= from) {
        ++b;
        continue;
      }
      const double upto = std::min(to, bin_end);
      area[b] += u[i].used * (upto - from);
      from = upto;
    }
  }
  for (int b = 0; b < bins; ++b) {
    out << first + (b + 0.5) * width << ',' << area[b] / (width * r.total_devices) << '\n';
  }
}

void WriteJobsCsv(const SimResult& r, std::ostream& out) {
  out << "id,arrival_s,gpus,duration_s,estimate_s,final_estimate_s,first_start_s,finish_s,jct_s,preemptions\n";
  for (const JobOutcome& j : r.jobs) {
    out << absl::StrFormat("%d,%.3f,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%d\n", j.id, j.arrival_s, j.gpus, j.duration_s,
                           j.estimate_s, j.final_estimate_s, j.first_start_s, j.finish_s,
                           j.finish_s >= 0 ? j.finish_s - j.arrival_s : -1.0, j.preemptions);
  }
}

void WriteJctCdfCsv(const SimResult& r, std::ostream& out, int points) {
  std::vector<double> jct;
  for (const JobOutcome& o : r.jobs) {
    if (o.finish_s >= 0) jct.push_back(o.finish_s - o.arrival_s);
  }
  std::sort(jct.begin(), jct.end());
  out << "jct_s,cdf\n";
  const size_t n = jct.size();
  const size_t stride = std::max<size_t>(1, n / static_cast<size_t>(std::max(1, points)));
  for (size_t i = 0; i < n; i += stride) out << jct[i] << ',' << static_cast<double>(i + 1) / n << '\n';
  if (n > 0 && (n - 1) % stride != 0) out << jct[n - 1] << ",1\n";
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
