#include "controller/slow_nodes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace icos::controller {
namespace {

using ::testing::HasSubstr;

// Three nodes; jobs on "hot" take 1.6x their estimate, elsewhere 1.0x (with
// some spread). Only "hot" is slow, and only once it has min_jobs jobs.
TEST(SlowNodeDetectorTest, FlagsTheNodeWhoseJobsRunLongerThanTheClustersDo) {
  SlowNodeDetector d;
  const double jitter[] = {0.9, 1.0, 1.1, 0.95, 1.05};
  for (int i = 0; i < 30; ++i) {
    d.Observe("a", 600, 600 * jitter[i % 5]);
    d.Observe("b", 3'600, 3'600 * jitter[(i + 2) % 5]);
    if (i < 9) d.Observe("hot", 600, 960 * jitter[i % 5]);
  }
  EXPECT_FALSE(d.Judge("hot").slow);  // 9 jobs: too few to say
  EXPECT_EQ(d.Judge("hot").jobs, 9);
  d.Observe("hot", 600, 960);
  const SlowNodeDetector::Verdict hot = d.Judge("hot");
  EXPECT_TRUE(hot.slow);
  EXPECT_NEAR(hot.ratio, 1.6, 0.1);
  EXPECT_THAT(hot.reason, HasSubstr("its last 10 jobs ran a median 1.60x their estimates, other nodes' 1.00x"));
  EXPECT_FALSE(d.Judge("a").slow);
  EXPECT_FALSE(d.Judge("b").slow);
  EXPECT_FALSE(d.Judge("unknown").slow);
}

// One node alone has nothing to be compared with.
TEST(SlowNodeDetectorTest, NoVerdictWithoutOtherNodes) {
  SlowNodeDetector d;
  for (int i = 0; i < 20; ++i) d.Observe("only", 600, 1'200);
  EXPECT_FALSE(d.Judge("only").judged);
  EXPECT_FALSE(d.Judge("only").slow);
}

// An estimator that is 2x off everywhere flags no node: the baseline moves too.
TEST(SlowNodeDetectorTest, AClusterWideBiasIsNotASlowNode) {
  SlowNodeDetector d;
  for (int i = 0; i < 40; ++i) {
    d.Observe("a", 600, 1'200);
    d.Observe("b", 600, 1'250);
  }
  EXPECT_FALSE(d.Judge("a").slow);
  EXPECT_FALSE(d.Judge("b").slow);
  EXPECT_NEAR(d.Judge("b").ratio, 1.0, 0.05);
}

// The window forgets: a node fixed (its last 50 jobs normal) is no longer slow.
TEST(SlowNodeDetectorTest, ANodeThatRecoversIsClearedByItsRecentJobs) {
  SlowNodeDetector d;
  for (int i = 0; i < 60; ++i) d.Observe("a", 600, 600);
  for (int i = 0; i < 20; ++i) d.Observe("b", 600, 1'200);
  EXPECT_TRUE(d.Judge("b").slow);
  for (int i = 0; i < 50; ++i) d.Observe("b", 600, 600);
  EXPECT_FALSE(d.Judge("b").slow);
  d.Observe("b", 0, 600);  // no estimate: ignored
  EXPECT_EQ(d.Judge("b").jobs, 50);
}

}  // namespace
}  // namespace icos::controller
