#include "core/resources/usage_history.h"

#include <cmath>

namespace icos::core {

void UsageHistory::Advance(int64_t now_ms, const std::vector<Queue>& queues,
                           const std::map<std::string, ResourceAmounts>& held) {
  const int64_t elapsed = last_ms_ < 0 ? 0 : now_ms - last_ms_;
  if (last_ms_ >= 0 && elapsed <= 0) return;  // same instant (or a clock step back): nothing passed
  last_ms_ = now_ms;
  static const ResourceAmounts kNothing;
  for (const Queue& q : queues) {
    if (q.usage_half_life_s <= 0) {
      average_.erase(q.name);
      continue;
    }
    const double keep = std::exp2(-static_cast<double>(elapsed) / (static_cast<double>(q.usage_half_life_s) * 1000.0));
    std::map<std::string, double>& avg = average_[q.name];
    auto h = held.find(q.name);
    const ResourceAmounts& now = h == held.end() ? kNothing : h->second;
    for (auto& [key, v] : avg) v *= keep;
    for (const auto& [key, v] : now) avg[key] += static_cast<double>(v) * (1.0 - keep);
    std::erase_if(avg, [](const auto& kv) { return kv.second < 0.5; });
  }
}

void UsageHistory::Update(Snapshot& snap) {
  bool wanted = false;
  for (const Queue& q : snap.queues) wanted |= q.usage_half_life_s > 0;
  if (!wanted) return;
  Advance(snap.now_ms, snap.queues, Held(snap));
  snap.past_usage = Equivalent();
}

std::map<std::string, ResourceAmounts> UsageHistory::Equivalent() const {
  std::map<std::string, ResourceAmounts> out;
  for (const auto& [queue, avg] : average_) {
    for (const auto& [key, v] : avg) {
      const auto rounded = static_cast<int64_t>(std::llround(v));
      if (rounded > 0) out[queue][key] = rounded;
    }
  }
  return out;
}

std::map<std::string, ResourceAmounts> UsageHistory::Held(const Snapshot& snap) {
  std::map<std::string, ResourceAmounts> out;
  for (const RunningJob& r : snap.running) {
    ResourceAmounts& a = out[r.job.queue.empty() ? "default" : r.job.queue];
    for (const TaskPlacement& t : r.tasks) {
      a["cpu"] += t.cpu_milli;
      a["memory"] += t.memory_mib;
      for (const DeviceSlice& d : t.devices) {
        const int64_t milli = static_cast<int64_t>(d.percent) * 10;
        a["devices"] += milli;
        if (t.node < 0 || t.node >= static_cast<int32_t>(snap.nodes.size())) continue;
        const auto& devices = snap.nodes[t.node].devices;
        if (d.device < 0 || d.device >= static_cast<int32_t>(devices.size())) continue;
        a[devices[d.device].vendor] += milli;
        a[devices[d.device].vendor + "/" + devices[d.device].model] += milli;
      }
    }
  }
  return out;
}

}  // namespace icos::core
