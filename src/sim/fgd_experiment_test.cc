#include "sim/fgd_experiment.h"

#include <gtest/gtest.h>

#include <cmath>

#include "absl/strings/str_cat.h"

namespace icos::sim {
namespace {

std::vector<core::Node> TwoNodes() {
  std::vector<core::Node> nodes;
  for (int i = 0; i < 2; ++i) {
    core::Node n;
    n.name = absl::StrCat("n", i);  // not "n" + std::to_string(i): GCC 12 -O2 -Werror=restrict false positive
    n.cpu_milli = 64'000;
    n.memory_mib = 65'536;
    for (int d = 0; d < 2; ++d) n.devices.push_back({"nvidia", "V100", 16'384});
    nodes.push_back(n);
  }
  return nodes;
}

SimJob Pod(int32_t gpu_milli) {
  SimJob p;
  p.gpus = 1;
  p.gpu_milli = gpu_milli;
  p.cpu_milli = 1'000;
  p.memory_mib = 1'024;
  return p;
}

// 4 GPUs, half-GPU pods only: every pod fits until the GPUs are full, so at
// 100% arrived (8 pods = 4 GPUs) nothing is left unallocated, and the 1.3x
// inflation (11 pods) drops the 3 that arrive after.
TEST(FgdExperimentTest, HalfGpuPodsFillTheClusterExactly) {
  for (const char* policy : {"bestfit", "fgd", "spread"}) {
    auto r = RunInflation(TwoNodes(), {Pod(500)}, policy, {});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_DOUBLE_EQ(r->unallocated_pct_at_100, 0.0) << policy;
    EXPECT_EQ(r->pods_arrived, 11) << policy;
    EXPECT_EQ(r->pods_placed, 8) << policy;
  }
}

// 0.6-GPU pods: one per GPU, 0.4 of each GPU is stranded. At 100% arrived
// (7 pods = 4.2 GPUs; 4 placed = 2.4 GPUs) 40% of capacity is unallocated.
TEST(FgdExperimentTest, UnusableRemaindersCountAsUnallocated) {
  auto r = RunInflation(TwoNodes(), {Pod(600)}, "bestfit", {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NEAR(r->unallocated_pct_at_100, 40.0, 1e-9);
}

TEST(FgdExperimentTest, UnknownPolicyIsAnError) {
  auto r = RunInflation(TwoNodes(), {Pod(500)}, "tetris", {});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(
      r.status().message().find("known: fgd, bestfit, gpupacking, random, dotprod, gpuclustering, binpack, spread"),
      std::string::npos)
      << r.status();
}

// Every policy the experiment names runs under its own name; half-GPU pods
// fill the cluster exactly under each.
TEST(FgdExperimentTest, EveryPolicyRunsUnderItsName) {
  for (const char* policy :
       {"fgd", "bestfit", "gpupacking", "random", "dotprod", "gpuclustering", "binpack", "spread"}) {
    auto r = RunInflation(TwoNodes(), {Pod(500)}, policy, {});
    ASSERT_TRUE(r.ok()) << policy << ": " << r.status();
    EXPECT_EQ(r->policy, policy);
    EXPECT_NEAR(r->unallocated_pct_at_100, 0.0, 1e-9) << policy;
  }
}

}  // namespace
}  // namespace icos::sim

namespace icos::sim {
namespace {

// 0.6-GPU pods strand 0.4 of every GPU they use; against a mix of 0.6 pods
// only, every free share is fragmented: the rate is 100% once pods arrived.
TEST(FgdExperimentTest, FragmentationRateCountsStrandedShares) {
  auto r = RunInflation(TwoNodes(), {Pod(600)}, "bestfit", {});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->curve.empty());
  EXPECT_NEAR(r->curve.back().frag_rate_pct, 100.0, 1e-9);
  // At 15% arrived (one pod on one GPU): 0.4 of 3.4 free GPUs is stranded.
  EXPECT_NEAR(r->curve[2].frag_rate_pct, 100.0 * 0.4 / 3.4, 1e-9);
}

// A CPU-only pod that would take all CPU of a node strands its GPUs; FGD puts
// it on the node whose GPUs are already taken, best fit does not care.
TEST(FgdExperimentTest, CpuPodsArriveAndFgdKeepsThemOffFreeGpus) {
  SimJob whole = Pod(1000);
  whole.gpus = 2;
  SimJob cpu;
  cpu.gpus = 0;
  cpu.gpu_milli = 0;
  cpu.cpu_milli = 63'000;
  cpu.memory_mib = 1'024;
  InflationOptions o;
  auto with_cpu = RunInflation(TwoNodes(), {whole, cpu}, "fgd", o);
  ASSERT_TRUE(with_cpu.ok()) << with_cpu.status();
  EXPECT_GT(with_cpu->cpu_pods_arrived, 0);
  o.cpu_pods = false;
  auto gpu_only = RunInflation(TwoNodes(), {whole, cpu}, "fgd", o);
  ASSERT_TRUE(gpu_only.ok());
  EXPECT_EQ(gpu_only->cpu_pods_arrived, 0);
}

TEST(FgdExperimentTest, TypicalShapesKeepTheMostFrequentCoveringShare) {
  std::vector<SimJob> pods(6, Pod(500));
  pods.push_back(Pod(250));
  SimJob two = Pod(1000);
  two.gpus = 2;
  pods.push_back(two);
  SimJob cpu_only;
  cpu_only.gpus = 0;
  pods.push_back(cpu_only);
  std::vector<core::TaskShape> all = TypicalShapes(pods, 1.0);
  ASSERT_EQ(all.size(), 3u);  // the CPU-only pod ranks no placement: left out
  EXPECT_EQ(all[0].device_percent, 50);
  EXPECT_DOUBLE_EQ(all[0].weight, 6);               // by count, as FGD weighs its typical pods
  EXPECT_EQ(TypicalShapes(pods, 0.75).size(), 1u);  // 6 of 8 GPU pods
}

}  // namespace
}  // namespace icos::sim
