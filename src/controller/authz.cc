#include "controller/authz.h"

#include "absl/strings/str_cat.h"

namespace icos::controller {
namespace {

const char* ActionText(Action a) {
  switch (a) {
    case Action::kSubmitJob:
      return "submit jobs";
    case Action::kReadJobs:
      return "read jobs";
    case Action::kControlJob:
      return "cancel, hold, release, requeue or update jobs";
    case Action::kReadQueues:
      return "read queues";
    case Action::kChangeQueues:
      return "change queues";
    case Action::kReadNodes:
      return "read nodes";
    case Action::kChangeNodes:
      return "drain or resume nodes";
    case Action::kManageTokens:
      return "manage tokens";
    case Action::kReadUsage:
      return "read usage";
    case Action::kReadUtilisation:
      return "read the utilisation history";
    case Action::kJoinNode:
      return "register nodes";
    case Action::kSpeakForNode:
      return "speak for a node";
    case Action::kRouteServices:
      return "read services' routes or report their load";
  }
  return "do this";
}

// Which role a refused caller would need, for the message.
const char* Needed(Action a) {
  switch (a) {
    case Action::kChangeQueues:
    case Action::kChangeNodes:
    case Action::kManageTokens:
      return "an admin token";
    case Action::kJoinNode:
      return "a join token (icos token create --role agent)";
    case Action::kSpeakForNode:
      return "that node's own credential";
    case Action::kRouteServices:
      return "a gateway token (icos token create --role gateway)";
    default:
      return "a user or admin token";
  }
}

}  // namespace

const char* RoleName(Role r) {
  switch (r) {
    case Role::kAdmin:
      return "admin";
    case Role::kUser:
      return "user";
    case Role::kAgent:
      return "agent";
    case Role::kNode:
      return "node";
    case Role::kGateway:
      return "gateway";
  }
  return "?";
}

std::optional<Role> ParseRole(absl::string_view name) {
  for (Role r : {Role::kAdmin, Role::kUser, Role::kAgent, Role::kNode, Role::kGateway}) {
    if (name == RoleName(r)) return r;
  }
  return std::nullopt;
}

absl::Status Authorize(const Principal& who, Action action, absl::string_view node) {
  bool allowed = false;
  switch (who.role) {
    case Role::kAdmin:
      allowed = true;
      break;
    case Role::kUser:
      allowed = action == Action::kSubmitJob || action == Action::kReadJobs || action == Action::kControlJob ||
                action == Action::kReadQueues || action == Action::kReadNodes || action == Action::kReadUsage ||
                action == Action::kReadUtilisation;
      break;
    case Role::kAgent:
      allowed = action == Action::kJoinNode;
      break;
    case Role::kNode:
      allowed = action == Action::kSpeakForNode && !who.node.empty() && node == who.node;
      break;
    case Role::kGateway:
      allowed = action == Action::kRouteServices;
      break;
  }
  if (allowed) return absl::OkStatus();
  std::string what = ActionText(action);
  if (action == Action::kSpeakForNode && who.role == Role::kNode) {
    what = absl::StrCat("speak for node '", node, "' (it is node '", who.node, "''s credential)");
  }
  return absl::PermissionDeniedError(
      absl::StrCat("this ", RoleName(who.role), " token may not ", what, "; that needs ", Needed(action)));
}

bool MaySeeJobsOf(const Principal& who, absl::string_view owner) {
  return who.role == Role::kAdmin || (who.role == Role::kUser && who.user == owner);
}

std::optional<std::string> VisibleOwner(const Principal& who) {
  if (who.role == Role::kAdmin) return std::nullopt;
  return who.user;
}

bool MaySeeQueueWebhook(const Principal& who) { return who.role == Role::kAdmin; }

bool MayExceedQueuePriority(const Principal& who) { return who.role == Role::kAdmin; }

const char* HoldKindOf(const Principal& who) { return who.role == Role::kAdmin ? "admin" : "user"; }

bool MayRelease(const Principal& who, absl::string_view hold) { return hold != "admin" || who.role == Role::kAdmin; }

Action RegistrationAction(const Principal& who) {
  return who.role == Role::kAgent ? Action::kJoinNode : Action::kSpeakForNode;
}

}  // namespace icos::controller
