#include "agent/checkpoint_dir.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "agent/sys_util.h"

namespace icos::agent {

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

}  // namespace icos::agent
