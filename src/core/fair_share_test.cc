// Fair share over time (issue #20): a queue's past usage, decayed by its
// half-life, counts in the drf order; quotas never see it.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/resources/usage_history.h"
#include "core/scheduler.h"
#include "core/testing/builders.h"

namespace icos::core {
namespace {

using builders::MakeJob;
using builders::MakeNode;
using builders::MakeRunning;

constexpr int64_t kHour = 3'600'000;

Queue WithHalfLife(const std::string& name, int64_t half_life_s) {
  Queue q;
  q.name = name;
  q.usage_half_life_s = half_life_s;
  return q;
}

TEST(UsageHistoryTest, PastUsageHalvesEveryHalfLife) {
  UsageHistory h;
  const std::vector<Queue> queues = {WithHalfLife("a", 3600), WithHalfLife("b", 0)};
  const std::map<std::string, ResourceAmounts> busy = {{"a", {{"devices", 8'000}}}, {"b", {{"devices", 8'000}}}};
  h.Advance(0, queues, busy);  // starts the clock
  EXPECT_TRUE(h.Equivalent().empty());
  h.Advance(kHour, queues, busy);  // a held 8 devices for one half-life
  EXPECT_EQ(h.Equivalent().at("a").at("devices"), 4'000);
  EXPECT_FALSE(h.Equivalent().count("b"));  // no half-life: no history
  h.Advance(2 * kHour, queues, {});         // then nothing for another
  EXPECT_EQ(h.Equivalent().at("a").at("devices"), 2'000);
  for (int i = 3; i < 100; ++i) h.Advance(i * kHour, queues, busy);
  EXPECT_NEAR(h.Equivalent().at("a").at("devices"), 8'000, 1);  // held for ever: what it holds
}

TEST(UsageHistoryTest, HeldCountsDevicesByTypeAndShares) {
  Snapshot s;
  s.nodes = {MakeNode("n0", "nvidia", "A100", 4)};
  Job j = MakeJob(1, 2);
  j.queue = "a";
  s.running = {MakeRunning(j, 0, {0, 1})};
  const auto held = UsageHistory::Held(s);
  EXPECT_EQ(held.at("a").at("devices"), 2'000);
  EXPECT_EQ(held.at("a").at("nvidia/A100"), 2'000);
  EXPECT_EQ(held.at("a").at("cpu"), 1'000);
}

// Queues a and b, equal weights, 8 free GPUs, 8 one-GPU jobs waiting in
// each, a's submitted first. Today they split 4/4; a queue that used half
// the cluster on average recently yields: b is served until its share
// passes a's present plus past.
TEST(FairShareOverTimeTest, AQueueThatUsedMuchRecentlyYields) {
  Snapshot s;
  s.nodes = {MakeNode("n0", "nvidia", "A100", 8)};
  s.queues = {WithHalfLife("a", 3600), WithHalfLife("b", 3600)};
  for (int i = 0; i < 8; ++i) {
    Job a = MakeJob(1 + i, 1);
    a.queue = "a";
    Job b = MakeJob(100 + i, 1);
    b.queue = "b";
    s.pending.push_back(a);
    s.pending.push_back(b);
  }
  auto count = [](const Decisions& d, int64_t lo, int64_t hi) {
    int n = 0;
    for (const BindDecision& b : d.binds) n += b.job.value() >= lo && b.job.value() < hi;
    return n;
  };
  auto sched = Scheduler::Create({.order = "drf"});
  ASSERT_TRUE(sched.ok());
  absl::StatusOr<Decisions> today = sched->Schedule(s);
  ASSERT_TRUE(today.ok());
  EXPECT_EQ(count(*today, 1, 9), 4);
  EXPECT_EQ(count(*today, 100, 108), 4);

  s.past_usage["a"] = {{"devices", 4'000}};
  absl::StatusOr<Decisions> after = sched->Schedule(s);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(count(*after, 1, 9), 2);
  EXPECT_EQ(count(*after, 100, 108), 6);
}

}  // namespace
}  // namespace icos::core
