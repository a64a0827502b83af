// The last lines a task wrote, for its exit reason: "exited with code 2"
// alone does not say why a task failed; its last output usually does
// ("python3: can't open file '/home/u/train.py'"). Shown in `icos job` and on
// the job page, so a user need not fetch the log to learn the cause.
//
// Thread-safety: pure function of the file.
#ifndef ICOS_AGENT_LOG_TAIL_H_
#define ICOS_AGENT_LOG_TAIL_H_

#include <cstddef>
#include <string>

namespace icos::agent {

// The last `max_lines` non-blank lines of the file at `path` (read from its
// last 8 KiB), joined by " | ", control characters as '?', at most
// `max_bytes` (the end kept, cut at a UTF-8 character boundary). Empty when
// the file is missing, unreadable or blank.
std::string LogTail(const std::string& path, int max_lines = 3, size_t max_bytes = 400);

}  // namespace icos::agent

#endif  // ICOS_AGENT_LOG_TAIL_H_
