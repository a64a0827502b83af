#include "controller/port_book.h"

#include <gtest/gtest.h>

namespace icos::controller {
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

}  // namespace
}  // namespace icos::controller
