#include "core/policy/order.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <optional>
#include <string>
#include <vector>

#include "core/testing/builders.h"
#include "sim/synthetic.h"

namespace icos::core {
namespace {

Job MakeJob(int64_t id, int64_t submit_ms, int32_t priority = 0, const std::string& queue = "",
            double attained_device_s = 0.0, int32_t devices = 1) {
  Job j;
  j.id = JobId(id);
  j.submit_ms = submit_ms;
  j.priority = priority;
  j.queue = queue;
  j.attained_device_s = attained_device_s;
  TaskGroup g;
  g.name = "worker";
  g.request.devices = devices;
  g.request.cpu_milli = 1'000;
  j.groups.push_back(g);
  return j;
}

using builders::Q;

// Order of a policy that only looks at the snapshot.
std::vector<int32_t> OrderOf(const OrderPolicy& policy, const std::vector<Job>& jobs) {
  Snapshot snap;
  snap.pending = jobs;
  OrderInput in;
  in.snapshot = &snap;
  return policy.Order(in);
}

// --- FIFO ----------------------------------------------------------------------

TEST(FifoOrderTest, OrdersBySubmitTime) {
  FifoOrder fifo;
  // Submitted at 30, 10, 20.
  EXPECT_EQ(OrderOf(fifo, {MakeJob(1, 30), MakeJob(2, 10), MakeJob(3, 20)}), (std::vector<int32_t>{1, 2, 0}));
}

TEST(FifoOrderTest, BreaksTiesByJobId) {
  FifoOrder fifo;
  EXPECT_EQ(OrderOf(fifo, {MakeJob(9, 10), MakeJob(4, 10), MakeJob(7, 10)}), (std::vector<int32_t>{1, 2, 0}));
}

TEST(FifoOrderTest, IgnoresPriority) {
  FifoOrder fifo;
  EXPECT_EQ(OrderOf(fifo, {MakeJob(1, 10, 0), MakeJob(2, 20, 100)}), (std::vector<int32_t>{0, 1}));
}

TEST(FifoOrderTest, EmptyQueueGivesEmptyOrder) {
  FifoOrder fifo;
  EXPECT_TRUE(OrderOf(fifo, {}).empty());
}

// --- Priority --------------------------------------------------------------------

TEST(PriorityOrderTest, RunsHigherPriorityFirst) {
  PriorityOrder prio;
  EXPECT_EQ(OrderOf(prio, {MakeJob(1, 10, 0), MakeJob(2, 20, 2), MakeJob(3, 30, 1)}), (std::vector<int32_t>{1, 2, 0}));
}

TEST(PriorityOrderTest, IsFifoAmongEqualPriorities) {
  PriorityOrder prio;
  // Priority 5: indices 0 (t=30), 2 (t=10, id 3) and 3 (t=10, id 0); priority 1:
  // index 1. The t=10 tie goes to the lower id: 3 before 2.
  EXPECT_EQ(OrderOf(prio, {MakeJob(1, 30, 5), MakeJob(2, 5, 1), MakeJob(3, 10, 5), MakeJob(0, 10, 5)}),
            (std::vector<int32_t>{3, 2, 0, 1}));
}

TEST(PriorityOrderTest, NegativePriorityGoesAfterZero) {
  PriorityOrder prio;
  EXPECT_EQ(OrderOf(prio, {MakeJob(1, 10, -1), MakeJob(2, 20, 0)}), (std::vector<int32_t>{1, 0}));
}

// --- LAS (Tiresias) ----------------------------------------------------------------

TEST(LasOrderTest, DefaultLevelBoundaries) {
  LasOrder las;
  // Thresholds 3600 and 36000 device-seconds: levels [0,3600), [3600,36000), [36000,inf).
  EXPECT_EQ(las.Level(0), 0);
  EXPECT_EQ(las.Level(3'599.9), 0);
  EXPECT_EQ(las.Level(3'600), 1);
  EXPECT_EQ(las.Level(35'999), 1);
  EXPECT_EQ(las.Level(36'000), 2);
  EXPECT_EQ(las.Level(1e12), 2);
}

TEST(LasOrderTest, CustomLevelBoundaries) {
  LasOrder las({10.0, 20.0, 30.0});
  EXPECT_EQ(las.Level(9.99), 0);
  EXPECT_EQ(las.Level(10), 1);
  EXPECT_EQ(las.Level(25), 2);
  EXPECT_EQ(las.Level(30), 3);
  EXPECT_EQ(LasOrder(std::vector<double>{}).Level(1e9), 0);
}

TEST(LasOrderTest, RunsLeastAttainedLevelFirst) {
  LasOrder las;
  // Job 0 came first but has 5000 s (level 1); job 1 has 100 s (level 0).
  EXPECT_EQ(OrderOf(las, {MakeJob(1, 10, 0, "", 5'000), MakeJob(2, 20, 0, "", 100)}), (std::vector<int32_t>{1, 0}));
}

TEST(LasOrderTest, IsFifoWithinALevel) {
  LasOrder las;
  // 3000 s and 10 s are both level 0: the earlier job goes first despite more service.
  EXPECT_EQ(OrderOf(las, {MakeJob(1, 10, 0, "", 3'000), MakeJob(2, 20, 0, "", 10)}), (std::vector<int32_t>{0, 1}));
}

TEST(LasOrderTest, PriorityDominatesLevel) {
  LasOrder las;
  EXPECT_EQ(OrderOf(las, {MakeJob(1, 10, 0, "", 0), MakeJob(2, 20, 1, "", 1e6)}), (std::vector<int32_t>{1, 0}));
}

TEST(LasOrderTest, OrdersThreeLevels) {
  LasOrder las;
  // Levels 2, 0, 1 submitted in that order -> 1, 2, 0.
  EXPECT_EQ(OrderOf(las, {MakeJob(1, 1, 0, "", 50'000), MakeJob(2, 2, 0, "", 0), MakeJob(3, 3, 0, "", 4'000)}),
            (std::vector<int32_t>{1, 2, 0}));
}

// --- DRF -------------------------------------------------------------------------

// One node with 8 A100s (capacity: 8000 milli-devices) and a queue tree. Each
// job's demand is its devices with the type left open, as the scheduler does.
class DrfOrderTest : public ::testing::Test {
 protected:
  DrfOrderTest() {
    Node n;
    n.name = "n0";
    n.cpu_milli = 1'000'000;  // CPU never dominates here
    n.memory_mib = 1'000'000;
    for (int i = 0; i < 8; ++i) {
      Device d;
      d.vendor = "nvidia";
      d.model = "A100";
      d.memory_mib = 80'000;
      n.devices.push_back(d);
    }
    nodes_.push_back(n);
    cluster_.emplace(*ClusterState::Build(nodes_));
  }

  void SetQueues(const std::vector<Queue>& queues) {
    absl::StatusOr<QuotaTracker> qt = QuotaTracker::Build(queues, *cluster_);
    ASSERT_TRUE(qt.ok()) << qt.status();
    quota_.emplace(*std::move(qt));
  }

  std::vector<int32_t> Order(const std::vector<Job>& jobs) {
    snap_.pending = jobs;
    in_ = OrderInput();
    in_.snapshot = &snap_;
    in_.quota = &*quota_;
    in_.capacity = quota_->Capacity(*cluster_);
    for (const Job& j : jobs) {
      in_.queue_of.push_back(quota_->Find(j.queue));
      QuotaDelta d;
      for (const TaskGroup& g : j.groups) d.device_milli += int64_t{1'000} * g.request.devices * g.replicas;
      in_.demand.push_back(d);
    }
    return DrfOrder().Order(in_);
  }

  // The queue of each job in `order`.
  std::vector<std::string> Queues(const std::vector<int32_t>& order) const {
    std::vector<std::string> out;
    for (int32_t i : order) out.push_back(snap_.pending[i].queue);
    return out;
  }

  std::vector<Node> nodes_;
  std::optional<ClusterState> cluster_;
  std::optional<QuotaTracker> quota_;
  Snapshot snap_;
  OrderInput in_;
};

// `count` one-device jobs of `queue` with ids from `first_id`, submitted in id order.
void AddJobs(std::vector<Job>& jobs, const std::string& queue, int64_t first_id, int count) {
  for (int i = 0; i < count; ++i) jobs.push_back(MakeJob(first_id + i, first_id + i, 0, queue));
}

TEST_F(DrfOrderTest, EqualWeightsAlternate) {
  SetQueues({Q("a"), Q("b")});
  std::vector<Job> jobs;
  AddJobs(jobs, "a", 1, 3);   // indices 0..2
  AddJobs(jobs, "b", 10, 3);  // indices 3..5
  // Shares start equal (a wins the tie as the lower queue index); after each
  // job the queue that just got one is 1/8 ahead, so the other goes next.
  EXPECT_EQ(Order(jobs), (std::vector<int32_t>{0, 3, 1, 4, 2, 5}));
}

TEST_F(DrfOrderTest, DoubleWeightGetsTwiceTheJobsEarly) {
  SetQueues({Q("a", "", 2.0), Q("b", "", 1.0)});
  std::vector<Job> jobs;
  AddJobs(jobs, "a", 1, 4);   // indices 0..3
  AddJobs(jobs, "b", 10, 4);  // indices 4..7
  // Weighted share: a = n_a/8/2, b = n_b/8 (in units of 1/16: a = n_a, b = 2 n_b).
  //   a=0 b=0 tie -> a | a=1 b=0 -> b | a=1 b=2 -> a | a=2 b=2 tie -> a |
  //   a=3 b=2 -> b | a=3 b=4 -> a (a done) | b | b
  EXPECT_EQ(Queues(Order(jobs)), (std::vector<std::string>{"a", "b", "a", "a", "b", "a", "b", "b"}));
  // In the first 6 picks a got 4 and b 2: twice as many.
  const auto q = Queues(Order(jobs));
  EXPECT_EQ(std::count(q.begin(), q.begin() + 6, "a"), 4);
  EXPECT_EQ(std::count(q.begin(), q.begin() + 6, "b"), 2);
}

TEST_F(DrfOrderTest, AccountsForJobSize) {
  SetQueues({Q("a"), Q("b")});
  std::vector<Job> jobs = {MakeJob(1, 1, 0, "a", 0, 4), MakeJob(2, 2, 0, "a", 0, 4)};  // 4 devices each
  AddJobs(jobs, "b", 10, 5);                                                           // 1 device each
  // a0 first (tie at 0) -> a = 4/8 = 0.5. b takes jobs while below 0.5: at 0,
  // 1/8, 2/8, 3/8 -> four b jobs; at 4/8 = 0.5 it ties with a, which wins as
  // the lower index; then b's last job.
  EXPECT_EQ(Order(jobs), (std::vector<int32_t>{0, 2, 3, 4, 5, 1, 6}));
}

TEST_F(DrfOrderTest, RunningUsageCountsAgainstQueue) {
  SetQueues({Q("a"), Q("b")});
  quota_->Apply(
      quota_->Find("a"),
      [] {
        QuotaDelta d;
        d.device_milli = 4'000;
        return d;
      }(),
      +1);
  std::vector<Job> jobs;
  AddJobs(jobs, "a", 1, 2);   // indices 0, 1
  AddJobs(jobs, "b", 10, 2);  // indices 2, 3
  // a already holds 4/8 = 0.5; b's two jobs bring it to only 2/8.
  EXPECT_EQ(Order(jobs), (std::vector<int32_t>{2, 3, 0, 1}));
}

TEST_F(DrfOrderTest, HierarchicalSplitsParentsFirstThenChildren) {
  // p1 has children c1 and c2; p2 is a leaf. All weights 1.
  SetQueues({Q("p1"), Q("c1", "p1"), Q("c2", "p1"), Q("p2")});
  std::vector<Job> jobs;
  AddJobs(jobs, "c1", 1, 2);   // indices 0, 1
  AddJobs(jobs, "c2", 10, 2);  // indices 2, 3
  AddJobs(jobs, "p2", 20, 4);  // indices 4..7
  // At the top p1 and p2 alternate (p1 wins ties, lower index); inside p1, c1
  // and c2 alternate. A flat DRF over the leaves c1, c2, p2 would give p2 only
  // every third job; here it gets every second.
  EXPECT_EQ(Queues(Order(jobs)), (std::vector<std::string>{"c1", "p2", "c2", "p2", "c1", "p2", "c2", "p2"}));
  EXPECT_EQ(Order(jobs), (std::vector<int32_t>{0, 4, 2, 5, 1, 6, 3, 7}));
}

TEST_F(DrfOrderTest, ServesPriorityThenFifoInsideAQueue) {
  SetQueues({Q("a")});
  std::vector<Job> jobs = {MakeJob(1, 10, 0, "a"), MakeJob(2, 20, 5, "a"), MakeJob(3, 5, 0, "a")};
  // Priority 5 first, then the t=5 job, then t=10.
  EXPECT_EQ(Order(jobs), (std::vector<int32_t>{1, 2, 0}));
}

TEST_F(DrfOrderTest, JobsOfUnknownQueueGoLast) {
  SetQueues({Q("a"), Q("b")});
  std::vector<Job> jobs = {MakeJob(1, 1, 9, "ghost"), MakeJob(2, 2, 0, "a"), MakeJob(3, 3, 9, "ghost"),
                           MakeJob(4, 4, 0, "b")};
  // Known queues first (a then b), then the unknown-queue jobs in input order,
  // whatever their priority.
  EXPECT_EQ(Order(jobs), (std::vector<int32_t>{1, 3, 0, 2}));
}

TEST_F(DrfOrderTest, JobWithoutQueueGoesToDefault) {
  SetQueues({Q("a")});
  std::vector<Job> jobs = {MakeJob(1, 1, 0, "a"), MakeJob(2, 2, 0, "a"), MakeJob(3, 3, 0, "")};
  // The implicit default queue is a root like a: a, default, a.
  EXPECT_EQ(Order(jobs), (std::vector<int32_t>{0, 2, 1}));
}

TEST_F(DrfOrderTest, DoesNotChangeTheQuotaTracker) {
  SetQueues({Q("a")});
  std::vector<Job> jobs;
  AddJobs(jobs, "a", 1, 3);
  Order(jobs);
  EXPECT_EQ(quota_->DominantShare(quota_->Find("a"), in_.capacity), 0.0);
}

// --- SJF -------------------------------------------------------------------------

Job WithEstimate(Job j, int64_t estimate_ms) {
  j.runtime_estimate_ms = estimate_ms;
  return j;
}

TEST(SjfOrderTest, RunsShortestEstimateFirst) {
  SjfOrder sjf;
  // Estimates 300, 100, 200 ms: indices 1, 2, 0.
  EXPECT_EQ(OrderOf(sjf, {WithEstimate(MakeJob(1, 10), 300), WithEstimate(MakeJob(2, 20), 100),
                          WithEstimate(MakeJob(3, 30), 200)}),
            (std::vector<int32_t>{1, 2, 0}));
}

TEST(SjfOrderTest, UnknownEstimatesGoLast) {
  SjfOrder sjf;
  // Index 0 has no estimate although it came first; index 1's long estimate still wins.
  EXPECT_EQ(OrderOf(sjf, {WithEstimate(MakeJob(1, 10), 0), WithEstimate(MakeJob(2, 20), 1'000'000)}),
            (std::vector<int32_t>{1, 0}));
}

TEST(SjfOrderTest, IsFifoAmongEqualEstimates) {
  SjfOrder sjf;
  // All 500 ms: submit 30, 10, 10 (ids 5 and 4): the t=10 tie goes to id 4.
  EXPECT_EQ(OrderOf(sjf, {WithEstimate(MakeJob(1, 30), 500), WithEstimate(MakeJob(5, 10), 500),
                          WithEstimate(MakeJob(4, 10), 500)}),
            (std::vector<int32_t>{2, 1, 0}));
}

TEST(SjfOrderTest, UnknownEstimatesAreFifoAmongThemselves) {
  SjfOrder sjf;
  EXPECT_EQ(OrderOf(sjf, {WithEstimate(MakeJob(1, 20), 0), WithEstimate(MakeJob(2, 10), 0)}),
            (std::vector<int32_t>{1, 0}));
}

TEST(SjfOrderTest, IgnoresPriority) {
  SjfOrder sjf;
  EXPECT_EQ(OrderOf(sjf, {WithEstimate(MakeJob(1, 10, 9), 200), WithEstimate(MakeJob(2, 20, 0), 100)}),
            (std::vector<int32_t>{1, 0}));
}

// --- all policies -------------------------------------------------------------------

TEST(OrderPolicyTest, EveryPolicyReturnsEachIndexExactlyOnce) {
  sim::ClusterSpec cspec;
  cspec.nodes = 8;
  std::vector<Node> nodes = sim::MakeCluster(cspec);
  ClusterState cluster = *ClusterState::Build(nodes);
  QuotaTracker quota = *QuotaTracker::Build({Q("a"), Q("b", "", 2.0), Q("b1", "b"), Q("b2", "b")}, cluster);
  sim::WorkloadSpec wspec;
  wspec.jobs = 300;
  wspec.queues = {"a", "b", "b1", "b2", "default", "ghost"};
  Snapshot snap;
  snap.pending = sim::MakeJobs(cspec, wspec);
  // Some ties on submit time and a spread of attained service.
  for (size_t i = 0; i < snap.pending.size(); ++i) {
    snap.pending[i].submit_ms = static_cast<int64_t>(i / 3);
    snap.pending[i].attained_device_s = static_cast<double>((i * 7'919) % 50'000);
  }
  OrderInput in;
  in.snapshot = &snap;
  in.quota = &quota;
  in.capacity = quota.Capacity(cluster);
  for (const Job& j : snap.pending) {
    in.queue_of.push_back(quota.Find(j.queue));
    QuotaDelta d;
    for (const TaskGroup& g : j.groups) d.device_milli += int64_t{1'000} * g.request.devices * g.replicas;
    in.demand.push_back(d);
  }
  std::vector<int32_t> all(snap.pending.size());
  std::iota(all.begin(), all.end(), 0);
  for (const char* name : {"fifo", "priority", "drf", "las", "sjf", "gittins"}) {
    auto policy = MakeOrderPolicy(name);
    ASSERT_TRUE(policy.ok()) << name;
    const std::vector<int32_t> order = (*policy)->Order(in);
    std::vector<int32_t> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(sorted, all) << name;
    // Deterministic: the same input gives the same order.
    EXPECT_EQ((*policy)->Order(in), order) << name;
  }
}

// --- Gittins ---------------------------------------------------------------------

// z of an age (as a share of the median) under spread s.
double Z(double age, double s) { return std::log(age) / s; }

TEST(GittinsOrderTest, APreciseEstimateRanksByTimeLeft) {
  // Spread 0.05: the job ends within a few per cent of its estimate, so its
  // rank is about the time left (SRTF).
  EXPECT_NEAR(GittinsOrder::NormalizedRank(-100, 0.05), 1.0, 0.05);
  EXPECT_NEAR(GittinsOrder::NormalizedRank(Z(0.5, 0.05), 0.05), 0.5, 0.05);
  EXPECT_NEAR(GittinsOrder::NormalizedRank(Z(0.9, 0.05), 0.05), 0.1, 0.05);
}

TEST(GittinsOrderTest, AFreshJobRanksBelowItsMeanRunTime) {
  // Log-normal, median 1, spread 1: mean exp(0.5). Running it for a while
  // first (and stopping if it has not ended) is worth more per unit of time
  // than running it to the end, so the rank is below the mean.
  const double fresh = GittinsOrder::NormalizedRank(-100, 1.0);
  EXPECT_GT(fresh, 0.1);
  EXPECT_LT(fresh, std::exp(0.5));
}

TEST(GittinsOrderTest, AnOverdueJobLosesRank) {
  // Past its median and then far past it, ever less likely to end soon.
  const double fresh = GittinsOrder::NormalizedRank(-100, 1.0);
  const double past = GittinsOrder::NormalizedRank(Z(3.0, 1.0), 1.0);
  const double far_past = GittinsOrder::NormalizedRank(Z(20.0, 1.0), 1.0);
  EXPECT_GT(past, fresh);
  EXPECT_GT(far_past, past);
  EXPECT_GT(far_past, 3.0);  // a job run 20x its median needs a long time more
}

Job WithSpread(Job j, int64_t estimate_ms, double log_sd) {
  j.runtime_estimate_ms = estimate_ms;
  j.runtime_log_sd = log_sd;
  return j;
}

TEST(GittinsOrderTest, RanksFreshShortJobsFirstAndOverdueOnesAfter) {
  GittinsOrder gittins;
  const int64_t hour = 3'600'000;
  // 0: fresh, estimate 2 h. 1: estimate 1 h, but it already ran 10 h
  // (preempted) and is far past it. 2: fresh, estimate 1 h. 3: no estimate.
  const std::vector<Job> jobs = {WithSpread(MakeJob(1, 10), 2 * hour, 1.0),
                                 WithSpread(MakeJob(2, 20, 0, "", 36'000.0), hour, 1.0),
                                 WithSpread(MakeJob(3, 30), hour, 1.0), MakeJob(4, 5)};
  EXPECT_EQ(OrderOf(gittins, jobs), (std::vector<int32_t>{2, 0, 1, 3}));
  EXPECT_TRUE(std::isinf(gittins.RankMs(jobs[3], 0)));
}

TEST(GittinsOrderTest, RunTimeSoFarIsPerDevice) {
  // 4 devices, 8 device-hours: it has run 2 hours.
  EXPECT_DOUBLE_EQ(RunSoFarMs(MakeJob(1, 0, 0, "", 8 * 3'600.0, 4)), 2 * 3'600'000.0);
}

TEST(GittinsOrderTest, AJobWithoutSpreadGetsTheDefault) {
  GittinsOrder gittins(/*default_log_sd=*/1.0);
  const Job unknown = WithSpread(MakeJob(1, 0), 3'600'000, 0.0);
  const Job one = WithSpread(MakeJob(1, 0), 3'600'000, 1.0);
  const Job tight = WithSpread(MakeJob(1, 0), 3'600'000, 0.1);
  EXPECT_DOUBLE_EQ(gittins.RankMs(unknown, 1'000), gittins.RankMs(one, 1'000));
  EXPECT_NE(gittins.RankMs(tight, 1'000), gittins.RankMs(one, 1'000));
  // The table agrees with the direct computation.
  EXPECT_NEAR(gittins.RankMs(one, 7'200'000) / 3'600'000, GittinsOrder::NormalizedRank(Z(2.0, 1.0), 1.0), 1e-3);
}

TEST(GittinsOrderTest, HigherPriorityFirst) {
  GittinsOrder gittins;
  const std::vector<Job> jobs = {WithEstimate(MakeJob(1, 10), 60'000), WithEstimate(MakeJob(2, 20, 5), 36'000'000)};
  EXPECT_EQ(OrderOf(gittins, jobs), (std::vector<int32_t>{1, 0}));
}

TEST(OrderPolicyTest, MakeOrderPolicyKnowsEveryName) {
  for (const char* name : {"fifo", "priority", "drf", "las", "sjf", "srtf", "gittins"}) {
    auto policy = MakeOrderPolicy(name);
    ASSERT_TRUE(policy.ok()) << name << ": " << policy.status();
    EXPECT_EQ((*policy)->name(), name);
  }
}

TEST(OrderPolicyTest, TiresiasIsAnAliasForLas) {
  auto policy = MakeOrderPolicy("tiresias");
  ASSERT_TRUE(policy.ok()) << policy.status();
  EXPECT_EQ((*policy)->name(), "las");
}

TEST(OrderPolicyTest, LasTakesCustomLevelBoundaries) {
  auto policy = MakeOrderPolicy("las", {100.0, 200.0, 400.0});
  ASSERT_TRUE(policy.ok()) << policy.status();
  const auto* las = dynamic_cast<const LasOrder*>(policy->get());
  ASSERT_NE(las, nullptr);
  EXPECT_EQ(las->Level(99), 0);
  EXPECT_EQ(las->Level(250), 2);
  EXPECT_EQ(las->Level(400), 3);
}

TEST(OrderPolicyTest, LasRejectsUnorderedOrNonPositiveBoundaries) {
  for (const std::vector<double>& bad : {std::vector<double>{200.0, 100.0}, {0.0, 10.0}, {10.0, 10.0}}) {
    auto policy = MakeOrderPolicy("las", bad);
    ASSERT_FALSE(policy.ok());
    EXPECT_NE(std::string(policy.status().message()).find("ascending"), std::string::npos);
  }
}

TEST(OrderPolicyTest, MakeOrderPolicyRejectsUnknownName) {
  auto policy = MakeOrderPolicy("lottery");
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(policy.status().message());
  EXPECT_NE(msg.find("'lottery'"), std::string::npos) << msg;
  for (const char* known : {"fifo", "priority", "drf", "las", "sjf", "srtf", "gittins"}) {
    EXPECT_NE(msg.find(known), std::string::npos) << msg << " lacks " << known;
  }
}

}  // namespace
}  // namespace icos::core
