// The load that standalone gateways (`icos gateway`, issue #22) report for
// each service, summed for the autoscaler. Each gateway process reports,
// every second or so, its counts since it started (ServiceLoad) under an
// instance id of its own; this keeps one running total per service that
// only grows, whatever the gateways do:
//
//   - a report adds what grew since that gateway's last one;
//   - a gateway that restarts comes back under a new instance id: its new
//     counts are added from zero (the old instance's stay counted);
//   - a count that went down under the same id (a buggy or hostile
//     reporter) adds nothing and replaces the baseline;
//   - requests in flight are summed over the reports of the last
//     kFreshMs only: a gateway that stopped reporting holds none.
//
// Bounded memory: at most kMaxInstances gateways (the one silent longest
// is forgotten first) and, per report, only the services the caller says
// exist.
//
// Thread-safety: thread-safe.
#ifndef ICOS_CONTROLLER_GATEWAY_LOADS_H_
#define ICOS_CONTROLLER_GATEWAY_LOADS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "controller/service_autoscale.h"

namespace icos::controller {

class GatewayLoads {
 public:
  // Gateways report every second (at most every kFreshMs / 3): one silent
  // longer than this no longer measures anything (its last counts would
  // read as no requests since, and scale services down).
  static constexpr int64_t kFreshMs = 3'000;
  static constexpr size_t kMaxInstances = 256;
  static constexpr int32_t kMaxInFlight = 1'000'000;  // per report and in the sum

  // Gateway `instance`'s counts since it started, at now_ms.
  void Report(const std::string& instance, const std::map<int64_t, ServiceLoad>& loads, int64_t now_ms);
  // What every gateway saw of `service`; nullopt when no gateway has
  // reported anything within kFreshMs (then nothing measures its load).
  std::optional<ServiceLoad> Of(int64_t service, int64_t now_ms) const;

 private:
  struct Instance {
    int64_t seen_ms = 0;
    std::map<int64_t, ServiceLoad> last;  // its counts in its last report
  };
  mutable std::mutex mu_;
  std::map<std::string, Instance> instances_;  // guarded by mu_
  std::map<int64_t, ServiceLoad> totals_;      // requests and latency only; guarded by mu_
};

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_GATEWAY_LOADS_H_
