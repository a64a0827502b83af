#include "agent/checkpoint_dir.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/sys_util.h"
#include "agent/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::icos::agent::testing::TempDir;
using ::testing::HasSubstr;

TaskIdentity Nobody() {
  TaskIdentity id;
  const passwd* pw = getpwnam("nobody");
  id.uid = pw != nullptr ? pw->pw_uid : 65534;
  id.gid = pw != nullptr ? pw->pw_gid : 65534;
  id.name = "nobody";
  return id;
}

TEST(CheckpointDirTest, OneDirectoryPerJobOwnedByItsUserAndKeptAcrossAttempts) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to give the directory away";
  TempDir tmp;
  const std::string root = tmp.path() + "/ckpt";
  absl::StatusOr<std::string> first = MakeCheckpointDirectory(root, 42, Nobody());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, root + "/nobody/job-42");
  struct stat st;
  ASSERT_EQ(stat(first->c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, Nobody().uid);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  // The user's level is the agent's: nobody cannot plant a link beside it.
  ASSERT_EQ(stat((root + "/nobody").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  // What the first attempt saved is there for the next.
  const int fd = open((*first + "/step-100.pt").c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  close(fd);
  absl::StatusOr<std::string> again = MakeCheckpointDirectory(root, 42, Nobody());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *first);
  EXPECT_EQ(access((*again + "/step-100.pt").c_str(), F_OK), 0);
}

TEST(CheckpointDirTest, ALinkWhereTheJobDirectoryGoesIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir tmp;
  const std::string root = tmp.path() + "/ckpt";
  ASSERT_TRUE(MakeCheckpointDirectory(root, 1, Nobody()).ok());
  ASSERT_EQ(symlink("/etc", (root + "/nobody/job-7").c_str()), 0);
  absl::StatusOr<std::string> dir = MakeCheckpointDirectory(root, 7, Nobody());
  ASSERT_FALSE(dir.ok());
  EXPECT_THAT(dir.status().message(), HasSubstr("refusing"));
  struct stat st;
  ASSERT_EQ(stat("/etc", &st), 0);
  EXPECT_EQ(st.st_uid, 0u);  // never chowned through the link
}

TEST(CheckpointDirTest, AnotherUsersDirectoryIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  TempDir tmp;
  const std::string root = tmp.path() + "/ckpt";
  ASSERT_TRUE(MakeCheckpointDirectory(root, 1, Nobody()).ok());
  ASSERT_EQ(mkdir((root + "/nobody/job-8").c_str(), 0700), 0);  // root's, not nobody's
  EXPECT_FALSE(MakeCheckpointDirectory(root, 8, Nobody()).ok());
}

TEST(CheckpointDirTest, TheMarkersTimeIsReadAndOnlyFromARegularFile) {
  TempDir tmp;
  EXPECT_EQ(LastCheckpointMs(tmp.path()), 0);
  const std::string marker = absl::StrCat(tmp.path(), "/", kCheckpointDoneFile);
  ASSERT_EQ(mkfifo(marker.c_str(), 0600), 0);
  EXPECT_EQ(LastCheckpointMs(tmp.path()), 0);  // a FIFO is never opened (it would block)
  ASSERT_EQ(unlink(marker.c_str()), 0);
  const int fd = open(marker.c_str(), O_CREAT | O_WRONLY, 0600);
  ASSERT_GE(fd, 0);
  const timespec times[2] = {{1'700'000'000, 250'000'000}, {1'700'000'000, 250'000'000}};
  ASSERT_EQ(futimens(fd, times), 0);
  close(fd);
  EXPECT_EQ(LastCheckpointMs(tmp.path()), 1'700'000'000'250);
}

// The retention rule's half on the node: what is listed, and a removal that
// follows none of the links a task may leave in its directory.
TEST(CheckpointDirTest, JobDirectoriesAreListedAndRemovedWithoutFollowingLinks) {
  TempDir tmp;
  const std::string root = tmp.path() + "/ckpt";
  const std::string outside = tmp.path() + "/outside";
  ASSERT_TRUE(MakeDirs(outside + "/deep").ok());
  ASSERT_TRUE(WriteFileAtomically(outside + "/deep/precious", "keep me", false).ok());
  const std::string job = root + "/alice/job-12";
  ASSERT_TRUE(MakeDirs(job + "/a/b/c").ok());
  ASSERT_TRUE(WriteFileAtomically(job + "/a/b/c/step-1.pt", "weights", false).ok());
  ASSERT_EQ(symlink(outside.c_str(), (job + "/to-dir").c_str()), 0);
  ASSERT_EQ(symlink((outside + "/deep/precious").c_str(), (job + "/a/to-file").c_str()), 0);
  ASSERT_TRUE(MakeDirs(root + "/bob/job-3").ok());
  ASSERT_TRUE(MakeDirs(root + "/bob/job-03").ok());                       // not a name this agent makes
  ASSERT_TRUE(MakeDirs(root + "/bob/scratch").ok());                      // nor this
  ASSERT_EQ(symlink(outside.c_str(), (root + "/bob/job-4").c_str()), 0);  // a link: not listed
  std::vector<CheckpointDirectory> dirs = ListCheckpointDirectories(root);
  std::vector<std::string> seen;
  for (const CheckpointDirectory& d : dirs) seen.push_back(absl::StrCat(d.owner, "/", d.job_id));
  EXPECT_THAT(seen, ::testing::UnorderedElementsAre("alice/12", "bob/3"));

  ASSERT_TRUE(RemoveCheckpointDirectory(root, {"alice", 12}).ok());
  EXPECT_FALSE(PathExists(job));
  EXPECT_TRUE(PathExists(root + "/alice"));
  EXPECT_EQ(*ReadFile(outside + "/deep/precious"), "keep me");  // nothing followed
  // Gone already (another node on a shared filesystem): fine.
  EXPECT_TRUE(RemoveCheckpointDirectory(root, {"alice", 12}).ok());
  // A link in a job directory's place is removed as a link.
  ASSERT_TRUE(RemoveCheckpointDirectory(root, {"bob", 4}).ok());
  EXPECT_TRUE(PathExists(outside + "/deep/precious"));
  struct stat st;
  EXPECT_NE(lstat((root + "/bob/job-4").c_str(), &st), 0);
  EXPECT_FALSE(RemoveCheckpointDirectory(root, {"..", 1}).ok());
  EXPECT_THAT(ListCheckpointDirectories(tmp.path() + "/missing"), ::testing::IsEmpty());
}

// Job ids are per cluster: a root shared by two would let one's retention
// remove the other's live checkpoints. The first cluster to use it keeps it.
TEST(CheckpointDirTest, ARootServesOneClusterOnly) {
  TempDir tmp;
  const std::string root = tmp.path() + "/ckpt";
  ASSERT_TRUE(ClaimCheckpointRoot(root, "cluster-a").ok());
  EXPECT_EQ(*ReadFile(root + "/.icos-cluster"), "cluster-a\n");
  EXPECT_TRUE(ClaimCheckpointRoot(root, "cluster-a").ok());  // again: the same
  const absl::Status other = ClaimCheckpointRoot(root, "cluster-b");
  EXPECT_EQ(other.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.message()), HasSubstr("serves cluster cluster-a, not this one (cluster-b)"));
  // The stamp is not listed as an owner, and a link in its place is not followed.
  EXPECT_THAT(ListCheckpointDirectories(root), ::testing::IsEmpty());
  const std::string linked = tmp.path() + "/linked";
  ASSERT_TRUE(MakeDirs(linked).ok());
  ASSERT_EQ(symlink((root + "/.icos-cluster").c_str(), (linked + "/.icos-cluster").c_str()), 0);
  EXPECT_FALSE(ClaimCheckpointRoot(linked, "cluster-b").ok());
}

// Nodes sharing one checkpoint filesystem claim its root as they start,
// possibly at the same instant: every claim of the one cluster succeeds
// (a claimer must never read the stamp half written), and nothing but the
// stamp is left behind.
TEST(CheckpointDirTest, AgentsClaimingARootAtOnceAllSucceed) {
  TempDir tmp;
  for (int round = 0; round < 20; ++round) {
    const std::string root = absl::StrCat(tmp.path(), "/ckpt-", round);
    ASSERT_TRUE(MakeDirs(root).ok());
    constexpr int kClaimers = 8;
    // All start at once: each waits for the end of a pipe the parent
    // closes once every one is forked.
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    std::vector<pid_t> children;
    for (int i = 0; i < kClaimers; ++i) {
      const pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        close(go[1]);
        char byte;
        (void)!read(go[0], &byte, 1);
        _exit(ClaimCheckpointRoot(root, "cluster-a").ok() ? 0 : 1);
      }
      children.push_back(pid);
    }
    close(go[0]);
    close(go[1]);
    for (pid_t pid : children) {
      int status = 0;
      ASSERT_EQ(waitpid(pid, &status, 0), pid);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a claimer failed in round " << round;
    }
    EXPECT_EQ(*ReadFile(root + "/.icos-cluster"), "cluster-a\n");
    int entries = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(root)) ++entries;
    EXPECT_EQ(entries, 1) << "drafts left behind in round " << round;
  }
}

}  // namespace
}  // namespace icos::agent
