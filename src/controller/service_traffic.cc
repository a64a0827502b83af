#include "controller/service_traffic.h"

namespace icos::controller {

void ServiceTraffic::Sample(int64_t service, const ServiceLoad& load, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  auto [it, added] = series_.try_emplace(service);
  Series& s = it->second;
  if (added) {
    s.base = load;
    s.base_ms = now_ms;
    return;
  }
  if (now_ms - s.base_ms < kStepMs) return;
  bool restarted = load.requests < s.base.requests;
  for (size_t i = 0; i < load.latency.size(); ++i) restarted = restarted || load.latency[i] < s.base.latency[i];
  if (!restarted) {
    s.points.push_back(
        {.t_ms = now_ms,
         .rps = static_cast<double>(load.requests - s.base.requests) * 1000.0 / static_cast<double>(now_ms - s.base_ms),
         .in_flight = load.in_flight,
         .p50_ms = LatencyQuantileMs(s.base, load, 0.5),
         .p90_ms = LatencyQuantileMs(s.base, load, 0.9),
         .p99_ms = LatencyQuantileMs(s.base, load, 0.99)});
    while (s.points.size() > kPoints) s.points.pop_front();
  }
  s.base = load;
  s.base_ms = now_ms;
}

std::vector<TrafficPoint> ServiceTraffic::Of(int64_t service) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(service);
  if (it == series_.end()) return {};
  return {it->second.points.begin(), it->second.points.end()};
}

void ServiceTraffic::Forget(int64_t service) {
  std::lock_guard<std::mutex> lock(mu_);
  series_.erase(service);
}

}  // namespace icos::controller
