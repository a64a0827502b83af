#include "core/policy/placement.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/unit_interval.h"

namespace icos::core {
namespace {

// Whole free devices of type t left on n after taking `devices`, over all
// devices of that type on n: 0 = the node is full of that type.
double DeviceFreeFractionAfter(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                               const std::vector<int32_t>& devices) {
  const auto& ns = cluster.node(n);
  int32_t of_type = 0;
  for (int32_t d = 0; d < ns.num_devices; ++d) of_type += cluster.device(n, d).type == t ? 1 : 0;
  if (of_type == 0) return 0;
  if (req.IsFractional()) {
    // Prefer the device with least share left, then nodes with fewer untouched devices.
    const auto& dev = cluster.device(n, devices[0]);
    const double left = static_cast<double>(dev.free_percent - req.device_percent) / kWholeDevicePercent;
    const int32_t untouched = cluster.FreeWhole(n, t) - (dev.WholeFree() ? 1 : 0);
    return 0.5 * left + 0.5 * static_cast<double>(untouched) / of_type;
  }
  return static_cast<double>(cluster.FreeWhole(n, t) - static_cast<int32_t>(devices.size())) / of_type;
}

double CpuFreeFractionAfter(const ClusterState& cluster, int32_t n, const TaskRequest& req) {
  const auto& ns = cluster.node(n);
  if (ns.cpu_milli <= 0) return 0;
  return static_cast<double>(ns.free_cpu_milli - req.cpu_milli) / static_cast<double>(ns.cpu_milli);
}

// FGD's score as its kube-scheduler plugin computes it (Weng et al., ATC'23):
// the decrease in expected fragmentation, in devices, through a sigmoid onto
// whole points 0..100 (MaxNodeScore). Changes of a few hundredths of a device
// so score alike. `delta_milli` is the increase, in milli-devices.
double FgdPoints(double delta_milli) { return std::floor(100.0 / (1.0 + std::exp(delta_milli / 1000.0))); }

// kube-scheduler picks at random among the nodes with the best score; this is
// a stable stand-in (a hash of the node and its free CPU, in [0, 0.001)), so
// equal scores spread over nodes and the same state still gives the same
// choice. On openb it matters: ties broken by best fit instead leave 0.2 points
// more GPUs unallocated (docs/results.md).
double TieBreak(int32_t n, int64_t free_cpu_milli) {
  uint64_t h =
      static_cast<uint64_t>(n) * 0x9E3779B97F4A7C15ULL ^ static_cast<uint64_t>(free_cpu_milli) * 0xC2B2AE3D27D4EB4FULL;
  h ^= h >> 29;
  return static_cast<double>(h % 1000) * 1e-6;
}

}  // namespace

std::vector<std::string> NormalizedModels(std::vector<std::string> models) {
  std::sort(models.begin(), models.end());
  models.erase(std::unique(models.begin(), models.end()), models.end());
  return models;
}

double BinpackScorer::Score(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                            const std::vector<int32_t>& devices) const {
  const double dev = req.NeedsDevices() ? DeviceFreeFractionAfter(cluster, n, t, req, devices) : 0.0;
  // Devices are the scarce resource; CPU only breaks ties between equal device fits.
  return dev + 0.01 * CpuFreeFractionAfter(cluster, n, req);
}

double SpreadScorer::Score(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                           const std::vector<int32_t>& devices) const {
  const double dev = req.NeedsDevices() ? DeviceFreeFractionAfter(cluster, n, t, req, devices) : 0.0;
  return -(dev + 0.01 * CpuFreeFractionAfter(cluster, n, req));
}

void NodeScorer::ScoreShares(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                             const std::vector<int32_t>& devices, std::vector<double>& scores) const {
  scores.clear();
  std::vector<int32_t> one(1);
  for (int32_t d : devices) {
    one[0] = d;
    scores.push_back(Score(cluster, n, t, req, one));
  }
}

void FgdScorer::set_workload(std::vector<TaskShape> workload) {
  workload_ = std::move(workload);
  double total = 0;
  for (const TaskShape& m : workload_) total += std::max(0.0, m.weight);
  share_.clear();
  for (const TaskShape& m : workload_) share_.push_back(total > 0 ? std::max(0.0, m.weight) / total : 0.0);
  models_.clear();
  allowed_.assign(workload_.size(), 0);
  for (size_t i = 0; i < workload_.size(); ++i) {
    for (const std::string& m : workload_[i].models) {
      auto it = std::find(models_.begin(), models_.end(), m);
      if (it == models_.end()) {
        if (models_.size() == 64) continue;  // more models than bits: this one constrains nothing
        it = models_.insert(models_.end(), m);
      }
      allowed_[i] |= uint64_t{1} << (it - models_.begin());
    }
  }
}

uint64_t FgdScorer::ModelBit(const std::string& model) const {
  for (size_t i = 0; i < models_.size(); ++i) {
    if (models_[i] == model) return uint64_t{1} << i;
  }
  return 0;
}

double FgdScorer::Fragmentation(const ClusterState& cluster, int32_t n,
                                const std::vector<int32_t>& free_percent) const {
  const bool typed = cluster.node(n).num_devices > 0;
  return Fragmentation(free_percent, cluster.node(n).free_cpu_milli,
                       typed ? &cluster.type_model(cluster.device(n, 0).type) : nullptr);
}

double FgdScorer::Fragmentation(const std::vector<int32_t>& free_percent, int64_t free_cpu_milli,
                                const std::string* model) const {
  int64_t all_free = 0;
  for (int32_t r : free_percent) all_free += r;
  // Shapes naming models may use these devices only if theirs is among them.
  const bool check_models = !models_.empty() && model != nullptr;
  const uint64_t bit = check_models ? ModelBit(*model) : 0;
  double frag = 0;
  for (size_t i = 0; i < workload_.size(); ++i) {
    const TaskShape& m = workload_[i];
    const bool needs_gpu = m.devices > 0 || m.device_percent > 0;
    const int32_t k = m.devices > 0 ? m.devices : 1;
    const int32_t d = m.devices > 0 ? kWholeDevicePercent : m.device_percent;
    int64_t unusable = all_free;  // no GPU needed or no CPU: every free GPU share is stranded
    // A model it may not use strands them all too.
    const bool allowed = !check_models || allowed_[i] == 0 || (allowed_[i] & bit) != 0;
    if (needs_gpu && allowed && m.cpu_milli <= free_cpu_milli) {
      int32_t fitting = 0;
      int64_t small = 0;
      for (int32_t r : free_percent) {
        if (r >= d)
          ++fitting;
        else
          small += r;
      }
      if (fitting >= k) unusable = small;
    }
    frag += share_[i] * static_cast<double>(unusable);
  }
  return frag * 10.0;  // per cent -> milli-devices
}

void FgdScorer::FreeShares(const ClusterState& cluster, int32_t n, DeviceTypeId t, std::vector<int32_t>& free,
                           std::vector<int32_t>& index) {
  const auto& ns = cluster.node(n);
  free.clear();
  index.assign(ns.num_devices, -1);
  for (int32_t i = 0; i < ns.num_devices; ++i) {
    const auto& dev = cluster.device(n, i);
    if ((t != kAnyType && dev.type != t) || !dev.usable) continue;
    index[i] = static_cast<int32_t>(free.size());
    free.push_back(dev.free_memory_mib > 0 ? dev.free_percent : 0);
  }
}

double FgdScorer::Score(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                        const std::vector<int32_t>& devices) const {
  std::vector<int32_t> before, index;
  const bool cpu_only = !req.NeedsDevices();
  // A task without devices strands the node's free devices of every type when
  // it takes the CPU they need, so all of them count.
  FreeShares(cluster, n, cpu_only ? kAnyType : t, before, index);
  std::vector<int32_t> after = before;
  for (int32_t d : devices) {
    if (index[d] >= 0) after[index[d]] -= req.IsFractional() ? req.device_percent : after[index[d]];
  }
  // The placement takes CPU too: GPUs left without CPU for the typical task are stranded.
  const int64_t cpu = cluster.node(n).free_cpu_milli;
  const std::string* model = cpu_only ? nullptr : &cluster.type_model(t);
  const double delta = Fragmentation(after, cpu - req.cpu_milli, model) - Fragmentation(before, cpu, model);
  // Among equal scores a CPU-only task first prefers a node with no free
  // devices, keeping the CPU of accelerator nodes for the tasks that need
  // their accelerators.
  double keep_for_devices = 0;
  if (cpu_only && std::any_of(before.begin(), before.end(), [](int32_t r) { return r > 0; })) keep_for_devices = 0.01;
  return -FgdPoints(delta) + keep_for_devices + TieBreak(n, cpu);
}

void FgdScorer::ScoreShares(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                            const std::vector<int32_t>& devices, std::vector<double>& scores) const {
  std::vector<int32_t> free, index;
  FreeShares(cluster, n, t, free, index);
  const int64_t cpu = cluster.node(n).free_cpu_milli;
  const std::string* model = &cluster.type_model(t);
  const double before = Fragmentation(free, cpu, model);
  scores.clear();
  for (int32_t d : devices) {
    const int32_t i = index[d];
    const int32_t saved = free[i];
    free[i] -= req.device_percent;
    // Devices of one node tie-break by index, as FGD picks the first best GPU.
    scores.push_back(-FgdPoints(Fragmentation(free, cpu - req.cpu_milli, model) - before) + TieBreak(n, cpu) +
                     1e-6 * i);
    free[i] = saved;
  }
}

// --- FGD's baselines ---------------------------------------------------------------

namespace {

// The artifact's normalisation constants: a node of 128 cores and 8 GPUs.
constexpr double kMaxSpecCpuMilli = 128'000;
constexpr double kMaxSpecGpuMilli = 8'000;
constexpr int64_t kMaxNodeScore = 100;

// Node n's free GPU capacity in milli-devices, and its devices with nothing on them.
int64_t FreeGpuMilli(const ClusterState& cluster, int32_t n) {
  int64_t milli = 0;
  for (int32_t d = 0; d < cluster.node(n).num_devices; ++d) {
    const auto& dev = cluster.device(n, d);
    if (dev.usable) milli += int64_t{dev.free_percent} * 10;
  }
  return milli;
}

int64_t RequestGpuMilli(const TaskRequest& req) {
  return req.IsFractional() ? int64_t{req.device_percent} * 10 : int64_t{req.devices} * 1'000;
}

// A pseudo-random draw in [0, 1) for node n in its present state: the
// random baseline's score. Stable for one state, as TieBreak is.
double RandomDraw(int32_t n, int64_t free_cpu_milli, int64_t free_gpu_milli) {
  uint64_t h = static_cast<uint64_t>(n) * 0x9E3779B97F4A7C15ULL;
  h ^= static_cast<uint64_t>(free_cpu_milli) * 0xC2B2AE3D27D4EB4FULL;
  h ^= static_cast<uint64_t>(free_gpu_milli) * 0x165667B19E3779F9ULL;
  h ^= h >> 31;
  h *= 0xD6E8FEB86659FD93ULL;
  h ^= h >> 32;
  return UnitFromBits(h);
}

}  // namespace

std::string_view FgdBaselineScorer::name() const {
  switch (kind_) {
    case Kind::kRandom:
      return "random";
    case Kind::kBestFit:
      return "bestfit";
    case Kind::kGpuPacking:
      return "gpupacking";
    case Kind::kDotProduct:
      return "dotprod";
    case Kind::kGpuClustering:
      return "gpuclustering";
  }
  return "";
}

int64_t FgdBaselineScorer::Points(const ClusterState& cluster, int32_t n, const TaskRequest& req,
                                  int32_t device) const {
  const auto& ns = cluster.node(n);
  switch (kind_) {
    case Kind::kRandom:
      return 0;  // all alike: the tie-break picks
    case Kind::kBestFit: {
      const double cpu_left = static_cast<double>(ns.free_cpu_milli - req.cpu_milli) / kMaxSpecCpuMilli;
      const double gpu_left = static_cast<double>(FreeGpuMilli(cluster, n) - RequestGpuMilli(req)) / kMaxSpecGpuMilli;
      return static_cast<int64_t>((1.0 - 0.5 * cpu_left - 0.5 * gpu_left) * static_cast<double>(kMaxNodeScore));
    }
    case Kind::kGpuPacking: {
      if (!req.NeedsDevices()) return 0;
      int32_t idle = 0;
      for (int32_t d = 0; d < ns.num_devices; ++d) idle += cluster.device(n, d).WholeFree() ? 1 : 0;
      if (idle == ns.num_devices) return std::max<int64_t>(kMaxNodeScore / 3 - idle, idle);  // an idle node
      const bool on_idle_device = req.IsFractional() ? cluster.device(n, device).WholeFree() : true;
      if (on_idle_device) {  // free devices of a used node: as few as it takes
        const int64_t taken = req.IsFractional() ? 1 : req.devices;
        return std::max<int64_t>(kMaxNodeScore / 2 - taken, kMaxNodeScore / 3);
      }
      // A share on a partly used device: the less it has left, the better.
      return std::max<int64_t>(kMaxNodeScore - cluster.device(n, device).free_percent / 10, kMaxNodeScore / 2);
    }
    case Kind::kGpuClustering: {
      // Like with like: a node whose tasks all ask what this one asks,
      // then one that also holds other kinds, then an idle node, then one
      // of other kinds only; within each band, the fuller the better.
      if (!req.NeedsDevices()) return 0;
      const int32_t kind =
          req.IsFractional() ? 0 : std::min<int32_t>(req.devices, ClusterState::NodeState::kRequestKinds - 1);
      int32_t kinds = 0;
      for (int32_t count : ns.tasks_by_kind) kinds += count > 0 ? 1 : 0;
      const int64_t band = ns.tasks_by_kind[kind] > 0 ? (kinds == 1 ? 3 : 2) : (kinds == 0 ? 1 : 0);
      const int64_t used = static_cast<int64_t>(kMaxSpecGpuMilli) - FreeGpuMilli(cluster, n);
      return kMaxNodeScore / 4 * used / static_cast<int64_t>(kMaxSpecGpuMilli) + band * kMaxNodeScore / 4;
    }
    case Kind::kDotProduct: {
      // What is free where the request would go: a partly used device's
      // share (for a share of one), or all the node's idle devices.
      int64_t free_gpu_milli = 0;
      if (req.IsFractional() && !cluster.device(n, device).WholeFree()) {
        free_gpu_milli = int64_t{cluster.device(n, device).free_percent} * 10;
      } else {
        for (int32_t d = 0; d < ns.num_devices; ++d) free_gpu_milli += cluster.device(n, d).WholeFree() ? 1'000 : 0;
      }
      const double dot = static_cast<double>(ns.free_cpu_milli) / kMaxSpecCpuMilli *
                             static_cast<double>(req.cpu_milli) / kMaxSpecCpuMilli +
                         static_cast<double>(free_gpu_milli) / kMaxSpecGpuMilli *
                             static_cast<double>(RequestGpuMilli(req)) / kMaxSpecGpuMilli;
      return static_cast<int64_t>(static_cast<double>(kMaxNodeScore) * (1.0 - dot / 2.0));
    }
  }
  return 0;
}

double FgdBaselineScorer::Score(const ClusterState& cluster, int32_t n, DeviceTypeId /*t*/, const TaskRequest& req,
                                const std::vector<int32_t>& devices) const {
  const auto& ns = cluster.node(n);
  const double tie = kind_ == Kind::kRandom ? 1e-3 * RandomDraw(n, ns.free_cpu_milli, FreeGpuMilli(cluster, n))
                                            : TieBreak(n, ns.free_cpu_milli);
  return -static_cast<double>(Points(cluster, n, req, devices.empty() ? 0 : devices[0])) + tie;
}

void FgdBaselineScorer::ScoreShares(const ClusterState& cluster, int32_t n, DeviceTypeId t, const TaskRequest& req,
                                    const std::vector<int32_t>& devices, std::vector<double>& scores) const {
  scores.clear();
  std::vector<int32_t> one(1);
  const auto& ns = cluster.node(n);
  for (int32_t d : devices) {
    one[0] = d;
    // Below the node tie-break's steps: the random baseline's device at
    // random too (its artifact's "random" GPU choice), the others' the one
    // with least left that fits ("best").
    // dotprod's: on equal points a partly used device, the first.
    const auto& dev = cluster.device(n, d);
    const double device = kind_ == Kind::kRandom ? RandomDraw(n * 1'024 + d, ns.free_cpu_milli, dev.free_percent)
                          : kind_ == Kind::kDotProduct
                              ? (dev.WholeFree() ? 1.0 : 0.0) + static_cast<double>(d) / 1'024.0
                              : dev.free_percent / 100.0;
    scores.push_back(Score(cluster, n, t, req, one) + 1e-9 * device);
  }
}

absl::StatusOr<std::unique_ptr<NodeScorer>> MakeNodeScorer(std::string_view name) {
  if (name == "binpack") return std::make_unique<BinpackScorer>();
  if (name == "spread") return std::make_unique<SpreadScorer>();
  if (name == "fgd") return std::make_unique<FgdScorer>(std::vector<TaskShape>{});
  if (name == "random") return std::make_unique<FgdBaselineScorer>(FgdBaselineScorer::Kind::kRandom);
  if (name == "bestfit") return std::make_unique<FgdBaselineScorer>(FgdBaselineScorer::Kind::kBestFit);
  if (name == "gpupacking") return std::make_unique<FgdBaselineScorer>(FgdBaselineScorer::Kind::kGpuPacking);
  if (name == "dotprod") return std::make_unique<FgdBaselineScorer>(FgdBaselineScorer::Kind::kDotProduct);
  if (name == "gpuclustering") return std::make_unique<FgdBaselineScorer>(FgdBaselineScorer::Kind::kGpuClustering);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown placement '", std::string(name), "'; known: ", absl::StrJoin(NodeScorerNames(), ", ")));
}

const std::vector<std::string>& NodeScorerNames() {
  static const std::vector<std::string> names = {"binpack", "spread",     "fgd",     "random",
                                                 "bestfit", "gpupacking", "dotprod", "gpuclustering"};
  return names;
}

void HeterogeneityRanker::Rank(std::vector<TypeOption>& options, const std::vector<double>& market) const {
  double best = 0;
  for (const auto& o : options) best = std::max(best, o.throughput);
  if (best <= 0) return;
  auto score = [&](const TypeOption& o) {
    const double rel = o.throughput / best;
    const double m = market[o.type] > 0 ? market[o.type] : 1.0;
    return rel / m;
  };
  std::stable_sort(options.begin(), options.end(), [&](const TypeOption& a, const TypeOption& b) {
    const double sa = score(a), sb = score(b);
    if (sa != sb) return sa > sb;
    return a.throughput > b.throughput;
  });
}

}  // namespace icos::core
