#include "core/forecast_calibration.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>

namespace icos::core {
namespace {

constexpr int64_t kMin = 60'000;

StartForecast Forecast(int64_t made_ms, int64_t p10_wait, int64_t p50_wait, int64_t p90_wait) {
  return {.p10_ms = made_ms + p10_wait, .p50_ms = made_ms + p50_wait, .p90_ms = made_ms + p90_wait};
}

TEST(ForecastCalibratorTest, TooFewObservationsChangeNothing) {
  ForecastCalibrator c({.min_observations = 5});
  for (int i = 0; i < 4; ++i) c.Observe(0, Forecast(0, 10 * kMin, 20 * kMin, 30 * kMin), 90 * kMin);
  const StartForecast f = c.Calibrate(1'000, Forecast(1'000, kMin, 2 * kMin, 3 * kMin));
  EXPECT_EQ(f.p10_ms, 1'000 + kMin);
  EXPECT_EQ(f.p50_ms, 1'000 + 2 * kMin);
  EXPECT_EQ(f.p90_ms, 1'000 + 3 * kMin);
}

// Later work overtakes: every start came at three times the forecast wait
// (on the log-wait-plus-a-minute scale). P50 follows.
TEST(ForecastCalibratorTest, AConsistentlyEarlyForecastIsMovedLater) {
  ForecastCalibrator c;
  for (int i = 0; i < 50; ++i) {
    const int64_t made = i * 1'000'000;
    const int64_t p50 = (10 + i) * kMin;
    const double actual_log = std::log(static_cast<double>(p50 + kMin)) + std::log(3.0);
    c.Observe(made, Forecast(made, p50 / 2, p50, p50 * 2), made + std::llround(std::exp(actual_log)) - kMin);
  }
  const int64_t made = 100'000'000;
  const StartForecast f = c.Calibrate(made, Forecast(made, 20 * kMin, 40 * kMin, 80 * kMin));
  EXPECT_NEAR(static_cast<double>(f.p50_ms - made + kMin) / (41 * kMin), 3.0, 0.01);
  EXPECT_LE(f.p10_ms, f.p50_ms);
  EXPECT_GE(f.p90_ms, f.p50_ms);
}

// Intervals half as wide as the truth's spread hold far fewer than 80% of
// starts; calibrated on 500 past forecasts, 2,000 new ones from the same
// process hold about 80%.
TEST(ForecastCalibratorTest, TooNarrowIntervalsAreWidenedToTheWantedCoverage) {
  std::mt19937_64 rng(7);
  std::normal_distribution<double> noise(0, 1);
  std::uniform_real_distribution<double> wait_minutes(0, 600);
  // The truth: log-wait = forecast log-wait + N(0, 1); the forecast claims sd 0.5.
  auto draw = [&](int64_t made, StartForecast* f, int64_t* start) {
    const double mid = std::log(wait_minutes(rng) * kMin + kMin);
    const double z = 1.2816;  // the 90% point of N(0, 1)
    auto at = [&](double log_wait) { return made + std::llround(std::exp(log_wait)) - kMin; };
    *f = {.p10_ms = at(mid - 0.5 * z), .p50_ms = at(mid), .p90_ms = at(mid + 0.5 * z)};
    *start = at(mid + noise(rng));
  };
  ForecastCalibrator c;
  for (int i = 0; i < 500; ++i) {
    StartForecast f;
    int64_t start = 0;
    draw(0, &f, &start);
    c.Observe(0, f, start);
  }
  int raw_inside = 0, calibrated_inside = 0;
  const int n = 2'000;
  for (int i = 0; i < n; ++i) {
    StartForecast f;
    int64_t start = 0;
    draw(0, &f, &start);
    const StartForecast cal = c.Calibrate(0, f);
    raw_inside += start >= f.p10_ms && start <= f.p90_ms;
    calibrated_inside += start >= cal.p10_ms && start <= cal.p90_ms;
  }
  const double raw = static_cast<double>(raw_inside) / n, calibrated = static_cast<double>(calibrated_inside) / n;
  EXPECT_LT(raw, 0.6);
  EXPECT_GT(calibrated, 0.75);
  EXPECT_LT(calibrated, 0.86);  // widened to the target, not to everything
}

// A kept forecast is observed once a snapshot shows its job running, kept
// while it waits, and forgotten when the job is seen neither way.
TEST(ForecastCalibratorTest, KeptForecastsAreObservedWhenTheirJobsAreSeenStarted) {
  ForecastCalibrator c;
  StartForecast waits = Forecast(0, kMin, 2 * kMin, 3 * kMin), gone = waits;
  waits.job = JobId(1);
  gone.job = JobId(2);
  c.Keep(0, waits);
  c.Keep(0, gone);
  Snapshot snap;
  snap.pending.push_back(Job{.id = JobId(1)});
  c.ObserveStarts(snap);  // 1 waits; 2 is gone unseen
  EXPECT_EQ(c.observations(), 0u);
  snap.pending.clear();
  snap.running.push_back(RunningJob{.job = Job{.id = JobId(1)}, .start_ms = 5 * kMin});
  c.ObserveStarts(snap);
  EXPECT_EQ(c.observations(), 1u);
  c.ObserveStarts(snap);  // observed once only
  EXPECT_EQ(c.observations(), 1u);
}

TEST(ForecastCalibratorTest, BeyondTheHorizonStaysSo) {
  ForecastCalibrator c({.min_observations = 1});
  c.Observe(0, Forecast(0, kMin, 2 * kMin, 3 * kMin), 6 * kMin);
  StartForecast later = Forecast(0, kMin, 2 * kMin, 3 * kMin);
  later.p90_ms = -1;
  EXPECT_EQ(c.Calibrate(0, later).p90_ms, -1);
  StartForecast none;  // started in too few samples: no quantiles
  EXPECT_EQ(c.Calibrate(0, none).p50_ms, -1);
  // Never before it was made.
  EXPECT_GE(c.Calibrate(5'000, Forecast(5'000, 0, 0, kMin)).p10_ms, 5'000);
}

}  // namespace
}  // namespace icos::core
