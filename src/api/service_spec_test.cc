// The job spec's services (issue #22): `kind: service`, its `service:` block,
// and the fields a service and a batch job may not share.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "api/job_spec.h"

namespace icos::api {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kService[] = R"(kind: service
name: mnist
service:
  replicas: 3
  readiness: {http: /healthz, initial_delay: 5s, period: 2s, timeout: 1s, failure_threshold: 4}
  liveness: {tcp: true, initial_delay: 30s}
  startup: {http: /healthz, period: 5s, failure_threshold: 60}
  update: {max_surge: 2, ready_timeout: 90s}
  autoscale: {min: 1, max: 6, target_rps: 40, window: 20s}
tasks:
  - command: [python3, serve.py]
    resources: {cpu: 1, memory: 1Gi, device_share: 50%}
)";

std::string Message(const std::string& text) { return std::string(ParseJobSpec(text).status().message()); }

TEST(ServiceSpecTest, AServiceReadsItsReplicasAndProbeAndRestartsAlways) {
  absl::StatusOr<JobSpec> spec = ParseJobSpec(kService);
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_EQ(spec->kind, JobKind::kService);
  EXPECT_EQ(spec->restart, RestartPolicy::kAlways);
  EXPECT_EQ(spec->service.replicas, 3);
  const ProbeSpec& p = spec->service.readiness;
  EXPECT_EQ(p.type, ProbeSpec::Type::kHttp);
  EXPECT_EQ(p.http_path, "/healthz");
  EXPECT_EQ(p.initial_delay_s, 5);
  EXPECT_EQ(p.period_s, 2);
  EXPECT_EQ(p.timeout_s, 1);
  EXPECT_EQ(p.success_threshold, 1);
  EXPECT_EQ(p.failure_threshold, 4);
  EXPECT_EQ(spec->service.liveness.type, ProbeSpec::Type::kTcp);
  EXPECT_EQ(spec->service.liveness.initial_delay_s, 30);
  EXPECT_EQ(spec->service.liveness.failure_threshold, 3);  // the default
  EXPECT_EQ(spec->service.startup.type, ProbeSpec::Type::kHttp);
  EXPECT_EQ(spec->service.startup.failure_threshold, 60);
  EXPECT_EQ(spec->service.update, (RolloutSpec{.max_surge = 2, .max_unavailable = 0, .ready_timeout_s = 90}));
  EXPECT_EQ(spec->service.autoscale,
            (AutoscaleSpec{.min = 1, .max = 6, .target_rps = 40, .window_s = 20, .scale_down_delay_s = 60}));
}

TEST(ServiceSpecTest, AServiceSurvivesTheStoreAndABatchJobsJsonIsUnchanged) {
  absl::StatusOr<JobSpec> spec = ParseJobSpec(kService);
  ASSERT_TRUE(spec.ok()) << spec.status();
  absl::StatusOr<JobSpec> again = ParseJobSpec(JobSpecToJson(*spec));
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << JobSpecToJson(*spec);
  EXPECT_EQ(*again, *spec);
  absl::StatusOr<JobSpec> tcp =
      ParseJobSpec("kind: service\nservice: {readiness: {tcp: true}}\ntasks: [{command: [x]}]");
  ASSERT_TRUE(tcp.ok()) << tcp.status();
  EXPECT_EQ(tcp->service.replicas, 1);
  EXPECT_EQ(*ParseJobSpec(JobSpecToJson(*tcp)), *tcp);
  // A command probe: the program and its arguments, kept through the store's JSON.
  absl::StatusOr<JobSpec> command = ParseJobSpec(
      "kind: service\nservice: {readiness: {command: [test, -f, \"my ready\"], period: 2s}, "
      "liveness: {command: [/bin/true]}}\ntasks: [{command: [x]}]");
  ASSERT_TRUE(command.ok()) << command.status();
  EXPECT_EQ(command->service.readiness.type, ProbeSpec::Type::kCommand);
  EXPECT_THAT(command->service.readiness.command, ElementsAre("test", "-f", "my ready"));
  EXPECT_EQ(command->service.liveness.type, ProbeSpec::Type::kCommand);
  EXPECT_EQ(*ParseJobSpec(JobSpecToJson(*command)), *command);
  const std::string batch = JobSpecToJson(*ParseJobSpec("tasks: [{command: [x]}]"));
  EXPECT_EQ(batch.find("kind"), std::string::npos) << batch;
  EXPECT_EQ(batch.find("service"), std::string::npos) << batch;
}

TEST(ServiceSpecTest, ABatchJobsEndingFieldsAreRefusedInAServiceWithWhy) {
  const std::string head = "kind: service\ntasks: [{command: [x]}]\n";
  EXPECT_THAT(Message(head + "array: 0-3"), HasSubstr("array (line 3): is for batch jobs"));
  EXPECT_THAT(Message(head + "time_limit: 1h"), HasSubstr("time_limit (line 3): is for batch jobs"));
  EXPECT_THAT(Message(head + "runtime_estimate: 1h"), HasSubstr("runtime_estimate"));
  EXPECT_THAT(Message(head + "checkpoint: {}"), HasSubstr("checkpoint (line 3): is for batch jobs"));
  EXPECT_THAT(Message(head + "dependencies: {after_ok: [1]}"), HasSubstr("dependencies (line 3): is for batch"));
  EXPECT_THAT(Message(head + "restart: {policy: OnFailure}"), HasSubstr("restart Always"));
  EXPECT_TRUE(ParseJobSpec(head + "restart: {policy: Always}").ok());
  EXPECT_THAT(Message("kind: service\ntasks: [{command: [x], replicas: 2}]"), HasSubstr("service.replicas"));
  EXPECT_THAT(Message("kind: service\ntasks: [{command: [x]}, {command: [y]}]"), HasSubstr("one task group"));
}

TEST(ServiceSpecTest, AServiceOnlyFieldIsRefusedInABatchJob) {
  EXPECT_THAT(Message("service: {replicas: 2}\ntasks: [{command: [x]}]"),
              HasSubstr("service (line 1): only for kind: service"));
  EXPECT_THAT(Message("restart: {policy: Always}\ntasks: [{command: [x]}]"), HasSubstr("would never end"));
  EXPECT_THAT(Message("kind: daemon\ntasks: [{command: [x]}]"), HasSubstr("is not a kind of job; use one of batch"));
}

TEST(ServiceSpecTest, BadProbesSayWhatIsWrong) {
  auto probe = [](const std::string& p) {
    return Message("kind: service\nservice: {readiness: " + p + "}\ntasks: [{command: [x]}]");
  };
  EXPECT_THAT(probe("{period: 2s}"), HasSubstr("say what to probe"));
  EXPECT_THAT(probe("{http: healthz}"), HasSubstr("must be a URL path"));
  EXPECT_THAT(probe("{http: '/a b'}"), HasSubstr("must be a URL path"));
  EXPECT_THAT(probe("{http: \"/a\\r\\nX: y\"}"), HasSubstr("must be a URL path"));
  EXPECT_THAT(probe("{http: /h, tcp: true}"), HasSubstr("not two"));
  EXPECT_THAT(probe("{command: [x], tcp: true}"), HasSubstr("not two"));
  EXPECT_THAT(probe("{command: 'test -f ready'}"), HasSubstr("write it as a list"));
  EXPECT_THAT(probe("{command: []}"), HasSubstr("must not be empty"));
  EXPECT_THAT(probe("{http: /h, period: 0s}"), HasSubstr("between 1s and 3600s"));
  EXPECT_THAT(probe("{http: /h, period: 2s, timeout: 5s}"), HasSubstr("longer than the period"));
  EXPECT_THAT(probe("{http: /h, failure_threshold: 0}"), HasSubstr("out of range"));
  EXPECT_THAT(probe("{http: /h, liveness: x}"), HasSubstr("unknown field"));
  EXPECT_THAT(Message("kind: service\nservice: {replicas: 0}\ntasks: [{command: [x]}]"), HasSubstr("out of range"));
}

TEST(ServiceSpecTest, AutoscalingNeedsOneTargetAndACountBetweenItsBounds) {
  auto autoscale = [](const std::string& a, int replicas = 1) {
    return Message("kind: service\nservice: {replicas: " + std::to_string(replicas) + ", autoscale: " + a +
                   "}\ntasks: [{command: [x]}]");
  };
  EXPECT_THAT(autoscale("{max: 3}"), HasSubstr("exactly one target"));
  EXPECT_THAT(autoscale("{max: 3, target_rps: 5, target_p90_ms: 100}"), HasSubstr("exactly one target"));
  EXPECT_THAT(autoscale("{min: 1, target_rps: 5}"), HasSubstr("say max"));
  EXPECT_THAT(autoscale("{min: 4, max: 3, target_rps: 5}"), HasSubstr("min (4) is above max (3)"));
  EXPECT_THAT(autoscale("{max: 3, target_rps: 5}", 5), HasSubstr("replicas (5, the count to start with)"));
  EXPECT_THAT(autoscale("{max: 3, target_rps: 0}"), HasSubstr("out of range"));
  EXPECT_THAT(autoscale("{max: 3, target_rps: 5, window: 0s}"), HasSubstr("between 1s and 3600s"));
  absl::StatusOr<JobSpec> zero = ParseJobSpec(
      "kind: service\nservice: {autoscale: {min: 0, max: 2, target_concurrency: 4}}\ntasks: [{command: [x]}]");
  ASSERT_TRUE(zero.ok()) << zero.status();
  EXPECT_EQ(zero->service.autoscale.min, 0);
  EXPECT_EQ(*ParseJobSpec(JobSpecToJson(*zero)), *zero);
}

// Kubernetes' percentages: surge rounded up, unavailable down, and one
// replica may be unavailable when both come to 0.
TEST(ServiceSpecTest, RolloutBoundsMayBePercentagesOfReplicas) {
  absl::StatusOr<JobSpec> s = ParseJobSpec(
      "kind: service\nservice: {replicas: 10, update: {max_surge: 25%, max_unavailable: 10%}}\n"
      "tasks: [{command: [x]}]");
  ASSERT_TRUE(s.ok()) << s.status();
  const RolloutSpec& u = s->service.update;
  EXPECT_EQ(u.SurgeFor(10), 3);  // 2.5 up
  EXPECT_EQ(u.UnavailableFor(10), 1);
  EXPECT_EQ(u.SurgeFor(1), 1);
  EXPECT_EQ(u.UnavailableFor(3), 0);  // 0.3 down
  EXPECT_EQ(*ParseJobSpec(JobSpecToJson(*s)), *s);
  EXPECT_NE(JobSpecToJson(*s).find(R"("max_surge":"25%")"), std::string::npos);
  const RolloutSpec none{.max_surge = 0, .max_unavailable = 20, .max_unavailable_percent = true};
  EXPECT_EQ(none.UnavailableFor(4), 1);  // both 0 at 4 replicas: one may go
  auto update = [](const std::string& u) {
    return Message("kind: service\nservice: {update: " + u + "}\ntasks: [{command: [x]}]");
  };
  EXPECT_THAT(update("{max_surge: 150%}"), HasSubstr("0% to 100%"));
  EXPECT_THAT(update("{max_surge: x%}"), HasSubstr("0% to 100%"));
}

TEST(ServiceSpecTest, AStartupProbePassesOnce) {
  EXPECT_THAT(Message("kind: service\nservice: {startup: {tcp: true, success_threshold: 2}}\ntasks: [{command: [x]}]"),
              HasSubstr("a startup probe passes once"));
}

TEST(ServiceSpecTest, ARolloutThatCouldNeverReplaceAReplicaIsRefused) {
  auto update = [](const std::string& u) {
    return Message("kind: service\nservice: {update: " + u + "}\ntasks: [{command: [x]}]");
  };
  EXPECT_THAT(update("{max_surge: 0, max_unavailable: 0}"), HasSubstr("both 0"));
  EXPECT_THAT(update("{max_surge: -1}"), HasSubstr("out of range"));
  EXPECT_THAT(update("{ready_timeout: 0s}"), HasSubstr("between 1s and 24h"));
  EXPECT_THAT(update("{surge: 1}"), HasSubstr("unknown field"));
  EXPECT_THAT(Message("service: {update: {max_surge: 1}}\ntasks: [{command: [x]}]"), HasSubstr("only for kind"));
}

}  // namespace
}  // namespace icos::api
