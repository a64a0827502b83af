#include "core/resources/cluster_state.h"

#include <algorithm>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace icos::core {

absl::StatusOr<ClusterState> ClusterState::Build(const std::vector<Node>& nodes) {
  ClusterState st;
  st.specs_ = &nodes;
  st.nodes_.reserve(nodes.size());
  absl::flat_hash_set<std::string_view> names;
  names.reserve(nodes.size());
  absl::flat_hash_map<std::string, int32_t> racks;
  size_t total_devices = 0;
  for (const Node& node : nodes) total_devices += node.devices.size();
  st.devices_.reserve(total_devices);
  st.slots_.reserve(nodes.size());
  // Per-node scratch, reused: (type, usable count) and ((type, island), usable count).
  std::vector<std::pair<DeviceTypeId, int32_t>> per_type;
  std::vector<std::pair<int64_t, int32_t>> per_island;

  for (size_t n = 0; n < nodes.size(); ++n) {
    const Node& node = nodes[n];
    if (node.name.empty()) return absl::InvalidArgumentError(absl::StrCat("node #", n, " has no name"));
    if (!names.insert(node.name).second) {
      return absl::InvalidArgumentError(absl::StrCat("node name '", node.name, "' appears twice"));
    }
    if (node.cpu_milli < 0 || node.memory_mib < 0) {
      return absl::InvalidArgumentError(absl::StrCat("node '", node.name, "' has negative CPU or memory"));
    }
    NodeState ns;
    ns.cpu_milli = ns.free_cpu_milli = node.cpu_milli;
    ns.memory_mib = ns.free_memory_mib = node.memory_mib;
    ns.schedulable = node.schedulable;
    ns.first_device = static_cast<int32_t>(st.devices_.size());
    ns.num_devices = static_cast<int32_t>(node.devices.size());
    // Neighbouring nodes usually share a rack: skip the join and hash then.
    if (n > 0 && node.network_path == nodes[n - 1].network_path) {
      ns.rack = st.nodes_.back().rack;
    } else {
      const std::string rack_key = absl::StrJoin(node.network_path, "/");
      ns.rack = racks.try_emplace(rack_key, static_cast<int32_t>(racks.size())).first->second;
    }

    // Islands: -1 means "own island"; renumber so every device has one.
    int32_t next_island = 0;
    for (const Device& d : node.devices) next_island = std::max(next_island, d.island + 1);
    per_type.clear();
    per_island.clear();
    for (size_t i = 0; i < node.devices.size(); ++i) {
      const Device& d = node.devices[i];
      if (d.vendor.empty()) {
        return absl::InvalidArgumentError(absl::StrCat("node '", node.name, "' device #", i, " has no vendor"));
      }
      if (d.memory_mib < 0) {
        return absl::InvalidArgumentError(absl::StrCat("node '", node.name, "' device #", i, " has negative memory"));
      }
      // Devices of a node are nearly always of one type: compare with the
      // previous device before building and hashing a "vendor/model" key
      // (the simulator builds this state once per event).
      DeviceTypeId type;
      if (i > 0 && d.vendor == node.devices[i - 1].vendor && d.model == node.devices[i - 1].model) {
        type = st.devices_.back().type;
      } else {
        std::string type_name = absl::StrCat(d.vendor, "/", d.model);
        auto [tit, new_type] = st.type_ids_.try_emplace(type_name, static_cast<DeviceTypeId>(st.type_names_.size()));
        if (new_type) {
          st.type_names_.push_back(type_name);
          st.type_vendor_.push_back(d.vendor);
          st.type_model_.push_back(d.model);
        }
        type = tit->second;
      }
      DeviceState ds;
      ds.type = type;
      ds.island = d.island >= 0 ? d.island : next_island++;
      const int32_t numa_count = std::max<int32_t>(1, static_cast<int32_t>(node.numa_nodes.size()));
      ds.numa = std::clamp(d.numa_node, 0, numa_count - 1);
      ds.memory_mib = ds.free_memory_mib = d.memory_mib;
      ds.usable = d.healthy && !d.drained && node.schedulable;
      ds.shareable = d.shareable;
      st.devices_.push_back(ds);
      auto pt = std::find_if(per_type.begin(), per_type.end(), [&](auto& e) { return e.first == ds.type; });
      if (pt == per_type.end()) {
        per_type.emplace_back(ds.type, 0);
        pt = per_type.end() - 1;
      }
      if (ds.usable) {
        ++pt->second;
        const int64_t key = (static_cast<int64_t>(ds.type) << 32) | static_cast<uint32_t>(ds.island);
        auto pi = std::find_if(per_island.begin(), per_island.end(), [&](auto& e) { return e.first == key; });
        if (pi == per_island.end()) {
          per_island.emplace_back(key, 1);
        } else {
          ++pi->second;
        }
      }
    }
    std::sort(per_type.begin(), per_type.end());
    ns.first_slot = static_cast<int32_t>(st.slots_.size());
    ns.num_slots = static_cast<int32_t>(per_type.size());
    for (auto [type, usable] : per_type) {
      Slot slot;
      slot.node = static_cast<int32_t>(n);
      slot.type = type;
      slot.whole_free = usable;
      st.slots_.push_back(slot);
      if (static_cast<size_t>(type) >= st.max_per_node_.size()) {
        st.max_per_node_.resize(type + 1, 0);
        st.max_per_island_.resize(type + 1, 0);
        st.usable_total_.resize(type + 1, 0);
        st.free_total_.resize(type + 1, 0);
      }
      st.max_per_node_[type] = std::max(st.max_per_node_[type], usable);
      st.usable_total_[type] += usable;
      st.free_total_[type] += usable;
    }
    for (auto [key, count] : per_island) {
      const auto type = static_cast<DeviceTypeId>(key >> 32);
      st.max_per_island_[type] = std::max(st.max_per_island_[type], count);
    }
    st.nodes_.push_back(ns);
  }
  st.num_racks_ = static_cast<int32_t>(racks.size());

  const int32_t types = st.num_types();
  st.max_per_node_.resize(types, 0);
  st.max_per_island_.resize(types, 0);
  st.usable_total_.resize(types, 0);
  st.free_total_.resize(types, 0);
  st.bucket_head_.assign(types, {});
  st.bucket_tail_.assign(types, {});
  for (int32_t t = 0; t < types; ++t) {
    st.bucket_head_[t].assign(st.max_per_node_[t] + 1, -1);
    st.bucket_tail_[t].assign(st.max_per_node_[t] + 1, -1);
  }
  st.partial_head_.assign(types, -1);
  for (int32_t s = 0; s < static_cast<int32_t>(st.slots_.size()); ++s) st.Link(s);
  return st;
}

std::vector<DeviceTypeId> ClusterState::TypesMatching(const DeviceChoice& choice) const {
  std::vector<DeviceTypeId> out;
  for (DeviceTypeId t = 0; t < num_types(); ++t) {
    if (!choice.vendor.empty() && choice.vendor != type_vendor_[t]) continue;
    if (!choice.model.empty() && choice.model != type_model_[t]) continue;
    out.push_back(t);
  }
  return out;
}

int32_t ClusterState::SlotOf(int32_t n, DeviceTypeId t) const {
  const NodeState& ns = nodes_[n];
  for (int32_t s = ns.first_slot; s < ns.first_slot + ns.num_slots; ++s) {
    if (slots_[s].type == t) return s;
  }
  return -1;
}

int32_t ClusterState::FreeWhole(int32_t n, DeviceTypeId t) const {
  const int32_t s = SlotOf(n, t);
  return s < 0 ? 0 : slots_[s].whole_free;
}

int32_t ClusterState::MaxFreeOnOneNode(DeviceTypeId t) const {
  const auto& heads = bucket_head_[t];
  for (int32_t f = static_cast<int32_t>(heads.size()) - 1; f > 0; --f) {
    if (heads[f] >= 0) return f;
  }
  return 0;
}

int32_t ClusterState::FreeWholeInBestIsland(int32_t n, DeviceTypeId t) const {
  const NodeState& ns = nodes_[n];
  // Nodes hold a handful of devices; a quadratic count is cheaper than a map.
  int32_t best = 0;
  for (int32_t i = 0; i < ns.num_devices; ++i) {
    const DeviceState& a = devices_[ns.first_device + i];
    if (a.type != t || !a.WholeFree()) continue;
    int32_t count = 0;
    for (int32_t j = 0; j < ns.num_devices; ++j) {
      const DeviceState& b = devices_[ns.first_device + j];
      count += (b.type == t && b.island == a.island && b.WholeFree()) ? 1 : 0;
    }
    best = std::max(best, count);
  }
  return best;
}

void ClusterState::Unlink(int32_t s) {
  Slot& slot = slots_[s];
  auto& head = bucket_head_[slot.type][slot.whole_free];
  auto& tail = bucket_tail_[slot.type][slot.whole_free];
  if (slot.prev >= 0)
    slots_[slot.prev].next = slot.next;
  else
    head = slot.next;
  if (slot.next >= 0)
    slots_[slot.next].prev = slot.prev;
  else
    tail = slot.prev;
  slot.prev = slot.next = -1;
}

void ClusterState::Link(int32_t s) {
  Slot& slot = slots_[s];
  auto& head = bucket_head_[slot.type][slot.whole_free];
  auto& tail = bucket_tail_[slot.type][slot.whole_free];
  slot.prev = tail;
  slot.next = -1;
  if (tail >= 0)
    slots_[tail].next = s;
  else
    head = s;
  tail = s;
}

void ClusterState::UpdatePartial(int32_t s) {
  Slot& slot = slots_[s];
  const NodeState& ns = nodes_[slot.node];
  bool partial = false;
  for (int32_t i = 0; i < ns.num_devices && !partial; ++i) {
    const DeviceState& d = devices_[ns.first_device + i];
    partial = d.type == slot.type && d.shareable && d.PartlyUsed();
  }
  if (partial == slot.in_partial) return;
  auto& head = partial_head_[slot.type];
  if (partial) {
    slot.partial_prev = -1;
    slot.partial_next = head;
    if (head >= 0) slots_[head].partial_prev = s;
    head = s;
  } else {
    if (slot.partial_prev >= 0)
      slots_[slot.partial_prev].partial_next = slot.partial_next;
    else
      head = slot.partial_next;
    if (slot.partial_next >= 0) slots_[slot.partial_next].partial_prev = slot.partial_prev;
    slot.partial_prev = slot.partial_next = -1;
  }
  slot.in_partial = partial;
}

void ClusterState::Refresh(int32_t n, DeviceTypeId t) {
  const int32_t s = SlotOf(n, t);
  const NodeState& ns = nodes_[n];
  int32_t whole = 0;
  for (int32_t i = 0; i < ns.num_devices; ++i) {
    const DeviceState& d = devices_[ns.first_device + i];
    whole += (d.type == t && d.WholeFree()) ? 1 : 0;
  }
  if (whole != slots_[s].whole_free) {
    free_total_[t] += whole - slots_[s].whole_free;
    Unlink(s);
    slots_[s].whole_free = whole;
    Link(s);
  }
  UpdatePartial(s);
}

absl::Status ClusterState::CheckFits(const TaskPlacement& p) const {
  if (p.node < 0 || p.node >= num_nodes())
    return absl::InvalidArgumentError(absl::StrCat("node index ", p.node, " out of range"));
  const NodeState& ns = nodes_[p.node];
  const std::string& name = spec(p.node).name;
  if (p.cpu_milli < 0 || p.memory_mib < 0) return absl::InvalidArgumentError("negative CPU or memory in a placement");
  if (p.cpu_milli > ns.free_cpu_milli) {
    return absl::FailedPreconditionError(
        absl::StrCat("node '", name, "': ", p.cpu_milli, "m CPU asked, ", ns.free_cpu_milli, "m free"));
  }
  if (p.memory_mib > ns.free_memory_mib) {
    return absl::FailedPreconditionError(
        absl::StrCat("node '", name, "': ", p.memory_mib, " MiB asked, ", ns.free_memory_mib, " MiB free"));
  }
  for (size_t i = 0; i < p.devices.size(); ++i) {
    const DeviceSlice& slice = p.devices[i];
    if (slice.device < 0 || slice.device >= ns.num_devices) {
      return absl::InvalidArgumentError(absl::StrCat("node '", name, "' has no device #", slice.device));
    }
    for (size_t j = 0; j < i; ++j) {
      if (p.devices[j].device == slice.device) return absl::InvalidArgumentError("a placement names one device twice");
    }
    const DeviceState& d = devices_[ns.first_device + slice.device];
    if (slice.percent <= 0 || slice.percent > kWholeDevicePercent || slice.memory_mib < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("device slice of ", slice.percent, "% / ", slice.memory_mib, " MiB is not valid"));
    }
    if (slice.percent > d.free_percent || slice.memory_mib > d.free_memory_mib) {
      return absl::FailedPreconditionError(absl::StrCat("node '", name, "' device #", slice.device, ": ", slice.percent,
                                                        "% / ", slice.memory_mib, " MiB asked, ", d.free_percent,
                                                        "% / ", d.free_memory_mib, " MiB free"));
    }
  }
  return absl::OkStatus();
}

void ClusterState::ApplySlice(int32_t n, const DeviceSlice& slice, int sign) {
  DeviceState& d = devices_[nodes_[n].first_device + slice.device];
  d.free_percent -= sign * slice.percent;
  d.free_memory_mib -= sign * slice.memory_mib;
  d.holders += sign;
}

int32_t ClusterState::RequestKind(const TaskPlacement& p) {
  if (p.devices.empty()) return -1;
  if (p.devices.size() == 1 && p.devices[0].percent < kWholeDevicePercent) return 0;
  return std::min<int32_t>(static_cast<int32_t>(p.devices.size()), NodeState::kRequestKinds - 1);
}

void ClusterState::Allocate(const TaskPlacement& p) {
  NodeState& ns = nodes_[p.node];
  ns.free_cpu_milli -= p.cpu_milli;
  ns.free_memory_mib -= p.memory_mib;
  if (const int32_t kind = RequestKind(p); kind >= 0) ++ns.tasks_by_kind[kind];
  for (const DeviceSlice& slice : p.devices) ApplySlice(p.node, slice, +1);
  for (const DeviceSlice& slice : p.devices) Refresh(p.node, devices_[ns.first_device + slice.device].type);
  if (open_marks_ > 0) journal_.push_back({true, p});
}

void ClusterState::Release(const TaskPlacement& p) {
  NodeState& ns = nodes_[p.node];
  ns.free_cpu_milli += p.cpu_milli;
  ns.free_memory_mib += p.memory_mib;
  if (const int32_t kind = RequestKind(p); kind >= 0) --ns.tasks_by_kind[kind];
  for (const DeviceSlice& slice : p.devices) ApplySlice(p.node, slice, -1);
  for (const DeviceSlice& slice : p.devices) Refresh(p.node, devices_[ns.first_device + slice.device].type);
  if (open_marks_ > 0) journal_.push_back({false, p});
}

size_t ClusterState::Mark() {
  ++open_marks_;
  return journal_.size();
}

void ClusterState::Rollback(size_t mark) {
  const int32_t saved = open_marks_;
  open_marks_ = 0;  // undoing must not journal itself
  while (journal_.size() > mark) {
    JournalEntry e = std::move(journal_.back());
    journal_.pop_back();
    if (e.allocated)
      Release(e.placement);
    else
      Allocate(e.placement);
  }
  open_marks_ = saved - 1;
}

void ClusterState::Commit(size_t mark) {
  --open_marks_;
  if (open_marks_ == 0) journal_.clear();
  (void)mark;
}

}  // namespace icos::core
