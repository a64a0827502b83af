// `icos gateway`'s reading of the API's route replies.
#include "cli/gateway_command.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace icos::cli {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(ParseRouteTest, AReplyIsReadAndABrokenOneIsAnErrorNotAnEmptyRoute) {
  absl::StatusOr<controller::ServiceRoute> r =
      ParseRoute(json{{"id", 12}, {"ready", {"10.0.0.1:29500", "10.0.0.2:29501"}}, {"cold_start_ms", 60'000}});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->id, 12);
  EXPECT_THAT(r->ready, ElementsAre("10.0.0.1:29500", "10.0.0.2:29501"));
  EXPECT_EQ(r->cold_start_ms, 60'000);
  EXPECT_EQ(ParseRoute(json{{"id", 3}, {"ready", json::array()}})->cold_start_ms, 0);
  EXPECT_THAT(ParseRoute(json{{"ready", json::array()}}).status().message(), HasSubstr("lacks id or ready"));
  EXPECT_THAT(ParseRoute(json{{"id", 3}, {"ready", {1, 2}}}).status().message(), HasSubstr("non-string address"));
  EXPECT_FALSE(ParseRoute(json::array()).ok());
}

}  // namespace
}  // namespace icos::cli
