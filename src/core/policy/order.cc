#include "core/policy/order.h"

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <tuple>

#include "absl/strings/str_cat.h"

namespace icos::core {
namespace {

std::vector<int32_t> Indices(const OrderInput& in) {
  std::vector<int32_t> idx(in.snapshot->pending.size());
  std::iota(idx.begin(), idx.end(), 0);
  return idx;
}

// Priority desc, submit asc, id asc: the tie-break every policy ends with.
bool ByPriorityThenFifo(const Job& a, const Job& b) {
  return std::tie(b.priority, a.submit_ms, a.id) < std::tie(a.priority, b.submit_ms, b.id);
}

}  // namespace

absl::StatusOr<std::unique_ptr<OrderPolicy>> MakeOrderPolicy(std::string_view name,
                                                             std::vector<double> las_thresholds_s) {
  if (name == "fifo") return std::make_unique<FifoOrder>();
  if (name == "priority") return std::make_unique<PriorityOrder>();
  if (name == "drf") return std::make_unique<DrfOrder>();
  if (name == "las" || name == "tiresias") {
    if (las_thresholds_s.empty()) return std::make_unique<LasOrder>();
    for (size_t i = 0; i < las_thresholds_s.size(); ++i) {
      if (!(las_thresholds_s[i] > 0) || (i > 0 && las_thresholds_s[i] <= las_thresholds_s[i - 1])) {
        return absl::InvalidArgumentError("LAS level boundaries must be positive and ascending");
      }
    }
    return std::make_unique<LasOrder>(std::move(las_thresholds_s));
  }
  if (name == "sjf") return std::make_unique<SjfOrder>();
  if (name == "srtf") return std::make_unique<SjfOrder>(/*preemptive=*/true);
  return absl::InvalidArgumentError(
      absl::StrCat("unknown order policy '", std::string(name), "'; known: fifo, priority, drf, las, sjf, srtf"));
}

std::vector<int32_t> FifoOrder::Order(const OrderInput& in) const {
  const auto& jobs = in.snapshot->pending;
  auto idx = Indices(in);
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
    return std::tie(jobs[a].submit_ms, jobs[a].id) < std::tie(jobs[b].submit_ms, jobs[b].id);
  });
  return idx;
}

std::vector<int32_t> PriorityOrder::Order(const OrderInput& in) const {
  const auto& jobs = in.snapshot->pending;
  auto idx = Indices(in);
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return ByPriorityThenFifo(jobs[a], jobs[b]); });
  return idx;
}

std::vector<int32_t> SjfOrder::Order(const OrderInput& in) const {
  const auto& jobs = in.snapshot->pending;
  auto idx = Indices(in);
  // An unknown estimate (0 or less) sorts after every known one.
  auto key = [](const Job& j) { return j.runtime_estimate_ms > 0 ? j.runtime_estimate_ms : INT64_MAX; };
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
    const Job& x = jobs[a];
    const Job& y = jobs[b];
    const int64_t kx = key(x), ky = key(y);
    return std::tie(kx, x.submit_ms, x.id) < std::tie(ky, y.submit_ms, y.id);
  });
  return idx;
}

int LasOrder::Level(double attained) const {
  int level = 0;
  while (level < static_cast<int>(thresholds_.size()) && attained >= thresholds_[level]) ++level;
  return level;
}

std::vector<int32_t> LasOrder::Order(const OrderInput& in) const {
  const auto& jobs = in.snapshot->pending;
  auto idx = Indices(in);
  std::vector<int> level(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) level[i] = Level(jobs[i].attained_device_s);
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
    const Job& x = jobs[a];
    const Job& y = jobs[b];
    return std::tie(y.priority, level[a], x.submit_ms, x.id) < std::tie(x.priority, level[b], y.submit_ms, y.id);
  });
  return idx;
}

std::vector<int32_t> DrfOrder::Order(const OrderInput& in) const {
  const auto& jobs = in.snapshot->pending;
  const QuotaTracker& tree = *in.quota;
  const int32_t nq = tree.num_queues();
  // Jobs of each queue, most urgent first; jobs of unknown queues go last.
  std::vector<std::vector<int32_t>> own(nq);
  std::vector<int32_t> orphans;
  for (int32_t i = 0; i < static_cast<int32_t>(jobs.size()); ++i) {
    (in.queue_of[i] >= 0 ? own[in.queue_of[i]] : orphans).push_back(i);
  }
  for (auto& list : own) {
    std::sort(list.begin(), list.end(), [&](int32_t a, int32_t b) { return ByPriorityThenFifo(jobs[a], jobs[b]); });
  }
  std::vector<size_t> next(nq, 0);
  std::vector<int64_t> left(nq, 0);  // pending jobs in each subtree
  for (int32_t q = 0; q < nq; ++q) {
    for (int32_t a = q; a >= 0; a = tree.parent(a)) left[a] += static_cast<int64_t>(own[q].size());
  }
  QuotaTracker shares = tree;  // tentative usage as jobs are handed out
  std::vector<int32_t> out;
  out.reserve(jobs.size());
  // Picks among `candidates` (queues) the lowest weighted dominant share;
  // ties go to the lower queue index so the order is deterministic.
  auto pick = [&](const std::vector<int32_t>& candidates, int32_t self) {
    int32_t best = -1;
    double best_share = 0;
    auto consider = [&](int32_t q, bool own_jobs) {
      if (own_jobs ? next[q] >= own[q].size() : left[q] == 0) return;
      const double s = shares.DominantShare(q, in.capacity);
      if (best < 0 || s < best_share) best = q, best_share = s;
    };
    if (self >= 0) consider(self, true);
    for (int32_t c : candidates) consider(c, false);
    return best;
  };
  while (true) {
    int32_t q = pick(tree.roots(), -1);
    if (q < 0) break;
    // Descend until the chosen queue serves one of its own jobs.
    while (true) {
      const int32_t c = pick(tree.children(q), q);
      if (c == q || c < 0) break;
      q = c;
    }
    const int32_t job = own[q][next[q]++];
    for (int32_t a = q; a >= 0; a = tree.parent(a)) --left[a];
    shares.Apply(q, in.demand[job], +1);
    out.push_back(job);
  }
  out.insert(out.end(), orphans.begin(), orphans.end());
  return out;
}

}  // namespace icos::core
