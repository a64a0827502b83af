// The dashboard's request charts (issue #22): rate, in-flight and latency
// percentiles per step from the gateways' cumulative counts.
#include "controller/service_traffic.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace icos::controller {
namespace {

// `answers` more answers than `base`, each in the bucket of `bound_ms`.
ServiceLoad Plus(ServiceLoad base, uint64_t answers, double bound_ms, int32_t in_flight = 0) {
  size_t bucket = 0;
  while (bucket < kLatencyBoundsMs.size() && kLatencyBoundsMs[bucket] < bound_ms) ++bucket;
  base.requests += answers;
  base.latency[bucket] += answers;
  base.in_flight = in_flight;
  return base;
}

TEST(ServiceTrafficTest, APointPerStepWithItsRateAndPercentiles) {
  ServiceTraffic t;
  ServiceLoad load;
  t.Sample(1, load, 0);  // the base
  load = Plus(load, 400, 10);
  t.Sample(1, load, 2'000);  // within the step: no point yet
  EXPECT_TRUE(t.Of(1).empty());
  load = Plus(load, 580, 50);
  load = Plus(load, 20, 1'000, 3);
  t.Sample(1, load, 5'000);
  std::vector<TrafficPoint> points = t.Of(1);
  ASSERT_EQ(points.size(), 1u);
  EXPECT_EQ(points[0].t_ms, 5'000);
  EXPECT_DOUBLE_EQ(points[0].rps, 200);  // 1,000 answers in 5 s
  EXPECT_EQ(points[0].in_flight, 3);
  EXPECT_EQ(points[0].p50_ms, 50);     // the 500th answer (400 took 10 ms, 580 50 ms, 20 1 s)
  EXPECT_EQ(points[0].p90_ms, 50);     // the 900th
  EXPECT_EQ(points[0].p99_ms, 1'000);  // the 990th: among the slow twenty
  // A quiet step: rate 0, no percentiles.
  t.Sample(1, load, 10'000);
  points = t.Of(1);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[1].rps, 0);
  EXPECT_EQ(points[1].p90_ms, 0);
}

TEST(ServiceTrafficTest, CountsThatRestartMakeNoPointAndAnHourIsKept) {
  ServiceTraffic t;
  ServiceLoad load = Plus({}, 1'000, 5);
  t.Sample(2, load, 0);
  t.Sample(2, Plus({}, 10, 5), 5'000);  // went down: a new base, no point
  EXPECT_TRUE(t.Of(2).empty());
  ServiceLoad grow = Plus({}, 10, 5);
  for (int64_t i = 2; i < 2 + static_cast<int64_t>(ServiceTraffic::kPoints) + 5; ++i) {
    grow = Plus(grow, 5, 5);
    t.Sample(2, grow, i * ServiceTraffic::kStepMs);
  }
  EXPECT_EQ(t.Of(2).size(), ServiceTraffic::kPoints);
  EXPECT_DOUBLE_EQ(t.Of(2).back().rps, 1);
  t.Forget(2);
  EXPECT_TRUE(t.Of(2).empty());
}

}  // namespace
}  // namespace icos::controller
