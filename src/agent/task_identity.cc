#include "agent/task_identity.h"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "agent/sys_util.h"

extern char** environ;

namespace icos::agent {
namespace {

// One passwd entry, copied out of getpw*_r's buffer.
struct Account {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string name, home, shell;
};

// NotFound when no such account exists; another error when NSS failed.
absl::StatusOr<Account> Lookup(const std::string* name, uid_t uid) {
  long size = sysconf(_SC_GETPW_R_SIZE_MAX);
  std::string buf(size > 0 ? static_cast<size_t>(size) : 16'384, '\0');
  struct passwd pw;
  struct passwd* found = nullptr;
  int err = 0;
  while (true) {
    err = name != nullptr ? getpwnam_r(name->c_str(), &pw, buf.data(), buf.size(), &found)
                          : getpwuid_r(uid, &pw, buf.data(), buf.size(), &found);
    if (err != ERANGE || buf.size() > (1 << 22)) break;
    buf.resize(buf.size() * 2);
  }
  if (err != 0) return ErrnoError(err, "looking up the account");
  if (found == nullptr) return absl::NotFoundError("no such account");
  Account a;
  a.uid = pw.pw_uid;
  a.gid = pw.pw_gid;
  a.name = pw.pw_name != nullptr ? pw.pw_name : "";
  a.home = pw.pw_dir != nullptr && pw.pw_dir[0] != '\0' ? pw.pw_dir : "/";
  a.shell = pw.pw_shell != nullptr && pw.pw_shell[0] != '\0' ? pw.pw_shell : "/bin/sh";
  return a;
}

// The account's groups (its primary one included), as login would set them.
std::vector<gid_t> GroupsOf(const std::string& name, gid_t gid) {
  std::vector<gid_t> groups(64);
  int n = static_cast<int>(groups.size());
  if (getgrouplist(name.c_str(), gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));
    if (getgrouplist(name.c_str(), gid, groups.data(), &n) < 0) return {gid};
  }
  groups.resize(static_cast<size_t>(n));
  return groups;
}

TaskIdentity FromAccount(const Account& a) {
  TaskIdentity id;
  id.uid = a.uid;
  id.gid = a.gid;
  id.name = a.name;
  id.home = a.home;
  id.shell = a.shell;
  id.groups = GroupsOf(a.name, a.gid);
  return id;
}

}  // namespace

absl::StatusOr<TaskIdentity> ResolveTaskIdentity(const std::string& user, int64_t uid, int64_t gid,
                                                 const IdentityPolicy& policy, uid_t agent_uid) {
  // The owner: a pinned uid (with its account's name and home if it has
  // one), else the account named like the user.
  absl::StatusOr<TaskIdentity> owner;
  if (uid >= 0) {
    absl::StatusOr<Account> a = Lookup(nullptr, static_cast<uid_t>(uid));
    // Exactly the pinned identity: its account (if any) names it and gives
    // HOME, but adds no groups the token did not say.
    TaskIdentity id;
    if (a.ok()) id = FromAccount(*a);
    id.uid = static_cast<uid_t>(uid);
    id.gid = static_cast<gid_t>(gid >= 0 ? gid : uid);
    id.groups = {id.gid};
    owner = id;
  } else {
    absl::StatusOr<Account> a = Lookup(&user, 0);
    if (absl::IsNotFound(a.status())) {
      return absl::FailedPreconditionError(
          absl::StrCat("user '", user, "' has no Unix account on this node, so its task cannot run as it (tasks never ",
                       "fall back to another user); create the account, or have an admin map the token to an ",
                       "identity (icos token create --uid --gid)"));
    }
    if (!a.ok()) return absl::UnavailableError(absl::StrCat("user '", user, "': ", a.status().message()));
    owner = FromAccount(*a);
  }
  TaskIdentity id = *std::move(owner);
  if (agent_uid == 0) {
    if (id.uid == 0 && !policy.allow_root_tasks) {
      return absl::FailedPreconditionError(absl::StrCat(
          "user '", user, "' is root here, and this agent runs no task as root (icos agent --allow-root-tasks)"));
    }
    id.switch_user = id.uid != 0;
    return id;
  }
  // Not root: tasks run as the agent's own user, whoever owns them.
  if (id.uid == agent_uid) return id;
  if (policy.foreign_tasks == ForeignTasks::kRefuse) {
    return absl::FailedPreconditionError(absl::StrCat("the task belongs to '", user,
                                                      "', and this agent (not root) runs only its own user's tasks (",
                                                      "--foreign-tasks=refuse)"));
  }
  absl::StatusOr<Account> self = Lookup(nullptr, agent_uid);
  TaskIdentity as_agent;
  if (self.ok()) as_agent = FromAccount(*self);
  as_agent.uid = agent_uid;
  as_agent.gid = getegid();
  as_agent.note = absl::StrCat("running as the agent's user ", self.ok() ? self->name : absl::StrCat(agent_uid),
                               ", not '", user, "': the agent is not root (--foreign-tasks=refuse refuses instead)");
  return as_agent;
}

std::map<std::string, std::string> TaskBaseEnvironment(const TaskIdentity& id) {
  std::map<std::string, std::string> env;
  env["PATH"] =
      id.uid == 0 ? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" : "/usr/local/bin:/usr/bin:/bin";
  env["HOME"] = id.home;
  if (!id.name.empty()) {
    env["USER"] = id.name;
    env["LOGNAME"] = id.name;
  }
  env["SHELL"] = id.shell;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const std::string entry(*e);
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    const std::string key = entry.substr(0, eq);
    if (key == "LANG" || key == "LANGUAGE" || key == "TZ" || absl::StartsWith(key, "LC_")) {
      env[key] = entry.substr(eq + 1);
    }
  }
  return env;
}

absl::Status MakeAgentDirectory(const std::string& root, absl::string_view what) {
  const uid_t me = geteuid();
  if (mkdir(root.c_str(), 0711) != 0 && errno != EEXIST) {
    if (errno == ENOENT) {
      if (absl::Status s = MakeDirs(root, 0711); !s.ok()) return s;
    } else {
      return ErrnoError(errno, absl::StrCat("mkdir ", root));
    }
  }
  struct stat st;
  if (lstat(root.c_str(), &st) != 0) return ErrnoError(errno, absl::StrCat("stat ", root));
  // Someone else's directory (or a link to one) could hold planted files.
  if (!S_ISDIR(st.st_mode) || st.st_uid != me || (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(root, " (", what,
                     ") is not a directory of the agent's own that only it may write; remove it or choose another"));
  }
  if ((st.st_mode & 07777) != 0711 && chmod(root.c_str(), 0711) != 0) {
    return ErrnoError(errno, absl::StrCat("chmod ", root));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MakeTaskDirectory(const std::string& root, const std::string& name,
                                              const TaskIdentity& id) {
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return absl::InvalidArgumentError(absl::StrCat("task directory name '", name, "' is not one path component"));
  }
  if (absl::Status s = MakeAgentDirectory(root, "the tasks' directories: --jobs-dir"); !s.ok()) return s;
  const uid_t me = geteuid();
  const std::string dir = absl::StrCat(root, "/", name);
  if (mkdir(dir.c_str(), 0700) != 0) return ErrnoError(errno, absl::StrCat("mkdir ", dir));
  if (me == 0 && chown(dir.c_str(), id.uid, id.gid) != 0) {
    const int err = errno;
    rmdir(dir.c_str());
    return ErrnoError(err, absl::StrCat("chown ", dir));
  }
  return dir;
}

}  // namespace icos::agent
