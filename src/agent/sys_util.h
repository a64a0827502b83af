// Small POSIX helpers shared by the agent's cgroup and launcher code: whole-file
// reads and writes with errno turned into absl::Status, and /proc/<pid>/stat
// parsing for liveness checks that survive pid reuse.
//
// None of these are async-signal-safe; never call them between fork and exec.
// Thread-safety: all functions are safe to call from any thread.
#ifndef ICOS_AGENT_SYS_UTIL_H_
#define ICOS_AGENT_SYS_UTIL_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace icos::agent {

// A status with errno's code (absl::ErrnoToStatusCode) and "<what>: <strerror>"
// as its message.
absl::Status ErrnoError(int err, absl::string_view what);

// Whether a process on this host listens on TCP `port` (any address, IPv4
// or IPv6): a bind with SO_REUSEADDR fails there with EADDRINUSE. A port
// only in TIME_WAIT counts as free, as it does to a server that sets
// SO_REUSEADDR (most do). Racy by nature: a check, not a reservation.
bool PortInUse(int32_t port);

// The whole content of `path`. NotFound when it does not exist.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `content` to an EXISTING file with one write(2), truncating it first.
// Never creates the file: on cgroupfs a missing file means a missing
// controller, and creating it (possible on a fake tree) would hide that.
absl::Status WriteExistingFile(const std::string& path, absl::string_view content);

// Replaces `path` with `content` atomically: writes "<path>.tmp" and renames
// it over `path`, so a reader sees the old or the new file, never half. With
// `durable` the file and then its directory are fsynced, so the new content
// also survives a power loss; without, it survives a crash of the process.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view content, bool durable = true);

// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, mode_t mode = 0755);

bool PathExists(const std::string& path);
bool IsDirectory(const std::string& path);

// The fields of /proc/<pid>/stat the agent needs.
struct ProcStat {
  char state = '?';         // field 3: R, S, D, Z, ...
  pid_t pgid = 0;           // field 5
  int64_t start_ticks = 0;  // field 22: start time in clock ticks after boot
};

// NotFound when the process does not exist (or was reaped).
absl::StatusOr<ProcStat> ReadProcStat(pid_t pid);

// True when `pid` exists, is not a zombie and, if `start_ticks` > 0, started at
// that time (so a recycled pid is not mistaken for the process we launched).
// A zombie counts as dead: it runs no code and, where PID 1 does not reap
// orphans (some containers), it may linger forever.
bool ProcessAlive(pid_t pid, int64_t start_ticks);

// Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME).
int64_t UnixMillis();

// Whether some process holds the flock on `path` (for the launcher: a task's
// shim is alive). false when nobody does (or the file is gone); an error for
// anything else.
absl::StatusOr<bool> LockHeld(const std::string& path);

}  // namespace icos::agent

#endif  // ICOS_AGENT_SYS_UTIL_H_
