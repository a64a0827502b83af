#include "agent/task_identity.h"

#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "agent/test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::icos::agent::testing::TempDir;
using ::testing::Contains;
using ::testing::HasSubstr;
using ::testing::Key;
using ::testing::Not;

// "nobody" exists on Debian (uid 65534); tests that need it skip otherwise.
bool HaveNobody() { return getpwnam("nobody") != nullptr; }

TEST(ResolveTaskIdentityTest, RootAgentRunsATaskAsItsOwnersAccount) {
  if (!HaveNobody()) GTEST_SKIP() << "no account 'nobody' here";
  absl::StatusOr<TaskIdentity> id = ResolveTaskIdentity("nobody", -1, -1, {}, /*agent_uid=*/0);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->uid, getpwnam("nobody")->pw_uid);
  EXPECT_EQ(id->name, "nobody");
  EXPECT_TRUE(id->switch_user);
  EXPECT_THAT(id->groups, Contains(id->gid));
  EXPECT_TRUE(id->note.empty());
}

TEST(ResolveTaskIdentityTest, MissingAccountIsAClearFailureNeverRoot) {
  absl::StatusOr<TaskIdentity> id = ResolveTaskIdentity("no-such-user-icos", -1, -1, {}, 0);
  ASSERT_FALSE(id.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(id.status()));
  EXPECT_THAT(id.status().message(), HasSubstr("has no Unix account on this node"));
  EXPECT_THAT(id.status().message(), HasSubstr("never fall back"));
}

TEST(ResolveTaskIdentityTest, RootOwnedTasksNeedTheAgentsPermission) {
  absl::StatusOr<TaskIdentity> refused = ResolveTaskIdentity("admin", 0, 0, {}, 0);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("--allow-root-tasks"));
  absl::StatusOr<TaskIdentity> allowed = ResolveTaskIdentity("admin", 0, 0, {.allow_root_tasks = true}, 0);
  ASSERT_TRUE(allowed.ok()) << allowed.status();
  EXPECT_EQ(allowed->uid, 0u);
  EXPECT_FALSE(allowed->switch_user);  // already root
}

TEST(ResolveTaskIdentityTest, PinnedIdentityNeedsNoAccountAndAddsNoGroups) {
  absl::StatusOr<TaskIdentity> id = ResolveTaskIdentity("ci-bot", 4'000'123, 4'000'124, {}, 0);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(id->uid, 4'000'123u);
  EXPECT_EQ(id->gid, 4'000'124u);
  EXPECT_EQ(id->groups, std::vector<gid_t>{4'000'124u});
  EXPECT_EQ(id->home, "/");
  EXPECT_TRUE(id->switch_user);
}

TEST(ResolveTaskIdentityTest, NonRootAgentRunsOthersTasksAsItselfAndSaysSo) {
  if (!HaveNobody()) GTEST_SKIP() << "no account 'nobody' here";
  const uid_t nobody = getpwnam("nobody")->pw_uid;
  // Its own user's task: as itself, nothing to say.
  absl::StatusOr<TaskIdentity> own = ResolveTaskIdentity("nobody", -1, -1, {}, nobody);
  ASSERT_TRUE(own.ok()) << own.status();
  EXPECT_FALSE(own->switch_user);
  EXPECT_TRUE(own->note.empty());
  // Root's task on a non-root agent: as the agent, with the reason.
  absl::StatusOr<TaskIdentity> other = ResolveTaskIdentity("root", -1, -1, {}, nobody);
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(other->uid, nobody);
  EXPECT_FALSE(other->switch_user);
  EXPECT_THAT(other->note, HasSubstr("the agent is not root"));
  // Or refused, when the agent says so.
  absl::StatusOr<TaskIdentity> refused =
      ResolveTaskIdentity("root", -1, -1, {.foreign_tasks = ForeignTasks::kRefuse}, nobody);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("--foreign-tasks=refuse"));
}

TEST(TaskBaseEnvironmentTest, HasTheUsersBasicsAndNothingOfTheAgents) {
  setenv("ICOS_TEST_AGENT_SECRET", "s3cret", 1);
  setenv("LANG", "C.UTF-8", 1);
  TaskIdentity id;
  id.uid = 1'000;
  id.name = "alice";
  id.home = "/home/alice";
  std::map<std::string, std::string> env = TaskBaseEnvironment(id);
  EXPECT_EQ(env["HOME"], "/home/alice");
  EXPECT_EQ(env["USER"], "alice");
  EXPECT_EQ(env["LOGNAME"], "alice");
  EXPECT_EQ(env["PATH"], "/usr/local/bin:/usr/bin:/bin");
  EXPECT_EQ(env["LANG"], "C.UTF-8");
  EXPECT_THAT(env, Not(Contains(Key("ICOS_TEST_AGENT_SECRET"))));
  unsetenv("ICOS_TEST_AGENT_SECRET");
}

TEST(MakeTaskDirectoryTest, MakesAPrivateDirectoryInAnAgentOwnedRoot) {
  TempDir tmp;
  TaskIdentity id;
  id.uid = geteuid();
  id.gid = getegid();
  const std::string root = tmp.Sub("jobs");
  absl::StatusOr<std::string> dir = MakeTaskDirectory(root, "j1-g0-r0-a0", id);
  ASSERT_TRUE(dir.ok()) << dir.status();
  struct stat st;
  ASSERT_EQ(stat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);  // others pass through, cannot list
  ASSERT_EQ(stat(dir->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_EQ(st.st_uid, id.uid);
  // A second attempt of the same name is refused, not reused.
  EXPECT_FALSE(MakeTaskDirectory(root, "j1-g0-r0-a0", id).ok());
  EXPECT_FALSE(MakeTaskDirectory(root, "../escape", id).ok());
}

TEST(MakeTaskDirectoryTest, RefusesARootOthersMayWriteOrALink) {
  TempDir tmp;
  TaskIdentity id;
  id.uid = geteuid();
  id.gid = getegid();
  const std::string open_root = tmp.Sub("open");
  ASSERT_EQ(mkdir(open_root.c_str(), 0777), 0);
  ASSERT_EQ(chmod(open_root.c_str(), 0777), 0);  // past the umask
  EXPECT_THAT(MakeTaskDirectory(open_root, "t", id).status().message(), HasSubstr("only it may write"));
  const std::string link = tmp.Sub("link");
  ASSERT_EQ(symlink(tmp.path().c_str(), link.c_str()), 0);
  EXPECT_FALSE(MakeTaskDirectory(link, "t", id).ok());
}

}  // namespace
}  // namespace icos::agent
