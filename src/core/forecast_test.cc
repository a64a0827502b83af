// Start-time forecasts: the scheduler run forward over drawn run times.
#include "core/forecast.h"

#include <gtest/gtest.h>

#include "core/testing/builders.h"
#include "learn/seeded_noise.h"

namespace icos::core {
namespace {

using builders::MakeJob;
using builders::MakeNode;
using builders::MakeRunning;

constexpr int64_t kMin = 60'000;

// A forecast with draws from seed 1, as the controller makes one.
absl::StatusOr<std::vector<StartForecast>> Forecast(const Scheduler& s, const Snapshot& snap,
                                                    std::vector<JobId> targets, const ForecastOptions& o) {
  learn::SeededNoise noise;
  return ForecastStarts(s, snap, std::move(targets), o, noise);
}

Scheduler Default() { return *Scheduler::Create(SchedulerOptions{.order = "priority"}); }

// One device: a job runs until +10 min; A (20 min) waits for it, B for A.
Snapshot Queue() {
  Snapshot s;
  s.now_ms = 100 * kMin;
  s.nodes.push_back(MakeNode("n0", "nvidia", "A100", 1));
  s.running.push_back(MakeRunning(MakeJob(1, 1), 0, {0}, 95 * kMin, 15 * kMin));
  Job a = MakeJob(2, 1);
  a.runtime_estimate_ms = 20 * kMin;
  Job b = MakeJob(3, 1);
  b.runtime_estimate_ms = 5 * kMin;
  s.pending = {a, b};
  return s;
}

TEST(ForecastTest, ExactEstimatesGiveThePlannersPointForecast) {
  auto f = Forecast(Default(), Queue(), {}, ForecastOptions{.samples = 1, .exact_estimates = true});
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->size(), 2u);
  EXPECT_EQ((*f)[0].job, JobId(2));
  EXPECT_EQ((*f)[0].p50_ms, 110 * kMin);  // when job 1 ends
  EXPECT_EQ((*f)[1].p50_ms, 130 * kMin);  // after A's 20 minutes
  EXPECT_EQ((*f)[1].p10_ms, (*f)[1].p90_ms);
  EXPECT_EQ((*f)[1].started, 1);
}

// Drawn run times spread the starts around the point forecast, and the later
// job's spread is the wider (two uncertain run times before it).
TEST(ForecastTest, SamplesSpreadAroundTheEstimates) {
  auto f = Forecast(Default(), Queue(), {}, ForecastOptions{.samples = 200, .default_log_sd = 0.5});
  ASSERT_TRUE(f.ok()) << f.status();
  const StartForecast& a = (*f)[0];
  const StartForecast& b = (*f)[1];
  EXPECT_EQ(a.started, 200);
  EXPECT_LT(a.p10_ms, a.p50_ms);
  EXPECT_LT(a.p50_ms, a.p90_ms);
  EXPECT_GE(a.p10_ms, 100 * kMin);  // job 1 has run 5 minutes: it ends after now
  EXPECT_LT(a.p10_ms, 110 * kMin);
  EXPECT_GT(a.p90_ms, 110 * kMin);
  EXPECT_GT(b.p90_ms - b.p10_ms, a.p90_ms - a.p10_ms);
  EXPECT_GT(b.p50_ms, a.p50_ms);
  // Deterministic for a seed.
  auto again = Forecast(Default(), Queue(), {}, ForecastOptions{.samples = 200, .default_log_sd = 0.5});
  EXPECT_EQ((*again)[1].p50_ms, b.p50_ms);
}

// The scheduler's own decisions: a higher-priority job preempts the running
// one at once; that one resumes with its 10 minutes left, then A starts.
TEST(ForecastTest, TheSchedulersOwnDecisionsPreemptionIncluded) {
  Snapshot s = Queue();
  s.pending[1].priority = 10;
  auto f = Forecast(Default(), s, {JobId(2), JobId(3)}, ForecastOptions{.samples = 1, .exact_estimates = true});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)[1].p50_ms, 100 * kMin);
  EXPECT_EQ((*f)[0].p50_ms, 115 * kMin);
  s.running[0].job.preemptible = false;  // now it waits for job 1 to end
  f = Forecast(Default(), s, {JobId(3)}, ForecastOptions{.samples = 1, .exact_estimates = true});
  EXPECT_EQ((*f)[0].p50_ms, 110 * kMin);
}

// With the recent past taken to repeat, work like the high-priority job that
// arrived 10 minutes ago comes again and goes first.
TEST(ForecastTest, RecentArrivalsComeAgainWhenAsked) {
  Snapshot s = Queue();
  s.running[0].job.preemptible = false;
  s.running[0].job.submit_ms = 90 * kMin;  // within the window: it comes again at +20 min, before A's turn ends
  s.running[0].job.priority = 10;
  ForecastOptions exact{.samples = 1, .exact_estimates = true};
  auto without = Forecast(Default(), s, {JobId(3)}, exact);
  exact.arrival_window_ms = 30 * kMin;
  auto with = Forecast(Default(), s, {JobId(3)}, exact);
  ASSERT_TRUE(without.ok() && with.ok());
  EXPECT_EQ((*without)[0].p50_ms, 130 * kMin);  // after job 1 (110) and A (20 min)
  // Job 1 comes again at 120 min; when A ends at 130 it goes first (priority
  // 10), for its 15 minutes: B starts at 145.
  EXPECT_EQ((*with)[0].p50_ms, 145 * kMin);
}

TEST(ForecastTest, AJobThatNeverFitsHasNoStart) {
  Snapshot s = Queue();
  s.pending.push_back(MakeJob(4, 2));  // two devices on a one-device cluster
  auto f = Forecast(Default(), s, {JobId(4)}, ForecastOptions{.samples = 4});
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)[0].started, 0);
  EXPECT_EQ((*f)[0].p10_ms, -1);
  EXPECT_EQ((*f)[0].p50_ms, -1);
}

}  // namespace
}  // namespace icos::core
