// ClusterState: the scheduler's mutable, indexed view of free capacity.
//
// Built from a snapshot's nodes and running jobs, then updated in place as a
// pass binds, preempts and tries placements. Free whole devices are indexed per
// device type in buckets by count, so "nodes with at least k free devices of
// type t" is answered without scanning the cluster (DESIGN.md: no
// O(jobs x nodes) scans). Every change can be journaled and rolled back, which
// is how preemption and backfill try "what if" without copying 10,000 nodes.
//
// Thread-safety: none; one pass owns one ClusterState.
#ifndef ICOS_CORE_RESOURCES_CLUSTER_STATE_H_
#define ICOS_CORE_RESOURCES_CLUSTER_STATE_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "core/model/cluster.h"
#include "core/model/job.h"

namespace icos::core {

// Dense id of a "vendor/model" device type within one ClusterState.
using DeviceTypeId = int32_t;

class ClusterState {
 public:
  struct DeviceState {
    DeviceTypeId type = 0;
    int32_t island = 0;  // normalised: unique per node, never -1
    int32_t numa = 0;
    int32_t free_percent = kWholeDevicePercent;
    int64_t memory_mib = 0;
    int64_t free_memory_mib = 0;
    int32_t holders = 0;  // tasks holding a slice
    bool usable = true;   // healthy, not drained, node schedulable
    bool shareable = true;

    bool WholeFree() const { return usable && holders == 0; }
    bool PartlyUsed() const { return usable && holders > 0 && free_percent > 0 && free_memory_mib > 0; }
  };

  struct NodeState {
    int64_t cpu_milli = 0;
    int64_t memory_mib = 0;
    int64_t free_cpu_milli = 0;
    int64_t free_memory_mib = 0;
    int32_t first_device = 0;  // into devices()
    int32_t num_devices = 0;
    int32_t first_slot = 0;  // per-type index slots of this node
    int32_t num_slots = 0;
    int32_t rack = 0;  // dense id of the full network path
    bool schedulable = true;
    // Tasks on the node by the kind of their device request, FGD's "GPU
    // affinity" (its GpuClustering baseline packs like with like):
    // [0] a share of one device, [k] k whole devices (k < kKinds), the last
    // also k >= kKinds. Tasks without devices are not counted.
    static constexpr int32_t kRequestKinds = 10;
    std::array<int32_t, kRequestKinds> tasks_by_kind{};
  };
  // The request kind of a placement (NodeState::tasks_by_kind); -1 without devices.
  static int32_t RequestKind(const TaskPlacement& p);

  // Builds the state for `nodes`, which must outlive it. Fails on structurally broken input (a device
  // with no type, negative capacity, duplicate node names).
  static absl::StatusOr<ClusterState> Build(const std::vector<Node>& nodes);

  ClusterState(ClusterState&&) = default;
  ClusterState& operator=(ClusterState&&) = default;

  // --- device types -------------------------------------------------------
  int32_t num_types() const { return static_cast<int32_t>(type_names_.size()); }
  const std::string& type_name(DeviceTypeId t) const { return type_names_[t]; }
  const std::string& type_vendor(DeviceTypeId t) const { return type_vendor_[t]; }
  const std::string& type_model(DeviceTypeId t) const { return type_model_[t]; }
  // Types a selector entry accepts, ascending.
  std::vector<DeviceTypeId> TypesMatching(const DeviceChoice& choice) const;
  // Whole devices of type t in the cluster that are usable / free now.
  int64_t usable_devices(DeviceTypeId t) const { return usable_total_[t]; }
  int64_t free_devices(DeviceTypeId t) const { return free_total_[t]; }
  // Most usable devices of type t on one node, and in one island.
  int32_t max_per_node(DeviceTypeId t) const { return max_per_node_[t]; }
  int32_t max_per_island(DeviceTypeId t) const { return max_per_island_[t]; }

  // --- nodes and devices ---------------------------------------------------
  int32_t num_nodes() const { return static_cast<int32_t>(nodes_.size()); }
  const NodeState& node(int32_t n) const { return nodes_[n]; }
  const Node& spec(int32_t n) const { return (*specs_)[n]; }
  const DeviceState& device(int32_t n, int32_t d) const { return devices_[nodes_[n].first_device + d]; }
  int32_t num_racks() const { return num_racks_; }
  // Whole free devices of type t on node n.
  int32_t FreeWhole(int32_t n, DeviceTypeId t) const;
  // Most whole free devices of type t on any one node (from the index, O(devices per node)).
  int32_t MaxFreeOnOneNode(DeviceTypeId t) const;
  // Largest number of whole free devices of type t within one island of node n.
  int32_t FreeWholeInBestIsland(int32_t n, DeviceTypeId t) const;

  // --- the index -------------------------------------------------------------
  // Visits nodes having at least `min_free` whole free devices of type t,
  // fullest-first buckets when `most_free_first`, tightest-first otherwise.
  // `visit(node, free)` returns false to stop.
  template <typename Visit>
  void ForEachNodeWithFree(DeviceTypeId t, int32_t min_free, bool most_free_first, Visit&& visit) const;
  // Visits nodes with a partly used, still shareable device of type t.
  template <typename Visit>
  void ForEachNodeWithPartial(DeviceTypeId t, Visit&& visit) const;

  // --- changes ---------------------------------------------------------------
  // Checks that `p` fits in what is free now; a clear error if not.
  absl::Status CheckFits(const TaskPlacement& p) const;
  // REQUIRES: CheckFits(p).ok()
  void Allocate(const TaskPlacement& p);
  // REQUIRES: p was allocated earlier and not released since.
  void Release(const TaskPlacement& p);

  // Journal: Mark() returns a position; Rollback(m) undoes every Allocate and
  // Release since then, newest first. Journaling is always on while any mark is
  // outstanding; Commit(m) forgets the entries after m without undoing them.
  size_t Mark();
  void Rollback(size_t mark);
  void Commit(size_t mark);

 private:
  struct Slot {  // one (node, device type) pair in the free-device index
    int32_t node = 0;
    DeviceTypeId type = 0;
    int32_t whole_free = 0;
    int32_t prev = -1, next = -1;  // in bucket list [type][whole_free]
    int32_t partial_prev = -1, partial_next = -1;
    bool in_partial = false;
  };
  struct JournalEntry {
    bool allocated;
    TaskPlacement placement;
  };

  ClusterState() = default;
  int32_t SlotOf(int32_t n, DeviceTypeId t) const;
  void Unlink(int32_t s);
  void Link(int32_t s);
  void UpdatePartial(int32_t s);
  void Refresh(int32_t n, DeviceTypeId t);
  void ApplySlice(int32_t n, const DeviceSlice& slice, int sign);

  const std::vector<Node>* specs_ = nullptr;
  std::vector<NodeState> nodes_;
  std::vector<DeviceState> devices_;
  std::vector<Slot> slots_;
  std::vector<std::string> type_names_, type_vendor_, type_model_;
  absl::flat_hash_map<std::string, DeviceTypeId> type_ids_;
  std::vector<std::vector<int32_t>> bucket_head_, bucket_tail_;  // [type][free]
  std::vector<int32_t> partial_head_;                            // [type]
  std::vector<int64_t> usable_total_, free_total_;
  std::vector<int32_t> max_per_node_, max_per_island_;
  int32_t num_racks_ = 0;
  std::vector<JournalEntry> journal_;
  int32_t open_marks_ = 0;
};

template <typename Visit>
void ClusterState::ForEachNodeWithFree(DeviceTypeId t, int32_t min_free, bool most_free_first, Visit&& visit) const {
  const auto& heads = bucket_head_[t];
  const int32_t top = static_cast<int32_t>(heads.size()) - 1;
  if (min_free < 1) min_free = 1;
  for (int32_t i = 0; i <= top - min_free; ++i) {
    const int32_t f = most_free_first ? top - i : min_free + i;
    for (int32_t s = heads[f]; s >= 0; s = slots_[s].next) {
      if (!visit(slots_[s].node, f)) return;
    }
  }
}

template <typename Visit>
void ClusterState::ForEachNodeWithPartial(DeviceTypeId t, Visit&& visit) const {
  for (int32_t s = partial_head_[t]; s >= 0; s = slots_[s].partial_next) {
    if (!visit(slots_[s].node)) return;
  }
}

}  // namespace icos::core

#endif  // ICOS_CORE_RESOURCES_CLUSTER_STATE_H_
