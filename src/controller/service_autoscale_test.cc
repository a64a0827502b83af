// How many replicas a service's load asks for (issue #22).
#include "controller/service_autoscale.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace icos::controller {
namespace {

using ::testing::HasSubstr;

constexpr api::AutoscaleSpec kRps{.min = 1, .max = 5, .target_rps = 10, .window_s = 10, .scale_down_delay_s = 30};

// `rps` requests per second for `seconds`, one sample a second, each
// answered in `latency_bucket`; returns the last decision that changed
// the count, with `current` following each.
ScaleDecision Feed(const api::AutoscaleSpec& spec, int32_t& current, AutoscaleMemory& m, ServiceLoad& load,
                   int64_t& now, double rps, int seconds, int32_t in_flight = 0, size_t latency_bucket = 3) {
  ScaleDecision d;
  for (int i = 0; i < seconds; ++i) {
    now += 1'000;
    const auto n = static_cast<uint64_t>(rps);
    load.requests += n;
    load.latency[latency_bucket] += n;
    load.in_flight = in_flight;
    ScaleDecision now_d = Autoscale(spec, current, load, now, m);
    if (now_d.replicas != current) d = now_d;
    current = now_d.replicas;
  }
  return d;
}

TEST(AutoscaleTest, ALoadStepScalesUpWithinSecondsAndDownOnlyAfterTheDelay) {
  AutoscaleMemory m;
  ServiceLoad load;
  int64_t now = 0;
  int32_t current = 1;
  Feed(kRps, current, m, load, now, 5, 12);  // idle-ish: under one replica's target
  EXPECT_EQ(current, 1);
  // 40 req/s: 4 replicas; the 10 s average crosses 20 req/s within 3 s.
  ScaleDecision d = Feed(kRps, current, m, load, now, 40, 3);
  EXPECT_GE(current, 2);
  Feed(kRps, current, m, load, now, 40, 10);
  EXPECT_EQ(current, 4);
  d = Feed(kRps, current, m, load, now, 1'000, 10);
  EXPECT_EQ(current, 5);  // max
  // The load stops: nothing moves for the delay, then down to min.
  Feed(kRps, current, m, load, now, 0, 25);
  EXPECT_EQ(current, 5);
  d = Feed(kRps, current, m, load, now, 0, 20);
  EXPECT_EQ(current, 1);
  EXPECT_THAT(d.why, HasSubstr("-> 1 replicas: 0.0 req/s, target 10 per replica over 10s, for 30s"));
}

// Knative's panic mode: a step that asks for twice the replicas there are
// is acted on within the last tenth of the window, not once the window's
// average has caught up; a smaller rise waits for the average.
TEST(AutoscaleTest, ABurstIsActedOnAtOnceASmallRiseAfterTheWindow) {
  const api::AutoscaleSpec spec{.min = 1, .max = 10, .target_rps = 10, .window_s = 60, .scale_down_delay_s = 60};
  AutoscaleMemory m;
  ServiceLoad load;
  int64_t now = 0;
  int32_t current = 3;
  Feed(spec, current, m, load, now, 25, 70);
  EXPECT_EQ(current, 3);
  Feed(spec, current, m, load, now, 45, 6);  // wants 5 of 3: not a burst
  EXPECT_EQ(current, 3);
  ScaleDecision d = Feed(spec, current, m, load, now, 120, 6);  // wants 12 of 3: a burst
  EXPECT_EQ(current, 10);
  EXPECT_THAT(d.why, HasSubstr("replicas: a burst: "));
  EXPECT_THAT(d.why, HasSubstr("over the last "));
  // The burst's count holds for the scale-down delay, as any.
  Feed(spec, current, m, load, now, 25, 30);
  EXPECT_EQ(current, 10);
}

TEST(AutoscaleTest, AShortDipDoesNotScaleDown) {
  AutoscaleMemory m;
  ServiceLoad load;
  int64_t now = 0;
  int32_t current = 3;
  Feed(kRps, current, m, load, now, 30, 40);
  EXPECT_EQ(current, 3);
  Feed(kRps, current, m, load, now, 0, 15);  // a 15 s dip, shorter than the 30 s delay
  Feed(kRps, current, m, load, now, 30, 5);
  EXPECT_EQ(current, 3);
}

TEST(AutoscaleTest, AServiceAtZeroWakesOnAWaitingRequestAndSleepsAgain) {
  const api::AutoscaleSpec spec{.min = 0, .max = 3, .target_concurrency = 4, .window_s = 5, .scale_down_delay_s = 10};
  AutoscaleMemory m;
  ServiceLoad load;
  int64_t now = 0;
  int32_t current = 0;
  Feed(spec, current, m, load, now, 0, 20);
  EXPECT_EQ(current, 0);
  ScaleDecision d = Feed(spec, current, m, load, now, 0, 1, /*in_flight=*/1);
  EXPECT_EQ(current, 1);
  EXPECT_THAT(d.why, HasSubstr("0 -> 1 replicas"));
  Feed(spec, current, m, load, now, 20, 10, /*in_flight=*/10);  // 10 in flight: 3 replicas
  EXPECT_EQ(current, 3);
  Feed(spec, current, m, load, now, 0, 30);
  EXPECT_EQ(current, 0);
}

TEST(AutoscaleTest, LatencyScalesInProportionToItsTarget) {
  const api::AutoscaleSpec spec{.min = 1, .max = 8, .target_p90_ms = 100, .window_s = 5, .scale_down_delay_s = 10};
  AutoscaleMemory m;
  ServiceLoad load;
  int64_t now = 0;
  int32_t current = 2;
  // Every answer in the 250 ms bucket: 2 x 250 / 100 = 5 replicas.
  const size_t slow = 7;
  ASSERT_EQ(kLatencyBoundsMs[slow], 250);
  ScaleDecision d = Feed(spec, current, m, load, now, 50, 2, 0, slow);
  EXPECT_EQ(current, 5);
  EXPECT_THAT(d.why, HasSubstr("p90 250 ms, target 100 ms"));
  // Fast again (the 50 ms bucket): down after the delay, to what 50 ms asks.
  Feed(spec, current, m, load, now, 50, 30, 0, 5);
  EXPECT_LT(current, 5);
}

TEST(AutoscaleTest, NoDecisionOnLessThanASecondOfLoad) {
  AutoscaleMemory m;
  ServiceLoad load;
  load.requests = 1'000;
  EXPECT_EQ(Autoscale(kRps, 1, load, 0, m).replicas, 1);
  load.requests = 2'000;
  EXPECT_EQ(Autoscale(kRps, 1, load, 500, m).replicas, 1);
}

}  // namespace
}  // namespace icos::controller
