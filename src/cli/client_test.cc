// `icos usage --since/--until` time arguments.
#include "cli/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace icos::cli {
namespace {

constexpr int64_t kNow = 1'764'140'000;  // 2025-11-26T06:53:20Z

TEST(ParseTimeArgTest, DurationsCountBackFromNow) {
  EXPECT_EQ(*ParseTimeArg("90s", kNow), kNow - 90);
  EXPECT_EQ(*ParseTimeArg("30m", kNow), kNow - 1800);
  EXPECT_EQ(*ParseTimeArg("12h", kNow), kNow - 43'200);
  EXPECT_EQ(*ParseTimeArg("7d", kNow), kNow - 604'800);
  EXPECT_EQ(*ParseTimeArg("2w", kNow), kNow - 1'209'600);
}

TEST(ParseTimeArgTest, DatesAreUtcMidnight) {
  // 2026-11-01 is 20,758 days after 1970-01-01: 20,758 x 86,400 = 1,793,491,200.
  EXPECT_EQ(*ParseTimeArg("2026-11-01", kNow), 1'793'491'200);
}

TEST(ParseTimeArgTest, Rfc3339AndUnixSeconds) {
  EXPECT_EQ(*ParseTimeArg("2026-11-01T08:00:00Z", kNow), 1'793'491'200 + 8 * 3600);
  EXPECT_EQ(*ParseTimeArg("2026-11-01T08:00:00+08:00", kNow), 1'793'491'200);
  EXPECT_EQ(*ParseTimeArg("1793491200", kNow), 1'793'491'200);
}

TEST(ParseTimeArgTest, GarbageIsAClearError) {
  for (const char* bad : {"", "yesterday", "7x", "-3d", "2026-13-45", "d"}) {
    auto t = ParseTimeArg(bad, kNow);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("RFC 3339")) << bad;
  }
}

}  // namespace
}  // namespace icos::cli
