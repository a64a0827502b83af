#include "net/connection_table.h"

#include <gtest/gtest.h>

#include <set>

namespace icos::net {
namespace {

// Opens connections and records which ones the table evicts.
class ConnectionTableTest : public ::testing::Test {
 protected:
  ConnectionTable::Id Open(ConnectionTable& t, const std::string& address, int name) {
    ConnectionTable::Admission a = t.Open(address, [this, name] { evicted_.insert(name); });
    for (auto& evict : a.evict) evict();
    return a.id;
  }
  std::set<int> evicted_;
};

// Over the per-address cap the oldest idle connection gives way to the new
// one: an attacker's parked sockets cannot keep a legitimate client out.
TEST_F(ConnectionTableTest, OverTheAddressCapTheOldestIdleGoes) {
  ConnectionTable t({.max_per_address = 3, .max_total = 100});
  Open(t, "10.0.0.1", 1);
  Open(t, "10.0.0.1", 2);
  Open(t, "10.0.0.1", 3);
  EXPECT_NE(Open(t, "10.0.0.1", 4), 0u);
  EXPECT_EQ(evicted_, std::set<int>({1}));
  EXPECT_NE(Open(t, "10.0.0.1", 5), 0u);
  EXPECT_EQ(evicted_, std::set<int>({1, 2}));
  EXPECT_EQ(t.open("10.0.0.1"), 3u);
  EXPECT_EQ(t.evicted(), 2u);
  // Other addresses have caps of their own.
  EXPECT_NE(Open(t, "10.0.0.2", 6), 0u);
  EXPECT_EQ(t.evicted(), 2u);
}

// A connection serving a request (or waiting for a deferred response, such
// as an agent's watch) is never evicted; with nothing else to evict the new
// connection is refused.
TEST_F(ConnectionTableTest, BusyConnectionsStayAndTheNewOneIsRefused) {
  ConnectionTable t({.max_per_address = 2, .max_total = 100});
  const auto a = Open(t, "10.0.0.1", 1);
  Open(t, "10.0.0.1", 2);
  t.Busy(a);
  const auto c = Open(t, "10.0.0.1", 3);
  ASSERT_NE(c, 0u);
  EXPECT_EQ(evicted_, std::set<int>({2}));  // the idle one, though younger than a
  t.Busy(c);
  EXPECT_EQ(Open(t, "10.0.0.1", 4), 0u);  // both busy: nothing can go
  EXPECT_EQ(t.refused(), 1u);
  EXPECT_EQ(t.open("10.0.0.1"), 2u);
  EXPECT_EQ(evicted_, std::set<int>({2}));
}

// Authenticated connections idle in keep-alive go only after every
// unauthenticated one, even older ones do not go first.
TEST_F(ConnectionTableTest, AuthenticatedIdleConnectionsGoLast) {
  ConnectionTable t({.max_per_address = 2, .max_total = 100});
  const auto user = Open(t, "10.0.0.1", 1);  // oldest
  t.Busy(user);
  t.Idle(user, /*authenticated=*/true);
  Open(t, "10.0.0.1", 2);  // never authenticated
  Open(t, "10.0.0.1", 3);
  EXPECT_EQ(evicted_, std::set<int>({2}));
  Open(t, "10.0.0.1", 4);
  EXPECT_EQ(evicted_, std::set<int>({2, 3}));
  // Authentication is sticky: a later unauthenticated answer on it does not undo it.
  t.Busy(user);
  t.Idle(user, /*authenticated=*/false);
  Open(t, "10.0.0.1", 5);
  EXPECT_EQ(evicted_, std::set<int>({2, 3, 4}));
}

// Over the global cap the address holding the most connections gives one up.
TEST_F(ConnectionTableTest, OverTheGlobalCapTheBiggestAddressPays) {
  ConnectionTable t({.max_per_address = 100, .max_total = 4});
  Open(t, "10.0.0.9", 1);  // a single, older client
  Open(t, "10.0.0.1", 2);
  Open(t, "10.0.0.1", 3);
  Open(t, "10.0.0.1", 4);
  EXPECT_NE(Open(t, "10.0.0.2", 5), 0u);
  EXPECT_EQ(evicted_, std::set<int>({2}));
  EXPECT_EQ(t.open(), 4u);
  EXPECT_EQ(t.open("10.0.0.9"), 1u);
}

TEST_F(ConnectionTableTest, ClosedAndEvictedConnectionsAreForgotten) {
  ConnectionTable t({.max_per_address = 1, .max_total = 100});
  const auto a = Open(t, "10.0.0.1", 1);
  Open(t, "10.0.0.1", 2);
  t.Close(a);  // already evicted: ignored
  t.Busy(a);
  t.Idle(a, true);
  EXPECT_EQ(t.open(), 1u);
  EXPECT_EQ(t.All().size(), 1u);
}

}  // namespace
}  // namespace icos::net
