#include "agent/program_run.h"

#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

ProgramRun Shell(const std::string& script) { return {.argv = {"sh", "-c", script}, .timeout_ms = 10'000}; }

TEST(RunProgramTest, ItGetsExactlyTheEnvironmentAndDirectoryItIsGiven) {
  const std::string dir = ::testing::TempDir();
  ProgramRun run = Shell("echo \"$GREETING in $(pwd) home=${HOME:-none}\"; exit 1");
  run.env = std::vector<std::string>{"GREETING=hello", "PATH=/usr/bin:/bin"};
  run.workdir = dir;
  ProgramResult r = RunProgram(run);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.reason, absl::StrCat("hello in ", std::filesystem::canonical(dir).string(), " home=none"));
}

TEST(RunProgramTest, ANameIsLookedUpInItsOwnPath) {
  ProgramRun run = {.argv = {"true"}, .env = std::vector<std::string>{"PATH=/nonexistent:/bin"}};
  EXPECT_TRUE(RunProgram(run).passed);
  run.env = std::vector<std::string>{"PATH=/nonexistent"};
  EXPECT_THAT(RunProgram(run).reason, HasSubstr("cannot execute true: command 'true' not found in PATH"));
}

TEST(RunProgramTest, NoneOfTheAgentsOpenFilesReachIt) {
  // A file the agent holds open without O_CLOEXEC (a library's socket, say).
  const int fd = open("/etc/hostname", O_RDONLY);
  ASSERT_GE(fd, 3);
  ProgramResult r = RunProgram(Shell(absl::StrCat("test -e /proc/self/fd/", fd, " && echo leaked && exit 1; exit 0")));
  close(fd);
  EXPECT_TRUE(r.passed) << r.reason;
}

TEST(RunProgramTest, OutputThatIsNotTextBecomesAValidReason) {
  ProgramResult r = RunProgram(Shell("printf 'bad \\377\\376 bytes\\n'; exit 2"));
  EXPECT_FALSE(r.passed);
  EXPECT_THAT(r.reason, StartsWith("bad "));
  EXPECT_THAT(r.reason, HasSubstr("bytes"));
  EXPECT_EQ(r.reason.find('\377'), std::string::npos);
}

TEST(RunProgramTest, AHangingProgramAndItsChildrenAreKilledAtTheTimeout) {
  ProgramRun run = Shell("echo still loading; sleep 60 & sleep 60");
  run.timeout_ms = 300;
  ProgramResult r = RunProgram(run);
  EXPECT_FALSE(r.passed);
  EXPECT_EQ(r.reason, "timed out after 0.3 s: still loading");
}

}  // namespace
}  // namespace icos::agent
