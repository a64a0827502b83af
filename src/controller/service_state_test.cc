// A service's desired state and its rollout rule (issue #22).
#include "controller/service_state.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace icos::controller {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

ServiceState Rolling(int32_t replicas) {
  ServiceState s;
  s.id = 12;
  s.name = "serve";
  s.user = "alice";
  s.replicas = replicas;
  s.AddRevision({.spec_json = R"({"v":1})", .change = "submitted"}, 1'000);
  s.stable = 1;
  s.revisions[0].outcome = "complete";
  s.AddRevision({.spec_json = R"({"v":2})", .change = "updated"}, 2'000);
  return s;
}

LiveReplica Old(int64_t id, int32_t index, bool ready = true) {
  return {.job_id = id, .index = index, .current = false, .ready = ready, .made_ms = 0};
}
LiveReplica New(int64_t id, int32_t index, bool ready, int64_t made_ms = 2'000) {
  return {.job_id = id, .index = index, .current = true, .ready = ready, .made_ms = made_ms, .why = "503"};
}

constexpr api::RolloutSpec kSurgeOne{.max_surge = 1, .max_unavailable = 0, .ready_timeout_s = 60};
constexpr api::RolloutSpec kUnavailableOne{.max_surge = 0, .max_unavailable = 1, .ready_timeout_s = 60};

TEST(ServiceStateTest, SurgeOneMakesOneNewReplicaAndStopsAnOldOneOnlyWhenItIsReady) {
  const ServiceState s = Rolling(2);
  RolloutPlan p = PlanRollout(s, kSurgeOne, true, {Old(12, 0), Old(13, 1)}, 3'000);
  EXPECT_EQ(p.create, 1);
  EXPECT_THAT(p.stop, IsEmpty());
  p = PlanRollout(s, kSurgeOne, true, {Old(12, 0), Old(13, 1), New(20, 2, false)}, 3'000);
  EXPECT_EQ(p.create, 0);
  EXPECT_THAT(p.stop, IsEmpty());  // two must stay ready
  p = PlanRollout(s, kSurgeOne, true, {Old(12, 0), Old(13, 1), New(20, 2, true)}, 3'000);
  EXPECT_THAT(p.stop, ElementsAre(13));  // the highest index first
  EXPECT_FALSE(p.complete);
  p = PlanRollout(s, kSurgeOne, true, {Old(12, 0), New(20, 2, true)}, 3'000);
  EXPECT_EQ(p.create, 1);
  p = PlanRollout(s, kSurgeOne, true, {New(20, 2, true), New(21, 3, true)}, 3'000);
  EXPECT_EQ(p.create, 0);
  EXPECT_THAT(p.stop, IsEmpty());
  EXPECT_TRUE(p.complete);
}

TEST(ServiceStateTest, UnavailableOneStopsFirstAndNeverGoesBelowTheFloor) {
  const ServiceState s = Rolling(3);
  RolloutPlan p = PlanRollout(s, kUnavailableOne, true, {Old(12, 0), Old(13, 1), Old(14, 2)}, 3'000);
  EXPECT_EQ(p.create, 0);  // no surge: room first
  EXPECT_THAT(p.stop, ElementsAre(14));
  p = PlanRollout(s, kUnavailableOne, true, {Old(12, 0), Old(13, 1)}, 3'000);
  EXPECT_EQ(p.create, 1);
  EXPECT_THAT(p.stop, IsEmpty());  // 2 ready = 3 - 1
  // An old replica that is not ready goes at once: it serves nothing.
  p = PlanRollout(s, kUnavailableOne, true, {Old(12, 0), Old(13, 1, false), New(20, 3, false)}, 3'000);
  EXPECT_THAT(p.stop, ElementsAre(13));
}

TEST(ServiceStateTest, PercentBoundsAreResolvedAgainstTheReplicas) {
  const ServiceState s = Rolling(4);
  const api::RolloutSpec half{.max_surge = 50,
                              .max_unavailable = 25,
                              .max_surge_percent = true,
                              .max_unavailable_percent = true,
                              .ready_timeout_s = 60};
  RolloutPlan p = PlanRollout(s, half, true, {Old(12, 0), Old(13, 1), Old(14, 2), Old(15, 3)}, 3'000);
  EXPECT_EQ(p.create, 2);                // 50% of 4
  EXPECT_THAT(p.stop, ElementsAre(15));  // 25% of 4 may be unavailable
}

TEST(ServiceStateTest, AScaleMakesOrStopsReplicasOfTheSameRevisionNotReadyFirst) {
  ServiceState s = Rolling(3);
  s.rollout_started_ms = 0;
  RolloutPlan p = PlanRollout(s, kSurgeOne, false, {New(20, 0, true)}, 3'000);
  EXPECT_EQ(p.create, 2);  // replacing what was cancelled, or scaling up
  s.replicas = 1;
  p = PlanRollout(s, kSurgeOne, false, {New(20, 0, true), New(21, 1, false), New(22, 2, true)}, 3'000);
  EXPECT_THAT(p.stop, UnorderedElementsAre(21, 22));
  s.replicas = 0;
  p = PlanRollout(s, kSurgeOne, false, {New(20, 0, true)}, 3'000);
  EXPECT_THAT(p.stop, ElementsAre(20));
  EXPECT_EQ(p.create, 0);
}

TEST(ServiceStateTest, APausedServiceMakesStopsAndFailsNothingAndItsPauseIsNotHeldAgainstIt) {
  ServiceState s = Rolling(2);
  s.paused_ms = 2'500;
  const std::vector<LiveReplica> live = {Old(12, 0), Old(13, 1), New(20, 2, true, 2'000), New(21, 3, false, 2'000)};
  RolloutPlan p = PlanRollout(s, kSurgeOne, true, live, 600'000);  // long past the timeout
  EXPECT_EQ(p.create, 0);
  EXPECT_THAT(p.stop, IsEmpty());
  EXPECT_TRUE(p.failed.empty());
  EXPECT_EQ(RolloutStatus(s), "paused: rolling out revision 2");
  // Resumed at 600 s: replica 21's timeout counts from then.
  s.paused_ms = 0;
  s.resumed_ms = 600'000;
  p = PlanRollout(s, kSurgeOne, true, live, 630'000);
  EXPECT_TRUE(p.failed.empty());
  EXPECT_THAT(p.stop, ElementsAre(13));  // and the rollout goes on
  EXPECT_FALSE(PlanRollout(s, kSurgeOne, true, live, 660'001).failed.empty());
  ServiceState pauseless = *ServiceStateFromJson(s.id, ServiceStateToJson(s));
  EXPECT_EQ(pauseless.resumed_ms, 600'000);
}

TEST(ServiceStateTest, ARevisionFailsWhenANewReplicaIsNotReadyInTimeUnlessItCannotFail) {
  const ServiceState s = Rolling(2);
  const std::vector<LiveReplica> live = {Old(12, 0), Old(13, 1), New(20, 2, false, 2'000)};
  EXPECT_TRUE(PlanRollout(s, kSurgeOne, true, live, 62'000).failed.empty());  // exactly the timeout
  RolloutPlan p = PlanRollout(s, kSurgeOne, true, live, 62'001);
  EXPECT_THAT(p.failed, HasSubstr("replica 2 was not ready 60s after it was made (503)"));
  EXPECT_EQ(p.create, 0);
  EXPECT_THAT(p.stop, IsEmpty());
  // A rollback (or a first revision) keeps trying: there is nothing to fall back to.
  EXPECT_TRUE(PlanRollout(s, kSurgeOne, false, live, 62'001).failed.empty());
}

TEST(ServiceStateTest, AStoppedServiceStopsEveryReplica) {
  ServiceState s = Rolling(2);
  s.stopped = true;
  RolloutPlan p = PlanRollout(s, kSurgeOne, true, {Old(12, 0), New(20, 2, true)}, 3'000);
  EXPECT_THAT(p.stop, UnorderedElementsAre(12, 20));
  EXPECT_EQ(p.create, 0);
}

TEST(ServiceStateTest, StateSurvivesTheStoreAndBadStateIsDataLoss) {
  ServiceState s = Rolling(2);
  s.next_index = 4;
  absl::StatusOr<ServiceState> back = ServiceStateFromJson(12, ServiceStateToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ServiceStateToJson(*back), ServiceStateToJson(s));
  EXPECT_EQ(back->Find(1)->outcome, "complete");
  EXPECT_EQ(back->Find(2)->change, "updated");
  EXPECT_EQ(ServiceStateFromJson(12, "{").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(ServiceStateFromJson(12, R"({"revisions":[]})").status().code(), absl::StatusCode::kDataLoss);
}

TEST(ServiceStateTest, HistoryKeepsTheNewestRevisionsAndTheStableOne) {
  ServiceState s = Rolling(1);
  for (int i = 3; i <= 20; ++i) s.AddRevision({.spec_json = "{}"}, i * 1'000);
  EXPECT_EQ(s.revisions.size(), kKeptRevisions);
  EXPECT_NE(s.Find(1), nullptr);  // stable: the rollback target stays
  EXPECT_EQ(s.Find(2), nullptr);
  EXPECT_EQ(s.revision, 20);
  EXPECT_EQ(s.Find(19)->outcome, "superseded");
}

TEST(ServiceStateTest, TheTemplateIgnoresTheCountTheRolloutRuleAndTheAutoscaling) {
  absl::StatusOr<api::JobSpec> a =
      api::ParseJobSpec("kind: service\nservice: {replicas: 2}\ntasks: [{command: [serve]}]");
  ASSERT_TRUE(a.ok()) << a.status();
  api::JobSpec b = *a;
  b.service.replicas = 5;
  b.service.update.max_surge = 3;
  b.service.autoscale = {.min = 0, .max = 4, .target_rps = 10};
  EXPECT_EQ(ReplicaTemplate(*a), ReplicaTemplate(b));
  b.env["MODEL"] = "v2";
  EXPECT_NE(ReplicaTemplate(*a), ReplicaTemplate(b));
}

}  // namespace
}  // namespace icos::controller
