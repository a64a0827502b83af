// The job spec's `checkpoint:` section (issue #20).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>

#include "api/job_spec.h"

namespace icos::api {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<JobSpec> Parse(const std::string& checkpoint) {
  return ParseJobSpec("tasks: [{command: [python3, train.py]}]\ncheckpoint: " + checkpoint + "\n");
}

TEST(CheckpointSpecTest, AbsentMeansNoCheckpointContract) {
  absl::StatusOr<JobSpec> spec = ParseJobSpec("tasks: [{command: [x]}]");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(spec->checkpoint.enabled);
  EXPECT_EQ(JobSpecToJson(*spec).find("checkpoint"), std::string::npos);
}

TEST(CheckpointSpecTest, AnEmptyMappingTakesTheDefaults) {
  absl::StatusOr<JobSpec> spec = Parse("{}");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_TRUE(spec->checkpoint.enabled);
  EXPECT_EQ(spec->checkpoint.signal, SIGUSR1);
  EXPECT_EQ(spec->checkpoint.grace_s, 60);
  EXPECT_EQ(spec->checkpoint.interval_s, 0);
}

TEST(CheckpointSpecTest, EveryFieldIsReadAndSurvivesTheStore) {
  absl::StatusOr<JobSpec> spec = Parse("{signal: SIGUSR2, grace: 2m, interval: 30m}");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->checkpoint.signal, SIGUSR2);
  EXPECT_EQ(spec->checkpoint.grace_s, 120);
  EXPECT_EQ(spec->checkpoint.interval_s, 1800);
  absl::StatusOr<JobSpec> again = ParseJobSpec(JobSpecToJson(*spec));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->checkpoint, spec->checkpoint);
}

TEST(CheckpointSpecTest, MistakesAreNamed) {
  EXPECT_THAT(Parse("{signal: SIGKILL}").status().message(), HasSubstr("SIGUSR1, SIGUSR2, SIGINT, SIGHUP, SIGTERM"));
  EXPECT_THAT(Parse("{grace: 0s}").status().message(), HasSubstr("checkpoint.grace"));
  EXPECT_THAT(Parse("{grace: 2h}").status().message(), HasSubstr("between 1s and 1h"));
  EXPECT_THAT(Parse("{every: 5m}").status().message(), HasSubstr("known: signal, grace, interval"));
  EXPECT_THAT(Parse("yes").status().message(), HasSubstr("checkpoint"));
}

}  // namespace
}  // namespace icos::api
