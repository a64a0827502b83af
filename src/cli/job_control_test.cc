// How `icos jobs` shows arrays: elements alike fold into one row.
#include "cli/job_control.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli/summary.h"

namespace icos::cli {
namespace {

nlohmann::json Row(int64_t id, int64_t array, int32_t index, const std::string& state, const std::string& reason) {
  return {{"id", id},         {"name", "n"},       {"user", "u"},       {"queue", "q"},        {"state", state},
          {"reason", reason}, {"submit_ms", 1000}, {"array_id", array}, {"array_index", index}};
}

std::vector<std::string> Ids(const std::vector<JobRow>& rows) {
  std::vector<std::string> ids;
  for (const JobRow& r : rows) ids.push_back(r.id);
  return ids;
}

TEST(JobRowsTest, ElementsAlikeFoldAndOthersStayApart) {
  // Newest first, as the API lists them.
  nlohmann::json jobs = nlohmann::json::array({
      Row(20, 0, -1, "Pending", "Resources: x"),
      Row(19, 10, 9, "Pending", "ArrayThrottle: 2 of array 10"),
      Row(18, 10, 8, "Pending", "ArrayThrottle: 2 of array 10"),
      Row(17, 10, 6, "Pending", "ArrayThrottle: 2 of array 10"),
      Row(16, 10, 5, "Pending", "Resources: y"),
      Row(12, 10, 1, "Running", ""),
      Row(11, 10, 0, "Running", ""),
      Row(9, 0, -1, "Running", ""),
  });
  EXPECT_THAT(Ids(JobRows(jobs, false)), ::testing::ElementsAre("20", "10_[6,8-9]", "10_5", "10_[0-1]", "9"));
  EXPECT_EQ(JobRows(jobs, false)[1].reason, "ArrayThrottle: 2 of array 10");
  EXPECT_THAT(Ids(JobRows(jobs, true)),
              ::testing::ElementsAre("20", "10_9", "10_8", "10_6", "10_5", "10_1", "10_0", "9"));
}

// sinfo's view: a shared device's unheld share is free; a drained node's
// devices and an unhealthy device are out of service.
TEST(ClusterSummaryTest, CountsByTypeAndState) {
  auto dev = [](const std::string& model, bool healthy = true) {
    return nlohmann::json{{"vendor", "nvidia"}, {"model", model}, {"healthy", healthy}, {"drained", false}};
  };
  nlohmann::json nodes = {{"nodes",
                           {{{"name", "a"},
                             {"state", "Ready"},
                             {"drained", false},
                             {"unhealthy_reason", ""},
                             {"node", {{"devices", {dev("A100"), dev("A100"), dev("A100", false)}}}},
                             {"allocations", {{{"device", 0}, {"percent", 100}}, {{"device", 1}, {"percent", 30}}}}},
                            {{"name", "b"},
                             {"state", "Ready"},
                             {"drained", true},
                             {"unhealthy_reason", ""},
                             {"node", {{"devices", {dev("H100")}}}},
                             {"allocations", nlohmann::json::array()}}}}};
  nlohmann::json queues = {{"queues", {{{"name", "default"}, {"pending", 3}, {"running", 2}, {"used", {{"cpu", 4}}}}}}};
  const std::string s = ClusterSummary(nodes, queues);
  EXPECT_THAT(s, ::testing::HasSubstr("nvidia/A100                   3    1.30    0.70    1\n"));
  EXPECT_THAT(s, ::testing::HasSubstr("nvidia/H100                   1    0.00    0.00    1\n"));
  EXPECT_THAT(s, ::testing::HasSubstr("nodes: 2 ready, 0 not ready, 1 drained, 0 unhealthy"));
  EXPECT_THAT(s, ::testing::HasSubstr("default                 3        2  cpu=4"));
}

}  // namespace
}  // namespace icos::cli
