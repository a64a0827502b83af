#include "core/resources/quota.h"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

#include "core/testing/builders.h"

namespace icos::core {
namespace {

Node MakeNode(const std::string& name, const std::string& vendor, const std::string& model, int32_t count) {
  Node n;
  n.name = name;
  n.cpu_milli = 64'000;
  n.memory_mib = 512'000;
  for (int32_t i = 0; i < count; ++i) {
    Device d;
    d.vendor = vendor;
    d.model = model;
    d.memory_mib = 80'000;
    n.devices.push_back(d);
  }
  return n;
}

using builders::Q;

QuotaDelta Cpu(int64_t cpu_milli) {
  QuotaDelta d;
  d.cpu_milli = cpu_milli;
  return d;
}

QuotaDelta Memory(int64_t memory_mib) {
  QuotaDelta d;
  d.memory_mib = memory_mib;
  return d;
}

QuotaDelta Devices(DeviceTypeId type, int64_t milli) {
  QuotaDelta d;
  d.type = type;
  d.device_milli = milli;
  return d;
}

// Cluster: 4 nvidia/A100, 4 nvidia/H100, 4 ascend/910B, one node each, 64 CPU
// and 512000 MiB per node. Capacity: cpu 192000m, memory 1536000 MiB,
// devices 12000, nvidia 8000, ascend 4000, each type 4000 milli-devices.
class QuotaTest : public ::testing::Test {
 protected:
  static constexpr DeviceTypeId kA100 = 0, kH100 = 1, k910B = 2;

  QuotaTest()
      : nodes_({MakeNode("n0", "nvidia", "A100", 4), MakeNode("n1", "nvidia", "H100", 4),
                MakeNode("n2", "ascend", "910B", 4)}),
        cluster_(*ClusterState::Build(nodes_)) {}

  absl::StatusOr<QuotaTracker> Build(const std::vector<Queue>& queues) { return QuotaTracker::Build(queues, cluster_); }

  QuotaTracker MustBuild(const std::vector<Queue>& queues) {
    absl::StatusOr<QuotaTracker> qt = Build(queues);
    EXPECT_TRUE(qt.ok()) << qt.status();
    return *std::move(qt);
  }

  // The queue index of `name`, failing the test when there is none.
  static int32_t Idx(const QuotaTracker& qt, const std::string& name) {
    const int32_t q = qt.Find(name);
    EXPECT_GE(q, 0) << name;
    return q;
  }

  std::vector<Node> nodes_;
  ClusterState cluster_;
};

std::string ErrorOf(const absl::StatusOr<QuotaTracker>& qt) {
  EXPECT_FALSE(qt.ok());
  EXPECT_EQ(qt.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(qt.status().message());
}

testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return testing::AssertionSuccess();
  return testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// --- Build -----------------------------------------------------------------

TEST_F(QuotaTest, BuildRejectsDuplicateQueue) {
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("a"), Q("b"), Q("a")})), "queue 'a' is declared twice"));
}

TEST_F(QuotaTest, BuildRejectsDefaultQueueDeclaredTwice) {
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("default"), Q("default")})), "'default' is declared twice"));
}

TEST_F(QuotaTest, BuildRejectsQueueWithoutName) {
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("a"), Q("")})), "has no name"));
}

TEST_F(QuotaTest, BuildRejectsUnknownParent) {
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("a"), Q("b", "nope")})), "queue 'b' names unknown parent 'nope'"));
}

TEST_F(QuotaTest, BuildRejectsParentCycle) {
  // root <- a <- b <- c <- a: a, b and c form a loop.
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("root"), Q("a", "c"), Q("b", "a"), Q("c", "b")})), "cycle"));
}

TEST_F(QuotaTest, BuildRejectsQueueThatIsItsOwnParent) {
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("a", "a")})), "cycle"));
}

TEST_F(QuotaTest, BuildRejectsNonPositiveWeight) {
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("a", "", 0.0)})), "queue 'a' weight must be a positive number"));
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("a", "", -1.0)})), "weight"));
}

TEST_F(QuotaTest, BuildRejectsNonFiniteWeight) {
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("a", "", std::numeric_limits<double>::quiet_NaN())})), "weight"));
  EXPECT_TRUE(Contains(ErrorOf(Build({Q("a", "", std::numeric_limits<double>::infinity())})), "weight"));
}

TEST_F(QuotaTest, BuildRejectsNegativeGuarantee) {
  Queue a = Q("a");
  a.guaranteed["nvidia/A100"] = -1000;
  EXPECT_TRUE(Contains(ErrorOf(Build({a})), "queue 'a': nvidia/A100 must not be negative"));
}

TEST_F(QuotaTest, BuildRejectsNegativeLimit) {
  Queue a = Q("a");
  a.limit["cpu"] = -1;
  EXPECT_TRUE(Contains(ErrorOf(Build({a})), "queue 'a': cpu must not be negative"));
}

TEST_F(QuotaTest, BuildAcceptsKeysOfTypesNotInTheCluster) {
  // A limit may name hardware that is not installed yet.
  Queue a = Q("a");
  a.limit["amd/MI300X"] = 8000;
  a.guaranteed["cambricon"] = 1000;
  EXPECT_TRUE(Build({a}).ok());
}

TEST_F(QuotaTest, AddsImplicitDefaultQueue) {
  QuotaTracker qt = MustBuild({Q("a")});
  // "a" plus the implicit "default", both roots.
  ASSERT_EQ(qt.num_queues(), 2);
  EXPECT_EQ(qt.Find("default"), 1);
  EXPECT_EQ(qt.Find(""), 1);
  EXPECT_EQ(qt.parent(1), -1);
  EXPECT_EQ(qt.roots(), (std::vector<int32_t>{0, 1}));
}

TEST_F(QuotaTest, KeepsDeclaredDefaultQueue) {
  Queue def = Q("default", "", 3.0);
  QuotaTracker qt = MustBuild({Q("a"), def});
  ASSERT_EQ(qt.num_queues(), 2);
  EXPECT_EQ(qt.Find(""), 1);
  EXPECT_EQ(qt.queue(1).weight, 3.0);
}

TEST_F(QuotaTest, FindUnknownQueueReturnsMinusOne) {
  QuotaTracker qt = MustBuild({Q("a")});
  EXPECT_EQ(qt.Find("b"), -1);
}

TEST_F(QuotaTest, RecordsParentsAndChildren) {
  QuotaTracker qt = MustBuild({Q("org"), Q("team-b", "org"), Q("solo"), Q("team-a", "org")});
  const int32_t org = Idx(qt, "org");
  EXPECT_EQ(qt.parent(Idx(qt, "team-a")), org);
  EXPECT_EQ(qt.parent(org), -1);
  // Children in declaration order.
  EXPECT_EQ(qt.children(org), (std::vector<int32_t>{Idx(qt, "team-b"), Idx(qt, "team-a")}));
  EXPECT_EQ(qt.roots(), (std::vector<int32_t>{org, Idx(qt, "solo"), Idx(qt, "default")}));
}

TEST_F(QuotaTest, ParentMayBeDeclaredAfterChild) {
  QuotaTracker qt = MustBuild({Q("child", "parent"), Q("parent")});
  EXPECT_EQ(qt.parent(Idx(qt, "child")), Idx(qt, "parent"));
}

TEST(QuotaDeltaTest, AddsAmountsAndKeepsType) {
  QuotaDelta a = Cpu(1'000);
  a += Devices(3, 2'000);
  a += Memory(512);
  EXPECT_EQ(a.cpu_milli, 1'000);
  EXPECT_EQ(a.memory_mib, 512);
  EXPECT_EQ(a.device_milli, 2'000);
  // A delta without devices (type -1) does not clear the type.
  EXPECT_EQ(a.type, 3);
}

// --- Apply -------------------------------------------------------------------

TEST_F(QuotaTest, ApplyPropagatesToAncestors) {
  QuotaTracker qt = MustBuild({Q("org"), Q("team", "org"), Q("leaf", "team"), Q("other", "org"), Q("solo")});
  const auto cap = qt.Capacity(cluster_);
  qt.Apply(Idx(qt, "leaf"), Cpu(19'200), +1);
  // 19200 / 192000 = 0.1 on leaf, team and org; siblings and other roots untouched.
  EXPECT_DOUBLE_EQ(qt.DominantShare(Idx(qt, "leaf"), cap), 0.1);
  EXPECT_DOUBLE_EQ(qt.DominantShare(Idx(qt, "team"), cap), 0.1);
  EXPECT_DOUBLE_EQ(qt.DominantShare(Idx(qt, "org"), cap), 0.1);
  EXPECT_EQ(qt.DominantShare(Idx(qt, "other"), cap), 0.0);
  EXPECT_EQ(qt.DominantShare(Idx(qt, "solo"), cap), 0.0);
}

TEST_F(QuotaTest, ApplyWithMinusOneRemovesUsage) {
  QuotaTracker qt = MustBuild({Q("org"), Q("team", "org")});
  const auto cap = qt.Capacity(cluster_);
  const QuotaDelta d = Devices(kA100, 2'000);
  qt.Apply(Idx(qt, "team"), d, +1);
  qt.Apply(Idx(qt, "team"), d, -1);
  EXPECT_EQ(qt.DominantShare(Idx(qt, "team"), cap), 0.0);
  EXPECT_EQ(qt.DominantShare(Idx(qt, "org"), cap), 0.0);
  EXPECT_FALSE(qt.IsBorrowing(Idx(qt, "org")));
}

TEST_F(QuotaTest, ChildUsageCountsAgainstParentLimit) {
  Queue org = Q("org");
  org.limit["devices"] = 4'000;
  QuotaTracker qt = MustBuild({org, Q("team", "org")});
  qt.Apply(Idx(qt, "team"), Devices(kA100, 4'000), +1);
  // The parent is full through its child: even 1 more H100 is refused.
  EXPECT_TRUE(Contains(qt.CheckLimits(Idx(qt, "org"), Devices(kH100, 1'000)), "queue 'org'"));
}

// --- CheckLimits -------------------------------------------------------------

TEST_F(QuotaTest, CheckLimitsOnTotalDevices) {
  Queue a = Q("a");
  a.limit["devices"] = 4'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  qt.Apply(q, Devices(kA100, 3'000), +1);
  // 3000 + 2000 = 5000 > 4000; any type counts toward "devices".
  EXPECT_EQ(qt.CheckLimits(q, Devices(k910B, 2'000)),
            "queue 'a' would exceed its limit of 4 x devices (uses 3 x devices, job asks 2 x devices)");
  // 3000 + 1000 = 4000: exactly at the limit is allowed.
  EXPECT_EQ(qt.CheckLimits(q, Devices(kH100, 1'000)), "");
}

TEST_F(QuotaTest, CheckLimitsOnVendorKey) {
  Queue a = Q("a");
  a.limit["nvidia"] = 2'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  qt.Apply(q, Devices(kA100, 1'000), +1);
  // A100 and H100 share the vendor limit: 1000 + 2000 = 3000 > 2000.
  EXPECT_TRUE(Contains(qt.CheckLimits(q, Devices(kH100, 2'000)), "limit of 2 x nvidia"));
  // 1000 + 1000 = 2000 fits.
  EXPECT_EQ(qt.CheckLimits(q, Devices(kH100, 1'000)), "");
  // Another vendor is not limited at all.
  EXPECT_EQ(qt.CheckLimits(q, Devices(k910B, 4'000)), "");
}

TEST_F(QuotaTest, CheckLimitsOnTypeKey) {
  Queue a = Q("a");
  a.limit["nvidia/A100"] = 1'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  EXPECT_EQ(qt.CheckLimits(q, Devices(kA100, 2'000)),
            "queue 'a' would exceed its limit of 1 x nvidia/A100 (uses 0 x nvidia/A100, job asks 2 x nvidia/A100)");
  // Another model of the same vendor is not limited.
  EXPECT_EQ(qt.CheckLimits(q, Devices(kH100, 4'000)), "");
}

TEST_F(QuotaTest, CheckLimitsOnCpu) {
  Queue a = Q("a");
  a.limit["cpu"] = 8'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  qt.Apply(q, Cpu(6'000), +1);
  // 6 + 4 = 10 CPU > 8.
  EXPECT_EQ(qt.CheckLimits(q, Cpu(4'000)), "queue 'a' would exceed its limit of 8 CPU (uses 6 CPU, job asks 4 CPU)");
  EXPECT_EQ(qt.CheckLimits(q, Cpu(2'000)), "");
}

TEST_F(QuotaTest, CheckLimitsOnMemory) {
  Queue a = Q("a");
  a.limit["memory"] = 1'024;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  EXPECT_EQ(qt.CheckLimits(q, Memory(2'048)),
            "queue 'a' would exceed its limit of 1024 MiB (uses 0 MiB, job asks 2048 MiB)");
  EXPECT_EQ(qt.CheckLimits(q, Memory(1'024)), "");
}

TEST_F(QuotaTest, CheckLimitsOnAncestorLimit) {
  Queue org = Q("org");
  org.limit["devices"] = 4'000;
  QuotaTracker qt = MustBuild({org, Q("x", "org"), Q("y", "org")});
  qt.Apply(Idx(qt, "y"), Devices(kA100, 3'000), +1);
  // x has no limit of its own, but org would hold 3000 + 2000 = 5000 > 4000.
  EXPECT_TRUE(Contains(qt.CheckLimits(Idx(qt, "x"), Devices(kH100, 2'000)), "queue 'org' would exceed its limit"));
  EXPECT_EQ(qt.CheckLimits(Idx(qt, "x"), Devices(kH100, 1'000)), "");
}

TEST_F(QuotaTest, CheckLimitsNamesTheNearestQueueAtItsLimit) {
  Queue org = Q("org");
  org.limit["cpu"] = 4'000;
  Queue team = Q("team", "org");
  team.limit["cpu"] = 2'000;
  QuotaTracker qt = MustBuild({org, team});
  EXPECT_TRUE(Contains(qt.CheckLimits(Idx(qt, "team"), Cpu(8'000)), "queue 'team'"));
}

TEST_F(QuotaTest, CheckLimitsIgnoresResourcesWithoutLimit) {
  Queue a = Q("a");
  a.limit["ascend"] = 0;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  // Nothing limits nvidia, CPU or memory.
  QuotaDelta big = Devices(kA100, 4'000);
  big.cpu_milli = 1'000'000;
  big.memory_mib = 10'000'000;
  EXPECT_EQ(qt.CheckLimits(q, big), "");
  // A limit of zero is a limit.
  EXPECT_TRUE(Contains(qt.CheckLimits(q, Devices(k910B, 1'000)), "limit of 0 x ascend"));
}

TEST_F(QuotaTest, CheckLimitsOnUntypedDeviceDemandChecksOnlyTotal) {
  // A demand with the device type still open (type -1) touches "devices" only.
  Queue a = Q("a");
  a.limit["nvidia"] = 0;
  a.limit["devices"] = 2'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  EXPECT_EQ(qt.CheckLimits(q, Devices(-1, 2'000)), "");
  EXPECT_TRUE(Contains(qt.CheckLimits(q, Devices(-1, 3'000)), "x devices"));
}

TEST_F(QuotaTest, MayBorrowFalseCapsAtGuarantee) {
  Queue a = Q("a");
  a.guaranteed["cpu"] = 4'000;
  a.may_borrow = false;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  EXPECT_EQ(qt.CheckLimits(q, Cpu(4'000)), "");
  qt.Apply(q, Cpu(3'000), +1);
  // 3 + 2 = 5 CPU > the 4 CPU guarantee, although no limit is set.
  EXPECT_EQ(qt.CheckLimits(q, Cpu(2'000)), "queue 'a' may not borrow beyond its guarantee of 4 CPU");
  EXPECT_EQ(qt.CheckLimits(q, Cpu(1'000)), "");
}

TEST_F(QuotaTest, MayBorrowFalseCapsDevicesAtGuarantee) {
  // A typed device delta counts against "devices", the vendor and the type,
  // so all three are guaranteed here.
  Queue a = Q("a");
  a.guaranteed = {{"devices", 2'000}, {"nvidia", 2'000}, {"nvidia/A100", 2'000}};
  a.may_borrow = false;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  EXPECT_EQ(qt.CheckLimits(q, Devices(kA100, 2'000)), "");
  EXPECT_TRUE(Contains(qt.CheckLimits(q, Devices(kA100, 3'000)), "may not borrow beyond its guarantee"));
}

TEST_F(QuotaTest, MayBorrowFalseWithTypeGuaranteeRunsWithinIt) {
  // Guarantee named by type only, as a user writes it. Jobs also ask CPU and
  // count toward "devices" and "nvidia"; nobody guarantees those, so (as for
  // IsBorrowing) they are not borrowed and must not block the queue.
  Queue a = Q("a");
  a.guaranteed["nvidia/A100"] = 2'000;
  a.may_borrow = false;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  QuotaDelta d = Devices(kA100, 2'000);
  d.cpu_milli = 8'000;
  EXPECT_EQ(qt.CheckLimits(q, d), "");
  EXPECT_EQ(qt.CheckNeverFits(q, d), "");
  // 3000 > 2000 guaranteed A100s: refused now and forever.
  EXPECT_EQ(qt.CheckLimits(q, Devices(kA100, 3'000)),
            "queue 'a' may not borrow beyond its guarantee of 2 x nvidia/A100");
  EXPECT_EQ(qt.CheckNeverFits(q, Devices(kA100, 3'000)),
            "asks 3 x nvidia/A100 but queue 'a' is capped at 2 x nvidia/A100");
}

TEST_F(QuotaTest, MayBorrowTrueRunsBeyondGuarantee) {
  Queue a = Q("a");
  a.guaranteed["cpu"] = 4'000;
  QuotaTracker qt = MustBuild({a});
  EXPECT_EQ(qt.CheckLimits(Idx(qt, "a"), Cpu(40'000)), "");
}

// --- CheckNeverFits ----------------------------------------------------------

TEST_F(QuotaTest, CheckNeverFitsAboveOwnLimit) {
  Queue a = Q("a");
  a.limit["devices"] = 4'000;
  QuotaTracker qt = MustBuild({a});
  EXPECT_EQ(qt.CheckNeverFits(Idx(qt, "a"), Devices(kA100, 8'000)),
            "asks 8 x devices but queue 'a' is capped at 4 x devices");
}

TEST_F(QuotaTest, CheckNeverFitsIgnoresCurrentUsage) {
  Queue a = Q("a");
  a.limit["devices"] = 4'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  qt.Apply(q, Devices(kA100, 4'000), +1);
  // Full now (CheckLimits refuses), but 4000 fits an empty queue.
  EXPECT_NE(qt.CheckLimits(q, Devices(kA100, 4'000)), "");
  EXPECT_EQ(qt.CheckNeverFits(q, Devices(kA100, 4'000)), "");
}

TEST_F(QuotaTest, CheckNeverFitsAboveAncestorLimit) {
  Queue org = Q("org");
  org.limit["nvidia"] = 2'000;
  QuotaTracker qt = MustBuild({org, Q("team", "org")});
  EXPECT_EQ(qt.CheckNeverFits(Idx(qt, "team"), Devices(kH100, 3'000)),
            "asks 3 x nvidia but queue 'org' is capped at 2 x nvidia");
}

TEST_F(QuotaTest, CheckNeverFitsAboveGuaranteeWhenNotBorrowing) {
  Queue a = Q("a");
  a.guaranteed["cpu"] = 4'000;
  a.limit["cpu"] = 8'000;
  a.may_borrow = false;
  QuotaTracker qt = MustBuild({a});
  // The cap is min(limit 8, guarantee 4) = 4 CPU.
  EXPECT_EQ(qt.CheckNeverFits(Idx(qt, "a"), Cpu(5'000)), "asks 5 CPU but queue 'a' is capped at 4 CPU");
  EXPECT_EQ(qt.CheckNeverFits(Idx(qt, "a"), Cpu(4'000)), "");
}

TEST_F(QuotaTest, CheckNeverFitsWithoutLimits) {
  QuotaTracker qt = MustBuild({Q("a")});
  QuotaDelta huge = Devices(kA100, 1'000'000);
  huge.cpu_milli = 1'000'000'000;
  EXPECT_EQ(qt.CheckNeverFits(Idx(qt, "a"), huge), "");
}

// --- guarantees --------------------------------------------------------------

TEST_F(QuotaTest, IsBorrowingBeyondGuarantee) {
  Queue a = Q("a");
  a.guaranteed["cpu"] = 4'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  EXPECT_FALSE(qt.IsBorrowing(q));
  qt.Apply(q, Cpu(4'000), +1);
  EXPECT_FALSE(qt.IsBorrowing(q));  // exactly the guarantee
  qt.Apply(q, Cpu(1), +1);
  EXPECT_TRUE(qt.IsBorrowing(q));
}

TEST_F(QuotaTest, QueueWithoutGuaranteeBorrowsWhatOthersGuarantee) {
  Queue g = Q("g");
  g.guaranteed["nvidia/A100"] = 2'000;
  QuotaTracker qt = MustBuild({g, Q("a")});
  const int32_t a = Idx(qt, "a");
  // nvidia/A100 is guaranteed to someone; a has 0 of it, so any use is borrowed.
  qt.Apply(a, Devices(kA100, 1'000), +1);
  EXPECT_TRUE(qt.IsBorrowing(a));
}

TEST_F(QuotaTest, ResourcesNobodyGuaranteesAreNeverBorrowed) {
  QuotaTracker qt = MustBuild({Q("a")});
  const int32_t a = Idx(qt, "a");
  QuotaDelta d = Devices(kA100, 4'000);
  d.cpu_milli = 32'000;
  qt.Apply(a, d, +1);
  EXPECT_FALSE(qt.IsBorrowing(a));
}

TEST_F(QuotaTest, IsBorrowingIgnoresResourcesNobodyGuarantees) {
  // A realistic guarantee names only the device type; jobs also use CPU,
  // memory and count toward "devices" and "nvidia", which nobody guarantees.
  Queue a = Q("a");
  a.guaranteed["nvidia/A100"] = 2'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  QuotaDelta d = Devices(kA100, 2'000);
  d.cpu_milli = 16'000;
  d.memory_mib = 64'000;
  qt.Apply(q, d, +1);
  EXPECT_FALSE(qt.IsBorrowing(q));
  qt.Apply(q, Devices(kA100, 1'000), +1);  // 3000 > 2000 A100
  EXPECT_TRUE(qt.IsBorrowing(q));
}

TEST_F(QuotaTest, ParentBorrowsThroughItsChildren) {
  Queue org = Q("org");
  org.guaranteed["cpu"] = 4'000;
  QuotaTracker qt = MustBuild({org, Q("x", "org"), Q("y", "org")});
  qt.Apply(Idx(qt, "x"), Cpu(3'000), +1);
  EXPECT_FALSE(qt.IsBorrowing(Idx(qt, "org")));
  // 3 + 2 = 5 CPU in the subtree > 4 guaranteed.
  qt.Apply(Idx(qt, "y"), Cpu(2'000), +1);
  EXPECT_TRUE(qt.IsBorrowing(Idx(qt, "org")));
}

TEST_F(QuotaTest, WithinGuaranteeChecksUsagePlusDelta) {
  Queue a = Q("a");
  a.guaranteed["cpu"] = 4'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  qt.Apply(q, Cpu(3'000), +1);
  // 3 + 1 = 4 fits the guarantee; 3 + 2 = 5 does not.
  EXPECT_TRUE(qt.WithinGuarantee(q, Cpu(1'000)));
  EXPECT_FALSE(qt.WithinGuarantee(q, Cpu(2'000)));
}

TEST_F(QuotaTest, WithinGuaranteeLooksOnlyAtResourcesTheDeltaUses) {
  Queue a = Q("a");
  a.guaranteed["memory"] = 1'024;
  a.guaranteed["cpu"] = 1'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  qt.Apply(q, Cpu(5'000), +1);  // borrowing CPU
  EXPECT_TRUE(qt.IsBorrowing(q));
  EXPECT_TRUE(qt.WithinGuarantee(q, Memory(1'024)));
}

TEST_F(QuotaTest, WithinGuaranteeIgnoresResourcesNobodyGuarantees) {
  Queue a = Q("a");
  a.guaranteed["nvidia/A100"] = 2'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  QuotaDelta d = Devices(kA100, 2'000);
  d.cpu_milli = 16'000;
  // Only nvidia/A100 is guaranteed: 0 + 2000 <= 2000.
  EXPECT_TRUE(qt.WithinGuarantee(q, d));
  EXPECT_FALSE(qt.WithinGuarantee(q, Devices(kA100, 3'000)));
}

TEST_F(QuotaTest, WithinGuaranteeIsFalseWhenDeltaTouchesNothingGuaranteed) {
  // Nothing guaranteed means nothing to reclaim.
  Queue a = Q("a");
  a.guaranteed["nvidia/A100"] = 2'000;
  QuotaTracker qt = MustBuild({a});
  EXPECT_FALSE(qt.WithinGuarantee(Idx(qt, "a"), Cpu(1'000)));
  EXPECT_FALSE(qt.WithinGuarantee(Idx(qt, "a"), Devices(k910B, 1'000)));
}

// --- CheckBorrowing ------------------------------------------------------------

// "reserved" keeps 3 of the 4 A100s for itself while it does not use them.
Queue Reserved() {
  Queue r = Q("reserved");
  r.guaranteed["nvidia/A100"] = 3'000;
  r.lend_idle = false;
  return r;
}

TEST_F(QuotaTest, CheckBorrowingHoldsBackIdleGuaranteeOfNonLender) {
  QuotaTracker qt = MustBuild({Reserved(), Q("other")});
  const int32_t other = Idx(qt, "other");
  // 4 free - 3 held = 1 A100 for everyone else.
  EXPECT_EQ(qt.CheckBorrowing(other, Devices(kA100, 1'000), cluster_), "");
  EXPECT_EQ(qt.CheckBorrowing(other, Devices(kA100, 2'000), cluster_),
            "free nvidia/A100 devices are held back for queues that do not lend their guarantee");
}

TEST_F(QuotaTest, CheckBorrowingHoldsBackOnlyTheIdlePart) {
  QuotaTracker qt = MustBuild({Reserved(), Q("other")});
  const int32_t other = Idx(qt, "other");
  // reserved runs on 2 A100s: 4-2 = 2 free, 3-2 = 1 still held, so 1 is lendable.
  TaskPlacement p;
  p.devices = {{0, 100, 80'000}, {1, 100, 80'000}};
  cluster_.Allocate(p);
  qt.Apply(Idx(qt, "reserved"), Devices(kA100, 2'000), +1);
  EXPECT_EQ(qt.CheckBorrowing(other, Devices(kA100, 1'000), cluster_), "");
  EXPECT_NE(qt.CheckBorrowing(other, Devices(kA100, 2'000), cluster_), "");
}

TEST_F(QuotaTest, CheckBorrowingLendingQueueHoldsNothingBack) {
  Queue r = Reserved();
  r.lend_idle = true;
  QuotaTracker qt = MustBuild({r, Q("other")});
  EXPECT_EQ(qt.CheckBorrowing(Idx(qt, "other"), Devices(kA100, 4'000), cluster_), "");
}

TEST_F(QuotaTest, CheckBorrowingLetsNonLenderAndItsSubtreeUseHeldCapacity) {
  QuotaTracker qt = MustBuild({Reserved(), Q("team", "reserved"), Q("other")});
  // Both are on reserved's path: nothing is held back from them.
  EXPECT_EQ(qt.CheckBorrowing(Idx(qt, "team"), Devices(kA100, 4'000), cluster_), "");
  EXPECT_EQ(qt.CheckBorrowing(Idx(qt, "reserved"), Devices(kA100, 4'000), cluster_), "");
}

TEST_F(QuotaTest, CheckBorrowingHoldsBackFromSiblingsInTheSameParent) {
  QuotaTracker qt = MustBuild({Q("org"),
                               [] {
                                 Queue r = Reserved();
                                 r.parent = "org";
                                 return r;
                               }(),
                               Q("sibling", "org")});
  EXPECT_NE(qt.CheckBorrowing(Idx(qt, "sibling"), Devices(kA100, 2'000), cluster_), "");
}

TEST_F(QuotaTest, CheckBorrowingNeverHoldsBackWithinOwnGuarantee) {
  Queue other = Q("other");
  other.guaranteed["nvidia/A100"] = 2'000;
  QuotaTracker qt = MustBuild({Reserved(), other});
  // other is not borrowing (0 + 2000 <= 2000), so the 4-3 = 1 left does not matter.
  EXPECT_EQ(qt.CheckBorrowing(Idx(qt, "other"), Devices(kA100, 2'000), cluster_), "");
}

TEST_F(QuotaTest, CheckBorrowingHoldsBackOnlyTheGuaranteedType) {
  QuotaTracker qt = MustBuild({Reserved(), Q("other")});
  EXPECT_EQ(qt.CheckBorrowing(Idx(qt, "other"), Devices(kH100, 4'000), cluster_), "");
}

TEST_F(QuotaTest, CheckBorrowingIgnoresDemandWithoutDevices) {
  QuotaTracker qt = MustBuild({Reserved(), Q("other")});
  EXPECT_EQ(qt.CheckBorrowing(Idx(qt, "other"), Cpu(64'000), cluster_), "");
}

// A vendor-wide guarantee is held back across all that vendor's models:
// 4 A100 + 4 H100 free, "reserved" holds 6 nvidia back, so 2 are lendable.
TEST_F(QuotaTest, CheckBorrowingHoldsBackVendorWideGuarantee) {
  Queue r = Q("reserved");
  r.guaranteed["nvidia"] = 6'000;
  r.lend_idle = false;
  QuotaTracker qt = MustBuild({r, Q("other")});
  const int32_t other = Idx(qt, "other");
  EXPECT_EQ(qt.CheckBorrowing(other, Devices(kH100, 2'000), cluster_), "");
  EXPECT_EQ(qt.CheckBorrowing(other, Devices(kA100, 3'000), cluster_),
            "free nvidia devices are held back for queues that do not lend their guarantee");
  // Ascend is not covered by an nvidia guarantee.
  EXPECT_EQ(qt.CheckBorrowing(other, Devices(k910B, 4'000), cluster_), "");
}

TEST_F(QuotaTest, CheckBorrowingHoldsBackGuaranteesOfSeveralNonLenders) {
  Queue r2 = Q("reserved-2");
  r2.guaranteed["nvidia/A100"] = 1'000;
  r2.lend_idle = false;
  QuotaTracker qt = MustBuild({Reserved(), r2, Q("other")});
  // 4 free - 3 - 1 held = 0 left for other.
  EXPECT_NE(qt.CheckBorrowing(Idx(qt, "other"), Devices(kA100, 1'000), cluster_), "");
  // reserved-2 within its own guarantee (0 + 1000 <= 1000) is never held back;
  // beyond it, only reserved's 3 are held from it: 4 - 3 = 1 < 2.
  EXPECT_EQ(qt.CheckBorrowing(Idx(qt, "reserved-2"), Devices(kA100, 1'000), cluster_), "");
  EXPECT_NE(qt.CheckBorrowing(Idx(qt, "reserved-2"), Devices(kA100, 2'000), cluster_), "");
}

// --- DominantShare -------------------------------------------------------------

TEST_F(QuotaTest, DominantShareIsLargestShareAgainstCapacity) {
  QuotaTracker qt = MustBuild({Q("a")});
  const int32_t q = Idx(qt, "a");
  const auto cap = qt.Capacity(cluster_);
  QuotaDelta d = Devices(kA100, 1'000);
  d.cpu_milli = 38'400;
  qt.Apply(q, d, +1);
  // cpu 38400/192000 = 0.2; devices 1000/12000 = 0.083; nvidia 1000/8000 = 0.125;
  // nvidia/A100 1000/4000 = 0.25. Dominant: 0.25.
  EXPECT_DOUBLE_EQ(qt.DominantShare(q, cap), 0.25);
}

TEST_F(QuotaTest, DominantShareDividesByWeight) {
  QuotaTracker qt = MustBuild({Q("heavy", "", 2.0), Q("light", "", 1.0)});
  const auto cap = qt.Capacity(cluster_);
  qt.Apply(Idx(qt, "heavy"), Cpu(96'000), +1);
  qt.Apply(Idx(qt, "light"), Cpu(96'000), +1);
  // Both use 96000/192000 = 0.5 of the CPU; weight 2 halves it to 0.25.
  EXPECT_DOUBLE_EQ(qt.DominantShare(Idx(qt, "heavy"), cap), 0.25);
  EXPECT_DOUBLE_EQ(qt.DominantShare(Idx(qt, "light"), cap), 0.5);
}

TEST_F(QuotaTest, DominantShareMeasuresAgainstGuaranteeWhereSet) {
  Queue a = Q("a");
  a.guaranteed["nvidia/A100"] = 2'000;
  QuotaTracker qt = MustBuild({a});
  const int32_t q = Idx(qt, "a");
  qt.Apply(q, Devices(kA100, 1'000), +1);
  // nvidia/A100 against its guarantee: 1000/2000 = 0.5 (not 1000/4000);
  // devices 1/12 and nvidia 1/8 against capacity are smaller.
  EXPECT_DOUBLE_EQ(qt.DominantShare(q, qt.Capacity(cluster_)), 0.5);
}

TEST_F(QuotaTest, DominantShareOfIdleQueueIsZero) {
  QuotaTracker qt = MustBuild({Q("a", "", 0.5)});
  EXPECT_EQ(qt.DominantShare(Idx(qt, "a"), qt.Capacity(cluster_)), 0.0);
}

TEST_F(QuotaTest, CapacityCountsOnlyUsableDevices) {
  nodes_[0].devices[0].healthy = false;
  nodes_[0].devices[1].drained = true;
  ClusterState cluster = *ClusterState::Build(nodes_);
  QuotaTracker qt = *QuotaTracker::Build({Q("a")}, cluster);
  const int32_t q = Idx(qt, "a");
  qt.Apply(q, Devices(kA100, 1'000), +1);
  // 2 usable A100s left: 1000/2000 = 0.5 is the dominant share.
  EXPECT_DOUBLE_EQ(qt.DominantShare(q, qt.Capacity(cluster)), 0.5);
}

}  // namespace
}  // namespace icos::core
