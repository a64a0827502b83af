// `icos usage --since/--until` time arguments; where the CLI finds its
// server, token and CA.
#include "cli/client.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <filesystem>

namespace icos::cli {
namespace {

constexpr int64_t kNow = 1'764'140'000;  // 2025-11-26T06:53:20Z

TEST(ParseTimeArgTest, DurationsCountBackFromNow) {
  EXPECT_EQ(*ParseTimeArg("90s", kNow), kNow - 90);
  EXPECT_EQ(*ParseTimeArg("30m", kNow), kNow - 1800);
  EXPECT_EQ(*ParseTimeArg("12h", kNow), kNow - 43'200);
  EXPECT_EQ(*ParseTimeArg("7d", kNow), kNow - 604'800);
  EXPECT_EQ(*ParseTimeArg("2w", kNow), kNow - 1'209'600);
}

TEST(ParseTimeArgTest, DatesAreUtcMidnight) {
  // 2026-11-01 is 20,758 days after 1970-01-01: 20,758 x 86,400 = 1,793,491,200.
  EXPECT_EQ(*ParseTimeArg("2026-11-01", kNow), 1'793'491'200);
}

TEST(ParseTimeArgTest, Rfc3339AndUnixSeconds) {
  EXPECT_EQ(*ParseTimeArg("2026-11-01T08:00:00Z", kNow), 1'793'491'200 + 8 * 3600);
  EXPECT_EQ(*ParseTimeArg("2026-11-01T08:00:00+08:00", kNow), 1'793'491'200);
  EXPECT_EQ(*ParseTimeArg("1793491200", kNow), 1'793'491'200);
}

TEST(ParseTimeArgTest, GarbageIsAClearError) {
  for (const char* bad : {"", "yesterday", "7x", "-3d", "2026-13-45", "d"}) {
    auto t = ParseTimeArg(bad, kNow);
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(t.status().message()), ::testing::HasSubstr("RFC 3339")) << bad;
  }
}

// FillConnection reads the environment and $ICOS_HOME/config.json: each
// test sets both and restores them.
class FillConnectionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::filesystem::temp_directory_path() / ("icos-conn-" + std::to_string(getpid()));
    std::filesystem::create_directories(home_);
    for (const char* name : {"ICOS_HOME", "ICOS_SERVER", "ICOS_TOKEN", "ICOS_CA_CERT"}) {
      if (const char* v = getenv(name)) saved_.emplace_back(name, v);
      unsetenv(name);
    }
    setenv("ICOS_HOME", home_.c_str(), 1);
    SaveConnection(home_.string(), {"https://127.0.0.1:7070", "tok", "/up/tls/ca.crt"});
  }
  void TearDown() override {
    for (const char* name : {"ICOS_HOME", "ICOS_SERVER", "ICOS_TOKEN", "ICOS_CA_CERT"}) unsetenv(name);
    for (const auto& [name, value] : saved_) setenv(name.c_str(), value.c_str(), 1);
    std::filesystem::remove_all(home_);
  }
  std::filesystem::path home_;
  std::vector<std::pair<std::string, std::string>> saved_;
};

TEST_F(FillConnectionTest, ConfigJsonGivesServerTokenAndCa) {
  Connection c;
  ASSERT_TRUE(FillConnection(c).ok());
  EXPECT_EQ(c.server, "https://127.0.0.1:7070");
  EXPECT_EQ(c.token, "tok");
  EXPECT_EQ(c.ca_cert, "/up/tls/ca.crt");
}

TEST_F(FillConnectionTest, FlagsThenEnvironmentComeFirst) {
  setenv("ICOS_CA_CERT", "/env/ca.crt", 1);
  Connection c;
  ASSERT_TRUE(FillConnection(c).ok());
  EXPECT_EQ(c.ca_cert, "/env/ca.crt");
  Connection flagged{.ca_cert = "/flag/ca.crt"};
  ASSERT_TRUE(FillConnection(flagged).ok());
  EXPECT_EQ(flagged.ca_cert, "/flag/ca.crt");
}

// config.json's CA vouches for config.json's server, not for another one.
TEST_F(FillConnectionTest, ConfigCaIsOnlyForConfigServer) {
  setenv("ICOS_SERVER", "https://ctl.example.com:7070", 1);
  Connection c;
  ASSERT_TRUE(FillConnection(c).ok());
  EXPECT_EQ(c.server, "https://ctl.example.com:7070");
  EXPECT_EQ(c.ca_cert, "");  // the system's CAs
  setenv("ICOS_SERVER", "https://127.0.0.1:7070", 1);
  Connection same;
  ASSERT_TRUE(FillConnection(same).ok());
  EXPECT_EQ(same.ca_cert, "/up/tls/ca.crt");
}

TEST_F(FillConnectionTest, ACaForAPlainHttpServerIsRefused) {
  Connection c{.server = "http://127.0.0.1:7070", .ca_cert = "/some/ca.crt"};
  absl::Status st = FillConnection(c);
  ASSERT_TRUE(absl::IsFailedPrecondition(st)) << st;
  EXPECT_THAT(st.message(), ::testing::HasSubstr("is plain http://: use its https:// URL"));
}

// `icos submit examples/pytorch-ddp/job.yaml` from the repo root runs
// examples/pytorch-ddp/train.py: relative paths belong to the spec file.
TEST(SubmitBaseDirTest, TheSpecFilesDirectoryUnlessChdirOrStdin) {
  namespace fs = std::filesystem;
  const std::string cwd = fs::current_path().string();
  EXPECT_EQ(SubmitBaseDir("examples/pytorch-ddp/job.yaml", "").value(), cwd + "/examples/pytorch-ddp");
  EXPECT_EQ(SubmitBaseDir("job.yaml", "").value(), cwd);
  EXPECT_EQ(SubmitBaseDir("/srv/jobs/../specs/job.yaml", "").value(), "/srv/specs");
  EXPECT_EQ(SubmitBaseDir("-", "").value(), cwd);
  EXPECT_EQ(SubmitBaseDir("examples/job.yaml", "/tmp").value(), "/tmp");
  EXPECT_EQ(SubmitBaseDir("-", ".").value(), cwd);
  EXPECT_EQ(SubmitBaseDir("x.yaml", "/no/such/dir").status().message(), "--chdir /no/such/dir is not a directory");
}

TEST(LastLinesTest, KeepsTheLastNLinesWithTheirNewlines) {
  EXPECT_EQ(LastLines("a\nb\nc\n", 2), "b\nc\n");
  EXPECT_EQ(LastLines("a\nb\nc", 2), "b\nc");  // a last line without its newline yet
  EXPECT_EQ(LastLines("a\nb\n", 5), "a\nb\n");
  EXPECT_EQ(LastLines("a\nb\n", 0), "");
  EXPECT_EQ(LastLines("", 3), "");
  EXPECT_EQ(LastLines("\n\n", 1), "\n");
}

}  // namespace
}  // namespace icos::cli
