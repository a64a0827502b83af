// Behaviour of one scheduling pass: input checking, reasons, sessions.
#include "core/scheduler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/testing/builders.h"

namespace icos::core {
namespace {

using builders::MakeJob;
using builders::MakeNode;
using builders::MakeRunning;
using ::testing::HasSubstr;

Scheduler Make(SchedulerOptions opt = {}) {
  auto s = Scheduler::Create(std::move(opt));
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

TEST(SchedulerTest, UnknownPolicyNameIsAnError) {
  auto s = Scheduler::Create({.order = "lottery"});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.status().message()), HasSubstr("known: fifo, priority, drf, las"));
  EXPECT_FALSE(Scheduler::Create({.placement = "tetris"}).ok());
  EXPECT_FALSE(Scheduler::Create({.max_victims = 0}).ok());
}

TEST(SchedulerTest, RunningJobThatOverAllocatesIsASnapshotError) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 2)};
  s.running.push_back(MakeRunning(MakeJob(1, 2), 0, {0, 1}));
  s.running.push_back(MakeRunning(MakeJob(2, 1), 0, {1}));
  auto d = Make().Schedule(s);
  ASSERT_FALSE(d.ok());
  EXPECT_THAT(std::string(d.status().message()), HasSubstr("running job 2 does not fit"));
}

TEST(SchedulerTest, DuplicateNodeNamesAreASnapshotError) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 1), MakeNode("node-0", "nvidia", "A100", 1)};
  EXPECT_FALSE(Make().Schedule(s).ok());
}

TEST(SchedulerTest, MalformedJobWaitsAsInvalidAndOthersStillRun) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  Job bad = MakeJob(1, 2);
  bad.groups[0].request.device_percent = 50;  // whole devices and a share at once
  Job no_groups = MakeJob(2, 1);
  no_groups.groups.clear();
  s.pending = {bad, no_groups, MakeJob(3, 1)};
  auto d = Make().Schedule(s);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->binds.size(), 1u);
  EXPECT_EQ(d->binds[0].job, JobId(3));
  ASSERT_EQ(d->waiting.size(), 2u);
  for (const auto& w : d->waiting) EXPECT_EQ(w.kind, WaitKind::kInvalid);
}

TEST(SchedulerTest, ValidateJobNamesTheProblem) {
  Job j = MakeJob(1, 1);
  EXPECT_EQ(ValidateJob(j), "");
  j.groups[0].replicas = 0;
  EXPECT_THAT(ValidateJob(j), HasSubstr("replicas must be at least 1"));
  j = MakeJob(1, 0);
  j.groups[0].request.device_percent = 100;
  EXPECT_THAT(ValidateJob(j), HasSubstr("between 1 and 99"));
  j = MakeJob(1, 1);
  j.groups[0].min_available = 3;
  EXPECT_THAT(ValidateJob(j), HasSubstr("min_available"));
  j = MakeJob(1, 1);
  j.groups[0].device_choices = {{"", "A100", 1.0}};
  EXPECT_THAT(ValidateJob(j), HasSubstr("needs its vendor"));
}

TEST(SchedulerTest, UnknownQueueIsInvalid) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  Job j = MakeJob(1, 1);
  j.queue = "nope";
  s.pending = {j};
  auto d = Make().Schedule(s);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->waiting[0].kind, WaitKind::kInvalid);
  EXPECT_THAT(d->waiting[0].reason, HasSubstr("queue 'nope' does not exist"));
}

TEST(SchedulerTest, UnhealthyAndDrainedDevicesAreSkipped) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 4)};
  s.nodes[0].devices[0].healthy = false;
  s.nodes[0].devices[1].drained = true;
  s.pending = {MakeJob(1, 2), MakeJob(2, 1)};
  auto d = Make({.order = "fifo"}).Schedule(s);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->binds.size(), 1u);
  EXPECT_EQ(d->binds[0].tasks[0].devices[0].device, 2);
  EXPECT_EQ(d->binds[0].tasks[0].devices[1].device, 3);
}

TEST(SchedulerTest, UnschedulableNodeTakesNoJobs) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 4)};
  s.nodes[0].schedulable = false;
  s.pending = {MakeJob(1, 1)};
  auto d = Make().Schedule(s);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(d->binds.empty());
  // Not NeverFits: the node may be made schedulable again (icos wait and
  // icos run give up on NeverFits).
  EXPECT_EQ(d->waiting[0].kind, WaitKind::kResources);
  EXPECT_THAT(d->waiting[0].reason, HasSubstr("unhealthy or drained"));
}

TEST(SchedulerTest, NodeSelectorRestrictsNodesAndIsExplained) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8), MakeNode("node-1", "nvidia", "A100", 8)};
  s.nodes[1].labels["zone"] = "b";
  Job j = MakeJob(1, 1);
  j.groups[0].node_selector = {{"zone", "b"}};
  Job k = MakeJob(2, 1);
  k.groups[0].node_selector = {{"zone", "c"}};
  s.pending = {j, k};
  auto d = Make().Schedule(s);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->binds.size(), 1u);
  EXPECT_EQ(d->binds[0].tasks[0].node, 1);
  // No node has zone=c: it can never run, and says so.
  EXPECT_EQ(d->waiting[0].kind, WaitKind::kNeverFits);
  EXPECT_EQ(d->waiting[0].reason, "asks for nodes labelled zone=c and no node has that label");
}

TEST(SchedulerTest, CpuShortageIsExplained) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  Job hog = MakeJob(100, 0);
  hog.groups[0].request.cpu_milli = 63'500;
  hog.groups[0].device_choices.clear();
  s.running.push_back(MakeRunning(hog, 0, {}));
  s.pending = {MakeJob(1, 1)};
  auto d = Make().Schedule(s);
  ASSERT_TRUE(d.ok());
  EXPECT_THAT(d->waiting[0].reason, HasSubstr("1 node lacks CPU"));
}

TEST(SchedulerTest, CpuOnlyJobsRunWithoutDevices) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  Job j = MakeJob(1, 0, 3);
  j.groups[0].device_choices.clear();
  s.pending = {j};
  auto d = Make().Schedule(s);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->binds.size(), 1u);
  EXPECT_EQ(d->binds[0].tasks.size(), 3u);
  EXPECT_EQ(d->binds[0].device_type, "");
}

TEST(SchedulerTest, IdenticalFailedRequestsAreAnsweredFromTheShapeCache) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  s.running.push_back(MakeRunning(MakeJob(100, 8), 0, {0, 1, 2, 3, 4, 5, 6, 7}));
  for (int i = 1; i <= 5; ++i) s.pending.push_back(MakeJob(i, 2));
  auto d = Make({.backfill = BackfillMode::kNone, .preemption = false}).Schedule(s);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->waiting.size(), 5u);
  EXPECT_EQ(d->stats.shape_cache_hits, 4);
  for (const auto& w : d->waiting) EXPECT_EQ(w.reason, d->waiting[0].reason);
}

TEST(SchedulerTest, MultiGroupGangIsAllOrNothing) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 4)};
  Job j = MakeJob(1, 2);
  TaskGroup ps = j.groups[0];
  ps.name = "ps";
  ps.request.devices = 4;  // first group takes 2, this one wants 4: cannot both fit
  j.groups.push_back(ps);
  s.pending = {j, MakeJob(2, 4)};
  auto d = Make({.order = "fifo", .backfill = BackfillMode::kNone}).Schedule(s);
  ASSERT_TRUE(d.ok());
  ASSERT_EQ(d->binds.size(), 1u);
  EXPECT_EQ(d->binds[0].job, JobId(2));  // job 1's partial placement was rolled back
}

TEST(SchedulerTest, SessionPlacesNewJobsOneAtATime) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 2)};
  auto sched = Make();
  auto session = SchedulingSession::Begin(sched, s);
  ASSERT_TRUE(session.ok());
  Decisions first = session->PlaceOne(MakeJob(1, 2));
  ASSERT_EQ(first.binds.size(), 1u);
  Decisions second = session->PlaceOne(MakeJob(2, 1));
  EXPECT_TRUE(second.binds.empty());
  ASSERT_EQ(second.waiting.size(), 1u);
  EXPECT_EQ(second.waiting[0].kind, WaitKind::kResources);
}

TEST(SchedulerTest, WaitKindsHaveNames) {
  EXPECT_STREQ(WaitKindName(WaitKind::kNeverFits), "NeverFits");
  EXPECT_STREQ(WaitKindName(WaitKind::kReservation), "Reservation");
}

}  // namespace
}  // namespace icos::core
