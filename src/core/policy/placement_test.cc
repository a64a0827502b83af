#include "core/policy/placement.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"

namespace icos::core {
namespace {

constexpr int64_t kDeviceMemory = 80'000;

Node MakeNode(const std::string& name, int32_t devices, int64_t cpu_milli = 64'000) {
  Node n;
  n.name = name;
  n.cpu_milli = cpu_milli;
  n.memory_mib = 512'000;
  for (int32_t i = 0; i < devices; ++i) {
    Device d;
    d.vendor = "nvidia";
    d.model = "A100";
    d.memory_mib = kDeviceMemory;
    n.devices.push_back(d);
  }
  return n;
}

ClusterState MustBuild(const std::vector<Node>& nodes) {
  absl::StatusOr<ClusterState> st = ClusterState::Build(nodes);
  EXPECT_TRUE(st.ok()) << st.status();
  return *std::move(st);
}

TaskPlacement Whole(int32_t node, std::vector<int32_t> devs, int64_t cpu_milli = 0) {
  TaskPlacement p;
  p.node = node;
  p.cpu_milli = cpu_milli;
  for (int32_t d : devs) p.devices.push_back({d, kWholeDevicePercent, kDeviceMemory});
  return p;
}

TaskPlacement Share(int32_t node, int32_t device, int32_t percent, int64_t memory_mib) {
  TaskPlacement p;
  p.node = node;
  p.devices.push_back({device, percent, memory_mib});
  return p;
}

TaskRequest WholeRequest(int32_t devices, int64_t cpu_milli) {
  TaskRequest r;
  r.devices = devices;
  r.cpu_milli = cpu_milli;
  return r;
}

TaskRequest ShareRequest(int32_t percent, int64_t memory_mib) {
  TaskRequest r;
  r.device_percent = percent;
  r.device_memory_mib = memory_mib;
  return r;
}

TaskShape WholeShape(int32_t devices, double weight, int64_t cpu_milli = 0) {
  TaskShape s;
  s.devices = devices;
  s.cpu_milli = cpu_milli;
  s.weight = weight;
  return s;
}

TaskShape ShareShape(int32_t percent, double weight, int64_t cpu_milli = 0) {
  TaskShape s;
  s.device_percent = percent;
  s.cpu_milli = cpu_milli;
  s.weight = weight;
  return s;
}

// Two nodes of 8 A100s; node 0 already runs 6 of them, node 1 is empty.
class ScorerTest : public ::testing::Test {
 protected:
  ScorerTest() : nodes_({MakeNode("busy", 8), MakeNode("idle", 8)}), st_(MustBuild(nodes_)) {
    st_.Allocate(Whole(0, {0, 1, 2, 3, 4, 5}));
  }
  std::vector<Node> nodes_;
  ClusterState st_;
};

// --- binpack / spread -------------------------------------------------------

TEST_F(ScorerTest, BinpackPrefersTheFullerNode) {
  BinpackScorer binpack;
  const TaskRequest req = WholeRequest(1, 4'000);
  // busy: (2 free - 1) / 8 = 0.125 devices left, CPU (64000-4000)/64000 = 0.9375
  //       -> 0.125 + 0.01 * 0.9375 = 0.134375
  // idle: (8 - 1) / 8 = 0.875 -> 0.875 + 0.009375 = 0.884375
  const double busy = binpack.Score(st_, 0, 0, req, {6});
  const double idle = binpack.Score(st_, 1, 0, req, {0});
  EXPECT_NEAR(busy, 0.134375, 1e-12);
  EXPECT_NEAR(idle, 0.884375, 1e-12);
  EXPECT_LT(busy, idle);
}

TEST_F(ScorerTest, SpreadPrefersTheEmptierNode) {
  SpreadScorer spread;
  const TaskRequest req = WholeRequest(1, 4'000);
  // The binpack numbers, negated.
  const double busy = spread.Score(st_, 0, 0, req, {6});
  const double idle = spread.Score(st_, 1, 0, req, {0});
  EXPECT_NEAR(busy, -0.134375, 1e-12);
  EXPECT_NEAR(idle, -0.884375, 1e-12);
  EXPECT_LT(idle, busy);
}

TEST(BinpackScorerTest, FillsANodeExactly) {
  std::vector<Node> nodes = {MakeNode("a", 4), MakeNode("b", 8)};
  ClusterState st = MustBuild(nodes);
  BinpackScorer binpack;
  const TaskRequest req = WholeRequest(4, 0);
  // a: (4-4)/4 = 0 devices left, CPU 1.0 -> 0.01; b: (8-4)/8 = 0.5 -> 0.51.
  EXPECT_NEAR(binpack.Score(st, 0, 0, req, {0, 1, 2, 3}), 0.01, 1e-12);
  EXPECT_NEAR(binpack.Score(st, 1, 0, req, {0, 1, 2, 3}), 0.51, 1e-12);
}

TEST(BinpackScorerTest, UsesCpuWhenNoDevicesAreAsked) {
  std::vector<Node> nodes = {MakeNode("a", 2), MakeNode("b", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(0, {}, 32'000));
  BinpackScorer binpack;
  const TaskRequest req = WholeRequest(0, 8'000);
  // a: (32000-8000)/64000 = 0.375 -> 0.00375; b: 56000/64000 = 0.875 -> 0.00875.
  EXPECT_NEAR(binpack.Score(st, 0, 0, req, {}), 0.00375, 1e-12);
  EXPECT_NEAR(binpack.Score(st, 1, 0, req, {}), 0.00875, 1e-12);
}

TEST(BinpackScorerTest, PrefersTheMostUsedSharedDevice) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 60, 10'000));
  BinpackScorer binpack;
  const TaskRequest req = ShareRequest(30, 1'000);
  // device 0: share left (40-30)/100 = 0.1; untouched devices: 1 whole free,
  //   device 0 is not one of them -> 1/2. 0.5*0.1 + 0.5*0.5 = 0.3, + 0.01 CPU = 0.31.
  // device 1: share left 0.7; untouched 1 - 1 = 0 -> 0.35 + 0.01 = 0.36.
  const double used = binpack.Score(st, 0, 0, req, {0});
  const double fresh = binpack.Score(st, 0, 0, req, {1});
  EXPECT_NEAR(used, 0.31, 1e-12);
  EXPECT_NEAR(fresh, 0.36, 1e-12);
  EXPECT_LT(used, fresh);
}

TEST(SpreadScorerTest, WalksTheIndexMostFreeFirst) {
  EXPECT_TRUE(SpreadScorer().MostFreeFirst());
  EXPECT_FALSE(BinpackScorer().MostFreeFirst());
  EXPECT_FALSE(FgdScorer(std::vector<TaskShape>{}).MostFreeFirst());
}

// --- FGD -------------------------------------------------------------------

TEST(FgdScorerTest, FragmentationMatchesHandComputedExample) {
  // One node, 32 CPU free, 4 GPUs with free shares R = {100, 60, 30, 0} per cent.
  std::vector<Node> nodes = {MakeNode("a", 4, 32'000)};
  ClusterState st = MustBuild(nodes);
  FgdScorer fgd({
      WholeShape(1, 2.0, 4'000),   // m1: one whole GPU (d = 100)
      ShareShape(50, 1.0, 2'000),  // m2: half a GPU (d = 50)
      WholeShape(2, 1.0),          // m3: two whole GPUs
      WholeShape(0, 0.5, 1'000),   // m4: CPU only
      WholeShape(1, 0.5, 48'000),  // m5: one GPU but more CPU than the node has
  });
  // Per the FGD definition (data/README.md), fragmentation for task type m:
  //   m1: 1 GPU has R >= 100 (>= k=1): only GPUs with R < 100 count: 60+30+0 = 90
  //   m2: 2 GPUs have R >= 50: only R < 50 counts: 30+0 = 30
  //   m3: 1 GPU has R >= 100 < k=2: all free capacity counts: 190
  //   m4: needs no GPU: all 190
  //   m5: node lacks the CPU: all 190
  // Weighted average (total weight 5):
  //   (2*90 + 1*30 + 1*190 + 0.5*190 + 0.5*190) / 5 = 590 / 5 = 118 per cent
  //   = 1180 milli-GPU.
  EXPECT_NEAR(fgd.Fragmentation(st, 0, {100, 60, 30, 0}), 1180.0, 1e-9);
}

TEST(FgdScorerTest, FragmentationIsZeroWhenEveryTaskFitsWholeDevices) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  ClusterState st = MustBuild(nodes);
  FgdScorer fgd({WholeShape(1, 1.0), WholeShape(4, 1.0)});
  // All R = 100 >= d: no GPU has R < d, and 4 GPUs fit both shapes.
  EXPECT_EQ(fgd.Fragmentation(st, 0, {100, 100, 100, 100}), 0.0);
}

TEST(FgdScorerTest, FragmentationUsesNodeFreeCpu) {
  std::vector<Node> nodes = {MakeNode("a", 2, 8'000)};
  ClusterState st = MustBuild(nodes);
  FgdScorer fgd({WholeShape(1, 1.0, 4'000)});
  // With 8 CPU free the shape fits: 0 fragmented.
  EXPECT_EQ(fgd.Fragmentation(st, 0, {100, 100}), 0.0);
  // With 2 CPU free it cannot run: all 200 per cent = 2000 milli-GPU stranded.
  st.Allocate(Whole(0, {}, 6'000));
  EXPECT_NEAR(fgd.Fragmentation(st, 0, {100, 100}), 2000.0, 1e-9);
}

// FGD's gpuspec rule: a node's free devices of a model a shape may not use
// are fragmented for that shape. So a task that may run anywhere goes where
// the constrained tasks cannot, keeping their models free for them.
TEST(FgdScorerTest, FreeDevicesOfAModelAShapeMayNotUseAreFragmentedForIt) {
  std::vector<Node> nodes = {MakeNode("a", 4), MakeNode("b", 4)};
  for (Device& d : nodes[1].devices) d.model = "T4";
  ClusterState st = MustBuild(nodes);
  TaskShape a100_only = WholeShape(1, 1.0);
  a100_only.models = {"A100"};
  FgdScorer fgd({a100_only, WholeShape(1, 1.0)});
  // On the A100s both shapes fit: nothing fragmented. On the T4s half the
  // mix may not run: all 400 per cent x 0.5 = 2000 milli-GPU.
  EXPECT_EQ(fgd.Fragmentation(st, 0, {100, 100, 100, 100}), 0.0);
  EXPECT_NEAR(fgd.Fragmentation(st, 1, {100, 100, 100, 100}), 2000.0, 1e-9);
  // A model the measure is not told of: the constraint cannot apply.
  EXPECT_EQ(fgd.Fragmentation({100, 100, 100, 100}, 64'000, nullptr), 0.0);
  // An unconstrained one-GPU task scores better on the T4 node (it removes
  // 500 milli-GPU of fragmentation there, nothing on the A100s).
  TaskRequest req;
  req.devices = 1;
  const double on_a100 = fgd.Score(st, 0, st.device(0, 0).type, req, {0});
  const double on_t4 = fgd.Score(st, 1, st.device(1, 0).type, req, {0});
  EXPECT_LT(on_t4, on_a100);
  // Without the constraint the two tie but for the tie-break (< 1 point).
  FgdScorer blind({WholeShape(1, 1.0), WholeShape(1, 1.0)});
  EXPECT_NEAR(blind.Score(st, 0, st.device(0, 0).type, req, {0}), blind.Score(st, 1, st.device(1, 0).type, req, {0}),
              1.0);
}

TEST(FgdScorerTest, FragmentationWithoutWorkloadIsZero) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(FgdScorer(std::vector<TaskShape>{}).Fragmentation(st, 0, {30, 100}), 0.0);
  EXPECT_EQ(FgdScorer({WholeShape(1, 0.0)}).Fragmentation(st, 0, {30, 100}), 0.0);
}

TEST(FgdScorerTest, ScorePrefersTheDevicePlacementThatFragmentsLess) {
  // Node with 2 GPUs: GPU 0 half used (R = 50), GPU 1 free (R = 100).
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 50, 40'000));
  FgdScorer fgd({WholeShape(1, 1.0)});
  const TaskRequest req = ShareRequest(50, 40'000);
  // Before: R = {50, 100}; one GPU fits a whole-GPU task, GPU 0's 50 is stranded -> 500.
  // On GPU 0: R = {0, 100} -> nothing stranded -> 0; gradient -500.
  // On GPU 1: R = {50, 50} -> no GPU fits a whole task, all 100 stranded -> 1000; gradient +500.
  // FGD's points: floor(100 * sigmoid(0.5)) = 62 and floor(100 * sigmoid(-0.5)) = 37,
  // negated (lower is better), plus a tie-break under 0.001.
  const double on_used = fgd.Score(st, 0, 0, req, {0});
  const double on_fresh = fgd.Score(st, 0, 0, req, {1});
  EXPECT_NEAR(on_used, -62.0, 0.001);
  EXPECT_NEAR(on_fresh, -37.0, 0.001);
  EXPECT_LT(on_used, on_fresh);
}

TEST(FgdScorerTest, ScorePrefersTheNodeThatFragmentsLess) {
  // Workload: 2-GPU tasks only. Node a has 3 free GPUs, node b has 2.
  std::vector<Node> nodes = {MakeNode("a", 3), MakeNode("b", 2)};
  ClusterState st = MustBuild(nodes);
  FgdScorer fgd({WholeShape(2, 1.0)});
  const TaskRequest req = WholeRequest(1, 0);
  // a: before R = {100,100,100}: 3 >= 2 fit, none < 100 -> 0. After taking one:
  //    {0,100,100}: 2 fit, the 0 adds nothing -> 0. Gradient 0.
  // b: before {100,100} -> 0. After {0,100}: 1 < 2 fit, all 100 stranded -> 1000.
  //    Gradient +1000.
  //    Points: floor(100 * sigmoid(0)) = 50 and floor(100 * sigmoid(-1)) = 26.
  const double a = fgd.Score(st, 0, 0, req, {0});
  const double b = fgd.Score(st, 1, 0, req, {0});
  EXPECT_NEAR(a, -50.0, 0.001);
  EXPECT_NEAR(b, -26.0, 0.001);
}

TEST(FgdScorerTest, EqualPointsBreakTiesStablyButNotByNodeOrder) {
  // No workload: every gradient is 0 (50 points), so the tie-break decides,
  // as kube-scheduler's random pick among the best nodes would: differently
  // for different nodes, the same for the same state.
  std::vector<Node> nodes = {MakeNode("a", 2), MakeNode("b", 8)};
  ClusterState st = MustBuild(nodes);
  FgdScorer fgd(std::vector<TaskShape>{});
  const TaskRequest req = WholeRequest(1, 0);
  const double a = fgd.Score(st, 0, 0, req, {0});
  const double b = fgd.Score(st, 1, 0, req, {0});
  EXPECT_NEAR(a, -50.0, 0.001);
  EXPECT_NEAR(b, -50.0, 0.001);
  EXPECT_NE(a, b);
  EXPECT_EQ(a, fgd.Score(st, 0, 0, req, {0}));
}

TEST(FgdScorerTest, ScoreIgnoresUnusableDevices) {
  // A failed GPU is free on paper but no task can use it.
  std::vector<Node> nodes = {MakeNode("a", 3)};
  nodes[0].devices[2].healthy = false;
  ClusterState st = MustBuild(nodes);
  FgdScorer fgd({WholeShape(2, 1.0)});
  // Usable R = {100, 100}: a 2-GPU task fits, nothing stranded -> 0. After
  // taking GPU 0, R = {0, 100}: it no longer fits, all 100 stranded -> 1000.
  // (Counting the failed GPU, {0, 100, 100} would still fit: gradient 0.)
  // Gradient +1000: floor(100 * sigmoid(-1)) = 26 points (50 with the failed GPU counted).
  EXPECT_NEAR(fgd.Score(st, 0, 0, WholeRequest(1, 0), {0}), -26.0, 0.001);
}

TEST(FgdScorerTest, WorkloadCanBeReplaced) {
  FgdScorer fgd({WholeShape(1, 1.0)});
  fgd.set_workload({ShareShape(25, 1.0), ShareShape(50, 3.0)});
  ASSERT_EQ(fgd.workload().size(), 2u);
  EXPECT_EQ(fgd.workload()[1].device_percent, 50);
}

TEST(FgdScorerTest, ScoreSharesMatchesScorePerDevice) {
  // Node with 3 GPUs at R = {70, 100, 40}.
  std::vector<Node> nodes = {MakeNode("a", 3)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 30, 1'000));
  st.Allocate(Share(0, 2, 60, 1'000));
  FgdScorer fgd({WholeShape(1, 1.0), ShareShape(50, 2.0), ShareShape(25, 1.0)});
  const TaskRequest req = ShareRequest(30, 1'000);
  std::vector<double> scores;
  fgd.ScoreShares(st, 0, 0, req, {0, 1, 2}, scores);
  ASSERT_EQ(scores.size(), 3u);
  // Equal up to the index tie-break inside the node (FGD takes the first best GPU).
  for (int32_t d = 0; d < 3; ++d) EXPECT_NEAR(scores[d], fgd.Score(st, 0, 0, req, {d}), 1e-4) << "device " << d;
}

TEST(BinpackScorerTest, ScoreSharesMatchesScorePerDevice) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 60, 10'000));
  BinpackScorer binpack;
  const TaskRequest req = ShareRequest(30, 1'000);
  std::vector<double> scores;
  binpack.ScoreShares(st, 0, 0, req, {1, 0}, scores);
  // In the order asked: device 1 (0.36), then device 0 (0.31); see PrefersTheMostUsedSharedDevice.
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_NEAR(scores[0], 0.36, 1e-12);
  EXPECT_NEAR(scores[1], 0.31, 1e-12);
}

// --- heterogeneity ranker -----------------------------------------------------

TEST(HeterogeneityRankerTest, PrefersComparativeAdvantageOverRawSpeed) {
  // Type 0 (V100): this job runs 2.0, type 1 (K80): 1.0. Relative to its best:
  // V100 1.0, K80 0.5. The market: other jobs get 1.0 of their best on V100 but
  // only 0.25 on K80. Scores: V100 1.0/1.0 = 1.0, K80 0.5/0.25 = 2.0, so this
  // job, which suffers least on K80, goes there first.
  HeterogeneityRanker gavel;
  std::vector<TypeOption> options = {{0, 2.0}, {1, 1.0}};
  gavel.Rank(options, {1.0, 0.25});
  ASSERT_EQ(options.size(), 2u);
  EXPECT_EQ(options[0].type, 1);
  EXPECT_EQ(options[1].type, 0);
}

TEST(HeterogeneityRankerTest, EqualMarketPutsFastestFirst) {
  HeterogeneityRanker gavel;
  std::vector<TypeOption> options = {{1, 1.0}, {2, 3.0}, {0, 2.0}};
  gavel.Rank(options, {1.0, 1.0, 1.0});
  // Scores 1/3, 1, 2/3.
  EXPECT_EQ(options[0].type, 2);
  EXPECT_EQ(options[1].type, 0);
  EXPECT_EQ(options[2].type, 1);
}

TEST(HeterogeneityRankerTest, EqualScoresGoToHigherThroughput) {
  HeterogeneityRanker gavel;
  std::vector<TypeOption> options = {{0, 2.0}, {1, 4.0}};
  // Scores: type 0 (2/4)/0.5 = 1.0, type 1 (4/4)/1.0 = 1.0: tie, higher throughput first.
  gavel.Rank(options, {0.5, 1.0});
  EXPECT_EQ(options[0].type, 1);
}

TEST(HeterogeneityRankerTest, UnknownMarketCountsAsOne) {
  HeterogeneityRanker gavel;
  std::vector<TypeOption> options = {{0, 1.0}, {1, 1.0}};
  // Market 0 for type 0 means "no job says": treated as 1 -> score 1, while
  // type 1 scores 1/0.5 = 2. (Dividing by 0 would wrongly put type 0 first.)
  gavel.Rank(options, {0.0, 0.5});
  EXPECT_EQ(options[0].type, 1);
}

TEST(HeterogeneityRankerTest, UnknownThroughputsKeepListedOrder) {
  HeterogeneityRanker gavel;
  std::vector<TypeOption> options = {{2, 0.0}, {0, 0.0}, {1, 0.0}};
  gavel.Rank(options, {0.1, 5.0, 1.0});
  EXPECT_EQ(options[0].type, 2);
  EXPECT_EQ(options[1].type, 0);
  EXPECT_EQ(options[2].type, 1);
}

TEST(ListedOrderRankerTest, KeepsListedOrder) {
  ListedOrderRanker listed;
  std::vector<TypeOption> options = {{1, 1.0}, {0, 9.0}};
  listed.Rank(options, {1.0, 1.0});
  EXPECT_EQ(options[0].type, 1);
  EXPECT_EQ(listed.name(), "listed");
  EXPECT_EQ(HeterogeneityRanker().name(), "gavel");
}

// --- FGD's baselines ---------------------------------------------------------------

// GpuClustering (its artifact's GpuClusteringScore, worked by hand): node 0
// holds one task of 6 whole devices; the bands are 75 (only the request's
// kind there), 50 (it among others), 25 (an idle node), 0 (other kinds
// only), each plus 25 x used milli-GPUs / 8,000 in integers.
TEST_F(ScorerTest, GpuClusteringPacksTasksThatAskAlike) {
  const FgdBaselineScorer clustering(FgdBaselineScorer::Kind::kGpuClustering);
  EXPECT_EQ(clustering.name(), "gpuclustering");
  const TaskRequest six = WholeRequest(6, 1'000), one = WholeRequest(1, 1'000), share = ShareRequest(20, 1'000);
  // Node 0: 6,000 of 8,000 used -> 25 x 6,000 / 8,000 = 18.
  EXPECT_EQ(clustering.Points(st_, 0, six, 6), 75 + 18);  // only 6-device tasks there
  EXPECT_EQ(clustering.Points(st_, 0, one, 6), 0 + 18);   // other kinds only
  EXPECT_EQ(clustering.Points(st_, 1, one, 0), 25);       // idle
  st_.Allocate(Share(0, 6, 70, 1'000));                   // a share joins: two kinds, 6,700 used -> 20
  EXPECT_EQ(clustering.Points(st_, 0, six, 7), 50 + 20);
  EXPECT_EQ(clustering.Points(st_, 0, share, 6), 50 + 20);
  EXPECT_EQ(clustering.Points(st_, 0, one, 7), 0 + 20);
  // Undone (a pass's rollback) it is as before.
  st_.Release(Share(0, 6, 70, 1'000));
  EXPECT_EQ(clustering.Points(st_, 0, six, 6), 75 + 18);
  EXPECT_EQ(clustering.Points(st_, 1, WholeRequest(0, 1'000), 0), 0);  // no devices asked: no points
}

// The artifact's points, worked by hand. Node 0 ("busy") runs 6 of its 8
// devices whole and holds a 70% share of device 6; node 1 is idle.
TEST_F(ScorerTest, FgdsBaselinesScoreAsItsArtifactsPlugins) {
  st_.Allocate(Share(0, 6, 70, 1'000));
  const FgdBaselineScorer packing(FgdBaselineScorer::Kind::kGpuPacking);
  const FgdBaselineScorer bestfit(FgdBaselineScorer::Kind::kBestFit);
  const TaskRequest share = ShareRequest(20, 1'000);
  const TaskRequest whole = WholeRequest(1, 4'000);
  // gpupacking: a share on the partly used device: 100 - 30/10 = 97; on a
  // free device of a used node: 50 - 1 = 49; any request on the idle node:
  // max(33 - 8, 8) = 25; a whole device on the used node: 50 - 1 = 49.
  EXPECT_EQ(packing.Points(st_, 0, share, 6), 97);
  EXPECT_EQ(packing.Points(st_, 0, share, 7), 49);
  EXPECT_EQ(packing.Points(st_, 1, share, 0), 25);
  EXPECT_EQ(packing.Points(st_, 0, whole, 7), 49);
  EXPECT_EQ(packing.Points(st_, 1, whole, 0), 25);
  // bestfit: 100 x (1 - (cpu left / 128 cores + milli-GPUs left / 8,000) / 2).
  // busy: CPU (64,000 - 4,000) / 128,000 = 0.46875, GPU (1,300 - 1,000) / 8,000
  // = 0.0375 -> 100 x (1 - 0.253125) = 74; idle: 0.46875 and 7,000 / 8,000
  // -> 100 x (1 - 0.671875) = 32.
  EXPECT_EQ(bestfit.Points(st_, 0, whole, 7), 74);
  EXPECT_EQ(bestfit.Points(st_, 1, whole, 0), 32);
  // dotprod: 100 x (1 - (free . request) / 2), over 128 cores and 8 GPUs.
  // A share of 20%: on device 6, 300/8000 x 200/8000 -> 99.95 -> 99; on the
  // idle device 7, 1000/8000 x 200/8000 -> 99; on the idle node, 8000/8000 x
  // 200/8000 -> 98.75 -> 98. A whole device with 4 cores: busy 0.5 x
  // 0.03125 + 0.125 x 0.125 -> 98; idle 0.015625 + 1 x 0.125 -> 92.
  const FgdBaselineScorer dotprod(FgdBaselineScorer::Kind::kDotProduct);
  EXPECT_EQ(dotprod.Points(st_, 0, share, 6), 99);
  EXPECT_EQ(dotprod.Points(st_, 0, share, 7), 99);
  EXPECT_EQ(dotprod.Points(st_, 1, share, 0), 98);
  EXPECT_EQ(dotprod.Points(st_, 0, whole, 7), 98);
  EXPECT_EQ(dotprod.Points(st_, 1, whole, 0), 92);
  std::vector<double> tied;
  dotprod.ScoreShares(st_, 0, 0, share, {6, 7}, tied);
  EXPECT_LT(tied[0], tied[1]) << "on equal points the partly used device goes first";
  // Lower cost is better: both pack onto the busy node, a share onto the
  // partly used device.
  EXPECT_LT(packing.Score(st_, 0, 0, whole, {7}), packing.Score(st_, 1, 0, whole, {0}));
  EXPECT_LT(bestfit.Score(st_, 0, 0, whole, {7}), bestfit.Score(st_, 1, 0, whole, {0}));
  std::vector<double> scores;
  packing.ScoreShares(st_, 0, 0, share, {6, 7}, scores);
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_LT(scores[0], scores[1]);
  // bestfit scores a node, not a device: the share goes to the device with
  // least left that fits, the artifact's "best" choice.
  bestfit.ScoreShares(st_, 0, 0, share, {6, 7}, scores);
  EXPECT_LT(scores[0], scores[1]);
}

TEST(FgdBaselineScorerTest, RandomPicksAmongFeasibleNodesAlikeAndStablyForOneState) {
  std::vector<Node> nodes;
  for (int i = 0; i < 16; ++i) nodes.push_back(MakeNode(absl::StrCat("n", i), 8));
  ClusterState st = MustBuild(nodes);
  const FgdBaselineScorer random(FgdBaselineScorer::Kind::kRandom);
  const TaskRequest req = WholeRequest(1, 1'000);
  std::set<int32_t> firsts;
  for (int round = 0; round < 32; ++round) {
    int32_t best = -1;
    double best_score = 0;
    for (int32_t n = 0; n < 16; ++n) {
      const double score = random.Score(st, n, 0, req, {0});
      EXPECT_EQ(score, random.Score(st, n, 0, req, {0}));  // stable
      if (best < 0 || score < best_score) best = n, best_score = score;
    }
    firsts.insert(best);
    const int32_t device = 8 - st.FreeWhole(best, 0);  // its next free one
    if (device < 8) st.Allocate(Whole(best, {device}, 1'000));
  }
  EXPECT_GE(firsts.size(), 8u) << "the draws land on too few nodes to be a random pick";
}

// --- factory -------------------------------------------------------------------

TEST(NodeScorerTest, MakeNodeScorerKnowsEveryName) {
  EXPECT_EQ(NodeScorerNames().size(), 8u);
  for (const std::string& name : NodeScorerNames()) {
    auto scorer = MakeNodeScorer(name);
    ASSERT_TRUE(scorer.ok()) << name << ": " << scorer.status();
    EXPECT_EQ((*scorer)->name(), name);
  }
}

TEST(NodeScorerTest, MakeNodeScorerFgdStartsWithEmptyWorkload) {
  auto scorer = MakeNodeScorer("fgd");
  ASSERT_TRUE(scorer.ok());
  auto* fgd = dynamic_cast<FgdScorer*>(scorer->get());
  ASSERT_NE(fgd, nullptr);
  EXPECT_TRUE(fgd->workload().empty());
}

TEST(NodeScorerTest, MakeNodeScorerRejectsUnknownName) {
  auto scorer = MakeNodeScorer("tetris");
  ASSERT_FALSE(scorer.ok());
  EXPECT_EQ(scorer.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string msg(scorer.status().message());
  EXPECT_NE(msg.find("'tetris'"), std::string::npos) << msg;
  for (const char* known : {"binpack", "spread", "fgd"}) {
    EXPECT_NE(msg.find(known), std::string::npos) << msg << " lacks " << known;
  }
}

}  // namespace
}  // namespace icos::core
