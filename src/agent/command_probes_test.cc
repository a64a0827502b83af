#include "agent/command_probes.h"

#include <chrono>
#include <cstdio>
#include <fstream>
#include <thread>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::IsEmpty;

// Runs nothing: answers each probe with the next scripted result and records
// what it was asked to run.
struct Scripted {
  std::vector<ProgramResult> results;
  std::vector<ProgramRun> asked;
  ProgramResult operator()(const ProgramRun& run) {
    asked.push_back(run);
    ProgramResult r = results.empty() ? ProgramResult{true, ""} : results.front();
    if (!results.empty()) results.erase(results.begin());
    return r;
  }
};

class CommandProbesTest : public ::testing::Test {
 protected:
  CommandProbesTest() : probes_(&clock_, [this](const ProgramRun& r) { return script_(r); }) {}

  FakeClock clock_{0};
  Scripted script_;
  CommandProbes probes_;
};

TEST_F(CommandProbesTest, AProbeRunsInItsReplicasContextAfterItsDelayAndEveryPeriod) {
  ProgramRun context{.env = std::vector<std::string>{"ICOS_PORT=9000"}, .workdir = "/srv/model"};
  probes_.Set("j1-g0-r0-a0",
              {{.kind = "readiness",
                .argv = {"test", "-f", "ready"},
                .initial_delay_ms = 2'000,
                .period_ms = 1'000,
                .timeout_ms = 500}},
              context, 1'000);
  clock_.Set(2'999);
  EXPECT_FALSE(probes_.RunDue());
  EXPECT_EQ(probes_.NextDueMs(), 3'000);
  clock_.Set(3'000);
  script_.results = {{false, "no such file"}};
  EXPECT_TRUE(probes_.RunDue());  // a first outcome is news
  ASSERT_EQ(script_.asked.size(), 1u);
  EXPECT_THAT(script_.asked[0].argv, ElementsAre("test", "-f", "ready"));
  EXPECT_EQ(script_.asked[0].workdir, "/srv/model");
  EXPECT_EQ(script_.asked[0].env, context.env);
  EXPECT_EQ(script_.asked[0].timeout_ms, 500);
  EXPECT_EQ(probes_.NextDueMs(), 4'000);
  clock_.Set(4'000);
  script_.results = {{false, "no such file"}};
  EXPECT_FALSE(probes_.RunDue());  // the same outcome again: it can wait for the next heartbeat
  clock_.Set(5'000);
  EXPECT_TRUE(probes_.RunDue());  // passed: news
  EXPECT_THAT(probes_.Pending("j1-g0-r0-a0"), ElementsAre(wire::ProbeOutcome{"readiness", 1, false, "no such file"},
                                                          wire::ProbeOutcome{"readiness", 2, false, "no such file"},
                                                          wire::ProbeOutcome{"readiness", 3, true, ""}));
}

TEST_F(CommandProbesTest, DeliveredOutcomesAreDroppedAndAnUnansweredReportIsSentAgain) {
  probes_.Set("t", {{.kind = "liveness", .argv = {"x"}, .period_ms = 1'000}}, {}, 0);
  probes_.RunDue();
  clock_.Set(1'000);
  probes_.RunDue();
  const std::vector<wire::ProbeOutcome> first = probes_.Pending("t");
  ASSERT_EQ(first.size(), 2u);
  clock_.Set(2'000);
  probes_.RunDue();  // runs while the report is in flight
  probes_.Acknowledge("t", first);
  EXPECT_THAT(probes_.Pending("t"), ElementsAre(Field(&wire::ProbeOutcome::seq, 3)));
  probes_.Acknowledge("t", {});  // a lost answer acknowledges nothing
  EXPECT_EQ(probes_.Pending("t").size(), 1u);
}

TEST_F(CommandProbesTest, OnlyTheNewestOutcomesAreKeptWhileNoHeartbeatGetsThrough) {
  probes_.Set("t", {{.kind = "startup", .argv = {"x"}, .period_ms = 1'000}}, {}, 0);
  for (size_t i = 0; i < wire::kMaxProbeOutcomes + 10; ++i) {
    clock_.Set(static_cast<int64_t>(i) * 1'000);
    probes_.RunDue();
  }
  const std::vector<wire::ProbeOutcome> kept = probes_.Pending("t");
  ASSERT_EQ(kept.size(), wire::kMaxProbeOutcomes);
  EXPECT_EQ(kept.back().seq, static_cast<int64_t>(wire::kMaxProbeOutcomes + 10));
}

TEST_F(CommandProbesTest, ARemovedTaskIsNoLongerProbed) {
  probes_.Set("t", {{.kind = "readiness", .argv = {"x"}}}, {}, 0);
  EXPECT_TRUE(probes_.Has("t"));
  probes_.Remove("t");
  EXPECT_FALSE(probes_.RunDue());
  EXPECT_THAT(script_.asked, IsEmpty());
  EXPECT_THAT(probes_.Pending("t"), IsEmpty());
}

// A probe that hangs for its whole timeout (a spec may give it an hour)
// delays no other replica's probe on the node, and is not run again while
// it is out; its outcome is recorded when it ends.
TEST(CommandProbesRealTest, AProbeThatHangsDelaysNoOtherReplica) {
  FakeClock clock(0);
  CommandProbes probes(&clock);
  const std::string flag = ::testing::TempDir() + "/command-probe-release";
  std::remove(flag.c_str());
  probes.Set("slow",
             {{.kind = "readiness",
               .argv = {"/bin/sh", "-c", "while [ ! -e \"$0\" ]; do sleep 0.05; done; exit 1", flag},
               .timeout_ms = 3'600'000}},
             {}, 0);
  probes.Set("quick", {{.kind = "readiness", .argv = {"/bin/true"}}}, {}, 0);
  EXPECT_TRUE(probes.RunDue());  // returns, with the quick one's outcome
  EXPECT_THAT(probes.Pending("quick"), ElementsAre(wire::ProbeOutcome{"readiness", 1, true, ""}));
  EXPECT_THAT(probes.Pending("slow"), IsEmpty());
  clock.Set(10'000);
  probes.RunDue();
  EXPECT_EQ(probes.Pending("quick").size(), 2u);
  EXPECT_THAT(probes.Pending("slow"), IsEmpty());  // still the first run: not started again
  std::ofstream(flag).put('x');
  for (int i = 0; i < 500 && probes.Pending("slow").empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_THAT(probes.Pending("slow"), ElementsAre(Field(&wire::ProbeOutcome::seq, 1)));
  std::remove(flag.c_str());
}

TEST(CommandProbesRealTest, ARealProgramsOutcomeIsReported) {
  FakeClock clock(0);
  CommandProbes probes(&clock);
  probes.Set("t", {{.kind = "readiness", .argv = {"/bin/sh", "-c", "echo model not loaded; exit 3"}}}, {}, 0);
  probes.RunDue();
  EXPECT_THAT(probes.Pending("t"), ElementsAre(wire::ProbeOutcome{"readiness", 1, false, "model not loaded"}));
}

}  // namespace
}  // namespace icos::agent
