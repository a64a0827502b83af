// The scheduling pass, placement: which device types a group may use, where
// each group fits (whole devices, shares, gangs, islands, racks) and, when
// nothing fits, why in words a user can act on.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "core/pass.h"

namespace icos::core {

std::vector<TypeOption> Pass::TypeOptions(const TaskGroup& g) const {
  std::vector<TypeOption> out;
  auto add = [&](DeviceTypeId t, double tput) {
    for (const auto& o : out) {
      if (o.type == t) return;
    }
    out.push_back({t, tput > 0 ? tput : 1.0});
  };
  if (g.device_choices.empty()) {
    for (DeviceTypeId t = 0; t < cluster_.num_types(); ++t) add(t, 1.0);
  }
  for (const DeviceChoice& c : g.device_choices) {
    for (DeviceTypeId t : cluster_.TypesMatching(c)) add(t, c.throughput);
  }
  return out;
}

int32_t Pass::NodesMatching(const std::map<std::string, std::string>& selector) const {
  if (selector.empty()) return cluster_.num_nodes();
  std::string key;
  for (const auto& [k, v] : selector) absl::StrAppend(&key, k, "=", v, "\n");
  auto [it, fresh] = selector_nodes_.try_emplace(key, 0);
  if (fresh) {
    for (int32_t n = 0; n < cluster_.num_nodes(); ++n) it->second += LabelsMatch(cluster_.spec(n), selector) ? 1 : 0;
  }
  return it->second;
}

const Pass::AllDevices& Pass::AllDevicesOf(DeviceTypeId t) const {
  if (all_devices_.empty()) {
    all_devices_.assign(cluster_.num_types(), {});
    std::vector<int32_t> on_node(cluster_.num_types());
    std::map<std::pair<DeviceTypeId, int32_t>, int32_t> on_island;
    for (int32_t n = 0; n < cluster_.num_nodes(); ++n) {
      std::fill(on_node.begin(), on_node.end(), 0);
      on_island.clear();
      for (int32_t d = 0; d < cluster_.node(n).num_devices; ++d) {
        const auto& dev = cluster_.device(n, d);
        if (dev.type < 0) continue;
        AllDevices& a = all_devices_[dev.type];
        ++a.total;
        a.per_node = std::max(a.per_node, ++on_node[dev.type]);
        a.per_island = std::max(a.per_island, ++on_island[{dev.type, dev.island}]);
      }
    }
  }
  return all_devices_[t];
}

std::string Pass::NeverFits(const Job& job, int32_t q, WaitKind* kind) const {
  *kind = WaitKind::kNeverFits;
  QuotaDelta total;
  for (const TaskGroup& g : job.groups) total += Times(TaskDelta(g.request, -1), g.MinReplicas());
  for (const TaskGroup& g : job.groups) {
    const TaskRequest& r = g.request;
    const int32_t n = g.MinReplicas();
    const std::string who = job.groups.size() < 2 ? "" : absl::StrCat("task group '", g.name, "' ");
    if (r.cpu_milli > max_node_cpu_) {
      return absl::StrCat(who, "needs ", r.cpu_milli, "m CPU per task; the largest node has ", max_node_cpu_, "m");
    }
    if (r.memory_mib > max_node_memory_) {
      return absl::StrCat(who, "needs ", r.memory_mib, " MiB per task; the largest node has ", max_node_memory_,
                          " MiB");
    }
    const int32_t matching = NodesMatching(g.node_selector);
    if (matching == 0) {
      std::vector<std::string> labels;
      for (const auto& [k, v] : g.node_selector) labels.push_back(absl::StrCat(k, "=", v));
      return absl::StrCat(who, "asks for nodes labelled ", absl::StrJoin(labels, ", "), " and no node has ",
                          labels.size() > 1 ? "all of those labels" : "that label");
    }
    if (g.affinity == Affinity::kSpread && n > matching) {
      return absl::StrCat(who, "spreads ", n, " tasks one per node; the cluster has ", matching, " node",
                          matching == 1 ? "" : "s", g.node_selector.empty() ? "" : " with its labels");
    }
    if (!r.NeedsDevices()) continue;
    QuotaDelta host = total;
    host.device_milli = 0;
    if (std::string why = NoTypeFits(g, who, host, q, kind); !why.empty()) return why;
  }
  if (q >= 0) return quota_.CheckNeverFits(q, total);
  return "";
}

std::string Pass::NoTypeFits(const TaskGroup& g, const std::string& who, const QuotaDelta& host, int32_t q,
                             WaitKind* kind) const {
  const TaskRequest& r = g.request;
  const int32_t n = g.MinReplicas();
  std::vector<TypeOption> opts = TypeOptions(g);
  if (opts.empty()) {
    std::vector<std::string> wanted, have;
    for (const auto& c : g.device_choices) {
      wanted.push_back(c.model.empty() ? c.vendor : absl::StrCat(c.vendor, "/", c.model));
    }
    for (DeviceTypeId t = 0; t < cluster_.num_types(); ++t) have.push_back(cluster_.type_name(t));
    return absl::StrCat(who, "accepts only ", absl::StrJoin(wanted, " or "), " devices and the cluster has none",
                        have.empty() ? "" : absl::StrCat(" (it has ", absl::StrJoin(have, ", "), ")"));
  }
  std::vector<std::string> whys;  // one per type: why it cannot hold the group
  bool out_of_service = false;    // some type failed only for want of devices in service
  for (const TypeOption& o : opts) {
    const std::string& name = cluster_.type_name(o.type);
    const int32_t k = r.devices > 0 ? r.devices : 1;
    std::string why;
    bool by_quota = false;   // a queue's cap: no device coming back changes it
    bool by_memory = false;  // a device's size: the same
    if (cluster_.usable_devices(o.type) == 0) {
      why = absl::StrCat("needs ", name, " and every such device is unhealthy or drained");
      out_of_service = true;  // an operator or a health check may bring one back
    } else if (g.affinity == Affinity::kSameIsland && k > cluster_.max_per_island(o.type)) {
      why = absl::StrCat("needs ", k, " x ", name, " on one interconnect island; the largest island has ",
                         cluster_.max_per_island(o.type));
    } else if (k > cluster_.max_per_node(o.type)) {
      why =
          absl::StrCat("needs ", k, " x ", name, " on one node; the largest node has ", cluster_.max_per_node(o.type));
    } else if (g.affinity == Affinity::kSameNode && int64_t{k} * n > cluster_.max_per_node(o.type)) {
      why = absl::StrCat("needs ", int64_t{k} * n, " x ", name, " on one node; the largest node has ",
                         cluster_.max_per_node(o.type));
    } else if (r.devices > 0 && int64_t{k} * n > cluster_.usable_devices(o.type)) {
      why = absl::StrCat("needs ", int64_t{k} * n, " x ", name, "; the cluster has ", cluster_.usable_devices(o.type));
    } else if (r.IsFractional() && r.device_memory_mib > 0 && r.device_memory_mib > max_device_memory_[o.type]) {
      why = absl::StrCat("needs ", r.device_memory_mib, " MiB of one ", name, "; the largest has ",
                         max_device_memory_[o.type], " MiB");
      by_memory = true;
    } else if (q >= 0) {
      // A queue may cap a vendor or a model: then this type is out of reach
      // for the job whatever frees up.
      QuotaDelta d = host;  // the job's CPU and memory, and this group's devices
      d.type = o.type;
      d.device_milli = Times(TaskDelta(r, o.type), n).device_milli;
      why = quota_.CheckNeverFits(q, d);
      by_quota = true;
    }
    if (why.empty()) return "";  // this type can hold the group
    // With devices of this type out of service, the group may fit once they
    // return (a drain ends, a health check passes): it waits, not NeverFits.
    if (!by_quota && !by_memory) {
      const AllDevices& all = AllDevicesOf(o.type);
      const int64_t need = int64_t{k} * n;
      out_of_service |= all.total > cluster_.usable_devices(o.type) && k <= all.per_node &&
                        (g.affinity != Affinity::kSameIsland || k <= all.per_island) &&
                        (g.affinity != Affinity::kSameNode || need <= all.per_node) &&
                        (r.devices <= 0 || need <= all.total);
    }
    whys.push_back(std::move(why));
  }
  *kind = out_of_service ? WaitKind::kResources : WaitKind::kNeverFits;
  // A group that named no model can use any: say so, and why each fails,
  // rather than name one model the user never asked for.
  if (g.device_choices.empty() && whys.size() > 1) {
    return absl::StrCat(who, "can use any device model and none can hold it: ", absl::StrJoin(whys, "; "));
  }
  return absl::StrCat(who, whys.back());
}

std::vector<int32_t> Pass::ChooseDevices(int32_t n, DeviceTypeId t, int32_t k, bool same_island) const {
  const auto& ns = cluster_.node(n);
  // Free devices of type t grouped by island, islands in id order.
  std::vector<std::pair<int32_t, std::vector<int32_t>>> islands;
  for (int32_t d = 0; d < ns.num_devices; ++d) {
    const auto& dev = cluster_.device(n, d);
    if (dev.type != t || !dev.WholeFree()) continue;
    auto it = std::find_if(islands.begin(), islands.end(), [&](auto& e) { return e.first == dev.island; });
    if (it == islands.end()) {
      islands.push_back({dev.island, {}});
      it = islands.end() - 1;
    }
    it->second.push_back(d);
  }
  // Best fit: the smallest island that holds all k, so large islands stay whole.
  const std::vector<int32_t>* best = nullptr;
  for (const auto& [id, devs] : islands) {
    if (static_cast<int32_t>(devs.size()) >= k && (best == nullptr || devs.size() < best->size())) best = &devs;
  }
  if (best != nullptr) return {best->begin(), best->begin() + k};
  if (same_island) return {};
  // Otherwise span as few islands as possible: largest first.
  std::stable_sort(islands.begin(), islands.end(), [](auto& a, auto& b) { return a.second.size() > b.second.size(); });
  std::vector<int32_t> out;
  for (const auto& [id, devs] : islands) {
    for (int32_t d : devs) {
      if (static_cast<int32_t>(out.size()) == k) break;
      out.push_back(d);
    }
  }
  if (static_cast<int32_t>(out.size()) < k) return {};
  std::sort(out.begin(), out.end());
  return out;
}

TaskPlacement Pass::MakeTask(int32_t gi, int32_t replica, int32_t n, const TaskRequest& r,
                             std::vector<int32_t> devices) const {
  TaskPlacement p;
  p.group = gi;
  p.replica = replica;
  p.node = n;
  p.cpu_milli = r.cpu_milli;
  p.memory_mib = r.memory_mib;
  for (int32_t d : devices) {
    const auto& dev = cluster_.device(n, d);
    DeviceSlice s;
    s.device = d;
    if (r.IsFractional()) {
      s.percent = r.device_percent > 0 ? r.device_percent : 1;
      s.memory_mib = r.device_memory_mib;
    } else {
      s.percent = kWholeDevicePercent;
      s.memory_mib = dev.memory_mib;
    }
    p.devices.push_back(s);
    if (std::find(p.numa_nodes.begin(), p.numa_nodes.end(), dev.numa) == p.numa_nodes.end())
      p.numa_nodes.push_back(dev.numa);
  }
  std::sort(p.numa_nodes.begin(), p.numa_nodes.end());
  return p;
}

bool Pass::PlaceGroup(const Job& job, const TaskGroup& g, int32_t gi, DeviceTypeId t, int32_t want, bool honour,
                      std::vector<TaskPlacement>& out, Miss& miss) {
  (void)job;
  const TaskRequest& r = g.request;
  const int32_t need = std::min(want, g.MinReplicas());
  if (r.IsFractional()) return PlaceFractional(g, gi, {t}, want, honour, out, miss);
  const NodeScorer& scorer = *sched_.scorer_;
  const int32_t k = r.devices;
  const bool same_island = g.affinity == Affinity::kSameIsland;
  const bool single = want == 1;
  const int32_t limit = single ? opt_.min_feasible_nodes : opt_.gang_feasible_nodes;
  std::vector<Candidate> cands;
  int64_t total_cap = 0;
  int32_t best_cap = 0;
  absl::flat_hash_map<int32_t, int32_t> rack_cap;
  int32_t best_rack_cap = 0;

  auto consider = [&](int32_t n, int32_t free) {
    ++stats_.nodes_scored;
    const auto& ns = cluster_.node(n);
    if (Excluded(n, honour)) {
      ++miss.reserved;
      return true;
    }
    if (!ns.schedulable) return true;
    if (!g.node_selector.empty() && !LabelsMatch(cluster_.spec(n), g.node_selector)) {
      ++miss.label_mismatch;
      return true;
    }
    int64_t cap = want;
    if (k > 0) cap = std::min<int64_t>(cap, same_island ? cluster_.FreeWholeInBestIsland(n, t) / k : free / k);
    if (k > 0 && cap == 0) {
      ++miss.island_short;
      return true;
    }
    if (r.cpu_milli > 0) cap = std::min(cap, ns.free_cpu_milli / r.cpu_milli);
    if (cap == 0) {
      ++miss.cpu_short;
      return true;
    }
    if (r.memory_mib > 0) cap = std::min(cap, ns.free_memory_mib / r.memory_mib);
    if (cap == 0) {
      ++miss.memory_short;
      return true;
    }
    if (g.affinity == Affinity::kSpread) cap = 1;
    Candidate c{n, static_cast<int32_t>(cap), ns.rack, 0.0};
    std::vector<int32_t> devs = k > 0 ? ChooseDevices(n, t, k, same_island) : std::vector<int32_t>{};
    c.score = scorer.Score(cluster_, n, t, r, devs);
    cands.push_back(c);
    total_cap += cap;
    best_cap = std::max<int32_t>(best_cap, c.cap);
    best_rack_cap = std::max(best_rack_cap, rack_cap[c.rack] += c.cap);
    const int32_t feasible = static_cast<int32_t>(cands.size());
    bool enough;
    switch (g.affinity) {
      case Affinity::kSameNode:
        enough = best_cap >= want;
        break;
      case Affinity::kSameRack:
        enough = best_rack_cap >= want;
        break;
      default:
        enough = total_cap >= want;
    }
    return !(enough && feasible >= limit);
  };
  if (k > 0) {
    cluster_.ForEachNodeWithFree(t, k, scorer.MostFreeFirst(), consider);
  } else {
    for (int32_t n = 0; n < cluster_.num_nodes(); ++n) {
      if (!consider(n, 0)) break;
    }
  }
  miss.type = t;
  miss.feasible_nodes = static_cast<int32_t>(cands.size());
  miss.capacity = static_cast<int32_t>(std::min<int64_t>(total_cap, std::numeric_limits<int32_t>::max()));
  miss.best_rack_capacity = best_rack_cap;

  // Decide how many replicas go to which node.
  std::vector<std::pair<int32_t, int32_t>> plan;  // node, replicas
  auto by_score = [](const Candidate& a, const Candidate& b) {
    return std::tie(a.score, a.node) < std::tie(b.score, b.node);
  };
  auto fill = [&](std::vector<Candidate>& list, int32_t goal) {
    int32_t placed = 0;
    for (const Candidate& c : list) {
      if (placed >= goal) break;
      const int32_t take = std::min(c.cap, goal - placed);
      plan.push_back({c.node, take});
      placed += take;
    }
    return placed;
  };
  int32_t placed = 0;
  if (g.affinity == Affinity::kSameNode || (opt_.topology_aware && best_cap >= want && want > 1)) {
    // Everything on one node: the best-scored node that holds the whole group.
    const Candidate* best = nullptr;
    for (const Candidate& c : cands) {
      if (c.cap >= want && (best == nullptr || by_score(c, *best))) best = &c;
    }
    if (best != nullptr) {
      plan.push_back({best->node, want});
      placed = want;
    } else if (g.affinity == Affinity::kSameNode) {
      miss.kind = total_cap >= need ? WaitKind::kTopology : WaitKind::kResources;
      return false;
    }
  }
  if (placed == 0 && (g.affinity == Affinity::kSameRack || (opt_.topology_aware && want > 1))) {
    // Fewest racks: the tightest rack that holds the group, nodes with room for most replicas first.
    int32_t chosen = -1, chosen_cap = 0;
    std::vector<std::pair<int32_t, int32_t>> racks(rack_cap.begin(), rack_cap.end());
    std::sort(racks.begin(), racks.end());
    for (auto [rack, cap] : racks) {
      if (cap >= want && (chosen < 0 || cap < chosen_cap)) chosen = rack, chosen_cap = cap;
    }
    auto by_cap = [&](const Candidate& a, const Candidate& b) {
      return std::tie(b.cap, a.score, a.node) < std::tie(a.cap, b.score, b.node);
    };
    if (chosen >= 0) {
      std::vector<Candidate> in_rack;
      for (const Candidate& c : cands) {
        if (c.rack == chosen) in_rack.push_back(c);
      }
      std::sort(in_rack.begin(), in_rack.end(), by_cap);
      placed = fill(in_rack, want);
    } else if (g.affinity == Affinity::kSameRack) {
      miss.kind = total_cap >= need ? WaitKind::kTopology : WaitKind::kResources;
      return false;
    } else {
      // Spill over racks, fullest racks first so the gang touches as few as possible.
      std::sort(cands.begin(), cands.end(), [&](const Candidate& a, const Candidate& b) {
        const int32_t ra = rack_cap[a.rack], rb = rack_cap[b.rack];
        return std::tie(rb, a.rack, b.cap, a.score, a.node) < std::tie(ra, b.rack, a.cap, b.score, b.node);
      });
      placed = fill(cands, want);
    }
  }
  if (placed == 0) {
    std::sort(cands.begin(), cands.end(), by_score);
    placed = fill(cands, want);
  }
  if (placed < need) {
    miss.kind = WaitKind::kResources;
    return false;
  }
  int32_t replica = 0;
  for (auto [n, count] : plan) {
    for (int32_t i = 0; i < count && replica < want; ++i) {
      std::vector<int32_t> devs;
      if (k > 0) {
        devs = ChooseDevices(n, t, k, same_island);
        if (devs.empty()) return false;  // cannot happen: capacity was counted per island
      }
      TaskPlacement p = MakeTask(gi, replica++, n, r, std::move(devs));
      cluster_.Allocate(p);
      out.push_back(std::move(p));
    }
  }
  return true;
}

bool Pass::PlaceFractional(const TaskGroup& g, int32_t gi, const std::vector<DeviceTypeId>& types, int32_t want,
                           bool honour, std::vector<TaskPlacement>& out, Miss& miss) {
  const TaskRequest& r = g.request;
  const NodeScorer& scorer = fgd_ != nullptr && opt_.fgd_for_fractional ? *fgd_ : *sched_.scorer_;
  const int32_t need = std::min(want, g.MinReplicas());
  const int32_t pct = r.device_percent > 0 ? r.device_percent : 1;
  std::vector<int32_t> used_nodes;
  std::vector<int32_t> fits;
  std::vector<double> scores;
  miss.type = types.front();
  for (int32_t replica = 0; replica < want; ++replica) {
    int32_t best_node = -1, best_dev = -1, best_rank = 0;
    double best_score = 0;
    int32_t seen = 0;
    DeviceTypeId t = types.front();
    int32_t rank = 0;  // position of t in `types`: the tie-break after the score
    auto consider = [&](int32_t n) {
      ++stats_.nodes_scored;
      const auto& ns = cluster_.node(n);
      if (Excluded(n, honour)) {
        ++miss.reserved;
        return true;
      }
      if (!g.node_selector.empty() && !LabelsMatch(cluster_.spec(n), g.node_selector)) {
        ++miss.label_mismatch;
        return true;
      }
      if (ns.free_cpu_milli < r.cpu_milli) {
        ++miss.cpu_short;
        return true;
      }
      if (ns.free_memory_mib < r.memory_mib) {
        ++miss.memory_short;
        return true;
      }
      const bool taken = std::find(used_nodes.begin(), used_nodes.end(), n) != used_nodes.end();
      if (g.affinity == Affinity::kSpread && taken) return true;
      if (g.affinity == Affinity::kSameNode && !used_nodes.empty() && !taken) return true;
      fits.clear();
      for (int32_t d = 0; d < ns.num_devices; ++d) {
        const auto& dev = cluster_.device(n, d);
        if (dev.type != t || !dev.usable || !dev.shareable) continue;
        if (dev.free_percent < pct || dev.free_memory_mib < r.device_memory_mib) continue;
        fits.push_back(d);
      }
      scorer.ScoreShares(cluster_, n, t, r, fits, scores);
      for (size_t i = 0; i < fits.size(); ++i) {
        const double sc = scores[i];
        const int32_t d = fits[i];
        if (best_node < 0 || std::tie(sc, rank, n, d) < std::tie(best_score, best_rank, best_node, best_dev)) {
          best_node = n, best_dev = d, best_score = sc, best_rank = rank;
        }
      }
      return ++seen < opt_.fractional_candidates;
    };
    for (rank = 0; rank < static_cast<int32_t>(types.size()); ++rank) {
      t = types[rank];
      seen = 0;
      cluster_.ForEachNodeWithPartial(t, consider);
      if (seen < opt_.fractional_candidates) {
        cluster_.ForEachNodeWithFree(t, 1, scorer.MostFreeFirst(), [&](int32_t n, int32_t) { return consider(n); });
      }
    }
    if (best_node < 0) {
      miss.capacity = replica;
      miss.feasible_nodes = static_cast<int32_t>(used_nodes.size());
      miss.kind = WaitKind::kResources;
      return replica >= need;
    }
    TaskPlacement p = MakeTask(gi, replica, best_node, r, {best_dev});
    cluster_.Allocate(p);
    out.push_back(std::move(p));
    used_nodes.push_back(best_node);
  }
  return true;
}

std::string Pass::Describe(const Job& job, const TaskGroup& g, const Miss& m) const {
  (void)job;
  if (!m.quota.empty()) return m.quota;
  const TaskRequest& r = g.request;
  const std::string type = m.type >= 0 ? cluster_.type_name(m.type) : "";
  std::string ask;
  if (r.devices > 0) {
    ask = g.replicas > 1 ? absl::StrCat(g.replicas, " tasks x ", r.devices, " ", type)
                         : absl::StrCat(r.devices, " x ", type);
  } else if (r.IsFractional()) {
    ask =
        absl::StrCat(g.replicas > 1 ? absl::StrCat(g.replicas, " tasks x ") : "", r.device_percent, "% of one ", type);
  } else {
    ask = absl::StrCat(g.replicas, " tasks x ", r.cpu_milli, "m CPU");
  }
  std::string where;
  switch (g.affinity) {
    case Affinity::kSameIsland:
      where = " with each task on one interconnect island";
      break;
    case Affinity::kSameNode:
      where = " on one node";
      break;
    case Affinity::kSameRack:
      where = " in one rack";
      break;
    case Affinity::kSpread:
      where = " on distinct nodes";
      break;
    case Affinity::kNone:
      break;
  }
  std::string have;
  if (m.kind == WaitKind::kTopology) {
    have = g.affinity == Affinity::kSameRack
               ? absl::StrCat("the best rack has room for ", m.best_rack_capacity)
               : absl::StrCat("free capacity is split over ", Plural(m.feasible_nodes, "node", "nodes"));
  } else if (r.devices > 0) {
    const int64_t free = cluster_.free_devices(m.type);
    have = absl::StrCat(free, " of ", cluster_.usable_devices(m.type), " are free");
    if (free >= r.devices) absl::StrAppend(&have, ", at most ", cluster_.MaxFreeOnOneNode(m.type), " on one node");
    absl::StrAppend(&have, "; room for ", m.capacity, " of ", g.MinReplicas(),
                    g.MinReplicas() == 1 ? " task" : " tasks");
  } else {
    have = absl::StrCat("room for ", m.capacity, " of ", g.MinReplicas(), " tasks");
  }
  std::vector<std::string> extra;
  if (m.cpu_short > 0) extra.push_back(absl::StrCat(Plural(m.cpu_short, "node lacks", "nodes lack"), " CPU"));
  if (m.memory_short > 0) extra.push_back(absl::StrCat(Plural(m.memory_short, "node lacks", "nodes lack"), " memory"));
  if (m.label_mismatch > 0)
    extra.push_back(absl::StrCat(Plural(m.label_mismatch, "node does", "nodes do"), " not match the node selector"));
  if (m.island_short > 0 && g.affinity == Affinity::kSameIsland)
    extra.push_back(
        absl::StrCat(Plural(m.island_short, "node has", "nodes have"), " no island with enough free devices"));
  if (m.reserved > 0)
    extra.push_back(absl::StrCat(Plural(m.reserved, "node is", "nodes are"), " reserved for a larger job"));
  std::string tail = extra.empty() ? "" : absl::StrCat(" (", absl::StrJoin(extra, "; "), ")");
  return absl::StrCat("needs ", ask, where, "; ", have, tail);
}

Attempt Pass::TryPlace(const Job& job, int32_t q, bool honour, bool keep) {
  ++stats_.placement_attempts;
  Attempt a;
  const size_t mark = cluster_.Mark();
  std::vector<QuotaDelta> applied;
  auto undo = [&] {
    cluster_.Rollback(mark);
    for (const QuotaDelta& d : applied) quota_.Apply(q, d, -1);
  };
  for (int32_t gi = 0; gi < static_cast<int32_t>(job.groups.size()); ++gi) {
    const TaskGroup& g = job.groups[gi];
    std::vector<TypeOption> opts;
    if (g.request.NeedsDevices()) {
      opts = TypeOptions(g);
      sched_.ranker_->Rank(opts, market_);
    } else {
      opts.push_back({-1, 1.0});
    }
    bool ok = false;
    Miss first_miss;
    bool have_miss = false;
    // Earliest finish: skip types slower than one where a device frees soon enough.
    const DeviceTypeId faster_type = FasterTypeWorthWaitingFor(job, g, opts, keep);
    if (faster_type >= 0) {
      undo();
      a.kind = WaitKind::kResources;
      a.reason = absl::StrCat("waits for a ", cluster_.type_name(faster_type),
                              " that frees soon: it finishes earlier there than on a slower free type");
      return a;
    }
    // A share of one device with no speed preference between types: every
    // acceptable type's devices compete in one placement (FGD and best fit
    // then see the whole cluster, not the first type that has room).
    bool same_speed = true;
    for (const TypeOption& o : opts) same_speed &= o.throughput == opts.front().throughput;
    if (g.request.IsFractional() && opts.size() > 1 && same_speed) {
      std::vector<DeviceTypeId> allowed;
      for (const TypeOption& o : opts) {
        const QuotaDelta all = Times(TaskDelta(g.request, o.type), g.replicas);
        std::string why = quota_.CheckLimits(q, all);
        if (why.empty()) why = quota_.CheckBorrowing(q, all, cluster_);
        if (why.empty()) {
          allowed.push_back(o.type);
        } else if (!have_miss) {
          first_miss.type = o.type;
          first_miss.kind = WaitKind::kQuota;
          first_miss.quota = why;
          have_miss = true;
        }
      }
      if (!allowed.empty()) {
        Miss miss;
        const size_t gm = cluster_.Mark();
        std::vector<TaskPlacement> tasks;
        if (PlaceFractional(g, gi, allowed, g.replicas, honour, tasks, miss)) {
          cluster_.Commit(gm);
          for (TaskPlacement& t : tasks) {
            const DeviceTypeId type = cluster_.device(t.node, t.devices.front().device).type;
            const QuotaDelta d = TaskDelta(g.request, type);
            quota_.Apply(q, d, +1);
            applied.push_back(d);
            a.charged.push_back(d);
            if (a.type < 0) a.type = type;
            a.tasks.push_back(std::move(t));
          }
          ok = true;
        } else {
          cluster_.Rollback(gm);
          first_miss = miss;
          have_miss = true;
        }
      }
      opts.clear();  // decided here
    } else if (g.request.devices > 0 && g.replicas == 1 && opts.size() > 1 && same_speed) {
      // Whole devices for one task, no speed preference: try the type whose
      // best node scores best first, so the scorer compares the whole
      // cluster rather than the first type with room.
      std::vector<std::pair<double, size_t>> ranked;
      for (size_t i = 0; i < opts.size(); ++i) {
        Miss probe;
        std::vector<TaskPlacement> tasks;
        const size_t gm = cluster_.Mark();
        const bool fits = PlaceGroup(job, g, gi, opts[i].type, 1, honour, tasks, probe);
        cluster_.Rollback(gm);
        double score = std::numeric_limits<double>::infinity();
        if (fits && !tasks.empty()) {
          std::vector<int32_t> devs;
          for (const DeviceSlice& sl : tasks[0].devices) devs.push_back(sl.device);
          score = sched_.scorer_->Score(cluster_, tasks[0].node, opts[i].type, g.request, devs);
        }
        ranked.push_back({score, i});
      }
      std::stable_sort(ranked.begin(), ranked.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
      std::vector<TypeOption> reordered;
      for (const auto& [score, i] : ranked) reordered.push_back(opts[i]);
      opts = std::move(reordered);
    }
    for (const TypeOption& o : opts) {
      Miss miss;
      miss.type = o.type;
      const QuotaDelta per_task = TaskDelta(g.request, o.type);
      int32_t want = g.replicas;
      std::string why = quota_.CheckLimits(q, Times(per_task, want));
      if (!why.empty() && g.MinReplicas() < want && quota_.CheckLimits(q, Times(per_task, g.MinReplicas())).empty()) {
        want = g.MinReplicas();
        why.clear();
      }
      if (why.empty()) why = quota_.CheckBorrowing(q, Times(per_task, want), cluster_);
      if (!why.empty()) {
        miss.kind = WaitKind::kQuota;
        miss.quota = why;
      } else {
        const size_t gm = cluster_.Mark();
        std::vector<TaskPlacement> tasks;
        if (PlaceGroup(job, g, gi, o.type, want, honour, tasks, miss)) {
          cluster_.Commit(gm);
          for (TaskPlacement& t : tasks) {
            const QuotaDelta d = per_task;
            quota_.Apply(q, d, +1);
            applied.push_back(d);
            a.charged.push_back(d);
            a.tasks.push_back(std::move(t));
          }
          if (a.type < 0) a.type = o.type;
          ok = true;
          break;
        }
        cluster_.Rollback(gm);
      }
      // Report the most telling miss: a shape problem over a plain lack of room, quota last.
      if (!have_miss || (first_miss.kind == WaitKind::kQuota && miss.kind != WaitKind::kQuota))
        first_miss = miss, have_miss = true;
    }
    if (!ok) {
      undo();
      a.kind = first_miss.kind;
      a.reason = Describe(job, g, first_miss);
      return a;
    }
  }
  a.ok = true;
  if (keep) {
    cluster_.Commit(mark);
  } else {
    undo();
  }
  return a;
}

}  // namespace icos::core
