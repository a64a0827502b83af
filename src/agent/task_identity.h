// Who a task runs as, and what it starts with: the Unix identity of the job's
// owner on this node, the clean environment every task gets, and the private
// directory it works in. The agent decides these before it asks the launcher
// to start a task (docs/security.md, "What a task can reach").
//
// The rules:
//   - A job's user (the token's `user`) is the name of a Unix account; each
//     node resolves it through NSS (/etc/passwd, LDAP, ...), as Slurm does.
//     A token may pin a uid/gid instead (`icos token create --uid --gid`).
//     An account missing on a node is a clear task failure, never root.
//   - An agent running as root switches to that identity (supplementary
//     groups included). It runs a task as root only with allow_root_tasks.
//   - An agent that is not root cannot switch: it runs the tasks of its own
//     user as itself, and other users' tasks as itself too, saying so in
//     the task's reason (kRunAsAgent), or refuses them (kRefuse).
//
// Thread-safety: the functions are thread-safe (reentrant NSS calls).
#ifndef ICOS_AGENT_TASK_IDENTITY_H_
#define ICOS_AGENT_TASK_IDENTITY_H_

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace icos::agent {

// What a non-root agent does with a task of another user.
enum class ForeignTasks {
  kRunAsAgent,  // run it as the agent's own user, and say so
  kRefuse,      // fail it with the reason
};

struct IdentityPolicy {
  // A root agent may run tasks whose owner is root (uid 0). `icos up` run by
  // root allows it for its own one-machine cluster; `icos agent` does not by
  // default.
  bool allow_root_tasks = false;
  ForeignTasks foreign_tasks = ForeignTasks::kRunAsAgent;
};

struct TaskIdentity {
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups
  std::string name;           // the account's name; "" for a pinned uid without one
  std::string home = "/";
  std::string shell = "/bin/sh";
  bool switch_user = false;  // the launcher must become it (the agent is root)
  // Set when the task will not run as its owner (a non-root agent): why.
  std::string note;
};

// The identity a task of `user` (with an optional pinned `uid`/`gid`, -1 for
// none) runs as on this node, for an agent running as `agent_uid`.
// FailedPrecondition, saying what to do, when the owner has no account here,
// when it would be root without allow_root_tasks, or when a non-root agent
// refuses other users' tasks.
absl::StatusOr<TaskIdentity> ResolveTaskIdentity(const std::string& user, int64_t uid, int64_t gid,
                                                 const IdentityPolicy& policy, uid_t agent_uid);

// The variables every task starts with, before its job's and the framework's:
// PATH (a standard one), HOME, USER, LOGNAME and SHELL of its identity, and
// the agent's locale and time zone (LANG, LANGUAGE, LC_*, TZ), which reveal
// nothing. Never any other variable of the agent's environment.
std::map<std::string, std::string> TaskBaseEnvironment(const TaskIdentity& id);

// Makes `root` (mode 0711: others may pass through, not list) owned by the
// agent, refusing one that exists with another owner, as a symlink, or
// writable by others, so no other local user can plant files or links in
// it. `what` names it in the error (and the flag that sets it).
absl::Status MakeAgentDirectory(const std::string& root, absl::string_view what);

// MakeAgentDirectory(root); then makes `root`/`name` (which must not exist) mode 0700, owned by
// the task's identity, and returns its path.
absl::StatusOr<std::string> MakeTaskDirectory(const std::string& root, const std::string& name, const TaskIdentity& id);

}  // namespace icos::agent

#endif  // ICOS_AGENT_TASK_IDENTITY_H_
