// The load standalone gateways report, summed for the autoscaler (issue #22).
#include "controller/gateway_loads.h"

#include <gtest/gtest.h>

#include <limits>

namespace icos::controller {
namespace {

ServiceLoad Load(uint64_t requests, int32_t in_flight, size_t bucket = 2) {
  ServiceLoad l;
  l.requests = requests;
  l.in_flight = in_flight;
  l.latency[bucket] = requests;
  return l;
}

TEST(GatewayLoadsTest, NothingIsKnownUntilAGatewayReports) {
  GatewayLoads loads;
  EXPECT_FALSE(loads.Of(7, 1'000).has_value());
  loads.Report("a", {}, 1'000);  // a gateway that has seen no request yet still measures
  ASSERT_TRUE(loads.Of(7, 1'500).has_value());
  EXPECT_EQ(loads.Of(7, 1'500)->requests, 0u);
  // Silent past kFreshMs: nothing measures the load any more.
  EXPECT_FALSE(loads.Of(7, 1'000 + GatewayLoads::kFreshMs + 1).has_value());
}

TEST(GatewayLoadsTest, GatewaysAreSummedAndARestartedOneCountsFromZero) {
  GatewayLoads loads;
  loads.Report("a", {{7, Load(100, 3)}}, 1'000);
  loads.Report("b", {{7, Load(50, 2)}, {8, Load(5, 0)}}, 1'100);
  ServiceLoad l = *loads.Of(7, 1'200);
  EXPECT_EQ(l.requests, 150u);
  EXPECT_EQ(l.in_flight, 5);
  EXPECT_EQ(l.latency[2], 150u);
  // a's counts grow: only the growth is added.
  loads.Report("a", {{7, Load(130, 1)}}, 2'000);
  l = *loads.Of(7, 2'000);
  EXPECT_EQ(l.requests, 180u);
  EXPECT_EQ(l.in_flight, 3);
  // a restarts as a2, counting from zero: the total never goes back.
  loads.Report("a2", {{7, Load(10, 0)}}, 3'000);
  EXPECT_EQ(loads.Of(7, 3'000)->requests, 190u);
  // A count that went down under one id adds nothing (and is the new baseline).
  loads.Report("b", {{7, Load(20, 0)}}, 3'100);
  EXPECT_EQ(loads.Of(7, 3'100)->requests, 190u);
  loads.Report("b", {{7, Load(25, 0)}}, 3'200);
  EXPECT_EQ(loads.Of(7, 3'200)->requests, 195u);
  EXPECT_EQ(loads.Of(8, 3'200)->requests, 5u);
}

TEST(GatewayLoadsTest, AStaleGatewaysRequestsInFlightNoLongerCount) {
  GatewayLoads loads;
  loads.Report("a", {{7, Load(10, 4)}}, 0);
  loads.Report("b", {{7, Load(10, 1)}}, 2'500);
  EXPECT_EQ(loads.Of(7, 2'500)->in_flight, 5);
  EXPECT_EQ(loads.Of(7, 4'000)->in_flight, 1);   // a silent for 4 s
  EXPECT_EQ(loads.Of(7, 4'000)->requests, 20u);  // what it counted stays counted
}

TEST(GatewayLoadsTest, AHostileReporterCannotOverflowOrGrowMemoryWithoutBound) {
  GatewayLoads loads;
  for (int i = 0; i < 3; ++i) {
    loads.Report("h" + std::to_string(i), {{7, Load(1, std::numeric_limits<int32_t>::max())}}, 1'000);
  }
  const ServiceLoad l = *loads.Of(7, 1'000);
  EXPECT_EQ(l.in_flight, GatewayLoads::kMaxInFlight);
  EXPECT_GE(l.in_flight, 0);
  // Instances beyond the bound: the one silent longest is forgotten.
  for (size_t i = 0; i < GatewayLoads::kMaxInstances + 10; ++i) {
    loads.Report("x" + std::to_string(i), {{9, Load(1, 1)}}, 2'000 + static_cast<int64_t>(i));
  }
  EXPECT_LE(loads.Of(9, 2'000 + GatewayLoads::kMaxInstances + 10)->in_flight,
            static_cast<int32_t>(GatewayLoads::kMaxInstances));
  // Requests counted by forgotten instances stay in the total.
  EXPECT_EQ(loads.Of(9, 2'500)->requests, GatewayLoads::kMaxInstances + 10);
}

}  // namespace
}  // namespace icos::controller
