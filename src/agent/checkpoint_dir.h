// The checkpoint contract on a node (issue #20; docs/frameworks.md,
// "Checkpoints"): each job's checkpoint directory, which outlives its
// attempts, and the marker a task touches when it has finished a checkpoint.
#ifndef ICOS_AGENT_CHECKPOINT_DIR_H_
#define ICOS_AGENT_CHECKPOINT_DIR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/task_identity.h"

namespace icos::agent {

// A task tells the agent it finished a checkpoint by touching this file in
// its own directory (ICOS_TASK_DIR): `icos checkpoint-done` does, and so can
// one line of any framework. Only its modification time is read.
inline constexpr char kCheckpointDoneFile[] = ".checkpoint-done";

// Which cluster a checkpoint root serves: `root`/.icos-cluster names it,
// written by the first agent that uses the root. Job ids are per cluster,
// so two clusters sharing a root would mix their jobs' directories, and
// one's retention rule would remove the other's: the root is refused
// (FailedPrecondition, naming both) to a cluster it does not serve. Makes
// `root` (MakeAgentDirectory) first. An empty cluster_id claims nothing.
absl::Status ClaimCheckpointRoot(const std::string& root, const std::string& cluster_id);

// `root`/<owner>/job-<job_id>, made on first use, mode 0700, owned by the
// task's identity, and returned as it is on later attempts (on this node,
// or any node that mounts the same `root`). `root` and `root`/<owner> are
// the agent's (MakeAgentDirectory), so no user can plant a link where
// another's checkpoints go; an existing job directory must be a real
// directory of the task's identity, or this fails rather than use it.
// <owner> is the account name, or "uid-N" for a pinned uid without one.
absl::StatusOr<std::string> MakeCheckpointDirectory(const std::string& root, int64_t job_id, const TaskIdentity& id);

// When the task whose directory is `task_dir` last touched
// kCheckpointDoneFile: Unix ms, 0 when it never did (or it is not a regular
// file: a link or a FIFO a task left there is never followed or opened).
int64_t LastCheckpointMs(const std::string& task_dir);

// The retention rule (NodeAgentOptions::checkpoint_retention_ms): the job
// directories under `root` (`root`/<owner>/job-<id>), for the agent to ask
// the controller which jobs have ended. Entries of any other name, and
// links, are not listed. An unreadable or missing root lists nothing.
struct CheckpointDirectory {
  std::string owner;
  int64_t job_id = 0;
};
std::vector<CheckpointDirectory> ListCheckpointDirectories(const std::string& root);

// Removes `root`/<owner>/job-<id> and everything in it without following a
// link anywhere: each level is opened relative to the one above with
// O_NOFOLLOW, so a link a task planted (or swaps in while this runs) is
// removed as a link, never entered. OK when it is already gone (another
// agent on a shared filesystem removed it).
absl::Status RemoveCheckpointDirectory(const std::string& root, const CheckpointDirectory& dir);

}  // namespace icos::agent

#endif  // ICOS_AGENT_CHECKPOINT_DIR_H_
