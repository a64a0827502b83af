#include "controller/service_autoscale.h"

#include <algorithm>
#include <cmath>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace icos::controller {
namespace {

int32_t Ceil(double x) { return static_cast<int32_t>(std::min(std::ceil(x - 1e-9), 1e9)); }

}  // namespace

double LatencyQuantileMs(const ServiceLoad& from, const ServiceLoad& to, double q) {
  uint64_t total = 0;
  for (size_t i = 0; i < to.latency.size(); ++i) total += to.latency[i] - from.latency[i];
  if (total == 0) return 0;
  // The answer ranked q x total (a margin for q x total's rounding).
  const double rank = q * static_cast<double>(total) - 1e-9;
  uint64_t seen = 0;
  for (size_t i = 0; i < to.latency.size(); ++i) {
    seen += to.latency[i] - from.latency[i];
    if (static_cast<double>(seen) >= rank) {
      return i < kLatencyBoundsMs.size() ? kLatencyBoundsMs[i] : 2 * kLatencyBoundsMs.back();
    }
  }
  return 2 * kLatencyBoundsMs.back();
}

ScaleDecision Autoscale(const api::AutoscaleSpec& spec, int32_t current, const ServiceLoad& load, int64_t now_ms,
                        AutoscaleMemory& m) {
  ScaleDecision d{.replicas = current};
  if (m.samples.empty()) m.since_ms = now_ms;
  m.samples.emplace_back(now_ms, load);
  // Keep one sample at or before the window's start: the base of the rates.
  const int64_t window_ms = spec.window_s * 1000;
  while (m.samples.size() > 2 && m.samples[1].first <= now_ms - window_ms) m.samples.pop_front();
  const auto& [base_ms, base] = m.samples.front();
  const double seconds = static_cast<double>(now_ms - base_ms) / 1000.0;
  if (seconds < 1.0) return d;  // too little seen to judge
  const double rps = static_cast<double>(load.requests - base.requests) / seconds;
  double in_flight = 0;
  for (const auto& [ms, sample] : m.samples) in_flight += sample.in_flight;
  in_flight /= static_cast<double>(m.samples.size());
  const double p90 = LatencyQuantileMs(base, load, 0.9);

  int32_t want = 0;
  std::string measured;
  if (spec.target_rps > 0) {
    want = Ceil(rps / spec.target_rps);
    measured = absl::StrFormat("%.1f req/s, target %d per replica", rps, spec.target_rps);
  } else if (spec.target_concurrency > 0) {
    want = Ceil(in_flight / spec.target_concurrency);
    measured = absl::StrFormat("%.1f requests in flight, target %d per replica", in_flight, spec.target_concurrency);
  } else {
    // Latency grows as replicas are short: scale in proportion (HPA's rule).
    want = p90 == 0 ? spec.min : Ceil(std::max(current, 1) * p90 / spec.target_p90_ms);
    measured = absl::StrFormat("p90 %.0f ms, target %d ms", p90, spec.target_p90_ms);
  }
  // A burst (Knative's panic mode): over the last tenth of the window (at
  // least 2 s), load that asks for twice the replicas there are is acted
  // on at once, not after the window's average has caught up with it.
  std::string over = absl::StrCat(" over ", spec.window_s, "s");  // what `measured` was measured over
  const int64_t burst_ms = std::max<int64_t>(2'000, window_ms / 10);
  if ((spec.target_rps > 0 || spec.target_concurrency > 0) && burst_ms < window_ms) {
    auto from = m.samples.begin();
    while (std::next(from) != m.samples.end() && std::next(from)->first <= now_ms - burst_ms) ++from;
    const double burst_s = static_cast<double>(now_ms - from->first) / 1000.0;
    if (burst_s >= 1.0) {
      int32_t burst = 0;
      std::string what;
      if (spec.target_rps > 0) {
        const double r = static_cast<double>(load.requests - from->second.requests) / burst_s;
        burst = Ceil(r / spec.target_rps);
        what = absl::StrFormat("%.1f req/s, target %d per replica", r, spec.target_rps);
      } else {
        double sum = 0;
        int n = 0;
        for (auto it = from; it != m.samples.end(); ++it, ++n) sum += it->second.in_flight;
        const double c = sum / std::max(n, 1);
        burst = Ceil(c / spec.target_concurrency);
        what = absl::StrFormat("%.1f requests in flight, target %d per replica", c, spec.target_concurrency);
      }
      if (burst > want && burst >= 2 * std::max(current, 1)) {
        want = burst;
        measured = absl::StrCat("a burst: ", what);
        over = absl::StrCat(" over the last ", burst_s, "s");
      }
    }
  }
  if (load.in_flight > 0) want = std::max(want, 1);  // a waiting request wakes a service at 0
  want = std::clamp(want, spec.min, spec.max);
  m.wanted.emplace_back(now_ms, want);
  const int64_t delay_ms = spec.scale_down_delay_s * 1000;
  while (!m.wanted.empty() && m.wanted.front().first < now_ms - delay_ms) m.wanted.pop_front();
  if (want > current) {
    d.replicas = want;
    d.why = absl::StrCat(current, " -> ", want, " replicas: ", measured, over);
    return d;
  }
  if (want < current && now_ms - m.since_ms >= delay_ms) {
    int32_t most = want;
    for (const auto& [ms, w] : m.wanted) most = std::max(most, w);
    if (most < current) {
      d.replicas = most;
      d.why =
          absl::StrCat(current, " -> ", most, " replicas: ", measured, over, ", for ", spec.scale_down_delay_s, "s");
    }
  }
  return d;
}

}  // namespace icos::controller
