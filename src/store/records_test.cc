#include "store/records.h"

#include <optional>
#include <string>

#include "gtest/gtest.h"

namespace icos::store {
namespace {

constexpr JobState kAllJobStates[] = {JobState::kPending, JobState::kRunning, JobState::kSucceeded, JobState::kFailed,
                                      JobState::kCancelled};
constexpr TaskState kAllTaskStates[] = {TaskState::kAssigned, TaskState::kRunning, TaskState::kSucceeded,
                                        TaskState::kFailed, TaskState::kKilled};

TEST(RecordsTest, JobStateNamesAreCapitalisedWords) {
  EXPECT_STREQ(JobStateName(JobState::kPending), "Pending");
  EXPECT_STREQ(JobStateName(JobState::kCancelled), "Cancelled");
}

TEST(RecordsTest, TaskStateNamesAreCapitalisedWords) {
  EXPECT_STREQ(TaskStateName(TaskState::kAssigned), "Assigned");
  EXPECT_STREQ(TaskStateName(TaskState::kKilled), "Killed");
}

TEST(RecordsTest, ParseJobStateInvertsJobStateName) {
  for (JobState s : kAllJobStates) EXPECT_EQ(ParseJobState(JobStateName(s)), s) << JobStateName(s);
}

TEST(RecordsTest, ParseTaskStateInvertsTaskStateName) {
  for (TaskState s : kAllTaskStates) EXPECT_EQ(ParseTaskState(TaskStateName(s)), s) << TaskStateName(s);
}

TEST(RecordsTest, ParseRejectsUnknownNames) {
  // Names are case-sensitive: they are what the store writes, not user input.
  EXPECT_EQ(ParseJobState("pending"), std::nullopt);
  EXPECT_EQ(ParseJobState(""), std::nullopt);
  EXPECT_EQ(ParseTaskState("Assigned "), std::nullopt);
  EXPECT_EQ(ParseTaskState("Pending"), std::nullopt);
}

TEST(RecordsTest, OnlyEndedJobStatesAreTerminal) {
  EXPECT_FALSE(IsTerminal(JobState::kPending));
  EXPECT_FALSE(IsTerminal(JobState::kRunning));
  EXPECT_TRUE(IsTerminal(JobState::kSucceeded));
  EXPECT_TRUE(IsTerminal(JobState::kFailed));
  EXPECT_TRUE(IsTerminal(JobState::kCancelled));
}

TEST(RecordsTest, OnlyEndedTaskStatesAreTerminal) {
  EXPECT_FALSE(IsTerminal(TaskState::kAssigned));
  EXPECT_FALSE(IsTerminal(TaskState::kRunning));
  EXPECT_TRUE(IsTerminal(TaskState::kSucceeded));
  EXPECT_TRUE(IsTerminal(TaskState::kFailed));
  EXPECT_TRUE(IsTerminal(TaskState::kKilled));
}

}  // namespace
}  // namespace icos::store
