// Which connections the server holds, per client address, and which to give
// up when an address or the whole server is over its cap.
//
// Eviction policy. Tests, benchmarks and many real deployments (NAT, a
// bastion, every agent behind one gateway) put legitimate clients and an
// attacker on one address, so refusing new connections over the cap would
// lock out the very clients the cap protects. Instead a connection over the
// cap takes the place of one already held, chosen in this order:
//   1. the oldest connection that has never had a request authenticated and
//      is not serving one now: idle or slow (slowloris), or that answered
//      only unauthenticated requests (a scanner, a dashboard's static files);
//   2. else the authenticated connection idle in keep-alive the longest;
//   3. else nothing: every connection is serving a request (or waiting on a
//      deferred one, such as an agent's watch), and the new one is refused.
// A legitimate client sends its request as soon as it connects, so it is
// the newest and last in line while the attacker's connections, older, go
// first; once its request is complete it is busy and not evictable at all.
// To push it out an attacker would have to open a whole cap's worth of
// connections in the moment between its connect and its request.
// Over the global cap the same order applies to the address holding the most
// connections (untrusted ones across addresses first).
//
// Thread-safety: thread-safe (one mutex; each call is O(log n), an eviction
// over the global cap may scan the addresses).
#ifndef ICOS_NET_CONNECTION_TABLE_H_
#define ICOS_NET_CONNECTION_TABLE_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace icos::net {

class ConnectionTable {
 public:
  using Id = uint64_t;
  struct Limits {
    size_t max_per_address = 512;
    size_t max_total = 20'000;
  };
  explicit ConnectionTable(Limits limits) : limits_(limits) {}

  struct Admission {
    Id id = 0;  // 0: refused, nothing could make room; close the new connection
    // Callbacks of the connections given up to make room (already forgotten
    // here): call them, outside any lock of yours, to close those connections.
    std::vector<std::function<void()>> evict;
  };
  // Registers a connection from `address` (not yet busy, not authenticated).
  // `evict` closes it; it is returned by a later Open that evicts it, or All.
  Admission Open(const std::string& address, std::function<void()> evict);
  // The connection has a complete request being served: not evictable.
  void Busy(Id id);
  // The connection waits for its next request. `authenticated`: the request
  // just answered had its credentials accepted (it stays so).
  void Idle(Id id, bool authenticated);
  // Forgets a connection; unknown ids (evicted ones) are ignored.
  void Close(Id id);
  // Every connection's evict callback (to stop the server).
  std::vector<std::function<void()>> All() const;

  size_t open() const;
  size_t open(const std::string& address) const;
  uint64_t evicted() const;
  uint64_t refused() const;
  const Limits& limits() const { return limits_; }

 private:
  struct Entry {
    std::string address;
    bool busy = false;
    bool trusted = false;
    uint64_t opened = 0;  // order of opening: the untrusted are evicted oldest first
    uint64_t key = 0;     // its key in Address::untrusted or trusted_idle while evictable
    std::function<void()> evict;
  };
  struct Address {
    size_t count = 0;
    std::map<uint64_t, Id> untrusted;     // evictable, never authenticated, by `opened`
    std::map<uint64_t, Id> trusted_idle;  // evictable, authenticated, by when they went idle
  };

  // All below REQUIRE mu_.
  void MakeEvictable(Id id, Entry& e);
  void MakeUnevictable(Entry& e);
  // Gives up one connection of `address` per the policy; false if none can go.
  bool EvictOne(const std::string& address, bool trusted_too, std::vector<std::function<void()>>* evict);
  void Forget(std::unordered_map<Id, Entry>::iterator it);
  void Recount(const std::string& address, size_t before, size_t after);

  const Limits limits_;
  mutable std::mutex mu_;
  std::unordered_map<Id, Entry> entries_;
  std::unordered_map<std::string, Address> addresses_;
  std::set<std::pair<size_t, std::string>> by_count_;  // (connections, address), for the global cap
  uint64_t next_ = 1;
  uint64_t evicted_ = 0, refused_ = 0;
};

}  // namespace icos::net

#endif  // ICOS_NET_CONNECTION_TABLE_H_
