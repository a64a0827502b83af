// bench/forecast.sh's driver: replays a Philly trace in the simulator and, at
// the submission of every EVERY-th job, forecasts its start from what the
// cluster then holds (core::ForecastStarts: the same scheduler run forward
// over run times drawn from the learned estimator's error), beside the point
// forecast a Slurm-style planner makes (every job ends at its estimate). When
// the replay is done it compares both with when each job really started:
//   forecast cluster=C policy=P jobs=N forecasts=F waited_10min=W
//     coverage=X% (actual start in [P10, P90]; goal >= 80%)
//     p50_error=Y% (median |P50 - start| / wait, jobs that waited > 10 min; goal <= 30%)
//     calibrated_coverage=X% calibrated_p50_error=Y% (the same, each forecast calibrated by the earlier
//     ones whose jobs had started: core/forecast_calibration.h)
//     slurm_style_error=Z% slurm_style_coverage=V% (its point as P10 = P50 = P90)
//     forecast_ms_p50=... forecast_ms_max=... (one forecast's cost)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "core/forecast.h"
#include "core/forecast_calibration.h"
#include "core/policy_presets.h"
#include "learn/seeded_noise.h"
#include "sim/simulator.h"
#include "sim/trace.h"

using namespace icos;

namespace {

struct Made {
  double arrival_s = 0;
  core::StartForecast ours;
  core::StartForecast calibrated;  // ours, calibrated by the earlier forecasts whose jobs had started
  int64_t point_ms = -1;           // the Slurm-style planner's start
};

double Median(std::vector<double> v) {
  if (v.empty()) return -1;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: icos_forecast_bench PHILLY_CSV CLUSTER POLICY [JOBS] [EVERY] [SAMPLES]\n"
                 "  CLUSTER: as icos sim --cluster, e.g. 60x8xV100; POLICY: a preset (default, srtf, ...)\n"
                 "  JOBS: the first N jobs of the trace (default all); EVERY: forecast each Nth (default 50)\n";
    return 2;
  }
  int32_t n = 0, every = 50, samples = 8;
  const int64_t window_ms = std::getenv("FORECAST_WINDOW_S") ? std::atoll(std::getenv("FORECAST_WINDOW_S")) * 1000 : 0;
  if ((argc > 4 && !absl::SimpleAtoi(argv[4], &n)) || (argc > 5 && !absl::SimpleAtoi(argv[5], &every)) ||
      (argc > 6 && !absl::SimpleAtoi(argv[6], &samples)) || every < 1 || samples < 1) {
    std::cerr << "JOBS, EVERY and SAMPLES must be numbers\n";
    return 2;
  }
  auto jobs = sim::LoadPhilly(argv[1]);
  if (!jobs.ok()) {
    std::cerr << jobs.status() << "\n";
    return 1;
  }
  if (n > 0 && static_cast<int32_t>(jobs->size()) > n) jobs->resize(n);
  auto nodes = sim::ParseClusterSpec(argv[2]);
  auto preset = core::PolicyPreset(argv[3]);
  if (!nodes.ok() || !preset.ok()) {
    std::cerr << (nodes.ok() ? preset.status() : nodes.status()) << "\n";
    return 2;
  }
  auto scheduler = core::Scheduler::Create(*preset);
  if (!scheduler.ok()) {
    std::cerr << scheduler.status() << "\n";
    return 1;
  }
  sim::SimOptions so;
  so.policy = argv[3];
  so.scheduler = *preset;
  // Forecasts use learned estimates, as the live cluster has them.
  so.estimator = "learned";
  so.record_utilisation = false;
  std::map<int64_t, Made> made;
  std::vector<double> cost_ms;
  absl::Status failed;
  // Online, as the controller does it: a forecast is calibrated only by
  // earlier ones whose jobs were seen started by then (a job that started
  // and ended between two arrivals is not seen, and not used).
  core::ForecastCalibrator calibrator;
  so.on_arrivals = [&](const core::Snapshot& snap, const std::vector<JobId>& arrived) {
    calibrator.ObserveStarts(snap);
    for (JobId id : arrived) {
      if (id.value() % every != 0 || !failed.ok()) continue;
      const auto start = std::chrono::steady_clock::now();
      learn::SeededNoise noise(static_cast<uint64_t>(id.value()));
      auto ours = core::ForecastStarts(
          *scheduler, snap, {id}, core::ForecastOptions{.samples = samples, .arrival_window_ms = window_ms}, noise);
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      auto point = core::ForecastStarts(*scheduler, snap, {id},
                                        core::ForecastOptions{.samples = 1, .exact_estimates = true}, noise);
      if (!ours.ok() || !point.ok()) {
        failed = ours.ok() ? point.status() : ours.status();
        continue;
      }
      cost_ms.push_back(ms);
      made[id.value()] = {snap.now_ms / 1000.0, ours->front(), calibrator.Calibrate(snap.now_ms, ours->front()),
                          point->front().p50_ms};
      calibrator.Keep(snap.now_ms, ours->front());
    }
  };
  auto result = sim::Simulate(*nodes, *jobs, so);
  if (!result.ok() || !failed.ok()) {
    std::cerr << (result.ok() ? failed : result.status()) << "\n";
    return 1;
  }
  int64_t forecasts = 0, covered = 0, calibrated_covered = 0, point_covered = 0, waited = 0;
  std::vector<double> err, calibrated_err, point_err;
  for (const auto& [id, m] : made) {
    const sim::JobOutcome& o = result->jobs[id];
    if (o.first_start_s < 0) continue;  // never started: nothing to compare with
    ++forecasts;
    const int64_t actual = static_cast<int64_t>(o.first_start_s * 1000 + 0.5);
    // Within a second counts (the simulator's clock is in whole ms, starts at arrivals' instants).
    auto inside = [&](const core::StartForecast& f) {
      const int64_t hi = f.p90_ms < 0 ? INT64_MAX : f.p90_ms;
      return f.p10_ms >= 0 && actual >= f.p10_ms - 1'000 && actual <= hi + 1'000;
    };
    covered += inside(m.ours);
    calibrated_covered += inside(m.calibrated);
    if (m.point_ms >= 0 && std::abs(actual - m.point_ms) <= 1'000) ++point_covered;
    const double wait_s = o.first_start_s - m.arrival_s;
    if (std::getenv("FORECAST_VERBOSE") != nullptr) {
      std::cerr << absl::StrFormat(
          "job %d arrival %.0f actual %+.0f p10 %+.0f p50 %+.0f p90 %+.0f point %+.0f started %d\n", id, m.arrival_s,
          wait_s, m.ours.p10_ms / 1000.0 - m.arrival_s, m.ours.p50_ms / 1000.0 - m.arrival_s,
          m.ours.p90_ms / 1000.0 - m.arrival_s, m.point_ms / 1000.0 - m.arrival_s, m.ours.started);
    }
    if (wait_s <= 600) continue;
    ++waited;
    auto rel = [&](int64_t p_ms) {
      return p_ms < 0 ? 10.0 : std::abs(static_cast<double>(p_ms - actual)) / 1000.0 / wait_s;  // none: 1000%
    };
    err.push_back(rel(m.ours.p50_ms));
    calibrated_err.push_back(rel(m.calibrated.p50_ms));
    point_err.push_back(rel(m.point_ms));
  }
  auto pct = [](double x) { return absl::StrFormat("%.1f%%", 100 * x); };
  std::sort(cost_ms.begin(), cost_ms.end());
  std::cout << absl::StrFormat(
      "forecast cluster=%s policy=%s jobs=%d forecasts=%d waited_10min=%d samples=%d coverage=%s p50_error=%s "
      "calibrated_coverage=%s calibrated_p50_error=%s "
      "slurm_style_error=%s slurm_style_coverage=%s forecast_ms_p50=%.1f forecast_ms_max=%.1f\n",
      argv[2], argv[3], jobs->size(), forecasts, waited, samples,
      pct(forecasts ? static_cast<double>(covered) / forecasts : 0), pct(Median(err)),
      pct(forecasts ? static_cast<double>(calibrated_covered) / forecasts : 0), pct(Median(calibrated_err)),
      pct(Median(point_err)), pct(forecasts ? static_cast<double>(point_covered) / forecasts : 0),
      cost_ms.empty() ? 0 : cost_ms[cost_ms.size() / 2], cost_ms.empty() ? 0 : cost_ms.back());
  return 0;
}
