#include "agent/health_check.h"

#include "agent/program_run.h"

namespace icos::agent {

HealthCheckResult RunHealthCheckProgram(const std::string& program, int64_t timeout_ms) {
  // No shell, no arguments: the operator's program as it is, with the
  // agent's environment and identity.
  ProgramResult r = RunProgram({.argv = {program}, .timeout_ms = timeout_ms});
  return {r.passed, std::move(r.reason)};
}

}  // namespace icos::agent
