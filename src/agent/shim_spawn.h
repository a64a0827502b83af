// Starting a task's shim as a program of its own (icos-shim) instead of a
// fork of the agent. A fork copies the agent's page tables, and every page
// either side writes afterwards is copied again while the shim lives: with
// the controller in the same process (`icos up`) that is hundreds of MiB, and
// on a hypervisor that is slow. posix_spawn (vfork and exec) copies nothing;
// the shim then forks the task from its own small address space.
//
// The plan (shim.h's ShimPlan) goes to the shim over a socket on its fd 3 in
// the format below; the report and lock fds become its fds 4 and 5.
//
// Format: each string is its length (8 bytes, host order) and its bytes;
// each list is its count (8 bytes) and its items; each number 8 bytes. In
// order: kPlanVersion, log_path, workdir, exit_path, exit_tmp_path, pid_path, pid_tmp_path,
// spawn_path, exec_path, cgroup_kill_file, lease_path (strings; "" for none),
// argv, sh_argv, envp, procs_files (lists of strings), uid, gid, groups (a
// list of numbers), max_fd, max_disconnect_ms, grace_ms.
#ifndef ICOS_AGENT_SHIM_SPAWN_H_
#define ICOS_AGENT_SHIM_SPAWN_H_

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "agent/shim.h"

namespace icos::agent::shim {

// `plan` in the format above.
std::string EncodePlan(const ShimPlan& plan);

// Starts `shim_path` with `plan` (its report_fd and lock_fd are handed over
// as kReportFd and kLockFd); returns its pid. The caller reads the report
// and reaps the shim as for a forked one.
absl::StatusOr<pid_t> SpawnShim(const std::string& shim_path, const ShimPlan& plan);

// The icos-shim beside the running program (icos and icos-shim are
// installed together), or "" when there is none.
std::string ShimBesideSelf();

}  // namespace icos::agent::shim

#endif  // ICOS_AGENT_SHIM_SPAWN_H_
