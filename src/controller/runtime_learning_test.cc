#include "controller/runtime_learning.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace icos::controller {
namespace {

api::JobSpec Parse(const std::string& yaml) {
  auto s = api::ParseJobSpec(yaml);
  EXPECT_TRUE(s.ok()) << s.status();
  return s.ok() ? *s : api::JobSpec{};
}

// The history loader reads device counts from stored specs without the full
// parser; it must count as SpecDevices does, for every shape of request.
TEST(SpecDevicesTest, StoredSpecsCountAsParsedOnes) {
  const std::vector<std::pair<std::string, int32_t>> cases = {
      {"tasks:\n  - command: [a]\n", 0},
      {"tasks:\n  - command: [a]\n    replicas: 3\n    resources: {devices: 2}\n", 6},
      {"tasks:\n  - command: [a]\n    replicas: 2\n    resources: {device_share: 30}\n", 2},
      {"tasks:\n  - command: [a]\n    resources: {device_memory: 4Gi}\n", 1},
      {"tasks:\n  - name: ps\n    command: [a]\n  - name: worker\n    command: [b]\n    replicas: 4\n"
       "    resources: {devices: 8}\n",
       32},
  };
  for (const auto& [yaml, want] : cases) {
    const api::JobSpec spec = Parse(yaml);
    EXPECT_EQ(SpecDevices(spec), want) << yaml;
    auto stored = StoredSpecDevices(api::JobSpecToJson(spec));
    ASSERT_TRUE(stored.ok()) << stored.status();
    EXPECT_EQ(*stored, want) << yaml;
  }
}

TEST(SpecDevicesTest, MalformedStoredSpecsAreErrorsNotCrashes) {
  for (const std::string bad :
       {"", "[]", "{}", R"({"tasks": 3})", R"({"tasks": [{"replicas": "x"}]})",
        R"({"tasks": [{"resources": {"devices": "many"}}]})", R"({"tasks": [{"resources": 5}]})"}) {
    EXPECT_FALSE(StoredSpecDevices(bad).ok()) << bad;
  }
}

store::TaskRecord Task(int32_t attempt, int64_t start_ms, int64_t end_ms) {
  store::TaskRecord t;
  t.attempt = attempt;
  t.start_ms = start_ms;
  t.end_ms = end_ms;
  return t;
}

// A first attempt runs from the job's start to its end; a job that was
// preempted or restarted ran the sum of its attempts, each from its first
// task's start to its last task's end, and the wait between them is not run time.
TEST(RunSecondsTest, SumsAttemptsAndSkipsTheWaitsBetween) {
  store::JobRecord j;
  j.start_ms = 10'000;
  j.end_ms = 70'000;
  EXPECT_DOUBLE_EQ(RunSeconds(j, {}), 60);
  j.attempt = 1;
  const std::vector<store::TaskRecord> tasks = {Task(0, 10'000, 40'000), Task(0, 11'000, 41'000),
                                                Task(1, 100'000, 130'000), Task(1, 0, 0)};  // one never started
  EXPECT_DOUBLE_EQ(RunSeconds(j, tasks), 31 + 30);
}

learn::JobFacts Facts(const std::string& name, double t) {
  return learn::JobFacts{.user = "u", .queue = "q", .name = name, .gpus = 1, .submit_unix_s = t};
}

// Estimates are handed out once min_finished_to_estimate jobs have succeeded; a failed
// one teaches nothing; a stored history fits one model at its end.
TEST(RuntimeLearningTest, HandsOutEstimatesOnceEnoughJobsSucceeded) {
  RuntimeLearningOptions o;
  o.estimator.min_finished_to_estimate = 2;
  o.estimator.burst_gap_s = 0;  // one job at a time here
  auto l = RuntimeLearning::Create(o);
  ASSERT_TRUE(l.ok()) << l.status();
  (*l)->Submitted(1, Facts("train-1", 1'000));
  (*l)->Ended(1, Facts("train-1", 1'000), 600, 1'600'000);
  (*l)->Submitted(2, Facts("train-2", 2'000));
  (*l)->Ended(2, Facts("train-2", 2'000), -1, 2'100'000);  // failed: not learned from
  (*l)->Submitted(3, Facts("train-3", 3'000));
  EXPECT_TRUE((*l)->Apply().empty());  // one success so far
  (*l)->Ended(3, Facts("train-3", 3'000), 600, 3'600'000);
  (*l)->Submitted(4, Facts("train-4", 4'000));
  std::vector<RuntimeLearning::Estimate> made = (*l)->Apply();
  ASSERT_EQ(made.size(), 1u);
  EXPECT_EQ(made[0].id, 4);
  EXPECT_NEAR(made[0].runtime_s, 600, 1);
  EXPECT_EQ((*l)->GetStats().finished, 2);
}

TEST(RuntimeLearningTest, AStoredHistoryFitsOneModel) {
  RuntimeLearningOptions o;
  o.estimator.min_train = 50;
  auto l = RuntimeLearning::Create(o);
  ASSERT_TRUE(l.ok()) << l.status();
  for (int i = 0; i < 500; ++i) (*l)->FromHistory(i, Facts("eval-" + std::to_string(i), 60.0 * i), 30 + i % 7);
  (*l)->Submitted(1'000, Facts("eval-1000", 60'000));
  std::vector<RuntimeLearning::Estimate> made = (*l)->Apply();
  (*l)->AwaitTraining();  // the fit runs beside the scheduling loop
  EXPECT_EQ((*l)->GetStats().models_trained, 1);
  EXPECT_EQ((*l)->GetStats().finished, 500);
  ASSERT_EQ(made.size(), 1u);
  EXPECT_GT(made[0].runtime_s, 20);
  EXPECT_LT(made[0].runtime_s, 50);
}

}  // namespace
}  // namespace icos::controller
