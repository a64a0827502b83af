#include "agent/checkpoint_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/sys_util.h"

namespace icos::agent {

namespace {

// The cluster a root's stamp names; NotFound when there is no stamp.
absl::StatusOr<std::string> StampOwner(const std::string& stamp) {
  const int in = open(stamp.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (in < 0) {
    return errno == ENOENT ? absl::NotFoundError(stamp) : ErrnoError(errno, absl::StrCat("open ", stamp));
  }
  char buf[256];
  const ssize_t n = read(in, buf, sizeof buf);
  close(in);
  return std::string(absl::StripAsciiWhitespace(absl::string_view(buf, n > 0 ? static_cast<size_t>(n) : 0)));
}

}  // namespace

absl::Status ClaimCheckpointRoot(const std::string& root, const std::string& cluster_id) {
  if (absl::Status s = MakeAgentDirectory(root, "the jobs' checkpoint directories: --checkpoint-dir"); !s.ok()) {
    return s;
  }
  if (cluster_id.empty()) return absl::OkStatus();
  const std::string stamp = absl::StrCat(root, "/.icos-cluster");
  absl::StatusOr<std::string> owner = StampOwner(stamp);
  if (absl::IsNotFound(owner.status())) {
    // Several agents may claim one root at once (nodes sharing a checkpoint
    // filesystem, starting together): the stamp appears whole or not at
    // all. It is written under a name of this thread's own and then linked
    // into place, which fails if another got there first (atomic on local
    // filesystems and NFS alike); a reader never sees it half written.
    const std::string draft = absl::StrCat(stamp, ".", getpid(), ".", gettid());
    const int fd = open(draft.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0) return ErrnoError(errno, absl::StrCat("create ", draft));
    const std::string line = absl::StrCat(cluster_id, "\n");
    const bool written = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && fsync(fd) == 0;
    int err = errno;
    close(fd);
    if (!written) {
      unlink(draft.c_str());
      return ErrnoError(err, absl::StrCat("write ", draft));
    }
    const bool linked = link(draft.c_str(), stamp.c_str()) == 0;
    err = errno;
    unlink(draft.c_str());
    if (linked) return absl::OkStatus();
    if (err != EEXIST) return ErrnoError(err, absl::StrCat("link ", stamp));
    owner = StampOwner(stamp);  // another claimer's
  }
  if (!owner.ok()) return owner.status();
  if (owner->empty()) return absl::FailedPreconditionError(absl::StrCat(stamp, " names no cluster; remove it"));
  if (*owner != cluster_id) {
    return absl::FailedPreconditionError(absl::StrCat("checkpoint directory ", root, " serves cluster ", *owner,
                                                      ", not this one (", cluster_id,
                                                      "): job ids would collide; give each cluster its own "
                                                      "--checkpoint-dir"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> MakeCheckpointDirectory(const std::string& root, int64_t job_id, const TaskIdentity& id) {
  if (absl::Status s = MakeAgentDirectory(root, "the jobs' checkpoint directories: --checkpoint-dir"); !s.ok()) {
    return s;
  }
  const std::string owner_dir = absl::StrCat(
      root, "/", id.name.empty() || id.name.find('/') != std::string::npos ? absl::StrCat("uid-", id.uid) : id.name);
  if (absl::Status s = MakeAgentDirectory(owner_dir, "a user's checkpoint directories"); !s.ok()) return s;
  const std::string dir = absl::StrCat(owner_dir, "/job-", job_id);
  const uid_t me = geteuid();
  const uid_t owner = me == 0 ? id.uid : me;
  if (mkdir(dir.c_str(), 0700) == 0) {
    if (me == 0 && chown(dir.c_str(), id.uid, id.gid) != 0) {
      const int err = errno;
      rmdir(dir.c_str());
      return ErrnoError(err, absl::StrCat("chown ", dir));
    }
    return dir;
  }
  if (errno != EEXIST) return ErrnoError(errno, absl::StrCat("mkdir ", dir));
  // An earlier attempt's: reused only as what this agent made it.
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return ErrnoError(errno, absl::StrCat("stat ", dir));
  if (!S_ISDIR(st.st_mode) || st.st_uid != owner) {
    return absl::FailedPreconditionError(
        absl::StrCat(dir, " exists but is not a directory of the job's owner; refusing to use it"));
  }
  return dir;
}

int64_t LastCheckpointMs(const std::string& task_dir) {
  struct stat st;
  const std::string path = absl::StrCat(task_dir, "/", kCheckpointDoneFile);
  if (lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000 + st.st_mtim.tv_nsec / 1'000'000;
}

namespace {

// The names in the directory open at `fd` (not "." or ".."), with whether
// each is a directory by lstat. Takes ownership of `fd`.
absl::StatusOr<std::vector<std::pair<std::string, bool>>> Entries(int fd, const std::string& what) {
  DIR* d = fdopendir(fd);
  if (d == nullptr) {
    const int err = errno;
    close(fd);
    return ErrnoError(err, absl::StrCat("opendir ", what));
  }
  std::vector<std::pair<std::string, bool>> out;
  errno = 0;
  while (const dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    bool is_dir = e->d_type == DT_DIR;
    if (e->d_type == DT_UNKNOWN) {
      struct stat st;
      is_dir = fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    out.emplace_back(name, is_dir);
  }
  const int err = errno;
  closedir(d);
  if (err != 0) return ErrnoError(err, absl::StrCat("readdir ", what));
  return out;
}

// Opens directory `name` under `parent` (an fd), never through a link.
int OpenDirAt(int parent, const std::string& name) {
  return openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

// Empties the directory open at `fd` (taken), depth first; every step is
// relative to an fd already open, so nothing it meets is followed.
absl::Status EmptyDirectory(int fd, const std::string& what, int depth) {
  if (depth > 256) {
    close(fd);
    return absl::FailedPreconditionError(absl::StrCat(what, " is nested deeper than 256 levels; not removed"));
  }
  const int keep = dup(fd);  // fdopendir takes `fd`; unlinkat needs one that outlives it
  if (keep < 0) {
    const int err = errno;
    close(fd);
    return ErrnoError(err, absl::StrCat("dup ", what));
  }
  auto entries = Entries(fd, what);
  absl::Status status = entries.status();
  for (const auto& [name, is_dir] : entries.ok() ? *entries : std::vector<std::pair<std::string, bool>>{}) {
    const std::string path = absl::StrCat(what, "/", name);
    if (is_dir) {
      const int child = OpenDirAt(keep, name);
      if (child < 0) {
        // Swapped for a link or a file since it was listed: not entered.
        if (unlinkat(keep, name.c_str(), 0) != 0 && errno != ENOENT) status.Update(ErrnoError(errno, path));
        continue;
      }
      status.Update(EmptyDirectory(child, path, depth + 1));
      if (unlinkat(keep, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) status.Update(ErrnoError(errno, path));
    } else if (unlinkat(keep, name.c_str(), 0) != 0 && errno != ENOENT) {
      status.Update(ErrnoError(errno, absl::StrCat("unlink ", path)));
    }
  }
  close(keep);
  return status;
}

}  // namespace

std::vector<CheckpointDirectory> ListCheckpointDirectories(const std::string& root) {
  std::vector<CheckpointDirectory> out;
  const int root_fd = open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (root_fd < 0) return out;
  const int keep = dup(root_fd);
  auto owners = Entries(root_fd, root);
  for (const auto& [owner, is_dir] : owners.ok() ? *owners : std::vector<std::pair<std::string, bool>>{}) {
    if (!is_dir) continue;
    const int owner_fd = keep < 0 ? -1 : OpenDirAt(keep, owner);
    if (owner_fd < 0) continue;
    auto jobs = Entries(owner_fd, absl::StrCat(root, "/", owner));
    for (const auto& [name, job_is_dir] : jobs.ok() ? *jobs : std::vector<std::pair<std::string, bool>>{}) {
      int64_t id = 0;
      if (job_is_dir && absl::StartsWith(name, "job-") && absl::SimpleAtoi(name.substr(4), &id) && id > 0 &&
          name == absl::StrCat("job-", id)) {
        out.push_back({owner, id});
      }
    }
  }
  if (keep >= 0) close(keep);
  return out;
}

absl::Status RemoveCheckpointDirectory(const std::string& root, const CheckpointDirectory& dir) {
  const std::string owner_path = absl::StrCat(root, "/", dir.owner);
  if (dir.owner.empty() || dir.owner == "." || dir.owner == ".." || dir.owner.find('/') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat("owner '", dir.owner, "' is not a directory name"));
  }
  const int owner_fd = open(owner_path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (owner_fd < 0) return errno == ENOENT ? absl::OkStatus() : ErrnoError(errno, absl::StrCat("open ", owner_path));
  const std::string name = absl::StrCat("job-", dir.job_id);
  const std::string path = absl::StrCat(owner_path, "/", name);
  absl::Status status;
  if (const int job_fd = OpenDirAt(owner_fd, name); job_fd >= 0) {
    status = EmptyDirectory(job_fd, path, 0);
    if (unlinkat(owner_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      status.Update(ErrnoError(errno, absl::StrCat("rmdir ", path)));
    }
  } else if (errno == ELOOP || errno == ENOTDIR) {
    // Not what MakeCheckpointDirectory made: a link or a file in its place.
    if (unlinkat(owner_fd, name.c_str(), 0) != 0 && errno != ENOENT) status = ErrnoError(errno, path);
  } else if (errno != ENOENT) {
    status = ErrnoError(errno, absl::StrCat("open ", path));
  }
  close(owner_fd);
  return status;
}

}  // namespace icos::agent
