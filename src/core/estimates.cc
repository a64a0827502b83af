#include "core/estimates.h"

#include <algorithm>
#include <cmath>

namespace icos::core {

int64_t SecondsToMs(double s) { return static_cast<int64_t>(std::ceil(s * 1000.0 - 1e-6)); }

double EstimatedLeftS(const RunHistory& h) {
  if (h.estimate_s <= 0) return 0;
  return h.worked_s < h.estimate_s ? h.estimate_s - h.worked_s : std::max(h.worked_s, 1.0);
}

int64_t PendingEstimateMs(const RunHistory& h, bool total, int64_t restore_cost_ms) {
  if (total) return h.estimate_s > 0 ? std::max<int64_t>(1, SecondsToMs(h.estimate_s)) : 0;
  const double left = EstimatedLeftS(h);
  if (left <= 0) return 0;
  return std::max<int64_t>(1, SecondsToMs(left + (h.restore ? restore_cost_ms / 1000.0 : 0.0)));
}

int64_t RunningEstimateMs(const RunHistory& h, bool total, int64_t restore_cost_ms, double speed) {
  if (total) return PendingEstimateMs(h, true, restore_cost_ms);
  const double left = EstimatedLeftS(h);
  if (left <= 0 || speed <= 0) return 0;
  return std::max<int64_t>(1, (h.restore ? restore_cost_ms : 0) + SecondsToMs(left / speed));
}

}  // namespace icos::core
