#include "controller/gateway_loads.h"

#include <algorithm>

namespace icos::controller {
namespace {

// What grew from `before` to `now`; nothing when a count went down.
uint64_t Grown(uint64_t before, uint64_t now) { return now > before ? now - before : 0; }

}  // namespace

void GatewayLoads::Report(const std::string& instance, const std::map<int64_t, ServiceLoad>& loads, int64_t now_ms) {
  std::lock_guard<std::mutex> lock(mu_);
  if (!instances_.contains(instance) && instances_.size() >= kMaxInstances) {
    auto oldest = std::min_element(instances_.begin(), instances_.end(),
                                   [](const auto& a, const auto& b) { return a.second.seen_ms < b.second.seen_ms; });
    instances_.erase(oldest);
  }
  Instance& in = instances_[instance];
  in.seen_ms = now_ms;
  std::map<int64_t, ServiceLoad> last;
  for (const auto& [service, load] : loads) {
    auto before = in.last.find(service);
    const ServiceLoad zero;
    const ServiceLoad& was = before == in.last.end() ? zero : before->second;
    ServiceLoad& total = totals_[service];
    total.requests += Grown(was.requests, load.requests);
    for (size_t i = 0; i < total.latency.size(); ++i) total.latency[i] += Grown(was.latency[i], load.latency[i]);
    last[service] = load;
    // A hostile or broken reporter's number cannot overflow the sum.
    last[service].in_flight = std::clamp(load.in_flight, 0, kMaxInFlight);
  }
  in.last = std::move(last);
}

std::optional<ServiceLoad> GatewayLoads::Of(int64_t service, int64_t now_ms) const {
  std::lock_guard<std::mutex> lock(mu_);
  bool any_fresh = false;
  ServiceLoad out;
  if (auto it = totals_.find(service); it != totals_.end()) out = it->second;
  int64_t in_flight = 0;
  for (const auto& [id, in] : instances_) {
    if (now_ms - in.seen_ms > kFreshMs) continue;
    any_fresh = true;
    if (auto it = in.last.find(service); it != in.last.end()) in_flight += it->second.in_flight;
  }
  if (!any_fresh) return std::nullopt;
  out.in_flight = static_cast<int32_t>(std::min<int64_t>(in_flight, kMaxInFlight));
  return out;
}

}  // namespace icos::controller
