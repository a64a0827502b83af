#include "common/log.h"

#include "gtest/gtest.h"

namespace icos::log {
namespace {

TEST(LogFieldTest, OneWordStaysBare) { EXPECT_EQ(Field("pass"), "pass"); }

TEST(LogFieldTest, SpacesQuotesAndControlCharactersAreQuotedAndEscaped) {
  EXPECT_EQ(Field("database is locked"), "\"database is locked\"");
  EXPECT_EQ(Field("say \"hi\"\\"), "\"say \\\"hi\\\"\\\\\"");
  EXPECT_EQ(Field("a\nb\x01"), "\"a\\nb\\x01\"");
  EXPECT_EQ(Field("k=v"), "\"k=v\"");
  EXPECT_EQ(Field(""), "\"\"");
}

}  // namespace
}  // namespace icos::log
