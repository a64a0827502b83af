#include "net/connection_table.h"

namespace icos::net {

ConnectionTable::Admission ConnectionTable::Open(const std::string& address, std::function<void()> evict) {
  Admission out;
  std::lock_guard<std::mutex> lock(mu_);
  auto found = addresses_.find(address);
  if (found != addresses_.end() && found->second.count >= limits_.max_per_address &&
      !EvictOne(address, /*trusted_too=*/true, &out.evict)) {
    ++refused_;
    return out;
  }
  if (entries_.size() >= limits_.max_total) {
    // The address with the most connections gives one up; untrusted
    // connections anywhere go before authenticated ones.
    bool made_room = false;
    for (const bool trusted_too : {false, true}) {
      std::string victim;
      for (auto it = by_count_.rbegin(); it != by_count_.rend() && victim.empty(); ++it) {
        const Address& a = addresses_.at(it->second);
        if (!a.untrusted.empty() || (trusted_too && !a.trusted_idle.empty())) victim = it->second;
      }
      if (!victim.empty() && EvictOne(victim, trusted_too, &out.evict)) {
        made_room = true;
        break;
      }
    }
    if (!made_room) {
      ++refused_;
      return out;
    }
  }
  const Id id = next_++;
  Entry& e = entries_[id];
  e.address = address;
  e.opened = id;
  e.evict = std::move(evict);
  Address& a = addresses_[address];
  Recount(address, a.count, a.count + 1);
  ++a.count;
  MakeEvictable(id, e);
  out.id = id;
  return out;
}

void ConnectionTable::Busy(Id id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end() || it->second.busy) return;
  MakeUnevictable(it->second);
  it->second.busy = true;
}

void ConnectionTable::Idle(Id id, bool authenticated) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return;
  MakeUnevictable(it->second);
  it->second.busy = false;
  it->second.trusted = it->second.trusted || authenticated;
  MakeEvictable(id, it->second);
}

void ConnectionTable::Close(Id id) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = entries_.find(id);
  if (it != entries_.end()) Forget(it);
}

std::vector<std::function<void()>> ConnectionTable::All() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::function<void()>> out;
  out.reserve(entries_.size());
  for (const auto& [id, e] : entries_) out.push_back(e.evict);
  return out;
}

size_t ConnectionTable::open() const {
  std::lock_guard<std::mutex> lock(mu_);
  return entries_.size();
}

size_t ConnectionTable::open(const std::string& address) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = addresses_.find(address);
  return it == addresses_.end() ? 0 : it->second.count;
}

uint64_t ConnectionTable::evicted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return evicted_;
}

uint64_t ConnectionTable::refused() const {
  std::lock_guard<std::mutex> lock(mu_);
  return refused_;
}

void ConnectionTable::MakeEvictable(Id id, Entry& e) {
  Address& a = addresses_.at(e.address);
  if (e.trusted) {
    e.key = next_++;  // least recently idle first
    a.trusted_idle.emplace(e.key, id);
  } else {
    e.key = e.opened;  // oldest first
    a.untrusted.emplace(e.key, id);
  }
}

void ConnectionTable::MakeUnevictable(Entry& e) {
  if (e.busy) return;
  Address& a = addresses_.at(e.address);
  (e.trusted ? a.trusted_idle : a.untrusted).erase(e.key);
}

bool ConnectionTable::EvictOne(const std::string& address, bool trusted_too,
                               std::vector<std::function<void()>>* evict) {
  Address& a = addresses_.at(address);
  std::map<uint64_t, Id>* from = !a.untrusted.empty() ? &a.untrusted : trusted_too ? &a.trusted_idle : nullptr;
  if (from == nullptr || from->empty()) return false;
  auto it = entries_.find(from->begin()->second);
  evict->push_back(std::move(it->second.evict));
  ++evicted_;
  Forget(it);
  return true;
}

void ConnectionTable::Forget(std::unordered_map<Id, Entry>::iterator it) {
  Entry& e = it->second;
  MakeUnevictable(e);
  auto a = addresses_.find(e.address);
  Recount(e.address, a->second.count, a->second.count - 1);
  if (--a->second.count == 0) addresses_.erase(a);
  entries_.erase(it);
}

void ConnectionTable::Recount(const std::string& address, size_t before, size_t after) {
  if (before > 0) by_count_.erase({before, address});
  if (after > 0) by_count_.emplace(after, address);
}

}  // namespace icos::net
