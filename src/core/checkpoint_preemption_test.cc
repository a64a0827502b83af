// Preemption that weighs the work it throws away (issue #20): victims by
// device-seconds lost since their last checkpoint, a queue's minimum run time
// before preemption, and a cap on interruptions per hour.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/scheduler.h"
#include "core/testing/builders.h"
#include "core/testing/run_pass.h"

namespace icos::core {
namespace {

using builders::MakeJob;
using builders::MakeNode;
using builders::MakeRunning;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 60 * kMinute;

using testing::RunPass;

// One 2-GPU node full of two low-priority 1-GPU jobs; a high-priority 1-GPU
// job arrives at 10 h.
Snapshot TwoVictims(int64_t a_start, int64_t a_checkpoint, int64_t b_start, int64_t b_checkpoint) {
  Snapshot s;
  s.now_ms = 10 * kHour;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 2)};
  Job a = MakeJob(100, 1);
  a.checkpoint_ms = a_checkpoint;
  Job b = MakeJob(101, 1);
  b.checkpoint_ms = b_checkpoint;
  s.running = {MakeRunning(a, 0, {0}, a_start), MakeRunning(b, 0, {1}, b_start)};
  Job urgent = MakeJob(1, 1);
  urgent.priority = 10;
  s.pending = {urgent};
  return s;
}

TEST(CheckpointPreemptionTest, TheVictimIsTheOneThatLosesLeastWork) {
  // a has run 10 h but checkpointed a minute ago; b started 10 minutes ago
  // and never checkpointed. Youngest-first would stop b and lose 10 minutes.
  Snapshot s = TwoVictims(0, 10 * kHour - kMinute, 10 * kHour - 10 * kMinute, 0);
  Decisions d = RunPass(s);
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].victim, JobId(100));
  EXPECT_THAT(d.preemptions[0].reason, HasSubstr("since its last checkpoint"));
}

// Kubernetes' preemptionPolicy: Never (a priority class with preempts
// false): a higher-priority job that may not preempt waits.
TEST(CheckpointPreemptionTest, AJobThatMayNotPreemptWaitsInstead) {
  Snapshot s = TwoVictims(0, 0, kHour, 0);
  s.pending[0].preempts = false;
  Decisions d = RunPass(s);
  EXPECT_TRUE(d.preemptions.empty());
  EXPECT_TRUE(d.binds.empty());
  ASSERT_EQ(d.waiting.size(), 1u);
  // One of the same shape and priority behind it that may preempt does
  // (it does not take the first one's cached answer).
  Job may = s.pending[0];
  may.id = JobId(2);
  may.preempts = true;
  s.pending.push_back(may);
  d = RunPass(s);
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].preemptor, JobId(2));
}

TEST(CheckpointPreemptionTest, WithoutCheckpointsTheYoungestRunIsStopped) {
  Snapshot s = TwoVictims(kHour, 0, 9 * kHour, 0);
  Decisions d = RunPass(s);
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].victim, JobId(101));
  EXPECT_THAT(d.preemptions[0].reason, HasSubstr("loses about 60 device-min"));  // 1 h, with the 30 s restore
}

TEST(CheckpointPreemptionTest, ACheckpointOlderThanTheRunDoesNotCount) {
  // b's checkpoint is from an earlier run: its current run started later.
  Snapshot s = TwoVictims(kHour, 0, 9 * kHour, 2 * kHour);
  Decisions d = RunPass(s);
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].victim, JobId(101));
  EXPECT_THAT(d.preemptions[0].reason, Not(HasSubstr("checkpoint")));
}

TEST(CheckpointPreemptionTest, AQueuesMinimumRunTimeExemptsYoungRuns) {
  Snapshot s = TwoVictims(10 * kHour - 20 * kMinute, 0, 10 * kHour - 5 * kMinute, 0);
  Queue q;
  q.name = "default";
  q.min_run_ms = 30 * kMinute;
  s.queues = {q};
  Decisions d = RunPass(s);
  EXPECT_TRUE(d.preemptions.empty());
  EXPECT_TRUE(d.binds.empty());

  s.queues[0].min_run_ms = 15 * kMinute;  // now only the 5-minute-old run is exempt
  d = RunPass(s);
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].victim, JobId(100));
}

TEST(CheckpointPreemptionTest, AJobInterruptedTooOftenThisHourIsLeftAlone) {
  Snapshot s = TwoVictims(kHour, 0, 9 * kHour, 0);
  s.running[1].job.recent_interruptions = 3;
  Decisions capped = RunPass(s, {.max_interruptions_per_hour = 3});
  ASSERT_EQ(capped.preemptions.size(), 1u);
  EXPECT_EQ(capped.preemptions[0].victim, JobId(100));  // b, the cheaper one, is spared

  Decisions uncapped = RunPass(s);
  ASSERT_EQ(uncapped.preemptions.size(), 1u);
  EXPECT_EQ(uncapped.preemptions[0].victim, JobId(101));
}

// SRTF: a job that checkpoints is preempted only when the preemption saves
// more time than it throws away. A 5-minute job waits for a 10-hour one
// (left 9 h 20 min) that checkpointed 40 minutes ago, but not for one that
// checkpointed a minute ago; a job that does not declare checkpoints is
// preempted as before.
TEST(CheckpointPreemptionTest, SrtfPreemptsOnlyWhenItSavesMoreThanItLoses) {
  Snapshot s;
  s.now_ms = 10 * kHour;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 1)};
  Job victim = MakeJob(100, 1);
  victim.checkpoints = true;
  victim.checkpoint_ms = s.now_ms - 40 * kMinute;
  s.running = {MakeRunning(victim, 0, {0}, s.now_ms - kHour, /*estimate_ms=*/10 * kHour)};
  Job quick = MakeJob(1, 1);
  quick.runtime_estimate_ms = 5 * kMinute;
  s.pending = {quick};
  const SchedulerOptions srtf{.order = "srtf"};
  // 9 h left > 2 x 5 min + 40 min lost + 30 s restore: worth it.
  EXPECT_EQ(RunPass(s, srtf).preemptions.size(), 1u);

  // Left 20 min: 2 x 5 min + 40 min lost is more than the preemption saves.
  s.running[0].job.runtime_estimate_ms = kHour + 20 * kMinute;
  EXPECT_TRUE(RunPass(s, srtf).preemptions.empty());
  s.running[0].job.checkpoint_ms = s.now_ms - kMinute;  // 1 min lost: worth it again
  EXPECT_EQ(RunPass(s, srtf).preemptions.size(), 1u);
  s.running[0].job.checkpoints = false;  // no contract: SRTF's old rule
  s.running[0].job.checkpoint_ms = s.now_ms - 40 * kMinute;
  EXPECT_EQ(RunPass(s, srtf).preemptions.size(), 1u);
}

}  // namespace
}  // namespace icos::core
