#include "core/policy/order.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>
#include <numeric>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

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

const std::vector<std::string>& OrderPolicyNames() {
  static const std::vector<std::string> names = {"fifo", "priority", "drf", "las", "sjf", "srtf", "gittins"};
  return names;
}

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
  if (name == "gittins") return std::make_unique<GittinsOrder>();
  return absl::InvalidArgumentError(
      absl::StrCat("unknown order policy '", std::string(name), "'; known: ", absl::StrJoin(OrderPolicyNames(), ", ")));
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
  // Fair share over time: past usage weighs as if still held.
  for (const auto& [name, amounts] : in.snapshot->past_usage) {
    if (const int32_t q = shares.Find(name); q >= 0) shares.AddAmounts(q, amounts);
  }
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

namespace {

// The grid of GittinsOrder's tables: z = log(age / median) / log_sd.
constexpr double kZMin = -6.0;
constexpr double kZMax = 10.0;
constexpr double kZStep = 1.0 / 32;
constexpr int kZPoints = static_cast<int>((kZMax - kZMin) / kZStep) + 1;

double UpperTail(double u) { return 0.5 * std::erfc(u / std::sqrt(2.0)); }  // P(N(0,1) > u)

}  // namespace

double GittinsOrder::NormalizedRank(double z, double log_sd) {
  // Run time X is log-normal, median 1, spread s; age x = exp(s z). The
  // service spent from x until X ends or reaches y is the integral of P(X > t)
  // over [x, y] = y P(X>y) - x P(X>x) + E[X; x < X <= y], in closed form:
  // E[X; x < X <= y] = exp(s^2/2) (Q(z_x - s) - Q(z_y - s)), Q the normal tail.
  const double s = log_sd;
  const double x = std::exp(s * z);
  const double mean_factor = std::exp(s * s / 2);
  const double survive_x = UpperTail(z);
  if (survive_x <= 0) return std::numeric_limits<double>::infinity();
  const double tail_x = UpperTail(z - s);
  // Run to completion: the mean time left.
  double best = (mean_factor * tail_x - x * survive_x) / survive_x;
  // Or only up to y: the candidates y lie on a grid in z.
  for (double zy = z + kZStep; zy <= std::max(z, 0.0) + 10.0; zy += kZStep) {
    const double y = std::exp(s * zy);
    const double survive_y = UpperTail(zy);
    const double ends = survive_x - survive_y;
    if (ends <= 0) continue;  // y still too early to end by
    const double spent = y * survive_y - x * survive_x + mean_factor * (tail_x - UpperTail(zy - s));
    best = std::min(best, spent / ends);
  }
  return std::max(best, 0.0);
}

namespace {

constexpr int kSpreadSlots = 80;  // spreads 0.05 .. 4.00, by 0.05

// NormalizedRank over the grid of z for one spread slot. The tables depend on
// nothing but the slot, so every GittinsOrder shares them; each is computed
// once, on first use.
const std::vector<double>& RankTable(int slot) {
  static std::array<std::once_flag, kSpreadSlots + 1> once;
  static std::array<std::vector<double>, kSpreadSlots + 1> tables;
  std::call_once(once[slot], [slot] {
    tables[slot].resize(kZPoints);
    for (int i = 0; i < kZPoints; ++i) tables[slot][i] = GittinsOrder::NormalizedRank(kZMin + i * kZStep, slot * 0.05);
  });
  return tables[slot];
}

}  // namespace

double RunSoFarMs(const Job& job) {
  double devices = 0;
  for (const TaskGroup& g : job.groups) {
    const double each = g.request.devices > 0 ? g.request.devices : g.request.device_percent / 100.0;
    devices += each * g.MinReplicas();
  }
  return job.attained_device_s * 1000.0 / std::max(devices, 1.0);
}

double GittinsOrder::RankMs(const Job& job, double age_ms) const {
  if (job.runtime_estimate_ms <= 0) return std::numeric_limits<double>::infinity();
  const double sd = job.runtime_log_sd > 0 ? job.runtime_log_sd : default_log_sd_;
  const int slot = std::clamp(static_cast<int>(std::lround(sd / 0.05)), 1, kSpreadSlots);
  const double log_sd = slot * 0.05;
  const double median = static_cast<double>(job.runtime_estimate_ms);
  const double z = age_ms > 0 ? std::log(age_ms / median) / log_sd : kZMin;
  const std::vector<double>& table = RankTable(slot);
  // Far overdue, the rank grows about as the age does.
  if (z > kZMax) return median * table.back() * std::exp(log_sd * (z - kZMax));
  const double pos = (std::max(z, kZMin) - kZMin) / kZStep;
  const int i = std::min(static_cast<int>(pos), kZPoints - 2);
  const double f = pos - i;
  return median * ((1 - f) * table[i] + f * table[i + 1]);
}

std::vector<int32_t> GittinsOrder::Order(const OrderInput& in) const {
  const auto& jobs = in.snapshot->pending;
  auto idx = Indices(in);
  std::vector<double> rank(jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) rank[i] = RankMs(jobs[i], RunSoFarMs(jobs[i]));
  std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) {
    const Job& x = jobs[a];
    const Job& y = jobs[b];
    return std::tie(y.priority, rank[a], x.submit_ms, x.id) < std::tie(x.priority, rank[b], y.submit_ms, y.id);
  });
  return idx;
}

}  // namespace icos::core
