#include "core/resources/cluster_state.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "sim/synthetic.h"

namespace icos::core {
namespace {

constexpr int64_t kDeviceMemory = 80'000;

Device Dev(const std::string& vendor, const std::string& model, int32_t island = -1) {
  Device d;
  d.vendor = vendor;
  d.model = model;
  d.memory_mib = kDeviceMemory;
  d.island = island;
  return d;
}

Device A100(int32_t island = -1) { return Dev("nvidia", "A100", island); }

// A node with `count` A100s, all in `island` (-1: no island information).
Node MakeNode(const std::string& name, int32_t count, int32_t island = -1) {
  Node n;
  n.name = name;
  n.cpu_milli = 64'000;
  n.memory_mib = 512'000;
  for (int32_t i = 0; i < count; ++i) n.devices.push_back(A100(island));
  return n;
}

// Whole devices `devs` of node `node`, with the given host resources.
TaskPlacement Whole(int32_t node, std::vector<int32_t> devs, int64_t cpu_milli = 0, int64_t memory_mib = 0) {
  TaskPlacement p;
  p.node = node;
  p.cpu_milli = cpu_milli;
  p.memory_mib = memory_mib;
  for (int32_t d : devs) p.devices.push_back({d, kWholeDevicePercent, kDeviceMemory});
  return p;
}

// A share of one device.
TaskPlacement Share(int32_t node, int32_t device, int32_t percent, int64_t memory_mib) {
  TaskPlacement p;
  p.node = node;
  p.devices.push_back({device, percent, memory_mib});
  return p;
}

ClusterState MustBuild(const std::vector<Node>& nodes) {
  absl::StatusOr<ClusterState> st = ClusterState::Build(nodes);
  EXPECT_TRUE(st.ok()) << st.status();
  return *std::move(st);
}

DeviceTypeId TypeId(const ClusterState& st, const std::string& name) {
  for (DeviceTypeId t = 0; t < st.num_types(); ++t) {
    if (st.type_name(t) == name) return t;
  }
  ADD_FAILURE() << "no type " << name;
  return 0;
}

// (node, free) pairs in visiting order.
std::vector<std::pair<int32_t, int32_t>> Visits(const ClusterState& st, DeviceTypeId t, int32_t min_free,
                                                bool most_free_first) {
  std::vector<std::pair<int32_t, int32_t>> out;
  st.ForEachNodeWithFree(t, min_free, most_free_first, [&](int32_t n, int32_t f) {
    out.emplace_back(n, f);
    return true;
  });
  return out;
}

std::vector<int32_t> PartialNodes(const ClusterState& st, DeviceTypeId t) {
  std::vector<int32_t> out;
  st.ForEachNodeWithPartial(t, [&](int32_t n) {
    out.push_back(n);
    return true;
  });
  std::sort(out.begin(), out.end());
  return out;
}

// Everything observable about free capacity, as text so a mismatch shows the
// difference. The order of nodes inside one bucket of the index is not part of
// the contract, so visits are sorted.
std::string Dump(const ClusterState& st) {
  std::string out;
  for (int32_t n = 0; n < st.num_nodes(); ++n) {
    const auto& ns = st.node(n);
    absl::StrAppend(&out, "node ", n, ": cpu ", ns.free_cpu_milli, " mem ", ns.free_memory_mib, "\n");
    for (int32_t d = 0; d < ns.num_devices; ++d) {
      const auto& ds = st.device(n, d);
      absl::StrAppend(&out, "  dev ", d, ": ", ds.free_percent, "% ", ds.free_memory_mib, " MiB, holders ", ds.holders,
                      "\n");
    }
  }
  for (DeviceTypeId t = 0; t < st.num_types(); ++t) {
    absl::StrAppend(&out, st.type_name(t), ": usable ", st.usable_devices(t), " free ", st.free_devices(t),
                    "\n  index:");
    auto visits = Visits(st, t, 1, false);
    std::sort(visits.begin(), visits.end(),
              [](auto a, auto b) { return std::tie(a.second, a.first) < std::tie(b.second, b.first); });
    for (auto [n, f] : visits) absl::StrAppend(&out, " ", n, "=", f);
    absl::StrAppend(&out, "\n  partial:");
    for (int32_t n : PartialNodes(st, t)) absl::StrAppend(&out, " ", n);
    absl::StrAppend(&out, "\n");
  }
  return out;
}

// --- Build -----------------------------------------------------------------

TEST(ClusterStateTest, BuildRejectsDuplicateNodeNames) {
  std::vector<Node> nodes = {MakeNode("a", 1), MakeNode("b", 1), MakeNode("a", 2)};
  auto st = ClusterState::Build(nodes);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.status().message().find("'a' appears twice"), std::string::npos) << st.status();
}

TEST(ClusterStateTest, BuildRejectsNodeWithoutName) {
  std::vector<Node> nodes = {MakeNode("", 1)};
  auto st = ClusterState::Build(nodes);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClusterStateTest, BuildRejectsNegativeCpu) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  nodes[0].cpu_milli = -1;
  auto st = ClusterState::Build(nodes);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.status().message().find("'a'"), std::string::npos) << st.status();
}

TEST(ClusterStateTest, BuildRejectsNegativeMemory) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  nodes[0].memory_mib = -5;
  EXPECT_FALSE(ClusterState::Build(nodes).ok());
}

TEST(ClusterStateTest, BuildRejectsNegativeDeviceMemory) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  nodes[0].devices[1].memory_mib = -1;
  auto st = ClusterState::Build(nodes);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.status().message().find("device #1"), std::string::npos) << st.status();
}

TEST(ClusterStateTest, BuildRejectsDeviceWithoutVendor) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  nodes[0].devices[1].vendor.clear();
  auto st = ClusterState::Build(nodes);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.status().message().find("device #1 has no vendor"), std::string::npos) << st.status();
}

TEST(ClusterStateTest, BuildAcceptsEmptyCluster) {
  std::vector<Node> nodes;
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.num_nodes(), 0);
  EXPECT_EQ(st.num_types(), 0);
}

// --- device types ------------------------------------------------------------

TEST(ClusterStateTest, InternsOneTypePerVendorAndModel) {
  // Two A100 nodes, one mixed node: three distinct vendor/model pairs.
  std::vector<Node> nodes = {MakeNode("a", 2), MakeNode("b", 2), MakeNode("c", 0)};
  nodes[2].devices = {Dev("ascend", "910B"), A100(), Dev("nvidia", "H100")};
  ClusterState st = MustBuild(nodes);
  ASSERT_EQ(st.num_types(), 3);
  // Ids are dense in order of first appearance.
  EXPECT_EQ(st.type_name(0), "nvidia/A100");
  EXPECT_EQ(st.type_name(1), "ascend/910B");
  EXPECT_EQ(st.type_name(2), "nvidia/H100");
  EXPECT_EQ(st.type_vendor(1), "ascend");
  EXPECT_EQ(st.device(2, 1).type, 0);
  // 2 + 2 + 1 A100s.
  EXPECT_EQ(st.usable_devices(0), 5);
}

TEST(ClusterStateTest, DeviceWithoutModelIsItsOwnType) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  nodes[0].devices.push_back(Dev("nvidia", ""));
  ClusterState st = MustBuild(nodes);
  ASSERT_EQ(st.num_types(), 2);
  EXPECT_EQ(st.type_name(1), "nvidia/");
}

class TypesMatchingTest : public ::testing::Test {
 protected:
  TypesMatchingTest() : nodes_(Nodes()), st_(MustBuild(nodes_)) {}
  static std::vector<Node> Nodes() {
    std::vector<Node> nodes = {MakeNode("a", 0)};
    // Types 0..3 in this order.
    nodes[0].devices = {Dev("nvidia", "A100"), Dev("ascend", "910B"), Dev("nvidia", "H100"), Dev("ascend", "910C")};
    return nodes;
  }
  std::vector<Node> nodes_;
  ClusterState st_;
};

TEST_F(TypesMatchingTest, EmptyVendorAcceptsEveryType) {
  EXPECT_EQ(st_.TypesMatching({"", "", 0}), (std::vector<DeviceTypeId>{0, 1, 2, 3}));
}

TEST_F(TypesMatchingTest, EmptyModelAcceptsEveryModelOfTheVendor) {
  EXPECT_EQ(st_.TypesMatching({"nvidia", "", 0}), (std::vector<DeviceTypeId>{0, 2}));
  EXPECT_EQ(st_.TypesMatching({"ascend", "", 0}), (std::vector<DeviceTypeId>{1, 3}));
}

TEST_F(TypesMatchingTest, VendorAndModelAcceptOneType) {
  EXPECT_EQ(st_.TypesMatching({"ascend", "910C", 0}), (std::vector<DeviceTypeId>{3}));
}

TEST_F(TypesMatchingTest, ModelOfAnotherVendorMatchesNothing) {
  EXPECT_TRUE(st_.TypesMatching({"ascend", "A100", 0}).empty());
  EXPECT_TRUE(st_.TypesMatching({"amd", "", 0}).empty());
}

TEST_F(TypesMatchingTest, ModelWithoutVendorMatchesThatModelOfAnyVendor) {
  EXPECT_EQ(st_.TypesMatching({"", "H100", 0}), (std::vector<DeviceTypeId>{2}));
}

// --- the free-device index ---------------------------------------------------

// Nodes 0..3 with 1, 4, 2, 8 A100s.
std::vector<Node> IndexNodes() { return {MakeNode("n0", 1), MakeNode("n1", 4), MakeNode("n2", 2), MakeNode("n3", 8)}; }

TEST(ClusterStateTest, ForEachNodeWithFreeVisitsTightestFirst) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  // At least 2 free: n2 (2), n1 (4), n3 (8), smallest bucket first; n0 (1) is skipped.
  EXPECT_EQ(Visits(st, 0, 2, false), (std::vector<std::pair<int32_t, int32_t>>{{2, 2}, {1, 4}, {3, 8}}));
}

TEST(ClusterStateTest, ForEachNodeWithFreeVisitsMostFreeFirst) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(Visits(st, 0, 2, true), (std::vector<std::pair<int32_t, int32_t>>{{3, 8}, {1, 4}, {2, 2}}));
}

TEST(ClusterStateTest, ForEachNodeWithFreeTreatsMinFreeBelowOneAsOne) {
  std::vector<Node> nodes = IndexNodes();
  nodes.push_back(MakeNode("empty", 0));
  nodes.back().devices = {Dev("ascend", "910B")};
  nodes.push_back(MakeNode("busy", 1));
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(5, {0}));
  // The busy node (0 free) never shows up, even when asked for "0 or more".
  EXPECT_EQ(Visits(st, 0, 0, false), (std::vector<std::pair<int32_t, int32_t>>{{0, 1}, {2, 2}, {1, 4}, {3, 8}}));
}

TEST(ClusterStateTest, ForEachNodeWithFreeVisitsNothingAboveLargestNode) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  EXPECT_TRUE(Visits(st, 0, 9, false).empty());
  EXPECT_TRUE(Visits(st, 0, 9, true).empty());
  EXPECT_EQ(Visits(st, 0, 8, false), (std::vector<std::pair<int32_t, int32_t>>{{3, 8}}));
}

TEST(ClusterStateTest, ForEachNodeWithFreeStopsWhenVisitReturnsFalse) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  std::vector<int32_t> seen;
  st.ForEachNodeWithFree(0, 1, false, [&](int32_t n, int32_t) {
    seen.push_back(n);
    return seen.size() < 2;
  });
  EXPECT_EQ(seen, (std::vector<int32_t>{0, 2}));
}

TEST(ClusterStateTest, ForEachNodeWithFreeOnlyVisitsNodesOfThatType) {
  std::vector<Node> nodes = {MakeNode("a", 2), MakeNode("b", 0), MakeNode("c", 1)};
  nodes[1].devices = {Dev("ascend", "910B"), Dev("ascend", "910B"), Dev("ascend", "910B")};
  nodes[2].devices.push_back(Dev("ascend", "910B"));
  ClusterState st = MustBuild(nodes);
  const DeviceTypeId ascend = TypeId(st, "ascend/910B");
  EXPECT_EQ(Visits(st, ascend, 1, false), (std::vector<std::pair<int32_t, int32_t>>{{2, 1}, {1, 3}}));
  EXPECT_EQ(Visits(st, TypeId(st, "nvidia/A100"), 1, false),
            (std::vector<std::pair<int32_t, int32_t>>{{2, 1}, {0, 2}}));
}

TEST(ClusterStateTest, AllocateMovesNodeToItsNewBucket) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  // n3 had 8 free; taking 7 leaves 1, so it now shares the first bucket with
  // n0 and no longer qualifies for "at least 2".
  st.Allocate(Whole(3, {0, 1, 2, 3, 4, 5, 6}));
  auto visits = Visits(st, 0, 1, false);
  std::vector<int32_t> frees;
  for (auto [n, f] : visits) frees.push_back(f);
  EXPECT_EQ(frees, (std::vector<int32_t>{1, 1, 2, 4}));
  // Order inside one bucket is not part of the contract.
  std::sort(visits.begin(), visits.end(),
            [](auto a, auto b) { return std::tie(a.second, a.first) < std::tie(b.second, b.first); });
  EXPECT_EQ(visits, (std::vector<std::pair<int32_t, int32_t>>{{0, 1}, {3, 1}, {2, 2}, {1, 4}}));
  EXPECT_EQ(Visits(st, 0, 2, false), (std::vector<std::pair<int32_t, int32_t>>{{2, 2}, {1, 4}}));
}

TEST(ClusterStateTest, ReleaseMovesNodeBackToItsBucket) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  const TaskPlacement p = Whole(1, {0, 1, 2});
  st.Allocate(p);
  EXPECT_EQ(st.FreeWhole(1, 0), 1);
  st.Release(p);
  EXPECT_EQ(st.FreeWhole(1, 0), 4);
  EXPECT_EQ(Visits(st, 0, 4, false), (std::vector<std::pair<int32_t, int32_t>>{{1, 4}, {3, 8}}));
}

TEST(ClusterStateTest, MaxFreeOnOneNodeFollowsTheIndex) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.MaxFreeOnOneNode(0), 8);
  // n3 down to 8-7 = 1: the best node is now n1 with 4.
  st.Allocate(Whole(3, {0, 1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(st.MaxFreeOnOneNode(0), 4);
}

TEST(ClusterStateTest, MaxFreeOnOneNodeIsZeroWhenAllBusy) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(0, {0}));
  st.Allocate(Share(0, 1, 10, 1'000));
  EXPECT_EQ(st.MaxFreeOnOneNode(0), 0);
}

// --- FreeWhole and islands ---------------------------------------------------

TEST(ClusterStateTest, FreeWholeCountsOnlyThatType) {
  std::vector<Node> nodes = {MakeNode("a", 3)};
  nodes[0].devices.push_back(Dev("ascend", "910B"));
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.FreeWhole(0, TypeId(st, "nvidia/A100")), 3);
  EXPECT_EQ(st.FreeWhole(0, TypeId(st, "ascend/910B")), 1);
}

TEST(ClusterStateTest, FreeWholeIsZeroForTypeNotOnNode) {
  std::vector<Node> nodes = {MakeNode("a", 3), MakeNode("b", 0)};
  nodes[1].devices.push_back(Dev("ascend", "910B"));
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.FreeWhole(1, TypeId(st, "nvidia/A100")), 0);
  EXPECT_EQ(st.FreeWholeInBestIsland(1, TypeId(st, "nvidia/A100")), 0);
}

TEST(ClusterStateTest, FreeWholeInBestIslandPicksLargestIsland) {
  // Islands 0,0,0,1,1: the best island has 3 free devices.
  std::vector<Node> nodes = {MakeNode("a", 0)};
  nodes[0].devices = {A100(0), A100(0), A100(0), A100(1), A100(1)};
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.FreeWhole(0, 0), 5);
  EXPECT_EQ(st.FreeWholeInBestIsland(0, 0), 3);
}

TEST(ClusterStateTest, FreeWholeInBestIslandFollowsAllocation) {
  std::vector<Node> nodes = {MakeNode("a", 0)};
  nodes[0].devices = {A100(0), A100(0), A100(0), A100(1), A100(1)};
  ClusterState st = MustBuild(nodes);
  // Taking two devices of island 0 leaves island 0 with 1 and island 1 with 2.
  st.Allocate(Whole(0, {0, 1}));
  EXPECT_EQ(st.FreeWholeInBestIsland(0, 0), 2);
  // A share of a device also takes it out of the whole-free count.
  st.Allocate(Share(0, 3, 10, 1'000));
  EXPECT_EQ(st.FreeWholeInBestIsland(0, 0), 1);
}

TEST(ClusterStateTest, IslandMinusOneMakesEachDeviceItsOwnIsland) {
  std::vector<Node> nodes = {MakeNode("a", 4, /*island=*/-1)};
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.FreeWholeInBestIsland(0, 0), 1);
  EXPECT_EQ(st.max_per_island(0), 1);
  // Normalised ids are distinct and never -1.
  std::vector<int32_t> islands;
  for (int32_t d = 0; d < 4; ++d) islands.push_back(st.device(0, d).island);
  std::sort(islands.begin(), islands.end());
  EXPECT_EQ(std::unique(islands.begin(), islands.end()), islands.end());
  EXPECT_GE(islands.front(), 0);
}

TEST(ClusterStateTest, IslandMinusOneNeverJoinsADeclaredIsland) {
  // Devices: island 0, island 0, unknown, unknown. The unknown ones get ids
  // after the largest declared (1 and 2), so the best island is island 0 with 2.
  std::vector<Node> nodes = {MakeNode("a", 0)};
  nodes[0].devices = {A100(0), A100(0), A100(-1), A100(-1)};
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.device(0, 2).island, 1);
  EXPECT_EQ(st.device(0, 3).island, 2);
  EXPECT_EQ(st.FreeWholeInBestIsland(0, 0), 2);
  // Once island 0 is used up, only single-device islands are left.
  st.Allocate(Whole(0, {0}));
  EXPECT_EQ(st.FreeWholeInBestIsland(0, 0), 1);
}

TEST(ClusterStateTest, IslandsArePerType) {
  // An A100 and an H100 in island 0 do not form a two-device island of either type.
  std::vector<Node> nodes = {MakeNode("a", 0)};
  nodes[0].devices = {A100(0), Dev("nvidia", "H100", 0), A100(1), A100(1)};
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.FreeWholeInBestIsland(0, TypeId(st, "nvidia/H100")), 1);
  EXPECT_EQ(st.FreeWholeInBestIsland(0, TypeId(st, "nvidia/A100")), 2);
}

// --- Allocate / Release ------------------------------------------------------

TEST(ClusterStateTest, AllocateReducesFreeCounts) {
  std::vector<Node> nodes = {MakeNode("a", 4), MakeNode("b", 4)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(1, {0, 2}, 8'000, 64'000));
  // Node b: 64000-8000 = 56000m CPU, 512000-64000 = 448000 MiB, 4-2 = 2 devices.
  EXPECT_EQ(st.node(1).free_cpu_milli, 56'000);
  EXPECT_EQ(st.node(1).free_memory_mib, 448'000);
  EXPECT_EQ(st.FreeWhole(1, 0), 2);
  EXPECT_EQ(st.device(1, 0).free_percent, 0);
  EXPECT_EQ(st.device(1, 0).free_memory_mib, 0);
  EXPECT_EQ(st.device(1, 0).holders, 1);
  EXPECT_EQ(st.device(1, 1).holders, 0);
  // Cluster-wide: 8 usable, 8-2 = 6 free.
  EXPECT_EQ(st.usable_devices(0), 8);
  EXPECT_EQ(st.free_devices(0), 6);
  // Node a untouched.
  EXPECT_EQ(st.node(0).free_cpu_milli, 64'000);
  EXPECT_EQ(st.FreeWhole(0, 0), 4);
}

TEST(ClusterStateTest, ReleaseRestoresFreeCounts) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  ClusterState st = MustBuild(nodes);
  const std::string before = Dump(st);
  const TaskPlacement p = Whole(0, {1, 3}, 2'000, 1'024);
  st.Allocate(p);
  st.Release(p);
  EXPECT_EQ(Dump(st), before);
  EXPECT_EQ(st.free_devices(0), 4);
}

TEST(ClusterStateTest, AllocateWithoutDevicesTouchesOnlyHost) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(0, {}, 1'500, 2'048));
  EXPECT_EQ(st.node(0).free_cpu_milli, 62'500);
  EXPECT_EQ(st.node(0).free_memory_mib, 509'952);
  EXPECT_EQ(st.free_devices(0), 2);
}

TEST(ClusterStateTest, ShareOfDeviceTakesItOutOfWholeFree) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 1, 30, 20'000));
  // 100-30 = 70% and 80000-20000 = 60000 MiB left; the device is no longer whole-free.
  EXPECT_EQ(st.device(0, 1).free_percent, 70);
  EXPECT_EQ(st.device(0, 1).free_memory_mib, 60'000);
  EXPECT_EQ(st.FreeWhole(0, 0), 1);
  EXPECT_EQ(st.free_devices(0), 1);
}

TEST(ClusterStateTest, ShareIndexesNodeAsPartial) {
  std::vector<Node> nodes = {MakeNode("a", 2), MakeNode("b", 2), MakeNode("c", 2)};
  ClusterState st = MustBuild(nodes);
  EXPECT_TRUE(PartialNodes(st, 0).empty());
  st.Allocate(Share(2, 0, 30, 20'000));
  st.Allocate(Share(0, 1, 50, 10'000));
  EXPECT_EQ(PartialNodes(st, 0), (std::vector<int32_t>{0, 2}));
}

TEST(ClusterStateTest, WholeAllocationIsNotPartial) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(0, {0}));
  EXPECT_TRUE(PartialNodes(st, 0).empty());
}

TEST(ClusterStateTest, FullySharedDeviceLeavesPartialIndex) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 50, 10'000));
  EXPECT_EQ(PartialNodes(st, 0), (std::vector<int32_t>{0}));
  // 50 + 50 = 100%: nothing left to share.
  st.Allocate(Share(0, 0, 50, 10'000));
  EXPECT_TRUE(PartialNodes(st, 0).empty());
  EXPECT_EQ(st.device(0, 0).holders, 2);
}

TEST(ClusterStateTest, DeviceWithNoMemoryLeftIsNotPartial) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  ClusterState st = MustBuild(nodes);
  // 10% of compute but all of the memory.
  st.Allocate(Share(0, 0, 10, kDeviceMemory));
  EXPECT_TRUE(PartialNodes(st, 0).empty());
}

TEST(ClusterStateTest, ReleasingLastShareRemovesNodeFromPartialIndex) {
  std::vector<Node> nodes = {MakeNode("a", 2), MakeNode("b", 2)};
  ClusterState st = MustBuild(nodes);
  const TaskPlacement p = Share(0, 0, 30, 1'000);
  const TaskPlacement q = Share(0, 0, 20, 1'000);
  st.Allocate(p);
  st.Allocate(q);
  st.Allocate(Share(1, 1, 20, 1'000));
  st.Release(p);
  EXPECT_EQ(PartialNodes(st, 0), (std::vector<int32_t>{0, 1}));
  st.Release(q);
  EXPECT_EQ(PartialNodes(st, 0), (std::vector<int32_t>{1}));
  // Both devices of node a are whole-free again.
  EXPECT_EQ(st.FreeWhole(0, 0), 2);
}

TEST(ClusterStateTest, NonShareableDeviceIsNotPartial) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  nodes[0].devices[0].shareable = false;
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 30, 1'000));
  EXPECT_TRUE(PartialNodes(st, 0).empty());
}

TEST(ClusterStateTest, PartialIndexIsPerType) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  nodes[0].devices.push_back(Dev("ascend", "910B"));
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 1, 30, 1'000));
  EXPECT_TRUE(PartialNodes(st, TypeId(st, "nvidia/A100")).empty());
  EXPECT_EQ(PartialNodes(st, TypeId(st, "ascend/910B")), (std::vector<int32_t>{0}));
}

// --- CheckFits ---------------------------------------------------------------

TEST(ClusterStateTest, CheckFitsAcceptsExactFit) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  EXPECT_TRUE(st.CheckFits(Whole(0, {0, 1}, 64'000, 512'000)).ok());
}

TEST(ClusterStateTest, CheckFitsRejectsTooMuchCpu) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(0, {}, 60'000, 0));
  // 64000 - 60000 = 4000m free; 5000m asked.
  absl::Status s = st.CheckFits(Whole(0, {}, 5'000, 0));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("node 'a': 5000m CPU asked, 4000m free"), std::string::npos) << s;
}

TEST(ClusterStateTest, CheckFitsRejectsTooMuchMemory) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  absl::Status s = st.CheckFits(Whole(0, {}, 0, 512'001));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("512001 MiB asked, 512000 MiB free"), std::string::npos) << s;
}

TEST(ClusterStateTest, CheckFitsRejectsDeviceAlreadyHeld) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(0, {1}));
  absl::Status s = st.CheckFits(Whole(0, {1}));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("device #1: 100% / 80000 MiB asked, 0% / 0 MiB free"), std::string::npos) << s;
}

TEST(ClusterStateTest, CheckFitsRejectsShareBeyondWhatIsLeft) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 60, 10'000));
  // 100-60 = 40% left; 50% asked.
  absl::Status s = st.CheckFits(Share(0, 0, 50, 10'000));
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(s.message().find("50% / 10000 MiB asked, 40% / 70000 MiB free"), std::string::npos) << s;
  EXPECT_TRUE(st.CheckFits(Share(0, 0, 40, 10'000)).ok());
}

TEST(ClusterStateTest, CheckFitsRejectsShareBeyondDeviceMemoryLeft) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 10, 70'000));
  // 10% asked fits the compute left (90%), 20000 MiB does not fit 80000-70000 = 10000.
  EXPECT_EQ(st.CheckFits(Share(0, 0, 10, 20'000)).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(ClusterStateTest, CheckFitsRejectsWholeDeviceWhenShared) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 10, 1'000));
  EXPECT_FALSE(st.CheckFits(Whole(0, {0})).ok());
}

TEST(ClusterStateTest, CheckFitsRejectsDuplicateDevice) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  ClusterState st = MustBuild(nodes);
  absl::Status s = st.CheckFits(Whole(0, {0, 2, 0}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("names one device twice"), std::string::npos) << s;
}

TEST(ClusterStateTest, CheckFitsRejectsDeviceIndexOutOfRange) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  absl::Status s = st.CheckFits(Whole(0, {2}));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("node 'a' has no device #2"), std::string::npos) << s;
  EXPECT_EQ(st.CheckFits(Whole(0, {-1})).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClusterStateTest, CheckFitsRejectsNodeIndexOutOfRange) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.CheckFits(Whole(1, {0})).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.CheckFits(Whole(-1, {0})).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClusterStateTest, CheckFitsRejectsInvalidSlice) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.CheckFits(Share(0, 0, 0, 1'000)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.CheckFits(Share(0, 0, 101, 1'000)).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(st.CheckFits(Share(0, 0, 10, -1)).code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClusterStateTest, CheckFitsRejectsNegativeHostRequest) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.CheckFits(Whole(0, {}, -1, 0)).code(), absl::StatusCode::kInvalidArgument);
}

// --- journal -----------------------------------------------------------------

TEST(ClusterStateTest, RollbackRestoresFreeDevices) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  const std::string before = Dump(st);
  const size_t m = st.Mark();
  st.Allocate(Whole(3, {0, 1, 2}, 4'000, 1'000));
  st.Allocate(Whole(1, {3}));
  st.Allocate(Share(2, 0, 40, 1'000));
  ASSERT_NE(Dump(st), before);
  st.Rollback(m);
  EXPECT_EQ(Dump(st), before);
  // 1 + 4 + 2 + 8 = 15 free again.
  EXPECT_EQ(st.free_devices(0), 15);
}

TEST(ClusterStateTest, RollbackReallocatesReleasedPlacements) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  ClusterState st = MustBuild(nodes);
  const TaskPlacement running = Whole(0, {0, 1}, 8'000, 0);
  st.Allocate(running);
  const std::string before = Dump(st);
  const size_t m = st.Mark();
  st.Release(running);  // a "what if" preemption
  st.Allocate(Whole(0, {0, 1, 2}, 8'000, 0));
  st.Rollback(m);
  EXPECT_EQ(Dump(st), before);
  EXPECT_EQ(st.device(0, 0).holders, 1);
  EXPECT_EQ(st.FreeWhole(0, 0), 2);
}

TEST(ClusterStateTest, RollbackRestoresPartialIndex) {
  std::vector<Node> nodes = {MakeNode("a", 2), MakeNode("b", 2)};
  ClusterState st = MustBuild(nodes);
  const TaskPlacement shared = Share(0, 0, 30, 1'000);
  st.Allocate(shared);
  const std::string before = Dump(st);
  const size_t m = st.Mark();
  st.Release(shared);
  st.Allocate(Share(1, 1, 30, 1'000));
  EXPECT_EQ(PartialNodes(st, 0), (std::vector<int32_t>{1}));
  st.Rollback(m);
  EXPECT_EQ(PartialNodes(st, 0), (std::vector<int32_t>{0}));
  EXPECT_EQ(Dump(st), before);
}

TEST(ClusterStateTest, CommitKeepsChanges) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  ClusterState st = MustBuild(nodes);
  const size_t m = st.Mark();
  st.Allocate(Whole(0, {0, 1}));
  const std::string after = Dump(st);
  st.Commit(m);
  EXPECT_EQ(Dump(st), after);
  EXPECT_EQ(st.FreeWhole(0, 0), 2);
}

TEST(ClusterStateTest, CommittedChangesSurviveALaterRollback) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  ClusterState st = MustBuild(nodes);
  const size_t m1 = st.Mark();
  st.Allocate(Whole(0, {0}));
  st.Commit(m1);
  const size_t m2 = st.Mark();
  st.Allocate(Whole(0, {1}));
  st.Rollback(m2);
  // Only the second allocation is undone: 4-1 = 3 free.
  EXPECT_EQ(st.FreeWhole(0, 0), 3);
  EXPECT_EQ(st.device(0, 0).holders, 1);
  EXPECT_EQ(st.device(0, 1).holders, 0);
}

TEST(ClusterStateTest, ChangesWithoutMarkAreNotUndone) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(0, {0}));
  const size_t m = st.Mark();
  st.Rollback(m);
  EXPECT_EQ(st.FreeWhole(0, 0), 3);
}

TEST(ClusterStateTest, NestedRollbackUndoesOnlyInnerChanges) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  const size_t outer = st.Mark();
  st.Allocate(Whole(3, {0, 1}));
  const std::string after_outer = Dump(st);
  const size_t inner = st.Mark();
  st.Allocate(Whole(3, {2, 3}));
  st.Allocate(Whole(1, {0}));
  st.Rollback(inner);
  EXPECT_EQ(Dump(st), after_outer);
  // Outer change still there: n3 has 8-2 = 6 free.
  EXPECT_EQ(st.FreeWhole(3, 0), 6);
  st.Rollback(outer);
  EXPECT_EQ(st.FreeWhole(3, 0), 8);
}

TEST(ClusterStateTest, OuterRollbackUndoesCommittedInnerChanges) {
  std::vector<Node> nodes = IndexNodes();
  ClusterState st = MustBuild(nodes);
  const std::string before = Dump(st);
  const size_t outer = st.Mark();
  st.Allocate(Whole(3, {0}));
  const size_t inner = st.Mark();
  st.Allocate(Whole(2, {0, 1}));
  st.Commit(inner);  // inner "try" succeeded, the outer one is abandoned
  st.Allocate(Whole(1, {0}));
  st.Rollback(outer);
  EXPECT_EQ(Dump(st), before);
}

TEST(ClusterStateTest, JournalIsOffAfterLastMarkCloses) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  ClusterState st = MustBuild(nodes);
  const size_t m1 = st.Mark();
  st.Allocate(Whole(0, {0}));
  st.Rollback(m1);
  // No mark open: this allocation is permanent, and a fresh mark starts at 0.
  st.Allocate(Whole(0, {1}));
  const size_t m2 = st.Mark();
  EXPECT_EQ(m2, 0u);
  st.Allocate(Whole(0, {2}));
  st.Rollback(m2);
  EXPECT_EQ(st.device(0, 0).holders, 0);
  EXPECT_EQ(st.device(0, 1).holders, 1);
  EXPECT_EQ(st.device(0, 2).holders, 0);
}

// --- usable devices ----------------------------------------------------------

TEST(ClusterStateTest, UnhealthyDeviceIsNotUsable) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  nodes[0].devices[2].healthy = false;
  ClusterState st = MustBuild(nodes);
  EXPECT_FALSE(st.device(0, 2).usable);
  EXPECT_EQ(st.usable_devices(0), 3);
  EXPECT_EQ(st.free_devices(0), 3);
  EXPECT_EQ(st.FreeWhole(0, 0), 3);
  EXPECT_EQ(Visits(st, 0, 1, false), (std::vector<std::pair<int32_t, int32_t>>{{0, 3}}));
}

TEST(ClusterStateTest, DrainedDeviceIsNotUsable) {
  std::vector<Node> nodes = {MakeNode("a", 0)};
  nodes[0].devices = {A100(0), A100(0), A100(1), A100(1)};
  nodes[0].devices[0].drained = true;
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.usable_devices(0), 3);
  EXPECT_EQ(st.FreeWhole(0, 0), 3);
  // Island 0 has one usable device left, island 1 two.
  EXPECT_EQ(st.FreeWholeInBestIsland(0, 0), 2);
  EXPECT_EQ(st.max_per_island(0), 2);
}

TEST(ClusterStateTest, UnschedulableNodeIsNotIndexed) {
  std::vector<Node> nodes = {MakeNode("a", 4), MakeNode("b", 8)};
  nodes[1].schedulable = false;
  ClusterState st = MustBuild(nodes);
  EXPECT_FALSE(st.node(1).schedulable);
  EXPECT_FALSE(st.device(1, 0).usable);
  EXPECT_EQ(st.usable_devices(0), 4);
  EXPECT_EQ(st.free_devices(0), 4);
  EXPECT_EQ(st.max_per_node(0), 4);
  EXPECT_EQ(Visits(st, 0, 1, true), (std::vector<std::pair<int32_t, int32_t>>{{0, 4}}));
}

TEST(ClusterStateTest, UnusableSharedDeviceIsNotPartial) {
  // A running task keeps its share of a device that has since failed.
  std::vector<Node> nodes = {MakeNode("a", 1)};
  nodes[0].devices[0].healthy = false;
  ClusterState st = MustBuild(nodes);
  st.Allocate(Share(0, 0, 30, 1'000));
  EXPECT_TRUE(PartialNodes(st, 0).empty());
}

TEST(ClusterStateTest, ReleasingFromUnusableDeviceKeepsItOutOfIndex) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  nodes[0].devices[1].healthy = false;
  ClusterState st = MustBuild(nodes);
  const TaskPlacement running = Whole(0, {0, 1});
  st.Allocate(running);
  EXPECT_EQ(st.free_devices(0), 0);
  st.Release(running);
  // Only the healthy device comes back.
  EXPECT_EQ(st.free_devices(0), 1);
  EXPECT_EQ(st.FreeWhole(0, 0), 1);
}

TEST(ClusterStateTest, MaxPerNodeAndPerIslandCountUsableDevices) {
  // a: 8 devices in two islands of 4; b: 6 in one island, one of them unhealthy.
  std::vector<Node> nodes = {MakeNode("a", 0), MakeNode("b", 6, /*island=*/0)};
  for (int32_t i = 0; i < 8; ++i) nodes[0].devices.push_back(A100(i / 4));
  nodes[1].devices[5].healthy = false;
  ClusterState st = MustBuild(nodes);
  // max_per_node: max(8, 6-1) = 8. max_per_island: max(4, 4, 5) = 5.
  EXPECT_EQ(st.max_per_node(0), 8);
  EXPECT_EQ(st.max_per_island(0), 5);
}

TEST(ClusterStateTest, MaxPerNodeDoesNotChangeWithAllocation) {
  std::vector<Node> nodes = {MakeNode("a", 4)};
  ClusterState st = MustBuild(nodes);
  st.Allocate(Whole(0, {0, 1, 2}));
  // A capacity bound ("could ever fit"), not a free count.
  EXPECT_EQ(st.max_per_node(0), 4);
  EXPECT_EQ(st.usable_devices(0), 4);
  EXPECT_EQ(st.free_devices(0), 1);
}

TEST(ClusterStateTest, TypeWithNoUsableDeviceHasEmptyIndex) {
  std::vector<Node> nodes = {MakeNode("a", 1)};
  nodes[0].devices.push_back(Dev("ascend", "910B"));
  nodes[0].devices.back().healthy = false;
  ClusterState st = MustBuild(nodes);
  const DeviceTypeId ascend = TypeId(st, "ascend/910B");
  EXPECT_EQ(st.usable_devices(ascend), 0);
  EXPECT_EQ(st.max_per_node(ascend), 0);
  EXPECT_EQ(st.max_per_island(ascend), 0);
  EXPECT_TRUE(Visits(st, ascend, 1, false).empty());
  EXPECT_TRUE(Visits(st, ascend, 1, true).empty());
}

// --- topology ----------------------------------------------------------------

TEST(ClusterStateTest, RacksAreDenseIdsOfTheFullNetworkPath) {
  std::vector<Node> nodes = {MakeNode("a", 1), MakeNode("b", 1), MakeNode("c", 1), MakeNode("d", 1)};
  nodes[0].network_path = {"pod-0", "rack-0"};
  nodes[1].network_path = {"pod-0", "rack-1"};
  nodes[2].network_path = {"pod-0", "rack-0"};
  nodes[3].network_path = {"pod-1", "rack-0"};  // same leaf name, another pod
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.num_racks(), 3);
  EXPECT_EQ(st.node(0).rack, st.node(2).rack);
  EXPECT_NE(st.node(0).rack, st.node(1).rack);
  EXPECT_NE(st.node(0).rack, st.node(3).rack);
}

TEST(ClusterStateTest, NumaIndexIsClampedToTheHost) {
  std::vector<Node> nodes = {MakeNode("a", 2)};
  nodes[0].numa_nodes = {{32'000, 256'000}, {32'000, 256'000}};
  nodes[0].devices[0].numa_node = 1;
  nodes[0].devices[1].numa_node = 7;  // beyond the host's two NUMA nodes
  ClusterState st = MustBuild(nodes);
  EXPECT_EQ(st.device(0, 0).numa, 1);
  EXPECT_EQ(st.device(0, 1).numa, 1);
}

TEST(ClusterStateTest, BuildsSyntheticCluster) {
  sim::ClusterSpec spec;
  spec.nodes = 16;  // 8 types round-robin: 2 nodes of each
  std::vector<Node> nodes = sim::MakeCluster(spec);
  ClusterState st = MustBuild(nodes);
  ASSERT_EQ(st.num_types(), 8);
  for (DeviceTypeId t = 0; t < st.num_types(); ++t) {
    // 2 nodes x 8 devices; 8 devices per node in 2 islands of 4.
    EXPECT_EQ(st.usable_devices(t), 16) << st.type_name(t);
    EXPECT_EQ(st.max_per_node(t), 8);
    EXPECT_EQ(st.max_per_island(t), 4);
  }
  EXPECT_EQ(st.FreeWholeInBestIsland(0, TypeId(st, "nvidia/A100-80G")), 4);
}

}  // namespace
}  // namespace icos::core
