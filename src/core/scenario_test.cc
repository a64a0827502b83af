// Scenarios a cluster user would recognise, end to end through one pass.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/scheduler.h"
#include "core/testing/builders.h"
#include "core/testing/run_pass.h"

namespace icos::core {
namespace {

using builders::MakeJob;
using builders::MakeNode;
using builders::MakeRunning;
using builders::MakeShareJob;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr int64_t kMinute = 60'000;
constexpr int64_t kHour = 60 * kMinute;

using testing::RunPass;

const BindDecision* FindBind(const Decisions& d, int64_t id) {
  for (const auto& b : d.binds) {
    if (b.job == JobId(id)) return &b;
  }
  return nullptr;
}

const WaitingJob* FindWait(const Decisions& d, int64_t id) {
  for (const auto& w : d.waiting) {
    if (w.job == JobId(id)) return &w;
  }
  return nullptr;
}

// node-0: one 1-GPU job ending in 1 h, 7 GPUs free. node-1: full until 2 h.
Snapshot NodeZeroFreesInAnHour() {
  Snapshot s;
  s.now_ms = 0;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8), MakeNode("node-1", "nvidia", "A100", 8)};
  s.running.push_back(MakeRunning(MakeJob(100, 1), 0, {0}, 0, 1 * kHour));
  s.running.push_back(MakeRunning(MakeJob(101, 8), 1, {0, 1, 2, 3, 4, 5, 6, 7}, 0, 2 * kHour));
  return s;
}

// On that cluster, an 8-GPU gang arrives first; it cannot start, so EASY reserves node-0 at 1 h.
// A 1-GPU job with a 30-minute estimate ends before that and backfills onto
// node-0; a 1-GPU job with a 3-hour estimate would delay the gang and waits.
TEST(ScenarioTest, EightGpuGangWaitsForWholeNodeWhileShortJobsBackfill) {
  Snapshot s = NodeZeroFreesInAnHour();
  Job gang = MakeJob(1, 8);
  Job short_job = MakeJob(2, 1);
  short_job.runtime_estimate_ms = 30 * kMinute;
  Job long_job = MakeJob(3, 1);
  long_job.runtime_estimate_ms = 3 * kHour;
  s.pending = {gang, short_job, long_job};

  Decisions d = RunPass(s, {.order = "fifo"});

  ASSERT_EQ(d.reservations.size(), 1u);
  EXPECT_EQ(d.reservations[0].job, JobId(1));
  EXPECT_EQ(d.reservations[0].start_ms, 1 * kHour);
  EXPECT_THAT(d.reservations[0].nodes, ElementsAre(0));
  EXPECT_EQ(FindWait(d, 1)->kind, WaitKind::kResources);
  ASSERT_NE(FindBind(d, 2), nullptr);
  EXPECT_EQ(FindBind(d, 2)->tasks[0].node, 0);
  ASSERT_NE(FindWait(d, 3), nullptr);
  EXPECT_EQ(FindWait(d, 3)->kind, WaitKind::kReservation);
  EXPECT_THAT(FindWait(d, 3)->reason, HasSubstr("would delay job 1"));
}

// A long queue of one shape behind the reservation (a job array): after the
// first of them, each is answered from the pass's shape cache with what the
// first got, while a job whose estimate ends before the reservation still
// backfills and one that can still reserve still does.
TEST(ScenarioTest, AQueueOfOneShapeBehindAReservationIsAnsweredOnceYetShortJobsStillBackfill) {
  Snapshot s = NodeZeroFreesInAnHour();
  s.pending = {MakeJob(1, 8)};
  for (int64_t id = 2; id <= 11; ++id) {
    s.pending.push_back(MakeJob(id, 8));  // no estimate: each must honour job 1's reservation
    s.pending.back().submit_ms = id;
  }
  Job short_job = MakeJob(20, 1);
  short_job.runtime_estimate_ms = 30 * kMinute;
  short_job.submit_ms = 20;
  s.pending.push_back(short_job);

  Decisions d = RunPass(s, {.order = "fifo"});

  ASSERT_EQ(d.reservations.size(), 1u);
  EXPECT_EQ(d.reservations[0].job, JobId(1));
  for (int64_t id = 2; id <= 11; ++id) {
    ASSERT_NE(FindWait(d, id), nullptr) << id;
    EXPECT_EQ(FindWait(d, id)->kind, FindWait(d, 2)->kind);
    EXPECT_EQ(FindWait(d, id)->reason, FindWait(d, 2)->reason);
  }
  EXPECT_EQ(d.stats.shape_cache_hits, 9);  // jobs 3..11
  ASSERT_NE(FindBind(d, 20), nullptr);
  EXPECT_EQ(FindBind(d, 20)->tasks[0].node, 0);

  // With room for two reservations, the second 8-GPU job takes one itself
  // before any of its shape is answered from the cache.
  Decisions deeper = RunPass(s, {.order = "fifo", .reservation_depth = 2});
  ASSERT_EQ(deeper.reservations.size(), 2u);
  EXPECT_EQ(deeper.reservations[1].job, JobId(2));
  EXPECT_EQ(deeper.stats.shape_cache_hits, 8);  // jobs 4..11
}

// Without backfill (strict order) nothing may overtake the blocked gang.
TEST(ScenarioTest, StrictOrderKeepsSmallJobsBehindBlockedGang) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  s.running.push_back(MakeRunning(MakeJob(100, 1), 0, {0}, 0, kHour));
  s.pending = {MakeJob(1, 8), MakeJob(2, 1)};
  Decisions d = RunPass(s, {.order = "fifo", .backfill = BackfillMode::kStrict});
  EXPECT_TRUE(d.binds.empty());
  EXPECT_EQ(FindWait(d, 2)->kind, WaitKind::kOrder);
}

// A job that only runs on Ascend waits for Ascend even when NVIDIA is idle,
// and lands on Ascend once it is free.
TEST(ScenarioTest, AscendOnlyJobNeverLandsOnNvidia) {
  Snapshot s;
  s.nodes = {MakeNode("gpu-0", "nvidia", "A100", 8), MakeNode("npu-0", "ascend", "910B", 8)};
  s.running.push_back(MakeRunning(MakeJob(100, 8, 1, "ascend"), 1, {0, 1, 2, 3, 4, 5, 6, 7}));
  s.pending = {MakeJob(1, 4, 1, "ascend", "910B")};
  Decisions busy = RunPass(s);
  EXPECT_TRUE(busy.binds.empty());
  EXPECT_THAT(FindWait(busy, 1)->reason, HasSubstr("ascend/910B"));

  s.running.clear();
  Decisions idle = RunPass(s);
  ASSERT_EQ(idle.binds.size(), 1u);
  EXPECT_EQ(idle.binds[0].device_type, "ascend/910B");
  EXPECT_EQ(idle.binds[0].tasks[0].node, 1);
}

// Queues "research" and "prod" are each guaranteed 8 of the 16 GPUs. Research
// borrowed all 16 while prod was idle. A 4-GPU prod job reclaims exactly 4
// GPUs of research's borrowed share, youngest jobs first, and starts after them.
TEST(ScenarioTest, BorrowedQuotaIsReclaimed) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8), MakeNode("node-1", "nvidia", "A100", 8)};
  s.queues = {Queue{.name = "research", .guaranteed = {{"nvidia", 8'000}}},
              Queue{.name = "prod", .guaranteed = {{"nvidia", 8'000}}}};
  for (int i = 0; i < 16; ++i) {
    Job j = MakeJob(100 + i, 1);
    j.queue = "research";
    j.priority = 10;  // higher than the reclaimer: reclaim ignores priority across queues
    s.running.push_back(MakeRunning(j, i / 8, {i % 8}, /*start_ms=*/i));
  }
  Job prod = MakeJob(1, 4);
  prod.queue = "prod";
  s.pending = {prod};

  Decisions d = RunPass(s);

  ASSERT_EQ(d.binds.size(), 1u);
  EXPECT_EQ(d.preemptions.size(), 4u);
  for (const auto& p : d.preemptions) {
    EXPECT_EQ(p.preemptor, JobId(1));
    EXPECT_THAT(p.reason, HasSubstr("borrowed"));
  }
  EXPECT_EQ(d.binds[0].after_preemption.size(), 4u);
  // All four GPUs on one node: the victims are the four youngest on node-1.
  EXPECT_EQ(d.binds[0].tasks[0].node, 1);
}

// A queue at its guarantee is never a reclaim victim.
TEST(ScenarioTest, GuaranteeIsNotReclaimed) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  s.queues = {Queue{.name = "a", .guaranteed = {{"nvidia", 4'000}}},
              Queue{.name = "b", .guaranteed = {{"nvidia", 4'000}}}};
  for (int i = 0; i < 8; ++i) {
    Job j = MakeJob(100 + i, 1);
    j.queue = i < 4 ? "a" : "b";
    s.running.push_back(MakeRunning(j, 0, {i}));
  }
  Job more = MakeJob(1, 1);
  more.queue = "a";
  s.pending = {more};
  Decisions d = RunPass(s);
  EXPECT_TRUE(d.preemptions.empty());
  EXPECT_TRUE(d.binds.empty());
}

// Two half-device shares fit on one device; a third does not.
TEST(ScenarioTest, TwoHalfSharesShareOneDeviceAThirdDoesNot) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "T4", 1)};
  s.pending = {MakeShareJob(1, 50), MakeShareJob(2, 50), MakeShareJob(3, 50)};
  Decisions d = RunPass(s, {.order = "fifo"});
  ASSERT_EQ(d.binds.size(), 2u);
  for (const auto& b : d.binds) {
    ASSERT_EQ(b.tasks[0].devices.size(), 1u);
    EXPECT_EQ(b.tasks[0].devices[0].device, 0);
    EXPECT_EQ(b.tasks[0].devices[0].percent, 50);
  }
  EXPECT_EQ(FindWait(d, 3)->kind, WaitKind::kResources);
}

// "Can never fit" is said at once, with the numbers.
TEST(ScenarioTest, ImpossibleIslandRequestSaysWhy) {
  Snapshot s;
  s.nodes = {MakeNode("npu-0", "ascend", "910B", 16, /*islands=*/2)};
  Job j = MakeJob(1, 16, 1, "ascend", "910B");
  j.groups[0].affinity = Affinity::kSameIsland;
  s.pending = {j};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.waiting.size(), 1u);
  EXPECT_EQ(d.waiting[0].kind, WaitKind::kNeverFits);
  EXPECT_EQ(d.waiting[0].reason, "needs 16 x ascend/910B on one interconnect island; the largest island has 8");
}

// Short only because devices are drained or unhealthy: they may come back,
// so the job waits (Resources), and icos wait / icos run do not give up.
TEST(ScenarioTest, ShortOnlyForDevicesOutOfServiceWaits) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  s.nodes[0].devices[0].drained = true;
  s.pending = {MakeJob(1, 8)};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.waiting.size(), 1u);
  EXPECT_EQ(d.waiting[0].kind, WaitKind::kResources);
  EXPECT_THAT(d.waiting[0].reason, HasSubstr("the largest node has 7"));
  s.nodes[0].devices[0].drained = false;
  s.pending = {MakeJob(1, 9)};  // more than the node has even with every device back
  EXPECT_EQ(RunPass(s).waiting[0].kind, WaitKind::kNeverFits);
}

TEST(ScenarioTest, MoreDevicesThanTheClusterHasNeverFits) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8), MakeNode("node-1", "nvidia", "A100", 8)};
  s.pending = {MakeJob(1, 8, 3)};
  Decisions d = RunPass(s);
  EXPECT_EQ(d.waiting[0].kind, WaitKind::kNeverFits);
  EXPECT_THAT(d.waiting[0].reason, HasSubstr("needs 24 x nvidia/A100; the cluster has 16"));
}

// Jobs that can never run are said to be so at once, with the reason, not
// left waiting for "resources" that no amount of waiting frees.
TEST(ScenarioTest, ASelectorNoNodeMatchesNeverFits) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  s.nodes[0].labels = {{"zone", "a"}};
  Job j = MakeJob(1, 1);
  j.groups[0].node_selector = {{"zone", "b"}};
  s.pending = {j};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.waiting.size(), 1u);
  EXPECT_EQ(d.waiting[0].kind, WaitKind::kNeverFits);
  EXPECT_EQ(d.waiting[0].reason, "asks for nodes labelled zone=b and no node has that label");
}

TEST(ScenarioTest, SpreadOverMoreNodesThanExistNeverFits) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8), MakeNode("node-1", "nvidia", "A100", 8)};
  Job j = MakeJob(1, 1, 3);
  j.groups[0].affinity = Affinity::kSpread;
  s.pending = {j};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.waiting.size(), 1u);
  EXPECT_EQ(d.waiting[0].kind, WaitKind::kNeverFits);
  EXPECT_EQ(d.waiting[0].reason, "spreads 3 tasks one per node; the cluster has 2 nodes");
}

// A queue capped at 4 A100s: an 8-A100 job can never run there, though the
// cluster has the devices (it is not "waiting for quota").
TEST(ScenarioTest, ARequestAboveTheQueuesModelLimitNeverFits) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  s.queues = {Queue{.name = "default", .limit = {{"nvidia/A100", 4'000}}}};
  s.pending = {MakeJob(1, 8, 1, "nvidia", "A100")};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.waiting.size(), 1u);
  EXPECT_EQ(d.waiting[0].kind, WaitKind::kNeverFits);
  EXPECT_THAT(d.waiting[0].reason, HasSubstr("queue 'default' is capped at"));
}

// Nine devices with no model named: no model's nodes hold nine; the reason
// names every model, not one the user never asked for.
TEST(ScenarioTest, AnyModelRequestNamesEveryModelWhenNoneFits) {
  Snapshot s;
  s.nodes = {MakeNode("gpu-0", "nvidia", "A100", 8), MakeNode("npu-0", "ascend", "910B", 8)};
  s.pending = {MakeJob(1, 9, 1, /*vendor=*/"")};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.waiting.size(), 1u);
  EXPECT_EQ(d.waiting[0].kind, WaitKind::kNeverFits);
  EXPECT_THAT(d.waiting[0].reason,
              AllOf(HasSubstr("can use any device model and none can hold it"),
                    HasSubstr("9 x nvidia/A100 on one node"), HasSubstr("9 x ascend/910B on one node")));
}

TEST(ScenarioTest, AnUnknownModelListsTheModelsThere) {
  Snapshot s;
  s.nodes = {MakeNode("gpu-0", "nvidia", "A100", 8), MakeNode("npu-0", "ascend", "910B", 8)};
  s.pending = {MakeJob(1, 1, 1, "nvidia", "A100-80G")};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.waiting.size(), 1u);
  EXPECT_EQ(d.waiting[0].kind, WaitKind::kNeverFits);
  EXPECT_THAT(d.waiting[0].reason, HasSubstr("accepts only nvidia/A100-80G devices and the cluster has none (it has "));
  EXPECT_THAT(d.waiting[0].reason, AllOf(HasSubstr("nvidia/A100"), HasSubstr("ascend/910B")));
}

// A high-priority job preempts the single low-priority job that frees enough
// room rather than four small ones.
TEST(ScenarioTest, PreemptionPicksFewestVictims) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  s.running.push_back(MakeRunning(MakeJob(100, 4), 0, {0, 1, 2, 3}, 0));
  for (int i = 0; i < 4; ++i) s.running.push_back(MakeRunning(MakeJob(101 + i, 1), 0, {4 + i}, 10 + i));
  Job urgent = MakeJob(1, 4);
  urgent.priority = 5;
  s.pending = {urgent};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].victim, JobId(100));
  EXPECT_THAT(d.preemptions[0].reason, HasSubstr("higher priority"));
  ASSERT_EQ(d.binds.size(), 1u);
}

// Preemption never happens when even preempting everything would not help.
TEST(ScenarioTest, NoPreemptionForAJobThatStillWouldNotFit) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  s.running.push_back(MakeRunning(MakeJob(100, 4), 0, {0, 1, 2, 3}));
  Job high = MakeJob(101, 4);
  high.priority = 9;
  s.running.push_back(MakeRunning(high, 0, {4, 5, 6, 7}));
  Job urgent = MakeJob(1, 8);
  urgent.priority = 5;  // may preempt job 100 but not job 101
  s.pending = {urgent};
  Decisions d = RunPass(s);
  EXPECT_TRUE(d.preemptions.empty());
  EXPECT_TRUE(d.binds.empty());
}

// Tiresias (LAS order): a new job preempts a same-priority job that has
// attained more service (level 2: >= 10 h of device time), not one on its own
// level (0.5 h: level 0).
TEST(ScenarioTest, LasPreemptsTheJobWithMostAttainedService) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 2)};
  Job veteran = MakeJob(100, 1);
  veteran.attained_device_s = 20 * 3600.0;
  Job young = MakeJob(101, 1);
  young.attained_device_s = 0.5 * 3600.0;
  s.running.push_back(MakeRunning(veteran, 0, {0}));
  s.running.push_back(MakeRunning(young, 0, {1}));
  s.pending = {MakeJob(1, 1)};
  Decisions d = RunPass(s, {.order = "las"});
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].victim, JobId(100));
  EXPECT_THAT(d.preemptions[0].reason, HasSubstr("attained less service (LAS level 0 < 2)"));
  // Under FIFO the same snapshot preempts nobody: equal priorities.
  EXPECT_TRUE(RunPass(s, {.order = "fifo"}).preemptions.empty());
}

// A 2 x 4-GPU gang is packed onto one node, each task inside one island.
TEST(ScenarioTest, TopologyAwareGangSharesNodeAndIslands) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8, 2), MakeNode("node-1", "nvidia", "A100", 8, 2)};
  s.running.push_back(MakeRunning(MakeJob(100, 1), 0, {0}));
  s.pending = {MakeJob(1, 4, 2)};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.binds.size(), 1u);
  const auto& tasks = d.binds[0].tasks;
  ASSERT_EQ(tasks.size(), 2u);
  EXPECT_EQ(tasks[0].node, 1);  // the only node with two whole islands free
  EXPECT_EQ(tasks[1].node, 1);
  EXPECT_THAT(tasks[0].numa_nodes, ElementsAre(0));
  EXPECT_THAT(tasks[1].numa_nodes, ElementsAre(1));
}

// Same-rack wish: capacity exists but only split over racks, so the job waits
// with a topology reason.
TEST(ScenarioTest, SameRackGangWaitsWhenNoRackHasRoom) {
  Snapshot s;
  s.nodes = {MakeNode("a0", "nvidia", "A100", 8, 1, {"rack-a"}), MakeNode("b0", "nvidia", "A100", 8, 1, {"rack-b"})};
  Job j = MakeJob(1, 8, 2);
  j.groups[0].affinity = Affinity::kSameRack;
  s.pending = {j};
  Decisions d = RunPass(s);
  EXPECT_TRUE(d.binds.empty());
  EXPECT_EQ(FindWait(d, 1)->kind, WaitKind::kTopology);
  EXPECT_THAT(FindWait(d, 1)->reason, HasSubstr("in one rack"));
}

// An elastic job starts with fewer replicas than it wants, never fewer than min_available.
TEST(ScenarioTest, ElasticJobStartsWithAtLeastMinAvailable) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 3)};
  Job j = MakeJob(1, 1, 4);
  j.groups[0].min_available = 2;
  s.pending = {j};
  Decisions d = RunPass(s);
  ASSERT_EQ(d.binds.size(), 1u);
  EXPECT_EQ(d.binds[0].tasks.size(), 3u);
}

// A queue limit holds even when the cluster has room.
TEST(ScenarioTest, QueueLimitHolds) {
  Snapshot s;
  s.nodes = {MakeNode("node-0", "nvidia", "A100", 8)};
  s.queues = {Queue{.name = "small", .limit = {{"nvidia/A100", 4'000}}}};
  Job a = MakeJob(1, 4);
  a.queue = "small";
  Job b = MakeJob(2, 2);
  b.queue = "small";
  s.pending = {a, b};
  Decisions d = RunPass(s, {.order = "fifo"});
  ASSERT_EQ(d.binds.size(), 1u);
  EXPECT_EQ(FindWait(d, 2)->kind, WaitKind::kQuota);
  EXPECT_THAT(FindWait(d, 2)->reason, HasSubstr("queue 'small' would exceed its limit"));
}

// Heterogeneity-aware placement: two jobs, two types. Job 1 is 4x faster on
// H100 than on T4, job 2 only 1.1x. Each gets the type it gains most on.
TEST(ScenarioTest, HeterogeneityAwareGivesFastTypeToJobThatGainsMost) {
  Snapshot s;
  s.nodes = {MakeNode("h100", "nvidia", "H100", 1), MakeNode("t4", "nvidia", "T4", 1)};
  Job big_gain = MakeJob(1, 1);
  big_gain.groups[0].device_choices = {{"nvidia", "T4", 1.0}, {"nvidia", "H100", 4.0}};
  Job small_gain = MakeJob(2, 1);
  small_gain.groups[0].device_choices = {{"nvidia", "H100", 1.1}, {"nvidia", "T4", 1.0}};
  // The small-gain job comes first: a greedy "fastest type" policy would give it the H100.
  small_gain.submit_ms = 0;
  big_gain.submit_ms = 1;
  s.pending = {small_gain, big_gain};
  Decisions d = RunPass(s, {.order = "fifo"});
  ASSERT_EQ(d.binds.size(), 2u);
  EXPECT_EQ(FindBind(d, 1)->device_type, "nvidia/H100");
  EXPECT_EQ(FindBind(d, 2)->device_type, "nvidia/T4");
}

// Earliest finish (wait_for_faster_type): the H100 frees in 100 s; a job 4x
// faster there (1000 s on H100, 4000 s on the free T4) waits for it. A second
// such job gets no promise of the same H100 and starts on the T4 at once.
TEST(ScenarioTest, JobWaitsForAFasterTypeThatFreesSoon) {
  Snapshot s;
  s.now_ms = 1'000;
  s.nodes = {MakeNode("h100", "nvidia", "H100", 1), MakeNode("t4", "nvidia", "T4", 1)};
  Job busy = MakeJob(9, 1, 1, "nvidia", "H100");
  s.running = {MakeRunning(busy, 0, {0}, /*start_ms=*/0, /*estimate_ms=*/1'100)};
  auto job = [](int64_t id) {
    Job j = MakeJob(id, 1);
    j.groups[0].device_choices = {{"nvidia", "T4", 1.0}, {"nvidia", "H100", 4.0}};
    j.runtime_estimate_ms = 1'000'000;  // on the H100
    return j;
  };
  s.pending = {job(1), job(2)};
  Decisions eager = RunPass(s, {.order = "fifo", .preemption = false});
  EXPECT_EQ(eager.binds.size(), 2u - 1u);  // one T4: job 1 takes it at once
  Decisions patient = RunPass(s, {.order = "fifo", .wait_for_faster_type = true, .preemption = false});
  ASSERT_EQ(patient.binds.size(), 1u);
  EXPECT_EQ(patient.binds[0].job, JobId(2));
  EXPECT_EQ(patient.binds[0].device_type, "nvidia/T4");
  ASSERT_NE(FindWait(patient, 1), nullptr);
  EXPECT_THAT(FindWait(patient, 1)->reason, HasSubstr("waits for a nvidia/H100"));
}

// A gain below faster_type_min_gain is not worth the wait: 1.2x faster there.
TEST(ScenarioTest, SmallGainDoesNotWaitForAFasterType) {
  Snapshot s;
  s.now_ms = 1'000;
  s.nodes = {MakeNode("h100", "nvidia", "H100", 1), MakeNode("t4", "nvidia", "T4", 1)};
  s.running = {MakeRunning(MakeJob(9, 1, 1, "nvidia", "H100"), 0, {0}, 0, 1'100)};
  Job j = MakeJob(1, 1);
  j.groups[0].device_choices = {{"nvidia", "T4", 1.0}, {"nvidia", "H100", 1.2}};
  j.runtime_estimate_ms = 1'000'000;
  s.pending = {j};
  Decisions d = RunPass(s, {.order = "fifo", .wait_for_faster_type = true, .preemption = false});
  ASSERT_EQ(d.binds.size(), 1u);
  EXPECT_EQ(d.binds[0].device_type, "nvidia/T4");
}

// Upgrade migration: a job running on a T4, 4x faster on the H100 that just
// freed, moves there (nothing waits for it); with the option off it stays.
Snapshot JobOnT4WithFreeH100(int64_t estimate_ms) {
  Snapshot s;
  s.now_ms = 1'000;
  s.nodes = {MakeNode("h100", "nvidia", "H100", 1), MakeNode("t4", "nvidia", "T4", 1)};
  Job j = MakeJob(7, 1);
  j.groups[0].device_choices = {{"nvidia", "T4", 1.0}, {"nvidia", "H100", 4.0}};
  s.running = {MakeRunning(j, 1, {0}, /*start_ms=*/0, estimate_ms)};
  return s;
}

TEST(ScenarioTest, RunningJobMovesToAFasterFreeType) {
  const Snapshot s = JobOnT4WithFreeH100(/*estimate_ms=*/3'600'000);
  Decisions off = RunPass(s, {.order = "fifo", .preemption = false});
  EXPECT_TRUE(off.migrations.empty());
  Decisions on = RunPass(s, {.order = "fifo", .migrate_to_faster_type = true, .preemption = false});
  ASSERT_EQ(on.migrations.size(), 1u);
  const MigrateDecision& m = on.migrations[0];
  EXPECT_EQ(m.job, JobId(7));
  EXPECT_EQ(m.from_type, "nvidia/T4");
  EXPECT_EQ(m.device_type, "nvidia/H100");
  ASSERT_EQ(m.tasks.size(), 1u);
  EXPECT_EQ(m.tasks[0].node, 0);
  // 3,599 s left on the T4; ~900 s + 30 s restore on the H100: ~44 min sooner.
  EXPECT_THAT(m.reason, HasSubstr("44 min sooner"));
}

// Not worth it: the job ends in 35 s, and moving costs 30 s of restore.
TEST(ScenarioTest, JobAboutToEndDoesNotMove) {
  const Snapshot s = JobOnT4WithFreeH100(/*estimate_ms=*/36'000);
  Decisions d = RunPass(s, {.order = "fifo", .migrate_to_faster_type = true, .preemption = false});
  EXPECT_TRUE(d.migrations.empty());
}

// A waiting job gets the free H100 first; migration takes only what is left.
TEST(ScenarioTest, WaitingJobsComeBeforeMigration) {
  Snapshot s = JobOnT4WithFreeH100(/*estimate_ms=*/3'600'000);
  Job waiting = MakeJob(8, 1, 1, "nvidia", "H100");
  s.pending = {waiting};
  Decisions d = RunPass(s, {.order = "fifo", .migrate_to_faster_type = true, .preemption = false});
  ASSERT_EQ(d.binds.size(), 1u);
  EXPECT_EQ(d.binds[0].job, JobId(8));
  EXPECT_TRUE(d.migrations.empty());
}

// Without an estimate icos cannot tell whether moving pays off.
TEST(ScenarioTest, JobWithoutEstimateDoesNotMove) {
  const Snapshot s = JobOnT4WithFreeH100(/*estimate_ms=*/0);
  Decisions d = RunPass(s, {.order = "fifo", .migrate_to_faster_type = true, .preemption = false});
  EXPECT_TRUE(d.migrations.empty());
}

// SRTF: a one-hour job preempts a job with ten hours left on the only GPU, but
// not one with 1.5 hours left (under the 2x margin); plain SJF never preempts.
Snapshot OneGpuBusyFor(int64_t left_ms) {
  Snapshot s;
  s.now_ms = 1'000;
  s.nodes = {MakeNode("n0", "nvidia", "A100", 1)};
  s.running = {MakeRunning(MakeJob(9, 1), 0, {0}, /*start_ms=*/0, /*estimate_ms=*/1'000 + left_ms)};
  Job short_job = MakeJob(1, 1);
  short_job.runtime_estimate_ms = 3'600'000;
  s.pending = {short_job};
  return s;
}

TEST(ScenarioTest, SrtfPreemptsAJobWithMuchLongerLeft) {
  Decisions d = RunPass(OneGpuBusyFor(36'000'000), {.order = "srtf"});
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].victim, JobId(9));
  EXPECT_THAT(d.preemptions[0].reason, HasSubstr("expected to end sooner (60 min against about 600 min left)"));
  ASSERT_EQ(d.binds.size(), 1u);
  EXPECT_EQ(d.binds[0].job, JobId(1));
  EXPECT_TRUE(RunPass(OneGpuBusyFor(36'000'000), {.order = "sjf"}).preemptions.empty());
}

TEST(ScenarioTest, SrtfKeepsAJobWithSimilarTimeLeft) {
  Decisions d = RunPass(OneGpuBusyFor(5'400'000), {.order = "srtf"});
  EXPECT_TRUE(d.preemptions.empty());
  EXPECT_TRUE(d.binds.empty());
}

// On a slow device type both jobs are slow: a victim with 10 h left on a
// T4 (a quarter of the H100's pace for either job) is not "much longer" than a
// job that needs 3 h on an H100, i.e. 12 h on that T4. Comparing the victim's
// T4 hours with the job's H100 hours made the two swap the T4 on every pass.
TEST(ScenarioTest, SrtfComparesBothJobsOnTheVictimsDeviceType) {
  auto busy_t4 = [](int64_t job_ms) {
    Snapshot s = OneGpuBusyFor(36'000'000);
    s.nodes = {MakeNode("n0", "nvidia", "T4", 1), MakeNode("n1", "nvidia", "H100", 1)};
    s.running[0].job.groups[0].device_choices = {{"nvidia", "T4", 1.0}, {"nvidia", "H100", 4.0}};
    Job on_h100 = MakeJob(8, 1);  // the H100 is taken by a job that may not be preempted
    on_h100.preemptible = false;
    s.running.push_back(MakeRunning(on_h100, 1, {0}, /*start_ms=*/0, /*estimate_ms=*/36'000'000));
    s.pending[0].runtime_estimate_ms = job_ms;
    s.pending[0].groups[0].device_choices = {{"nvidia", "T4", 1.0}, {"nvidia", "H100", 4.0}};
    return s;
  };
  EXPECT_TRUE(RunPass(busy_t4(3 * 3'600'000), {.order = "srtf"}).preemptions.empty());
  // Much shorter even at the T4's pace (4 h there): preempted.
  Decisions d = RunPass(busy_t4(3'600'000), {.order = "srtf"});
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].victim, JobId(9));
}

// Past its estimate a job is expected to need as long again as it has run:
// 3 hours run, estimate long gone, so about 180 min left.
TEST(ScenarioTest, SrtfGuessesAnOverdueJobNeedsAsLongAgain) {
  Snapshot s = OneGpuBusyFor(0);
  s.now_ms = 3 * 3'600'000;
  Decisions d = RunPass(s, {.order = "srtf"});
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_THAT(d.preemptions[0].reason, HasSubstr("about 180 min left"));
}

// Gittins: a job far past its estimate (1 h, run 10 h) is unlikely to end
// soon, so a fresh one-hour job preempts it; a fresh job with the same
// estimate is kept (their ranks are alike).
Snapshot OneGpuRunningWithEstimate(int64_t estimate_ms, int64_t run_ms) {
  Snapshot s;
  s.now_ms = run_ms;
  s.nodes = {MakeNode("n0", "nvidia", "A100", 1)};
  s.running = {MakeRunning(MakeJob(9, 1), 0, {0}, /*start_ms=*/0, estimate_ms)};
  s.running[0].job.runtime_log_sd = 1.0;
  s.running[0].job.attained_device_s = run_ms / 1000.0;
  Job waiting = MakeJob(1, 1);
  waiting.runtime_estimate_ms = 3'600'000;
  waiting.runtime_log_sd = 1.0;
  waiting.submit_ms = run_ms;
  s.pending = {waiting};
  return s;
}

TEST(ScenarioTest, GittinsPreemptsAJobFarPastItsEstimate) {
  Decisions d = RunPass(OneGpuRunningWithEstimate(3'600'000, 36'000'000), {.order = "gittins"});
  ASSERT_EQ(d.preemptions.size(), 1u);
  EXPECT_EQ(d.preemptions[0].victim, JobId(9));
  EXPECT_THAT(d.preemptions[0].reason, HasSubstr("is more likely to end soon (Gittins rank"));
  ASSERT_EQ(d.binds.size(), 1u);
  EXPECT_EQ(d.binds[0].job, JobId(1));
}

TEST(ScenarioTest, GittinsKeepsAJobWithASimilarRank) {
  Decisions d = RunPass(OneGpuRunningWithEstimate(3'600'000, 60'000), {.order = "gittins"});
  EXPECT_TRUE(d.preemptions.empty());
  EXPECT_TRUE(d.binds.empty());
}

TEST(ScenarioTest, ANegativeOrNonFiniteEstimateSpreadIsInvalid) {
  for (double bad : {-1.0, std::numeric_limits<double>::infinity(), std::nan("")}) {
    Snapshot s = OneGpuRunningWithEstimate(3'600'000, 60'000);
    s.pending[0].runtime_log_sd = bad;
    Decisions d = RunPass(s, {.order = "gittins"});
    ASSERT_EQ(d.waiting.size(), 1u);
    EXPECT_EQ(d.waiting[0].kind, WaitKind::kInvalid);
    EXPECT_THAT(d.waiting[0].reason, HasSubstr("runtime_log_sd"));
  }
}

}  // namespace
}  // namespace icos::core
