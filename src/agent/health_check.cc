#include "agent/health_check.h"

#include "agent/program_run.h"

namespace icos::agent {

HealthCheckResult RunHealthCheckProgram(const std::string& program, int64_t timeout_ms) {
  // No arguments: the operator's program as it is, with the agent's
  // environment and identity (RunProgram: a script without a #! line runs
  // under /bin/sh, as execvp would).
  ProgramResult r = RunProgram({.argv = {program}, .timeout_ms = timeout_ms});
  return {r.passed, std::move(r.reason)};
}

}  // namespace icos::agent
