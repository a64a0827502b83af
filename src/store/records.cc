#include "store/records.h"

#include <algorithm>
#include <array>
#include <optional>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"

namespace icos::store {
namespace {

// Indexed by the enum value; the names are what the store writes to disk and
// the API shows, so they never change once released.
constexpr std::array<const char*, 5> kJobStateNames = {"Pending", "Running", "Succeeded", "Failed", "Cancelled"};
constexpr std::array<const char*, 5> kTaskStateNames = {"Assigned", "Running", "Succeeded", "Failed", "Killed"};

}  // namespace

const char* JobStateName(JobState s) {
  const auto i = static_cast<size_t>(s);
  return i < kJobStateNames.size() ? kJobStateNames[i] : "Unknown";
}

const char* TaskStateName(TaskState s) {
  const auto i = static_cast<size_t>(s);
  return i < kTaskStateNames.size() ? kTaskStateNames[i] : "Unknown";
}

std::optional<JobState> ParseJobState(const std::string& name) {
  for (size_t i = 0; i < kJobStateNames.size(); ++i) {
    if (name == kJobStateNames[i]) return static_cast<JobState>(i);
  }
  return std::nullopt;
}

std::optional<TaskState> ParseTaskState(const std::string& name) {
  for (size_t i = 0; i < kTaskStateNames.size(); ++i) {
    if (name == kTaskStateNames[i]) return static_cast<TaskState>(i);
  }
  return std::nullopt;
}

bool IsTerminal(JobState s) { return s == JobState::kSucceeded || s == JobState::kFailed || s == JobState::kCancelled; }

bool IsTerminal(TaskState s) {
  return s == TaskState::kSucceeded || s == TaskState::kFailed || s == TaskState::kKilled;
}

EventRecord SubmittedEvent(const JobRecord& job, int64_t job_id) {
  return EventRecord{.job_id = job_id,
                     .time_ms = job.submit_ms,
                     .kind = "Submitted",
                     .message = absl::StrCat("submitted by ", job.user, " to queue ", job.queue)};
}

absl::Status CheckLimit(int32_t limit, absl::string_view what) {
  if (limit < 0) return absl::InvalidArgumentError(absl::StrCat(what, ": limit ", limit, " is negative"));
  return absl::OkStatus();
}

std::vector<std::string> StateFilter(const JobQuery& query) {
  std::vector<std::string> states;
  for (JobState s : query.states) states.push_back(JobStateName(s));
  std::sort(states.begin(), states.end());
  states.erase(std::unique(states.begin(), states.end()), states.end());
  return states;
}

absl::Status CheckSchemaVersion(int64_t version, int32_t latest, absl::string_view what) {
  if (version > latest) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": database schema v", version, " is newer than this icos (v", latest, "); upgrade icos"));
  }
  if (version < 0) {
    return absl::FailedPreconditionError(absl::StrCat(what, ": database schema version ", version, " is invalid"));
  }
  return absl::OkStatus();
}

absl::Status CheckEpoch(int64_t mine, const absl::StatusOr<LeaderRecord>& leader, absl::string_view what) {
  if (!leader.ok()) return leader.status();
  const LeaderRecord& current = *leader;
  if (current.epoch == mine) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(what, ": refused, this controller no longer leads the store (it led at epoch ", mine, "; ",
                   current.holder.empty() ? "another controller" : absl::StrCat("'", current.holder, "'"),
                   current.url.empty() ? "" : absl::StrCat(" at ", current.url), " took over at epoch ", current.epoch,
                   "); it must stop and let the leader serve"));
}

std::string NewClusterId() {
  std::random_device entropy;  // the kernel's random source
  static const char* kHex = "0123456789abcdef";
  std::string out = "c";
  for (int i = 0; i < 2; ++i) {
    uint32_t word = entropy();
    for (int b = 0; b < 8; ++b, word >>= 4) out.push_back(kHex[word & 15]);
  }
  return out;
}

void ApplyOutcomes(const std::vector<JobRecord*>& group, const std::vector<IdempotentOutcome>& outcomes) {
  for (size_t i = 0; i < group.size() && i < outcomes.size(); ++i) {
    group[i]->id = outcomes[i].id;
    if (group[i]->array_id != 0 || group[i]->starts_array) group[i]->array_id = outcomes[i].array_id;
    group[i]->replayed = outcomes[i].existing && !outcomes[i].conflict;
    group[i]->key_conflict = outcomes[i].conflict;
  }
}

JobRecord ArrayInsertWalk::Row(const JobRecord& job) const {
  JobRecord row = job;
  if (job.starts_array) {
    row.array_id = 0;
  } else if (job.array_id == kNewArray) {
    row.array_id = current_;
  }
  return row;
}

void ArrayInsertWalk::Inserted(const JobRecord& job, int64_t id, bool replayed) {
  if (!job.starts_array) return;
  current_ = id;
  skipping_ = replayed;
}

absl::Status InsertOutcome(const JobRecord& job) {
  if (!job.key_conflict) return absl::OkStatus();
  return absl::AlreadyExistsError(absl::StrCat("Idempotency-Key '", job.idempotency_key,
                                               "' was used for another request (job ", job.id,
                                               "); send a new key for a new job"));
}

}  // namespace icos::store
