// Autoscaling of services (issue #22; docs/services.md, "Autoscaling"):
// from what the gateway saw of a service's requests, how many replicas it
// should have. Pure: the controller samples the load each round and keeps
// an AutoscaleMemory per service.
#ifndef ICOS_CONTROLLER_SERVICE_AUTOSCALE_H_
#define ICOS_CONTROLLER_SERVICE_AUTOSCALE_H_

#include <array>
#include <cstdint>
#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "api/job_spec.h"

namespace icos::controller {

// Where the gateway sends a service's requests (Controller::Route).
struct ServiceRoute {
  int64_t id = 0;                  // the service's id: its load is counted under it
  std::vector<std::string> ready;  // host:port of its ready replicas
  // > 0: it scales from zero (autoscale min 0): with no replica ready, a
  // request waits this long for one (its wait is the demand that wakes it).
  int64_t cold_start_ms = 0;
};

// The upper bounds (ms) of the latency buckets the gateway counts in; a
// last bucket takes the rest.
inline constexpr std::array<double, 13> kLatencyBoundsMs = {1,   2.5, 5,     10,    25,    50,    100,
                                                            250, 500, 1'000, 2'500, 5'000, 10'000};

// What the gateway saw of one service: counts since it started, and the
// requests in it now (answered, or waiting for a replica to start).
struct ServiceLoad {
  uint64_t requests = 0;
  int32_t in_flight = 0;
  std::array<uint64_t, kLatencyBoundsMs.size() + 1> latency{};  // answers per bucket
};

// The q-th quantile (0.9: the 90th percentile) of the answers counted
// between `from` and `to`: the upper bound of its bucket (twice the last
// bound for the open bucket); 0 without answers.
double LatencyQuantileMs(const ServiceLoad& from, const ServiceLoad& to, double q);

// The last window of samples and decisions of one service.
struct AutoscaleMemory {
  std::deque<std::pair<int64_t, ServiceLoad>> samples;  // oldest first
  std::deque<std::pair<int64_t, int32_t>> wanted;       // what each round's load asked for
  int64_t since_ms = 0;                                 // the first sample
};

struct ScaleDecision {
  int32_t replicas = 0;
  std::string why;  // set when replicas differs from the current count
};

// The replicas a service of `current` replicas should have, given a new
// sample of its load at `now_ms`:
//   - the load over the last window_s: requests per second, the average
//     requests in flight, or the 90th percentile latency of its answers;
//   - wanted = the fewest replicas that keep each under its target
//     (for latency: current x p90 / target), within [min, max], and at
//     least 1 while a request waits (a service at 0 wakes on demand);
//   - up at once; down only to the most that any round of the last
//     scale_down_delay_s wanted (no flapping), and not before that long
//     was observed.
ScaleDecision Autoscale(const api::AutoscaleSpec& spec, int32_t current, const ServiceLoad& load, int64_t now_ms,
                        AutoscaleMemory& memory);

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_SERVICE_AUTOSCALE_H_
