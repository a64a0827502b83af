#include "engine/port_book.h"

#include <gtest/gtest.h>

namespace icos::engine {
namespace {

TEST(PortBookTest, TakesTheLowestFreePortPerNode) {
  PortBook book(29'500, 4);
  book.Hold("a", 29'500);
  book.Hold("a", 29'502);
  book.Hold("a", 80);  // outside the range: no matter
  EXPECT_EQ(book.Take("a").value(), 29'501);
  EXPECT_EQ(book.Take("a").value(), 29'503);
  EXPECT_EQ(book.Take("b").value(), 29'500);  // another node: its own ports
  EXPECT_EQ(book.Take("a").status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(book.Take("b").value(), 29'501);
}

// A hint spreads jobs over the range (a port just released is not the next
// one handed out); the search wraps past the end.
TEST(PortBookTest, SearchesFromTheHintAndWraps) {
  PortBook book(29'500, 4);
  EXPECT_EQ(book.Take("a", 2).value(), 29'502);
  EXPECT_EQ(book.Take("a", 2).value(), 29'503);
  EXPECT_EQ(book.Take("a", 2).value(), 29'500);  // wrapped
  EXPECT_EQ(book.Take("a", 6).value(), 29'501);  // 6 mod 4 = 2, taken on to 29'501
  EXPECT_FALSE(book.Take("a", 1).ok());
  EXPECT_EQ(book.Take("b", -1).value(), 29'503);  // a negative hint wraps too
}

}  // namespace
}  // namespace icos::engine
