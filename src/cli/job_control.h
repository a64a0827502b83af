// `icos cancel / hold / release / requeue / update`: acting on queued work,
// by ids or (cancel, hold, release) by filters over every matching job. Each
// job is acted on by itself, as scancel and scontrol do: one that cannot be
// (ended, not yours) is said on stderr and the rest still are; the exit code
// says whether any failed (1; 3 when the server could not be reached).
#ifndef ICOS_CLI_JOB_CONTROL_H_
#define ICOS_CLI_JOB_CONTROL_H_

#include <cstdint>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "protocol/http_client.h"

namespace CLI {
class App;
}

namespace icos::cli {

// A job named on the command line: its id, or "ARRAY_INDEX" (123_4: the
// element of index 4 of array 123). NotFound when no such element exists.
absl::StatusOr<int64_t> ResolveJobId(ApiClient& api, const std::string& text);

// Which jobs a command acts on: `ids`, or every job the filters match (all
// of them given must match; the caller's own only, unless an admin).
struct JobSelection {
  // As ResolveJobId reads them, except that an array's id stands for all of
  // its elements that have not ended (as scancel reads it).
  std::vector<std::string> ids;
  std::string user, queue, name;
  std::string state;  // comma-separated; default for filters: Pending,Running
  bool HasFilter() const { return !user.empty() || !queue.empty() || !name.empty() || !state.empty(); }
};

// The ids `selection` names: its ids (arrays expanded), or the matching
// jobs' ids, newest first, paged through the whole listing. InvalidArgument
// for both or neither.
absl::StatusOr<std::vector<int64_t>> SelectJobs(ApiClient& api, const JobSelection& selection);

// One row of `icos jobs`.
struct JobRow {
  std::string id;  // "123"; an array's element "123_4"; elements folded "123_[0-3,7]"
  std::string name, user, queue, state, reason;
  int64_t submit_ms = 0;
  nlohmann::json start_forecast;  // the API's, when pending and forecast (a folded row: its first's)
};
// The rows of a listing (the API's "jobs"): elements of one array next to
// each other with the same state and waiting kind (the reason's first word)
// fold into one row, as squeue shows arrays, unless `expand_arrays`.
std::vector<JobRow> JobRows(const nlohmann::json& jobs, bool expand_arrays);

struct JobControlCommands {
  CLI::App* cancel = nullptr;
  CLI::App* hold = nullptr;
  CLI::App* release = nullptr;
  CLI::App* requeue = nullptr;
  CLI::App* update = nullptr;
  JobSelection selection;
  bool requeue_hold = false;
  std::string priority, time_limit, estimate;  // update; empty: unchanged
};

// Adds the subcommands; `common` adds the connection flags (and -o when asked).
void AddJobControlCommands(CLI::App& app, JobControlCommands& c,
                           const std::function<void(CLI::App*, bool json_output)>& common);
// Runs the one that was chosen (its exit code), or -1 when none was.
int RunJobControlCommand(const JobControlCommands& c, ApiClient& api, bool as_json, std::ostream& out,
                         std::ostream& err);

}  // namespace icos::cli

#endif  // ICOS_CLI_JOB_CONTROL_H_
