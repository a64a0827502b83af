#include "core/forecast_calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

namespace icos::core {
namespace {

// A minute: waits are compared on log(wait + a minute), so that "at once"
// and "in 30 s" are close, and an hour off matters less on a 2-day wait.
constexpr double kOffsetMs = 60'000;
constexpr double kInf = std::numeric_limits<double>::infinity();

double LogWait(int64_t made_ms, int64_t at_ms) {
  return std::log(static_cast<double>(std::max<int64_t>(0, at_ms - made_ms)) + kOffsetMs);
}

int64_t AtMs(int64_t made_ms, double log_wait) {
  if (!std::isfinite(log_wait)) return -1;
  return made_ms + std::max<int64_t>(0, std::llround(std::exp(log_wait) - kOffsetMs));
}

// The q-quantile of v (sorted in place), q in [0, 1], the lower of ties.
double Quantile(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  const size_t i =
      std::min(v.size() - 1, static_cast<size_t>(std::ceil(q * static_cast<double>(v.size()))) - (q > 0 ? 1 : 0));
  return v[i];
}

}  // namespace

void ForecastCalibrator::Observe(int64_t made_ms, const StartForecast& f, int64_t start_ms) {
  if (f.p50_ms < 0 || f.p10_ms < 0 || start_ms < 0) return;
  seen_.push_back({.lo = LogWait(made_ms, f.p10_ms),
                   .mid = LogWait(made_ms, f.p50_ms),
                   .hi = f.p90_ms < 0 ? kInf : LogWait(made_ms, f.p90_ms),
                   .actual = LogWait(made_ms, start_ms)});
  while (seen_.size() > static_cast<size_t>(std::max(1, options_.window))) seen_.pop_front();
  fresh_ = false;
}

void ForecastCalibrator::Refresh() const {
  if (fresh_) return;
  fresh_ = true;
  // The median miss of P50 moves every quantile alike. (Weighing each miss
  // by how close its forecast wait was to the one calibrated did worse on
  // bench/forecast.sh: too few long waits to learn from, each noisy.)
  std::vector<double> misses;
  misses.reserve(seen_.size());
  for (const Seen& s : seen_) misses.push_back(s.actual - s.mid);
  shift_ = Quantile(misses, 0.5);
  // How far outside its shifted interval each start fell (negative: inside,
  // by that much); intervals move out by the quantile that holds `coverage`
  // of them, with the finite-sample correction (n + 1) / n.
  std::vector<double> scores;
  scores.reserve(seen_.size());
  for (const Seen& s : seen_) scores.push_back(std::max(s.lo + shift_ - s.actual, s.actual - (s.hi + shift_)));
  const double n = static_cast<double>(scores.size());
  widen_ = Quantile(scores, std::min(1.0, options_.coverage * (n + 1) / n));
}

void ForecastCalibrator::Keep(int64_t made_ms, const StartForecast& f) {
  kept_.emplace(f.job.value(), std::make_pair(made_ms, f));
}

void ForecastCalibrator::ObserveStarts(const Snapshot& snap) {
  if (kept_.empty()) return;
  std::map<int64_t, int64_t> running;  // id -> start of its current run
  for (const RunningJob& rj : snap.running) running[rj.job.id.value()] = rj.start_ms;
  std::set<int64_t> pending;
  for (const Job& j : snap.pending) pending.insert(j.id.value());
  for (auto it = kept_.begin(); it != kept_.end();) {
    if (pending.count(it->first) > 0) {
      ++it;
      continue;
    }
    if (auto r = running.find(it->first); r != running.end()) Observe(it->second.first, it->second.second, r->second);
    it = kept_.erase(it);
  }
}

StartForecast ForecastCalibrator::Calibrate(int64_t made_ms, StartForecast f) const {
  if (f.p50_ms < 0 || f.p10_ms < 0 || seen_.size() < static_cast<size_t>(std::max(1, options_.min_observations))) {
    return f;
  }
  Refresh();
  const double mid = LogWait(made_ms, f.p50_ms) + shift_;
  const double lo = std::min(mid, LogWait(made_ms, f.p10_ms) + shift_ - widen_);
  f.p50_ms = AtMs(made_ms, mid);
  f.p10_ms = AtMs(made_ms, lo);
  if (f.p90_ms >= 0) f.p90_ms = AtMs(made_ms, std::max(mid, LogWait(made_ms, f.p90_ms) + shift_ + widen_));
  return f;
}

}  // namespace icos::core
