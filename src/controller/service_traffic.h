// The request rate and latency of each service over the last hour, as the
// gateways saw them (issue #22's dashboard charts): one point every kStepMs
// from the cumulative counts (ServiceLoad) the controller already gathers
// for the autoscaler, whether or not the service autoscales. Memory only:
// a controller restart starts the charts afresh (the counts behind them are
// on every gateway's /metrics for Prometheus to keep).
//
// Thread-safety: thread-safe.
#ifndef ICOS_CONTROLLER_SERVICE_TRAFFIC_H_
#define ICOS_CONTROLLER_SERVICE_TRAFFIC_H_

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <vector>

#include "controller/service_autoscale.h"

namespace icos::controller {

struct TrafficPoint {
  int64_t t_ms = 0;       // the end of its step
  double rps = 0;         // answers per second over the step
  int32_t in_flight = 0;  // requests in the gateways at its end
  // Percentiles of the step's answers (their bucket's upper bound); 0 with none.
  double p50_ms = 0, p90_ms = 0, p99_ms = 0;
};

class ServiceTraffic {
 public:
  static constexpr int64_t kStepMs = 5'000;
  static constexpr size_t kPoints = 720;  // an hour

  // The service's counts at now_ms; makes a point once a step has passed
  // since the last one. A count that went down (the counts restarted)
  // makes no point and becomes the new base.
  void Sample(int64_t service, const ServiceLoad& load, int64_t now_ms);
  // Its points, oldest first.
  std::vector<TrafficPoint> Of(int64_t service) const;
  void Forget(int64_t service);

 private:
  struct Series {
    ServiceLoad base;
    int64_t base_ms = 0;
    std::deque<TrafficPoint> points;
  };
  mutable std::mutex mu_;
  std::map<int64_t, Series> series_;  // guarded by mu_
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_SERVICE_TRAFFIC_H_
