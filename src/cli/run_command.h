// `icos run`: an attached run, as Slurm's srun or `ray job submit`. The job is
// made from flags (no spec file), its first task's output streams to the
// terminal, Ctrl-C cancels it, and the command exits with the task's code.
// A job that can never run (NeverFits) is said so and cancelled at once
// instead of waiting forever.
#ifndef ICOS_CLI_RUN_COMMAND_H_
#define ICOS_CLI_RUN_COMMAND_H_

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "protocol/http_client.h"

namespace icos::cli {

struct RunFlags {
  std::vector<std::string> command;  // argv, after `--`
  std::string name;                  // default: the command's base name
  std::string queue;
  std::string cpus;              // "2", "500m"
  std::string memory;            // "4Gi"
  std::string devices;           // "N", "vendor:N", "vendor/model:N" or "vendor/model"
  std::string share;             // "30%": a share of one device instead of whole ones
  std::vector<std::string> env;  // K=V
  std::string time_limit;        // "1h"
  std::string framework;         // none, pytorch, ...
  int32_t replicas = 1;
  std::string workdir;  // where the tasks run: absolute (the CLI resolves --chdir)
};

// One read of task `task`'s log (as `icos job` numbers the current attempt's
// tasks) from byte `offset`; the server sends at most 1 MiB. `next` is where
// the read ended (an offset past the end reads nothing and gives the log's
// size). A task not started yet (409) is `not_started` when `wait_for_start`,
// else its error. For icos logs and icos run.
struct TaskLogChunk {
  std::string text;
  int64_t next = 0;
  bool finished = false;  // the task has ended and this read reached the end
  bool not_started = false;
};
// `attempt` < 0: the latest.
absl::StatusOr<TaskLogChunk> ReadTaskLog(ApiClient& api, int64_t job, int32_t task, int64_t offset, bool wait_for_start,
                                         int32_t attempt = -1);

// The job spec (JSON, which the API takes as YAML) `icos run` submits.
// InvalidArgument, naming the flag, for a malformed --devices or --env.
absl::StatusOr<std::string> RunSpec(const RunFlags& flags);

// Submits, waits, streams task 0's log to `out`, cancels on SIGINT/SIGTERM.
// Exit code: the task's own (0 on success), 130 when cancelled from here, 1
// for a job that can never run or another failure (said on `err`).
int RunAttached(ApiClient& api, const RunFlags& flags, std::ostream& out, std::ostream& err);

}  // namespace icos::cli

#endif  // ICOS_CLI_RUN_COMMAND_H_
