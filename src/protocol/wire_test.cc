// The wire formats' newer fields survive a round trip, and bad values are
// refused with the field named.
#include "protocol/wire.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <csignal>
#include <nlohmann/json.hpp>

namespace icos::wire {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

TEST(WireQueueTest, PreemptionAndFairShareSettingsRoundTrip) {
  core::Queue q;
  q.name = "team-a";
  q.min_run_ms = 1'800'000;
  q.usage_half_life_s = 86'400;
  const json j = QueueToJson(q);
  EXPECT_EQ(j.at("min_run_s"), 1800.0);
  EXPECT_EQ(j.at("usage_half_life_s"), 86'400);
  absl::StatusOr<core::Queue> back = QueueFromJson(j);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->min_run_ms, 1'800'000);
  EXPECT_EQ(back->usage_half_life_s, 86'400);
  // Unset, they are left out.
  EXPECT_FALSE(QueueToJson(core::Queue{.name = "b"}).contains("min_run_s"));
}

TEST(WireQueueTest, BadSettingsAreRefused) {
  EXPECT_THAT(QueueFromJson({{"name", "a"}, {"min_run_s", -1}}).status().message(), HasSubstr("min_run_s"));
  EXPECT_THAT(QueueFromJson({{"name", "a"}, {"min_run_s", "1h"}}).status().message(), HasSubstr("min_run_s"));
  EXPECT_THAT(QueueFromJson({{"name", "a"}, {"usage_half_life_s", -5}}).status().message(),
              HasSubstr("usage_half_life_s"));
  EXPECT_FALSE(QueueFromJson({{"name", "a"}, {"usage_half_life_s", "a day"}}).ok());
  EXPECT_THAT(QueueFromJson({{"name", "a"}, {"half_life", 5}}).status().message(), HasSubstr("usage_half_life_s"));
}

TEST(WireQueueTest, PriorityClassesRoundTripAndBadOnesAreRefused) {
  core::Queue q;
  q.name = "team-a";
  q.priority_classes = {{"serving", {.priority = 100}}, {"batch", {.priority = 0, .preempts = false}}};
  q.default_priority_class = "batch";
  absl::StatusOr<core::Queue> back = QueueFromJson(QueueToJson(q));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->priority_classes, q.priority_classes);
  EXPECT_EQ(back->default_priority_class, "batch");
  EXPECT_FALSE(QueueToJson(core::Queue{.name = "b"}).contains("priority_classes"));
  auto refused = [](const json& classes, const json& default_class = nullptr) {
    json j = {{"name", "a"}, {"priority_classes", classes}};
    if (!default_class.is_null()) j["default_priority_class"] = default_class;
    absl::StatusOr<core::Queue> r = QueueFromJson(j);
    return r.ok() ? std::string("accepted") : std::string(r.status().message());
  };
  EXPECT_THAT(refused({{"Serving", {{"priority", 1}}}}), HasSubstr("not a valid name"));
  EXPECT_THAT(refused({{"serving", {{"priority", "high"}}}}), HasSubstr("needs a priority"));
  EXPECT_THAT(refused({{"serving", {{"priority", 2'000'000}}}}), HasSubstr("needs a priority"));
  EXPECT_THAT(refused({{"serving", {{"priority", 1}, {"preempt", false}}}}), HasSubstr("'preempt' is unknown"));
  EXPECT_THAT(refused({{"serving", {{"priority", 1}, {"preempts", "no"}}}}), HasSubstr("true or false"));
  EXPECT_THAT(refused({{"serving", {{"priority", 1}}}}, "batch"), HasSubstr("is none of its priority_classes"));
  EXPECT_THAT(refused(json::array()), HasSubstr("expected"));
}

TEST(WireAssignmentTest, TheCheckpointContractRoundTrips) {
  Assignment a;
  a.task_id = "j1-g0-r0-a0";
  a.job_id = 1;
  a.run = false;
  a.checkpoint_signal = SIGUSR1;
  a.checkpoint_grace_ms = 30'000;
  a.checkpoint_first = true;
  absl::StatusOr<Assignment> back = AssignmentFromJson(AssignmentToJson(a));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->checkpoint_signal, SIGUSR1);
  EXPECT_EQ(back->checkpoint_grace_ms, 30'000);
  EXPECT_TRUE(back->checkpoint_first);
  // An older controller's assignment has none.
  json old = AssignmentToJson(Assignment{.task_id = "t", .job_id = 2});
  old.erase("checkpoint_signal");
  old.erase("checkpoint_first");
  EXPECT_EQ(AssignmentFromJson(old)->checkpoint_signal, 0);
}

TEST(WireAssignmentTest, AServicesPortRoundTripsAndAnOlderAssignmentHasNone) {
  Assignment a{.task_id = "j1-g0-r0-a0", .job_id = 1, .ports = {29501, 29502}, .serve_port = 29502};
  EXPECT_EQ(AssignmentFromJson(AssignmentToJson(a))->serve_port, 29502);
  json old = AssignmentToJson(Assignment{.task_id = "t", .job_id = 2});
  old.erase("serve_port");
  EXPECT_EQ(AssignmentFromJson(old)->serve_port, 0);
}

TEST(WireTaskStatusTest, ACheckpointTimeRoundTrips) {
  TaskStatus s{.task_id = "t", .state = "Running", .checkpoint_ms = 1'700'000'000'123};
  absl::StatusOr<TaskStatus> back = TaskStatusFromJson(TaskStatusToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->checkpoint_ms, 1'700'000'000'123);
}

TEST(WireTaskStatusTest, HowLongACheckpointTookRoundTrips) {
  TaskStatus s{.task_id = "t", .state = "Killed", .checkpoint_save_ms = 60'000, .checkpoint_cut = true};
  absl::StatusOr<TaskStatus> back = TaskStatusFromJson(TaskStatusToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->checkpoint_save_ms, 60'000);
  EXPECT_TRUE(back->checkpoint_cut);
  absl::StatusOr<TaskStatus> none = TaskStatusFromJson(TaskStatusToJson(TaskStatus{.task_id = "t", .state = "Failed"}));
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_EQ(none->checkpoint_save_ms, 0);
  EXPECT_FALSE(none->checkpoint_cut);
}

TEST(WireTaskStatusTest, AnEndedTasksPeakMemoryRoundTrips) {
  TaskStatus s{.task_id = "t", .state = "Succeeded", .max_rss_kib = 812'345};
  absl::StatusOr<TaskStatus> back = TaskStatusFromJson(TaskStatusToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->max_rss_kib, 812'345);
  // An older agent's report has none: unknown.
  EXPECT_EQ(TaskStatusFromJson(TaskStatusToJson(TaskStatus{.task_id = "t", .state = "Failed"}))->max_rss_kib, 0);
}

TEST(WireAssignmentTest, CommandProbesRoundTripAndBadOnesAreRefused) {
  Assignment a{.task_id = "j1-g0-r0-a0", .job_id = 1};
  a.command_probes = {{.kind = "readiness", .argv = {"test", "-f", "ready"}, .initial_delay_ms = 2'000},
                      {.kind = "liveness", .argv = {"/bin/true"}, .period_ms = 1'000, .timeout_ms = 500}};
  absl::StatusOr<Assignment> back = AssignmentFromJson(AssignmentToJson(a));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->command_probes, a.command_probes);
  json bad = AssignmentToJson(a);
  bad["command_probes"][0]["kind"] = "sometimes";
  EXPECT_THAT(AssignmentFromJson(bad).status().message(), HasSubstr("command probe"));
  bad = AssignmentToJson(a);
  bad["command_probes"][1]["argv"] = json::array();
  EXPECT_FALSE(AssignmentFromJson(bad).ok());
}

TEST(WireTaskStatusTest, ProbeOutcomesRoundTripAndAFloodIsRefused) {
  TaskStatus s{.task_id = "t", .state = "Running"};
  s.probes = {{.kind = "readiness", .seq = 7, .passed = false, .message = "exited with status 1"},
              {.kind = "startup", .seq = 1, .passed = true}};
  absl::StatusOr<TaskStatus> back = TaskStatusFromJson(TaskStatusToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->probes, s.probes);
  json flood = TaskStatusToJson(s);
  for (size_t i = 0; i < 3 * kMaxProbeOutcomes; ++i) flood["probes"].push_back(flood["probes"][0]);
  EXPECT_THAT(TaskStatusFromJson(flood).status().message(), HasSubstr("too many"));
  json odd = TaskStatusToJson(s);
  odd["probes"][0]["kind"] = "whenever";
  EXPECT_FALSE(TaskStatusFromJson(odd).ok());
}

// A long message is cut to 1 KiB at a character boundary: cut inside one,
// it would not be valid UTF-8, and every answer quoting the replica's
// reason (its endpoints) would fail to be written.
TEST(WireTaskStatusTest, ALongProbeMessageIsCutBetweenCharacters) {
  std::string message = "x";
  for (int i = 0; i < 515; ++i) message += "\u00e9";  // 2 bytes each: byte 1,024 is the second of one
  TaskStatus s{.task_id = "t", .state = "Running"};
  s.probes = {{.kind = "readiness", .seq = 1, .passed = false, .message = message}};
  absl::StatusOr<TaskStatus> back = TaskStatusFromJson(TaskStatusToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->probes[0].message.size(), 1'023u);
  EXPECT_NO_THROW(json(back->probes[0].message).dump());
}

}  // namespace
}  // namespace icos::wire
