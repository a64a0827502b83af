#include "core/resources/quota.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace icos::core {

QuotaDelta& QuotaDelta::operator+=(const QuotaDelta& o) {
  cpu_milli += o.cpu_milli;
  memory_mib += o.memory_mib;
  if (o.type >= 0) type = o.type;
  device_milli += o.device_milli;
  return *this;
}

namespace {
std::string Amount(const std::string& key, int64_t v) {
  if (key == "cpu") return absl::StrCat(v / 1000.0, " CPU");
  if (key == "memory") return absl::StrCat(v, " MiB");
  return absl::StrCat(v / 1000.0, " x ", key);
}
}  // namespace

absl::StatusOr<QuotaTracker> QuotaTracker::Build(const std::vector<Queue>& queues, const ClusterState& cluster) {
  QuotaTracker qt;
  qt.key_names_ = {"cpu", "memory", "devices"};
  for (int i = 0; i < 3; ++i) qt.key_ids_[qt.key_names_[i]] = i;
  auto key = [&qt](const std::string& name) {
    auto [it, fresh] = qt.key_ids_.try_emplace(name, static_cast<int32_t>(qt.key_names_.size()));
    if (fresh) qt.key_names_.push_back(name);
    return it->second;
  };
  for (DeviceTypeId t = 0; t < cluster.num_types(); ++t) {
    qt.type_vendor_key_.push_back(key(cluster.type_vendor(t)));
    qt.type_key_.push_back(key(cluster.type_name(t)));
  }
  qt.queues_ = queues;
  bool has_default = false;
  for (const Queue& q : queues) has_default |= q.name == kDefaultQueue;
  if (!has_default) {
    Queue def;
    def.name = kDefaultQueue;
    qt.queues_.push_back(std::move(def));
  }

  for (size_t i = 0; i < qt.queues_.size(); ++i) {
    const Queue& q = qt.queues_[i];
    if (q.name.empty()) return absl::InvalidArgumentError(absl::StrCat("queue #", i, " has no name"));
    if (!qt.by_name_.try_emplace(q.name, static_cast<int32_t>(i)).second) {
      return absl::InvalidArgumentError(absl::StrCat("queue '", q.name, "' is declared twice"));
    }
    if (!(q.weight > 0) || !std::isfinite(q.weight)) {
      return absl::InvalidArgumentError(absl::StrCat("queue '", q.name, "' weight must be a positive number"));
    }
    for (const auto* m : {&q.guaranteed, &q.limit}) {
      for (const auto& [k, v] : *m) {
        if (v < 0)
          return absl::InvalidArgumentError(absl::StrCat("queue '", q.name, "': ", k, " must not be negative"));
        key(k);
      }
    }
  }
  const int32_t n = static_cast<int32_t>(qt.queues_.size());
  qt.parent_.assign(n, -1);
  qt.children_.assign(n, {});
  for (int32_t i = 0; i < n; ++i) {
    const std::string& p = qt.queues_[i].parent;
    if (p.empty()) {
      qt.roots_.push_back(i);
      continue;
    }
    auto it = qt.by_name_.find(p);
    if (it == qt.by_name_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("queue '", qt.queues_[i].name, "' names unknown parent '", p, "'"));
    }
    qt.parent_[i] = it->second;
    qt.children_[it->second].push_back(i);
  }
  for (int32_t i = 0; i < n; ++i) {  // a walk longer than n steps means a cycle
    int32_t steps = 0;
    for (int32_t a = i; a >= 0; a = qt.parent_[a]) {
      if (++steps > n)
        return absl::InvalidArgumentError(absl::StrCat("queue '", qt.queues_[i].name, "' is in a parent cycle"));
    }
  }
  const size_t keys = qt.key_names_.size();
  qt.usage_.assign(n, std::vector<int64_t>(keys, 0));
  qt.managed_.assign(keys, 0);
  for (int32_t i = 0; i < n; ++i) {
    for (const auto& [k, v] : qt.queues_[i].guaranteed) qt.managed_[qt.key_ids_.at(k)] = 1;
  }
  for (int32_t i = 0; i < n; ++i) {
    qt.guaranteed_.push_back(qt.ToVector(qt.queues_[i].guaranteed, 0));
    qt.limit_.push_back(qt.ToVector(qt.queues_[i].limit, -1));
    if (!qt.queues_[i].lend_idle) qt.non_lending_.push_back(i);
  }
  return qt;
}

std::vector<int64_t> QuotaTracker::ToVector(const ResourceAmounts& amounts, int64_t missing) {
  std::vector<int64_t> v(key_names_.size(), missing);
  for (const auto& [k, amount] : amounts) v[key_ids_.at(k)] = amount;
  return v;
}

int32_t QuotaTracker::Find(const std::string& name) const {
  auto it = by_name_.find(name.empty() ? std::string(kDefaultQueue) : name);
  return it == by_name_.end() ? -1 : it->second;
}

template <typename F>
void QuotaTracker::ForEachKey(const QuotaDelta& d, F&& f) const {
  if (d.cpu_milli != 0) f(kCpu, d.cpu_milli);
  if (d.memory_mib != 0) f(kMemory, d.memory_mib);
  if (d.device_milli != 0) f(kDevices, d.device_milli);
  if (d.type >= 0 && d.device_milli != 0) {
    f(type_vendor_key_[d.type], d.device_milli);
    f(type_key_[d.type], d.device_milli);
  }
}

void QuotaTracker::Apply(int32_t q, const QuotaDelta& d, int sign) {
  for (int32_t a = q; a >= 0; a = parent_[a]) {
    ForEachKey(d, [&](int k, int64_t v) { usage_[a][k] += sign * v; });
  }
}

void QuotaTracker::AddAmounts(int32_t q, const ResourceAmounts& amounts) {
  for (const auto& [name, v] : amounts) {
    auto k = key_ids_.find(name);
    if (k == key_ids_.end()) continue;
    for (int32_t a = q; a >= 0; a = parent_[a]) usage_[a][k->second] += v;
  }
}

std::string QuotaTracker::CheckLimits(int32_t q, const QuotaDelta& d) const {
  std::string why;
  for (int32_t a = q; a >= 0 && why.empty(); a = parent_[a]) {
    ForEachKey(d, [&](int k, int64_t v) {
      if (!why.empty() || limit_[a][k] < 0 || usage_[a][k] + v <= limit_[a][k]) return;
      why =
          absl::StrCat("queue '", queues_[a].name, "' would exceed its limit of ", Amount(key_names_[k], limit_[a][k]),
                       " (uses ", Amount(key_names_[k], usage_[a][k]), ", job asks ", Amount(key_names_[k], v), ")");
    });
  }
  if (why.empty() && !queues_[q].may_borrow) {
    // Like IsBorrowing: only resources some queue guarantees can be borrowed.
    ForEachKey(d, [&](int k, int64_t v) {
      if (!why.empty() || !managed_[k] || usage_[q][k] + v <= guaranteed_[q][k]) return;
      why = absl::StrCat("queue '", queues_[q].name, "' may not borrow beyond its guarantee of ",
                         Amount(key_names_[k], guaranteed_[q][k]));
    });
  }
  return why;
}

std::string QuotaTracker::CheckNeverFits(int32_t q, const QuotaDelta& d) const {
  std::string why;
  for (int32_t a = q; a >= 0 && why.empty(); a = parent_[a]) {
    ForEachKey(d, [&](int k, int64_t v) {
      int64_t cap = limit_[a][k];
      if (a == q && !queues_[q].may_borrow && managed_[k]) {
        cap = cap < 0 ? guaranteed_[q][k] : std::min(cap, guaranteed_[q][k]);
      }
      if (!why.empty() || cap < 0 || v <= cap) return;
      why = absl::StrCat("asks ", Amount(key_names_[k], v), " but queue '", queues_[a].name, "' is capped at ",
                         Amount(key_names_[k], cap));
    });
  }
  return why;
}

std::string QuotaTracker::CheckBorrowing(int32_t q, const QuotaDelta& d, const ClusterState& cluster) const {
  if (non_lending_.empty() || d.type < 0 || d.device_milli == 0) return "";
  // Only device capacity is held back: it is what tenants fight over. A
  // guarantee may name the type, the vendor or all devices; each is checked
  // against the free devices it covers.
  const std::string& vendor = cluster.type_vendor(d.type);
  for (const int key : {type_key_[d.type], type_vendor_key_[d.type], kDevices}) {
    if (usage_[q][key] + d.device_milli <= guaranteed_[q][key]) continue;  // not borrowing this key
    int64_t held = 0;
    for (int32_t other : non_lending_) {
      bool on_path = false;
      for (int32_t a = q; a >= 0 && !on_path; a = parent_[a]) on_path = a == other;
      if (!on_path) held += std::max<int64_t>(0, guaranteed_[other][key] - usage_[other][key]);
    }
    if (held == 0) continue;
    int64_t free_milli = 0;
    for (DeviceTypeId t = 0; t < cluster.num_types(); ++t) {
      const bool covered =
          key == kDevices || (key == type_key_[d.type] ? t == d.type : cluster.type_vendor(t) == vendor);
      if (covered) free_milli += cluster.free_devices(t) * 1000;
    }
    if (free_milli - held < d.device_milli) {
      return absl::StrCat("free ", key_names_[key],
                          " devices are held back for queues that do not lend their guarantee");
    }
  }
  return "";
}

bool QuotaTracker::IsBorrowing(int32_t q) const {
  for (size_t k = 0; k < key_names_.size(); ++k) {
    if (managed_[k] && usage_[q][k] > guaranteed_[q][k]) return true;
  }
  return false;
}

bool QuotaTracker::WithinGuarantee(int32_t q, const QuotaDelta& d) const {
  bool within = true;
  bool any = false;
  ForEachKey(d, [&](int k, int64_t v) {
    if (!managed_[k]) return;
    any = true;
    within &= usage_[q][k] + v <= guaranteed_[q][k];
  });
  if (!any) return false;  // nothing guaranteed: nothing to reclaim
  return within;
}

std::vector<int64_t> QuotaTracker::Capacity(const ClusterState& cluster) const {
  std::vector<int64_t> cap(key_names_.size(), 0);
  for (int32_t n = 0; n < cluster.num_nodes(); ++n) {
    cap[kCpu] += cluster.node(n).cpu_milli;
    cap[kMemory] += cluster.node(n).memory_mib;
  }
  for (DeviceTypeId t = 0; t < cluster.num_types(); ++t) {
    const int64_t milli = cluster.usable_devices(t) * 1000;
    cap[kDevices] += milli;
    cap[type_vendor_key_[t]] += milli;
    cap[type_key_[t]] += milli;
  }
  return cap;
}

double QuotaTracker::DominantShare(int32_t q, const std::vector<int64_t>& capacity) const {
  double share = 0;
  for (size_t k = 0; k < key_names_.size(); ++k) {
    if (usage_[q][k] == 0) continue;
    // Against the guarantee where one is set (the queue's "fair" amount), else the cluster.
    const int64_t base = guaranteed_[q][k] > 0 ? guaranteed_[q][k] : capacity[k];
    if (base > 0) share = std::max(share, static_cast<double>(usage_[q][k]) / static_cast<double>(base));
  }
  return share / queues_[q].weight;
}

}  // namespace icos::core
