// Who may do what: the controller's authorisation policy, in one place
// (docs/security.md has the same table for people).
//
//   role    token                             may
//   admin   icos token create --role admin    everything
//   user    icos token create --role user     submit; see, cancel, hold, release, requeue,
//                                             update and read the logs of its own jobs (not
//                                             an admin's hold); see queues, nodes (not whose work is where)
//                                             and its own usage; the utilisation history
//   agent   a join token                      register a node once (and so receive that
//                                             node's credential); nothing else
//   node    a node's credential               heartbeat, watch and re-register for that one
//                                             node; nothing else (no jobs, logs or other nodes)
//   gateway icos token create --role gateway  a standalone service gateway (`icos gateway`):
//                                             read services' routes (their ready replicas'
//                                             addresses) and report the load it saw; nothing else
//
// Thread-safety: pure functions.
#ifndef ICOS_CONTROLLER_AUTHZ_H_
#define ICOS_CONTROLLER_AUTHZ_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace icos::controller {

enum class Role { kAdmin, kUser, kAgent, kNode, kGateway };
// "admin", "user", "agent", "node", "gateway".
const char* RoleName(Role r);
// The inverse of RoleName; nullopt for anything else.
std::optional<Role> ParseRole(absl::string_view name);

// Who is calling, from its bearer token.
struct Principal {
  std::string name;  // token label
  Role role = Role::kUser;
  std::string user;  // the user jobs are submitted as (and run as: the Unix account of that name)
  // A Unix identity the token pins for the user's jobs instead; -1: none.
  int64_t uid = -1, gid = -1;
  std::string node;  // role kNode: the one node it speaks for
};

enum class Action {
  kSubmitJob,
  kReadJobs,    // list and see jobs (and their logs); users only their own (MaySeeJobsOf)
  kControlJob,  // cancel, hold, release, requeue, update; users their own (MaySeeJobsOf)
  kReadQueues,
  kChangeQueues,
  kReadNodes,
  kChangeNodes,  // drain and resume nodes and devices
  kManageTokens,
  kReadUsage,  // users only their own
  kReadUtilisation,
  kJoinNode,      // register a node that has no credential yet
  kSpeakForNode,  // heartbeat, watch, re-register: `node` names which
  // Read any running service's route (its ready replicas' host:port) and
  // report the requests a gateway forwarded (the autoscaler's input).
  kRouteServices,
};

// OK when `who` may do `action` (for the node actions, on `node`); else
// PermissionDenied saying what the token may not do and which one may.
absl::Status Authorize(const Principal& who, Action action, absl::string_view node = "");

// Lowercase hex SHA-256 of `data`: how tokens are stored and named (a token's
// id is its first 12 digits), and how submissions are compared under an
// idempotency key. Defined in controller_auth.cc.
std::string Sha256Hex(const std::string& data);
// Lowercase hex HMAC-SHA256 of `data` under `key` (webhook signatures).
std::string HmacSha256Hex(const std::string& key, const std::string& data);

// Whether `who` may see (and so act on) the jobs of `owner`: admins all,
// users their own, nodes and join tokens none.
bool MaySeeJobsOf(const Principal& who, absl::string_view owner);

// The one owner whose jobs and usage `who` is shown in listings; nullopt:
// everyone's (admins). Callers still Authorize the listing itself.
std::optional<std::string> VisibleOwner(const Principal& who);

// Whether `who` is shown a queue's webhook URL, which may carry a secret
// (as Slack's do): admins only.
bool MaySeeQueueWebhook(const Principal& who);

// Whether `who` may ask for a job priority above its queue's max_priority
// (priority decides who preempts whom in a queue): admins only.
bool MayExceedQueuePriority(const Principal& who);

// The hold `who` puts on a job (store::JobRecord::hold): "admin" for admins,
// "user" otherwise. Only an admin may release an admin's hold (Slurm's rule:
// an operator holding a job back is not undone by its owner).
const char* HoldKindOf(const Principal& who);
bool MayRelease(const Principal& who, absl::string_view hold);

// What registering a node is for `who`: a join token joins a new node (and
// the node is given a credential of its own); a node's credential
// re-registers its own node. Authorize the result with the node's name.
Action RegistrationAction(const Principal& who);

}  // namespace icos::controller

#endif  // ICOS_CONTROLLER_AUTHZ_H_
