// Named scheduling policies: the one table behind `icos sim --policy` and
// `icos server/up --policy`, so that a policy measured on traces in the
// simulator runs in the live cluster with the same meaning.
//
//   default  docs/scheduling.md's default set (drf, binpack, FGD for shares,
//            topology- and heterogeneity-aware, EASY backfill, preemption)
//   fifo     FIFO order, heterogeneity-agnostic, no preemption
//   sjf      shortest runtime estimate first, agnostic
//   srtf     shortest remaining time first; preempts much longer jobs
//   gittins  Gittins index over uncertain estimates; preempts
//   las      Tiresias' discretized LAS, agnostic; preempts jobs with more service
//   gavel    LAS order + heterogeneity-aware type ranking and moves (Gavel)
//   fgd      FGD node scoring for every request (Weng et al., ATC'23)
// All keep EASY backfill. Any name may end in "-learned" ("sjf-learned"): the
// same options, run with learned runtime estimates.
//
// Thread-safety: pure functions.
#ifndef ICOS_CORE_POLICY_PRESETS_H_
#define ICOS_CORE_POLICY_PRESETS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "core/scheduler.h"

namespace icos::core {

// The scheduler options `name` stands for. An unknown name is an error
// listing the known ones.
absl::StatusOr<SchedulerOptions> PolicyPreset(absl::string_view name);
// The names above, without their "-learned" forms.
std::vector<std::string> PolicyPresetNames();
// Whether `name` asks for learned runtime estimates (ends in "-learned").
bool PolicyWantsLearnedEstimates(absl::string_view name);

}  // namespace icos::core

#endif  // ICOS_CORE_POLICY_PRESETS_H_
