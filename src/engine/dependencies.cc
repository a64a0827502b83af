#include "engine/dependencies.h"

#include <vector>

#include "absl/strings/str_cat.h"

namespace icos::engine {

DependencyCheck CheckDependencies(const api::Dependencies& deps,
                                  const std::function<std::optional<store::JobState>(int64_t)>& state_of) {
  using store::JobState;
  struct Rule {
    const std::vector<int64_t>* ids;
    const char* name;   // as the spec spells it
    const char* wants;  // what the waiting reason says the job waits for
    bool (*met)(JobState);
  };
  const Rule rules[] = {
      {&deps.after_ok, "after_ok", "to succeed", [](JobState s) { return s == JobState::kSucceeded; }},
      {&deps.after_any, "after_any", "to end", [](JobState s) { return store::IsTerminal(s); }},
      {&deps.after_not_ok, "after_not_ok", "to fail or be cancelled",
       [](JobState s) { return s == JobState::kFailed || s == JobState::kCancelled; }},
  };
  std::string first_waiting;
  int32_t waiting = 0;
  for (const Rule& rule : rules) {
    for (int64_t id : *rule.ids) {
      const std::optional<JobState> state = state_of(id);
      if (state.has_value() && store::IsTerminal(*state)) {
        if (rule.met(*state)) continue;
        return {DependencyCheck::Kind::kNeverMet,
                absl::StrCat("job ", id, " ", store::JobStateName(*state), ", so ", rule.name, " cannot be met")};
      }
      if (waiting++ == 0) {
        first_waiting =
            absl::StrCat("job ", id, " (", state ? store::JobStateName(*state) : "just submitted", ") ", rule.wants);
      }
    }
  }
  if (waiting == 0) return {};
  if (waiting > 1) absl::StrAppend(&first_waiting, ", and ", waiting - 1, " more");
  return {DependencyCheck::Kind::kWaiting, std::move(first_waiting)};
}

}  // namespace icos::engine
