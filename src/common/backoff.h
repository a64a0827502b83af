// Exponential back-off, as the engine's restarts and the webhook retries
// wait: the first wait, doubling with each further failure, capped.
#ifndef ICOS_COMMON_BACKOFF_H_
#define ICOS_COMMON_BACKOFF_H_

#include <algorithm>
#include <cstdint>

namespace icos {

// How long to wait after the `failures`-th failure: first_ms, doubled for
// each failure after the first, at most max_ms (or first_ms, if larger).
// 0 when there was no failure or first_ms is not positive.
inline int64_t DoublingBackoffMs(int64_t first_ms, int64_t max_ms, int32_t failures) {
  if (failures <= 0 || first_ms <= 0) return 0;
  int64_t ms = first_ms;
  for (int32_t k = 1; k < failures && ms < max_ms; ++k) ms *= 2;
  return std::min(ms, std::max(max_ms, first_ms));
}

}  // namespace icos

#endif  // ICOS_COMMON_BACKOFF_H_
