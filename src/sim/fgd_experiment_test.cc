#include "sim/fgd_experiment.h"

#include <gtest/gtest.h>

namespace icos::sim {
namespace {

std::vector<core::Node> TwoNodes() {
  std::vector<core::Node> nodes;
  for (int i = 0; i < 2; ++i) {
    core::Node n;
    n.name = "n" + std::to_string(i);
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
  EXPECT_FALSE(RunInflation(TwoNodes(), {Pod(500)}, "random", {}).ok());
}

}  // namespace
}  // namespace icos::sim
