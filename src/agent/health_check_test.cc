#include "agent/health_check.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace icos::agent {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

// Writes an executable shell script and returns its path.
std::string Script(const std::string& body) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) / "icos_health_check" / info->name();
  std::filesystem::create_directories(dir);
  std::filesystem::path path = dir / "check.sh";
  std::ofstream(path) << "#!/bin/sh\n" << body << "\n";
  chmod(path.c_str(), 0755);
  return path.string();
}

TEST(HealthCheckProgramTest, ZeroExitIsHealthy) {
  HealthCheckResult r = RunHealthCheckProgram(Script("echo all good; exit 0"), 10'000);
  EXPECT_TRUE(r.healthy);
  EXPECT_EQ(r.reason, "");
}

TEST(HealthCheckProgramTest, NonZeroExitIsUnhealthyWithTheFirstOutputLine) {
  HealthCheckResult r =
      RunHealthCheckProgram(Script("echo; echo '  /scratch is 100% full  '; echo second line; exit 1"), 10'000);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "/scratch is 100% full");  // blank lines skipped, whitespace trimmed
}

TEST(HealthCheckProgramTest, StderrCountsAsOutput) {
  HealthCheckResult r = RunHealthCheckProgram(Script("echo 'ib0 is down' >&2; exit 2"), 10'000);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "ib0 is down");
}

TEST(HealthCheckProgramTest, SilentFailureSaysTheStatus) {
  HealthCheckResult r = RunHealthCheckProgram(Script("exit 3"), 10'000);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "exited with status 3");
}

TEST(HealthCheckProgramTest, HangingProgramIsKilledAtTheTimeout) {
  // The script prints its line, then hangs (with a child holding the pipe).
  HealthCheckResult r = RunHealthCheckProgram(Script("echo checking GPUs; sleep 60 & sleep 60"), 300);
  EXPECT_FALSE(r.healthy);
  EXPECT_THAT(r.reason, StartsWith("timed out after 0.3 s"));
  EXPECT_THAT(r.reason, HasSubstr("checking GPUs"));
}

TEST(HealthCheckProgramTest, ProgramThatClosesItsOutputAndHangsStillTimesOut) {
  HealthCheckResult r = RunHealthCheckProgram(Script("exec >&- 2>&-; sleep 60"), 300);
  EXPECT_FALSE(r.healthy);
  EXPECT_EQ(r.reason, "timed out after 0.3 s");
}

TEST(HealthCheckProgramTest, MissingProgramIsUnhealthyNamingIt) {
  HealthCheckResult r = RunHealthCheckProgram("/nonexistent/check.sh", 10'000);
  EXPECT_FALSE(r.healthy);
  EXPECT_THAT(r.reason, HasSubstr("cannot execute /nonexistent/check.sh"));
}

}  // namespace
}  // namespace icos::agent
