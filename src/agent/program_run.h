// A short program the agent runs and waits for: the node health check
// (health_check.h) and a service replica's command probes (command_probes.h).
// The program gets stdin from /dev/null, its own process group, and none of
// the agent's open files; it may join a task's cgroup and take the task's
// user, directory and environment, so that it runs in the task's context and
// can reach nothing the task could not. Its output (stdout and stderr) says
// why it failed; past its timeout its whole process group is killed.
#ifndef ICOS_AGENT_PROGRAM_RUN_H_
#define ICOS_AGENT_PROGRAM_RUN_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/launcher.h"

namespace icos::agent {

// execvp's search path when PATH is unset (glibc's confstr(_CS_PATH)).
inline constexpr char kDefaultCommandPath[] = "/bin:/usr/bin";

// Where execvp would find `command` (looked up in `path_var` unless it holds
// a '/'; relative to `workdir`), decided before forking so that a typo is a
// clear error rather than a child that dies at once.
absl::StatusOr<std::string> ResolveCommand(const std::string& command, const std::string& path_var,
                                           const std::string& workdir);

// argv as execve takes it, and the "/bin/sh EXEC_PATH ARGS..." that execvp
// runs when the kernel refuses a file without a #! line (ENOEXEC). Both
// point into `argv` and `exec_path`, which must outlive them.
struct ExecArgv {
  std::vector<char*> argv;
  std::vector<char*> sh_argv;
};
ExecArgv MakeExecArgv(const std::vector<std::string>& argv, const std::string& exec_path);

struct ProgramRun {
  std::vector<std::string> argv;  // argv[0]: a path, or a name looked up in the PATH of `env`
  // The whole environment, "NAME=value"; nullopt: the agent's own.
  std::optional<std::vector<std::string>> env;
  std::string workdir;           // empty: the agent's
  std::optional<TaskUser> user;  // unset: the agent's own user
  // The cgroup "procs" files to join before dropping privileges (a task's
  // cgroup, CgroupManager::ProcsFiles): its limits and device rules apply.
  std::vector<std::string> procs_files;
  int64_t timeout_ms = 10'000;
};

struct ProgramResult {
  bool passed = false;  // exited with status 0 within the timeout
  // Empty when it passed. Otherwise its first non-empty line of output
  // (at most 500 bytes, valid UTF-8), or what happened when it printed
  // nothing: "exited with status 3", "killed by signal 9", "timed out after
  // 10 s", "cannot execute /path: ...".
  std::string reason;
};

// Runs the program and waits at most about timeout_ms for it. Never throws.
// Thread-safe: forks, and the child makes only async-signal-safe calls.
ProgramResult RunProgram(const ProgramRun& run);

}  // namespace icos::agent

#endif  // ICOS_AGENT_PROGRAM_RUN_H_
