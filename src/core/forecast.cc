#include "core/forecast.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace icos::core {
namespace {

constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
// Passes at one instant before time moves on regardless (preemption ping-pong).
constexpr int kPassesPerInstant = 4;

double DevicesHeld(const RunningJob& r) {
  double d = 0;
  for (const TaskPlacement& t : r.tasks) {
    for (const DeviceSlice& s : t.devices) d += s.percent / 100.0;
  }
  return d;
}

// One sample: the start time of each target (kNever: not within the horizon).
absl::StatusOr<std::vector<int64_t>> OneSample(const Scheduler& scheduler, Snapshot snap,
                                               const absl::flat_hash_map<int64_t, size_t>& target_index,
                                               const ForecastOptions& o, Noise& noise) {
  // A run time drawn around an estimate (ms).
  auto draw = [&](const Job& j) -> int64_t {
    const int64_t est = j.runtime_estimate_ms > 0 ? j.runtime_estimate_ms : o.unknown_runtime_ms;
    if (o.exact_estimates) return std::max<int64_t>(1, est);
    const double sd = j.runtime_log_sd > 0 ? j.runtime_log_sd : o.default_log_sd;
    return std::max<int64_t>(1'000, std::llround(static_cast<double>(est) * std::exp(sd * noise.Normal())));
  };
  const int64_t now = snap.now_ms;
  absl::flat_hash_map<int64_t, int64_t> end_ms;   // running jobs' ends in this sample
  absl::flat_hash_map<int64_t, int64_t> left_ms;  // work left of preempted jobs
  for (const RunningJob& r : snap.running) {
    // The core's convention: a running job's estimate is counted from its start.
    const int64_t elapsed = std::max<int64_t>(0, now - r.start_ms);
    int64_t total = 0;
    if (o.exact_estimates) {
      total = r.job.runtime_estimate_ms > 0 ? r.job.runtime_estimate_ms : o.unknown_runtime_ms;
    } else {
      // Drawn given that it has run `elapsed` already: log(total / estimate)
      // is normal, truncated below at that point (a job far past its
      // estimate has a long tail left, not "a moment").
      const double est =
          static_cast<double>(r.job.runtime_estimate_ms > 0 ? r.job.runtime_estimate_ms : o.unknown_runtime_ms);
      const double sd = r.job.runtime_log_sd > 0 ? r.job.runtime_log_sd : o.default_log_sd;
      const double z_min = elapsed > 0 ? std::log(static_cast<double>(elapsed) / est) / sd : -1e9;
      double z = 0;
      if (z_min < 1.5) {
        int tries = 0;
        do z = noise.Normal();
        while (z <= z_min && ++tries < 64);
        z = std::max(z, z_min);
      } else {
        z = z_min + noise.Exponential() / z_min;  // the normal's tail beyond z_min, nearly exponential
      }
      total = std::llround(est * std::exp(sd * z));
    }
    end_ms[r.job.id.value()] = std::max(r.start_ms + total, now + 1'000);
  }
  // Work still to come: the recent past again, one window on (ids above all
  // others', each arrival a new job).
  std::vector<Job> again;
  if (o.arrival_window_ms > 0) {
    for (const Job& j : snap.pending) {
      if (j.submit_ms >= now - o.arrival_window_ms) again.push_back(j);
    }
    for (const RunningJob& r : snap.running) {
      if (r.job.submit_ms >= now - o.arrival_window_ms) again.push_back(r.job);
    }
    std::sort(again.begin(), again.end(), [](const Job& a, const Job& b) { return a.submit_ms < b.submit_ms; });
  }
  int64_t next_id = 0;
  for (const Job& j : snap.pending) next_id = std::max(next_id, j.id.value() + 1);
  for (const RunningJob& r : snap.running) next_id = std::max(next_id, r.job.id.value() + 1);
  size_t next_again = 0;
  int64_t cycle = 1;  // which repetition of the window comes next
  auto next_arrival = [&]() -> int64_t {
    if (again.empty()) return kNever;
    return again[next_again].submit_ms + cycle * o.arrival_window_ms;
  };
  std::vector<int64_t> started(target_index.size(), kNever);
  size_t left = target_index.size();
  int64_t t = now;
  int same_instant = 0;
  for (int32_t pass = 0; left > 0 && pass < o.max_passes; ++pass) {
    snap.now_ms = t;
    absl::StatusOr<Decisions> d = scheduler.Schedule(snap);
    if (!d.ok()) return d.status();
    bool changed = false;
    absl::flat_hash_set<int64_t> stopped;
    for (const PreemptDecision& p : d->preemptions) stopped.insert(p.victim.value());
    if (!stopped.empty()) {
      for (auto it = snap.running.begin(); it != snap.running.end();) {
        const int64_t id = it->job.id.value();
        if (!stopped.count(id)) {
          ++it;
          continue;
        }
        left_ms[id] = std::max<int64_t>(1'000, end_ms[id] - t);
        end_ms.erase(id);
        snap.pending.push_back(std::move(it->job));
        it = snap.running.erase(it);
        changed = true;
      }
    }
    if (!d->binds.empty()) {
      absl::flat_hash_map<int64_t, const BindDecision*> binds;
      for (const BindDecision& b : d->binds) binds[b.job.value()] = &b;
      for (auto it = snap.pending.begin(); it != snap.pending.end();) {
        auto b = binds.find(it->id.value());
        if (b == binds.end()) {
          ++it;
          continue;
        }
        const int64_t id = it->id.value();
        auto rest = left_ms.find(id);
        const int64_t run = rest != left_ms.end() ? rest->second : draw(*it);
        end_ms[id] = t + run;
        if (auto target = target_index.find(id); target != target_index.end() && started[target->second] == kNever) {
          started[target->second] = t;
          --left;
        }
        snap.running.push_back(RunningJob{.job = std::move(*it), .start_ms = t, .tasks = b->second->tasks});
        it = snap.pending.erase(it);
        changed = true;
      }
    }
    // A pass places all it can (preemptions and the binds they make room for
    // included), so another at this instant is needed only when one stopped
    // jobs whose room it could not yet use.
    if (changed && !stopped.empty() && ++same_instant < kPassesPerInstant) continue;
    same_instant = 0;
    // Time moves to the next end or arrival.
    int64_t next = next_arrival();
    for (const auto& [id, end] : end_ms) next = std::min(next, end);
    if (next == kNever || next - now > o.horizon_ms) break;
    next = std::max(next, t + 1);
    const double dt_s = static_cast<double>(next - t) / 1000.0;
    for (RunningJob& r : snap.running) r.job.attained_device_s += DevicesHeld(r) * dt_s;
    t = next;
    while (next_arrival() <= t) {
      Job j = again[next_again];
      j.id = JobId(next_id++);
      j.submit_ms = next_arrival();
      j.attained_device_s = 0;
      snap.pending.push_back(std::move(j));
      if (++next_again == again.size()) {
        next_again = 0;
        ++cycle;
      }
    }
    for (auto it = snap.running.begin(); it != snap.running.end();) {
      const int64_t id = it->job.id.value();
      if (end_ms[id] <= t) {
        end_ms.erase(id);
        it = snap.running.erase(it);
      } else {
        ++it;
      }
    }
  }
  return started;
}

}  // namespace

absl::StatusOr<std::vector<StartForecast>> ForecastStarts(const Scheduler& scheduler, const Snapshot& snapshot,
                                                          std::vector<JobId> targets, const ForecastOptions& options,
                                                          Noise& noise) {
  if (targets.empty()) {
    for (const Job& j : snapshot.pending) targets.push_back(j.id);
  }
  absl::flat_hash_map<int64_t, size_t> index;
  for (size_t i = 0; i < targets.size(); ++i) index.emplace(targets[i].value(), i);
  const int32_t samples = std::max(1, options.samples);
  std::vector<std::vector<int64_t>> starts(targets.size());
  for (int32_t s = 0; s < samples; ++s) {
    absl::StatusOr<std::vector<int64_t>> one = OneSample(scheduler, snapshot, index, options, noise);
    if (!one.ok()) return one.status();
    for (size_t i = 0; i < targets.size(); ++i) starts[i].push_back((*one)[i]);
  }
  std::vector<StartForecast> out;
  out.reserve(targets.size());
  for (size_t i = 0; i < targets.size(); ++i) {
    std::vector<int64_t>& v = starts[i];
    std::sort(v.begin(), v.end());
    StartForecast f{.job = targets[i], .samples = samples};
    f.started = static_cast<int32_t>(std::count_if(v.begin(), v.end(), [](int64_t x) { return x != kNever; }));
    // Nearest rank; a quantile among the samples that never started is unknown.
    auto quantile = [&](double q) {
      const size_t k = std::min(v.size() - 1, static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - 1);
      return v[k] == kNever ? int64_t{-1} : v[k];
    };
    f.p10_ms = quantile(0.1);
    f.p50_ms = quantile(0.5);
    f.p90_ms = quantile(0.9);
    out.push_back(f);
  }
  return out;
}

}  // namespace icos::core
