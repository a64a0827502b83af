// Usage accounting from run intervals: clipping to the window, open
// intervals, fractional shares, grouping by user or queue.
#include "controller/accounting.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace icos::controller {
namespace {

constexpr int64_t kHour = 3'600'000;

store::UsageRecord Interval(const std::string& user, const std::string& queue, int64_t start, int64_t end,
                            int64_t cpu_milli, const std::vector<std::pair<std::string, double>>& devices) {
  store::UsageRecord u;
  u.user = user;
  u.queue = queue;
  u.start_ms = start;
  u.end_ms = end;
  u.cpu_milli = cpu_milli;
  u.devices_json = UsageDevicesJson(devices);
  return u;
}

TEST(AccountingTest, ClipsIntervalsToTheWindow) {
  // Window [1 h, 3 h). alice: 2 whole A100 from 0 h to 2 h -> 1 h inside -> 2.0
  // device-hours, 4 cores x 1 h = 4.0 CPU-hours. bob: half an Ascend from
  // 2.5 h to 5 h -> 0.5 h inside -> 0.25 device-hours, 1 core -> 0.5 CPU-hours.
  // carol: 0 h to 1 h ends exactly at the window start -> nothing.
  std::vector<store::UsageRecord> in = {
      Interval("alice", "q", 0, 2 * kHour, 4000, {{"nvidia/A100", 1}, {"nvidia/A100", 1}}),
      Interval("bob", "q", 5 * kHour / 2, 5 * kHour, 1000, {{"ascend/910B", 0.5}}),
      Interval("carol", "q", 0, kHour, 1000, {{"nvidia/A100", 1}}),
  };
  auto rows = ComputeUsage(in, {}, UsageBy::kUser, kHour, 3 * kHour, 10 * kHour);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].key, "alice");
  EXPECT_DOUBLE_EQ((*rows)[0].device_hours.at("nvidia/A100"), 2.0);
  EXPECT_DOUBLE_EQ((*rows)[0].device_hours_total, 2.0);
  EXPECT_DOUBLE_EQ((*rows)[0].cpu_hours, 4.0);
  EXPECT_EQ((*rows)[1].key, "bob");
  EXPECT_DOUBLE_EQ((*rows)[1].device_hours.at("ascend/910B"), 0.25);
  EXPECT_DOUBLE_EQ((*rows)[1].cpu_hours, 0.5);
}

TEST(AccountingTest, OpenIntervalEndsAtNow) {
  // Running since 1 h, now is 1.5 h, window [0, 10 h): 0.5 h x 1 device.
  auto rows = ComputeUsage({Interval("a", "q", kHour, 0, 0, {{"nvidia/A100", 1}})}, {}, UsageBy::kUser, 0, 10 * kHour,
                           3 * kHour / 2);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 1u);
  EXPECT_DOUBLE_EQ((*rows)[0].device_hours_total, 0.5);
}

TEST(AccountingTest, GroupsByQueueAndAddsJobCounts) {
  std::vector<store::UsageRecord> in = {Interval("alice", "train", 0, kHour, 0, {{"nvidia/A100", 1}}),
                                        Interval("bob", "train", 0, kHour, 0, {{"nvidia/V100", 0.25}})};
  std::vector<store::JobCounts> counts = {{"alice", "train", 2, 1, 0, 0}, {"bob", "infer", 1, 0, 1, 0}};
  auto rows = ComputeUsage(in, counts, UsageBy::kQueue, 0, kHour, kHour);
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].key, "infer");  // counts alone make a row
  EXPECT_EQ((*rows)[0].failed, 1);
  EXPECT_DOUBLE_EQ((*rows)[0].device_hours_total, 0);
  EXPECT_EQ((*rows)[1].key, "train");
  EXPECT_DOUBLE_EQ((*rows)[1].device_hours.at("nvidia/A100"), 1.0);
  EXPECT_DOUBLE_EQ((*rows)[1].device_hours.at("nvidia/V100"), 0.25);
  EXPECT_DOUBLE_EQ((*rows)[1].device_hours_total, 1.25);
  EXPECT_EQ((*rows)[1].submitted, 2);
  EXPECT_EQ((*rows)[1].succeeded, 1);
}

TEST(AccountingTest, MalformedDevicesAreDataLoss) {
  store::UsageRecord u = Interval("a", "q", 0, kHour, 0, {});
  u.devices_json = "{not json";
  auto rows = ComputeUsage({u}, {}, UsageBy::kUser, 0, kHour, kHour);
  EXPECT_EQ(rows.status().code(), absl::StatusCode::kDataLoss);
}

TEST(AccountingTest, ParsesGrouping) {
  EXPECT_EQ(ParseUsageBy("user"), UsageBy::kUser);
  EXPECT_EQ(ParseUsageBy("queue"), UsageBy::kQueue);
  EXPECT_EQ(ParseUsageBy("node"), std::nullopt);
}

}  // namespace
}  // namespace icos::controller
