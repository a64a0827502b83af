#include "core/policy_presets.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace icos::core {

std::vector<std::string> PolicyPresetNames() {
  return {"default", "fifo", "sjf", "srtf", "gittins", "las", "gavel", "fgd"};
}

namespace {
constexpr absl::string_view kLearnedSuffix = "-learned";
}  // namespace

bool PolicyWantsLearnedEstimates(absl::string_view name) { return absl::EndsWith(name, kLearnedSuffix); }

absl::StatusOr<SchedulerOptions> PolicyPreset(absl::string_view name) {
  if (absl::EndsWith(name, kLearnedSuffix)) name.remove_suffix(kLearnedSuffix.size());
  SchedulerOptions o;  // the default set
  if (name == "default") return o;
  if (name == "fifo" || name == "sjf" || name == "srtf" || name == "gittins" || name == "las") {
    o.order = std::string(name);
    o.heterogeneity_aware = false;
    // Tiresias' LAS, SRTF and Gittins preempt (jobs with more service, with
    // much longer left, with a much worse rank); FIFO and SJF run jobs to
    // completion.
    o.preemption = name == "las" || name == "srtf" || name == "gittins";
    return o;
  }
  if (name == "gavel") {
    // Gavel's LAS (Narayanan et al., OSDI'20) re-plans every 6-minute round:
    // least attained service first, each job on the type where it progresses
    // most. icos gets there with events instead of rounds: LAS levels that
    // double from 1 h up to 512 h (Tiresias has two), type ranking by
    // comparative advantage, earliest-finish placement and moving running jobs
    // to faster types as devices free.
    o.order = "las";
    for (double t = 3'600; t <= 512 * 3'600; t *= 2) o.las_thresholds_s.push_back(t);
    o.heterogeneity_aware = true;
    o.wait_for_faster_type = true;
    o.migrate_to_faster_type = true;
    o.preemption = true;
    return o;
  }
  if (name == "fgd") {
    o.placement = "fgd";
    return o;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown policy '", name,
                                                 "'; known: ", absl::StrJoin(PolicyPresetNames(), ", "),
                                                 ", each also as NAME-learned (learned runtime estimates)"));
}

}  // namespace icos::core
