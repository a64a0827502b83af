// Services' rolling updates, rollbacks and scale through the controller
// (issue #22): a fake agent runs the tasks, and a replica is ready when
// something listens on its port (a TCP readiness probe, for real).
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "controller/controller_test_util.h"

namespace icos::controller {
namespace {

using ::testing::HasSubstr;

// A socket listening on 127.0.0.1:port while it lives: a TCP probe passes.
class Listening {
 public:
  explicit Listening(int port) : fd_(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    // Never accepts: a backlog this deep keeps every probe's connect
    // answered (a full one leaves connects waiting for their timeout).
    ok_ = ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 && ::listen(fd_, 4'096) == 0;
  }
  ~Listening() { ::close(fd_); }
  Listening(const Listening&) = delete;
  Listening& operator=(const Listening&) = delete;
  bool ok() const { return ok_; }

 private:
  int fd_;
  bool ok_ = false;
};

std::string ServiceSpec(const std::string& version, int replicas, const std::string& update = "") {
  return absl::StrCat("kind: service\nname: web\nservice:\n  replicas: ", replicas,
                      "\n  readiness: {tcp: true, period: 1s}\n", update.empty() ? "" : "  update: " + update + "\n",
                      "tasks:\n  - command: [serve]\n    env: {VERSION: '", version,
                      "'}\n    resources: {cpu: 1, memory: 1Gi}\n");
}

class ServiceRolloutTest : public ControllerTest {
 protected:
  void SetUp() override {
    // Ports of its own for each test and each run: a port whose listener
    // closed stays taken for a minute (TIME_WAIT).
    static int tests = 0;
    options_.port_base = 20'000 + (::getpid() % 200) * 100 + (tests++ % 5) * 20;
    options_.port_span = 20;
    ControllerTest::SetUp();
    ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  }

  // One round of the cluster: a pass, the agent runs what it is told (and
  // stops what it is told to stop), the replicas whose version `healthy`
  // says listen, the probes, and the rollout.
  void Round(const std::function<bool(const std::string& version)>& healthy = [](const std::string&) { return true; }) {
    ASSERT_TRUE(controller_->RunPass().ok());
    std::vector<wire::TaskStatus> report;
    for (const wire::Assignment& t : Watch("n1")) {
      if (!t.run) {
        report.push_back({.task_id = t.task_id, .state = "Killed", .exit_code = 143});
        listening_.erase(t.task_id);
        continue;
      }
      report.push_back({.task_id = t.task_id, .state = "Running"});
      if (healthy(t.env.at("VERSION")) && !listening_.count(t.task_id)) {
        auto l = std::make_unique<Listening>(t.serve_port);
        ASSERT_TRUE(l->ok()) << "port " << t.serve_port;
        listening_[t.task_id] = std::move(l);
      }
    }
    ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", report).ok());
    controller_->ProbeServices();
    controller_->ReconcileServices();
  }

  // Versions of the replicas that are ready now, sorted.
  std::vector<std::string> ReadyVersions(int64_t id) {
    auto e = controller_->Endpoints(admin_, id);
    EXPECT_TRUE(e.ok()) << e.status();
    std::vector<std::string> out;
    for (const auto& r : e->list) {
      if (!r.ready) continue;
      auto v = controller_->GetJob(admin_, r.job_id);
      out.push_back(nlohmann::json::parse(v->job.spec_json)["tasks"][0]["env"]["VERSION"].get<std::string>());
    }
    std::sort(out.begin(), out.end());
    return out;
  }

  ServiceState Service(int64_t id) {
    auto s = controller_->GetService(admin_, id);
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : ServiceState();
  }

  std::map<std::string, std::unique_ptr<Listening>> listening_;  // by task id
};

TEST_F(ServiceRolloutTest, ARollingUpdateKeepsEveryReplicaReadyAndEndsOnTheNewRevision) {
  auto id = controller_->Submit(alice_, ServiceSpec("1", 2), "/");
  ASSERT_TRUE(id.ok()) << id.status();
  Round();
  Round();
  ServiceState s = Service(*id);
  EXPECT_EQ(s.stable, 1);
  EXPECT_EQ(s.rollout_started_ms, 0);
  EXPECT_EQ(s.Find(1)->outcome, "complete");

  auto revision = controller_->UpdateService(alice_, *id, ServiceSpec("2", 2), "/");
  ASSERT_TRUE(revision.ok()) << revision.status();
  EXPECT_EQ(*revision, 2);
  // max_surge 1, max_unavailable 0: never fewer than 2 ready, never more than 3 replicas.
  for (int i = 0; i < 12 && Service(*id).rollout_started_ms != 0; ++i) {
    Round();
    auto e = controller_->Endpoints(admin_, *id);
    int live = 0, ready = 0;
    for (const auto& r : e->list) {
      live += r.state == "Pending" || r.state == "Running";
      ready += r.ready;
    }
    EXPECT_LE(live, 3) << "round " << i;
    EXPECT_GE(ready, 2) << "round " << i;
  }
  s = Service(*id);
  EXPECT_EQ(s.rollout_started_ms, 0) << RolloutStatus(s);
  EXPECT_EQ(s.stable, 2);
  EXPECT_EQ(s.Find(1)->outcome, "complete");  // how its own rollout ended
  EXPECT_EQ(s.Find(2)->outcome, "complete");
  EXPECT_EQ(ReadyVersions(*id), (std::vector<std::string>{"2", "2"}));
  auto e = controller_->Endpoints(alice_, *id);
  EXPECT_EQ(e->rollout, "complete");
  // The replaced replicas were cancelled, saying why; the new ones have new indices.
  auto first = controller_->GetJob(alice_, *id);
  EXPECT_EQ(first->job.state, store::JobState::kCancelled);
  EXPECT_THAT(first->job.reason, HasSubstr(absl::StrCat("replaced by revision 2 of service ", *id)));
  for (const auto& r : e->list) {
    if (r.state == "Running") {
      EXPECT_GE(r.index, 2);
    }
  }
}

// kubectl rollout pause / resume: a paused rollout holds where it is (the
// old and new replicas both serve), and goes on once resumed.
TEST_F(ServiceRolloutTest, APausedRolloutHoldsWhereItIsUntilResumed) {
  auto id = controller_->Submit(alice_, ServiceSpec("1", 2), "/");
  ASSERT_TRUE(id.ok()) << id.status();
  Round();
  Round();
  ASSERT_TRUE(controller_->UpdateService(alice_, *id, ServiceSpec("2", 2), "/").ok());
  Round();
  Round();  // one v2 replica made and ready, one v1 stopped or about to be
  EXPECT_EQ(controller_->PauseService(bob_, *id, true).code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(controller_->PauseService(alice_, *id, true).ok());
  ASSERT_TRUE(controller_->PauseService(alice_, *id, true).ok());  // again: nothing changes
  const std::vector<std::string> held = ReadyVersions(*id);
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(60'000);  // far past ready_timeout: nothing fails while paused
    Round();
  }
  EXPECT_EQ(ReadyVersions(*id), held);
  EXPECT_THAT(RolloutStatus(Service(*id)), HasSubstr("paused: rolling out revision 2"));
  ASSERT_TRUE(controller_->PauseService(alice_, *id, false).ok());
  for (int i = 0; i < 10 && Service(*id).rollout_started_ms != 0; ++i) Round();
  EXPECT_EQ(ReadyVersions(*id), (std::vector<std::string>{"2", "2"}));
  EXPECT_EQ(Service(*id).Find(2)->outcome, "complete");
  auto events = controller_->GetJob(alice_, *id);
  EXPECT_TRUE(std::any_of(events->events.begin(), events->events.end(), [](const auto& e) {
    return e.kind == "Paused" && absl::StrContains(e.message, "until icos service resume");
  }));
  EXPECT_TRUE(
      std::any_of(events->events.begin(), events->events.end(), [](const auto& e) { return e.kind == "Resumed"; }));
}

TEST_F(ServiceRolloutTest, ARevisionWhoseReplicasNeverGetReadyRollsBackByItself) {
  auto id = controller_->Submit(alice_, ServiceSpec("1", 2, "{max_surge: 1, ready_timeout: 30s}"), "/");
  ASSERT_TRUE(id.ok()) << id.status();
  const auto only_v1 = [](const std::string& v) { return v == "1"; };
  Round(only_v1);
  Round(only_v1);
  ASSERT_EQ(Service(*id).stable, 1);
  ASSERT_TRUE(
      controller_->UpdateService(alice_, *id, ServiceSpec("2", 2, "{max_surge: 1, ready_timeout: 30s}"), "/").ok());
  for (int i = 0; i < 5; ++i) Round(only_v1);
  EXPECT_EQ(ReadyVersions(*id), (std::vector<std::string>{"1", "1"}));  // the old ones keep serving
  EXPECT_EQ(Service(*id).revision, 2);
  clock_.Advance(31'000);
  Round(only_v1);
  ServiceState s = Service(*id);
  EXPECT_EQ(s.revision, 3);
  EXPECT_THAT(s.Find(2)->outcome, HasSubstr("failed: replica 2 was not ready 30s after it was made"));
  EXPECT_THAT(s.Find(3)->change, HasSubstr("automatic rollback to revision 1"));
  for (int i = 0; i < 4; ++i) Round(only_v1);
  s = Service(*id);
  EXPECT_EQ(s.rollout_started_ms, 0);
  EXPECT_EQ(s.stable, 3);
  EXPECT_EQ(ReadyVersions(*id), (std::vector<std::string>{"1", "1"}));
  // The old replicas were never replaced: revision 3 has revision 1's template.
  EXPECT_EQ(State(*id), "Running");
  auto events = controller_->GetJob(alice_, *id);
  EXPECT_TRUE(std::any_of(events->events.begin(), events->events.end(),
                          [](const auto& e) { return e.kind == "RolloutFailed"; }));
}

TEST_F(ServiceRolloutTest, ScaleUpDownAndToZeroAndARollbackByHand) {
  auto id = controller_->Submit(alice_, ServiceSpec("1", 1), "/");
  ASSERT_TRUE(id.ok()) << id.status();
  Round();
  ASSERT_TRUE(controller_->ScaleService(alice_, *id, 3).ok());
  Round();
  Round();
  EXPECT_EQ(ReadyVersions(*id).size(), 3u);
  EXPECT_EQ(Service(*id).revision, 1);  // a scale is no revision
  ASSERT_TRUE(controller_->ScaleService(alice_, *id, 0).ok());
  Round();
  EXPECT_TRUE(ReadyVersions(*id).empty());
  EXPECT_EQ(controller_->ListServices(alice_)->at(0).replicas, 0);  // kept, with none
  ASSERT_TRUE(controller_->ScaleService(alice_, *id, 1).ok());
  Round();
  Round();
  EXPECT_EQ(ReadyVersions(*id), std::vector<std::string>{"1"});
  // Only the count in a new spec: the same revision, scaled.
  ASSERT_EQ(*controller_->UpdateService(alice_, *id, ServiceSpec("1", 2), "/"), 1);
  ASSERT_EQ(*controller_->UpdateService(alice_, *id, ServiceSpec("2", 2), "/"), 2);
  for (int i = 0; i < 8; ++i) Round();
  EXPECT_EQ(ReadyVersions(*id), (std::vector<std::string>{"2", "2"}));
  auto back = controller_->RollbackService(alice_, *id, 0);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, 3);
  for (int i = 0; i < 8; ++i) Round();
  EXPECT_EQ(ReadyVersions(*id), (std::vector<std::string>{"1", "1"}));
  EXPECT_EQ(Service(*id).Find(3)->change, "rolled back to revision 1");
  // Bad input: not found for others, ranges, a renamed or batch spec, a missing revision.
  EXPECT_EQ(controller_->ScaleService(bob_, *id, 1).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(controller_->ScaleService(alice_, *id, -1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(controller_->UpdateService(alice_, *id, "kind: service\nname: other\ntasks: [{command: [x]}]", "/")
                  .status()
                  .message(),
              HasSubstr("is named web"));
  EXPECT_THAT(controller_->UpdateService(alice_, *id, "name: web\ntasks: [{command: [x]}]", "/").status().message(),
              HasSubstr("kind: service"));
  EXPECT_EQ(controller_->RollbackService(alice_, *id, 99).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ServiceRolloutTest, CancellingTheServiceStopsEveryReplicaForGoodAndACrashMidRolloutLosesNothing) {
  auto id = controller_->Submit(alice_, ServiceSpec("1", 2), "/");
  ASSERT_TRUE(id.ok()) << id.status();
  Round();
  Round();
  ASSERT_TRUE(controller_->UpdateService(alice_, *id, ServiceSpec("2", 2), "/").ok());
  Round();  // one new replica made
  // A controller restart mid-rollout: the state and the replicas are read
  // back (the replicas kept running meanwhile).
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  EXPECT_EQ(Service(*id).revision, 2);
  EXPECT_NE(Service(*id).rollout_started_ms, 0);
  for (int i = 0; i < 10; ++i) Round();
  EXPECT_EQ(ReadyVersions(*id), (std::vector<std::string>{"2", "2"}));
  EXPECT_EQ(Service(*id).stable, 2);
  // A single replica cancelled is replaced...
  auto e = controller_->Endpoints(alice_, *id);
  int64_t one = 0;
  for (const auto& r : e->list) {
    if (r.state == "Running") one = r.job_id;
  }
  ASSERT_TRUE(controller_->Cancel(alice_, one).ok());
  Round();
  Round();
  EXPECT_EQ(ReadyVersions(*id).size(), 2u);
  // ...the service's id stops it all, and nothing comes back.
  ASSERT_TRUE(controller_->Cancel(alice_, *id).ok());
  for (int i = 0; i < 3; ++i) Round();
  EXPECT_TRUE(ReadyVersions(*id).empty());
  EXPECT_TRUE(controller_->ListServices(alice_)->empty());
  EXPECT_EQ(controller_->ScaleService(alice_, *id, 2).code(), absl::StatusCode::kFailedPrecondition);
}

// The load comes as the gateway would count it; each round is a second.
TEST_F(ServiceRolloutTest, AutoscalingFollowsTheLoadUpAndDownAndWakesAServiceAtZero) {
  ServiceLoad load;
  std::mutex load_mu;
  Open();  // the load source is set before Start, as `icos up` does
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  controller_->SetServiceLoadSource([&](int64_t) {
    std::lock_guard<std::mutex> lock(load_mu);
    return load;
  });
  auto id = controller_->Submit(
      alice_,
      absl::StrCat("kind: service\nname: web\nservice:\n  replicas: 1\n  readiness: {tcp: true, period: 1s}\n",
                   "  autoscale: {min: 0, max: 3, target_rps: 10, window: 3s, scale_down_delay: 10s}\n",
                   "tasks:\n  - command: [serve]\n    env: {VERSION: '1'}\n    resources: {cpu: 1, memory: 1Gi}\n"),
      "/");
  ASSERT_TRUE(id.ok()) << id.status();
  auto second = [&](uint64_t requests, int32_t in_flight = 0) {
    {
      std::lock_guard<std::mutex> lock(load_mu);
      load.requests += requests;
      load.in_flight = in_flight;
    }
    clock_.Advance(1'000);
    Round();
  };
  second(0);
  second(0);
  EXPECT_EQ(controller_->Route("web")->cold_start_ms, 60'000);  // min 0: requests wait for a cold start
  for (int i = 0; i < 6; ++i) second(30);                       // 30 req/s: 3 replicas
  EXPECT_EQ(Service(*id).replicas, 3);
  second(30);
  EXPECT_EQ(ReadyVersions(*id).size(), 3u);
  auto events = controller_->GetJob(alice_, *id);
  EXPECT_TRUE(std::any_of(events->events.begin(), events->events.end(), [](const auto& e) {
    return e.kind == "Autoscaled" && absl::StrContains(e.message, "req/s, target 10 per replica over 3s");
  }));
  EXPECT_EQ(controller_->ScaleService(alice_, *id, 2).code(), absl::StatusCode::kFailedPrecondition);
  // Idle: after the delay, down to min, 0.
  for (int i = 0; i < 14; ++i) second(0);
  EXPECT_EQ(Service(*id).replicas, 0);
  second(0);
  EXPECT_TRUE(ReadyVersions(*id).empty());
  // A request waits at the gateway: one replica comes.
  second(0, /*in_flight=*/1);
  second(0, /*in_flight=*/1);
  second(0, /*in_flight=*/1);
  EXPECT_EQ(Service(*id).replicas, 1);
  EXPECT_EQ(controller_->Route("web")->ready.size(), 1u);
  // New bounds by an update: the same revision (no replica replaced), the
  // count kept within them.
  auto same = controller_->UpdateService(
      alice_, *id,
      absl::StrCat("kind: service\nname: web\nservice:\n  replicas: 3\n  readiness: {tcp: true, period: 1s}\n",
                   "  autoscale: {min: 2, max: 3, target_rps: 10}\n",
                   "tasks:\n  - command: [serve]\n    env: {VERSION: '1'}\n    resources: {cpu: 1, memory: 1Gi}\n"),
      "/");
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(*same, 1);
  EXPECT_EQ(Service(*id).replicas, 2);
}

// `icos gateway` processes report what they forwarded (ReportGatewayLoad):
// their sum drives the autoscaler as the in-process gateway's counts do;
// while none reports, nothing measures the load and the count stays.
TEST_F(ServiceRolloutTest, StandaloneGatewaysReportsDriveAutoscalingAndOnlyGatewayTokensMayRouteOrReport) {
  const Principal gateway{"gw", Role::kGateway, ""};
  auto id = controller_->Submit(
      alice_,
      absl::StrCat("kind: service\nname: web\nservice:\n  replicas: 1\n  readiness: {tcp: true, period: 1s}\n",
                   "  autoscale: {min: 0, max: 3, target_rps: 10, window: 3s, scale_down_delay: 5s}\n",
                   "tasks:\n  - command: [serve]\n    env: {VERSION: '1'}\n    resources: {cpu: 1, memory: 1Gi}\n"),
      "/");
  ASSERT_TRUE(id.ok()) << id.status();
  // No gateway: an idle-looking service is not scaled to zero.
  for (int i = 0; i < 8; ++i) {
    clock_.Advance(1'000);
    Round();
  }
  EXPECT_EQ(Service(*id).replicas, 1);
  // Who may route and report: a gateway token (and admins), not a user.
  EXPECT_EQ(controller_->Route(alice_, "web").status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(controller_->ReportGatewayLoad(alice_, "a", {}).code(), absl::StatusCode::kPermissionDenied);
  auto route = controller_->Route(gateway, "web");
  ASSERT_TRUE(route.ok()) << route.status();
  EXPECT_EQ(route->id, *id);
  EXPECT_EQ(route->ready.size(), 1u);
  EXPECT_EQ(controller_->Route(gateway, "nosuch").status().code(), absl::StatusCode::kNotFound);
  // Two gateways, 15 req/s each: 30 req/s in all, 3 replicas. A report
  // naming no service is ignored.
  ServiceLoad a, b;
  for (int i = 0; i < 6; ++i) {
    a.requests += 15;
    b.requests += 15;
    clock_.Advance(1'000);
    ASSERT_TRUE(controller_->ReportGatewayLoad(gateway, "a", {{*id, a}, {999'999, a}}).ok());
    ASSERT_TRUE(controller_->ReportGatewayLoad(gateway, "b", {{*id, b}}).ok());
    Round();
  }
  EXPECT_EQ(Service(*id).replicas, 3);
  auto events = controller_->GetJob(alice_, *id);
  EXPECT_TRUE(std::any_of(events->events.begin(), events->events.end(), [](const auto& e) {
    return e.kind == "Autoscaled" && absl::StrContains(e.message, "-> 3 replicas");
  })) << "no scale to 3 told";
  // Both gateways go silent: their last counts say nothing about now, so
  // the count stays rather than fall to zero.
  for (int i = 0; i < 20; ++i) {
    clock_.Advance(1'000);
    Round();
  }
  EXPECT_EQ(Service(*id).replicas, 3);
}

// Replicas whose service has no stored state (made by an icos before
// services had one, or the state's write failed after the submission): the
// service is adopted from them, and then kept as any.
TEST_F(ServiceRolloutTest, AServiceWithoutAStoredStateIsAdoptedFromItsReplicas) {
  absl::StatusOr<api::JobSpec> spec = api::ParseJobSpec(ServiceSpec("1", 2));
  ASSERT_TRUE(spec.ok()) << spec.status();
  store::JobRecord r;
  r.name = "web";
  r.user = "alice";
  r.queue = "default";
  r.spec_json = api::JobSpecToJson(*spec);
  r.submit_ms = clock_.NowMs();
  std::vector<store::JobRecord> recs(2, r);
  recs[0].array_index = 0;
  recs[0].starts_array = true;
  recs[1].array_index = 1;
  recs[1].array_id = store::kNewArray;
  ASSERT_TRUE(store_->InsertJobs(&recs).ok());
  const int64_t id = recs[0].id;
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  Round();
  Round();
  ServiceState s = Service(id);
  EXPECT_EQ(s.Find(1)->change, "adopted");
  EXPECT_EQ(s.replicas, 2);
  EXPECT_EQ(s.next_index, 2);
  EXPECT_EQ(s.stable, 1);
  EXPECT_EQ(ReadyVersions(id), (std::vector<std::string>{"1", "1"}));
  auto stored = store_->ListServices();
  ASSERT_TRUE(stored.ok());
  ASSERT_EQ(stored->size(), 1u);
  EXPECT_EQ(stored->at(0).id, id);
}

// Serving and training share devices through the scheduler's priorities:
// a service replica of higher priority preempts a preemptible batch job on
// the only GPU (its task is stopped first), and scaling the service down
// gives the GPU back to the batch job.
TEST_F(ControllerTest, AServiceScalingUpPreemptsBatchWorkAndScalingDownGivesTheDeviceBack) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("gpu", 1), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  auto batch = controller_->Submit(alice_, "tasks: [{command: [train], resources: {devices: 1}}]", "/");
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto tasks = Watch("gpu");
  ASSERT_EQ(tasks.size(), 1u);
  const std::string training = tasks[0].task_id;
  Report("gpu", training, "Running");
  auto svc = controller_->Submit(admin_, R"(kind: service
name: infer
priority: 10
service: {replicas: 1}
tasks: [{command: [serve], resources: {devices: 1}}]
)",
                                 "/");
  ASSERT_TRUE(svc.ok()) << svc.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*batch), "Pending");
  EXPECT_THAT(controller_->GetJob(alice_, *batch)->job.reason, HasSubstr("preempted"));
  EXPECT_EQ(State(*svc), "Running");
  tasks = Watch("gpu");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].task_id, training);
  EXPECT_FALSE(tasks[0].run);  // the training stops first
  Report("gpu", training, "Killed", 143);
  tasks = Watch("gpu");
  ASSERT_EQ(tasks.size(), 1u);
  EXPECT_EQ(tasks[0].env.at("ICOS_SERVICE_ID"), absl::StrCat(*svc));
  const std::string serving = tasks[0].task_id;
  Report("gpu", serving, "Running");
  // Scaled to zero: the replica stops, and the batch job has the GPU again.
  ASSERT_TRUE(controller_->ScaleService(admin_, *svc, 0).ok());
  controller_->ReconcileServices();
  EXPECT_EQ(State(*svc), "Cancelled");
  Report("gpu", serving, "Killed", 143);
  ASSERT_TRUE(controller_->RunPass().ok());
  EXPECT_EQ(State(*batch), "Running");
}

}  // namespace
}  // namespace icos::controller
