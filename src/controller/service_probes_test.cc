// Readiness probes of services' replicas (issue #22): the thresholds, real
// HTTP and TCP probes, and the prober's rounds.
#include "controller/service_probes.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <thread>
#include <tuple>

#include "controller/controller_test_util.h"

namespace icos::controller {
namespace {

using ::testing::HasSubstr;

api::ProbeSpec Http(const std::string& path) {
  return {.type = api::ProbeSpec::Type::kHttp, .http_path = path, .period_s = 2};
}

TEST(ObserveProbeTest, ReadyAfterSuccessThresholdPassesAndUnreadyAfterFailureThresholdFailures) {
  api::ProbeSpec p = Http("/h");
  p.success_threshold = 2;
  p.failure_threshold = 3;
  Readiness r;
  const absl::Status down = absl::UnavailableError("GET /h answered 503");
  ObserveProbe(p, absl::OkStatus(), 1'000, r);
  EXPECT_FALSE(r.ready);
  EXPECT_EQ(r.reason, "1 of 2 probes in a row passed");
  EXPECT_EQ(r.next_probe_ms, 3'000);  // a period later
  ObserveProbe(p, absl::OkStatus(), 3'000, r);
  EXPECT_TRUE(r.ready);
  EXPECT_EQ(r.since_ms, 3'000);
  ObserveProbe(p, down, 5'000, r);
  ObserveProbe(p, down, 7'000, r);
  EXPECT_TRUE(r.ready);  // two failures of three
  EXPECT_THAT(r.reason, HasSubstr("probe failed: GET /h answered 503"));
  ObserveProbe(p, absl::OkStatus(), 9'000, r);  // a pass resets the count
  ObserveProbe(p, down, 11'000, r);
  ObserveProbe(p, down, 13'000, r);
  EXPECT_TRUE(r.ready);
  ObserveProbe(p, down, 15'000, r);
  EXPECT_FALSE(r.ready);
  EXPECT_EQ(r.since_ms, 15'000);
  EXPECT_EQ(r.reason, "3 probes in a row failed, the last: GET /h answered 503");
}

// A real HTTP server on a free local port, or on `port`.
class Replica {
 public:
  explicit Replica(int port = 0) {
    server_.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) { res.status = status_; });
    port_ = port == 0 ? server_.bind_to_any_port("127.0.0.1") : port;
    if (port != 0 && !server_.bind_to_port("127.0.0.1", port)) ADD_FAILURE() << "cannot listen on " << port;
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~Replica() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  std::atomic<int> status_{200};

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

TEST(ProbeOnceTest, HttpPassesOn2xxAnd3xxAndSaysWhatItGotOtherwise) {
  std::optional<Replica> replica(std::in_place);
  const int port = replica->port();
  EXPECT_TRUE(ProbeOnce("127.0.0.1", port, Http("/healthz")).ok());
  replica->status_ = 302;
  EXPECT_TRUE(ProbeOnce("127.0.0.1", port, Http("/healthz")).ok());
  replica->status_ = 503;
  EXPECT_EQ(ProbeOnce("127.0.0.1", port, Http("/healthz")).message(), "GET /healthz answered 503");
  EXPECT_EQ(ProbeOnce("127.0.0.1", port, Http("/other")).message(), "GET /other answered 404");
  const api::ProbeSpec tcp{.type = api::ProbeSpec::Type::kTcp, .timeout_s = 1};
  EXPECT_TRUE(ProbeOnce("127.0.0.1", port, tcp).ok());
  replica.reset();  // its port is closed now
  EXPECT_THAT(ProbeOnce("127.0.0.1", port, tcp).message(), HasSubstr("Connection refused"));
  EXPECT_THAT(ProbeOnce("127.0.0.1", port, Http("/healthz")).message(), HasSubstr("GET /healthz on port"));
  EXPECT_THAT(ProbeOnce("no-such-host.invalid", 80, tcp).message(), HasSubstr("cannot resolve"));
}

TEST(ServiceProberTest, ARoundProbesWhatIsDueAndJudgesEachAttemptAfresh) {
  FakeClock clock;
  std::vector<ProbeTarget> targets;
  std::vector<std::string> probed;
  absl::Status answer = absl::OkStatus();
  ServiceProber prober(
      &clock, [&] { return targets; }, nullptr,
      [&](const std::string& host, int32_t port, const api::ProbeSpec&) {
        probed.push_back(absl::StrCat(host, ":", port));
        return answer;
      });
  api::ProbeSpec p = Http("/h");
  p.initial_delay_s = 5;
  targets = {{.job_id = 7, .attempt = 0, .host = "h1", .port = 30001, .probe = p, .started_ms = 1'000},
             {.job_id = 8, .attempt = 0, .host = "h2", .port = 30002, .started_ms = 1'000}};  // no probe
  clock.Set(2'000);
  prober.Round();
  EXPECT_TRUE(probed.empty());  // its initial delay runs to 6 s
  EXPECT_FALSE(prober.Of(7, 0)->ready);
  EXPECT_TRUE(prober.Of(8, 0)->ready);  // without a probe, running is ready
  clock.Set(6'000);
  prober.Round();
  EXPECT_EQ(probed, std::vector<std::string>{"h1:30001"});
  EXPECT_TRUE(prober.Of(7, 0)->ready);
  clock.Set(7'000);
  prober.Round();
  EXPECT_EQ(probed.size(), 1u);  // not due until 8 s
  targets[0].attempt = 1;        // restarted: not ready until its new run passes
  targets[0].started_ms = 7'000;
  prober.Round();
  EXPECT_EQ(prober.Of(7, 0), std::nullopt);
  EXPECT_FALSE(prober.Of(7, 1)->ready);
  targets.pop_back();  // stopped: forgotten
  prober.Round();
  EXPECT_EQ(prober.Of(8, 0), std::nullopt);
}

// Replicas whose probes hang must not hold up the others' for the sum of
// their timeouts: a round's probes wait side by side.
TEST(ServiceProberTest, ARoundProbesReplicasSideBySide) {
  FakeClock clock;
  std::vector<ProbeTarget> targets;
  for (int i = 0; i < 8; ++i) {
    targets.push_back({.job_id = i, .attempt = 0, .host = "h", .port = 30000 + i, .probe = Http("/h")});
  }
  std::atomic<int> in_flight{0}, most{0};
  ServiceProber prober(
      &clock, [&] { return targets; }, nullptr,
      [&](const std::string&, int32_t, const api::ProbeSpec&) {
        const int now = ++in_flight;
        for (int seen = most.load(); now > seen && !most.compare_exchange_weak(seen, now);) {
        }
        // Each waits (up to 10 s) until all eight are in flight at once.
        for (int i = 0; i < 1'000 && most.load() < 8; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        --in_flight;
        return absl::OkStatus();
      });
  prober.Round();
  EXPECT_EQ(most.load(), 8);
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(prober.Of(i, 0)->ready) << i;
}

TEST(ServiceProberTest, AReplicaWhoseLivenessProbeFailsIsRestartedOncePerAttempt) {
  FakeClock clock;
  std::vector<std::tuple<int64_t, int32_t, std::string>> dead;
  ServiceProber prober(
      &clock,
      [&] {
        api::ProbeSpec live{.type = api::ProbeSpec::Type::kTcp, .initial_delay_s = 10, .period_s = 1};
        live.failure_threshold = 2;
        return std::vector<ProbeTarget>{{.job_id = 7, .attempt = 3, .host = "h", .port = 1, .liveness = live}};
      },
      [&](int64_t job, int32_t attempt, const std::string& event, const std::string& why) {
        dead.emplace_back(job, attempt, absl::StrCat(event, ": ", why));
      },
      [](const std::string&, int32_t, const api::ProbeSpec&) {
        return absl::UnavailableError("connect to port 1: Connection refused");
      });
  clock.Set(5'000);
  prober.Round();  // within its initial delay: not probed
  EXPECT_TRUE(dead.empty());
  EXPECT_TRUE(prober.Of(7, 3)->ready);  // no readiness probe: ready while running
  clock.Set(10'000);
  prober.Round();  // one failure of two
  EXPECT_TRUE(dead.empty());
  clock.Set(11'000);
  prober.Round();
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(std::get<0>(dead[0]), 7);
  EXPECT_EQ(std::get<1>(dead[0]), 3);
  EXPECT_THAT(
      std::get<2>(dead[0]),
      HasSubstr("LivenessFailed: its liveness probe failed: 2 probes in a row failed, the last: connect to port 1"));
  clock.Set(20'000);
  prober.Round();  // told once: the restart is the controller's now
  EXPECT_EQ(dead.size(), 1u);
}

// Kubernetes' startupProbe: a model that loads for long is not killed by a
// quick liveness probe, and one that never starts is restarted.
TEST(ServiceProberTest, ReadinessAndLivenessWaitForTheStartupProbeWhichRestartsOneThatNeverStarts) {
  FakeClock clock;
  std::atomic<bool> loaded{false};
  std::vector<std::tuple<int64_t, int32_t, std::string>> dead;
  ServiceProber prober(
      &clock,
      [&] {
        const api::ProbeSpec tcp{.type = api::ProbeSpec::Type::kTcp, .period_s = 1, .failure_threshold = 1};
        api::ProbeSpec startup = tcp;
        startup.failure_threshold = 60;
        api::ProbeSpec never_starts = tcp;
        never_starts.failure_threshold = 3;
        return std::vector<ProbeTarget>{
            {.job_id = 7, .attempt = 0, .host = "h", .port = 1, .probe = tcp, .liveness = tcp, .startup = startup},
            {.job_id = 8, .attempt = 0, .host = "h", .port = 2, .startup = never_starts}};
      },
      [&](int64_t job, int32_t attempt, const std::string& event, const std::string& why) {
        dead.emplace_back(job, attempt, absl::StrCat(event, ": ", why));
      },
      [&](const std::string&, int32_t port, const api::ProbeSpec&) {
        return port == 1 && loaded ? absl::OkStatus() : absl::UnavailableError("connect to port: Connection refused");
      });
  for (int s = 1; s <= 5; ++s) {
    clock.Set(s * 1'000);
    prober.Round();
  }
  // Job 7 loads: its liveness probe (one failure kills) was not run.
  EXPECT_TRUE(std::none_of(dead.begin(), dead.end(), [](const auto& d) { return std::get<0>(d) == 7; }));
  EXPECT_FALSE(prober.Of(7, 0)->ready);
  EXPECT_THAT(prober.Of(7, 0)->reason, HasSubstr("waiting for its startup probe"));
  // Job 8 failed its startup probe 3 times: restarted, once.
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(std::get<0>(dead[0]), 8);
  EXPECT_THAT(std::get<2>(dead[0]), HasSubstr("StartupFailed: its startup probe failed 3 times in a row"));
  EXPECT_FALSE(prober.Of(8, 0)->ready);  // no readiness probe, but not started
  loaded = true;
  clock.Set(6'000);
  prober.Round();  // started
  EXPECT_FALSE(prober.Of(7, 0)->ready);
  clock.Set(7'000);
  prober.Round();  // then ready, and alive
  EXPECT_TRUE(prober.Of(7, 0)->ready);
  EXPECT_EQ(dead.size(), 1u);
}

// A replica whose port accepts and never answers holds its probe for the
// whole timeout (up to an hour, as a spec may ask). That must delay no other
// replica's readiness, nor the rounds (rollouts follow each one): the
// round goes on, the slow probe is not sent again while it is out, and its
// outcome is folded when it ends.
TEST(ServiceProberTest, AProbeThatHangsHoldsUpNoOtherReplicaAndNoRound) {
  FakeClock clock(1'000);
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> hung_calls{0};
  ServiceProber prober(
      &clock,
      [&] {
        const api::ProbeSpec tcp{.type = api::ProbeSpec::Type::kTcp, .period_s = 1, .timeout_s = 3'600};
        return std::vector<ProbeTarget>{{.job_id = 1, .attempt = 0, .host = "h", .port = 1, .probe = tcp},
                                        {.job_id = 2, .attempt = 0, .host = "h", .port = 2, .probe = tcp}};
      },
      nullptr,
      [&](const std::string&, int32_t port, const api::ProbeSpec&) {
        if (port == 2) return absl::OkStatus();
        ++hung_calls;
        std::unique_lock<std::mutex> lock(mu);
        // Held until released (a bound, so a broken test cannot hang forever).
        cv.wait_for(lock, std::chrono::seconds(60), [&] { return release; });
        return absl::OkStatus();
      });
  prober.Round();  // returns although replica 1's probe is still out
  EXPECT_TRUE(prober.Of(2, 0)->ready);
  EXPECT_FALSE(prober.Of(1, 0)->ready);
  clock.Set(5'000);
  prober.Round();
  EXPECT_EQ(hung_calls, 1);  // not sent again while out
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  for (int i = 0; i < 500 && !prober.Of(1, 0)->ready; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(prober.Of(1, 0)->ready);  // folded by its own thread when it ended
}

// Command probes run on the replica's node: the prober never runs them
// itself, folds what the replica's own agent reported, each outcome once,
// and takes nothing from another node's agent.
TEST(ServiceProberTest, CommandProbesAreJudgedFromTheirOwnAgentsReportsEachOnce) {
  FakeClock clock(1'000);
  int probed = 0;
  std::vector<std::string> dead;
  const api::ProbeSpec command{.type = api::ProbeSpec::Type::kCommand,
                               .command = {"test", "-f", "ready"},
                               .period_s = 1,
                               .failure_threshold = 2};
  ServiceProber prober(
      &clock,
      [&] {
        return std::vector<ProbeTarget>{
            {.job_id = 9, .attempt = 0, .node = "n1", .host = "h", .port = 1, .probe = command, .liveness = command}};
      },
      [&](int64_t, int32_t, const std::string& event, const std::string& why) { dead.push_back(event + ": " + why); },
      [&](const std::string&, int32_t, const api::ProbeSpec&) {
        ++probed;
        return absl::OkStatus();
      });
  auto outcome = [](const std::string& kind, int64_t seq, bool passed) {
    return wire::ProbeOutcome{kind, seq, passed, passed ? "" : "exited with status 1"};
  };
  prober.Round();
  EXPECT_FALSE(prober.Of(9, 0)->ready);
  EXPECT_EQ(prober.Of(9, 0)->reason, "not probed yet");
  // Another node's agent cannot make it ready, nor an outcome of another attempt.
  prober.ObserveCommandOutcomes("n2", "x", 9, 0, {outcome("readiness", 1, true)});
  prober.Round();
  EXPECT_FALSE(prober.Of(9, 0)->ready);
  prober.ObserveCommandOutcomes("n1", "a", 9, 1, {outcome("readiness", 1, true)});
  prober.Round();
  EXPECT_FALSE(prober.Of(9, 0)->ready);
  // Its own agent can.
  prober.ObserveCommandOutcomes("n1", "a", 9, 0, {outcome("readiness", 1, true)});
  prober.Round();
  EXPECT_TRUE(prober.Of(9, 0)->ready);
  // A report sent again (its answer was lost) counts once: one failure of two.
  prober.ObserveCommandOutcomes("n1", "a", 9, 0, {outcome("readiness", 1, false), outcome("readiness", 2, false)});
  prober.Round();
  EXPECT_TRUE(prober.Of(9, 0)->ready);
  // A restarted agent counts its runs afresh: a second failure in a row.
  prober.ObserveCommandOutcomes("n1", "b", 9, 0, {outcome("readiness", 1, false)});
  prober.Round();
  EXPECT_FALSE(prober.Of(9, 0)->ready);
  EXPECT_THAT(prober.Of(9, 0)->reason, HasSubstr("2 probes in a row failed, the last: exited with status 1"));
  // Two liveness failures in one report: restarted, once.
  prober.ObserveCommandOutcomes(
      "n1", "b", 9, 0, {outcome("liveness", 1, false), outcome("liveness", 2, false), outcome("liveness", 3, false)});
  prober.Round();
  EXPECT_THAT(dead, ::testing::ElementsAre(HasSubstr("LivenessFailed: its liveness probe failed")));
  EXPECT_EQ(probed, 0);
}

constexpr char kService[] = R"(kind: service
name: web
service:
  replicas: 2
  readiness: {http: /healthz, period: 1s}
tasks:
  - command: [python3, serve.py]
    resources: {cpu: 1, memory: 1Gi}
)";

// Reopens the controller booking task ports from a range of this test
// process's own: in the default range a test beside it (ctest -j), or a
// cluster on this machine, may serve replica 0 of its own fresh cluster.
void UsePortsOfItsOwn(ControllerOptions& options) {
  options.port_base = 45'000 + (::getpid() % 1'000) * 10;
  options.port_span = 10;
}

// Submitted, placed, probed and listed through the controller: each
// replica a job of its own with a port; only the one that answers is ready.
TEST_F(ControllerTest, AServicesReplicasRunAsJobsAndOnlyTheAnsweringOneIsReady) {
  UsePortsOfItsOwn(options_);
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  auto id = controller_->Submit(alice_, kService, "/home/alice");
  ASSERT_TRUE(id.ok()) << id.status();
  auto before = controller_->Endpoints(alice_, *id);
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->replicas, 2);
  ASSERT_EQ(before->list.size(), 2u);
  EXPECT_EQ(before->list[1].state, "Pending");
  EXPECT_EQ(before->list[1].address, "");
  EXPECT_EQ(controller_->Endpoints(alice_, before->list[1].job_id)->id, *id);  // any replica names it
  ASSERT_TRUE(controller_->RunPass().ok());
  std::vector<wire::Assignment> tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 2u);
  std::map<std::string, int> port_of;  // by ICOS_REPLICA
  for (const auto& t : tasks) port_of[t.env.at("ICOS_REPLICA")] = std::stoi(t.env.at("ICOS_PORT"));
  ASSERT_EQ(port_of.size(), 2u);
  EXPECT_NE(port_of["0"], port_of["1"]);
  Replica zero(port_of["0"]);  // replica 1 never listens
  // The agent reports every task it holds in each heartbeat.
  std::vector<wire::TaskStatus> running;
  for (const auto& t : tasks) running.push_back({.task_id = t.task_id, .state = "Running"});
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", running).ok());
  controller_->ProbeServices();
  auto after = controller_->Endpoints(alice_, *id);
  ASSERT_TRUE(after.ok()) << after.status();
  const ServiceEndpoints::Replica& r0 = after->list[0];
  const ServiceEndpoints::Replica& r1 = after->list[1];
  EXPECT_EQ(r0.index, 0);
  EXPECT_TRUE(r0.ready) << r0.reason;
  EXPECT_EQ(r0.address, absl::StrCat("127.0.0.1:", port_of["0"]));
  EXPECT_FALSE(r1.ready);
  EXPECT_THAT(r1.reason, HasSubstr("probe failed: GET /healthz on port"));
  // What the gateway is told: the ready ones, by name or id.
  EXPECT_EQ(controller_->Route("web")->ready, std::vector<std::string>{r0.address});
  EXPECT_EQ(controller_->Route("web")->id, *id);
  EXPECT_EQ(controller_->Route("web")->cold_start_ms, 0);  // it does not scale from zero
  EXPECT_EQ(controller_->Route(absl::StrCat(*id))->ready, std::vector<std::string>{r0.address});
  EXPECT_EQ(controller_->Route("nope").status().code(), absl::StatusCode::kNotFound);
  auto twin = controller_->Submit(bob_, kService, "/home/bob");  // another service of that name
  ASSERT_TRUE(twin.ok());
  EXPECT_THAT(controller_->Route("web").status().message(),
              HasSubstr(absl::StrCat("2 running services are named web (ids ", *id, ", ", *twin)));
  EXPECT_EQ(controller_->Route(absl::StrCat(*id))->ready, std::vector<std::string>{r0.address});
  // Replica 0 dies: it is not ready, and it restarts on its own.
  const auto dead =
      std::find_if(tasks.begin(), tasks.end(), [](const auto& t) { return t.env.at("ICOS_REPLICA") == "0"; });
  for (auto& t : running) {
    if (t.task_id == dead->task_id) {
      t.state = "Failed";
      t.exit_code = 137;
    }
  }
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", running).ok());
  auto gone = controller_->Endpoints(alice_, *id);
  EXPECT_FALSE(gone->list[0].ready);
  EXPECT_EQ(gone->list[0].state, "Pending");
  EXPECT_EQ(gone->list[0].attempt, 1);
  EXPECT_EQ(State(r1.job_id), "Running");  // the other replica is untouched
  // Who may see it: its owner and admins.
  EXPECT_EQ(controller_->Endpoints(bob_, *id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(controller_->Endpoints(admin_, *id).ok());
  auto mine = controller_->ListServices(alice_);
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->size(), 1u);
  EXPECT_EQ(mine->at(0).id, *id);
  EXPECT_EQ(mine->at(0).list.size(), 2u);
  EXPECT_EQ(mine->at(0).list[1].address, r1.address);  // replica 1 still runs, not ready
  EXPECT_EQ(controller_->ListServices(bob_)->at(0).id, *twin);
  EXPECT_EQ(controller_->ListServices(admin_)->size(), 2u);
}

TEST_F(ControllerTest, AReplicaThatFailsItsLivenessProbeIsStoppedAndRunsAgain) {
  UsePortsOfItsOwn(options_);  // nothing may listen on its booked port
  Open();
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  auto id = controller_->Submit(alice_, R"(kind: service
service: {liveness: {tcp: true, period: 1s, failure_threshold: 1}}
tasks: [{command: [x], resources: {cpu: 1, memory: 1Gi}}]
)",
                                "/");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  std::vector<wire::Assignment> tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 1u);
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {{.task_id = tasks[0].task_id, .state = "Running"}}).ok());
  controller_->ProbeServices();  // nothing listens on its port
  auto job = controller_->GetJob(alice_, *id);
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(job->job.state, store::JobState::kPending);
  EXPECT_EQ(job->job.attempt, 1);
  EXPECT_THAT(job->job.reason, HasSubstr("restarting: its liveness probe failed: 1 probes in a row failed"));
  // Its task is told to stop; the next attempt waits for that.
  EXPECT_FALSE(Watch("n1").at(0).run);
}

TEST_F(ControllerTest, EndpointsOfABatchJobOrArrayAreNotFound) {
  auto job = controller_->Submit(alice_, "tasks: [{command: [x]}]", "/");
  auto array = controller_->Submit(alice_, "array: 0-1\ntasks: [{command: [x]}]", "/");
  ASSERT_TRUE(job.ok() && array.ok());
  EXPECT_EQ(controller_->Endpoints(alice_, *job).status().message(), absl::StrCat("no service ", *job));
  EXPECT_EQ(controller_->Endpoints(alice_, *array).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(controller_->Endpoints(alice_, 999).status().code(), absl::StatusCode::kNotFound);
  SubmitOptions as_array{.base_dir = "/", .array = "0-1"};
  EXPECT_THAT(controller_->Submit(alice_, kService, as_array).status().message(), HasSubstr("service.replicas"));
}

}  // namespace
}  // namespace icos::controller
