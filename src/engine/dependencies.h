// Whether a job's dependencies (api::Dependencies: after_ok, after_any,
// after_not_ok) let it start, from how each job it names stands now. Pure.
#ifndef ICOS_ENGINE_DEPENDENCIES_H_
#define ICOS_ENGINE_DEPENDENCIES_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "api/job_spec.h"
#include "store/records.h"

namespace icos::engine {

struct DependencyCheck {
  enum class Kind {
    kMet,       // every dependency is met: the job may be scheduled
    kWaiting,   // some named job has not ended yet
    kNeverMet,  // some named job ended the other way: it can never be met
  };
  Kind kind = Kind::kMet;
  // Waiting: "job 12 (Running) to succeed, and 2 more"; never met: "job 12
  // Failed, so after_ok cannot be met". Empty when met.
  std::string reason;
};

// `state_of(id)`: the state of job `id` now; nullopt while it is unknown (a
// job being submitted at this moment), which counts as not ended yet. A
// dependency that can never be met wins over ones still waiting: the user
// learns at once.
DependencyCheck CheckDependencies(const api::Dependencies& deps,
                                  const std::function<std::optional<store::JobState>(int64_t)>& state_of);

}  // namespace icos::engine

#endif  // ICOS_ENGINE_DEPENDENCIES_H_
