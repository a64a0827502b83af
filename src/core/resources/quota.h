// QuotaTracker: usage, guarantees and limits of the queue tree.
//
// Queues form a tree (Volcano hierarchical queues, Kueue cohorts). Usage of a
// queue counts its own jobs and all descendants'. A queue may run beyond its
// guarantee ("borrowing") only while the capacity is idle and never beyond its
// limit or any ancestor's limit; a queue that does not lend keeps its idle
// guarantee back from everyone outside its subtree.
//
// Thread-safety: none; owned by one pass.
#ifndef ICOS_CORE_RESOURCES_QUOTA_H_
#define ICOS_CORE_RESOURCES_QUOTA_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "core/model/queue.h"
#include "core/resources/cluster_state.h"

namespace icos::core {

// What one job (or task) takes from its queue. Devices in milli-devices of one type.
struct QuotaDelta {
  int64_t cpu_milli = 0;
  int64_t memory_mib = 0;
  DeviceTypeId type = -1;  // -1: no devices
  int64_t device_milli = 0;

  QuotaDelta& operator+=(const QuotaDelta& o);
};

class QuotaTracker {
 public:
  // The name every job without a queue goes to; created if not declared.
  static constexpr char kDefaultQueue[] = "default";

  // Validates the tree (unique names, known parents, no cycles, sane numbers).
  static absl::StatusOr<QuotaTracker> Build(const std::vector<Queue>& queues, const ClusterState& cluster);

  int32_t num_queues() const { return static_cast<int32_t>(queues_.size()); }
  // -1 when no queue has that name. The empty name means the default queue.
  int32_t Find(const std::string& name) const;
  const Queue& queue(int32_t q) const { return queues_[q]; }
  int32_t parent(int32_t q) const { return parent_[q]; }
  const std::vector<int32_t>& children(int32_t q) const { return children_[q]; }
  const std::vector<int32_t>& roots() const { return roots_; }

  // Adds (sign +1) or removes (-1) usage on q and every ancestor.
  void Apply(int32_t q, const QuotaDelta& d, int sign);
  // Adds named amounts (Queue's resource names; names no queue and no device
  // type of the cluster uses are ignored) to q and every ancestor: past usage
  // for the drf order.
  void AddAmounts(int32_t q, const ResourceAmounts& amounts);

  // Empty when q may take d now; otherwise why not, naming the queue and the
  // resource at its limit.
  std::string CheckLimits(int32_t q, const QuotaDelta& d) const;
  // Empty when q may take d given cluster capacity held back for queues that
  // do not lend their idle guarantee.
  std::string CheckBorrowing(int32_t q, const QuotaDelta& d, const ClusterState& cluster) const;
  // Whether d would be more than q's limit even on an empty cluster.
  std::string CheckNeverFits(int32_t q, const QuotaDelta& d) const;

  // True when q uses more than its guarantee of a resource that some queue has
  // a guarantee for (resources nobody guarantees are never "borrowed").
  bool IsBorrowing(int32_t q) const;
  // True when d touches a guaranteed resource and q plus d stays within q's
  // guarantee on every guaranteed resource d uses.
  bool WithinGuarantee(int32_t q, const QuotaDelta& d) const;
  // max over resources of usage / guarantee-or-capacity; DRF's dominant share.
  double DominantShare(int32_t q, const std::vector<int64_t>& capacity) const;
  // Cluster capacity per key (for DominantShare).
  std::vector<int64_t> Capacity(const ClusterState& cluster) const;

 private:
  // Keys: 0 cpu, 1 memory, 2 devices, then one per vendor and one per type.
  static constexpr int kCpu = 0, kMemory = 1, kDevices = 2;
  QuotaTracker() = default;
  // Key ids a delta touches, with the amount for each.
  template <typename F>
  void ForEachKey(const QuotaDelta& d, F&& f) const;
  std::vector<int64_t> ToVector(const ResourceAmounts& amounts, int64_t missing);

  std::vector<Queue> queues_;
  std::vector<int32_t> parent_;
  std::vector<std::vector<int32_t>> children_;
  std::vector<int32_t> roots_;
  absl::flat_hash_map<std::string, int32_t> by_name_;
  absl::flat_hash_map<std::string, int32_t> key_ids_;
  std::vector<std::string> key_names_;
  std::vector<int32_t> type_vendor_key_, type_key_;               // [DeviceTypeId]
  std::vector<std::vector<int64_t>> usage_, guaranteed_, limit_;  // [queue][key]; limit -1 = none
  std::vector<int32_t> non_lending_;
  // Keys some queue guarantees: only these count for borrowing and reclaim.
  std::vector<char> managed_;
};

}  // namespace icos::core

#endif  // ICOS_CORE_RESOURCES_QUOTA_H_
