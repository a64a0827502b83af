// The node health-check program, as Slurm's HealthCheckProgram: an operator's
// script the agent runs periodically. Exit status 0 means the node is fit for
// work; anything else (or running past the timeout) means it is not, and the
// first line the program printed says why.
#ifndef ICOS_AGENT_HEALTH_CHECK_H_
#define ICOS_AGENT_HEALTH_CHECK_H_

#include <cstdint>
#include <string>

namespace icos::agent {

struct HealthCheckResult {
  bool healthy = true;
  // Empty when healthy. Otherwise the program's first non-empty output line
  // (stdout and stderr together), or what happened when it printed nothing:
  // "exited with status 3", "killed by signal 9", "timed out after 10 s",
  // "cannot execute /path: ...".
  std::string reason;
};

// Runs `program` (an executable, no arguments; program_run.h) with stdin
// from /dev/null, none of the agent's open files, in its own process group,
// and waits at most `timeout_ms`;
// on timeout the whole group is killed. Never throws; blocks the caller for
// at most about timeout_ms. Thread-safe (forks; the child only execs).
HealthCheckResult RunHealthCheckProgram(const std::string& program, int64_t timeout_ms);

}  // namespace icos::agent

#endif  // ICOS_AGENT_HEALTH_CHECK_H_
