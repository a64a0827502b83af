// The controller's observability against a real SQLite file and a fake
// clock: usage accounting that matches a hand-computed example and survives
// restarts, the utilisation sampler, and the state /metrics reports.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "controller/controller.h"
#include "controller/controller_test_util.h"
#include "store/sqlite_state_store.h"

namespace icos::controller {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kMinute = 60'000;

// Two whole devices and two cores.
constexpr char kJobA[] = R"(
name: a
tasks:
  - command: ["sleep", "1"]
    resources: {cpu: 2, memory: 1Gi, devices: 2}
)";
// Half of one device and one core.
constexpr char kJobB[] = R"(
name: b
tasks:
  - command: ["sleep", "1"]
    resources: {cpu: 1, memory: 1Gi, device_share: 50%}
)";

// The shared controller fixture (controller_test_util.h) with utilisation
// sampled every 15 s.
class ControllerObserveTest : public ControllerTest {
 protected:
  void SetUp() override {
    options_.utilisation_step_s = 15;
    ControllerTest::SetUp();
  }
  // One heartbeat listing every task the agent knows (one left out counts as lost).
  void Report(const std::vector<std::pair<std::string, std::string>>& tasks) {
    std::vector<wire::TaskStatus> statuses;
    for (const auto& [id, state] : tasks) {
      wire::TaskStatus s;
      s.task_id = id;
      s.state = state;
      statuses.push_back(s);
    }
    ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", statuses).ok());
  }
  // Starts job A (alice) and job B (bob) on n1; returns their task ids.
  std::pair<std::string, std::string> StartBoth() {
    EXPECT_TRUE(controller_->RegisterNode(admin_, Node("n1", 4), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
    auto a = controller_->Submit(alice_, kJobA);
    auto b = controller_->Submit(bob_, kJobB);
    EXPECT_TRUE(a.ok() && b.ok());
    EXPECT_TRUE(controller_->RunPass().ok());
    auto w = controller_->WatchAssignments(admin_, "n1", 0, 0);
    EXPECT_TRUE(w.ok()) << w.status();
    std::string ta, tb;
    for (const auto& t : w->tasks) (t.job_id == *a ? ta : tb) = t.task_id;
    EXPECT_FALSE(ta.empty());
    EXPECT_FALSE(tb.empty());
    Report({{ta, "Running"}, {tb, "Running"}});
    return {ta, tb};
  }
  UsageReport Usage(const Principal& who, int64_t from, int64_t to, UsageBy by) {
    auto r = controller_->Usage(who, from, to, by);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : UsageReport{};
  }
};

TEST_F(ControllerObserveTest, UsageMatchesHandComputedExampleAcrossRestarts) {
  const int64_t t0 = clock_.NowMs();
  auto [ta, tb] = StartBoth();  // both run from t0
  clock_.Advance(30 * kMinute);
  // [t0, t0+30m) while running: alice 2 devices x 0.5 h = 1.0; bob 0.5 x 0.5 h = 0.25.
  UsageReport before = Usage(admin_, t0, t0 + 30 * kMinute, UsageBy::kUser);
  ASSERT_EQ(before.rows.size(), 2u);
  EXPECT_DOUBLE_EQ(before.rows[0].device_hours_total, 1.0);
  EXPECT_DOUBLE_EQ(before.rows[1].device_hours_total, 0.25);
  Open();  // the controller restarts while both run
  UsageReport after = Usage(admin_, t0, t0 + 30 * kMinute, UsageBy::kUser);
  ASSERT_EQ(after.rows.size(), 2u);
  EXPECT_DOUBLE_EQ(after.rows[0].device_hours_total, 1.0);
  EXPECT_DOUBLE_EQ(after.rows[1].device_hours_total, 0.25);
  Report({{ta, "Running"}, {tb, "Running"}});  // the agent keeps reporting; nothing changes
  clock_.Advance(30 * kMinute);
  Report({{ta, "Running"}, {tb, "Succeeded"}});  // B ends at t0+60m
  clock_.Advance(30 * kMinute);
  Report({{ta, "Succeeded"}, {tb, "Succeeded"}});  // A ends at t0+90m
  clock_.Advance(30 * kMinute);
  Open();  // and restarts again after both ended

  // Window [t0, t0+120m), by user:
  //   alice: job A, 2 A100 x 1.5 h = 3.0 device-hours; 2 cores x 1.5 h = 3.0 CPU-hours.
  //   bob:   job B, 0.5 A100 x 1.0 h = 0.5 device-hours; 1 core x 1.0 h = 1.0 CPU-hours.
  //   each submitted 1 job and 1 succeeded.
  UsageReport all = Usage(admin_, t0, t0 + 120 * kMinute, UsageBy::kUser);
  ASSERT_EQ(all.rows.size(), 2u);
  EXPECT_EQ(all.rows[0].key, "alice");
  EXPECT_DOUBLE_EQ(all.rows[0].device_hours.at("nvidia/A100"), 3.0);
  EXPECT_DOUBLE_EQ(all.rows[0].device_hours_total, 3.0);
  EXPECT_DOUBLE_EQ(all.rows[0].cpu_hours, 3.0);
  EXPECT_EQ(all.rows[0].submitted, 1);
  EXPECT_EQ(all.rows[0].succeeded, 1);
  EXPECT_EQ(all.rows[1].key, "bob");
  EXPECT_DOUBLE_EQ(all.rows[1].device_hours.at("nvidia/A100"), 0.5);
  EXPECT_DOUBLE_EQ(all.rows[1].cpu_hours, 1.0);
  EXPECT_EQ(all.rows[1].succeeded, 1);

  // Window [t0+45m, t0+75m) clips both intervals:
  //   alice: A runs through it: 2 x 0.5 h = 1.0 device-hours, 2 x 0.5 h = 1.0 CPU-hours; no submit or end inside.
  //   bob:   B runs 45m..60m: 0.5 x 0.25 h = 0.125 device-hours, 1 x 0.25 h = 0.25 CPU-hours; B ended inside.
  UsageReport clipped = Usage(admin_, t0 + 45 * kMinute, t0 + 75 * kMinute, UsageBy::kUser);
  ASSERT_EQ(clipped.rows.size(), 2u);
  EXPECT_DOUBLE_EQ(clipped.rows[0].device_hours_total, 1.0);
  EXPECT_DOUBLE_EQ(clipped.rows[0].cpu_hours, 1.0);
  EXPECT_EQ(clipped.rows[0].submitted, 0);
  EXPECT_EQ(clipped.rows[0].succeeded, 0);
  EXPECT_DOUBLE_EQ(clipped.rows[1].device_hours_total, 0.125);
  EXPECT_DOUBLE_EQ(clipped.rows[1].cpu_hours, 0.25);
  EXPECT_EQ(clipped.rows[1].succeeded, 1);

  // By queue: both ran in "default": 3.0 + 0.5 = 3.5 device-hours, 3.0 + 1.0 = 4.0 CPU-hours, 2 jobs.
  UsageReport queues = Usage(admin_, t0, t0 + 120 * kMinute, UsageBy::kQueue);
  ASSERT_EQ(queues.rows.size(), 1u);
  EXPECT_EQ(queues.rows[0].key, "default");
  EXPECT_DOUBLE_EQ(queues.rows[0].device_hours_total, 3.5);
  EXPECT_DOUBLE_EQ(queues.rows[0].cpu_hours, 4.0);
  EXPECT_EQ(queues.rows[0].submitted, 2);
  EXPECT_EQ(queues.rows[0].succeeded, 2);
}

TEST_F(ControllerObserveTest, UserSeesOnlyOwnUsageAndAgentNone) {
  const int64_t t0 = clock_.NowMs();
  StartBoth();
  clock_.Advance(60 * kMinute);
  UsageReport mine = Usage(alice_, t0, t0 + 60 * kMinute, UsageBy::kUser);
  ASSERT_EQ(mine.rows.size(), 1u);
  EXPECT_EQ(mine.rows[0].key, "alice");
  EXPECT_DOUBLE_EQ(mine.rows[0].device_hours_total, 2.0);  // still running: 2 devices x 1 h
  UsageReport by_queue = Usage(bob_, t0, t0 + 60 * kMinute, UsageBy::kQueue);
  ASSERT_EQ(by_queue.rows.size(), 1u);
  EXPECT_DOUBLE_EQ(by_queue.rows[0].device_hours_total, 0.5);  // only bob's half device
  Principal agent{"agent", Role::kAgent, ""};
  EXPECT_EQ(controller_->Usage(agent, t0, t0 + 1, UsageBy::kUser).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(controller_->Usage(admin_, t0, t0, UsageBy::kUser).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(ControllerObserveTest, SamplerRecordsAllocationOncePerStepAndSurvivesRestart) {
  StartBoth();
  // The fake clock starts at 1,700,000,000 s; the step-aligned slot is
  // floor(1,700,000,000 / 15) * 15 = 1,699,999,995.
  auto first = controller_->SampleUtilisation();
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_TRUE(*first);
  EXPECT_FALSE(*controller_->SampleUtilisation());  // same step: nothing new
  clock_.Advance(15'000);
  EXPECT_TRUE(*controller_->SampleUtilisation());
  Open();
  auto h = controller_->Utilisation(admin_, 0, 2'000'000'000);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->step_s, 15);
  ASSERT_EQ(h->samples.size(), 2u);
  EXPECT_EQ(h->samples[0].time_s, 1'699'999'995);
  EXPECT_EQ(h->samples[1].time_s, 1'700'000'010);
  // A: 2 whole devices, B: half of one -> 2.5 of 4 A100 allocated, all in "default".
  json s = json::parse(h->samples[1].sample_json);
  EXPECT_DOUBLE_EQ(s["by_type"]["nvidia/A100"]["allocated"].get<double>(), 2.5);
  EXPECT_EQ(s["by_type"]["nvidia/A100"]["total"].get<int64_t>(), 4);
  EXPECT_DOUBLE_EQ(s["by_queue"]["default"].get<double>(), 2.5);
}

TEST_F(ControllerObserveTest, SamplerPrunesSamplesOlderThanRetention) {
  options_.utilisation_retention_s = 60;
  Open();
  for (int i = 0; i < 10; ++i) {
    ASSERT_TRUE(controller_->SampleUtilisation().ok());
    clock_.Advance(15'000);
  }
  // Samples at slots s0 .. s0+135 s; the last prune keeps those >= s0+135-60 = s0+75: 75, 90, ..., 135 -> 5.
  auto h = controller_->Utilisation(admin_, 0, 2'000'000'000);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->samples.size(), 5u);
}

TEST_F(ControllerObserveTest, MetricsShowAllocationQueuesJobsAndCounters) {
  StartBoth();
  ASSERT_TRUE(store_->TryLead({.holder = "ctl-a:1", .url = "http://ctl-a:7070", .since_ms = 1'700'000'000'500}).ok());
  auto m = controller_->CollectMetrics();
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_EQ(m->devices.size(), 4u);
  double allocated = 0;
  for (const auto& d : m->devices) allocated += d.allocated;
  EXPECT_DOUBLE_EQ(allocated, 2.5);
  metrics::ExpositionWriter w;
  RenderMetrics(*m, controller_->counters(), w);
  const std::string& text = w.text();
  EXPECT_THAT(text, HasSubstr("icos_queue_allocated_devices{queue=\"default\"} 2.5\n"));
  EXPECT_THAT(text, HasSubstr("icos_queue_allocated_cpu_cores{queue=\"default\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("icos_queue_running_jobs{queue=\"default\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("icos_jobs{state=\"Running\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("icos_jobs{state=\"Failed\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("icos_leader_epoch 1\n"));
  EXPECT_THAT(text, HasSubstr("icos_leader_since_seconds 1700000000.5\n"));
  EXPECT_THAT(text, HasSubstr("icos_nodes{state=\"Ready\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("icos_scheduler_binds_total 2\n"));
  EXPECT_THAT(text, HasSubstr("icos_scheduler_pass_duration_seconds_count 1\n"));
  EXPECT_THAT(text, HasSubstr("icos_agent_heartbeats_total{node=\"n1\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("icos_device_healthy{node=\"n1\",index=\"3\",vendor=\"nvidia\",model=\"A100\"} 1\n"));
  // No agent has said what its devices do: no utilisation sample at all (a 0 would read as idle).
  EXPECT_THAT(text, Not(HasSubstr("icos_device_utilization_ratio{")));
}

// The agent's heartbeat carries each device's utilisation and memory in use:
// /metrics and the node view show them, a device the library cannot read
// stays absent, a list that does not match the node is ignored, and a lost
// node's figures are no longer shown.
TEST_F(ControllerObserveTest, HeartbeatsCarryDeviceUtilisation) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1", 4), "10.0.0.1", "http://10.0.0.1:9", "k").ok());
  const std::vector<wire::DeviceUsage> usage = {{.utilization_pct = 97, .memory_used_mib = 40'960},
                                                {.utilization_pct = 0, .memory_used_mib = 0},
                                                {},
                                                {.utilization_pct = 3, .memory_used_mib = -1}};
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {}, usage).ok());
  auto m = controller_->CollectMetrics();
  ASSERT_TRUE(m.ok()) << m.status();
  metrics::ExpositionWriter w;
  RenderMetrics(*m, controller_->counters(), w);
  const std::string& text = w.text();
  EXPECT_THAT(
      text,
      HasSubstr("icos_device_utilization_ratio{node=\"n1\",index=\"0\",vendor=\"nvidia\",model=\"A100\"} 0.97\n"));
  EXPECT_THAT(text,
              HasSubstr("icos_device_utilization_ratio{node=\"n1\",index=\"1\",vendor=\"nvidia\",model=\"A100\"} 0\n"));
  EXPECT_THAT(text, Not(HasSubstr("icos_device_utilization_ratio{node=\"n1\",index=\"2\"")));
  EXPECT_THAT(
      text,
      HasSubstr(
          "icos_device_memory_used_bytes{node=\"n1\",index=\"0\",vendor=\"nvidia\",model=\"A100\"} 42949672960\n"));
  EXPECT_THAT(text, Not(HasSubstr("icos_device_memory_used_bytes{node=\"n1\",index=\"3\"")));
  auto nodes = controller_->ListNodes(admin_);
  ASSERT_TRUE(nodes.ok());
  ASSERT_EQ((*nodes)[0].usage.size(), 4u);
  EXPECT_EQ((*nodes)[0].usage[0], usage[0]);
  // A heartbeat without figures keeps the last ones; a wrong-sized list is
  // ignored, and the heartbeat itself still counts.
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {}).ok());
  EXPECT_EQ((*controller_->ListNodes(admin_))[0].usage[0], usage[0]);
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {}, {wire::DeviceUsage{.utilization_pct = 5}}).ok());
  EXPECT_EQ((*controller_->ListNodes(admin_))[0].usage[0], usage[0]);
  EXPECT_EQ(controller_->counters().heartbeats.Value({"n1"}), 3);
  // The node goes silent: its figures are stale, and neither view shows them.
  clock_.Advance(options_.node_lease_ms + 1);
  ASSERT_TRUE(controller_->CheckNodes().ok());
  EXPECT_TRUE((*controller_->ListNodes(admin_))[0].usage.empty());
  m = controller_->CollectMetrics();
  ASSERT_TRUE(m.ok());
  for (const DeviceMetric& d : m->devices) EXPECT_EQ(d.usage.utilization_pct, -1);
}

}  // namespace
}  // namespace icos::controller

namespace icos::controller {
namespace {

// Right-sizing: job A holds two whole A100s that its agent reports 10% busy
// with at most 8 GiB of 80 in use, for a minute of checks. Its view says so
// and suggests a share; when it ends, the summary stays as an event. Job B's
// half device is shared, so its figures include the co-tenant: no hint.
TEST_F(ControllerObserveTest, JobsLearnHowBusyTheirDevicesWere) {
  auto [ta, tb] = StartBoth();
  auto view = [&](const std::string& task) {
    int64_t job = 0;
    int32_t g, r, a;
    EXPECT_TRUE(wire::ParseTaskId(task, &job, &g, &r, &a));
    auto v = controller_->GetJob(admin_, job);
    EXPECT_TRUE(v.ok()) << v.status();
    return *v;
  };
  EXPECT_EQ(view(ta).device_use.samples, 0);
  const std::vector<wire::TaskStatus> running = {{.task_id = ta, .state = "Running"},
                                                 {.task_id = tb, .state = "Running"}};
  for (int k = 0; k < 6; ++k) {
    std::vector<wire::DeviceUsage> usage(4, wire::DeviceUsage{.utilization_pct = 10, .memory_used_mib = 4'096});
    usage[k % 2].memory_used_mib = 8'192;
    ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", running, usage).ok());
  }
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", running).ok());  // no figures: nothing sampled
  const DeviceUse a = view(ta).device_use;
  EXPECT_EQ(a.samples, 12);  // 2 devices x 6 reports
  EXPECT_DOUBLE_EQ(a.BusyPct(), 10);
  EXPECT_EQ(a.memory_peak_mib, 8'192);
  EXPECT_EQ(a.memory_total_mib, 81'920);
  EXPECT_THAT(a.Describe(), HasSubstr("devices 10% busy on average over 12 samples; at most 8.0 of 80.0 GiB"));
  EXPECT_THAT(a.Describe(), HasSubstr("device_share: 20 would leave the rest"));
  const DeviceUse b = view(tb).device_use;
  EXPECT_TRUE(b.shares);
  EXPECT_THAT(b.Describe(), HasSubstr("include their other tenants"));
  EXPECT_THAT(b.Describe(), Not(HasSubstr("device_share")));
  // A ends: the summary is kept with the job.
  Report({{ta, "Succeeded"}, {tb, "Running"}});
  const JobView ended = view(ta);
  ASSERT_EQ(store::JobStateName(ended.job.state), std::string("Succeeded"));
  bool found = false;
  for (const auto& e : ended.events) found |= e.kind == "DeviceUse" && absl::StrContains(e.message, "device_share: 20");
  EXPECT_TRUE(found) << "no DeviceUse event";
}

// Busy devices, or too little evidence, get no hint.
TEST(DeviceUseTest, HintsOnlyOnEvidenceOfIdleWholeDevices) {
  DeviceUse busy{.busy_pct_sum = 85.0 * 20, .samples = 20, .memory_peak_mib = 60'000, .memory_total_mib = 81'920};
  EXPECT_THAT(busy.Describe(), Not(HasSubstr("device_share")));
  DeviceUse brief{.busy_pct_sum = 5.0 * 3, .samples = 3};
  EXPECT_THAT(brief.Describe(), Not(HasSubstr("device_share")));
  DeviceUse full_memory{.busy_pct_sum = 5.0 * 20, .samples = 20, .memory_peak_mib = 70'000, .memory_total_mib = 81'920};
  EXPECT_THAT(full_memory.Describe(), Not(HasSubstr("device_share")));
  EXPECT_EQ(DeviceUse{}.Describe(), "");
}

// A heartbeat overtaken by the same agent's next one (it took long: a slow
// commit under disk load, a client timeout, the next beat on a new
// connection) must not undo it: applied after it, its older task list would
// fail the task started in between as lost. Found by e2e.service on a loaded
// machine: both replicas of a service "lost" seconds after they started.
TEST_F(ControllerTest, AnOvertakenHeartbeatIsNotApplied) {
  ASSERT_TRUE(controller_->RegisterNode(admin_, Node("n1"), "127.0.0.1", "http://127.0.0.1:9", "k").ok());
  auto id = controller_->Submit(alice_, "tasks: [{command: [x], resources: {cpu: 1, memory: 1Gi}}]", "/");
  ASSERT_TRUE(id.ok()) << id.status();
  ASSERT_TRUE(controller_->RunPass().ok());
  auto tasks = Watch("n1");
  ASSERT_EQ(tasks.size(), 1u);
  const wire::TaskStatus running{.task_id = tasks[0].task_id, .state = "Running"};
  // Beat 2 says the task runs; beat 1, built before it started, comes after.
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {running}, {}, "agent-a", 2).ok());
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {}, {}, "agent-a", 1).ok());
  EXPECT_EQ(State(*id), "Running");
  EXPECT_EQ(controller_->counters().overtaken_heartbeats.Value({"n1"}), 1);
  // A new agent process (a restart): its beats apply from its first, and the
  // process it replaced is not heard again.
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {running}, {}, "agent-b", 1).ok());
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {}, {}, "agent-a", 3).ok());
  EXPECT_EQ(State(*id), "Running");
  EXPECT_EQ(controller_->counters().overtaken_heartbeats.Value({"n1"}), 2);
  // An agent that sends no order (an older one) is applied as it comes: a
  // list without the task loses it.
  ASSERT_TRUE(controller_->Heartbeat(admin_, "n1", {}).ok());
  EXPECT_NE(State(*id), "Running");
  auto job = controller_->GetJob(admin_, *id);
  ASSERT_TRUE(job.ok());
  EXPECT_THAT(job->tasks.at(0).reason, HasSubstr("the agent no longer knows this task"));
}

}  // namespace
}  // namespace icos::controller
